"""``ModelConfig``: every choice that defines a SciLT model, validated once, JSON-friendly.

The config is stored in ``run.pt`` through :meth:`ModelConfig.to_dict` and read back with
:meth:`ModelConfig.from_dict`, so it holds primitives only (str, int, float, bool, None, lists).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from scilt_theory.constraints import Choice, Interval, NoneOr, Text, TupleOf, check_fields, option

ADAPTERS = ("lora", "adaptformer", "full", "none")
HEADS = ("cosine", "linear")
FUSIONS = ("adaptive", "fixed")
# The patch embedding is a Conv2d called ``patch_embed.proj``; peft matches target names as suffixes
# (``key == t or key.endswith("." + t)``), so these targets would adapt the patch embedding too.
_PATCH_EMBED = "patch_embed.proj"


@dataclass(frozen=True)
class ModelConfig:
    """Configuration of the SciLT fused model (THEORY §1).

    Each field declares what it accepts (scilt_theory/constraints.py); ``__post_init__`` checks those and the
    rules that combine fields or consult timm. A bad value raises ``ValueError`` with one sentence.
    """

    num_classes: int = option(MISSING, "number of classes K (rows of each head)", Interval(int, 2, None))
    arch: str = option("vit_tiny_patch16_224", "timm architecture name of a VisionTransformer with a class token, "
                       "e.g. vit_tiny_patch16_224", Text())
    img_size: int = option(32, "input image side in pixels (images are square)", Interval(int, 1, None))
    patch_size: int = option(4, "ViT patch side in pixels; must divide img_size", Interval(int, 1, None))
    depth: int | None = option(None, "number of transformer blocks (at least 2); none keeps the architecture's "
                               "default", NoneOr(Interval(int, 2, None)))
    adapter: str = option("lora", "backbone tuning: lora (peft LoRA), adaptformer (parallel MLP adapter), full (all "
                          "backbone weights train) or none (frozen backbone, only fusion and heads train)",
                          Choice(ADAPTERS))
    lora_rank: int = option(8, "LoRA rank r", Interval(int, 1, None))
    lora_alpha: int = option(16, "LoRA alpha (the update is scaled by alpha / r)",
                             Interval(float, 0, None, closed="neither"))
    lora_dropout: float = option(0.0, "dropout on the LoRA input", Interval(float, 0, 1, closed="left"))
    lora_targets: tuple[str, ...] = option(("qkv", "attn.proj", "mlp.fc1", "mlp.fc2"), "module name suffixes that "
                                           "get LoRA (peft suffix matching); must not match patch_embed.proj",
                                           TupleOf(Text()))
    adapter_dim: int = option(16, "AdaptFormer bottleneck width", Interval(int, 1, None))
    adapter_scale: float = option(0.1, "AdaptFormer output scale s (the adapter adds s·up(relu(down(x))))",
                                  Interval(float, 0, None, closed="neither"))
    head: str = option("cosine", "cosine (L2-normalised features and head rows, times scale) or linear (no "
                       "normalisation, scale 1)", Choice(HEADS))
    scale: float = option(25.0, "cosine scale s; ignored by linear heads", Interval(float, 0, None, closed="neither"))
    fusion: str = option("adaptive", "adaptive (alpha = sigmoid(a), a learnable) or fixed (alpha = fixed_alpha, "
                         "constant)", Choice(FUSIONS))
    alpha_init_logit: float = option(0.0, "initial fusion logit a for adaptive fusion (0 gives alpha = 0.5)",
                                     Interval(float))
    fixed_alpha: float = option(0.5, "alpha used by fixed fusion", Interval(float, 0, 1))
    heads: int = option(2, "2: classifier 1 on the fused h and classifier 2 on psi_1, logits s1 + s2 (dual "
                        "supervision); 1: classifier 1 on h only, logits s1 (with fixed alpha 0 / 1 this is the "
                        "final-only / penultimate-only model)", Choice((1, 2)))
    weights: str | None = option(None, "local pretrained backbone weights (timm checkpoint .pth/.pt/.bin or "
                                 ".safetensors); never downloaded. none = random initialisation", NoneOr(Text()))
    drop_path_rate: float = option(0.0, "stochastic depth rate of the backbone", Interval(float, 0, 1, closed="left"))
    variant: str = option("scilt", "name of the model builder in MODEL_VARIANTS (scilt = the fused two-head model)",
                          Text())

    def __post_init__(self) -> None:
        # Normalise the JSON-unfriendly spellings a caller may reasonably pass.
        if isinstance(self.lora_targets, (list, str)):
            targets = (self.lora_targets,) if isinstance(self.lora_targets, str) else tuple(self.lora_targets)
            object.__setattr__(self, "lora_targets", targets)
        if isinstance(self.weights, Path):
            object.__setattr__(self, "weights", str(self.weights))
        check_fields(self)
        import timm  # here so that reading a config does not pay for timm unless it is validated

        if not timm.is_model(self.arch):
            raise ValueError(f"arch {self.arch!r} is not a model registered in timm (see timm.list_models('vit_*')).")
        if self.img_size % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} must divide img_size {self.img_size}.")
        for target in self.lora_targets:
            if target.strip(".") != target or _PATCH_EMBED == target or _PATCH_EMBED.endswith("." + target):
                raise ValueError(
                    f"lora target {target!r} would also match the patch embedding ({_PATCH_EMBED}); "
                    f"name the attention projection as 'attn.proj' instead.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary (tuples become lists); inverse of :meth:`from_dict`."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["lora_targets"] = list(self.lora_targets)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build a config from :meth:`to_dict` output; unknown keys are an error, not silently dropped."""
        if not isinstance(data, dict):
            raise ValueError(f"a model config must be a dictionary, got {type(data).__name__}.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known keys are {sorted(known)}.")
        if "num_classes" not in data:
            raise ValueError("a model config needs num_classes.")
        return cls(**data)
