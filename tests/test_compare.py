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
from scilt_theory.compare import COLUMNS, compare_markdown, rank_correlations, summarise

TINY = ["--num-classes", "3", "--imbalance", "4", "--max-per-class", "24", "--test-per-class", "4", "--img-size", "16",
        "--patch-size", "4", "--depth", "2", "--batch-size", "8", "--h2t-epochs", "1", "--warmup-epochs", "0"]


def _argv(out, methods="scilt,final_only", seeds="0,1", *extra):
    return ["--dataset", "synthetic-lt", "--recipe", "scratch", "--methods", methods, "--seeds", seeds, "--epochs", "1",
            "--draws", "40", "--save-every", "2", "--quiet", "--out", str(out), *TINY, *extra]


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
    # the τ across runs is computed from the rows it reports (4 runs: scilt and final_only, 2 seeds)
    assert payload["rank_correlation"] == rank_correlations(payload["rows"])
    assert "Kendall τ" in table and "| Thm 5.3 (prior-weighted error) |" in table
    for ext in ("png", "pdf"):
        assert (out / f"compare_bound_vs_tail_error.{ext}").stat().st_size > 1000


def test_compare_writes_the_class_by_class_tau_of_its_runs_reports(first):
    from scilt_theory.compare import class_rank_correlations
    from scilt_theory.run_record import read_run
    from scilt_theory.schema import read_report

    out, payload = first
    runs = [out / "runs" / r["method"] / f"seed{r['seed']}" for r in payload["rows"]]
    reports = [read_report(run / "bounds" / "bounds.json") for run in runs]
    got = payload["class_rank_correlation"]
    assert got == json.loads(json.dumps(class_rank_correlations(reports)))  # from the 4 runs' own reports
    across = got["across_runs"]["corollary54"]
    assert sorted(across) == ["class:0", "class:1", "class:2"] and all(s["n"] == 4 for s in across.values())
    assert got["within_runs"]["corollary54"]["runs"] == 4
    table = (out / "compare.md").read_text()
    section = table[table.index("## Do the class bounds rank runs and classes"):]
    assert table.index("Kendall τ, Jiang et al.") < table.index("## Do the class bounds rank runs and classes")
    names = read_run(runs[0] / "run.pt").class_names
    header = next(line for line in section.splitlines() if line.startswith("| statement |"))
    assert header == "| statement | " + " | ".join(names) + " |"  # the classes named as the data names them
    assert "| corollary54 |" in section and "| corollary54 | 4 |" in section


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


def test_a_comparison_config_refuses_unknown_references_and_unpaired_names():
    from scilt_theory.comparison import ComparisonConfig

    base = {"dataset": "synthetic-lt", "recipe": "scratch", "methods": ("scilt", "final_only"), "seeds": (0,),
            "out": "o"}
    with pytest.raises(ValueError, match="unknown reference 'nope'"):
        ComparisonConfig(**base, references=("nope",))
    with pytest.raises(ValueError, match="paired reference 'linear_probe\\[final\\]' is not compared here"):
        ComparisonConfig(**base, paired_references=("linear_probe[final]",))
    config = ComparisonConfig(**base, references=("linear_probe",), paired_references=("linear_probe[final]",))
    assert config.reference_rows == ["linear_probe[penultimate]", "linear_probe[final]", "linear_probe[both]"]
    assert config.train_argv("scilt", 3, "D")[-6:] == ["--method", "scilt", "--seed", "3", "--out", "D"]


# ---- paired differences (scilt_theory/compare.py) --------------------------------------------------------------
def test_paired_difference_matches_a_hand_computed_case():
    from scilt_theory.compare import paired_difference

    # differences 0.05, -0.02, 0.10 on seeds 0, 1, 2; with 2 degrees of freedom the t distribution has the closed
    # form F(t) = 1/2 + t / (2 sqrt(2 + t^2)) and the 97.5 % quantile is 4.302652729...
    got = paired_difference({0: 0.80, 1: 0.70, 2: 0.90}, {0: 0.75, 1: 0.72, 2: 0.80})
    d = [0.05, -0.02, 0.10]
    mean = sum(d) / 3
    std = (sum((x - mean) ** 2 for x in d) / 2) ** 0.5
    se = std / 3 ** 0.5
    t = mean / se
    p = 2 * (0.5 - t / (2 * (2 + t * t) ** 0.5))
    assert got["n"] == 3 and got["seeds"] == [0, 1, 2]
    assert got["mean"] == pytest.approx(0.0433333333, rel=1e-9) and got["std"] == pytest.approx(std, rel=1e-12)
    assert std == pytest.approx(0.0602771377, rel=1e-9)
    assert got["ci_low"] == pytest.approx(mean - 4.302652729911275 * se, rel=1e-9)
    assert got["ci_high"] == pytest.approx(mean + 4.302652729911275 * se, rel=1e-9)
    assert got["t"] == pytest.approx(t, rel=1e-9) and got["p_value"] == pytest.approx(p, rel=1e-9)
    assert got["p_value"] == pytest.approx(0.339172, abs=1e-6)


def test_paired_difference_edge_cases():
    from scilt_theory.compare import paired_difference

    one = paired_difference({0: 0.5, 1: None}, {0: 0.4, 1: 0.3})  # a None drops its seed
    assert one["n"] == 1 and one["mean"] == pytest.approx(0.1) and one["std"] is None and one["p_value"] is None
    flat = paired_difference({0: 0.75, 1: 0.5}, {0: 0.5, 1: 0.25})  # no spread: the interval is the point
    assert flat["std"] == 0.0 and flat["ci_low"] == flat["ci_high"] == 0.25
    assert flat["t"] is None and flat["p_value"] is None
    none = paired_difference({3: 0.5}, {0: 0.4})
    assert none["n"] == 0 and none["mean"] is None


def test_paired_differences_pair_by_seed_and_say_when_only_common_seeds_are_used():
    from scilt_theory.compare import paired_differences, paired_markdown

    rows = [{"method": "ref", "seed": s, "balanced_accuracy": b, "few_accuracy": f, "worst_class_accuracy": w}
            for s, b, f, w in [(0, 0.5, 0.2, 0.1), (1, 0.6, 0.3, 0.2), (2, 0.7, None, 0.3)]]
    rows += [{"method": "m", "seed": s, "balanced_accuracy": b, "few_accuracy": f, "worst_class_accuracy": w}
             for s, b, f, w in [(0, 0.55, 0.3, 0.1), (1, 0.62, 0.35, 0.25), (5, 0.9, 0.9, 0.9)]]
    paired = paired_differences(rows, ["ref", "m"], reference="ref")
    entry = paired["methods"]["m"]
    assert list(paired["methods"]) == ["m"] and paired["reference"] == "ref"
    assert entry["seeds"] == [0, 1] and entry["unpaired_seeds"] == [2, 5] and entry["common_seeds_only"]
    assert entry["balanced_accuracy"]["mean"] == pytest.approx((0.05 + 0.02) / 2)
    assert entry["few_accuracy"]["n"] == 2 and entry["few_accuracy"]["mean"] == pytest.approx(0.075)
    text = paired_markdown(paired)
    assert "## Paired differences against ref" in text and "| m | 2 |" in text
    assert "m: paired on the seeds it shares with ref only (0, 1; unpaired: 2, 5)" in text
    json.dumps(paired, allow_nan=False)  # JSON-safe


def test_compare_adds_linear_probe_rows_and_the_paired_table(first):
    out, payload = first
    assert compare_cli.main(_argv(out, "scilt,final_only", "0,1", "--references", "linear_probe")) == 0
    got = json.loads((out / "compare.json").read_text())
    assert all(r["reused_run"] for r in got["runs"])  # the trained runs are reused, only the probes are new
    names = ["linear_probe[penultimate]", "linear_probe[final]", "linear_probe[both]"]
    assert got["reference_rows"] == names
    probe = [r for r in got["rows"] if r["method"].startswith("linear_probe")]
    assert sorted((r["method"], r["seed"]) for r in probe) == sorted((n, s) for n in names for s in (0, 1))
    for row in probe:
        result = got["references"]["linear_probe"][str(row["seed"])]
        view = row["method"][len("linear_probe["):-1]
        assert row["balanced_accuracy"] == result["views"][view]["cv"]["metrics"]["balanced_accuracy"]
        assert row["probe_c"] == result["views"][view]["cv"]["C"]
        assert row["c1_balanced_accuracy"] == result["views"][view]["c1"]["metrics"]["balanced_accuracy"]
        assert "overall_bound" not in row
    assert got["summary"]["linear_probe[final]"]["overall_bound"]["mean"] is None
    table = (out / "compare.md").read_text()
    line = next(x for x in table.splitlines() if x.startswith("| linear_probe[both] | 2 |"))
    cells = [c.strip() for c in line.strip().strip("|").split("|")][2:]
    assert [cell == "—" for cell, (_, _, kind) in zip(cells, COLUMNS) if kind == "value"] == \
        [True] * sum(kind == "value" for _, _, kind in COLUMNS)  # every bound column is empty
    assert cells[0] != "—"  # and the balanced accuracy is there
    assert "## Paired differences against final_only" in table and "## Linear probe" in table
    assert [table["reference"] for table in got["paired"]] == ["final_only"]  # one table per reference
    paired = got["paired"][0]
    assert paired["reference"] == "final_only" and set(paired["methods"]) == {"scilt", *names}
    rows = {(r["method"], r["seed"]): r for r in got["rows"]}
    diffs = [rows["scilt", s]["balanced_accuracy"] - rows["final_only", s]["balanced_accuracy"] for s in (0, 1)]
    assert paired["methods"]["scilt"]["balanced_accuracy"]["mean"] == pytest.approx(sum(diffs) / 2)
    assert paired["methods"]["scilt"]["balanced_accuracy"]["n"] == 2
    # a second call reuses the probe results
    assert compare_cli.main(_argv(out, "scilt,final_only", "0,1", "--references", "linear_probe")) == 0
    again = json.loads((out / "compare.json").read_text())
    assert all(r["reused"] for r in again["references"]["linear_probe"].values())
    assert [r for r in again["rows"] if r["method"].startswith("linear")] == probe


def test_paired_reference_takes_a_list_one_table_each(first):
    out, payload = first
    assert compare_cli.main(_argv(out, "scilt,final_only", "0,1", "--paired-reference", "final_only,scilt")) == 0
    got = json.loads((out / "compare.json").read_text())
    assert all(r["reused_run"] and r["reused_bounds"] for r in got["runs"])
    assert [t["reference"] for t in got["paired"]] == ["final_only", "scilt"]
    assert list(got["paired"][0]["methods"]) == ["scilt"] and list(got["paired"][1]["methods"]) == ["final_only"]
    ahead = got["paired"][0]["methods"]["scilt"]["balanced_accuracy"]["mean"]
    assert got["paired"][1]["methods"]["final_only"]["balanced_accuracy"]["mean"] == pytest.approx(-ahead)
    table = (out / "compare.md").read_text()
    assert "## Paired differences against final_only" in table and "## Paired differences against scilt" in table


def test_runs_are_identified_by_their_configs_not_by_how_the_options_were_spelled(first):
    out, payload = first
    # --out with a trailing slash, the learning rate of the recipe spelled out, the options in another order
    argv = _argv(str(out) + "/", "scilt,final_only", "0,1", "--lr", "0.001")
    argv = argv[argv.index("--out"):] + argv[:argv.index("--out")]
    assert compare_cli.main(argv) == 0
    again = json.loads((out / "compare.json").read_text())
    assert all(r["reused_run"] and r["reused_bounds"] for r in again["runs"])
    assert again["rows"] == payload["rows"]


def test_a_run_dir_of_the_previous_version_is_reused_through_its_argument_list(first):
    """compare_args.json of the previous release holds argument lists; they resolve to the same configs."""
    out, payload = first
    scratch = ["--arch", "vit_tiny_patch16_224", "--img-size", "32", "--patch-size", "4", "--depth", "6", "--adapter",
               "full", "--epochs", "15", "--batch-size", "64", "--optimizer", "adamw", "--lr", "1e-3",
               "--weight-decay", "0.05", "--warmup-epochs", "1"]  # the old argv recipe "scratch"
    stamps = {}
    for method, seed in (("scilt", 0), ("final_only", 1)):
        run = out / "runs" / method / f"seed{seed}"
        stamps[run] = {p: p.stat().st_mtime_ns for p in (run / "run.pt", run / "bounds" / "bounds.json")}
        old = {"train": ["--dataset", "synthetic-lt", *scratch, "--epochs", "1", *TINY, "--method", method, "--seed",
                         str(seed), "--out", str(run)],
               "bounds": ["--ckpt", str(run / "run.pt"), "--out", str(run / "bounds"), "--draws", "40", "--quiet",
                          "--no-plots"]}
        (run / "compare_args.json").write_text(json.dumps(old))
    assert compare_cli.main(_argv(out)) == 0
    again = json.loads((out / "compare.json").read_text())
    assert all(r["reused_run"] and r["reused_bounds"] for r in again["runs"]) and again["rows"] == payload["rows"]
    for before in stamps.values():  # nothing was trained or computed again
        assert {p: p.stat().st_mtime_ns for p in before} == before
    probe = out / "references" / "linear_probe" / "seed0"  # a reference result of the previous version, too
    (probe / "compare_args.json").write_text(json.dumps({"train": [
        "--dataset", "synthetic-lt", *scratch, "--epochs", "1", *TINY, "--method", "scilt", "--seed", "0", "--out",
        str(probe)]}))
    assert compare_cli.main(_argv(out, "scilt", "0", "--references", "linear_probe")) == 0
    assert json.loads((out / "compare.json").read_text())["references"]["linear_probe"]["0"]["reused"]
    # an old argument list of other settings is not reused
    run = out / "runs" / "scilt" / "seed0"
    old = json.loads((run / "compare_args.json").read_text())
    old["train"] = [a if a != "1e-3" else "2e-3" for a in old["train"]]
    (run / "compare_args.json").write_text(json.dumps(old))
    with pytest.raises(UserError, match="holds a run made with other settings"):
        compare_cli.main(_argv(out, "scilt", "0"))
    old["train"] = [a if a != "2e-3" else "1e-3" for a in old["train"]]
    (run / "compare_args.json").write_text(json.dumps(old))


@pytest.mark.parametrize("argv, message", [
    (["--references", "nope"], "unknown reference 'nope'"),
    (["--paired-reference", "car"], "--paired-reference 'car' is not compared here"),
    (["--paired-reference", "scilt,car"], "--paired-reference 'car' is not compared here"),
])
def test_bad_reference_arguments_give_one_line(tmp_path, argv, message):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run_main(compare_cli.main, ["--out", str(tmp_path / "o"), "--methods", "scilt", *argv])
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], lines


def test_compare_json_names_what_its_test_errors_estimate(first):
    out, payload = first
    population = payload["population"]
    # synthetic-lt states no law: the block says so instead of naming one
    assert population["dataset"] == "synthetic-lt" and population["law"] is None
    assert population["test_per_class"] == [4, 4, 4]
    assert "no stated law" in population["errors_estimate"]
    assert "population: none stated" in (out / "compare.md").read_text()


def test_a_data_set_with_a_stated_law_is_named_by_that_law():
    from scilt_theory.comparison import population_of
    from scilt_theory.data import DataConfig
    from scilt_theory.data.population import law_of

    config = DataConfig(name="scitiles-pop", image_size=32, photons=50.0)
    block = population_of(config, [500] * 9, True)
    assert block["law"] == law_of(config).sentence() and "Poisson(50 v)/50" in block["law"]
    assert block["test_per_class"] == [500] * 9 and "estimate of the population error" in block["errors_estimate"]
    assert population_of(DataConfig(name="digits-lt"), None, True)["law"] is None


def test_a_dataset_spec_refuses_a_law_that_is_not_callable():
    from scilt_theory.data.registry import DatasetSpec, build_dataset

    with pytest.raises(ValueError, match="law of 'x' must be None or callable"):
        DatasetSpec("x", build_dataset, reads_files=False, law="P_c")
