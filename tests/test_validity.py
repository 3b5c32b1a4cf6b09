"""The validity experiment (scilt_theory/validity.py, issue 24) in small: synthetic features, R = 80 repetitions.

A pool of 400 draws per class of a six-class Gaussian mixture (two unit-norm feature maps, like the cosine heads'
inputs) is the population; every repetition draws a long-tailed training sample and a test sample from it with
replacement, trains the frozen recipe's heads (5 epochs instead of 30, for time), and certifies the classifier with
the hold-out and test-set certificates, against the exact pool risk. The certificates must hold at the acceptance
line of issue 24 (δ + 3·√(δ(1 − δ)/R)), every control (naive estimates, the certificates at 10·δ and with half their
confidence term) must break it for the target ``all`` — and the same experiment must notice when the library's
binomial inversions themselves are replaced by ones with half the confidence term (monkeypatched).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from scilt_theory import validity
from scilt_theory.frozen_heads import BoundSettings, HeadRecipe
from scilt_theory.statements import certificates

K, D, M, R = 6, 8, 400, 80
CERTS = ("holdout_certificate", "testset_certificate")
DESIGN = validity.ValidityDesign(train_counts=(120, 90, 60, 40, 30, 20), holdout_fraction=0.3, test_per_class=100,
                                 seed=3, recipe=HeadRecipe(epochs=5),
                                 bounds=BoundSettings(statements=CERTS, method="closed"), pac_bayes_holdout=False)


def synthetic_population() -> validity.Population:
    rng = np.random.default_rng(0)
    means = 1.1 * rng.normal(size=(K, D))
    rot = np.linalg.qr(rng.normal(size=(D, D)))[0]
    labels = np.repeat(np.arange(K), M)
    x = means[labels] + rng.normal(size=(K * M, D))
    phi1 = torch.tensor(x, dtype=torch.float32)
    phi2 = torch.tensor(np.tanh(x @ rot), dtype=torch.float32)
    return validity.Population.from_features(phi1, phi2, labels, "uniform over a synthetic pool")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: one thread is faster, and stays fast on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def experiment() -> list[dict]:
    return validity.run_repetitions(synthetic_population(), DESIGN, range(R), None, log=lambda _: None)


@functools.lru_cache(maxsize=1)
def valid_rows() -> tuple[list[dict], list[dict]]:
    reps = experiment()
    return reps, validity.aggregate(reps, DESIGN.bounds.delta)


def by(rows: list[dict], name: str, target: str) -> dict:
    return next(r for r in rows if r["name"] == name and r["target"] == target)


def test_population_risk_is_moderate_so_that_the_check_has_power():
    reps, _ = valid_rows()
    risk = np.array([rep["class_risk"] for rep in reps])
    assert 0.03 < risk.mean() < 0.5
    assert (risk > 0).mean() > 0.9


def assert_certificates_hold(rows: list[dict]) -> None:
    """Every target of both certificates, and the target ``all``, at or below the acceptance line."""
    line = validity.threshold(DESIGN.bounds.delta, R)
    for name in CERTS:
        for row in (r for r in rows if r["name"] == name):
            assert row["rate"] <= line, row


def test_certificates_hold_and_controls_break_the_line():
    reps, rows = valid_rows()
    assert_certificates_hold(rows)
    line = validity.threshold(DESIGN.bounds.delta, R)
    for name in CERTS:
        assert by(rows, name, "overall")["mean_bound"] < 1.0
    for name in ("naive_holdout_error", "naive_test_error", "naive_training_error",
                 "testset_certificate@half_confidence", "holdout_certificate@half_confidence"):
        assert by(rows, name, "all")["rate"] > line, (name, by(rows, name, "all"))
    verdict = validity.passes([r for r in rows if r["name"] in CERTS or r["mutant"]], DESIGN.bounds.delta, R)
    assert not verdict["valid_failing"] and not verdict["controls_without_power"]


def test_halved_confidence_in_the_library_is_caught(monkeypatch):
    """The library's binomial inversions replaced by ones with half the confidence term: the check above fails."""
    cp, kl = certificates.clopper_pearson_upper, certificates.kl_upper

    def halved(fn):
        return lambda k, n, delta: k / n + 0.5 * (fn(k, n, delta) - k / n)

    monkeypatch.setattr(certificates, "clopper_pearson_upper", halved(cp))
    monkeypatch.setattr(certificates, "kl_upper", halved(kl))
    rows = validity.aggregate(experiment(), DESIGN.bounds.delta)
    with pytest.raises(AssertionError):
        assert_certificates_hold(rows)
    verdict = validity.passes([r for r in rows if r["name"] in CERTS], DESIGN.bounds.delta, R)
    assert ("testset_certificate", "all") in {(name, target) for name, target, _ in verdict["valid_failing"]}


def test_target_values():
    risk = np.array([0.1, 0.2, 0.4])
    pi = np.array([0.5, 0.3, 0.2])
    groups = ["many", "medium", "medium"]
    assert validity.target_value("overall", risk, pi, groups) == pytest.approx(0.05 + 0.06 + 0.08)
    assert validity.target_value("balanced", risk, pi, groups) == pytest.approx(0.7 / 3)
    assert validity.target_value("group:medium", risk, pi, groups) == pytest.approx(0.3)
    assert validity.target_value("worst_class", risk, pi, groups) == pytest.approx(0.4)
    assert validity.target_value("class:1", risk, pi, groups) == pytest.approx(0.2)
    assert validity.threshold(0.05, 200) == pytest.approx(0.05 + 3 * np.sqrt(0.05 * 0.95 / 200))
