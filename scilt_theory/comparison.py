"""One comparison of methods on one data set: every method × seed trained with the same data, recipe and budget,
its bounds computed, the references fitted, and the tables and the figure written (``python -m experiments.compare``
is its command line).

:func:`run_comparison` takes a :class:`ComparisonConfig` and writes OUT/compare.json, OUT/compare.md and
OUT/compare_bound_vs_tail_error.png/.pdf from the runs under OUT/runs/METHOD/seedS and the references under
OUT/references/NAME/seedS. A run or a reference result is reused when its stored identity (compare_args.json:
its resolved configs, scilt_theory/run_identity.py) is the one it would have now, a killed run continues from its
last periodic checkpoint, and one of another identity is refused. The per-run options are those of the train
command, so the command line passes in how it resolves option lists (:class:`OptionResolvers`), which also resolves
the argument lists an older compare_args.json holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["REFERENCES", "ComparisonConfig", "ComparisonError", "ComparisonResult", "OptionResolvers",
           "default_paired_references", "run_comparison", "stored_identity"]

#: reference rows a comparison can add: name -> the rows it makes (they train nothing and have no bounds)
REFERENCES: dict[str, tuple[str, ...]] = {
    "linear_probe": ("linear_probe[penultimate]", "linear_probe[final]", "linear_probe[both]")}


def default_paired_references(rows: Sequence[str]) -> tuple[str, ...]:
    """The paired table a comparison makes unless told: against final_only when it is compared, else none."""
    return ("final_only",) if "final_only" in rows else ()


class ComparisonError(ValueError):
    """A comparison that cannot go on (a run directory of other settings, an unreadable run, a run that failed)."""


@dataclass(frozen=True)
class OptionResolvers:
    """How option lists become configs. ``train(argv, weights=None)``: the (DataConfig, ModelConfig, TrainConfig,
    MethodConfig) that ``python -m experiments.train ARGV`` would train; ``bounds(argv)``: the (BoundsSettings,
    plots) of ``python -m experiments.bounds ARGV``. Either raises on options its command refuses."""

    train: Callable[..., tuple]
    bounds: Callable[[list[str]], tuple[Any, bool]]
    #: the exceptions by which they refuse an option list (an older run's list refused now is not reused)
    refusals: tuple[type[BaseException], ...] = (ValueError, TypeError, SystemExit)


@dataclass(frozen=True)
class ComparisonConfig:
    """What to compare and where. ``train_overrides`` are options of ``python -m experiments.train`` applied to every
    run over the recipe (``epochs`` too, when given); ``paired_references`` are methods or reference rows every
    other row is paired with by seed (one table each)."""

    dataset: str
    recipe: str
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    out: str
    references: tuple[str, ...] = ()
    paired_references: tuple[str, ...] = ()
    epochs: int | None = None
    train_overrides: tuple[str, ...] = ()
    draws: int = 1000
    save_every: int = 20
    feature_store: bool = True
    run_plots: bool = False
    progress: bool = True
    #: the recipe's backbone weights file once fetched (run_comparison fills it in)
    weights: str | None = None

    def __post_init__(self) -> None:
        unknown = [r for r in self.references if r not in REFERENCES]
        if unknown:
            raise ValueError(f"unknown reference {unknown[0]!r}; choose from {', '.join(REFERENCES)}")
        rows = [*self.methods, *self.reference_rows]
        missing = [name for name in self.paired_references if name not in rows]
        if missing:
            raise ValueError(f"paired reference {missing[0]!r} is not compared here; choose from {', '.join(rows)}")

    def train_argv(self, method: str, seed: int, out: str | Path) -> list[str]:
        """The arguments of ``python -m experiments.train`` for one run (the options given win over the recipe)."""
        epochs = ["--epochs", str(self.epochs)] if self.epochs is not None else []
        return ["--dataset", self.dataset, "--recipe", self.recipe, *epochs, *self.train_overrides, "--method",
                method, "--seed", str(seed), "--out", str(out)]

    def feature_store_dir(self) -> str | None:
        """The comparison's shared feature store (scilt_theory/feature_store.py): runs of one seed on a frozen
        backbone, and the two bounds passes of a run, extract their features once. It changes no number, so it is
        not part of what identifies a run."""
        return str(Path(self.out) / "feature_store") if self.feature_store else None

    @property
    def reference_rows(self) -> list[str]:
        return [row for name in self.references for row in REFERENCES[name]]


@dataclass
class ComparisonResult:
    """What :func:`run_comparison` wrote: compare.json's content, and the paths of compare.json, compare.md and the
    figure files."""

    payload: dict[str, Any]
    json_path: Path
    markdown_path: Path
    figures: list[Path] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return len(self.payload["runs"])

    @property
    def seconds(self) -> float:
        return self.payload["seconds"]


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def stored_identity(saved: dict, key: str, resolvers: OptionResolvers) -> dict | None:
    """The identity a compare_args.json holds under ``key`` ("run" or "bounds"); one written by an older version
    holds argument lists ("train", "bounds"), resolved here to configs like a new run's (None if they no longer
    resolve: then the run counts as made with other settings)."""
    from scilt_theory.run_identity import bounds_identity, run_identity

    if isinstance(saved.get(key), dict):
        return saved[key]
    legacy = saved.get("train" if key == "run" else "bounds")
    if not isinstance(legacy, list):
        return None
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # an argument list this version refuses is simply not reused
            if key == "run":
                return run_identity(*resolvers.train([str(a) for a in legacy]))
            settings, plots = resolvers.bounds([str(a) for a in legacy])
            return bounds_identity(settings, plots=plots)
    except resolvers.refusals:
        return None


class _Comparison:
    """One comparison's runs and references (the steps of :func:`run_comparison`)."""

    def __init__(self, config: ComparisonConfig, resolvers: OptionResolvers):
        self.config, self.resolvers = config, resolvers

    def configs(self, method: str, seed: int, out: str | Path) -> tuple:
        return self.resolvers.train(self.config.train_argv(method, seed, out), weights=self.config.weights)

    def _train(self, configs: tuple, resume: Path | None, out: Path) -> None:
        """One training run through the library (quiet, with the comparison's periodic saves and feature store)."""
        from scilt_theory.training import train

        data_config, model_config, train_config, method_config = configs
        train_config = dataclasses.replace(train_config, out=str(out), quiet=True, save_every=self.config.save_every,
                                           feature_store=self.config.feature_store_dir())
        train(data_config, model_config, train_config, method=method_config, resume=resume)

    @staticmethod
    def _bounds(ckpt: Path, out: Path, settings: Any, plots: bool) -> None:
        """One bounds report through the library (scilt_theory.bounds_report), written into ``out`` as a whole."""
        from scilt_theory.api import bounds_report

        started = time.perf_counter()
        report = bounds_report(ckpt, settings)
        report.timing["total_seconds"] = time.perf_counter() - started
        report.write(out, plots=plots)

    def run_one(self, method: str, seed: int, run_dir: Path) -> dict:
        """Train (or reuse / continue) one run and compute (or reuse) its bounds; returns what the tables need."""
        from scilt_theory.bounds_pipeline import BoundsSettings
        from scilt_theory.checkpoint import CheckpointError, atomic_write_text
        from scilt_theory.run_identity import bounds_identity, run_identity
        from scilt_theory.run_record import read_run
        from scilt_theory.schema import SCHEMA_VERSION

        ckpt = run_dir / "run.pt"
        sidecar = run_dir / "compare_args.json"
        configs = self.configs(method, seed, run_dir)
        wanted = run_identity(*configs)
        saved = _read_json(sidecar) or {}
        timing = {"train_seconds": 0.0, "bounds_seconds": 0.0, "reused_run": False, "reused_bounds": False}
        started = time.perf_counter()
        if ckpt.exists():
            if stored_identity(saved, "run", self.resolvers) != wanted:
                raise ComparisonError(f"{run_dir} holds a run made with other settings; give another --out or "
                                      "delete it")
            if not read_run(ckpt, allow_unfinished=True).finished:
                self._train(configs, ckpt, run_dir)
            else:
                timing["reused_run"] = True
        else:
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(json.dumps({"run": wanted}, indent=1) + "\n", sidecar)
            self._train(configs, None, run_dir)
        timing["train_seconds"] = time.perf_counter() - started

        bounds_dir = run_dir / "bounds"
        settings = BoundsSettings(draws=self.config.draws, progress=False,
                                  feature_store=self.config.feature_store_dir())
        wanted_bounds = bounds_identity(settings, plots=self.config.run_plots)
        report = _read_json(bounds_dir / "bounds.json")
        fresh = (report is not None and report.get("schema_version") == SCHEMA_VERSION and timing["reused_run"]
                 and stored_identity(saved, "bounds", self.resolvers) == wanted_bounds
                 and (bounds_dir / "bounds.json").stat().st_mtime >= ckpt.stat().st_mtime)
        started = time.perf_counter()
        if fresh:
            timing["reused_bounds"] = True
        else:
            self._bounds(ckpt, bounds_dir, settings, plots=self.config.run_plots)
            report = _read_json(bounds_dir / "bounds.json")
            atomic_write_text(json.dumps({"run": wanted, "bounds": wanted_bounds}, indent=1) + "\n", sidecar)
        timing["bounds_seconds"] = time.perf_counter() - started
        try:
            record = read_run(ckpt)
        except CheckpointError as exc:
            raise ComparisonError(str(exc)) from None
        return {"metrics": record.metrics, "bounds": report, "class_names": list(record.class_names),
                "data_config": record.data_config, "timing": timing}

    def run_reference(self, name: str, seed: int, ref_dir: Path) -> dict:
        """Compute (or reuse) one reference result (``linear_probe``) of one seed; returns its JSON."""
        from scilt_theory.checkpoint import atomic_write_text
        from scilt_theory.linear_probe import run_linear_probe
        from scilt_theory.run_identity import run_identity

        data_config, model_config, train_config, method_config = self.configs("scilt", seed, ref_dir)
        wanted = run_identity(data_config, model_config, train_config, method_config)
        result_path, sidecar = ref_dir / f"{name}.json", ref_dir / "compare_args.json"
        saved, result = _read_json(sidecar) or {}, _read_json(result_path)
        same = stored_identity(saved, "run", self.resolvers) == wanted
        if result is not None and same:
            return {**result, "reused": True}
        if result_path.exists() and not same:
            raise ComparisonError(f"{ref_dir} holds a {name} result made with other settings; give another --out "
                                  "or delete it")
        train_config = dataclasses.replace(train_config, feature_store=self.config.feature_store_dir())
        result = run_linear_probe(data_config, model_config, train_config)
        ref_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps({"run": wanted}, indent=1) + "\n", sidecar)
        atomic_write_text(json.dumps(result, indent=1, allow_nan=False) + "\n", result_path)
        return {**result, "reused": False}


def population_of(data_config: Any, test_counts: Sequence[int] | None, test_same_distribution: bool) -> dict:
    """What the comparison's test errors estimate, for compare.json's ``population``: the data set's stated law
    (registry ``DatasetSpec.law``) when it has one, the test sample's size, and how the paired differences use it."""
    from scilt_theory.data.registry import DATASETS

    spec = DATASETS[data_config.name]
    law = spec.law(data_config) if spec.law is not None else None
    counts = [int(c) for c in test_counts] if test_counts is not None else None
    if law is not None:
        estimate = ("every test error is an estimate of the population error under this law: each seed draws its "
                    "own test sample, i.i.d. from the law and independent of its training sample; paired "
                    "differences compare methods on the same seed's test sample, and the spread over seeds includes "
                    "the test sample's own binomial noise")
    elif test_same_distribution:
        estimate = ("no stated law: test errors are errors on a held-out split that follows the training "
                    "distribution class by class (an estimate of the error on the finite pool it was split from)")
    else:
        estimate = ("no stated law, and the test split does not follow the training distribution: test errors are "
                    "errors on that split only")
    return {"dataset": data_config.name, "law": law, "test_per_class": counts,
            "test_same_distribution": bool(test_same_distribution), "errors_estimate": estimate}


def _named(what: str, step: Callable[..., dict], *args: Any) -> dict:
    """Run one step, naming it in the one error line of a failure inside it."""
    try:
        return step(*args)
    except ComparisonError:
        raise
    except (ValueError, FloatingPointError) as exc:
        raise ComparisonError(f"{what}: {_first_line(exc)}") from None


def run_comparison(config: ComparisonConfig, resolvers: OptionResolvers,
                   log: Callable[[str], None] = print) -> ComparisonResult:
    """Train and bound every method × seed of ``config`` (or reuse them), fit its references, and write
    compare.json, compare.md and the figure into ``config.out``; progress lines go to ``log`` unless
    ``config.progress`` is false."""
    from scilt_theory.checkpoint import atomic_write_text, check_output_dir
    from scilt_theory.compare import (
        class_rank_correlations,
        class_rank_markdown,
        compare_markdown,
        paired_differences,
        probe_markdown,
        probe_rows,
        rank_correlations,
        rank_markdown,
        run_row,
        summarise,
    )
    from scilt_theory.methods import get_method
    from scilt_theory.plotting import plot_compare
    from scilt_theory.recipes import get_recipe
    from scilt_theory.schema import BoundsReport

    say = log if config.progress else (lambda _line: None)
    named = get_recipe(config.recipe).weights
    if named is not None and config.weights is None:  # a DINOv2 recipe fetches / converts (or reuses) its backbone
        from scilt_theory.pretrained import pretrained_weights  # here, once for every run

        config = dataclasses.replace(config, weights=str(pretrained_weights(named)))
    comparison = _Comparison(config, resolvers)
    methods, seeds = list(config.methods), list(config.seeds)
    out = check_output_dir(Path(config.out), create=True)
    started = time.perf_counter()
    rows, runs, reports = [], [], []
    class_names: list[str] | None = None
    population: dict | None = None
    total = len(methods) * len(seeds)
    for i, (method, seed) in enumerate(((m, s) for m in methods for s in seeds), start=1):
        run_dir = out / "runs" / method / f"seed{seed}"
        say(f"[compare] {i}/{total} {method} seed {seed} …")
        result = _named(f"{method} seed {seed}", comparison.run_one, method, seed, run_dir)
        report = BoundsReport.from_json(result["bounds"])
        reports.append(report)
        class_names = class_names or result["class_names"]
        population = population or population_of(result["data_config"], result["metrics"].get("test_counts"),
                                                  report.test_same_distribution)
        row = run_row(method, seed, result["metrics"], report)
        rows.append(row)
        runs.append({"method": method, "seed": seed, "dir": str(run_dir), **result["timing"]})
        t = result["timing"]
        how = "reused" if t["reused_run"] else f"trained in {t['train_seconds']:.0f} s"
        say(f"[compare]   {how}, bounds {t['bounds_seconds']:.0f} s: balanced acc "
            f"{100 * row['balanced_accuracy']:.1f}%, few {100 * (row['few_accuracy'] or 0):.1f}%, "
            f"bound {row['overall_bound']:.3g}")
    references: dict = {}
    for name in config.references:
        references[name] = {}
        for seed in seeds:
            say(f"[compare] reference {name} seed {seed} …")
            ref_dir = out / "references" / name / f"seed{seed}"
            result = _named(f"{name} seed {seed}", comparison.run_reference, name, seed, ref_dir)
            references[name][str(seed)] = result
            rows.extend(probe_rows(result, seed))
    reference_names = config.reference_rows
    compared = methods + reference_names
    summary = summarise(rows, compared)
    paired = [paired_differences(rows, compared, reference=name) for name in config.paired_references]
    ranks = rank_correlations(rows)  # the references' rows have no bounds and drop out
    class_ranks = class_rank_correlations(reports)  # the runs' reports only: references have none
    seconds = time.perf_counter() - started
    notes = sorted({note for m in methods for note in get_method(m).notes})
    if reference_names:
        notes.append("linear_probe[…] rows train nothing and have no bounds: logistic regression on the frozen "
                     "backbone's CLS features (runs' model config with adapter none), C by stratified CV; "
                     "the C = 1 numbers are in the table below and in compare.json")
    title = f"Methods on {config.dataset} (recipe {config.recipe}), seeds {','.join(map(str, seeds))}"
    recipe = config.train_argv("METHOD", 0, "DIR")
    payload = {"dataset": config.dataset, "population": population, "recipe": config.recipe, "methods": methods,
               "seeds": seeds, "train_args": recipe,
               "references": references, "reference_rows": reference_names, "paired": paired,
               "summary": summary, "rank_correlation": ranks, "class_rank_correlation": class_ranks,
               "rows": rows, "runs": runs, "notes": notes,
               "methods_summary": {m: get_method(m).summary for m in methods},
               "seconds": seconds, "trained_seconds": sum(r["train_seconds"] for r in runs if not r["reused_run"])}
    json_path, markdown_path = out / "compare.json", out / "compare.md"
    atomic_write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", json_path)
    sections = [probe_markdown(summary, rows, reference_names)] if reference_names else []
    sections += [rank_markdown(ranks), class_rank_markdown(class_ranks, class_names=class_names)]
    population_notes = [] if population is None else [
        f"population: {population['law'] or 'none stated'} ({population['errors_estimate']})"]
    atomic_write_text(compare_markdown(summary, title=title, notes=[
        f"recipe: python -m experiments.train {' '.join(recipe)}", *population_notes, *notes], paired=paired,
        sections=sections),
        markdown_path)
    # the figure plots bounds: the methods' rows only (references have none)
    figures = plot_compare({m: summary[m] for m in methods}, out / "compare_bound_vs_tail_error", title=title)
    return ComparisonResult(payload=payload, json_path=json_path, markdown_path=markdown_path, figures=list(figures))
