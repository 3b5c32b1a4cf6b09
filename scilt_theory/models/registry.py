"""A small registry of model builders: ``config.variant`` names the builder, ``build_model`` calls it.

Peer methods (final-only head, penultimate-only, fused single head, dual heads without fusion, ...)
register a builder here from their own module; the training loop only ever calls ``build_model``.
"""

from __future__ import annotations

from collections.abc import Callable

from scilt_theory.models.config import ModelConfig
from scilt_theory.models.scilt import SciLTModel

__all__ = ["MODEL_VARIANTS", "register_model_variant", "build_model"]

ModelBuilder = Callable[[ModelConfig], SciLTModel]

#: variant name -> builder taking a ModelConfig and returning a SciLTModel (or a subclass of it)
MODEL_VARIANTS: dict[str, ModelBuilder] = {}


def register_model_variant(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering ``builder`` under ``name``; registering a name twice is an error."""

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in MODEL_VARIANTS:
            raise ValueError(f"model variant {name!r} is already registered.")
        MODEL_VARIANTS[name] = builder
        return builder

    return decorator


@register_model_variant("scilt")
def _build_scilt(config: ModelConfig) -> SciLTModel:
    return SciLTModel(config)


def build_model(config: ModelConfig) -> SciLTModel:
    """Build the model named by ``config.variant``; deterministic given ``torch.manual_seed``."""
    if not isinstance(config, ModelConfig):
        raise ValueError(f"build_model needs a ModelConfig, got {type(config).__name__}.")
    if config.variant not in MODEL_VARIANTS:
        raise ValueError(f"unknown model variant {config.variant!r}; registered: {sorted(MODEL_VARIANTS)}.")
    return MODEL_VARIANTS[config.variant](config)
