"""The δ ledger of THEORY §5: how one failure probability is shared between the sample and the MC certificates.

A certified Monte Carlo upper value of a complexity fails (is below the true value) with its own probability over
the sign draws, independently of the sample; a statement that uses such values holds with probability at least
1 - delta - delta_mc (:class:`ConfidenceSplit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scilt_theory.codec import to_jsonable
from scilt_theory.constraints import check_count, check_delta, check_finite, check_nonneg

__all__ = ["ConfidenceSplit", "confidence_split_from_parts", "split_confidence"]


@dataclass(frozen=True)
class ConfidenceSplit:
    """How the failure probability is shared between the sample and the MC certificates (THEORY §5).

    A certified MC upper value fails (is below the true ERC) w.p. <= its own ``delta`` over the sign
    draws, independently of S. With ``N = n_certificates`` certified MC values used in one report
    (penultimate and final, overall and per class), each certificate is run at
    ``delta_per_certificate = delta_mc / N``; by the union bound all of them hold w.p. >= 1 - delta_mc,
    and each statement (Theorem 5.3, or Corollary 5.4 for all classes) holds w.p. >= 1 - delta - delta_mc.
    Without MC certificates (closed form or exact) ``delta_mc = 0`` and the level is 1 - delta.
    Theorem 5.3 and Corollary 5.4 *together* hold w.p. >= 1 - 2 delta - delta_mc.
    """

    delta: float = field(metadata={"help": "failure probability over the sample, used in the confidence terms"})
    delta_mc: float = field(metadata={"help": "total failure probability of all MC certificates (0 if none)"})
    n_certificates: int = field(metadata={"help": "number of certified MC values the bounds use"})

    def __post_init__(self) -> None:
        check_delta(self.delta)
        check_count(self.n_certificates, "n_certificates", 0)
        dm = check_nonneg(self.delta_mc, "delta_mc")
        if self.n_certificates == 0 and dm != 0:
            raise ValueError("delta_mc must be 0 when no Monte Carlo certificate is used.")
        if self.n_certificates > 0 and not 0 < dm < 1:
            raise ValueError(f"delta_mc must lie strictly between 0 and 1 when certificates are used, got {dm}.")
        if self.delta + dm >= 1:
            raise ValueError(f"delta + delta_mc must be < 1, got {self.delta} + {dm}.")

    @property
    def delta_per_certificate(self) -> float | None:
        return None if self.n_certificates == 0 else self.delta_mc / self.n_certificates

    @property
    def total(self) -> float:
        """Failure probability of one statement: ``delta + delta_mc``."""
        return self.delta + self.delta_mc

    @property
    def confidence_level(self) -> float:
        """``1 - delta - delta_mc``."""
        return 1.0 - self.total

    def to_dict(self) -> dict:
        return to_jsonable({"delta": self.delta, "delta_mc": self.delta_mc, "n_certificates": self.n_certificates,
                       "delta_per_certificate": self.delta_per_certificate, "total_failure": self.total,
                       "confidence_level": self.confidence_level,
                       "joint_confidence_level": 1.0 - 2.0 * self.delta - self.delta_mc})


def split_confidence(total_delta: float, mc_fraction: float, n_certificates: int) -> ConfidenceSplit:
    """Split a total failure budget between the sample and ``n_certificates`` MC certificates (THEORY §5).

    ``delta_mc = mc_fraction * total_delta``, ``delta = total_delta - delta_mc``, each certificate at
    ``delta_mc / n_certificates``; with no certificate all of ``total_delta`` goes to the sample.
    """
    total = check_delta(total_delta, "total_delta")
    frac = check_finite(mc_fraction, "mc_fraction")
    if not 0 < frac < 1:
        raise ValueError(f"mc_fraction must lie strictly between 0 and 1, got {frac}.")
    n_cert = check_count(n_certificates, "n_certificates", 0)
    if n_cert == 0:
        return ConfidenceSplit(delta=total, delta_mc=0.0, n_certificates=0)
    return ConfidenceSplit(delta=total * (1.0 - frac), delta_mc=total * frac, n_certificates=n_cert)


def confidence_split_from_parts(delta: float, delta_mc: float, n_certificates: int) -> ConfidenceSplit:
    """The split when ``delta`` and the MC budget ``delta_mc`` are given separately (``delta_mc`` is only
    spent when at least one certificate is used)."""
    n_cert = check_count(n_certificates, "n_certificates", 0)
    dm = check_delta(delta_mc, "delta_mc")
    return ConfidenceSplit(delta=check_delta(delta), delta_mc=dm if n_cert else 0.0, n_certificates=n_cert)
