"""Do the certificates hold? Repeated sample → train → certify against the EXACT population risk (issue 24).

The population. A pool of M i.i.d. draws per class of the stated law P_c (scilt_theory/data/population.py), taken
through the frozen backbone once (scilt_theory/feature_pool.py), defines the population of this experiment: D_c is
the uniform distribution over the M pool features of class c. Sampling the pool with replacement is then *exactly*
i.i.d. from D_c, and the risk of any classifier on the features is an exact average over the pool — no estimate,
no interval. (D_c is the empirical law of the pool, not P_c itself; every statement is about whatever law the sample
is i.i.d. from, so the check is exact for D_c.)

One repetition r (independent seeds):

1. draw the training sample, ``train_counts[c]`` indices per class with replacement from the class-c pool (the
   labels fixed by design, as every statement reads them), and a test sample of ``test_per_class`` per class;
2. hold out ``holdout_fraction`` of every class (scilt_theory.data.holdout_parts, seed r: the recipes' 30 %);
3. train the frozen recipe (α and the two cosine heads on the features; scilt_theory/frozen_heads.py) on the fit
   part, seed r;
4. certify that one classifier exactly as the pipeline does for a frozen run (bounds_pipeline, validity
   ``fixed-features``): every selected statement on the fit part (the uniform statements, PAC-Bayes with its
   data-free prior), the hold-out certificate on the held-out part, the test-set certificate on the test sample;
5. compare every record's bound with the exact value of the quantity it bounds (:func:`target_value`).

Controls with power (``mutant`` = True in the output): the naive estimates — the empirical value of each target on
the fit part (the training error), on the hold-out part and on the test sample — and two mutants of each binomial
certificate: evaluated at 10·δ, and with the confidence term halved ((bound + empirical value)/2). Per statement, the
target ``all`` counts a repetition as a violation when any of its targets is violated: each statement claims all
its targets at once, from one event of probability ≥ 1 − δ (− δ_mc for the Monte Carlo complexities).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scilt_theory.checkpoint import atomic_write_text
from scilt_theory.frozen_heads import BoundSettings, HeadRecipe, bound_heads, class_errors, scores_of, train_heads

__all__ = ["CERTIFICATES", "Population", "ValidityDesign", "aggregate", "passes", "run_repetition",
           "run_repetitions", "target_value", "threshold"]

#: the binomial certificates whose mutants are controls
CERTIFICATES = {"holdout_certificate": "hold-out", "testset_certificate": "test"}
#: naive estimates: the empirical value of each target on one sample
NAIVE = {"naive_training_error": "fit", "naive_holdout_error": "hold-out", "naive_test_error": "test"}
#: PAC-Bayes on the held-out part for the fitted heads, with the prior centred at those heads (fixed before the
#: held-out part: the pipeline's certified mode without the refit)
PAC_BAYES_HOLDOUT = "pac_bayes_holdout_prior"


# ---------------------------------------------------------------------------------------------- population
@dataclass(frozen=True)
class Population:
    """The uniform distribution over a pool of features, class by class (module docstring).

    phi1, phi2: (M_total, d) float32 features as the backbone gives them (what the recipe trains on); psi1, psi2: the
    cosine heads' inputs in float64 (what the bounded scorer and the exact risks use); labels (M_total,) int64.
    """

    phi1: torch.Tensor
    phi2: torch.Tensor
    psi1: np.ndarray
    psi2: np.ndarray
    labels: np.ndarray
    description: str = ""
    class_names: tuple[str, ...] = ()

    @classmethod
    def from_features(cls, phi1: torch.Tensor, phi2: torch.Tensor, labels: Any, description: str = "",
                      class_names: Sequence[str] = ()) -> Population:
        psi = []
        for phi in (phi1, phi2):
            x = phi.double().numpy()
            psi.append(x / np.linalg.norm(x, axis=1, keepdims=True))
        labels = np.asarray(labels, dtype=np.int64)
        return cls(phi1.float(), phi2.float(), psi[0], psi[1], labels, description, tuple(class_names))

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    def class_index(self) -> list[np.ndarray]:
        return [np.nonzero(self.labels == c)[0] for c in range(self.num_classes)]

    def class_risks(self, heads: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """err_c = P_{D_c}(M_f(x, c) ≤ 0), exactly: the mean over the class-c pool (ties are errors)."""
        errors, counts = class_errors(scores_of(self.psi1, self.psi2, heads), self.labels, self.num_classes)
        return errors / counts


@dataclass(frozen=True)
class ValidityDesign:
    """One repetition's sizes, recipe and statements (the experiment runs R of them with seeds 0 … R − 1)."""

    train_counts: tuple[int, ...] = (500, 281, 158, 88, 50, 28, 15, 8, 5)
    holdout_fraction: float = 0.3
    test_per_class: int = 100
    seed: int = 0                                   #: root seed: repetition r draws from rng([seed, r])
    recipe: HeadRecipe = HeadRecipe()
    bounds: BoundSettings = BoundSettings()
    pac_bayes_holdout: bool = True                  #: also PAC-Bayes on the held-out part, prior at the fitted heads

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- targets
def group_members(target: str, groups: Sequence[str]) -> list[int]:
    return [c for c, g in enumerate(groups) if g == target.split(":", 1)[1]]


def target_value(target: str, class_values: np.ndarray, pi: np.ndarray, groups: Sequence[str],
                 members: Sequence[int] | None = None) -> float | None:
    """The value of a target's quantity (schema.QUANTITIES) from per-class values (risks or empirical rates):
    ``class:c`` err_c; ``overall`` the prior-weighted Σ_c π_c err_c (π = the bound sample's class proportions);
    ``balanced`` the mean over the classes; ``group:g`` the mean over g's classes; ``worst_class`` the max.
    ``members``: the classes the record aggregates over (default: every class; here every class is present in
    every sample by design)."""
    k = len(class_values)
    every = list(range(k)) if members is None else list(members)
    if target.startswith("class:"):
        return float(class_values[int(target.split(":", 1)[1])])
    if target == "overall":
        return float(np.dot(pi, class_values))
    if target == "balanced":
        return float(np.mean(class_values[every]))
    if target.startswith("group:"):
        sel = [c for c in group_members(target, groups) if c in every]
        return float(np.mean(class_values[sel])) if sel else None
    if target == "worst_class":
        return float(np.max(class_values[every]))
    raise ValueError(f"unknown target {target!r}")


def targets_of(k: int, groups: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys(["many", "medium", "few"] + list(groups)))
    return (["overall", "balanced"] + [f"group:{g}" for g in names if g in groups] + ["worst_class"]
            + [f"class:{c}" for c in range(k)])


# ---------------------------------------------------------------------------------------------- one repetition
def _draw(rng: np.random.Generator, index: list[np.ndarray], counts: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``counts[c]`` pool indices of class c, uniform with replacement (i.i.d. from D_c), class after class."""
    idx = np.concatenate([rng.choice(index[c], size=int(n), replace=True) for c, n in enumerate(counts)])
    labels = np.repeat(np.arange(len(counts)), np.asarray(counts, dtype=np.int64))
    return idx, labels


def run_repetition(pop: Population, design: ValidityDesign, r: int,
                   transform: Callable[[str, str, float, float], float] | None = None) -> dict:
    """Repetition ``r``: sample, train, certify; every bound with the exact risk it bounds (JSON-ready dict).

    ``transform`` (tests only) maps (statement, target, bound, empirical value) to the value recorded — the hook
    through which a test halves a certificate's confidence term and checks that the experiment notices.
    """
    from scilt_theory.data import holdout_parts
    from scilt_theory.statements import STATEMENTS
    from scilt_theory.statements.certificates import CertificateSample

    k = pop.num_classes
    counts = np.asarray(design.train_counts, dtype=np.int64)
    if len(counts) != k:
        raise ValueError(f"train_counts has {len(counts)} classes, the population {k}")
    if min(int(design.holdout_fraction * n) for n in counts) < 1 and design.holdout_fraction > 0:
        raise ValueError("every class needs at least one held-out draw: raise the smallest count or the fraction")
    started = time.perf_counter()
    rng = np.random.default_rng([design.seed, r])
    index = pop.class_index()
    train_idx, train_y = _draw(rng, index, counts)
    test_idx, test_y = _draw(rng, index, [design.test_per_class] * k)
    parts = holdout_parts(torch.as_tensor(train_y), design.holdout_fraction, r)
    fit, held = parts.fit.numpy(), parts.held.numpy()
    fit_idx, fit_y = train_idx[fit], train_y[fit]
    held_idx, held_y = train_idx[held], train_y[held]

    model = train_heads(pop.phi1[fit_idx], pop.phi2[fit_idx], torch.as_tensor(fit_y), k, design.recipe, seed=r)
    heads = model.heads_float64()
    trained = time.perf_counter()
    risk = pop.class_risks(heads)

    def sample_errors(idx: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return class_errors(scores_of(pop.psi1[idx], pop.psi2[idx], heads), y, k)

    errors = {"fit": sample_errors(fit_idx, fit_y), "hold-out": sample_errors(held_idx, held_y),
              "test": sample_errors(test_idx, test_y)}
    samples = {"hold-out": CertificateSample("hold-out", tuple(int(v) for v in errors["hold-out"][0]),
                                             tuple(int(v) for v in errors["hold-out"][1]), True,
                                             "the trained heads (fitted without the hold-out part)"),
               "test": CertificateSample("test", tuple(int(v) for v in errors["test"][0]),
                                         tuple(int(v) for v in errors["test"][1]), True, "the trained heads")}
    fb = bound_heads(pop.psi1[fit_idx], pop.psi2[fit_idx], fit_y, heads, num_classes=k, scale=design.recipe.scale,
                     class_counts=counts, seed=r, certificate_samples=samples, settings=design.bounds)
    ctx = fb.context
    groups = list(ctx.class_groups)
    pi = ctx.class_counts / ctx.n
    rates = {name: e / np.maximum(m, 1) for name, (e, m) in errors.items()}
    held_pb = None
    if design.pac_bayes_holdout and len(held_y):
        held_pb = bound_heads(pop.psi1[held_idx], pop.psi2[held_idx], held_y, heads, num_classes=k,
                              scale=design.recipe.scale, class_counts=counts, seed=r, settings=design.bounds,
                              prior_heads=heads, validity="certified", statements=("pac_bayes",))
        pi_held = held_pb.context.class_counts / held_pb.context.n

    bounds: dict[str, dict[str, float]] = {}
    floors: dict[str, dict[str, float]] = {}

    def put(name: str, target: str, value: float | None, floor: float | None = None) -> None:
        if value is None:
            return
        bounds.setdefault(name, {})[target] = float(value)
        if floor is not None:
            floors.setdefault(name, {})[target] = float(floor)

    def empirical(name: str, target: str) -> float | None:
        return target_value(target, rates[CERTIFICATES.get(name, "fit")], pi, groups)

    for rec in fb.records:
        if rec.bound is None:
            continue
        value = rec.bound if transform is None else transform(rec.name, rec.target, rec.bound,
                                                              empirical(rec.name, rec.target))
        put(rec.name, rec.target, value, rec.floor)
    overrides: dict[str, dict[str, float]] = {}
    if held_pb is not None:
        for rec in held_pb.records:
            put(PAC_BAYES_HOLDOUT, rec.target, rec.bound, rec.floor)
        overrides[PAC_BAYES_HOLDOUT] = {"overall": float(np.dot(pi_held, risk))}
    targets = targets_of(k, groups)
    for name, sample in NAIVE.items():
        for t in targets:
            put(name, t, target_value(t, rates[sample], pi, groups))
    for name in CERTIFICATES:
        if name not in bounds:
            continue
        for rec in STATEMENTS[name].evaluate(ctx, min(0.999, 10 * design.bounds.delta)):
            if rec.bound is not None:
                put(f"{name}@10delta", rec.target, rec.bound)
        for t, b in bounds[name].items():
            put(f"{name}@half_confidence", t, 0.5 * (b + empirical(name, t)))
    truth = {t: target_value(t, risk, pi, groups) for t in targets}
    return {"r": r, "alpha": float(model.alpha.detach()), "class_risk": risk.tolist(), "pi": pi.tolist(),
            "groups": groups, "risk": truth, "risk_overrides": overrides, "bounds": bounds, "floors": floors,
            "errors": {name: [e.tolist(), m.tolist()] for name, (e, m) in errors.items()},
            "seconds": {"train": trained - started, "total": time.perf_counter() - started}}


def claim_design_folder(folder: str | Path, design: Any, what: str) -> Path:
    """``folder`` (created) for the results of ``design`` (its ``to_dict()`` is written to design.json); a folder
    made with another design is refused, so resumed runs never mix two designs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "design.json"
    mine = json.dumps(design.to_dict(), sort_keys=True, default=str)
    if spec.is_file() and spec.read_text() != mine:
        raise ValueError(f"{folder} holds {what} of another design; choose another folder")
    spec.write_text(mine)
    return folder


def run_repetitions(pop: Population, design: ValidityDesign, repetitions: Iterable[int], folder: str | Path | None,
                    log: Callable[[str], None] = print, **kwargs) -> list[dict]:
    """Every repetition, each written to ``folder/rep<r>.json`` as it finishes (a finished one is read back, so an
    interrupted run resumes; a folder made with another design is refused)."""
    out: list[dict] = []
    folder = None if folder is None else claim_design_folder(folder, design, "repetitions")
    for r in repetitions:
        path = None if folder is None else folder / f"rep{r:04d}.json"
        if path is not None and path.is_file():
            out.append(json.loads(path.read_text()))
            continue
        rep = run_repetition(pop, design, r, **kwargs)
        if path is not None:
            atomic_write_text(json.dumps(rep), path)
        out.append(rep)
        log(f"[validity] repetition {r}: {rep['seconds']['total']:.1f} s (train {rep['seconds']['train']:.1f} s), "
            f"alpha {rep['alpha']:.3f}, balanced risk {rep['risk']['balanced']:.4f}")
    return out


# ---------------------------------------------------------------------------------------------- aggregation
def threshold(delta: float, repetitions: int) -> float:
    """The acceptance line of issue 24: δ + 3·√(δ(1 − δ)/R)."""
    return delta + 3.0 * math.sqrt(delta * (1.0 - delta) / repetitions)


def is_control(name: str) -> bool:
    return name.startswith("naive_") or "@" in name


def aggregate(reps: Sequence[dict], delta: float) -> list[dict]:
    """Per (statement, target), and per statement for the target ``all``: violations (exact risk > bound), the rate
    with its one-sided 95 % Clopper–Pearson limits, the mean bound and the mean exact risk."""
    from scilt_theory.binomial import clopper_pearson_interval, clopper_pearson_upper

    names = list(dict.fromkeys(name for rep in reps for name in rep["bounds"]))
    rows = []
    for name in names:
        targets = list(dict.fromkeys(t for rep in reps for t in rep["bounds"].get(name, {})))
        any_violated = np.zeros(len(reps), dtype=bool)
        seen = np.zeros(len(reps), dtype=bool)
        for t in targets:
            b, risk, which = [], [], []
            for i, rep in enumerate(reps):
                truth = {**rep["risk"], **rep.get("risk_overrides", {}).get(name, {})}
                if t in rep["bounds"].get(name, {}) and truth.get(t) is not None:
                    b.append(rep["bounds"][name][t])
                    risk.append(truth[t])
                    which.append(i)
            b, risk = np.array(b), np.array(risk)
            violated = risk > b
            any_violated[which] |= violated
            seen[which] = True
            rows.append(_row(name, t, violated, b, risk, clopper_pearson_upper, clopper_pearson_interval))
        if targets:
            rows.append(_row(name, "all", any_violated[seen], None, None, clopper_pearson_upper,
                             clopper_pearson_interval))
    return rows


def _row(name: str, target: str, violated: np.ndarray, bound: np.ndarray | None, risk: np.ndarray | None,
         cp_upper: Callable, cp_interval: Callable) -> dict:
    r, v = int(violated.size), int(violated.sum())
    floors = cp_interval(v, r, 0.90) if r else (None, None)   # two-sided 90 % = one-sided 95 % at each end
    return {"name": name, "target": target, "violations": v, "repetitions": r, "rate": v / r if r else None,
            "rate_upper95": cp_upper(v, r, 0.05) if r else None, "rate_lower95": floors[0],
            "mean_bound": None if bound is None or not bound.size else float(bound.mean()),
            "mean_risk": None if risk is None or not risk.size else float(risk.mean()),
            "nonvacuous_on_average": None if bound is None or not bound.size else bool(bound.mean() < 1.0),
            "mutant": is_control(name)}


def passes(rows: Sequence[dict], delta: float, repetitions: int) -> dict:
    """The done criteria of issue 24: every valid statement's rate ≤ the line, every control's ``all`` rate above
    it, at least three valid statements non-vacuous on average (for some target). The certificates at 10·δ are
    reported but not required to break the line: they are valid certificates at level 10·δ, and their union bounds
    over classes and events keep their rate far below it."""
    line = threshold(delta, repetitions)
    valid = [r for r in rows if not r["mutant"]]
    failing = [(r["name"], r["target"], r["rate"]) for r in valid if r["rate"] is not None and r["rate"] > line]
    controls = [r for r in rows if r["mutant"] and r["target"] == "all" and "@10delta" not in r["name"]]
    weak = [(r["name"], r["rate"]) for r in controls if r["rate"] is None or r["rate"] <= line]
    nonvacuous = sorted({r["name"] for r in valid if r["nonvacuous_on_average"]})
    return {"line": line, "valid_failing": failing, "controls_without_power": weak,
            "nonvacuous_statements": nonvacuous,
            "ok": not failing and not weak and len(nonvacuous) >= 3}


def summary_table(rows: Sequence[dict], names: Sequence[str] | None = None,
                  targets: Sequence[str] = ("overall", "balanced", "group:many", "group:medium", "group:few",
                                            "worst_class", "all")) -> list[dict]:
    """The rows of the chosen statements and targets, in that order (for RESULTS.md)."""
    keep = [r for r in rows if (names is None or r["name"] in names) and r["target"] in targets]
    order = {t: i for i, t in enumerate(targets)}
    names = list(dict.fromkeys(r["name"] for r in rows)) if names is None else list(names)
    return sorted(keep, key=lambda r: (names.index(r["name"]), order[r["target"]]))


def mean_over(reps: Sequence[dict], key: Callable[[dict], float]) -> float:
    return float(np.mean([key(rep) for rep in reps]))


def coverage_document(reps: Sequence[dict], design: ValidityDesign, population: str,
                      extra: Mapping[str, Any] | None = None) -> dict:
    """docs/validity/coverage.json."""
    delta = design.bounds.delta
    rows = aggregate(reps, delta)
    verdict = passes(rows, delta, len(reps))
    return {"repetitions": len(reps), "delta": delta, "delta_mc": design.bounds.delta_mc, "population": population,
            "design": design.to_dict(), "acceptance_line": verdict["line"], "verdict": verdict,
            "statements": rows, **dict(extra or {})}


@dataclass
class Timer:
    """Wall times of the stages, for the output."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + value
