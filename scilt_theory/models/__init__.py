"""Models: timm ViT backbone + adapters (peft), bias-free heads, the SciLT fused model, a variant registry.

    from scilt_theory.models import ModelConfig, build_model
    model = build_model(ModelConfig(num_classes=10, depth=6))
    out = model(images_in_0_1)          # SciLTOutput(s1, s2, logits, psi1, psi2, alpha)
"""

from __future__ import annotations

from scilt_theory.models.backbone import weights_sha256
from scilt_theory.models.config import ADAPTERS, FUSIONS, HEADS, ModelConfig
from scilt_theory.models.registry import MODEL_VARIANTS, build_model, register_model_variant
from scilt_theory.models.scilt import SciLTModel, SciLTOutput

__all__ = [
    "ADAPTERS", "FUSIONS", "HEADS", "MODEL_VARIANTS", "ModelConfig", "SciLTModel", "SciLTOutput",
    "build_model", "register_model_variant", "weights_sha256",
]
