"""Mutation tests: do the checks of the constants have power?

Each mutant changes one constant of THEORY §3-§5 in the library, in-process, with pytest's monkeypatch, under
every name the code (and the checks) call it by:

(a) ``complexity_half``       the complexity term of every margin bound / 2 (``bounds._margin_bound``, behind
                              Theorem 5.3, Corollary 5.4 and their grid / all-classes forms;
                              ``weighted_margin_bound``; ``theorem53_bound_bounded_features``; and
                              ``coupled_margin_bound`` where it exists);
(b) ``confidence_half``       the confidence term / 2 (``confidence_term``, ``weighted_confidence_term``, and the
                              bounded-features form, whose confidence term is computed inline);
(c) ``contraction_1_over_rho`` ``contraction_factor(rho) = 1/rho`` instead of ``2/rho``;
(d) ``mc_deviation_half``     the McDiarmid deviation of the MC certificate / 2 (``rademacher.mcdiarmid_deviation``,
                              the one step every certificate takes: linear, finite and coupled classes);
(e) ``union_dropped``         ``num_classes -> 1`` in the confidence term (Corollary 5.4's union over K classes;
                              also in the bounded-features form);
(f) ``classwise_contraction_half`` ``classwise_contraction_factor(rho) = 1/(2 rho)`` instead of ``1/rho`` (the
                              class-wise contraction of THEORY §8, behind every ``*_classwise*`` statement).

For each mutant the curated list of checks below (plain functions that raise AssertionError: the new tests of
tests/test_tight_constants.py and fixture-free tests of tests/test_bounds.py and tests/test_rademacher.py) is
run in-process; at least one must fail, and the named checks that are expected to catch it must all fail.
Without a mutant every check passes. The test prints, for each mutant, which checks caught it and by how much.

(b) cannot be caught by a tight case: the confidence term is ~5x larger than needed in the worst exact case
found (tests/test_tight_constants.py::test_lemma52c_confidence_term_suffices_and_its_slack), so it is caught
only by the checks that re-derive it from McDiarmid's inequality (and by the hand values).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from collections.abc import Callable

import pytest
import test_bounds as tb
import test_classwise as tcw
import test_rademacher as tr
import test_tight_constants as tc

from scilt_theory import bounds, rademacher

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

# -------------------------------------------------------------------------------------------------- the checks

POWER = {   # tight cases: a wrong constant makes a true inequality false
    "tight:contraction_attained": tc.test_lemma52b_ramp_of_margin_contraction_is_attained_exactly,
    "tight:theorem53_complexity": tc.test_theorem53_complexity_term_is_necessary_exact_failure_probability,
    "tight:theorem53_grid_entry_point": tc.test_theorem53_grid_entry_point_on_the_switch_class,
    "tight:corollary54_complexity": tc.test_corollary54_complexity_term_is_necessary_every_class,
    "tight:weighted_complexity": tc.test_weighted_margin_bound_complexity_term_is_necessary_balanced_error,
    "tight:lemma52c_complexity": tc.test_lemma52c_complexity_term_is_necessary_all_functions_class,
    "tight:lemma52c_confidence_slack": tc.test_lemma52c_confidence_term_suffices_and_its_slack,
    "tight:mc_exact_coverage": tc.test_mc_certificate_exact_coverage_on_the_widest_per_draw_law,
    "tight:mc_seeded_repetitions": tc.test_mc_certificate_coverage_in_seeded_repetitions_of_the_library_stream,
    "tight:corollary54_union_large_k": tc.test_corollary54_union_over_classes_is_needed_at_large_k,
    "tight:switch_class_per_point": tc.test_margin_switch_class_complexity_decomposes_per_point,
    "tight:classwise_attained": tcw.test_lemma_is_attained_on_one_class,
}
DERIVATION = {   # the constant recomputed from the proof's steps
    "derived:lemma52b_constants": tc.test_lemma52b_constants_from_the_proof_steps,
    "derived:lemma52c_confidence": tc.test_lemma52c_confidence_term_from_mcdiarmid,
    "derived:grid_and_class_unions": tc.test_grid_and_class_unions_from_the_proof,
    "derived:weighted_confidence": tc.test_weighted_confidence_from_mcdiarmid_with_differences_w,
    "derived:margin_bound_complexity": tc.test_margin_bound_complexity_from_the_proof_steps,
    "derived:bounded_features": tc.test_bounded_features_form_from_the_proof_steps,
    "derived:mc_deviation": tc.test_mc_deviation_from_bounded_differences,
    "derived:classwise_factor": tcw.test_classwise_factor_is_one_over_rho_and_half_of_lemma_52b,
}
EXISTING = {   # fixture-free tests that were there before (hand values, random cases, coverage rates)
    "test_bounds::test_lemma52b_constants": tb.test_lemma52b_constants,
    "test_bounds::test_lemma52b_contraction_holds_on_random_finite_class_by_enumeration": lambda: [
        tb.test_lemma52b_contraction_holds_on_random_finite_class_by_enumeration(seed) for seed in range(4)],
    "test_bounds::test_lemma52c_uniform_deviation_hand_value": tb.test_lemma52c_uniform_deviation_hand_value,
    "test_bounds::test_lemma52c_confidence_term_hand_values": tb.test_lemma52c_confidence_term_hand_values,
    "test_bounds::test_theorem53_hand_value": tb.test_theorem53_hand_value,
    "test_bounds::test_theorem53_bounded_features_hand_value_and_tighter_confidence":
        tb.test_theorem53_bounded_features_hand_value_and_tighter_confidence,
    "test_bounds::test_corollary54_class_bound_hand_value": tb.test_corollary54_class_bound_hand_value,
    "test_bounds::test_corollary54_union_over_classes_costs_ln_k": tb.test_corollary54_union_over_classes_costs_ln_k,
    "test_bounds::test_grid_costs_ln_m_in_the_confidence_term": tb.test_grid_costs_ln_m_in_the_confidence_term,
    "test_bounds::test_weighted_confidence_term_hand_value": tb.test_weighted_confidence_term_hand_value,
    "test_bounds::test_fused_overall_equals_theorem53_recomputed_by_hand":
        tb.test_fused_overall_equals_theorem53_recomputed_by_hand,
    "test_rademacher::test_mc_certificate_formula": tr.test_mc_certificate_formula,
    "test_rademacher::test_mc_certificate_covers_exact": lambda: [
        tr.test_mc_certificate_covers_exact(*case) for case in tr.MC_CASES],
    "test_rademacher::test_mc_certificate_coverage_rate_scalar_class":
        tr.test_mc_certificate_coverage_rate_scalar_class,
    "test_classwise::test_theorem53_classwise_by_hand": tcw.test_theorem53_classwise_by_hand,
    "test_classwise::test_corollary54_classwise_halves_every_class_complexity":
        tcw.test_corollary54_classwise_halves_every_class_complexity,
    "test_classwise::test_bounded_data_radii_classwise_forms_by_hand":
        tcw.test_bounded_data_radii_classwise_forms_by_hand,
}
CHECKS: dict[str, Callable[[], object]] = {**POWER, **DERIVATION, **EXISTING}


def run_checks() -> dict[str, str | None]:
    """name -> None if the check passed, else the first line of its failure."""
    out: dict[str, str | None] = {}
    for name, check in CHECKS.items():
        try:
            check()
            out[name] = None
        except AssertionError as exc:
            out[name] = (str(exc).strip().splitlines() or ["AssertionError"])[0][:240]
        except Exception as exc:  # noqa: BLE001 -- a mutant may also break a check some other way; it counts
            out[name] = f"{type(exc).__name__}: {exc}"[:240]
    return out


# ------------------------------------------------------------------------------------------------ the mutants

def _ours(modname: str, mod: object) -> bool:
    if modname.startswith("scilt_theory"):
        return True
    path = getattr(mod, "__file__", None) or ""
    return os.path.dirname(os.path.abspath(path)) == _TESTS_DIR if path else False


def patch_everywhere(monkeypatch: pytest.MonkeyPatch, owner: object, name: str,
                     make: Callable[[Callable], Callable]) -> list[str]:
    """Replace ``owner.name`` by ``make(original)`` in every module of the project and of tests/ that holds it."""
    original = getattr(owner, name)
    replacement = make(original)
    hits = []
    for modname, mod in list(sys.modules.items()):
        if mod is None or not _ours(modname, mod):
            continue
        for attr, val in list(vars(mod).items()):
            if val is original:
                monkeypatch.setattr(mod, attr, replacement)
                hits.append(f"{modname}.{attr}")
    assert f"{owner.__name__}.{name}" in hits, hits
    return hits


def _terms_mutant(change: Callable[[Callable, tuple, dict, bounds.BoundTerms], dict]) -> Callable[[Callable], Callable]:
    """A wrapper of a function returning BoundTerms: ``change`` gives new complexity / confidence; bound follows."""
    def make(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            t = fn(*args, **kwargs)
            new = change(fn, args, kwargs, t)
            total = t.train_margin_loss + new.get("complexity", t.complexity) + new.get("confidence", t.confidence)
            return dataclasses.replace(t, **new, bound=total, vacuous=bool(total > 1.0))
        return wrapped
    return make


def _scaled(factor: float) -> Callable[[Callable], Callable]:
    def make(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            return factor * fn(*args, **kwargs)
        return wrapped
    return make


def _no_class_union(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapped(n, delta, grid_size=1, num_classes=1):
        return fn(n, delta, grid_size=grid_size, num_classes=1)
    return wrapped



def _bounded_without_union(fn, args, kwargs, t):
    one = fn(*args, **{**kwargs, "num_classes": 1})
    return {"confidence": one.confidence}


def apply_mutant(name: str, mp: pytest.MonkeyPatch) -> list[str]:
    """Apply one mutant; return the patched names. Each mutant is checked to have the intended effect."""
    hits: list[str] = []
    t0 = bounds.theorem53_bound(0.1, 0.01, 0.02, 100, 0.5, 0.05)
    conf0, dev0 = bounds.confidence_term(100, 0.05, num_classes=7), rademacher.mc_deviation(
        tc.MC_PSI, 1.0, n_draws=50, delta_mc=0.01)
    margin_fns = ["weighted_margin_bound", "theorem53_bound_bounded_features", "coupled_margin_bound"]
    if name == "complexity_half":
        half = _terms_mutant(lambda fn, a, k, t: {"complexity": t.complexity / 2})
        hits += patch_everywhere(mp, bounds, "_margin_bound", half)
        for fn in margin_fns:
            if hasattr(bounds, fn):
                hits += patch_everywhere(mp, bounds, fn, half)
        assert bounds.theorem53_bound(0.1, 0.01, 0.02, 100, 0.5, 0.05).complexity == pytest.approx(t0.complexity / 2)
    elif name == "confidence_half":
        hits += patch_everywhere(mp, bounds, "confidence_term", _scaled(0.5))
        hits += patch_everywhere(mp, bounds, "weighted_confidence_term", _scaled(0.5))
        hits += patch_everywhere(mp, bounds, "theorem53_bound_bounded_features",
                                 _terms_mutant(lambda fn, a, k, t: {"confidence": t.confidence / 2}))
        assert bounds.theorem53_bound(0.1, 0.01, 0.02, 100, 0.5, 0.05).confidence == pytest.approx(t0.confidence / 2)
    elif name == "contraction_1_over_rho":
        hits += patch_everywhere(mp, bounds, "contraction_factor",
                                 lambda fn: functools.wraps(fn)(lambda rho: 1.0 / rho))
        assert bounds.theorem53_bound(0.1, 0.01, 0.02, 100, 0.5, 0.05).complexity == pytest.approx(t0.complexity / 2)
    elif name == "mc_deviation_half":
        # every MC certificate (linear, finite, coupled) takes its McDiarmid step from mcdiarmid_deviation
        hits += patch_everywhere(mp, rademacher, "mcdiarmid_deviation", _scaled(0.5))
        assert rademacher.mc_deviation(tc.MC_PSI, 1.0, n_draws=50, delta_mc=0.01) == pytest.approx(dev0 / 2)
    elif name == "union_dropped":
        hits += patch_everywhere(mp, bounds, "confidence_term", _no_class_union)
        hits += patch_everywhere(mp, bounds, "theorem53_bound_bounded_features", _terms_mutant(_bounded_without_union))
        assert bounds.confidence_term(100, 0.05, num_classes=7) == pytest.approx(bounds.confidence_term(100, 0.05))
        assert bounds.confidence_term(100, 0.05, num_classes=7) < conf0
    elif name == "classwise_contraction_half":
        hits += patch_everywhere(mp, bounds, "classwise_contraction_factor",
                                 lambda fn: functools.wraps(fn)(lambda rho: 0.5 / rho))
        assert bounds.classwise_contraction_factor(2.0) == pytest.approx(0.25)
    else:
        raise KeyError(name)
    return hits


#: checks that must catch each mutant (the tight cases where one exists; derivations for the confidence term)
EXPECTED = {
    "complexity_half": {"tight:theorem53_complexity", "tight:theorem53_grid_entry_point",
                        "tight:corollary54_complexity", "tight:weighted_complexity",
                        "derived:margin_bound_complexity", "derived:bounded_features"},
    "confidence_half": {"derived:lemma52c_confidence", "derived:grid_and_class_unions",
                        "derived:weighted_confidence", "derived:bounded_features"},
    "contraction_1_over_rho": {"tight:contraction_attained", "tight:theorem53_complexity",
                               "tight:theorem53_grid_entry_point", "tight:corollary54_complexity",
                               "tight:weighted_complexity", "derived:lemma52b_constants",
                               "derived:margin_bound_complexity", "derived:bounded_features"},
    "mc_deviation_half": {"tight:mc_exact_coverage", "tight:mc_seeded_repetitions", "derived:mc_deviation"},
    "union_dropped": {"tight:corollary54_union_large_k", "derived:grid_and_class_unions",
                      "derived:bounded_features"},
    "classwise_contraction_half": {"tight:classwise_attained", "derived:classwise_factor",
                                   "test_classwise::test_theorem53_classwise_by_hand",
                                   "test_classwise::test_bounded_data_radii_classwise_forms_by_hand"},
}
#: mutants for which no tight case can exist (see the module docstring)
NO_TIGHT_CASE = {"confidence_half"}


def _table(name: str, results: dict[str, str | None], seconds: float) -> str:
    caught = {k: v for k, v in results.items() if v is not None}
    lines = [f"mutant {name}: caught by {len(caught)} of {len(results)} checks ({seconds:.1f} s)"]
    lines += [f"  {k}: {v}" for k, v in caught.items()]
    return "\n".join(lines)


def test_all_checks_pass_without_a_mutant():
    results = run_checks()
    failed = {k: v for k, v in results.items() if v is not None}
    assert not failed, failed


@pytest.mark.parametrize("mutant", list(EXPECTED))
def test_mutant_is_caught(mutant, monkeypatch):
    hits = apply_mutant(mutant, monkeypatch)
    start = time.perf_counter()
    results = run_checks()
    print("\n" + _table(mutant, results, time.perf_counter() - start) + f"\n  patched: {', '.join(hits)}")
    caught = {k for k, v in results.items() if v is not None}
    assert caught, f"no check catches the mutant {mutant}"
    missing = EXPECTED[mutant] - caught
    assert not missing, f"{mutant}: expected catchers that passed: {sorted(missing)}"
    if mutant not in NO_TIGHT_CASE:
        assert caught & set(POWER), f"{mutant}: caught only by derivations / hand values, by no tight case"
    else:
        assert not caught & set(POWER), f"{mutant} is caught by a tight case; update NO_TIGHT_CASE and the docs"
