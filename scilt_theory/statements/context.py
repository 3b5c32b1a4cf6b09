"""The quantities every bound statement shares, validated once: :class:`BoundContext`.

``build_context`` checks the inputs (features, scores, labels, radii, grid, δ), plans the estimator of every
complexity (scilt_theory.rademacher.select_estimator), splits δ_mc among the Monte Carlo certificates of that plan
(THEORY §5), and hands the plan to :class:`~scilt_theory.statements.complexities.Complexities`, which estimates each
unit-radius complexity R̂ᵛ(W(1)) (THEORY §1, §5) when a statement first reads it. The statements only read it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from scilt_theory.bounds import check_norm as _check_norm
from scilt_theory.confidence import ConfidenceSplit, confidence_split_from_parts
from scilt_theory.constraints import check_count as _check_count
from scilt_theory.constraints import check_delta as _check_delta
from scilt_theory.constraints import check_matrix as _check_features
from scilt_theory.constraints import check_nonneg as _check_nonneg
from scilt_theory.erc import ErcSummary
from scilt_theory.grid import BoundGrid
from scilt_theory.losses import margins as _margins
from scilt_theory.metrics import resolve_groups as _resolve_groups
from scilt_theory.rademacher import LIMITS, METHODS, independent_signs, select_estimator
from scilt_theory.statements.complexities import Complexities
from scilt_theory.statements.inputs import Estimation, Hypothesis, Sample

__all__ = ["VALIDITY", "BoundContext", "build_context", "pre_data_radii"]

#: How the feature maps relate to the bound sample (THEORY §4, validity note).
VALIDITY = {
    "diagnostic": "the backbone / adapters were fitted on the bound sample: a diagnostic, not a certificate",
    "certified": "the feature maps were fitted on a disjoint part of the data (certified mode): a certificate",
    "fixed-features": "the backbone is frozen without adapters, so the feature maps do not depend on the sample: "
                      "a certificate",
}


@dataclass(frozen=True)
class BoundContext:
    """Everything the statements share (THEORY §1, §4, §5), for one sample S of the fused model's features.

    The unit complexities are *upper* values (closed form, exact, or certified Monte Carlo); every certificate
    runs at ``confidence.delta_per_certificate``, so all of them hold together w.p. >= 1 - delta_mc.
    """

    margins: np.ndarray = field(metadata={"help": "M_f(x_i, y_i) of the trained scorer on S"})
    labels: np.ndarray = field(metadata={"help": "y_i, int64"})
    num_classes: int = field(metadata={"help": "K"})
    class_names: tuple[str, ...] = field(metadata={"help": "names of the K classes"})
    class_groups: tuple[str, ...] = field(metadata={"help": "group of every class (many / medium / few, or given)"})
    group_names: tuple[str, ...] = field(metadata={"help": "the groups, in report order"})
    grid: BoundGrid = field(metadata={"help": "the grid fixed before the data"})
    radius_penult: float = field(metadata={"help": "B_{N-1} (or the trained norm a grid radius must cover)"})
    radius_final: float = field(metadata={"help": "B_N (or the trained norm a grid radius must cover)"})
    norm: str = field(metadata={"help": "row | frobenius"})
    delta: float = field(metadata={"help": "δ of each statement"})
    confidence: ConfidenceSplit = field(metadata={"help": "δ / δ_mc accounting of the MC certificates"})
    complexities: Complexities | None = field(repr=False, metadata={
        "help": "the unit complexities of the plan, each computed when first read (statements/complexities.py)"})
    validity: str = field(default="diagnostic", metadata={"help": "a key of VALIDITY"})
    class_radii: tuple[float, float] = field(default=(0.0, 0.0), metadata={
        "help": "(B₁, B₂) of the class fixed before the data (the method and s), never a trained norm: the top of the "
                "data-dependent radii grid (statements/radii.py)"})
    feature_norm_bound: float | None = field(default=None, metadata={
        "help": "r with ||ψ(x)|| <= r for every x (cosine heads: 1), None when not known"})
    settings: Mapping[str, Any] = field(default_factory=dict, metadata={
        "help": "the estimator choices, for bounds.json"})
    psi_penult: np.ndarray | None = field(default=None, repr=False, metadata={"help": "ψ₁ on S (n, d)"})
    psi_final: np.ndarray | None = field(default=None, repr=False, metadata={"help": "ψ₂ on S (n, d)"})
    max_feature_norms: tuple[float, float] = field(default=(1.0, 1.0), metadata={
        "help": "max_i ||ψ₁(x_i)||, max_i ||ψ₂(x_i)|| on S: every margin on S is <= 2(B₁ r₁ + B₂ r₂)"})
    certificate_samples: Mapping[str, Any] = field(default_factory=dict, metadata={
        "help": "name -> CertificateSample (errors of a classifier fixed before that sample, per class)"})
    head_weights: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, metadata={
        "help": "(U, V), (K, d) each: the bounded scorer is ψ₁Uᵀ + ψ₂Vᵀ (THEORY §1 decomposition)"})
    prior_head_weights: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, metadata={
        "help": "(U₀, V₀) fixed before S (certified mode: the heads trained on S_A), a PAC-Bayes prior centre"})
    scale: float | None = field(default=None, metadata={"help": "cosine scale s of the model (None if not known)"})
    coupled_scale: float | None = field(default=None, metadata={
        "help": "s of the coupled SciLT class H_s the scorer lies in (None: not a SciLT-form model)"})

    @property
    def unit_penult(self) -> ErcSummary:
        """R̂ᵛ_S(W(1)) on ψ₁."""
        return self.complexities.overall()[0]

    @property
    def unit_final(self) -> ErcSummary:
        """R̂ᵛ_S(W(1)) on ψ₂."""
        return self.complexities.overall()[1]

    @property
    def class_unit_penult(self) -> Sequence[ErcSummary | None]:
        """R̂ᵛ_{S_c}(W(1)) on ψ₁ per class (None: no samples of c in S)."""
        return self.complexities.per_class(0)

    @property
    def class_unit_final(self) -> Sequence[ErcSummary | None]:
        """R̂ᵛ_{S_c}(W(1)) on ψ₂ per class (None: no samples of c in S)."""
        return self.complexities.per_class(1)

    @property
    def weighted_unit(self) -> Mapping[str, tuple[ErcSummary, ErcSummary]]:
        """target -> class-weighted unit complexities (ψ₁, ψ₂) of the weighted margin form (with "weighted" needed)."""
        return self.complexities.weighted_view()

    @property
    def coupled_unit(self) -> Mapping[str, ErcSummary]:
        """target (overall | class:<c>) -> R̂ᵛ of the coupled class H_s on that very sample (with "coupled" needed)."""
        return self.complexities.coupled_view()

    def max_margin(self, radius_penult: float, radius_final: float) -> float:
        """The largest margin any scorer Uψ₁ + Vψ₂ with row norms <= (B₁, B₂) can have on S: 2(B₁ r₁ + B₂ r₂)."""
        return 2.0 * (radius_penult * self.max_feature_norms[0] + radius_final * self.max_feature_norms[1])

    @property
    def present_classes(self) -> list[int]:
        """Classes with n_c >= 1 in S."""
        return [c for c in range(self.num_classes) if self.class_counts[c] > 0]

    def group_members(self, group: str) -> list[int]:
        """Classes of ``group`` with n_c >= 1 in S."""
        return [c for c in self.present_classes if self.class_groups[c] == group]

    def weighted_targets(self) -> dict[str, np.ndarray]:
        """Class-weighted targets and their sample weights w_i (the weighted margin form, THEORY §8).

        balanced: w_i = 1 / (K₊ n_{y_i}); group:g: w_i = 1 / (|g₊| n_{y_i}) on the rows of g's classes, 0 elsewhere.
        """
        counts = self.class_counts
        out: dict[str, np.ndarray] = {}
        for target, members in [("balanced", self.present_classes)] + \
                [(f"group:{g}", self.group_members(g)) for g in self.group_names]:
            if not members:
                continue
            w = np.zeros(self.n)
            for c in members:
                rows = self.labels == c
                w[rows] = 1.0 / (len(members) * counts[c])
            out[target] = w
        return out

    def class_sq_weights(self, w: np.ndarray) -> np.ndarray:
        """a_c = Σ_{i: y_i = c} w_i² for every class (the class-wise contraction's bounded-features form)."""
        return np.bincount(self.labels, weights=np.asarray(w, dtype=np.float64) ** 2, minlength=self.num_classes)

    def classwise_label_unit(self, w: np.ndarray) -> tuple[float, float]:
        """Unit-radius label parts of the class-wise contraction for sample weights w (THEORY §8; row norm):
        Σ_c E‖Σ_{i∈S_c} σ_i w_i ψ(x_i)‖ = Σ_c W_c · R̂ᵛ_{S_c}(W_row(1)) / K with W_c = Σ_{i∈S_c} w_i (w is constant
        on each class), the per-class upper values of both feature maps."""
        if self.norm != "row":
            raise ValueError("the class-wise contraction is implemented for the row norm only.")
        w = np.asarray(w, dtype=np.float64)
        mass = np.bincount(self.labels, weights=w, minlength=self.num_classes)
        parts = [0.0, 0.0]
        for c in range(self.num_classes):
            if mass[c] <= 0:
                continue
            rows = w[self.labels == c]
            if not np.allclose(rows, rows[0]):
                raise ValueError("class-wise label parts need weights that are constant on each class.")
            for j, units in enumerate((self.class_unit_penult, self.class_unit_final)):
                parts[j] += float(mass[c]) * units[c].upper / self.num_classes
        return parts[0], parts[1]

    @property
    def n(self) -> int:
        return int(self.margins.shape[0])

    @property
    def class_counts(self) -> np.ndarray:
        """n_c of every class in S."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def class_margins(self, c: int) -> np.ndarray:
        return self.margins[self.labels == c]


def pre_data_radii(grid: BoundGrid, radius_penult: float, radius_final: float) -> tuple[float, float]:
    """The class radii when none are given: per radius the largest one the grid (fixed before the data) declares, or
    the given radius where the grid declares none (then it is the class radius the statements use as it is)."""
    if grid.radii_pairs is not None:
        return max(p[0] for p in grid.radii_pairs), max(p[1] for p in grid.radii_pairs)
    return (max(grid.radii_penult) if grid.radii_penult else radius_penult,
            max(grid.radii_final) if grid.radii_final else radius_final)


def _check_heads(heads: Any, k: int, psi1: np.ndarray, psi2: np.ndarray, scores: np.ndarray, *,
                 check_scores: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """(U, V) as float64 (K, d) arrays; with ``check_scores`` they must reproduce the scores (ψ₁Uᵀ + ψ₂Vᵀ)."""
    if heads is None:
        return None
    u, v = (_check_features(h, name, shape="(K, d)") for h, name in zip(heads, ("U", "V")))
    if u.shape != (k, psi1.shape[1]) or v.shape != (k, psi2.shape[1]):
        raise ValueError(f"head weights must be (K, d) = ({k}, {psi1.shape[1]}), got {u.shape} and {v.shape}.")
    if check_scores:
        recomputed = psi1 @ u.T + psi2 @ v.T
        tol = 1e-4 * max(1.0, float(np.abs(scores).max()))
        if float(np.abs(recomputed - scores).max()) > tol:
            raise ValueError("the head weights do not reproduce the scores (ψ₁Uᵀ + ψ₂Vᵀ differs from them).")
    return u, v


def build_context(sample: Sample, hypothesis: Hypothesis, estimation: Estimation, *,
                  needs: frozenset[str] = frozenset(), certificate_samples: Mapping[str, Any] | None = None
                  ) -> BoundContext:
    """Validate the typed inputs (statements/inputs.py) and plan the shared quantities (THEORY §1, §4, §5).

    ``scores = U psi_1 + V psi_2`` is assumed to lie in ``F_{N-1} + F_N`` with the given radii (the caller
    checks the trained weights): for cosine heads ``radius_penult = s (1 + alpha_max) = 2s`` and
    ``radius_final = s`` with the row norm over K outputs (THEORY §1); for linear heads put the radii in
    ``grid`` and pass the trained weights' norms as ``radius_*`` (only covering grid points count).

    ``class_radii`` = (B₁, B₂) fixed before the data (by the method and s: cosine heads (2s, s)), the only radii the
    data-dependent radii grid is built from (THEORY §8): a trained norm passed as ``radius_*`` never moves it. Not
    given: per radius, the largest radius the ``grid`` declares for it, or ``radius_*`` where the grid declares none
    (there ``radius_*`` is the class radius every statement uses).

    Unit-radius ERCs ``R_hat^v_S(W(1))`` of both feature maps on S and on every S_c are estimated by ``method``
    (:func:`scilt_theory.rademacher.select_estimator`: "auto" = exact enumeration up to
    ``LIMITS.auto_exact_signs`` independent signs -- the tail classes --, certified MC otherwise, closed form when
    ``n_draws == 0``), with the same ``seed`` for both feature maps, so that the MC sum is Lemma 5.1's sum on the
    same draws. With N certified MC values, each certificate runs at ``delta_mc/N`` (THEORY §5).

    ``class_counts`` (the full training counts) only decides the Many/Medium/Few groups; ``n_c`` of the bounds is
    always counted in ``labels``. ``device`` (e.g. "cuda"): where the MC and exact estimators run (the same sign
    draws on every device). ``needs`` names the extra shared quantities the selected statements read ("weighted":
    the class-weighted complexities of the weighted margin form); their MC certificates share δ_mc with the others.
    ``certificate_samples`` are handed to the hold-out / test-set statements as they are. ``head_weights`` (U, V)
    of the scorer, ``prior_head_weights`` (U₀, V₀) fixed before S and the cosine ``scale`` are read by statements
    that use the trained weights themselves (data-dependent radii, PAC-Bayes); they are checked against the scores.
    ``coupled_scale`` = s when the scorer lies in the coupled SciLT class H_s (two cosine heads, adaptive α): with
    "coupled" in ``needs`` its complexity is computed on S and on every S_c (THEORY §8).
    """
    for given, typed in ((sample, Sample), (hypothesis, Hypothesis), (estimation, Estimation)):
        if not isinstance(given, typed):
            raise ValueError(f"build_context needs a {typed.__name__}, got {type(given).__name__}.")
    psi_penult, psi_final, scores, labels = sample.psi_penult, sample.psi_final, sample.scores, sample.labels
    num_classes, class_names, class_groups = sample.num_classes, sample.class_names, sample.class_groups
    class_counts, many_threshold, few_threshold = sample.class_counts, sample.many_threshold, sample.few_threshold
    radius_penult, radius_final, norm = hypothesis.radius_penult, hypothesis.radius_final, hypothesis.norm
    class_radii, feature_norm_bound = hypothesis.class_radii, hypothesis.feature_norm_bound
    head_weights, prior_head_weights = hypothesis.head_weights, hypothesis.prior_head_weights
    scale, coupled_scale = hypothesis.scale, hypothesis.coupled_scale
    grid, delta, method, n_draws = estimation.grid, estimation.delta, estimation.method, estimation.n_draws
    delta_mc, seed, device, validity = estimation.delta_mc, estimation.seed, estimation.device, estimation.validity
    k = _check_count(num_classes, "num_classes", 2)
    delta = _check_delta(delta)
    dm = _check_delta(delta_mc, "delta_mc")
    if delta + dm >= 1:
        raise ValueError(f"delta + delta_mc must be < 1, got {delta} + {dm}.")
    _check_norm(norm)
    n_draws = _check_count(n_draws, "n_draws", 0)
    seed = _check_count(seed, "seed", 0)
    b1, b2 = _check_nonneg(radius_penult, "radius_penult"), _check_nonneg(radius_final, "radius_final")
    if not isinstance(grid, BoundGrid):
        raise ValueError(f"grid must be a BoundGrid, got {type(grid).__name__}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if method == "mc" and n_draws == 0:
        raise ValueError("method 'mc' needs n_draws >= 1.")
    if validity not in VALIDITY:
        raise ValueError(f"validity must be one of {tuple(VALIDITY)}, got {validity!r}.")
    scores_np = _check_features(scores, "scores", shape="(n, K)")
    n = scores_np.shape[0]
    if n == 0:
        raise ValueError("the sample is empty (n = 0): no bound can be computed.")
    if scores_np.shape[1] != k:
        raise ValueError(f"scores have {scores_np.shape[1]} columns but num_classes is {k}.")
    psi1 = _check_features(psi_penult, "psi_penult", n)
    psi2 = _check_features(psi_final, "psi_final", n)
    y = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must be 1-D with one entry per example ({n}), got shape {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}.")
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"labels must lie in [0, {k - 1}], found values in [{y.min()}, {y.max()}].")
    y = y.astype(np.int64)
    if feature_norm_bound is not None:
        r = _check_nonneg(feature_norm_bound, "feature_norm_bound")
        worst_norm = max(float(np.linalg.norm(psi1, axis=1).max()), float(np.linalg.norm(psi2, axis=1).max()))
        if worst_norm > r * (1 + 1e-6):
            raise ValueError(f"a feature has norm {worst_norm:.6g} above feature_norm_bound = {r:g}.")
    # fail early (before any estimator runs) when no grid point covers the weights
    if not grid.covering_points(b1, b2):
        raise ValueError(
            f"no grid point covers the trained weights' norms (penultimate {b1:g}, final {b2:g}); the radii "
            "grid must be enlarged before seeing the data.")
    pre_data = pre_data_radii(grid, b1, b2) if class_radii is None else \
        tuple(_check_nonneg(b, "class_radii") for b in class_radii)
    if len(pre_data) != 2:
        raise ValueError(f"class_radii must be a pair (B₁, B₂), got {class_radii!r}.")
    names = tuple(str(c) for c in range(k)) if class_names is None else tuple(str(s) for s in class_names)
    if len(names) != k:
        raise ValueError(f"class_names has {len(names)} entries for {k} classes.")

    n_c = np.bincount(y, minlength=k)
    groups = tuple(_resolve_groups(k, n_c, class_groups, class_counts, many_threshold, few_threshold))
    group_names = tuple(dict.fromkeys(["many", "medium", "few"] + list(groups))) if class_groups is None \
        else tuple(dict.fromkeys(groups))

    def estimator(rows: int) -> str:
        return select_estimator(method, independent_signs(rows, k, norm), n_draws)

    overall_method = estimator(n)
    class_methods = {c: estimator(int(n_c[c])) for c in range(k) if n_c[c] > 0}
    base = BoundContext(margins=np.asarray(_margins(scores_np, y), dtype=np.float64), labels=y, num_classes=k,
                        class_names=names, class_groups=groups, group_names=group_names, grid=grid,
                        radius_penult=b1, radius_final=b2, class_radii=pre_data, norm=norm, delta=delta,
                        confidence=confidence_split_from_parts(delta, dm, 0), complexities=None)
    weighted = base.weighted_targets() if "weighted" in needs else {}
    weighted_methods = {t: estimator(int((w > 0).sum())) for t, w in weighted.items()}
    coupled_rows: dict[str, np.ndarray] = {}
    if "coupled" in needs and coupled_scale is not None:
        coupled_rows["overall"] = np.ones(n, dtype=bool)
        coupled_rows.update({f"class:{c}": y == c for c in range(k) if n_c[c] > 0})
    # the coupled class has sign matrices Σ ∈ {±1}^{n×K} (THEORY §2) and no closed form of its own: closed → MC
    coupled_methods = {t: {"closed": "mc"}.get(m, m) for t, m in
                       ((t, select_estimator(method, independent_signs(int(r.sum()), k, "frobenius"), max(n_draws, 1)))
                        for t, r in coupled_rows.items())}
    # every MC estimate used is one certificate: 2 overall (penultimate, final) + 2 per class using MC (+ 2 per
    # class-weighted target using MC when a statement needs those)
    n_cert = 2 * (overall_method == "mc") + 2 * sum(mth == "mc" for mth in class_methods.values()) \
        + 2 * sum(mth == "mc" for mth in weighted_methods.values()) \
        + sum(mth == "mc" for mth in coupled_methods.values())
    split = confidence_split_from_parts(delta, dm, n_cert)
    d_cert = split.delta_per_certificate

    complexities = Complexities(psi1, psi2, y, k, norm, n_draws, seed, d_cert, device, overall_method=overall_method,
                                class_methods=class_methods, weighted=weighted, weighted_methods=weighted_methods,
                                coupled_rows=coupled_rows, coupled_methods=coupled_methods,
                                coupled_scale=None if coupled_scale is None else float(coupled_scale))

    settings = {
        "method": method, "overall_method": overall_method,
        "class_methods": {str(c): mth for c, mth in class_methods.items()},
        **({"weighted_methods": weighted_methods} if weighted_methods else {}),
        **({"coupled_methods": coupled_methods} if coupled_methods else {}),
        "norm": norm, "num_outputs": k, "n_draws": n_draws, "seed": seed,
        "auto_exact_signs": LIMITS.auto_exact_signs, "max_exact_signs": LIMITS.max_exact_signs,
        "radius_penult": b1, "radius_final": b2, "radii_from_grid": {
            "penultimate": grid.radii_penult is not None, "final": grid.radii_final is not None},
        "thresholds": {"many": many_threshold, "few": few_threshold},
        "delta": delta, "delta_mc_budget": dm, "feature_norm_bound": feature_norm_bound,
        "mc_accounting": ("each of the n_certificates certified MC values is run at delta_mc / n_certificates; "
                          "each statement holds w.p. >= 1 - delta - delta_mc (union bound)"),
    }
    norms = (float(np.linalg.norm(psi1, axis=1).max()), float(np.linalg.norm(psi2, axis=1).max()))
    weights = _check_heads(head_weights, k, psi1, psi2, scores_np, check_scores=True)
    prior = _check_heads(prior_head_weights, k, psi1, psi2, scores_np, check_scores=False)
    return replace(base, confidence=split, complexities=complexities, validity=validity,
                   feature_norm_bound=feature_norm_bound, settings=settings, psi_penult=psi1, psi_final=psi2,
                   max_feature_norms=norms, certificate_samples=dict(certificate_samples or {}), head_weights=weights,
                   prior_head_weights=prior, scale=None if scale is None else float(scale),
                   coupled_scale=None if coupled_scale is None else float(coupled_scale))
