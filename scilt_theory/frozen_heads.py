"""The frozen-feature recipe on cached features, without a backbone: fusion α, the two cosine heads, their bounds.

``python -m experiments.train`` with the recipe ``dinov2-frozen`` (scilt_theory/recipes.py) extracts the CLS features
once and trains only α and the heads on them (training.py's frozen path). The validity experiment repeats that
hundreds of times and the scale study on samples of up to 45,437 draws, on features extracted once into a pool
(scilt_theory/feature_pool.py), so this module does the same training on feature tensors directly:

* :class:`FusedHeads` is the part of :class:`~scilt_theory.models.SciLTModel` after the backbone. Its forward,
  head inputs, decomposition (U, V) and class radii ARE SciLTModel's methods (borrowed, not copied), on the same
  :class:`~scilt_theory.models.fusion.AdaptiveFusion` and :class:`~scilt_theory.models.heads.BiasFreeHead` modules.
* :func:`train_heads` runs the recipe's optimisation with training.py's own pieces: ``param_groups`` (α in its own
  group, lr ``alpha_lr``, no weight decay), ``make_optimizer`` (SGD, momentum 0.9, weight decay 5e-4), the warm-up +
  cosine schedule (``make_scheduler``), the seeded loader of fit positions (``make_loader``, the batches of training's
  cached path) and the supervised loss (LA-CE(s1) + λ·LA-CE(s2), τ = λ = 1, with the fit counts). What differs from
  ``experiments.train``: no run.pt, no metrics, no evaluation, no progress bar — and the global RNG is seeded once
  (``torch.manual_seed(seed)``) before the heads are initialised, where training.py initialises the backbone first.
* :func:`bound_heads` calls ``statements.fused_model_bounds`` exactly as scilt_theory/bounds_pipeline.py does for a
  frozen run (radii (2s, s), the ρ grid between s/64 and 4s, feature-norm bound 1, validity ``fixed-features``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from scilt_theory.models.fusion import AdaptiveFusion
from scilt_theory.models.heads import BiasFreeHead
from scilt_theory.models.scilt import SciLTModel

__all__ = ["FusedHeads", "HeadRecipe", "bound_heads", "class_errors", "margins_of", "scores_of", "train_heads"]


@dataclass(frozen=True)
class HeadRecipe:
    """The optimisation of the ``dinov2-frozen`` recipe (scilt_theory/recipes.py) and the model's head settings."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    alpha_lr: float = 0.5
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    tau: float = 1.0
    lam: float = 1.0
    scale: float = 25.0            #: cosine scale s (ModelConfig default)
    alpha_init_logit: float = 0.0  #: α = 1/2 at the start

    def train_config(self, seed: int):
        from scilt_theory.training import TrainConfig

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, alpha_lr=self.alpha_lr,
                           optimizer=self.optimizer, momentum=self.momentum, weight_decay=self.weight_decay,
                           warmup_epochs=self.warmup_epochs, tau=self.tau, lam=self.lam, augment=False, seed=seed,
                           device="cpu", quiet=True)


class FusedHeads(nn.Module):
    """α and the two bias-free cosine heads of SciLT (THEORY §1) on features φ_{N-1}, φ_N given as tensors."""

    output_from_features = SciLTModel.output_from_features
    head_inputs = SciLTModel.head_inputs
    head_weights = SciLTModel.head_weights
    decomposition = SciLTModel.decomposition
    class_radii = SciLTModel.class_radii
    alpha = SciLTModel.alpha
    effective_scale = SciLTModel.effective_scale

    def __init__(self, feature_dim: int, num_classes: int, scale: float = 25.0, alpha_init_logit: float = 0.0) -> None:
        super().__init__()
        self.config = SimpleNamespace(head="cosine", fusion="adaptive", fixed_alpha=0.5, scale=float(scale),
                                      num_classes=int(num_classes))
        self.fusion = AdaptiveFusion(alpha_init_logit)
        self.head1 = BiasFreeHead(feature_dim, num_classes, True, scale)
        self.head2 = BiasFreeHead(feature_dim, num_classes, True, scale)

    def forward(self, phi_penult: torch.Tensor, phi_final: torch.Tensor):
        return self.output_from_features(phi_penult, phi_final)

    def heads_float64(self) -> tuple[np.ndarray, np.ndarray]:
        """(U, V) of the trained scorer ψ₁Uᵀ + ψ₂Vᵀ, float64 (K, d) each."""
        with torch.no_grad():
            u, v = self.decomposition()
        return u.double().numpy(), v.double().numpy()


def train_heads(phi1: torch.Tensor, phi2: torch.Tensor, labels: torch.Tensor, num_classes: int,
                recipe: HeadRecipe = HeadRecipe(), seed: int = 0) -> FusedHeads:
    """Train α and the heads on the features of a fit sample (float32 (n, d) each), as training.py's frozen path."""
    from scilt_theory.data.loaders import make_loader
    from scilt_theory.methods import supervised_loss
    from scilt_theory.training import make_optimizer, make_scheduler, param_groups

    config = recipe.train_config(seed)
    torch.manual_seed(seed)
    model = FusedHeads(int(phi1.shape[1]), num_classes, recipe.scale, recipe.alpha_init_logit)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    counts = torch.bincount(labels, minlength=num_classes).to(torch.float32)
    loader = make_loader(torch.arange(len(labels)), labels, batch_size=config.batch_size, shuffle=True,
                         seed=config.seed, drop_last=False, num_workers=0)
    optimizer = make_optimizer(param_groups(model, config), config, torch.device("cpu"))
    scheduler = make_scheduler(optimizer, config, len(loader))
    phi1, phi2 = phi1.float(), phi2.float()
    model.train()
    for _ in range(config.epochs):
        for items, targets in loader:
            output = model(phi1[items], phi2[items])
            loss = supervised_loss(output, targets, counts, tau=config.tau, lam=config.lam)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    model.eval()
    return model


def scores_of(psi1: np.ndarray, psi2: np.ndarray, heads: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """ψ₁Uᵀ + ψ₂Vᵀ in float64: the bounded scorer (THEORY §1 decomposition)."""
    u, v = heads
    return psi1 @ u.T + psi2 @ v.T


def margins_of(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """M_f(x, y) = f_y − max_{c≠y} f_c (ties are errors: margin ≤ 0, THEORY §0)."""
    from scilt_theory.losses import margins

    return np.asarray(margins(scores, labels), dtype=np.float64)


def class_errors(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(errors, counts) per class, ties counted as errors."""
    wrong = (margins_of(scores, labels) <= 0).astype(np.float64)
    errors = np.bincount(labels, weights=wrong, minlength=num_classes).round().astype(np.int64)
    return errors, np.bincount(labels, minlength=num_classes)


@dataclass(frozen=True)
class BoundSettings:
    """bounds_pipeline.BoundsSettings' defaults that the statements read."""

    delta: float = 0.05
    delta_mc: float = 0.01
    draws: int = 1000
    method: str = "auto"
    margin_grid_size: int = 16
    many_threshold: int = 100
    few_threshold: int = 20
    statements: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def bound_heads(psi1: np.ndarray, psi2: np.ndarray, labels: np.ndarray, heads: tuple[np.ndarray, np.ndarray], *,
                num_classes: int, scale: float, class_counts: Sequence[int], seed: int,
                certificate_samples: Mapping[str, Any] | None = None, settings: BoundSettings = BoundSettings(),
                class_names: Sequence[str] | None = None, prior_heads: tuple[np.ndarray, np.ndarray] | None = None,
                validity: str = "fixed-features", statements: Sequence[str] | None = None,
                class_groups: Sequence[str] | None = None):
    """Every selected statement for the scorer ψ₁Uᵀ + ψ₂Vᵀ on the bound sample (ψ₁, ψ₂, labels), as
    bounds_pipeline.compute_bounds_report calls it for a frozen run (validity ``fixed-features``). ``prior_heads``:
    (U₀, V₀) fixed before the bound sample (PAC-Bayes prior centre; then ``validity`` "certified", as the pipeline's
    certified mode); ``statements`` overrides ``settings.statements``; ``class_groups``: the group of every class
    (default: from ``class_counts`` and the thresholds, as the pipeline)."""
    from scilt_theory.grid import BoundGrid
    from scilt_theory.statements import fused_model_bounds

    scores = scores_of(psi1, psi2, heads)
    grid = BoundGrid.geometric(scale / 64.0, 4.0 * scale, settings.margin_grid_size)  # bounds_pipeline.margin_grid
    chosen = settings.statements if statements is None else tuple(statements)
    return fused_model_bounds(
        psi1, psi2, scores, labels, statements=chosen, num_classes=num_classes,
        radius_penult=2.0 * scale, radius_final=scale, norm="row", grid=grid, delta=settings.delta,
        method=settings.method, n_draws=settings.draws, delta_mc=settings.delta_mc, seed=seed,
        class_names=list(class_names) if class_names is not None else None,
        many_threshold=settings.many_threshold, few_threshold=settings.few_threshold,
        class_counts=[int(n) for n in class_counts], class_groups=None if class_groups is None else list(class_groups),
        feature_norm_bound=1.0, validity=validity,
        certificate_samples=dict(certificate_samples or {}), head_weights=heads, prior_head_weights=prior_heads,
        scale=scale, coupled_scale=scale)
