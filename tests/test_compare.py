"""The comparison command (experiments/compare.py) and its table (scilt_theory/compare.py)."""

from __future__ import annotations

import contextlib
import io
import json
import statistics

import pytest

from experiments import compare as compare_cli
from experiments._cli import UserError, run_main
from scilt_theory.checkpoint import load_run
from scilt_theory.compare import COLUMNS, compare_markdown, summarise

TINY = ["--num-classes", "3", "--imbalance", "4", "--max-per-class", "24", "--test-per-class", "4", "--img-size", "16",
        "--patch-size", "4", "--depth", "2", "--batch-size", "8", "--h2t-epochs", "1", "--warmup-epochs", "0"]


def _argv(out, methods="scilt,final_only", seeds="0,1", *extra):
    return ["--dataset", "synthetic-lt", "--methods", methods, "--seeds", seeds, "--epochs", "1", "--draws", "40",
            "--save-every", "2", "--quiet", "--out", str(out), *TINY, *extra]


def _rows():
    rows = []
    for i, (method, seed) in enumerate([("a", 0), ("a", 1), ("a", 2), ("b", 0)]):
        rows.append({"method": method, "seed": seed, **{key: 0.1 * (i + 1) + 0.01 * j for j, (key, _, _) in
                                                         enumerate(COLUMNS)}, "extra": None})
    return rows


def test_summary_is_the_mean_and_sample_std_over_seeds():
    rows = _rows()
    summary = summarise(rows, ["a", "b"])
    for key, _, _ in COLUMNS:
        values = [r[key] for r in rows if r["method"] == "a"]
        assert summary["a"][key]["mean"] == pytest.approx(statistics.mean(values))
        assert summary["a"][key]["std"] == pytest.approx(statistics.stdev(values))
        assert summary["b"][key]["std"] is None and summary["b"][key]["n"] == 1  # one seed: no spread
    assert summary["a"]["extra"] == {"mean": None, "std": None, "n": 0}
    assert summary["a"]["seeds"] == [0, 1, 2]


def test_markdown_table_has_one_row_per_method_with_mean_and_std():
    text = compare_markdown(summarise(_rows(), ["a", "b"]), title="T", notes=["a note"])
    lines = text.splitlines()
    assert lines[0] == "# T"
    row_a = next(line for line in lines if line.startswith("| a |"))
    cells = [c.strip() for c in row_a.strip("|").split("|")]
    assert cells[1] == "3" and cells[2] == "20.0 ± 10.0"  # balanced accuracy 0.1, 0.2, 0.3 in %
    row_b = next(line for line in lines if line.startswith("| b |"))
    assert "±" not in row_b
    assert len(cells) == 2 + len(COLUMNS) and "- a note" in lines


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    assert compare_cli.main(_argv(out)) == 0
    return out, json.loads((out / "compare.json").read_text())


def test_compare_writes_the_table_the_json_and_the_figure_from_the_runs(first):
    out, payload = first
    assert payload["methods"] == ["scilt", "final_only"] and payload["seeds"] == [0, 1]
    assert len(payload["rows"]) == 4 and all(not r["reused_run"] for r in payload["runs"])
    for row in payload["rows"]:
        run = out / "runs" / row["method"] / f"seed{row['seed']}"
        metrics = load_run(run / "run.pt")["metrics"]
        report = json.loads((run / "bounds" / "bounds.json").read_text())
        assert row["balanced_accuracy"] == metrics["balanced_accuracy"]
        assert row["overall_bound"] == report["overall"]["bound"]
        assert row["worst_class_bound"] == report["worst_class"]["bound"]
        assert row["erc_sum"] == report["rademacher"]["sum"]["value"]
    assert payload["summary"]["final_only"]["erc_penultimate"]["mean"] == 0.0  # F_{N-1} = {0}: radius 0
    assert payload["summary"]["scilt"]["erc_penultimate"]["mean"] > 0
    table = (out / "compare.md").read_text()
    assert "| scilt | 2 |" in table and "| final_only | 2 |" in table
    for ext in ("png", "pdf"):
        assert (out / f"compare_bound_vs_tail_error.{ext}").stat().st_size > 1000


def test_finished_runs_are_reused_and_a_killed_run_continues_to_the_same_numbers(first, monkeypatch):
    out, payload = first
    assert compare_cli.main(_argv(out)) == 0
    again = json.loads((out / "compare.json").read_text())
    assert all(r["reused_run"] and r["reused_bounds"] for r in again["runs"])
    assert again["rows"] == payload["rows"]

    # kill one run after its first periodic save (in process), then let compare continue it
    import scilt_theory.train_state as ts

    victim = out / "runs" / "final_only" / "seed1"
    for path in (victim / "run.pt", victim / "bounds" / "bounds.json"):
        path.unlink()

    class Killed(Exception):
        pass

    original = ts.PeriodicCheckpointer.maybe_save

    def kill(self, *args):
        if original(self, *args):
            raise Killed
        return False

    monkeypatch.setattr(ts.PeriodicCheckpointer, "maybe_save", kill)
    with pytest.raises(Killed):
        compare_cli.main(_argv(out))
    monkeypatch.setattr(ts.PeriodicCheckpointer, "maybe_save", original)
    assert load_run(victim / "run.pt", allow_unfinished=True)["finished"] is False
    assert compare_cli.main(_argv(out)) == 0
    resumed = json.loads((out / "compare.json").read_text())
    flags = {(r["method"], r["seed"]): r["reused_run"] for r in resumed["runs"]}
    assert flags.pop(("final_only", 1)) is False and all(flags.values())
    assert resumed["rows"] == payload["rows"]  # bit-identical continuation: the same table


def test_a_run_made_with_other_settings_is_refused_not_mixed(first):
    out, _ = first
    with pytest.raises(UserError, match="holds a run made with other settings"):
        compare_cli.main(_argv(out, "scilt", "0", "--lr", "0.5"))


@pytest.mark.parametrize("argv, message", [
    (["--methods", "scilt,nope"], "unknown method 'nope'"),
    (["--seeds", "0,x"], "comma-separated list of whole numbers"),
    (["--seeds", "1,1"], "repeats a value"),
    (["--seed", "3"], "--seed is set by compare for each run"),
    (["--met", "car"], "--met is set by compare for each run"),  # an abbreviation of train's --method
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--lr", "-1"], "lr must be a number > 0, got -1.0"),
])
def test_bad_arguments_give_one_line(tmp_path, argv, message):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = run_main(compare_cli.main, ["--out", str(tmp_path / "o"), *argv])
        except SystemExit as exc:  # argparse's own one-line error
            code = exc.code
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "o" / "compare.json").exists()
