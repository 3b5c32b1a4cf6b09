"""From a checkpoint to the numbers of docs/THEORY.md: features → complexities → statements → a BoundsReport.

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

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scilt_theory import distributed
from scilt_theory.checkpoint import CheckpointError
from scilt_theory.constraints import Choice, Interval, NoneOr, Text, TupleOf, check_fields, option
from scilt_theory.feature_store import FeatureStore
from scilt_theory.features import FeatureSet, extract_features_distributed
from scilt_theory.grid import BoundGrid
from scilt_theory.methods import get_method
from scilt_theory.rademacher import independent_signs, rademacher_coupled_scilt, select_estimator
from scilt_theory.restore import restore_run
from scilt_theory.run_record import RunRecord
from scilt_theory.schema import BoundsReport, Coupled, RunInfo
from scilt_theory.statements import FusedBounds, Views, fused_model_bounds
from scilt_theory.statements.views import attach_comparisons, certificate_block, delta_budget, rank_correlations
from scilt_theory.training import resolve_device

MODES = {
    "diagnostic": "features from the model as trained. The backbone and adapters were fitted on the same sample "
                  "the bound is evaluated on, so the hypothesis class depends on the sample: the numbers are a "
                  "diagnostic of capacity and margins, not a certificate (THEORY §4, validity note).",
    "certified": "backbone and adapters were trained on one part of the training data only; the heads (and α) "
                 "are refitted on the held-out, disjoint part with the features frozen, and the bound is "
                 "evaluated there. The feature maps do not depend on that part, so Theorem 5.3 / Corollary 5.4 "
                 "hold as stated with probability ≥ 1 − δ − δ_mc (THEORY §4-5).",
}
ESTIMATORS = ("auto", "mc", "exact", "closed")


@dataclass(frozen=True)
class BoundsSettings:
    """Settings of ``python -m experiments.bounds`` (its options are generated from these fields)."""

    mode: str = option("diagnostic", "diagnostic: bound on the features as trained; certified: needs a run trained "
                       "with --holdout-fraction > 0, refits the heads on the held-out part", Choice(tuple(MODES)))
    delta: float = option(0.05, "confidence parameter δ of each statement", Interval(float, 0, 1, closed="neither"))
    delta_mc: float = option(0.01, "failure probability of all Monte Carlo certificates together",
                             Interval(float, 0, 1, closed="neither"))
    margin: float | None = option(None, "margin ρ, or auto: a geometric grid fixed before seeing the data, paid for "
                                  "by δ/m (THEORY §4)", NoneOr(Interval(float, 0, None, closed="neither"), "auto"))
    margin_grid_size: int = option(16, "number of ρ values in the auto grid", Interval(int, 1, None))
    method: str = option("auto", "Rademacher estimator: auto = exact enumeration for small classes, certified Monte "
                         "Carlo otherwise", Choice(ESTIMATORS))
    draws: int = option(1000, "Monte Carlo sign draws", Interval(int, 1, None))
    coupled_subsample: int = option(2000, "largest sample on which the coupled-class ERC is computed (a seeded "
                                    "subsample beyond; 0 = skip it)", Interval(int, 0, None))
    device: str = option("auto", "where features and complexities are computed", Choice(("auto", "cpu", "cuda")))
    batch_size: int = option(256, "feature-extraction batch size", Interval(int, 1, None))
    seed: int = option(0, "seed of the sign draws and subsamples", Interval(int, 0, None))
    refit_steps: int = option(300, "certified mode: full-batch AdamW steps of the head refit on the held-out part",
                              Interval(int, 1, None))
    data_root: str | None = option(None, "where the run's real data set lies now, when it moved (its class counts "
                                   "are still checked against run.pt)", NoneOr(Text()))
    test_root: str | None = option(None, "imagefolder runs: where the test tree lies now", NoneOr(Text()))
    weights: str | None = option(None, "where the run's pretrained weights file lies now, when it moved (its "
                                 "sha256 is still checked against run.pt)", NoneOr(Text()))
    feature_store: str | None = option(None, "folder of a content-addressed store of extracted features "
                                       "(scilt_theory/feature_store.py): the same model and images are read back "
                                       "instead of extracted again (same numbers); none = no store", NoneOr(Text()))
    statements: tuple[str, ...] = option((), "bound statements to evaluate (names registered in "
                                         "scilt_theory/statements/; none given = every default one)",
                                         TupleOf(Text(), min_len=0))
    progress: bool = option(True, "progress bars")

    def __post_init__(self) -> None:
        if isinstance(self.statements, list):
            object.__setattr__(self, "statements", tuple(self.statements))
        check_fields(self)
        if self.delta + self.delta_mc >= 1:
            raise ValueError(f"delta + delta_mc must be < 1, got {self.delta} + {self.delta_mc}")
        from scilt_theory.statements import STATEMENTS

        unknown = [s for s in self.statements if s not in STATEMENTS]
        if unknown:
            raise ValueError(f"unknown statement {unknown[0]!r}; registered: {', '.join(STATEMENTS)}")

    @property
    def mode_description(self) -> str:
        return MODES[self.mode]


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


def validity_of(mode: str, model) -> str:
    """How the feature maps relate to the bound sample (THEORY §4, validity note; statements/context.VALIDITY)."""
    if mode == "certified":
        return "certified"
    if model.config.adapter == "none":  # frozen backbone, no adapter: φ does not depend on the sample
        return "fixed-features"
    return "diagnostic"


def bound_sample_indices(record: RunRecord, data) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit, held-out) indices of the training split: the part the model was fitted on, and the held-out part.

    Runs whose hold-out kept whole groups (scitiles blocks) dropped the rest of a partly needed group from both
    parts (scilt_theory/data/holdout.py); the fit part is re-derived here so that the dropped images, which the
    model never saw, do not enter the diagnostic bound sample either.
    """
    from scilt_theory.data import holdout_parts

    held = torch.as_tensor(record.holdout_indices, dtype=torch.long)
    config = record.train_config
    parts = holdout_parts(data.train_labels, float(config.holdout_fraction), int(config.seed), data.train_groups)
    if torch.equal(torch.sort(held).values, parts.held):
        return parts.fit, parts.held
    in_holdout = torch.zeros(len(data.train_labels), dtype=torch.bool)  # a record made by another rule: trust it
    in_holdout[held] = True
    return (~in_holdout).nonzero(as_tuple=True)[0], held


def class_errors(features: FeatureSet, num_classes: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(errors, counts) per class on a feature set; ties count as errors (margin <= 0, THEORY §0)."""
    wrong = (_margins(features) <= 0).long()
    errors = torch.bincount(features.labels, weights=wrong.double(), minlength=num_classes).round().long()
    counts = torch.bincount(features.labels, minlength=num_classes)
    return tuple(int(v) for v in errors), tuple(int(v) for v in counts)


def compute_bounds_report(ckpt: Path, settings: BoundsSettings) -> BoundsReport | None:
    """Everything bounds.json holds (scilt_theory/schema.py), computed from a checkpoint.

    Under torchrun the processes share the feature extraction (scilt_theory/distributed.py); rank 0 computes
    the rest and returns the report, the other ranks return None. With features on CUDA the Monte Carlo and
    exact ERC estimators run there too (the same sign draws as on CPU).
    """
    from scilt_theory.statements.certificates import CertificateSample

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

    fit, held = bound_sample_indices(record, data)
    store = None if settings.feature_store is None or ctx.enabled else FeatureStore(settings.feature_store)
    if settings.mode == "certified" and held.numel() == 0:
        raise CheckpointError("--mode certified needs a run trained with --holdout-fraction > 0 (its backbone "
                              "must not have seen the sample the bound is evaluated on)")

    def extract(index: torch.Tensor | None, desc: str) -> FeatureSet:
        images, labels = (data.test_images, data.test_labels) if index is None else \
            (data.train_images[index], data.train_labels[index])
        return extract_features_distributed(model, images, labels, batch_size=settings.batch_size, device=device,
                                            progress=settings.progress, desc=desc, store=store)

    train_features = extract(held if settings.mode == "certified" else fit, "train features")
    held_features = train_features if settings.mode == "certified" else \
        (extract(held, "hold-out features") if held.numel() else None)
    test_features = extract(None, "test features")
    if not ctx.is_main:
        return None
    model = model.cpu()
    # the model as trained (fitted without the hold-out part): what a hold-out certificate is about
    trained_test_errors = per_class_test_error(test_features.scores, test_features.labels, num_classes)
    samples = {}
    if held_features is not None:
        errors, counts = class_errors(held_features, num_classes)
        samples["hold-out"] = CertificateSample(
            split="hold-out", errors=errors, counts=counts, same_distribution=True,
            classifier="the trained model (backbone, adapters and heads fitted without the hold-out part)")
    def heads() -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            u, v = model.decomposition()
        return u.double().numpy(), v.double().numpy()

    prior_heads = None
    if settings.mode == "certified":
        prior_heads = heads()  # fitted on S_A only: fixed before the hold-out sample (a PAC-Bayes prior centre)
        fit_counts = torch.as_tensor(record.fit_counts)
        trained_with = record.train_config
        refit_heads(model, train_features, fit_counts, settings.refit_steps, settings.seed,
                    tau=trained_with.tau, lam=trained_with.lam)
        train_features = rescore(model, train_features)
        test_features = rescore(model, test_features)
    same_distribution = bool(data.provenance.get("test_same_distribution", False))
    errors, counts = class_errors(test_features, num_classes)
    samples["test"] = CertificateSample(
        split="test", errors=errors, counts=counts, same_distribution=same_distribution,
        classifier="the bounded classifier" + (" (heads refitted on the hold-out part)"
                                               if settings.mode == "certified" else ""),
        note=str(data.provenance.get("test_distribution_note", "")))
    timing["features_seconds"] = time.perf_counter() - started

    scale = float(cfg.scale)
    radius_penult, radius_final = model.class_radii()
    started = time.perf_counter()
    bounds = fused_model_bounds(
        train_features.psi_penult, train_features.psi_final, train_features.scores, train_features.labels,
        statements=settings.statements or None, num_classes=num_classes, radius_penult=radius_penult,
        radius_final=radius_final, norm="row", grid=margin_grid(scale, settings), delta=settings.delta,
        method=settings.method, n_draws=settings.draws, delta_mc=settings.delta_mc, seed=settings.seed,
        class_names=list(data.class_names), many_threshold=data.config.many_threshold,
        few_threshold=data.config.few_threshold, class_counts=[int(n) for n in data.class_counts],
        feature_norm_bound=1.0,  # cosine heads: ψ = φ/‖φ‖
        validity=validity_of(settings.mode, model), device=device if device.type == "cuda" else None,
        certificate_samples=samples, head_weights=heads(), prior_head_weights=prior_heads, scale=scale,
        coupled_scale=scale if model.head2 is not None and cfg.fusion == "adaptive" else None,
        class_radii=(radius_penult, radius_final))  # fixed by s and the method before training
    # the coupled class of THEORY §2 is SciLT's (two heads, α free); other methods report the Lemma 5.1 sum only
    coupled = _coupled(train_features, num_classes, scale, settings, device) \
        if model.head2 is not None and cfg.fusion == "adaptive" else None
    timing["rademacher_seconds"] = time.perf_counter() - started

    test_errors = per_class_test_error(test_features.scores, test_features.labels, num_classes)
    views = bounds.views(
        test_errors=test_errors, test_counts=torch.bincount(test_features.labels, minlength=num_classes).tolist(),
        train_error=float((_margins(train_features) <= 0).double().mean()))
    records = attach_comparisons(bounds.context, bounds.records, {"bounded": test_errors,
                                                                  "trained": trained_test_errors}, same_distribution,
                                 test_counts=torch.bincount(test_features.labels, minlength=num_classes).tolist())
    bounds = FusedBounds(context=bounds.context, records=tuple(records))
    spectral = spectral_report(record, train_features, test_features, data.class_counts, num_classes)
    spectral["corollary54_worst_class_bound"] = views.worst_class.bound  # CAR's figures beside it (THEORY §6)
    return assemble_report(record, data, model, settings, ckpt, bounds, views, coupled, spectral, timing)


def tie_aware_predictions(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """argmax of the scores, except that a tie of the true class with another one predicts that other class, so
    that predictions ≠ labels exactly when the margin is ≤ 0 (ties count as errors, THEORY §0)."""
    from scilt_theory.losses import margins

    others = scores.clone()
    others[torch.arange(len(labels)), labels] = float("-inf")
    return torch.where(margins(scores, labels) > 0, labels, others.argmax(dim=1))


def spectral_report(record: RunRecord, train: FeatureSet, test: FeatureSet, class_counts: torch.Tensor,
                    num_classes: int) -> dict[str, Any]:
    """CAR's spectral figures (THEORY §6, PEERS.md) of the train and test confusion rates C (columns = true
    classes, diagonal zeroed), with CAR's frequency weights w of the training counts: ‖C‖₁ = the worst-class
    error exactly, ‖C‖₂, ‖C·diag(w)‖₂, √K·‖C‖₂ ≥ ‖C‖₁. For a CAR run also the final EMA of its soft confusion."""
    from scilt_theory.car import car_class_weights, confusion_rates, spectral_figures, weighted_spectral_norm

    method = record.method_config
    weights = car_class_weights(class_counts.tolist(), r0=method.car.r0)
    out: dict[str, Any] = {"r0": method.car.r0, "weights": weights.tolist()}
    for name, feats in (("train", train), ("test", test)):
        rates = confusion_rates(tie_aware_predictions(feats.scores, feats.labels), feats.labels, num_classes)
        out[name] = spectral_figures(rates, weights)
    car_state = record.method_state.get("car")  # CAR's own state (car.CARRegularizer.state_dict)
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
             device: torch.device | None = None) -> Coupled | None:
    if settings.coupled_subsample == 0:
        return None
    n = features.n
    idx = torch.arange(n)
    if n > settings.coupled_subsample:
        generator = torch.Generator().manual_seed(settings.seed + 17)
        idx = torch.sort(torch.randperm(n, generator=generator)[:settings.coupled_subsample]).values
    # the coupled class has sign matrices Σ ∈ {±1}^{n×K} (THEORY §2), and no closed form of its own
    method = select_estimator(settings.method, independent_signs(int(idx.numel()), num_classes, "frobenius"),
                              settings.draws)
    if method == "closed":
        return None
    on = device if device is not None and device.type == "cuda" else "cpu"  # MC on the GPU when there is one
    res = rademacher_coupled_scilt(features.psi_penult[idx].to(on), features.psi_final[idx].to(on), num_classes,
                                   scale, method=method, n_draws=settings.draws, seed=settings.seed,
                                   delta_mc=settings.delta_mc)
    # the ratio any unit-norm features give at this n and d (THEORY §2): independent Gaussians, normalised
    generator = torch.Generator().manual_seed(settings.seed + 29)
    shape = (int(idx.numel()), int(features.psi_penult.shape[1]))
    noise = [torch.nn.functional.normalize(torch.randn(shape, generator=generator, dtype=torch.float64), dim=1)
             for _ in range(2)]
    baseline = rademacher_coupled_scilt(noise[0].to(on), noise[1].to(on), num_classes, scale, method=method,
                                        n_draws=settings.draws, seed=settings.seed, delta_mc=settings.delta_mc)
    return Coupled(**res.to_dict(), n_subsample=int(idx.numel()), baseline_ratio=baseline.ratio)


def assemble_report(record: RunRecord, data, model, settings: BoundsSettings, ckpt: Path, bounds: FusedBounds,
                    views: Views, coupled: Coupled | None, spectral: dict, timing: dict) -> BoundsReport:
    """bounds.json: the statements' records and their views, with the run's identity beside them."""
    cfg = model.config
    method = get_method(record.method)
    ctx = bounds.context
    o = views.overall
    return BoundsReport(
        schema_version=2, mode=settings.mode, mode_description=settings.mode_description,
        validity=ctx.validity,
        run=RunInfo(checkpoint=str(ckpt), dataset=data.name, method=method.name, label=method.name,
                    method_summary=method.summary, method_notes=list(method.notes), head=cfg.head, heads=cfg.heads,
                    fusion=cfg.fusion, scale=float(cfg.scale), alpha=float(model.alpha.detach()),
                    versions=dict(record.versions)),
        delta=ctx.confidence.delta, delta_mc=ctx.confidence.delta_mc, n=ctx.n, num_classes=ctx.num_classes,
        thresholds={"many": data.config.many_threshold, "few": data.config.few_threshold},
        radii={"norm": ctx.norm, "penultimate": o.radius_penult, "final": o.radius_final},
        margin={"grid": list(ctx.grid.rhos), "grid_size": ctx.grid.size, "chosen": o.rho},
        rademacher=views.rademacher, coupled=coupled, statements=list(bounds.records), overall=o,
        per_class=views.per_class, groups=views.groups, worst_class=views.worst_class,
        overall_grid=views.overall_grid, confidence=ctx.confidence.to_dict(), grid=ctx.grid.to_dict(),
        settings=dict(ctx.settings), spectral=spectral,
        holdout=certificate_block(bounds.records, "holdout_certificate", ctx.certificate_samples.get("hold-out")),
        test_certificate=certificate_block(bounds.records, "testset_certificate", ctx.certificate_samples.get("test")),
        delta_budget=delta_budget(ctx, bounds.records),
        test_same_distribution=bool(data.provenance.get("test_same_distribution", False)),
        rank_correlation=rank_correlations(bounds.records), timing=timing)
