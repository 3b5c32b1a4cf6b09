"""The fusion weight α of h = α ψ_1 + (1 − α) ψ_2 (THEORY §1).

adaptive: α = sigmoid(a) with a learnable scalar a (init ``alpha_init_logit``, 0 gives α = 1/2).
fixed: α is the constant ``fixed_alpha`` and nothing trains.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AdaptiveFusion", "FixedFusion"]


class AdaptiveFusion(nn.Module):
    """α = sigmoid(a), a a learnable scalar parameter ``logit``."""

    def __init__(self, init_logit: float) -> None:
        super().__init__()
        self.logit = nn.Parameter(torch.tensor(float(init_logit)))

    @property
    def alpha(self) -> torch.Tensor:
        return torch.sigmoid(self.logit)


class FixedFusion(nn.Module):
    """α constant (a non-persistent buffer: it comes from the config, not from a checkpoint)."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.register_buffer("value", torch.tensor(float(alpha)), persistent=False)

    @property
    def alpha(self) -> torch.Tensor:
        return self.value
