"""One test per row of the "What happens when…" table in docs/robustness.md: the table is read here, so it cannot
drift.

Each row names a case below by its id; the case makes the bad input, runs the command (in-process through
run_main, exactly what ``python -m experiments.X`` runs) or the library call, and returns the exit status (or
the exception's class name) and the message. The test checks both against the table, that a CLI printed exactly
one line and no traceback, and that nothing half-written was left behind.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest
import torch

from experiments import bounds as bounds_cli
from experiments import data as data_cli
from experiments import demo as demo_cli
from experiments import plot as plot_cli
from experiments import train as train_cli
from experiments._cli import run_main
from scilt_theory.bounds import theorem53_bound
from scilt_theory.checkpoint import FORMAT_VERSION, load_run, save_run
from scilt_theory.data import DataConfig, LongTailDataset, build_dataset
from scilt_theory.grid import BoundGrid
from scilt_theory.models import ModelConfig
from scilt_theory.rademacher import rademacher_linear
from scilt_theory.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["--dataset", "synthetic-lt", "--num-classes", "3", "--imbalance", "4", "--max-per-class", "24",
              "--test-per-class", "4", "--img-size", "16", "--patch-size", "4", "--depth", "2", "--adapter", "full",
              "--batch-size", "8", "--epochs", "1", "--quiet"]


def read_table() -> list[dict[str, str]]:
    """Rows of the "What happens when…" table of docs/robustness.md, as {id, when, where, message, exit}."""
    section = (ROOT / "docs" / "robustness.md").read_text(encoding="utf-8")
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 5, line
        rows.append({"id": cells[0].strip("`"), "when": cells[1], "where": cells[2],
                     "message": cells[3][1:-1] if cells[3].startswith("`") else cells[3], "exit": cells[4]})
    return rows


def message_pattern(message: str) -> re.Pattern:
    """The table's message start as a regex: ``<…>`` placeholders match any text."""
    parts = re.split(r"<[^>]+>", message)
    return re.compile(".+?".join(re.escape(p) for p in parts))


# ---- shared inputs ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished")
    data = DataConfig(name="synthetic-lt", imbalance=4.0, max_per_class=24, test_per_class=4, image_size=16,
                      num_classes=3)
    model = ModelConfig(num_classes=3, img_size=16, patch_size=4, depth=2, adapter="full")
    config = TrainConfig(epochs=1, batch_size=8, optimizer="adamw", lr=2e-3, warmup_epochs=0, out=str(out),
                         quiet=True)
    return train(data, model, config).run_path


def _unfinished(finished: Path, tmp_path: Path) -> Path:
    """A periodic checkpoint's outer form (what loaders look at) made from a finished run."""
    record = torch.load(finished, weights_only=True)
    record["finished"] = False
    record["train_state"] = {"optimizer": {}, "scheduler": {}, "rng": {}, "progress": {"global_step": 3}}
    return save_run(tmp_path / "unfinished" / "run.pt", record)


def cli(main: Callable, argv: list[str]) -> tuple[int, str]:
    """Run a command in-process as its __main__ does; (exit status, its single stderr line)."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = run_main(main, argv)
        except SystemExit as exc:  # argparse's one-line error
            code = exc.code
    text = err.getvalue()
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return code, lines[0]


def said(main: Callable, argv: list[str], prefix: str) -> tuple[int, str]:
    """Run a command that goes on (exit 0) but must say something on stdout: (exit status, the line that starts
    with ``prefix``); stderr stays empty."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = run_main(main, argv)
    assert not err.getvalue().strip(), err.getvalue()
    lines = [line for line in out.getvalue().splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, out.getvalue()
    return code, lines[0]


def library(call: Callable) -> tuple[str, str]:
    with pytest.raises(ValueError) as info:
        call()
    return type(info.value).__name__, str(info.value)


def _toy(train_images, train_labels, test_images=None, test_labels=None, k=3) -> LongTailDataset:
    test_images = torch.rand(k, 3, 16, 16) if test_images is None else test_images
    test_labels = torch.arange(k) if test_labels is None else test_labels
    return LongTailDataset("toy", tuple(f"c{i}" for i in range(k)), train_images, train_labels, test_images,
                           test_labels, DataConfig(name="toy", image_size=16))


def _bounds(ckpt, *extra):
    return ["--ckpt", str(ckpt), "--draws", "50", "--no-plots", "--quiet", *extra]


# ---- one case per table row -------------------------------------------------------------------------------------
def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-checkpoint",))


def _pickled_code(t: Path) -> Path:
    path = t / "evil.pt"
    torch.save({"format": "scilt-theory/run", "payload": _Evil()}, path)
    return path


def _future(f: Path, t: Path) -> Path:
    record = torch.load(f, weights_only=True)
    record["format_version"] = FORMAT_VERSION + 1
    torch.save(record, t / "future.pt")
    return t / "future.pt"


def _foreign(t: Path) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(2)}}, t / "foreign.pt")
    return t / "foreign.pt"


def _nan_loss(t: Path) -> tuple[int, str]:
    out = t / "nan"
    code, line = cli(train_cli.main, [*TINY_TRAIN, "--lr", "1e30", "--save-every", "1", "--out", str(out)])
    record = load_run(out / "run.pt", allow_unfinished=True)  # the last good checkpoint: intact and finite
    assert record["finished"] is False
    assert all(bool(torch.isfinite(v).all()) for v in record["model_state"].values() if v.is_floating_point())
    return code, line


def _bad_json(t: Path) -> Path:
    (t / "b").mkdir()
    (t / "b" / "bounds.json").write_text("{not json")
    return t / "b"


def _train_on_32px_data(t: Path):
    data_config = DataConfig(name="synthetic-lt", image_size=32, max_per_class=8, test_per_class=2, num_classes=3)
    return train(data_config, ModelConfig(num_classes=3, img_size=16, patch_size=4, depth=2),
                 TrainConfig(out=str(t / "o"), quiet=True), data=build_dataset(data_config))


def _broken_image_folder(t: Path) -> list[str]:
    from real_formats import image_folder

    root = t / INPUTS / "folder"  # the images are inputs, not outputs of the failed command
    image_folder(root, {"a": 3, "b": 3})
    _write(root / "b" / "broken.png", b"\x89PNG\r\n\x1a\nnot a png")
    return ["--dataset", "imagefolder", "--data-root", str(root), "--test-per-class", "1", "--img-size", "16",
            "--patch-size", "4", "--depth", "2", "--epochs", "1", "--quiet", "--out", str(t / "o")]


def _interrupted(t: Path, *, at_step: int, save_every: int) -> tuple[int, str]:
    """Ctrl-C right after optimiser step ``at_step`` (as a KeyboardInterrupt there, in process)."""
    import scilt_theory.train_state as ts

    original = ts.PeriodicCheckpointer.maybe_save

    def stop_after(self, model, optimizer, scheduler, progress, aug):
        saved = original(self, model, optimizer, scheduler, progress, aug)
        if progress.global_step == at_step:
            raise KeyboardInterrupt
        return saved

    with mock.patch.object(ts.PeriodicCheckpointer, "maybe_save", stop_after):
        code, line = cli(train_cli.main, [*TINY_TRAIN, "--save-every", str(save_every), "--out", str(t / "run")])
    if save_every:  # the checkpoint the line names is there, and resumable
        assert load_run(t / "run" / "run.pt", allow_unfinished=True)["finished"] is False
    else:  # nothing kept, and no empty folder left behind
        assert not (t / "run").exists()
    return code, line


def _little_memory(f: Path, t: Path) -> tuple[int, str]:
    with mock.patch("scilt_theory.resources.available_memory_bytes", lambda: 10**6):
        return cli(bounds_cli.main, _bounds(f, "--out", str(t / "o")))


def _run_folder(f: Path, t: Path) -> Path:
    folder = t / INPUTS / "run"
    folder.mkdir(parents=True)
    (folder / "run.pt").write_bytes(f.read_bytes())
    return folder


def _clashing_out(t: Path) -> Path:
    (t / "o" / "statements.png").mkdir(parents=True)
    return t / "o"


def _figure_clash(t: Path) -> tuple[int, str]:
    (t / "p.png").mkdir()
    return cli(plot_cli._plot, ["--bounds", str(t / "nowhere"), "--out", str(t / "p")])


def _image_tree(t: Path, counts: dict[str, int], empty: str | None = None) -> Path:
    from real_formats import image_folder

    root = t / INPUTS / "tree"
    image_folder(root, counts)
    if empty:
        (root / empty).mkdir()
    return root


def _loud(argv: list[str]) -> list[str]:
    return [a for a in argv if a != "--quiet"]


INPUTS = "inputs"  # cases that write input files with output-like names put them under this folder


def _a_file(t: Path) -> Path:
    return _write(t / "a-file", b"x")


CASES: dict[str, Callable[[Path, Path], tuple[object, str]]] = {
    "ckpt-missing": lambda f, t: cli(bounds_cli.main, _bounds(t / "missing.pt")),
    "ckpt-directory": lambda f, t: cli(bounds_cli.main, _bounds(t)),
    "ckpt-truncated": lambda f, t: cli(bounds_cli.main, _bounds(_write(t / "cut.pt", f.read_bytes()[:5000]))),
    "ckpt-corrupt": lambda f, t: cli(bounds_cli.main, _bounds(_write(t / "junk.pt", os.urandom(4096)))),
    "ckpt-pickled-code": lambda f, t: cli(bounds_cli.main, _bounds(_pickled_code(t))),
    "ckpt-foreign": lambda f, t: cli(bounds_cli.main, _bounds(_foreign(t))),
    "ckpt-future": lambda f, t: cli(bounds_cli.main, _bounds(_future(f, t))),
    "ckpt-unfinished": lambda f, t: cli(bounds_cli.main, _bounds(_unfinished(f, t))),
    "resume-missing": lambda f, t: cli(train_cli.main, ["--resume", str(t / "missing.pt")]),
    "resume-finished": lambda f, t: cli(train_cli.main, ["--resume", str(f), "--out", str(t / "o")]),
    "resume-other-settings": lambda f, t: cli(train_cli.main, ["--resume", str(_unfinished(f, t)), "--lr", "0.5"]),
    "nan-loss": lambda f, t: _nan_loss(t),
    "unknown-dataset": lambda f, t: cli(train_cli.main, ["--dataset", "nope", "--out", str(t / "o")]),
    "unknown-option": lambda f, t: cli(train_cli.main, ["--bogus", "1"]),
    "bad-type": lambda f, t: cli(train_cli.main, ["--epochs", "two"]),
    "not-finite": lambda f, t: cli(train_cli.main, ["--lr", "nan"]),
    "bad-value": lambda f, t: cli(train_cli.main, ["--epochs", "0"]),
    "save-every-negative": lambda f, t: cli(train_cli.main, ["--save-every", "-1"]),
    "out-is-file": lambda f, t: cli(train_cli.main, [*TINY_TRAIN, "--out", str(_a_file(t))]),
    "out-under-file": lambda f, t: cli(bounds_cli.main, _bounds(f, "--out", str(_a_file(t) / "sub"))),
    "delta-out-of-range": lambda f, t: cli(bounds_cli.main, _bounds(f, "--delta", "1.5", "--out", str(t / "o"))),
    "margin-non-positive": lambda f, t: cli(bounds_cli.main, _bounds(f, "--margin", "0", "--out", str(t / "o"))),
    "too-many-signs": lambda f, t: cli(bounds_cli.main, _bounds(f, "--method", "exact", "--out", str(t / "o"))),
    "bounds-json-invalid": lambda f, t: cli(plot_cli._plot, ["--bounds", str(_bad_json(t)), "--out", str(t / "p")]),
    "bounds-dir-missing": lambda f, t: cli(plot_cli._plot, ["--bounds", str(t / "nowhere"), "--out", str(t / "p")]),
    "image-unreadable": lambda f, t: cli(train_cli.main, _broken_image_folder(t)),
    "class-without-samples": lambda f, t: library(lambda: _toy(torch.rand(3, 3, 16, 16), torch.tensor([0, 0, 1]))),
    "labels-out-of-range": lambda f, t: library(lambda: _toy(torch.rand(3, 3, 16, 16), torch.tensor([0, 1, 7]))),
    "image-sizes-differ": lambda f, t: library(lambda: _toy(torch.rand(3, 3, 16, 16), torch.tensor([0, 1, 2]),
                                                            test_images=torch.rand(3, 3, 32, 32))),
    "image-size-vs-model": lambda f, t: library(lambda: _train_on_32px_data(t)),
    "empty-dataset": lambda f, t: library(lambda: _toy(torch.rand(0, 3, 16, 16), torch.zeros(0, dtype=torch.long))),
    "nan-features": lambda f, t: library(lambda: rademacher_linear(torch.full((4, 2), float("nan")), 1.0)),
    "delta-library": lambda f, t: library(lambda: theorem53_bound(0.1, 0.1, 0.1, n=10, rho=1.0, delta=1.0)),
    "margin-library": lambda f, t: library(lambda: BoundGrid(rhos=(0.0,))),
    "too-many-signs-library": lambda f, t: library(lambda: rademacher_linear(torch.ones(30, 2), 1.0, method="exact")),
    "delta-underflow": lambda f, t: cli(bounds_cli.main, _bounds(f, "--delta", "5e-324", "--out", str(t / "o"))),
    "draws-too-many": lambda f, t: cli(bounds_cli.main, _bounds(f, "--draws", "1000000000", "--out", str(t / "o"))),
    "margin-grid-too-large": lambda f, t: cli(bounds_cli.main, _bounds(f, "--margin-grid-size", "1000000000",
                                                                       "--out", str(t / "o"))),
    "not-enough-memory": _little_memory,
    "unknown-statement": lambda f, t: cli(bounds_cli.main, _bounds(f, "--statements", "nope", "--out", str(t / "o"))),
    "bounds-out-foreign": lambda f, t: cli(bounds_cli.main, _bounds(f, "--out", str(_run_folder(f, t)))),
    "bounds-out-name-clash": lambda f, t: cli(bounds_cli.main, _bounds(f, "--out", str(_clashing_out(t)))),
    "feature-store-is-file": lambda f, t: cli(bounds_cli.main, _bounds(f, "--feature-store", str(_a_file(t)),
                                                                       "--out", str(t / "o"))),
    "train-feature-store-is-file": lambda f, t: cli(train_cli.main, [*TINY_TRAIN, "--feature-store", str(_a_file(t)),
                                                                     "--out", str(t / "o")]),
    "seed-negative": lambda f, t: cli(train_cli.main, ["--seed", "-1"]),
    "data-too-large": lambda f, t: cli(train_cli.main, ["--dataset", "synthetic-lt", "--max-per-class", "1000000000",
                                                        "--out", str(t / "o")]),
    "img-size-out-of-range": lambda f, t: cli(train_cli.main, ["--img-size", "7"]),
    "train-out-finished": lambda f, t: cli(train_cli.main, [*TINY_TRAIN, "--out", str(f.parent)]),
    "train-out-unfinished": lambda f, t: cli(train_cli.main, [*TINY_TRAIN, "--out",
                                                              str(_unfinished(f, t).parent)]),
    "train-interrupted": lambda f, t: _interrupted(t, at_step=2, save_every=1),
    "train-interrupted-early": lambda f, t: _interrupted(t, at_step=1, save_every=0),
    "recipe-unknown": lambda f, t: cli(train_cli.main, ["--recipe", "nope"]),
    "demo-unknown-option": lambda f, t: cli(demo_cli.main, ["--bogus"]),
    "plot-name-clash": lambda f, t: _figure_clash(t),
    "imbalance-clamped": lambda f, t: said(train_cli.main, [*_loud(TINY_TRAIN), "--imbalance", "1e9", "--out",
                                                            str(t / "o")], "note:"),
    "empty-class-folder": lambda f, t: said(data_cli.main, ["--dataset", "imagefolder", "--data-root",
                                                            str(_image_tree(t, {"a": 6, "b": 4}, "empty")),
                                                            "--out", str(t / "o"), "--quiet"], "note:"),
    "subsample-opt-in": lambda f, t: said(data_cli.main, ["--dataset", "imagefolder", "--data-root",
                                                          str(_image_tree(t, {"a": 12, "b": 8, "c": 6})),
                                                          "--imbalance", "4", "--out", str(t / "o"), "--quiet"],
                                          "note:"),
    "random-frozen-backbone": lambda f, t: said(train_cli.main, [*_loud(TINY_TRAIN), "--adapter", "lora", "--out",
                                                                 str(t / "o")], "warning:"),
}

ROWS = read_table()


def test_table_and_cases_match():
    ids = [row["id"] for row in ROWS]
    assert len(ids) == len(set(ids)), "duplicate ids in the docs/robustness.md table"
    assert set(ids) == set(CASES), (set(ids) ^ set(CASES))
    assert len(ids) >= 15


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_bad_input_row(row, finished, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a pickled payload that ran would leave its file here
    before = set(tmp_path.rglob("*"))
    outcome, message = CASES[row["id"]](finished, tmp_path)
    expected_exit = int(row["exit"]) if row["exit"].isdigit() else row["exit"]
    assert outcome == expected_exit, (outcome, message)
    assert message_pattern(row["message"]).match(message), f"\n table: {row['message']}\n   got: {message}"
    assert not (tmp_path / "pwned-by-checkpoint").exists()
    assert "weights_only=False" not in message  # never the advice to load unsafely
    created = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert not [p for p in created if p.name.endswith(".tmp")], "a temporary file was left behind"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith((".partial", ".old")) or ".previous." in p.name]
    if expected_exit == 0:  # the run went on, and said so: its outputs are real
        return
    outputs = [p for p in created if INPUTS not in p.relative_to(tmp_path).parts]
    outputs = [p for p in outputs if p.suffix in (".png", ".pdf", ".md") or p.name == "metrics.json"
               or (p.name == "bounds.json" and p.parent.name != "b")]
    assert not outputs, f"output written despite the error: {outputs}"
