"""Bias-free classifier heads (THEORY §0-§1: a bias would break the U ψ_1 + V ψ_2 decomposition).

cosine: z ↦ s · Ŵ z with Ŵ the row-L2-normalised weight (the caller feeds L2-normalised z), so every
score lies in [-s, s]. linear: z ↦ W z, no normalisation and effective scale 1 (a scale in front of a
free W would only re-parametrise it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BiasFreeHead"]


class BiasFreeHead(nn.Module):
    """Scores s · Ŵ z of a bias-free head with weight W ∈ R^{K×D}.

    Parameters
    ----------
    in_features, num_classes
        D and K.
    cosine
        True: Ŵ = W with rows L2-normalised and s = ``scale``. False: Ŵ = W and s = 1.
    scale
        The cosine scale s (> 0); unused for linear heads.
    """

    def __init__(self, in_features: int, num_classes: int, cosine: bool, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's default initialisation
        self.cosine = cosine
        self.scale = float(scale) if cosine else 1.0

    def effective_weight(self) -> torch.Tensor:
        """Ŵ as used in the forward: rows L2-normalised for cosine heads, W itself for linear heads."""
        return F.normalize(self.weight, dim=1) if self.cosine else self.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(z, self.effective_weight())

    def extra_repr(self) -> str:
        k, d = self.weight.shape
        return f"in_features={d}, num_classes={k}, cosine={self.cosine}, scale={self.scale}"
