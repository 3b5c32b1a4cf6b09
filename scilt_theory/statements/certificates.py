"""Hold-out and test-set certificates as statements: binomial tail inversions (THEORY §8; Langford 2005).

A classifier fixed before a sample (the hold-out part S_B for the model trained on S_A; the test split for the
bounded classifier) makes, class by class, a Binomial(m_c, err_c) number of errors k_c (draws i.i.d. from D_c
given the labels). At total δ, split in two events of δ/2 each (proofs/holdout_certificates.md):

* class event: for every class with m_c >= 1 at once, err_c <= CP(k_c, m_c, δ/(2K₊)) — the one-sided
  Clopper–Pearson limit (:func:`scilt_theory.binomial.clopper_pearson_upper`). The balanced error (mean over the
  classes), every group's balanced error (mean over its classes), the worst-class error (max) and the prior-weighted
  error Σ_c π_c err_c (π = the bound sample's class proportions) follow from it;
* pooled event: the sample's own prior-weighted error Σ_c (m_c/m) err_c <= kl_upper(Σk, Σm, δ/2) — the Chernoff
  inversion, valid for the Poisson-binomial pooled count, where the exact inversion is not. Where the sample's own
  proportions are the target's weights (a hold-out stratified like the bound sample, a balanced test split for the
  balanced error), the smaller of the two values is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from scilt_theory.binomial import clopper_pearson_upper, information_floor, kl_upper
from scilt_theory.schema import StatementRecord
from scilt_theory.statements.base import Statement
from scilt_theory.statements.context import BoundContext
from scilt_theory.statements.targets import class_target, group_target

__all__ = ["HOLDOUT_CERTIFICATE", "TESTSET_CERTIFICATE", "CertificateSample"]


@dataclass(frozen=True)
class CertificateSample:
    """Errors, per class, of a classifier that was fixed before this sample was looked at."""

    split: str                    # "hold-out" | "test"
    errors: tuple[int, ...]       # k_c
    counts: tuple[int, ...]       # m_c
    same_distribution: bool       # drawn from D_c class by class (what the bound is about)
    classifier: str               # which heads made the errors
    note: str = ""

    def __post_init__(self) -> None:
        if len(self.errors) != len(self.counts) or any(not 0 <= k <= m for k, m in zip(self.errors, self.counts)):
            raise ValueError("a certificate sample needs 0 <= errors <= count for every class")


def _proportional(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a.sum() > 0 and b.sum() > 0 and np.allclose(a / a.sum(), b / b.sum(), rtol=0, atol=1e-12))


class BinomialCertificate(Statement):
    """The two-event binomial certificate on one certificate sample of the context."""

    family = "hold-out"
    sample: str = ""

    def applies(self, ctx: BoundContext) -> bool:
        sample = ctx.certificate_samples.get(self.sample)
        return sample is not None and sum(sample.counts) > 0

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        s = ctx.certificate_samples[self.sample]
        k, m = np.array(s.errors), np.array(s.counts)
        present = [c for c in range(ctx.num_classes) if m[c] > 0]
        d_class = delta / 2.0 / len(present)
        d_pool = delta / 2.0
        upper = {c: clopper_pearson_upper(int(k[c]), int(m[c]), d_class) for c in present}
        floor = {c: information_floor(int(m[c]), d_class) for c in present}
        pooled = kl_upper(int(k.sum()), int(m.sum()), d_pool)
        pooled_floor = information_floor(int(m.sum()), d_pool)

        def rec(target: str, bound: float | None, quantity: str, terms: dict, floor_value: float | None = None,
                reason: str | None = None) -> StatementRecord:
            r = self.record(ctx, target, bound, delta, terms, reason, quantity=quantity, floor=floor_value)
            return replace(r, certificate=s.same_distribution)  # valid wherever the sample is from D_c

        out = []
        for c in range(ctx.num_classes):
            if m[c] == 0:
                out.append(rec(class_target(c), None, "class error", {}, reason=f"no {s.split} samples of this class"))
                continue
            out.append(rec(class_target(c), upper[c], "class error",
                           {"errors": int(k[c]), "n": int(m[c]), "delta_each": d_class, "method": "clopper-pearson"},
                           floor[c]))

        def mean_of(members: list[int], quantity: str, target: str) -> StatementRecord:
            members = [c for c in members if c in upper]
            if not members:
                return rec(target, None, quantity, {}, reason=f"no {s.split} samples of these classes")
            bound, method = float(np.mean([upper[c] for c in members])), "mean of class certificates"
            fl = float(np.mean([floor[c] for c in members]))
            sub_m = m[members]
            if quantity == "balanced error" and len(members) == len(present) and np.all(sub_m == sub_m[0]) \
                    and pooled < bound:  # a balanced sample: its pooled error is the balanced error
                bound, method, fl = pooled, "kl-inverse of the pooled count", pooled_floor
            return rec(target, bound, quantity, {"errors": int(k[members].sum()), "n": int(sub_m.sum()),
                                                 "classes": members, "method": method,
                                                 "delta_each": d_pool if method.startswith("kl") else d_class}, fl)

        out.append(mean_of(present, "balanced error", "balanced"))
        for g in ctx.group_names:
            out.append(mean_of([c for c in present if ctx.class_groups[c] == g], "group balanced error",
                               group_target(g)))
        worst = max(present, key=lambda c: upper[c])
        out.append(rec("worst_class", upper[worst], "worst-class error",
                       {"class": worst, "name": ctx.class_names[worst], "errors": int(k[worst]), "n": int(m[worst]),
                        "method": "max of class certificates", "delta_each": d_class}, max(floor.values())))
        # the prior-weighted error of the bound sample's proportions π
        pi = ctx.class_counts / ctx.n
        missing = float(sum(pi[c] for c in range(ctx.num_classes) if m[c] == 0 and pi[c] > 0))
        bound = float(sum(pi[c] * upper[c] for c in present)) + missing  # a class never seen here: err_c <= 1
        fl = float(sum(pi[c] * floor[c] for c in present)) + missing
        method = "π-weighted class certificates"
        if _proportional(m.astype(float), ctx.class_counts.astype(float)) and pooled < bound:
            bound, fl, method = pooled, pooled_floor, "kl-inverse of the pooled count"
        out.append(rec("overall", bound, "prior-weighted error",
                       {"errors": int(k.sum()), "n": int(m.sum()), "method": method,
                        "delta_each": d_pool if method.startswith("kl") else d_class,
                        "weights": "class proportions of the bound sample"}, fl))
        return out


class HoldoutCertificate(BinomialCertificate):
    """THEORY §8: the test-set bound on the hold-out part, for the model trained on the rest (its heads unchanged)."""

    name = "holdout_certificate"
    theory = "THEORY §8, hold-out / test-set bound"
    family = "hold-out"
    sample = "hold-out"
    headline = 5
    label = "hold-out certificate"


class TestsetCertificate(BinomialCertificate):
    """THEORY §8: the test-set bound on the test split for the bounded classifier, when that split is drawn from the
    training distribution class by class."""

    name = "testset_certificate"
    theory = "THEORY §8, hold-out / test-set bound"
    family = "test-set"
    sample = "test"
    headline = 6
    label = "test-set certificate"

    def applies(self, ctx: BoundContext) -> bool:
        return super().applies(ctx) and ctx.certificate_samples[self.sample].same_distribution


HOLDOUT_CERTIFICATE = HoldoutCertificate()
TESTSET_CERTIFICATE = TestsetCertificate()
