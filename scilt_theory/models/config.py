"""``ModelConfig``: every choice that defines a SciLT model, validated once, JSON-friendly.

The config is stored in ``run.pt`` through :meth:`ModelConfig.to_dict` and read back with
:meth:`ModelConfig.from_dict`, so it holds primitives only (str, int, float, bool, None, lists).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ADAPTERS = ("lora", "adaptformer", "full", "none")
HEADS = ("cosine", "linear")
FUSIONS = ("adaptive", "fixed")
# The patch embedding is a Conv2d called ``patch_embed.proj``; peft matches target names as suffixes
# (``key == t or key.endswith("." + t)``), so these targets would adapt the patch embedding too.
_PATCH_EMBED = "patch_embed.proj"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ModelConfig:
    """Configuration of the SciLT fused model (THEORY §1).

    Validation happens in ``__post_init__``; a bad value raises ``ValueError`` with one sentence.
    """

    num_classes: int = field(metadata={"help": "number of classes K (rows of each head)"})
    arch: str = field(default="vit_tiny_patch16_224", metadata={
        "help": "timm architecture name of a VisionTransformer with a class token, e.g. vit_tiny_patch16_224"})
    img_size: int = field(default=32, metadata={"help": "input image side in pixels (images are square)"})
    patch_size: int = field(default=4, metadata={"help": "ViT patch side in pixels; must divide img_size"})
    depth: int | None = field(default=None, metadata={
        "help": "number of transformer blocks (at least 2); None keeps the architecture's default"})
    adapter: str = field(default="lora", metadata={
        "help": "backbone tuning: lora (peft LoRA), adaptformer (parallel MLP adapter), full (all backbone "
                "weights train) or none (frozen backbone, only fusion and heads train)"})
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank r"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (the update is scaled by alpha / r)"})
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA input, in [0, 1)"})
    lora_targets: tuple[str, ...] = field(default=("qkv", "attn.proj", "mlp.fc1", "mlp.fc2"), metadata={
        "help": "module name suffixes that get LoRA (peft suffix matching); must not match patch_embed.proj"})
    adapter_dim: int = field(default=16, metadata={"help": "AdaptFormer bottleneck width"})
    adapter_scale: float = field(default=0.1, metadata={
        "help": "AdaptFormer output scale s (the adapter adds s·up(relu(down(x))))"})
    head: str = field(default="cosine", metadata={
        "help": "cosine (L2-normalised features and head rows, times scale) or linear (no normalisation, scale 1)"})
    scale: float = field(default=25.0, metadata={"help": "cosine scale s (> 0); ignored by linear heads"})
    fusion: str = field(default="adaptive", metadata={
        "help": "adaptive (alpha = sigmoid(a), a learnable) or fixed (alpha = fixed_alpha, constant)"})
    alpha_init_logit: float = field(default=0.0, metadata={
        "help": "initial fusion logit a for adaptive fusion (0 gives alpha = 0.5)"})
    fixed_alpha: float = field(default=0.5, metadata={"help": "alpha used by fixed fusion, in [0, 1]"})
    heads: int = field(default=2, metadata={
        "help": "2: classifier 1 on the fused h and classifier 2 on psi_1, logits s1 + s2 (dual supervision); "
                "1: classifier 1 on h only, logits s1 (with fixed alpha 0 / 1 this is the final-only / "
                "penultimate-only model)"})
    weights: str | None = field(default=None, metadata={
        "help": "local pretrained backbone weights (timm checkpoint .pth/.pt/.bin or .safetensors); never "
                "downloaded. None = random initialisation"})
    drop_path_rate: float = field(default=0.0, metadata={"help": "stochastic depth rate of the backbone, in [0, 1)"})
    variant: str = field(default="scilt", metadata={
        "help": "name of the model builder in MODEL_VARIANTS (scilt = the fused two-head model)"})

    def __post_init__(self) -> None:
        # Normalise the JSON-unfriendly spellings a caller may reasonably pass.
        if isinstance(self.lora_targets, (list, str)):
            targets = (self.lora_targets,) if isinstance(self.lora_targets, str) else tuple(self.lora_targets)
            object.__setattr__(self, "lora_targets", targets)
        if isinstance(self.weights, Path):
            object.__setattr__(self, "weights", str(self.weights))
        self._validate()

    def _validate(self) -> None:  # noqa: C901 - one check per field, flat on purpose
        import timm  # imported here so that reading a config does not pay for timm unless it is validated

        if not _is_int(self.num_classes) or self.num_classes < 2:
            raise ValueError(f"num_classes must be an integer of at least 2, got {self.num_classes!r}.")
        if not isinstance(self.arch, str) or not timm.is_model(self.arch):
            raise ValueError(f"arch {self.arch!r} is not a model registered in timm (see timm.list_models('vit_*')).")
        if not _is_int(self.img_size) or self.img_size < 1:
            raise ValueError(f"img_size must be a positive integer, got {self.img_size!r}.")
        if not _is_int(self.patch_size) or self.patch_size < 1:
            raise ValueError(f"patch_size must be a positive integer, got {self.patch_size!r}.")
        if self.img_size % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} must divide img_size {self.img_size}.")
        if self.depth is not None and (not _is_int(self.depth) or self.depth < 2):
            raise ValueError(f"depth must be None or an integer of at least 2 (two CLS features are read), "
                             f"got {self.depth!r}.")
        if self.adapter not in ADAPTERS:
            raise ValueError(f"adapter must be one of {ADAPTERS}, got {self.adapter!r}.")
        if not _is_int(self.lora_rank) or self.lora_rank < 1:
            raise ValueError(f"lora_rank must be an integer of at least 1, got {self.lora_rank!r}.")
        if not _is_real(self.lora_alpha) or self.lora_alpha <= 0:
            raise ValueError(f"lora_alpha must be a positive number, got {self.lora_alpha!r}.")
        if not _is_real(self.lora_dropout) or not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}.")
        if not self.lora_targets or not all(isinstance(t, str) and t for t in self.lora_targets):
            raise ValueError(f"lora_targets must be a non-empty tuple of module names, got {self.lora_targets!r}.")
        for target in self.lora_targets:
            if target.strip(".") != target or _PATCH_EMBED == target or _PATCH_EMBED.endswith("." + target):
                raise ValueError(
                    f"lora target {target!r} would also match the patch embedding ({_PATCH_EMBED}); "
                    f"name the attention projection as 'attn.proj' instead.")
        if not _is_int(self.adapter_dim) or self.adapter_dim < 1:
            raise ValueError(f"adapter_dim must be an integer of at least 1, got {self.adapter_dim!r}.")
        if not _is_real(self.adapter_scale) or self.adapter_scale <= 0:
            raise ValueError(f"adapter_scale must be a positive finite number, got {self.adapter_scale!r}.")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}.")
        if not _is_real(self.scale) or self.scale <= 0:
            raise ValueError(f"scale must be a positive finite number, got {self.scale!r}.")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}.")
        if not _is_real(self.alpha_init_logit):
            raise ValueError(f"alpha_init_logit must be a finite number, got {self.alpha_init_logit!r}.")
        if not _is_real(self.fixed_alpha) or not 0.0 <= self.fixed_alpha <= 1.0:
            raise ValueError(f"fixed_alpha must be in [0, 1], got {self.fixed_alpha!r}.")
        if self.heads not in (1, 2) or isinstance(self.heads, bool):
            raise ValueError(f"heads must be 1 or 2, got {self.heads!r}.")
        if self.weights is not None and (not isinstance(self.weights, str) or not self.weights.strip()):
            raise ValueError(f"weights must be None or the path of a local weights file, got {self.weights!r}.")
        if not _is_real(self.drop_path_rate) or not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate!r}.")
        if not isinstance(self.variant, str) or not self.variant:
            raise ValueError(f"variant must be a non-empty model variant name, got {self.variant!r}.")

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
