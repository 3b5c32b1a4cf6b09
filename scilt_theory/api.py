"""The Python API of the bounds: a trained run's report in one call, its files in a second.

>>> import scilt_theory                                                        # doctest: +SKIP
>>> report = scilt_theory.bounds_report("runs/demo/run.pt", mode="certified")  # doctest: +SKIP
>>> report.overall.bound, report.best_certificate("overall").bound            # doctest: +SKIP
>>> report.write("runs/demo/bounds_certified")  # bounds.json, report.md, figures # doctest: +SKIP

:func:`bounds_report` is what ``python -m experiments.bounds`` runs: the options are the fields of
:class:`~scilt_theory.bounds_pipeline.BoundsSettings` (a settings object, keyword arguments, or both), checked
before any work — values above the declared maxima or an estimated memory above what the machine has are refused
in one sentence (scilt_theory/resources.py). The result is a :class:`Report`: the typed
:class:`~scilt_theory.schema.BoundsReport` (every field of bounds.json as an attribute) with :meth:`Report.write`,
which writes bounds.json, report.md and the figures into a fresh folder and moves it into place as a whole, and
:meth:`Report.markdown`. A report read back from disk (:func:`read_report`) has the same methods.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scilt_theory.schema import BoundsReport, StatementRecord

if TYPE_CHECKING:
    from scilt_theory.run_record import RunRecord

__all__ = ["CONTRACT_STATEMENTS", "Report", "bounds_report", "owned_by_bounds", "read_report", "run_size"]

#: the statements every report is built on: the overall, per-class, group and worst-class views (and the figures)
#: are views of their records, so a ``statements`` subset without them gets them added (and the report says so)
CONTRACT_STATEMENTS = ("theorem53", "corollary54")

_REPORT_FILES = ("bounds.json", "report.md")


def owned_by_bounds(name: str, is_dir: bool) -> bool:
    """Whether an entry of an existing bounds folder is one the bounds command writes (and may replace)."""
    from scilt_theory.plotting import FIGURE_STEMS

    if is_dir:
        return False
    if name in _REPORT_FILES or (name.startswith(".") and name.endswith(".tmp")):
        return True
    stem, _, suffix = name.rpartition(".")
    return stem in FIGURE_STEMS and suffix in ("png", "pdf")


@dataclasses.dataclass(frozen=True)
class Report(BoundsReport):
    """A :class:`~scilt_theory.schema.BoundsReport` that can write itself and say its bottom line."""

    def write(self, out: str | Path, *, plots: bool = True) -> list[Path]:
        """Write bounds.json, report.md and (``plots``) the figures, PNG and PDF, into the folder ``out``.

        The files are made in a fresh temporary folder beside ``out`` that then replaces ``out`` as a whole, so the
        folder never mixes two runs and an error or Ctrl-C leaves the previous one as it was. A folder holding
        anything else (``run.pt``, a sub-folder) is refused before anything is written. Returns the paths written.
        """
        from scilt_theory.checkpoint import fresh_output_folder
        from scilt_theory.report import bounds_markdown

        out = Path(out)
        with fresh_output_folder(out, owned_by_bounds, "a bounds report") as tmp:
            (tmp / "bounds.json").write_text(self.dumps(), encoding="utf-8")
            (tmp / "report.md").write_text(bounds_markdown(self), encoding="utf-8")
            names = list(_REPORT_FILES)
            if plots:
                from scilt_theory.plotting import write_all_plots

                names += [p.name for p in write_all_plots(self, tmp)]
        return [out / name for name in names]

    def markdown(self) -> str:
        """report.md as text."""
        from scilt_theory.report import bounds_markdown

        return bounds_markdown(self)

    def bottom_line(self) -> list[str]:
        """The five lines report.md opens with (scilt_theory/report.py)."""
        from scilt_theory.report import bottom_line

        return bottom_line(self)

    def best_certificate(self, target: str = "overall") -> StatementRecord | None:
        """The smallest value among the statements that are certificates in this run, for ``target``."""
        from scilt_theory.report import best_certificate

        return best_certificate(self, target)


def as_api_report(report: BoundsReport) -> Report:
    """The same report with :class:`Report`'s methods."""
    if isinstance(report, Report):
        return report
    return Report(**{f.name: getattr(report, f.name) for f in dataclasses.fields(BoundsReport)})


def read_report(path: str | Path) -> Report:
    """Read a bounds.json (or the folder holding one) back as a :class:`Report`; one ValueError sentence when it
    is not a readable report."""
    from scilt_theory import schema

    path = Path(path)
    return as_api_report(schema.read_report(path / "bounds.json" if path.is_dir() else path))


def run_size(record: RunRecord, mode: str) -> tuple[int, int, int]:
    """(n, K, d) of a bounds run on a checkpoint's record, before any data are read: the bound sample's size (the
    held-out part in certified mode, the fitted part otherwise), the classes, the feature dimension."""
    held = len(record.holdout_indices)
    n = held if mode == "certified" else sum(record.fit_counts)
    dim = 768
    for key, value in record.model_state.items():
        if key.endswith("head1.weight") and getattr(value, "ndim", 0) == 2:
            dim = int(value.shape[1])
            break
    return max(n, 1), max(len(record.class_counts), 1), dim


def _settings(settings: Any, options: dict[str, Any]):
    from scilt_theory.bounds_pipeline import BoundsSettings

    if settings is None:
        settings = BoundsSettings(**options)
    elif options:
        settings = dataclasses.replace(settings, **options)
    from scilt_theory.resources import check_limits

    check_limits(draws=settings.draws, margin_grid_size=settings.margin_grid_size, delta=settings.delta,
                 margin_is_auto=settings.margin is None)
    return settings


def prepare(ckpt: str | Path, settings: Any = None, **options: Any):
    """(settings with the contract statements added, the statements added, the estimate) — every check that needs
    no data: the settings, the checkpoint, the declared maxima and the memory estimate."""
    from scilt_theory.resources import check_bounds_resources, estimate_bounds
    from scilt_theory.run_record import read_run

    settings = _settings(settings, options)
    added: tuple[str, ...] = ()
    if settings.statements:
        added = tuple(s for s in CONTRACT_STATEMENTS if s not in settings.statements)
        if added:
            settings = dataclasses.replace(settings, statements=tuple(settings.statements) + added)
    record = read_run(ckpt)
    n, k, d = run_size(record, settings.mode)
    estimate = estimate_bounds(n=n, num_classes=k, dim=d, draws=settings.draws,
                               grid_size=1 if settings.margin is not None else settings.margin_grid_size,
                               coupled_subsample=settings.coupled_subsample)
    check_bounds_resources(estimate)
    return settings, added, estimate


def bounds_report(ckpt: str | Path, settings: Any = None, **options: Any) -> Report | None:
    """Every number of bounds.json for the run in ``ckpt`` (a run.pt of ``python -m experiments.train``).

    ``settings``: a :class:`~scilt_theory.bounds_pipeline.BoundsSettings`; ``options``: any of its fields
    (``mode="certified"``, ``draws=2000``, ``statements=("pac_bayes",)``, ...), on top of ``settings``. Raises
    ValueError (:class:`~scilt_theory.checkpoint.CheckpointError` for the checkpoint) with one sentence for anything
    that cannot work, before the work. Under torchrun the processes share the feature extraction and only rank 0
    gets the report (the others get None).
    """
    from scilt_theory.bounds_pipeline import compute_bounds_report

    settings, added, _ = prepare(ckpt, settings, **options)
    report = compute_bounds_report(Path(ckpt), settings)
    if report is None:
        return None
    if settings.statements:
        requested = [s for s in settings.statements if s not in added]
        report.settings["statements_requested"] = requested
        report.settings["statements_added"] = list(added)
    return as_api_report(report)
