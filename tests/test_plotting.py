"""Figures of a bounds report and the ``python -m experiments.plot`` command line.

The report is synthetic but follows bounds.json schema_version 2: ten classes with a long-tail training
profile (500 down to 0), bounds computed from THEORY §4's Corollary 5.4 formula so that some are vacuous (> 1)
and the class with n_c = 0 has none. Figure contents are checked on the Figure objects (what is drawn where),
the files by decoding them.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from experiments import plot as plot_cli  # noqa: E402
from scilt_theory import plotting  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COUNTS = (500, 250, 125, 62, 31, 15, 7, 3, 1, 0)
DELTA = 0.05


def _group(n: int, few: int = 20, many: int = 100) -> str:
    return "many" if n > many else "few" if n < few else "medium"


def _rc(value: float, stderr: float = 0.002) -> dict:
    return {"value": value, "stderr": stderr, "upper": value + 0.01, "lower": value - 0.01, "method": "mc",
            "n_draws": 1000}


def _record(name: str, target: str, bound, terms: dict, reason=None) -> dict:
    return {"name": name, "theory": "THEORY §4", "target": target, "certificate": False, "bound": bound,
            "vacuous": None if bound is None else bound > 1, "delta": DELTA, "terms": terms, "reason": reason}


def make_report(label: str = "scilt", scale: float = 1.0) -> dict:
    """A schema-2 bounds.json object; ``scale`` multiplies the complexities (to make distinct runs)."""
    k = len(COUNTS)
    rows, records = [], []
    for c, n in enumerate(COUNTS):
        test_error = round(0.05 + 0.63 * c / (k - 1), 3)
        if n == 0:
            rows.append({"class": c, "name": f"c{c}", "n_train": 0, "n_test": 20, "group": "few", "bound": None,
                         "reason": "no training examples", "train_margin_loss": None, "complexity": None,
                         "confidence": None, "test_error": test_error, "vacuous": None, "rho": None,
                         "rademacher": None})
            records.append(_record("corollary54", f"class:{c}", None, {}, "no training examples"))
            continue
        margin = round(0.02 + 0.27 * c / (k - 1), 3)
        complexity = scale * 3.0 / math.sqrt(n)
        confidence = 3.0 * math.sqrt(math.log(2 * k / DELTA) / (2 * n))  # THEORY §4, Corollary 5.4
        bound = margin + complexity + confidence
        rows.append({"class": c, "name": f"c{c}", "n_train": n, "n_test": 20, "group": _group(n), "bound": bound,
                     "reason": None, "train_margin_loss": margin, "complexity": complexity,
                     "confidence": confidence, "test_error": test_error, "vacuous": bound > 1, "rho": 0.5,
                     "rademacher": {"penultimate": _rc(0.1), "final": _rc(0.1), "sum": _rc(0.2)}})
        records.append({**_record("corollary54", f"class:{c}", bound, {"train_margin_loss": margin,
                                                                       "complexity": complexity,
                                                                       "confidence": confidence, "rho": 0.5}),
                        "floor": complexity + confidence})  # margins can reach rho: the floor drops the loss
        holdout = min(1.0, test_error + 2.0 / math.sqrt(n))
        records.append({**_record("holdout_certificate", f"class:{c}", holdout, {"errors": 1, "n": n}),
                        "family": "hold-out", "floor": 1 - 0.0125 ** (1 / n)})
    groups = {}
    for g in ("many", "medium", "few"):
        members = [r for r in rows if r["group"] == g]
        bounded = [r for r in members if r["bound"] is not None]

        def mean(key, sel):
            return float(np.mean([r[key] for r in sel])) if sel else None
        groups[g] = {"bound": mean("bound", bounded), "test_error": mean("test_error", members),
                     "num_classes": len(members), "num_classes_with_bound": len(bounded),
                     "classes": [r["class"] for r in members], "train_margin_loss": mean("train_margin_loss", bounded),
                     "complexity": mean("complexity", bounded), "confidence": mean("confidence", bounded)}
        records.append(_record("corollary54", f"group:{g}", groups[g]["bound"], {}))
    n = sum(COUNTS)
    overall_terms = {"train_margin_loss": 0.08, "complexity": scale * 3.0 / math.sqrt(n),
                     "confidence": 3.0 * math.sqrt(math.log(2 / DELTA) / (2 * n))}
    overall_bound = sum(overall_terms.values())
    records.append(_record("theorem53", "overall", overall_bound, dict(
        overall_terms, rho=0.5, curve=[[rho, 0.08 * rho, overall_bound - 0.08, 0.0] for rho in (0.25, 0.5, 1.0)])))
    bounded = [r for r in rows if r["bound"] is not None]
    worst_bound = max(bounded, key=lambda r: r["bound"])
    worst_test = max(rows, key=lambda r: r["test_error"])
    records.append(_record("corollary54", "worst_class", worst_bound["bound"], {"class": worst_bound["class"]}))
    return {
        "schema_version": 2, "mode": "diagnostic", "mode_description": "synthetic", "validity": "diagnostic",
        "run": {"checkpoint": "run.pt", "dataset": "synthetic-lt", "method": "scilt", "label": label,
                "head": "cosine", "scale": 16.0, "alpha": 0.5},
        "delta": DELTA, "delta_mc": 0.01, "n": n, "num_classes": k, "thresholds": {"many": 100, "few": 20},
        "radii": {"norm": "row", "penultimate": 24.0, "final": 8.0},
        "margin": {"grid": [0.25, 0.5, 1.0], "grid_size": 3, "chosen": 0.5},
        "rademacher": {"penultimate": _rc(0.061 * scale), "final": _rc(0.034 * scale),
                       "sum": _rc(0.095 * scale, 0.003), "unit_penultimate": _rc(0.0025 * scale),
                       "unit_final": _rc(0.004 * scale)},
        "coupled": {"value": 0.079 * scale, "stderr": 0.002, "upper": 0.09 * scale, "sum_value": 0.095 * scale,
                    "sum_stderr": 0.003, "ratio": 0.079 / 0.095, "method": "cvxpy", "n": 500, "num_outputs": k,
                    "scale": 16.0, "n_subsample": 500, "n_draws": 50},
        "statements": records,
        "overall": {"bound": overall_bound, **overall_terms, "balanced_test_error": 0.21, "train_error": 0.05,
                    "vacuous": overall_bound > 1, "rho": 0.5, "delta": DELTA, "n": n, "grid_size": 3},
        "per_class": rows, "groups": groups,
        "worst_class": {"bound": worst_bound["bound"], "bound_class": worst_bound["class"],
                        "bound_class_name": worst_bound["name"], "test_error": worst_test["test_error"],
                        "class": worst_test["class"], "name": worst_test["name"]},
        "overall_grid": [], "confidence": {"delta": DELTA}, "grid": {"rhos": [0.25, 0.5, 1.0]}, "settings": {},
        "spectral": None,
        "holdout": {"statement": "holdout_certificate", "split": "hold-out", "classifier": "the trained model",
                    "same_distribution": True, "delta": DELTA, "rows": []},
        "test_same_distribution": True,
        "timing": {"features_seconds": 1.0, "rademacher_seconds": 1.0, "total_seconds": 2.0},
    }


@pytest.fixture()
def report() -> dict:
    return make_report()


def _check_images(paths: list[Path], stem: Path) -> None:
    assert [p.name for p in paths] == [stem.name + ".png", stem.name + ".pdf"]
    png, pdf = paths
    image = mpimg.imread(png)
    height, width = image.shape[:2]
    # 200 dpi at paper widths: 3.4 in -> 680 px, 7 in -> 1400 px.
    assert width in (680, 1400), width
    assert 400 <= height <= 900, height
    assert image[..., :3].std() > 0.05  # not a blank canvas
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 2000
    assert not [p for p in stem.parent.iterdir() if p.name.endswith(".tmp")]
    mask = os.umask(0)
    os.umask(mask)
    assert all(p.stat().st_mode & 0o777 == 0o666 & ~mask for p in paths)  # not mkstemp's 0600


def _texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]


def _all_fonts_readable(fig) -> None:
    """Every text is at least MIN_FONT_PT at the figure's (paper) size, inside the canvas, and overlaps no other."""
    small = [(t.get_text(), t.get_fontsize()) for t in _texts(fig) if t.get_fontsize() < plotting.MIN_FONT_PT]
    assert not small, small
    assert fig.get_figwidth() in (plotting.SINGLE_COLUMN_IN, plotting.DOUBLE_COLUMN_IN)
    FigureCanvasAgg(fig)
    with plotting._style():
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _texts(fig)]
    outside = [text for text, b in boxes if b.x0 < -1 or b.y0 < -1 or b.x1 > width + 1 or b.y1 > height + 1]
    assert not outside, f"text cut off at the figure's edge: {outside}"
    overlapping = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]
    assert not overlapping, f"texts overlap: {overlapping}"


# ----------------------------------------------------------------------------------------------- figures

def test_the_synthetic_report_is_a_schema_2_report(report):
    assert plotting.as_report(report).to_json()["per_class"][9]["reason"] == "no training examples"


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r.update(schema_version=3), "schema_version 3"),
    (lambda r: r.update(schema_version=1), "schema_version 1; this scilt-theory reads schema_version 2"),
    (lambda r: r.pop("per_class"), "no 'per_class' field"),
    (lambda r: r.update(per_class=[]), "one row per class"),
    (lambda r: r["per_class"][0].update(n_train=-1), "negative count"),
    (lambda r: r["per_class"][0].update(bound="big"), r"per_class\[0\]\.bound must be a finite number"),
    (lambda r: r["thresholds"].update(few=200), "few <= many"),
    (lambda r: r.update(delta=None), "delta must be a finite number"),
    (lambda r: r.update(overall={}), "overall has no 'bound' field"),
    (lambda r: r["rademacher"].pop("sum"), "rademacher has no 'sum' field"),
    (lambda r: r["overall"].update(empirical_margin_loss=0.1), "unknown field"),
])
def test_bad_reports_are_refused_in_one_sentence(report, mutate, match):
    mutate(report)
    with pytest.raises(ValueError, match=match):
        plotting.as_report(report)
    with pytest.raises(ValueError, match=match):
        plotting.figure_bound_vs_tail_error(report)


def test_bound_vs_tail_error_clips_vacuous_bounds_and_marks_missing_ones(report, tmp_path):
    fig = plotting.figure_bound_vs_tail_error(report)
    ax = fig.axes[0]
    rows = report["per_class"]
    offsets = {c.get_label(): c.get_offsets() for c in ax.collections if c.get_label()}
    finite = [r for r in rows if r["bound"] is not None and r["bound"] <= 1]
    vacuous = [r for r in rows if r["bound"] is not None and r["bound"] > 1]
    assert 0 < len(vacuous) < len(rows) - 1  # the fixture has both kinds, and one class without a bound
    np.testing.assert_allclose(offsets["Cor. 5.4 bound"][:, 1], [r["bound"] for r in finite])
    np.testing.assert_allclose(offsets["Cor. 5.4 bound"][:, 0], [r["n_train"] for r in finite])
    np.testing.assert_allclose(offsets["class error, test split"][:, 1], [r["test_error"] for r in rows])
    # the hold-out certificate of every class with one, and the floor of every class whose floor is below 1
    certified = [r for r in report["statements"] if r["name"] == "holdout_certificate"]
    np.testing.assert_allclose(offsets["hold-out certificate (trained model)"][:, 1], [r["bound"] for r in certified])
    floors = [r["floor"] for r in report["statements"] if r["name"] == "corollary54" and r.get("floor") is not None]
    np.testing.assert_allclose(offsets["Cor. 5.4 floor"][:, 1], [f for f in floors if f <= 1])
    assert 0 < sum(f > 1 for f in floors)  # the fixture has classes vacuous by construction: hollow triangles
    # Every vacuous bound is drawn at the ceiling (not dropped) and its value is written.
    ceiling = [c.get_offsets() for c in ax.collections if not c.get_label() or c.get_label().startswith("_")]
    at_ceiling = np.concatenate(ceiling)
    assert sum(np.isclose(at_ceiling[:, 1], plotting.CEILING)) == len(vacuous) + 1  # + the class with no bound
    texts = {t.get_text() for t in _texts(fig)}
    for r in vacuous:
        assert plotting._fmt(r["bound"]) in texts
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert f"vacuous ({len(vacuous)} of {len(finite) + len(vacuous)})" in legend
    assert f"hollow: floor ≥ 1 ({sum(f > 1 for f in floors)})" in legend
    assert "no bound (1: no training examples)" in legend
    # Bands follow the thresholds: the edges sit between the integer counts of adjacent groups.
    band_lines = sorted(line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() != "-"
                        and len(set(line.get_xdata())) == 1)
    assert band_lines == [19.5, 100.5]
    assert {"Few", "Medium", "Many"} <= texts
    assert "synthetic-lt" in ax.get_title() and "diagnostic" in ax.get_title() and "δ = 0.05" in ax.get_title()
    _all_fonts_readable(fig)


def test_zero_count_class_sits_left_of_the_smallest_count_with_tick_label_zero(report):
    fig = plotting.figure_bound_vs_tail_error(report)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "0" and ax.get_xticks()[0] < 1
    test_points = next(c for c in ax.collections if c.get_label() == "class error, test split").get_offsets()
    assert test_points[-1, 0] == ax.get_xticks()[0]


def test_rademacher_figure_shows_values_errors_upper_and_coupled_ratio(report, tmp_path):
    fig = plotting.figure_rademacher(report)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    rc = report["rademacher"]
    np.testing.assert_allclose(heights, [rc["penultimate"]["value"], rc["final"]["value"], rc["sum"]["value"],
                                         report["coupled"]["value"]])
    uppers = next(c for c in ax.collections if len(c.get_offsets()) == 4).get_offsets()[:, 1]
    np.testing.assert_allclose(uppers, [rc[k]["upper"] for k in ("penultimate", "final", "sum")]
                               + [report["coupled"]["upper"]])
    assert f"coupled / sum = {report['coupled']['ratio']:.2f}" in {t.get_text() for t in _texts(fig)}
    _all_fonts_readable(fig)
    # Without the coupled class: three bars and no ratio.
    report["coupled"] = None
    fig = plotting.figure_rademacher(report)
    assert len(fig.axes[0].patches) == 3
    assert not any("coupled" in t.get_text() for t in _texts(fig))


def test_bound_decomposition_stacks_the_three_terms(report, tmp_path):
    fig = plotting.figure_bound_decomposition(report)
    assert len(fig.axes) == 2  # some bounds exceed the probability range: full scale + zoom
    full = fig.axes[0]
    # Bars are drawn group by group, three stacked terms each; groups without a bound draw none.
    keys = ["many", "medium", "few", "overall"]
    bars = full.patches
    assert len(bars) == 3 * len(keys)
    for j, g in enumerate(keys):
        info = report["overall"] if g == "overall" else report["groups"][g]
        terms = [info["train_margin_loss"], info["complexity"], info["confidence"]]
        stack = bars[3 * j: 3 * j + 3]
        np.testing.assert_allclose([b.get_height() for b in stack], terms)
        np.testing.assert_allclose([b.get_y() for b in stack], [0.0, terms[0], terms[0] + terms[1]])
        np.testing.assert_allclose(stack[-1].get_y() + stack[-1].get_height(), info["bound"])
    zoom = fig.axes[1]
    assert zoom.get_ylim()[1] == pytest.approx(plotting.Y_TOP)
    # The zoom cuts bars taller than the ceiling exactly there (segments below it unchanged) and marks them.
    tops = {}
    for bar in zoom.patches:
        x = round(bar.get_x() + bar.get_width() / 2)
        tops[x] = max(tops.get(x, 0.0), bar.get_y() + bar.get_height())
    totals = [report["groups"][g]["bound"] for g in keys[:3]] + [report["overall"]["bound"]]
    np.testing.assert_allclose([tops[j] for j in range(4)], [min(t, plotting.CEILING) for t in totals])
    cut_marks = [c.get_offsets()[0] for c in zoom.collections if c.get_paths() and len(c.get_offsets()) == 1
                 and c.get_offsets()[0][1] > plotting.CEILING]
    assert sorted(round(m[0]) for m in cut_marks) == [j for j, t in enumerate(totals) if t > plotting.CEILING]
    assert {plotting._fmt(t) for t in totals} <= {t.get_text() for t in zoom.texts}
    assert any(np.isclose(line.get_ydata()[0], 1.0) for line in zoom.get_lines())  # the vacuity line
    _all_fonts_readable(fig)


def test_bound_decomposition_uses_one_panel_when_every_bound_is_a_probability(report):
    for g in report["groups"].values():
        g.update(bound=0.5, train_margin_loss=0.1, complexity=0.3, confidence=0.1)
    report["overall"].update(bound=0.4, train_margin_loss=0.1, complexity=0.2, confidence=0.1)
    fig = plotting.figure_bound_decomposition(report)
    assert len(fig.axes) == 1 and fig.get_figwidth() == plotting.SINGLE_COLUMN_IN


def test_overlay_draws_every_run_and_rejects_mismatched_thresholds(tmp_path):
    reports = [make_report("scilt"), make_report("lift", scale=1.6), make_report("car", scale=0.7)]
    fig = plotting.figure_overlay(reports)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t.split(":")[0] for t in legend[:3]] == ["scilt", "lift", "car"]
    assert legend[0] == "scilt: 6 of 9 class bounds > 1 (max 8.45)"  # the class with n_c = 0 has no bound
    _all_fonts_readable(fig)
    legend = [t.get_text() for t in plotting.figure_overlay(reports, labels=["A", "B", "C"]).legends[0].get_texts()]
    assert [t.split(":")[0] for t in legend[:3]] == ["A", "B", "C"]
    reports[1]["thresholds"]["few"] = 10
    with pytest.raises(ValueError, match="different Many/Few thresholds"):
        plotting.figure_overlay(reports)


def test_hundred_classes_and_five_runs_stay_readable(monkeypatch):
    # A CIFAR-100-LT-like profile (500 down to 5): most tail bounds vacuous, too many to label each one.
    monkeypatch.setattr(sys.modules[__name__], "COUNTS", tuple(int(500 * 0.01 ** (i / 99)) for i in range(100)))
    report = make_report()
    fig = plotting.figure_bound_vs_tail_error(report)
    vacuous = sum(r["bound"] > 1 for r in report["per_class"])
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert f"({vacuous} of 100)" in legend and "values shown" in legend  # says that not every value is written
    _all_fonts_readable(fig)
    runs = [make_report(name, scale) for name, scale in (("a", 1), ("b", 1.5), ("c", 0.5), ("d", 2), ("e", 3))]
    _all_fonts_readable(plotting.figure_overlay(runs))


def test_run_labels_disambiguate_repeats():
    reports = [make_report("scilt"), make_report("scilt")]
    assert plotting.run_labels(reports, fallbacks=["seed0", "seed1"]) == ["scilt (seed0)", "scilt (seed1)"]
    with pytest.raises(ValueError, match="one label per run"):
        plotting.run_labels(reports, labels=["a"])


def test_write_all_plots_writes_five_figures_and_leaves_the_report_alone(report, tmp_path):
    before = copy.deepcopy(report)
    paths = plotting.write_all_plots(report, tmp_path / "out")
    stems = ("bound_vs_tail_error", "rademacher", "bound_decomposition", "bound_vs_n", "statements")
    assert sorted(p.name for p in paths) == sorted(f"{s}.{e}" for s in stems for e in ("png", "pdf"))
    for stem in stems:
        _check_images([p for p in paths if p.stem == stem], tmp_path / "out" / stem)
    assert report == before


# ---------------------------------------------------------------------------------------------- the CLI

def _write_run(directory: Path, report: dict) -> Path:
    directory.mkdir(parents=True)
    (directory / "bounds.json").write_text(json.dumps(report))
    return directory


def test_cli_writes_the_overlay(tmp_path, capsys):
    a = _write_run(tmp_path / "runs" / "a", make_report("scilt"))
    b = _write_run(tmp_path / "runs" / "b", make_report("lift", scale=1.5))
    assert plot_cli.main(["--bounds", str(a), str(b)]) == 0
    out = capsys.readouterr().out.split()
    expected = [tmp_path / "runs" / "overlay.png", tmp_path / "runs" / "overlay.pdf"]
    assert [Path(p) for p in out] == expected
    _check_images(expected, tmp_path / "runs" / "overlay")


@pytest.mark.parametrize("case", ["missing_dir", "missing_file", "bad_json", "wrong_version", "no_dirs",
                                  "label_count", "not_an_object"])
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, case):
    good = _write_run(tmp_path / "runs" / "good", make_report())
    bad = tmp_path / "runs" / "bad"
    args = ["--bounds", str(good), str(bad)]
    if case == "missing_file":
        bad.mkdir()
    elif case == "bad_json":
        bad.mkdir()
        (bad / "bounds.json").write_text('{"schema_version": 1, ')
    elif case == "wrong_version":
        _write_run(bad, {**make_report(), "schema_version": 0})
    elif case == "not_an_object":
        bad.mkdir()
        (bad / "bounds.json").write_text("[1, 2]")
    elif case == "no_dirs":
        args = ["--bounds"]
    elif case == "label_count":
        args = ["--bounds", str(good), "--labels", "a", "b"]
    before = sorted(p for p in tmp_path.rglob("*"))
    assert plot_cli.main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_cli_runs_as_a_module(tmp_path):
    a = _write_run(tmp_path / "a", make_report())
    env = {**os.environ, "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    # A suffix on --out is dropped and both formats are written; --labels names the runs.
    ok = subprocess.run([sys.executable, "-m", "experiments.plot", "--bounds", str(a), "--out",
                         str(tmp_path / "figs" / "fig.png"), "--labels", "mine"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    expected = [tmp_path / "figs" / "fig.png", tmp_path / "figs" / "fig.pdf"]
    assert ok.stdout.split() == [str(p) for p in expected]
    _check_images(expected, tmp_path / "figs" / "fig")
    bad = subprocess.run([sys.executable, "-m", "experiments.plot", "--bounds", str(tmp_path / "nope")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_bound_vs_n_draws_bound_and_floor_from_the_stored_grid_and_marks_the_model_n(report):
    fig = plotting.figure_bound_vs_n(report)
    ax = fig.axes[0]
    record = next(r for r in report["statements"] if r["name"] == "theorem53")
    curve = np.array(record["terms"]["curve"])
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 10]
    bound_line, floor_line = lines[0], lines[1]
    n0 = report["n"]
    for line, first in ((bound_line, 1), (floor_line, 3)):
        x, y = line.get_xdata(), line.get_ydata()
        expected = (curve[None, :, first] + curve[None, :, 2] * np.sqrt(n0 / x)[:, None]).min(axis=1)
        np.testing.assert_allclose(y, expected)
    # at the model's n the bound is the record's bound; the floor is never above the bound
    marker = next(line for line in ax.get_lines() if len(line.get_xdata()) == 1 and line.get_xdata()[0] == n0)
    assert marker.get_ydata()[0] == pytest.approx(record["bound"])
    assert np.all(floor_line.get_ydata() <= bound_line.get_ydata() + 1e-12)
    _all_fonts_readable(fig)


def test_statements_figure_puts_each_bound_beside_the_value_of_what_it_bounds(report):
    overall = next(r for r in report["statements"] if r["name"] == "theorem53" and r["target"] == "overall")
    overall["compared_with"] = {"quantity": "prior-weighted error", "split": "test", "value": 0.21,
                                "same_distribution": True}
    fig = plotting.figure_statements(report)
    ax = fig.axes[0]
    markers = [line for line in ax.get_lines() if len(line.get_xdata()) == 1]
    dashes = [line for line in ax.get_lines() if len(line.get_xdata()) == 2 and line.get_linestyle() == "-"]
    groups = [g for g in ("many", "medium", "few") if report["groups"][g]["num_classes"]]
    # the overall contract value and every group's Corollary 5.4 mean are drawn at their bounds
    drawn = {round(float(m.get_ydata()[0]), 9) for m in markers}
    assert round(overall["bound"], 9) in drawn
    assert all(round(report["groups"][g]["bound"], 9) in drawn for g in groups)
    # the test-split value of the prior-weighted error stands beside the overall bound
    assert any(np.allclose(d.get_ydata(), 0.21) for d in dashes)
    assert [t.get_text().split("\n")[1] for t in ax.get_xticklabels()] == \
        ["(prior-weighted error)"] + ["(group balanced error)"] * len(groups)
    _all_fonts_readable(fig)
