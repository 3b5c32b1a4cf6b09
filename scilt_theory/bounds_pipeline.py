"""From a checkpoint to the numbers of THEORY.md: features → complexities → bounds → a bounds.json dictionary.

Hypothesis classes (THEORY §1): for cosine heads the trained scorer s1 + s2 = Uψ₁ + Vψ₂ has row norms
‖u_c‖ ≤ s(1+α) ≤ 2s and ‖v_c‖ ≤ s(1−α) ≤ s, so F_{N-1} = row class of radius 2s on ψ₁ and F_N = row class of
radius s on ψ₂ (worst case over α, fixed before seeing data). Peer methods have their own radii
(``SciLTModel.class_radii``: (0, s) for final-only, (s, 0) for penultimate-only, ...), so every method's bound is
the same theorem on its own class. The margin ρ is chosen from a geometric grid fixed before seeing data (it
depends on s only) and paid for by δ/m (THEORY §4).

Every report also carries the spectral figures of the train and test confusion matrices that CAR's bound is built
on (THEORY §6; scilt_theory/car.py), next to Corollary 5.4's worst-class bound.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scilt_theory.bounds import BoundGrid, fused_model_bounds
from scilt_theory.checkpoint import CheckpointError
from scilt_theory import distributed
from scilt_theory.features import FeatureSet, extract_features_distributed
from scilt_theory.methods import get_method
from scilt_theory.rademacher import rademacher_coupled_scilt
from scilt_theory.restore import restore_run
from scilt_theory.training import resolve_device


@dataclass(frozen=True)
class BoundsSettings:
    mode: str = "diagnostic"
    delta: float = 0.05
    delta_mc: float = 0.01
    margin: float | None = None          # None: the auto grid
    margin_grid_size: int = 16
    method: str = "auto"
    n_draws: int = 1000
    coupled_subsample: int = 2000
    device: str = "auto"
    batch_size: int = 256
    seed: int = 0
    progress: bool = True
    mode_description: str = ""
    refit_steps: int = 300
    data_root: str | None = None         # replaces the stored data root (the data moved); counts still checked
    test_root: str | None = None
    weights: str | None = None           # replaces the stored weights path; its sha256 is still checked


def margin_grid(scale: float, settings: BoundsSettings) -> BoundGrid:
    """ρ grid fixed before seeing data: a single user value, or geometric between s/64 and 4s (cosine scores
    s1 + s2 have margins in [−4s, 4s], so larger ρ only adds slack)."""
    if settings.margin is not None:
        return BoundGrid(rhos=(float(settings.margin),))
    return BoundGrid.geometric(scale / 64.0, 4.0 * scale, settings.margin_grid_size)


def refit_heads(model, features: FeatureSet, fit_counts: torch.Tensor, steps: int, seed: int, *,
                tau: float = 1.0, lam: float = 1.0) -> None:
    """Certified mode: refit the heads and the fusion logit on held-out features, backbone frozen.

    Full-batch AdamW on the run's own supervised loss (THEORY §1: LA-CE(s1) + λ·LA-CE(s2) with its τ, λ),
    starting from the trained heads.
    """
    from scilt_theory.methods import supervised_loss

    torch.manual_seed(seed)
    head_params = [p for name, p in model.named_parameters() if p.requires_grad and not name.startswith("backbone")]
    if not head_params:
        raise CheckpointError("the model exposes no head parameters to refit")
    optimizer = torch.optim.AdamW(head_params, lr=1e-2, weight_decay=0.0)
    phi1 = features.phi_penult.float()
    phi2 = features.phi_final.float()
    labels = features.labels
    counts = fit_counts.float()
    model.train()
    for _ in range(steps):
        loss = supervised_loss(model.output_from_features(phi1, phi2), labels, counts, tau=tau, lam=lam)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()


@torch.no_grad()
def rescore(model, features: FeatureSet) -> FeatureSet:
    """Recompute head inputs and scores from stored features (after the heads changed)."""
    phi1, phi2 = features.phi_penult.float(), features.phi_final.float()
    out = model.output_from_features(phi1, phi2)
    return FeatureSet(phi_penult=features.phi_penult, phi_final=features.phi_final,
                      psi_penult=out.psi1.double(), psi_final=out.psi2.double(), scores=out.logits.double(),
                      labels=features.labels)


def per_class_test_error(scores: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float | None]:
    """Test error of each class, ties counted as errors (consistent with margins ≤ 0, THEORY §0)."""
    from scilt_theory.losses import margins

    wrong = (margins(scores, labels) <= 0).double()
    out: list[float | None] = []
    for c in range(num_classes):
        mask = labels == c
        out.append(float(wrong[mask].mean()) if bool(mask.any()) else None)
    return out


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def compute_bounds_report(ckpt: Path, settings: BoundsSettings) -> dict[str, Any] | None:
    """Everything bounds.json holds (schema: README.md, "bounds.json").

    Under torchrun the processes share the feature extraction (scilt_theory/distributed.py); rank 0 computes
    the rest and returns the report, the other ranks return None. With features on CUDA the Monte Carlo and
    exact ERC estimators run there too (the same sign draws as on CPU).
    """
    ctx = distributed.current()
    device = ctx.device(resolve_device(settings.device))
    record, model, data = restore_run(ckpt, device=device, data_root=settings.data_root,
                                      test_root=settings.test_root, weights=settings.weights)
    cfg = model.config
    if cfg.head != "cosine":
        raise CheckpointError("bounds are implemented for cosine heads (their radii are known before training, "
                              "THEORY §1); this checkpoint has linear heads")
    num_classes = data.num_classes
    timing: dict[str, float] = {}
    started = time.perf_counter()

    holdout = torch.as_tensor(record.get("holdout_indices", []), dtype=torch.long)
    in_holdout = torch.zeros(len(data.train_labels), dtype=torch.bool)
    in_holdout[holdout] = True
    if settings.mode == "certified":
        if holdout.numel() == 0:
            raise CheckpointError("--mode certified needs a run trained with --holdout-fraction > 0 (its backbone "
                                  "must not have seen the sample the bound is evaluated on)")
        sample = holdout
    else:
        sample = (~in_holdout).nonzero(as_tuple=True)[0]
    train_features = extract_features_distributed(model, data.train_images[sample], data.train_labels[sample],
                                      batch_size=settings.batch_size, device=device, progress=settings.progress,
                                      desc="train features")
    test_features = extract_features_distributed(model, data.test_images, data.test_labels, batch_size=settings.batch_size,
                                     device=device, progress=settings.progress, desc="test features")
    if not ctx.is_main:
        return None
    model = model.cpu()
    if settings.mode == "certified":
        fit_counts = torch.as_tensor(record.get("fit_counts", data.class_counts.tolist()))
        trained_with = record.get("train_config", {})
        refit_heads(model, train_features, fit_counts, settings.refit_steps, settings.seed,
                    tau=trained_with.get("tau", 1.0), lam=trained_with.get("lam", 1.0))
        train_features = rescore(model, train_features)
        test_features = rescore(model, test_features)
    timing["features_seconds"] = time.perf_counter() - started

    scale = float(cfg.scale)
    radius_penult, radius_final = model.class_radii()
    grid = margin_grid(scale, settings)
    started = time.perf_counter()
    result = fused_model_bounds(
        train_features.psi_penult, train_features.psi_final, train_features.scores, train_features.labels,
        num_classes=num_classes, radius_penult=radius_penult, radius_final=radius_final, norm="row", grid=grid,
        delta=settings.delta, method=settings.method, n_draws=settings.n_draws, delta_mc=settings.delta_mc, seed=settings.seed,
        class_names=list(data.class_names), many_threshold=data.config.many_threshold,
        few_threshold=data.config.few_threshold, class_counts=[int(n) for n in data.class_counts],
        device=device if device.type == "cuda" else None)
    # the coupled class of THEORY §2 is SciLT's (two heads, α free); other methods report the Lemma 5.1 sum only
    coupled = _coupled(train_features, num_classes, scale, settings, device) \
        if model.head2 is not None and cfg.fusion == "adaptive" else None
    timing["rademacher_seconds"] = time.perf_counter() - started

    fused = result.to_dict()
    fused["spectral"] = spectral_report(record, train_features, test_features, data.class_counts, num_classes)
    test_errors = per_class_test_error(test_features.scores, test_features.labels, num_classes)
    train_error = float((_margins(train_features) <= 0).double().mean())
    return _assemble(record, data, model, settings, ckpt, fused, coupled, test_errors, train_error,
                     n=train_features.n, grid=grid, radii=(radius_penult, radius_final),
                     n_train_per_class=torch.bincount(train_features.labels, minlength=num_classes).tolist(),
                     test_counts=torch.bincount(test_features.labels, minlength=num_classes).tolist(),
                     overall_test_error=_mean(test_errors), timing=timing)


def tie_aware_predictions(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """argmax of the scores, except that a tie of the true class with another one predicts that other class, so
    that predictions ≠ labels exactly when the margin is ≤ 0 (ties count as errors, THEORY §0)."""
    from scilt_theory.losses import margins

    others = scores.clone()
    others[torch.arange(len(labels)), labels] = float("-inf")
    return torch.where(margins(scores, labels) > 0, labels, others.argmax(dim=1))


def spectral_report(record: dict, train: FeatureSet, test: FeatureSet, class_counts: torch.Tensor,
                    num_classes: int) -> dict[str, Any]:
    """CAR's spectral figures (THEORY §6, PEERS.md) of the train and test confusion rates C (columns = true
    classes, diagonal zeroed), with CAR's frequency weights w of the training counts: ‖C‖₁ = the worst-class
    error exactly, ‖C‖₂, ‖C·diag(w)‖₂, √K·‖C‖₂ ≥ ‖C‖₁. For a CAR run also the final EMA of its soft confusion."""
    from scilt_theory.car import car_class_weights, confusion_rates, spectral_figures, weighted_spectral_norm
    from scilt_theory.methods import MethodConfig

    method = MethodConfig.from_dict(record.get("method_config"))
    weights = car_class_weights(class_counts.tolist(), r0=method.car.r0)
    out: dict[str, Any] = {"r0": method.car.r0, "weights": weights.tolist()}
    for name, feats in (("train", train), ("test", test)):
        rates = confusion_rates(tie_aware_predictions(feats.scores, feats.labels), feats.labels, num_classes)
        out[name] = spectral_figures(rates, weights)
    car_state = (record.get("method_state") or {}).get("car")
    ema = car_state.get("ema") if car_state else None
    out["car_ema"] = None if ema is None else {
        **spectral_figures(ema.double(), weights), "steps": int(car_state.get("steps", 0)),
        "penalty_spec": float(weighted_spectral_norm(ema.double(), weights))}
    out["note"] = ("exact facts only: ‖C‖₁ (max column sum) is the worst-class error, ‖C‖₁ ≤ √K·‖C‖₂ and "
                   "‖C·diag(w)‖₂ ≤ max(w)·‖C‖₂; CAR's own bound (spectral norm + PAC-Bayes term) was not readable "
                   "here and is not computed")
    return out


def _margins(features: FeatureSet) -> torch.Tensor:
    from scilt_theory.losses import margins

    return margins(features.scores, features.labels)


def _coupled(features: FeatureSet, num_classes: int, scale: float, settings: BoundsSettings,
             device: torch.device | None = None) -> dict | None:
    if settings.coupled_subsample == 0:
        return None
    n = features.n
    idx = torch.arange(n)
    if n > settings.coupled_subsample:
        generator = torch.Generator().manual_seed(settings.seed + 17)
        idx = torch.sort(torch.randperm(n, generator=generator)[:settings.coupled_subsample]).values
    method = "closed" if settings.method == "closed" else ("exact" if idx.numel() * num_classes <= 20 else "mc")
    if method == "closed":
        return None
    on = device if device is not None and device.type == "cuda" else "cpu"  # MC on the GPU when there is one
    res = rademacher_coupled_scilt(features.psi_penult[idx].to(on), features.psi_final[idx].to(on), num_classes,
                                   scale, method=method, n_draws=settings.n_draws, seed=settings.seed,
                                   delta_mc=settings.delta_mc)
    out = res.to_dict()
    out["n_subsample"] = int(idx.numel())
    return out


def _assemble(record, data, model, settings, ckpt, fused, coupled, test_errors, train_error, *, n, grid, radii,
              n_train_per_class, test_counts, overall_test_error, timing) -> dict[str, Any]:
    """bounds.json: the fused_model_bounds dictionary plus the empirical errors and the run's identity."""
    cfg = model.config
    method = get_method(record.get("method", "scilt"))
    report = dict(fused)
    report.update({
        "schema_version": 1, "mode": settings.mode, "mode_description": settings.mode_description,
        "checkpoint": str(ckpt), "dataset": data.name, "method": method.name,
        "label": method.name, "method_summary": method.summary, "method_notes": method.notes,
        "head": cfg.head, "heads": cfg.heads, "fusion": cfg.fusion, "scale": float(cfg.scale),
        "alpha": float(model.alpha.detach()),
        "thresholds": {"many": data.config.many_threshold, "few": data.config.few_threshold},
        "coupled": coupled, "timing": timing, "versions": record.get("versions", {}),
    })
    overall = dict(report["overall"])
    overall["test_error"] = overall_test_error  # balanced test error (mean of per-class errors)
    overall["train_error"] = train_error
    report["overall"] = overall
    for row in report["per_class"]:
        c = row["class"]
        row["test_error"] = test_errors[c]
        row["n_test"] = int(test_counts[c])
    for name, group in report["groups"].items():
        members = [c for c in range(len(test_errors)) if report["per_class"][c]["group"] == name]
        group["test_error"] = _mean([test_errors[c] for c in members])
    worst = report["worst_class"] or {}
    present = [c for c in range(len(test_errors)) if test_errors[c] is not None]
    worst_test = max(present, key=lambda c: test_errors[c])
    report["worst_class"] = {"bound": worst.get("bound"), "bound_class": worst.get("bound_class"),
                             "bound_class_name": worst.get("bound_class_name"),
                             "test_error": test_errors[worst_test], "class": worst_test,
                             "name": data.class_names[worst_test]}
    # CAR's figures beside Corollary 5.4's worst-class bound (THEORY §6): the test ‖C‖₁ is the worst test error
    report["spectral"]["corollary54_worst_class_bound"] = worst.get("bound")
    return report
