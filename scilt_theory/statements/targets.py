"""The targets a statement's records are about, and the one aggregation of a class family (THEORY §4, §8).

A statement that holds for every class at once (Corollary 5.4 and its tighter forms, PAC-Bayes) also bounds, from
the same event, the balanced error (the mean over the classes with a value), every group's balanced error (the mean
over its classes with a value) and the worst-class error (the max): :func:`aggregate_class_family` builds those
records from the class values, the same way for every family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from scilt_theory.schema import StatementRecord

__all__ = ["aggregate_class_family", "class_target", "group_target", "mean"]


def class_target(c: int) -> str:
    return f"class:{c}"


def group_target(g: str) -> str:
    return f"group:{g}"


def mean(values: list[float]) -> float:
    return float(np.mean(values))


#: how an aggregate target combines its classes' values (mean or max)
Aggregate = Callable[[list[float]], float]


def aggregate_class_family(statement, ctx, delta: float, bounds: Mapping[int, float], floors: Mapping[int, float],
                           needed: Callable[[Sequence[int], Aggregate], float | None],
                           extra: Callable[[str], dict] | None = None) -> list[StatementRecord]:
    """The balanced, group and worst-class records of a class family, in that order.

    ``bounds`` / ``floors``: the value and floor of every class with a value; ``needed(members, how)``: the sample
    size at which ``how`` over those classes' values drops below 1 (the family's own projection); ``extra(kind)``:
    more terms of a "mean" or "max" record. A target none of whose classes has a value gets no value.
    """
    def aggregate(target: str, members: list[int], how: Aggregate, quantity: str, kind: str) -> StatementRecord:
        members = [c for c in members if c in bounds]
        if not members:
            return statement.record(ctx, target, None, delta, reason="no class of this target has training samples",
                                    quantity=quantity)
        terms = {"classes": members, **(extra(kind) if extra else {})}
        return statement.record(ctx, target, how([bounds[c] for c in members]), delta, terms, quantity=quantity,
                                floor=how([floors[c] for c in members]), n_for_nonvacuous=needed(members, how))

    present = list(bounds)
    records = [aggregate("balanced", present, mean, "balanced error", "mean")]
    records += [aggregate(group_target(g), ctx.group_members(g), mean, "group balanced error", "mean")
                for g in ctx.group_names]
    worst = aggregate("worst_class", present, max, "worst-class error", "max")
    if worst.bound is not None:
        c = max(present, key=lambda k: bounds[k])  # the first class attaining the max, as max() picks
        worst = replace(worst, terms={**worst.terms, "class": c, "name": ctx.class_names[c]})
    return records + [worst]
