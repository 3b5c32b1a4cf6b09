"""Fuzz the command lines: random options of each parser with random values of random types.

Whatever the arguments, a command either succeeds (exit 0) or prints exactly one ``error: …`` line on stderr and
exits non-zero; never a traceback. Each command runs in-process through ``run_main`` (what its ``__main__`` runs);
two subprocess cases show the real entry point behaves the same. Every example starts from a tiny valid command
line, and a fuzzed one that would start real work larger than tiny (more epochs, bigger images, more draws…)
stops right after its arguments were accepted, which counts as success: its arguments were valid.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments import bounds as bounds_cli
from experiments import plot as plot_cli
from experiments import train as train_cli
from experiments._cli import run_main
from scilt_theory.data import DataConfig
from scilt_theory.models import ModelConfig
from scilt_theory.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["--dataset", "synthetic-lt", "--num-classes", "3", "--imbalance", "4", "--max-per-class", "16",
              "--test-per-class", "3", "--img-size", "16", "--patch-size", "4", "--depth", "2", "--adapter", "full",
              "--batch-size", "8", "--epochs", "1", "--quiet"]
_counter = itertools.count()


class _Accepted(Exception):
    """Raised instead of starting work bigger than tiny: the arguments were accepted."""


def _guard_train(real):
    def guarded(data_config, model_config, config, **kwargs):
        tiny = (data_config.name == "synthetic-lt" and (data_config.max_per_class or 10**9) <= 40
                and (data_config.test_per_class or 10**9) <= 10 and (data_config.num_classes or 5) <= 6
                and model_config.img_size <= 32 and model_config.depth is not None and model_config.depth <= 2
                and model_config.arch == ModelConfig.__dataclass_fields__["arch"].default
                and config.epochs <= 2 and kwargs.get("resume") is None)
        if not tiny:
            raise _Accepted
        return real(data_config, model_config, config, **kwargs)
    return guarded


def _guard_bounds(real):
    def guarded(ckpt, settings_):
        if settings_.draws > 400 or settings_.margin_grid_size > 32 or settings_.refit_steps > 300:
            raise _Accepted
        return real(ckpt, settings_)
    return guarded


def _run(main, argv: list[str]) -> tuple[int, list[str]]:
    """(exit status, non-empty stderr lines) of one in-process run; a traceback fails the test here."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        try:
            code = run_main(main, argv)
        except SystemExit as exc:  # argparse: --help (0) or its one-line error (2)
            code = exc.code if isinstance(exc.code, int) else 2
        except _Accepted:
            code = 0
    return code, [line for line in err.getvalue().splitlines() if line.strip()]


def _check(main, argv: list[str]) -> None:
    code, lines = _run(main, argv)
    assert not any("Traceback" in line for line in lines), (argv, lines)
    if code != 0:
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, code, lines)


MISSING = "/nonexistent/scilt/nowhere"
VALUES = st.one_of(  # a value of any type
    st.integers(-3, 40).map(str), st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "", " ", "none", "true", "false", "0", "-0", "1e30", "-1e-30",
                     "0x10", "1_000", "auto", "cpu", "cuda", "exact", "mc", "closed", "certified", "lora", "full",
                     "synthetic-lt", "digits-lt", MISSING, MISSING + ".pt", "-", "--", "--quiet"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6),
)


def _typed_value(action) -> st.SearchStrategy:
    """Mostly a value of the option's own type (so the fuzz reaches past argparse), often an edge case."""
    kind = getattr(action.type, "__name__", "")
    if action.choices:
        return st.sampled_from(sorted(map(str, action.choices)))
    if kind == "int":
        return st.one_of(st.integers(-2, 64), st.sampled_from([0, -1, 10**9, 2**63])).map(str)
    if kind in ("float", "_finite_float"):
        return st.one_of(st.floats(-2, 2), st.sampled_from([0.0, -0.0, 1e-300, 1e30, float("nan"), float("inf")]),
                         st.floats(1e-4, 0.999)).map(repr)
    return VALUES


def _fuzzed_args(parser):
    """0-3 random options of ``parser`` (now and then an unknown one), each with a value or none."""
    actions = [a for a in parser._actions if any(o.startswith("--") for o in a.option_strings)]
    actions = [a for a in actions if "--help" not in a.option_strings]

    def pair(action):
        option = st.just(next(o for o in action.option_strings if o.startswith("--")))
        if action.nargs == 0:  # store_true
            value = st.none()
        elif action.nargs == "?":  # --flag [true|false]
            value = st.one_of(st.none(), st.sampled_from(["true", "false", "yes", "0"]), VALUES)
        else:
            value = st.one_of(_typed_value(action), _typed_value(action), _typed_value(action), VALUES, st.none())
        return st.tuples(option, value)

    unknown = st.tuples(st.sampled_from(["--no-such-option", "-x", "--depth=", "--help"]), st.none())
    pairs = st.lists(st.one_of(st.sampled_from(actions).flatmap(pair), st.sampled_from(actions).flatmap(pair),
                               st.sampled_from(actions).flatmap(pair), unknown), max_size=3)
    return pairs.map(lambda ps: [t for o, v in ps for t in ([o] if v is None else [o, v])])


# ---- inputs -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def ckpt(workdir) -> Path:
    data = DataConfig(name="synthetic-lt", imbalance=4.0, max_per_class=16, test_per_class=3, image_size=16,
                      num_classes=3)
    model = ModelConfig(num_classes=3, img_size=16, patch_size=4, depth=2, adapter="full")
    config = TrainConfig(epochs=1, batch_size=8, optimizer="adamw", lr=2e-3, warmup_epochs=0,
                         out=str(workdir / "run"), quiet=True, holdout_fraction=0.3)
    return train(data, model, config).run_path


@pytest.fixture(scope="module")
def bounds_dir(ckpt, workdir) -> Path:
    out = workdir / "bounds"
    assert bounds_cli.main(["--ckpt", str(ckpt), "--draws", "50", "--no-plots", "--quiet", "--out", str(out)]) == 0
    return out


@pytest.fixture()
def guarded(monkeypatch, workdir):
    import scilt_theory.bounds_pipeline as pipeline
    import scilt_theory.training as training

    monkeypatch.chdir(workdir)  # a fuzzed relative --out ("0", "") lands in the temp dir, not the checkout

    monkeypatch.setattr(training, "train", _guard_train(training.train))
    monkeypatch.setattr(pipeline, "compute_bounds_report", _guard_bounds(pipeline.compute_bounds_report))


# ---- the fuzz tests ---------------------------------------------------------------------------------------------
def test_fuzz_train(workdir, guarded):
    @settings(max_examples=40, deadline=None)
    @given(_fuzzed_args(train_cli.build_parser()))
    def run(extra):
        out = workdir / f"train{next(_counter)}"
        _check(train_cli.main, [*TINY_TRAIN, "--out", str(out), *extra])

    run()


def test_fuzz_bounds(ckpt, workdir, guarded):
    @settings(max_examples=40, deadline=None)
    @given(_fuzzed_args(bounds_cli.build_parser()))
    def run(extra):
        out = workdir / f"bounds{next(_counter)}"
        _check(bounds_cli.main, ["--ckpt", str(ckpt), "--draws", "40", "--no-plots", "--quiet", "--out", str(out),
                                 *extra])

    run()


def test_fuzz_plot(bounds_dir, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    @settings(max_examples=20, deadline=None)
    @given(_fuzzed_args(plot_cli.build_parser()))
    def run(extra):
        out = workdir / f"plot{next(_counter)}" / "fig"
        _check(plot_cli._plot, ["--bounds", str(bounds_dir), "--out", str(out), *extra])

    run()


@pytest.mark.parametrize("module,argv", [
    ("experiments.train", ["--epochs", "-3", "--lr", "inf"]),
    ("experiments.bounds", ["--ckpt", MISSING + ".pt", "--margin", "nan"]),
])
def test_real_entry_point_behaves_the_same(module, argv):
    main = {"experiments.train": train_cli.main, "experiments.bounds": bounds_cli.main}[module]
    code, lines = _run(main, argv)
    proc = subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == code != 0
    assert [line for line in proc.stderr.splitlines() if line.strip()] == lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr

