"""The SciLT fused model (THEORY §1): one ViT pass, two CLS features, adaptive fusion, two bias-free heads.

    ψ_1 = φ_{N-1}/‖φ_{N-1}‖,  ψ_2 = φ_N/‖φ_N‖          (cosine heads; ψ = φ for linear heads)
    h   = α ψ_1 + (1 − α) ψ_2,  α = sigmoid(a)
    s1  = s · Ŵ1 h,  s2 = s · Ŵ2 ψ_1,  logits = s1 + s2
        = U ψ_1 + V ψ_2,  U = s(α Ŵ1 + Ŵ2),  V = s(1 − α) Ŵ1

Ŵ has L2-normalised rows and s is the cosine scale for cosine heads; for linear heads Ŵ = W and s = 1.

The peer ablations are the same model with other settings (scilt_theory/methods.py): ``heads=1`` drops
classifier 2 (logits = s1, U = sαŴ1, V = s(1 − α)Ŵ1), ``fusion="fixed"`` freezes α; α = 0 with one head is the
LIFT-style final-only model, α = 1 the penultimate-only one, α = 0 with two heads is "both heads, no fusion"
(s1 = sŴ1ψ_2, s2 = sŴ2ψ_1).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from scilt_theory.models.adapters import apply_adapter
from scilt_theory.models.backbone import cls_features, create_backbone, input_normalization, weights_sha256
from scilt_theory.models.config import ModelConfig
from scilt_theory.models.fusion import AdaptiveFusion, FixedFusion
from scilt_theory.models.heads import BiasFreeHead

__all__ = ["SciLTOutput", "SciLTModel"]


class SciLTOutput(NamedTuple):
    """Everything one forward pass produces (a tuple, so it passes through DataParallel / compile)."""

    s1: torch.Tensor      #: (B, K) scores of classifier 1 on the fused feature h
    s2: torch.Tensor | None  #: (B, K) scores of classifier 2 on ψ_1 (None for a one-head model)
    logits: torch.Tensor  #: (B, K) s1 + s2, the prediction scores
    psi1: torch.Tensor    #: (B, D) head input from the penultimate block
    psi2: torch.Tensor    #: (B, D) head input from the final block
    alpha: torch.Tensor   #: 0-dim fusion weight α


class SciLTModel(nn.Module):
    """ViT (timm) + adapter (peft LoRA / AdaptFormer / full / none) + fusion + two bias-free heads.

    Inputs are images in [0, 1], shape (B, 3, img_size, img_size); the model normalises them itself with
    the backbone's pretraining mean/std (non-persistent buffers ``mean``/``std``).

    Attributes
    ----------
    config : ModelConfig
    backbone : timm VisionTransformer (with adapters injected)
    fusion : AdaptiveFusion | FixedFusion
    head1, head2 : BiasFreeHead (head2 is None for ``heads=1``)
    train_feature_fusion : nn.Module | None
        Applied to both CLS features when ``forward`` gets the labels (training only; PI-H2T's PIF, see
        scilt_theory/h2t.py); None for every other method. It has no parameters.
    feature_dim : int
        D, the width of φ and ψ.
    weights_sha256 : str | None
        sha256 of ``config.weights`` (None for a random initialisation).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = create_backbone(config)  # first: it explains a missing weights file in one sentence
        self.weights_sha256 = weights_sha256(config.weights) if config.weights is not None else None
        apply_adapter(self.backbone, config)
        mean, std = input_normalization(self.backbone)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.feature_dim = int(self.backbone.embed_dim)
        if config.fusion == "adaptive":
            self.fusion: nn.Module = AdaptiveFusion(config.alpha_init_logit)
        else:
            self.fusion = FixedFusion(config.fixed_alpha)
        cosine = config.head == "cosine"
        self.head1 = BiasFreeHead(self.feature_dim, config.num_classes, cosine, config.scale)
        self.head2 = BiasFreeHead(self.feature_dim, config.num_classes, cosine, config.scale) \
            if config.heads == 2 else None
        self.train_feature_fusion: nn.Module | None = None

    # ---- the forward pass -------------------------------------------------------------------------
    @property
    def alpha(self) -> torch.Tensor:
        """α as a 0-dim tensor (carries the gradient to the fusion logit for adaptive fusion)."""
        return self.fusion.alpha

    @property
    def effective_scale(self) -> float:
        """s in THEORY §1: the cosine scale for cosine heads, 1 for linear heads."""
        return self.head1.scale

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(φ_{N-1}, φ_N), both (B, D), after the final LayerNorm and NOT L2-normalised; one backbone pass."""
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"expected images shaped (B, {self.mean.shape[1]}, H, W), got {tuple(x.shape)}.")
        return cls_features(self.backbone, (x - self.mean) / self.std)

    def head_inputs(self, phi_penult: torch.Tensor,
                    phi_final: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ψ_1, ψ_2): L2-normalised features for cosine heads, the features themselves for linear heads."""
        if self.config.head == "cosine":
            return F.normalize(phi_penult, dim=-1), F.normalize(phi_final, dim=-1)
        return phi_penult, phi_final

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> SciLTOutput:
        """THEORY §1: h = αψ_1 + (1−α)ψ_2, s1 = s·Ŵ1 h, s2 = s·Ŵ2 ψ_1, logits = s1 + s2.

        ``labels`` (training only) feed ``train_feature_fusion`` when one is set; they change nothing else.
        """
        phi_penult, phi_final = self.features(x)
        if labels is not None and self.train_feature_fusion is not None:
            phi_penult = self.train_feature_fusion(phi_penult, labels)
            phi_final = self.train_feature_fusion(phi_final, labels)
        return self.output_from_features(phi_penult, phi_final)

    def output_from_features(self, phi_penult: torch.Tensor, phi_final: torch.Tensor) -> SciLTOutput:
        """The heads of THEORY §1 applied to already extracted features (no backbone pass)."""
        psi1, psi2 = self.head_inputs(phi_penult, phi_final)
        alpha = self.alpha
        h = alpha * psi1 + (1 - alpha) * psi2
        s1 = self.head1(h)
        if self.head2 is None:
            return SciLTOutput(s1=s1, s2=None, logits=s1, psi1=psi1, psi2=psi2, alpha=alpha)
        s2 = self.head2(psi1)
        return SciLTOutput(s1=s1, s2=s2, logits=s1 + s2, psi1=psi1, psi2=psi2, alpha=alpha)

    # ---- views used by the bounds -----------------------------------------------------------------
    def head_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(Ŵ1, Ŵ2) exactly as used in the forward (rows L2-normalised for cosine heads), each (K, D); Ŵ2 is
        None for a one-head model."""
        return self.head1.effective_weight(), None if self.head2 is None else self.head2.effective_weight()

    def decomposition(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, V) with logits = ψ_1 Uᵀ + ψ_2 Vᵀ (THEORY §1).

        Two heads: U = s(α Ŵ1 + Ŵ2), V = s(1 − α) Ŵ1; one head: U = sαŴ1, V = s(1 − α) Ŵ1.
        For cosine heads ‖u_c‖ ≤ s(α + [two heads]) and ‖v_c‖ ≤ s(1 − α): see :meth:`class_radii`.
        """
        w1, w2 = self.head_weights()
        s, alpha = self.effective_scale, self.alpha
        u = alpha * w1 if w2 is None else alpha * w1 + w2
        return s * u, s * (1 - alpha) * w1

    def class_radii(self) -> tuple[float, float]:
        """Row-norm radii (B_{N-1}, B_N) of F_{N-1} ∋ Uψ_1 and F_N ∋ Vψ_2, fixed before seeing data (THEORY §1).

        Cosine heads only (their rows have norm 1): the worst case over the α the model can reach — α ∈ [0, 1]
        for adaptive fusion, the constant for fixed fusion — of ‖u_c‖ ≤ s(α + [two heads]) and
        ‖v_c‖ ≤ s(1 − α). So (2s, s) for SciLT, (0, s) for final-only, (s, 0) for penultimate-only.
        """
        if self.config.head != "cosine":
            raise ValueError("radii known before training exist for cosine heads only (THEORY §1)")
        s = self.effective_scale
        alphas = (0.0, 1.0) if self.config.fusion == "adaptive" else (float(self.config.fixed_alpha),)
        second = 1.0 if self.head2 is not None else 0.0
        return s * max(a + second for a in alphas), s * max(1.0 - a for a in alphas)

    @property
    def uses_final_block(self) -> bool:
        """False when no score depends on ψ_2 (one head and α fixed at 1): the last block gets no gradient."""
        return not (self.head2 is None and self.config.fusion == "fixed" and self.config.fixed_alpha == 1.0)

    # ---- what a checkpoint must hold --------------------------------------------------------------
    def _saved_keys(self) -> list[str]:
        # A frozen backbone that came from a file is reproduced from that file (its sha256 is recorded);
        # a frozen *random* backbone is part of the model and must be saved.
        skip_frozen_backbone = self.config.weights is not None
        keys = []
        for name, tensor in self.state_dict(keep_vars=True).items():
            frozen = not (isinstance(tensor, nn.Parameter) and tensor.requires_grad)
            if skip_frozen_backbone and frozen and name.startswith("backbone."):
                continue
            keys.append(name)
        return keys

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors a checkpoint needs: trainable parameters (adapters, fusion logit, heads), persistent
        buffers, and the frozen backbone only when it is a random initialisation (no weights file).

        So adapter="full" or no weights file gives the whole state dict; a weights file with
        adapter in {lora, adaptformer, none} leaves the frozen backbone out.
        """
        state = self.state_dict()
        return {name: state[name].detach() for name in self._saved_keys()}

    def load_trainable_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load :meth:`trainable_state_dict` output; keys must match exactly (ValueError otherwise)."""
        expected = set(self._saved_keys())
        missing, unexpected = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
        if missing or unexpected:
            raise ValueError(f"model state does not fit this model config: {len(missing)} missing key(s) "
                             f"{missing[:3]}, {len(unexpected)} unexpected key(s) {unexpected[:3]}.")
        try:
            self.load_state_dict(state_dict, strict=False)
        except RuntimeError as err:  # shape mismatch
            raise ValueError(f"model state does not fit this model config: {err}") from err

    def num_trainable_parameters(self) -> int:
        """Number of scalars that receive gradients."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
