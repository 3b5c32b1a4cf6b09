"""Paper-ready figures of a bounds report (scilt_theory/schema.py's BoundsReport, written as bounds.json).

What is drawn is what docs/THEORY.md states; nothing is computed here beyond clipping for display:

- per class, the Corollary 5.4 bound (THEORY §4)
  ``P_{D_c}(error) <= R̂_{S_c,ρ}(f) + (4/ρ)[R̂ᵛ_{S_c}(F_{N-1}) + R̂ᵛ_{S_c}(F_N)] + 3 sqrt(ln(2K/δ)/(2 n_c))``
  against the measured test error and train margin loss, over the training count n_c;
- the empirical Rademacher complexities of F_{N-1}, F_N and their Lemma 5.1 sum (THEORY §2, §5), with the
  coupled class and its tightness ratio;
- the three terms of the bound per Many/Medium/Few group and overall (Theorem 5.3 and Corollary 5.4).

Bounds above 1 are vacuous (THEORY §4): they are drawn at ``CEILING`` with an upward triangle and their value
written beside, never dropped. Figures are sized for papers (3.4 in single column, 7 in double column) with
fonts of at least ``MIN_FONT_PT`` points at that size, the Okabe-Ito colour-blind-safe palette, and a distinct
marker or hatch for every series so that they read in grey scale too. Every figure is written as PNG (dpi 200)
and PDF, atomically. Only the object-oriented ``matplotlib.figure.Figure`` API is used: no pyplot, no global
backend switch, so importing this module never disturbs a notebook's backend.
"""

from __future__ import annotations

import contextlib
import math
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from scilt_theory.schema import BoundsReport

CEILING = 1.05  # display height of vacuous (> 1) bounds; they are clipped here and marked
Y_TOP = 1.2  # top of the y-axes that show probabilities: room for the ceiling markers and their values
SINGLE_COLUMN_IN = 3.4
DOUBLE_COLUMN_IN = 7.0
DPI = 200
MIN_FONT_PT = 7.0
GROUPS = ("many", "medium", "few")
GROUP_TITLES = {"many": "Many", "medium": "Medium", "few": "Few", "overall": "Overall"}

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7"}
C_BOUND = OKABE_ITO["vermillion"]
C_TEST = OKABE_ITO["blue"]
C_MARGIN = OKABE_ITO["bluish_green"]
C_COMPLEXITY = OKABE_ITO["orange"]
C_CONFIDENCE = OKABE_ITO["sky_blue"]
C_NOBOUND = "#777777"
# Runs in overlays: yellow is left out (too light on white). "^" is reserved for clipped (vacuous) bounds.
RUN_COLOURS = (OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["bluish_green"], OKABE_ITO["reddish_purple"],
               OKABE_ITO["orange"], OKABE_ITO["sky_blue"], OKABE_ITO["black"])
RUN_MARKERS = ("o", "s", "D", "v", "P", "X", "h", "<", ">", "p")
MAX_LABELLED_RUNS = 3  # overlays with more runs do not write the values of vacuous group bounds (no room)
BAND_FILLS = {"few": "#e6e6e6", "medium": "#f4f4f4", "many": "#ffffff"}

STYLE = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
    "legend.fontsize": 7, "figure.titlesize": 8, "legend.title_fontsize": 7,
    "axes.spines.top": False, "axes.spines.right": False, "axes.linewidth": 0.6,
    "xtick.major.width": 0.6, "ytick.major.width": 0.6, "lines.linewidth": 1.0, "lines.markersize": 4.5,
    "legend.frameon": False, "legend.handlelength": 1.6, "legend.columnspacing": 1.2,
    "pdf.fonttype": 42, "ps.fonttype": 42,  # embed TrueType, as journals ask
    "savefig.dpi": DPI, "figure.dpi": 100, "hatch.linewidth": 0.6, "hatch.color": "#333333",
}


# --------------------------------------------------------------------------------------------- reading

def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def as_report(report: BoundsReport | dict) -> BoundsReport:
    """The report as a :class:`~scilt_theory.schema.BoundsReport` (a bounds.json object is read and checked).

    Raises
    ------
    ValueError
        (:class:`~scilt_theory.schema.ReportError`) one sentence naming the first field that is wrong, or a
        schema version these figures do not read.
    """
    if isinstance(report, BoundsReport):
        return report
    return BoundsReport.from_json(report)


# ------------------------------------------------------------------------------------------------ helpers

@contextlib.contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(STYLE):
        yield


def _fmt(value: float) -> str:
    """Short number for annotations: 3 significant digits, scientific only when large."""
    if abs(value) >= 1000:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.3g}" if abs(value) >= 0.01 else f"{value:.2g}"


def _title(report: BoundsReport, what: str) -> str:
    parts = [report.run.dataset, report.run.method, f"{report.mode} mode", f"δ = {report.delta:g}"]
    return f"{what} — " + ", ".join(parts)


def _save(fig: Figure, out_stem: Path) -> list[Path]:
    """Write ``out_stem.png`` (dpi 200) and ``out_stem.pdf`` as a pair (:func:`~scilt_theory.checkpoint.atomic_files`:
    both are drawn into temporary files first, then renamed into place together), so the two never come from
    different runs."""
    from scilt_theory.checkpoint import atomic_files

    out_stem = Path(out_stem)
    paths = [out_stem.parent / f"{out_stem.name}.{ext}" for ext in ("png", "pdf")]
    clash = [p for p in paths if p.is_dir()]
    if clash:
        raise ValueError(f"cannot write the figure {clash[0]}: a folder of that name is in the way")
    with atomic_files(*paths) as temps:
        for tmp, path in zip(temps, paths):
            ext = path.suffix[1:]
            # Fixed metadata: the same report gives the same bytes (no creation date in the file).
            metadata = {"Software": None} if ext == "png" else {"CreationDate": None, "Creator": None,
                                                                 "Producer": None}
            with open(tmp, "wb") as handle:
                fig.savefig(handle, format=ext, dpi=DPI, metadata=metadata)
    return paths


class _TailAxis:
    """Log x-axis over training counts, with n = 0 drawn at a labelled position left of the smallest count."""

    def __init__(self, counts: Sequence[int], few: float, many: float):
        positive = [n for n in counts if n > 0]
        smallest = min(positive + [max(few, 1.0)])
        self.smallest = smallest
        self.has_zero = any(n == 0 for n in counts)
        self.zero_x = min(0.5, smallest / 2.0)
        left = self.zero_x if self.has_zero else smallest
        self.lo = left / 1.6
        self.hi = max(positive + [many + 1.0]) * 1.6
        self.few_edge = few - 0.5  # integer counts: Few is n <= few - 1, Medium few..many, Many >= many + 1
        self.many_edge = many + 0.5

    def x(self, n: int) -> float:
        return self.zero_x if n == 0 else float(n)

    def decorate(self, ax, *, band_labels: bool = True, bands: bool = True) -> None:
        """Log axis with ticks; ``bands``: the Few / Medium / Many bands and their edges (only where the axis
        shows the counts the groups are defined on)."""
        ax.set_xscale("log")
        edges = {"few": (self.lo, max(self.lo, self.few_edge)),
                 "medium": (max(self.lo, self.few_edge), min(self.hi, self.many_edge)),
                 "many": (min(self.hi, self.many_edge), self.hi)} if bands else {}
        above = blended_transform_factory(ax.transData, ax.transAxes)
        for group, (a, b) in edges.items():
            if b <= a:
                continue
            ax.axvspan(a, b, color=BAND_FILLS[group], zorder=0, lw=0)
            if band_labels:
                ax.text(math.sqrt(a * b), 1.01, GROUP_TITLES[group], transform=above, ha="center", va="bottom",
                        fontsize=7, color="#333333")
        for edge in (self.few_edge, self.many_edge) if bands else ():
            if self.lo < edge < self.hi:
                ax.axvline(edge, color="#999999", lw=0.6, ls=(0, (2, 2)), zorder=0.5)
        decades = range(math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi)) + 1)
        ticks = [10.0 ** d for d in decades if self.lo <= 10.0 ** d <= self.hi and 10.0 ** d >= 1]
        if len(ticks) < 2:  # a narrow range (e.g. every class between 20 and 90): label 2 and 5 as well
            ticks = sorted(t for t in {m * 10.0 ** d for d in decades for m in (1, 2, 5)}
                           if self.lo <= t <= self.hi and t >= 1)
        labels = [f"{t:g}" for t in ticks]
        if self.has_zero:
            ticks = [self.zero_x] + ticks
            labels = ["0"] + labels
        ax.set_xticks(ticks, labels)
        minor = [m * 10.0 ** d for d in decades for m in range(2, 10)
                 if max(1.0, self.lo) < m * 10.0 ** d < self.hi and m * 10.0 ** d not in ticks]
        ax.set_xticks(minor, minor=True)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlim(self.lo, self.hi)  # after the ticks: set_xticks widens the view to show every tick
        if self.has_zero:
            # A small break mark says the axis jumps from 0 to the log range.
            mid = math.sqrt(self.zero_x * self.smallest)
            for shift in (0.93, 1.07):
                ax.plot([mid * shift / 1.05, mid * shift * 1.05], [-0.025, 0.025], transform=above,
                        color="black", lw=0.8, clip_on=False)


def _annotate_clipped(ax, xs: Sequence[float], values: Sequence[float], *, color: str, min_gap_decades: float,
                      y: float = CEILING + 0.035) -> int:
    """Write the value of each clipped bound above its triangle, skipping labels that would overlap.

    Returns the number of clipped bounds whose value could not be written (said in a note by the caller).
    """
    order = np.argsort(xs)
    last = -math.inf
    skipped = 0
    for i in order:
        lx = math.log10(xs[i])
        if lx - last < min_gap_decades:
            skipped += 1
            continue
        ax.text(xs[i], y, _fmt(values[i]), ha="center", va="bottom", fontsize=7, color=color, clip_on=False)
        last = lx
    return skipped


def _probability_axis(ax, *, label: str) -> None:
    ax.set_ylim(0.0, Y_TOP)
    ax.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel(label)
    ax.axhline(1.0, color="black", lw=0.7, ls=(0, (4, 2)), zorder=1)


def _label_gap(tail: _TailAxis, axes_width_in: float, label_width_in: float = 0.32) -> float:
    """Minimum spacing (in decades) between two value labels on the log axis so that they do not overlap."""
    decades = math.log10(tail.hi) - math.log10(tail.lo)
    return decades * label_width_in / axes_width_in


# ------------------------------------------------------------------------------------ bound vs tail error

def _class_values(report: BoundsReport, name: str) -> dict[int, float]:
    """class index -> bound of statement ``name`` for that class (classes with a value only)."""
    out = {}
    for r in report.records(name):
        if r.target.startswith("class:") and r.bound is not None:
            out[int(r.target.split(":", 1)[1])] = r.bound
    return out


def _class_floors(report: BoundsReport, name: str) -> dict[int, float]:
    return {int(r.target.split(":", 1)[1]): r.floor for r in report.records(name)
            if r.target.startswith("class:") and r.floor is not None}


#: how an empirical value with its interval is labelled (the interval of the population error estimate)
INTERVAL_LABEL = "population error estimate, 95 % CI"


def _interval(record) -> tuple[float, float] | None:
    """(low, high) of the 95 % interval of the empirical value a record stands beside, when the report has one."""
    comparison = None if record is None else record.compared_with
    low, high = getattr(comparison, "interval_low", None), getattr(comparison, "interval_high", None)
    return None if low is None or high is None else (float(low), float(high))


def _band_of(count: int, many: int, few: int) -> str:
    from scilt_theory.metrics import group_of

    return group_of(int(count), many, few)


def figure_bound_vs_tail_error(report: BoundsReport | dict) -> Figure:
    """Per class, what the data certify and what the theory adds (THEORY §4, §8), against the training count n_c.

    x = n_c (log scale; n_c = 0 drawn at a labelled position on the left). y, all about the class error err_c:
    its value on the test split (squares), the hold-out certificate of the trained model — or, without a hold-out
    part, the test-set certificate — (diamonds), the Corollary 5.4 bound (circles; above 1 drawn at ``CEILING`` as
    a triangle with its value, hollow when its floor is ≥ 1 too: vacuous by construction), and the floor of
    Corollary 5.4 (dashes): the value no classifier of the class could beat at this n_c. Few / Medium / Many bands
    with each group's balanced test error as a dashed segment.
    """
    report = as_report(report)
    rows = report.per_class
    few, many = report.thresholds["few"], report.thresholds["many"]
    tail = _TailAxis([r.n_train for r in rows], few, many)
    # the groups are defined on the training counts; the axis shows the bound sample's (the held-out part in
    # certified mode): bands only where the two agree, else each group's segment spans its own classes
    bands = all(_band_of(r.n_train, many, few) == r.group for r in rows if r.group)
    floors = _class_floors(report, "corollary54")
    cert_name = "holdout_certificate" if report.holdout is not None else "testset_certificate"
    certificates = _class_values(report, cert_name)
    split = "test split" + ("" if report.test_same_distribution else " (not the training distribution)")
    with _style():
        fig = Figure(figsize=(DOUBLE_COLUMN_IN, 3.5), layout="constrained")
        ax = fig.add_subplot()
        tail.decorate(ax, bands=bands)
        _probability_axis(ax, label="class error: value, certificate, bound")
        sample = "held-out part" if report.mode == "certified" else "n_c"
        ax.set_xlabel("training examples of the class, $n_c$ (log scale)" if bands else
                      f"examples of the class in the bound sample ({sample}; log scale); groups by training count")
        ax.set_title(_title(report, "Class error: test value, certificate, Cor. 5.4 bound and its floor"), pad=12)

        def xs_of(sel):
            return [tail.x(r.n_train) for r in sel]

        finite = [r for r in rows if r.bound is not None and r.bound <= 1.0]
        vacuous = [r for r in rows if r.bound is not None and r.bound > 1.0]
        nobound = [r for r in rows if r.bound is None]
        tested = [r for r in rows if r.test_error is not None]
        handles = []
        ax.scatter(xs_of(tested), [r.test_error for r in tested], marker="s", s=16, color=C_TEST, zorder=4,
                   label=f"class error, {split}")
        intervals = {r.class_index: _interval(report.statement("corollary54", f"class:{r.class_index}"))
                     for r in tested}
        with_ci = [r for r in tested if intervals[r.class_index] is not None]
        for r in with_ci:
            low, high = intervals[r.class_index]
            ax.plot([tail.x(r.n_train)] * 2, [low, high], color=C_TEST, lw=0.8, zorder=3)
        handles.append(Line2D([], [], ls="-" if with_ci else "none", lw=0.8, marker="s", color=C_TEST,
                              label=f"class error, {split}" + (f"\n({INTERVAL_LABEL})" if with_ci else "")))
        certified = [r for r in rows if r.class_index in certificates]
        if certified:
            label = ("hold-out certificate (trained model)" if cert_name == "holdout_certificate" else
                     "test-set certificate")
            ax.scatter(xs_of(certified), [min(certificates[r.class_index], CEILING) for r in certified], marker="D",
                       s=18, color=C_MARGIN, zorder=5, label=label, clip_on=False)
            handles.append(Line2D([], [], ls="none", marker="D", color=C_MARGIN, label=label))
        ax.scatter(xs_of(finite), [r.bound for r in finite], marker="o", s=18, color=C_BOUND, zorder=5,
                   label="Cor. 5.4 bound")
        handles.append(Line2D([], [], ls="none", marker="o", color=C_BOUND, label="Cor. 5.4 bound"))
        floored = [r for r in rows if r.class_index in floors and floors[r.class_index] <= 1.0]
        if floored:
            ax.scatter(xs_of(floored), [floors[r.class_index] for r in floored], marker="_", s=110, linewidths=1.6,
                       color=C_NOBOUND, zorder=4, label="Cor. 5.4 floor")
            handles.append(Line2D([], [], ls="none", marker="_", markersize=9, mew=1.6, color=C_NOBOUND,
                                  label="Cor. 5.4 floor (any classifier)"))
        if vacuous:
            by_construction = [r for r in vacuous if floors.get(r.class_index, 0.0) >= 1.0]
            other = [r for r in vacuous if floors.get(r.class_index, 0.0) < 1.0]
            if other:
                ax.scatter(xs_of(other), [CEILING] * len(other), marker="^", s=26, color=C_BOUND, zorder=5,
                           clip_on=False)
            if by_construction:
                ax.scatter(xs_of(by_construction), [CEILING] * len(by_construction), marker="^", s=26,
                           facecolors="white", edgecolors=C_BOUND, linewidths=1.0, zorder=5, clip_on=False)
            skipped = _annotate_clipped(ax, xs_of(vacuous), [r.bound for r in vacuous], color=C_BOUND,
                                        min_gap_decades=_label_gap(tail, DOUBLE_COLUMN_IN - 0.8))
            note = f"bound > 1, vacuous ({len(vacuous)} of {len(finite) + len(vacuous)})"
            note += f", {len(vacuous) - skipped} values shown" if skipped else ", value above"
            handles.append(Line2D([], [], ls="none", marker="^", color=C_BOUND, label=note))
            if by_construction:
                handles.append(Line2D([], [], ls="none", marker="^", markerfacecolor="white", markeredgecolor=C_BOUND,
                                      label=f"hollow: floor ≥ 1 ({len(by_construction)})"))
        if nobound:
            ax.scatter(xs_of(nobound), [CEILING] * len(nobound), marker="x", s=22, color=C_NOBOUND, zorder=5,
                       linewidths=1.0, clip_on=False)
            reasons = sorted({str(r.reason or "not defined") for r in nobound})
            reason = reasons[0] if len(reasons) == 1 and len(reasons[0]) <= 28 else "reason in bounds.json"
            handles.append(Line2D([], [], ls="none", marker="x", color=C_NOBOUND,
                                  label=f"no bound ({len(nobound)}: {reason})"))
        groups = report.groups
        edges = {"few": (tail.lo, tail.few_edge), "medium": (tail.few_edge, tail.many_edge),
                 "many": (tail.many_edge, tail.hi)}
        if not bands:  # each group's segment spans the bound-sample counts of its own classes
            for g in GROUPS:
                members = [tail.x(r.n_train) for r in rows if r.group == g]
                edges[g] = (min(members) / 1.25, max(members) * 1.25) if members else (1.0, 1.0)
        drew_mean = False
        for g in GROUPS:
            info = groups.get(g)
            a, b = edges[g]
            if info is not None and info.num_classes and info.test_error is not None and b > a:
                ax.plot([a * 1.08, b / 1.08], [info.test_error] * 2, color=C_TEST, lw=1.0, ls=(0, (5, 2)),
                        zorder=2)
                if not bands:
                    ax.text(b / 1.08, info.test_error + 0.015, GROUP_TITLES[g], ha="right", va="bottom",
                            fontsize=7, color=C_TEST)
                drew_mean = True
        if drew_mean:
            handles.append(Line2D([], [], color=C_TEST, lw=1.0, ls=(0, (5, 2)),
                                  label="group balanced error, test split"))
        handles.append(Line2D([], [], color="black", lw=0.7, ls=(0, (4, 2)), label="1 (vacuous above)"))
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3))
    return fig


#: the panels of the bound-vs-n figure: (target, title); a target without a stored curve is left out
BOUND_VS_N_PANELS = (("overall", "overall (prior-weighted error)"), ("balanced", "balanced error"),
                     ("group:many", "Many (group balanced error)"), ("group:medium", "Medium (group balanced error)"),
                     ("group:few", "Few (group balanced error)"))
#: the statement each panel draws first: the contract of its target
BASE_STATEMENT = {"overall": "theorem53"}
C_BASE, C_TIGHT = OKABE_ITO["blue"], OKABE_ITO["vermillion"]


def short_statement(name: str) -> str:
    """A statement name in words short enough for a panel: 'weighted_margin_classwise_bounded_fusion_radii' ->
    'class-weighted, class-wise, bounded, fusion radii'."""
    words = {"theorem53": "Thm 5.3", "corollary54": "Cor. 5.4", "weighted_margin": "class-weighted",
             "classwise": "class-wise", "bounded_features": "bounded", "bounded": "bounded", "data_radii": "data radii",
             "fusion_radii": "fusion radii", "coupled": "coupled"}
    parts, rest = [], name
    for key in sorted(words, key=len, reverse=True):
        if rest.startswith(key):
            parts.append(words[key])
            rest = rest[len(key):].lstrip("_")
            break
    while rest:
        for key in sorted(words, key=len, reverse=True):
            if rest.startswith(key):
                parts.append(words[key])
                rest = rest[len(key):].lstrip("_")
                break
        else:
            parts.append(rest.replace("_", " "))
            break
    return ", ".join(parts)


def _curve_values(curve, n0: float, ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = np.array(curve, dtype=float)  # rho, loss, A, floor part
    scale = np.sqrt(n0 / ns)[:, None]
    return (c[None, :, 1] + c[None, :, 2] * scale).min(axis=1), (c[None, :, 3] + c[None, :, 2] * scale).min(axis=1)


def figure_bound_vs_n(report: BoundsReport | dict) -> Figure:
    """Bound and floor against the bound-sample size n, with the model's n marked (THEORY §8, floors): one panel
    per target (overall, balanced, each group), two statements per panel, one legend beside the panels.

    In each panel: the contract of the target (Theorem 5.3 overall, the class-weighted statement for the balanced
    and group errors; blue) and the statement with a stored curve that is smallest at the model's n (vermillion,
    named in the panel), each as bound (solid) and floor (dashed). From the grid terms stored in the records: at
    size n' every grid point is train margin loss + A·√(n/n') with A the complexity + confidence at the model's n
    (margin losses fixed, the other terms ∝ 1/√n: the assumption of ``n_for_nonvacuous``), the bound is the minimum
    over the grid, and the floor replaces the margin loss by the smallest value any classifier of the class can
    have, max(0, 1 − M_max/ρ).
    """
    report = as_report(report)
    curves: dict[str, list] = {}
    for r in report.statements:
        if "curve" in r.terms and r.bound is not None:
            curves.setdefault(r.target, []).append(r)
    panels = [(t, title) for t, title in BOUND_VS_N_PANELS if t in curves]
    if not panels:
        raise ValueError("the report has no statement with a stored grid curve (Theorem 5.3 is missing)")
    n0 = report.n
    ns = np.geomspace(max(2.0, n0 / 100.0), max(n0 * 1e4, 1e7), 200)
    drawn = []
    for target, title in panels:
        records = curves[target]
        base_name = BASE_STATEMENT.get(target, "weighted_margin")
        base = next((r for r in records if r.name == base_name), records[0])
        tight = min(records, key=lambda r: r.bound)
        drawn.append((target, title, [base] + ([tight] if tight is not base else [])))
    rows = 1 if len(panels) <= 2 else 2
    cols = len(panels) + 1 if rows == 1 else 3
    with _style():
        fig = Figure(figsize=(DOUBLE_COLUMN_IN, 2.9 if rows == 1 else 4.9), layout="constrained")
        grid = fig.subplots(rows, cols, squeeze=False)
        cells = [ax for row in grid for ax in row]
        legend_ax = cells[-1]
        for ax in cells[len(panels):]:
            ax.axis("off")
        values: list[float] = []
        for ax, (_target, title, records) in zip(cells, drawn):
            ax.set_xscale("log")
            ax.set_yscale("log")
            for colour, marker, r in zip((C_BASE, C_TIGHT), ("o", "s"), records):
                bound, floor = _curve_values(r.terms["curve"], n0, ns)
                ax.plot(ns, bound, color=colour, lw=1.2, zorder=3)
                ax.plot(ns, floor, color=colour, lw=1.0, ls=(0, (2, 1.5)), zorder=3)
                ax.plot([n0], [r.bound], ls="none", marker=marker, color=colour, zorder=5)
                if r.n_for_nonvacuous is not None and ns[0] <= r.n_for_nonvacuous <= ns[-1]:
                    ax.plot([r.n_for_nonvacuous], [1.0], ls="none", marker="|", markersize=9, mew=1.4,
                            color=colour, zorder=5)
                values += [float(np.min(floor[floor > 0])) if np.any(floor > 0) else 1e-3, float(np.max(bound))]
            ax.axhline(1.0, color="black", lw=0.7, ls=(0, (4, 2)), zorder=1)
            ax.axvline(n0, color="#777777", lw=0.8, ls=":", zorder=1)
            names = [textwrap.fill(f"{'contract' if i == 0 else 'smallest'}: {short_statement(r.name)}", 36,
                                   subsequent_indent="  ", break_on_hyphens=False) for i, r in enumerate(records)]
            ax.set_title(title + "\n" + "\n".join(names), fontsize=7, loc="left")
        lo_y = max(min(values) / 1.5, 1e-4)
        hi_y = max(values + [1.0]) * 1.5
        for ax, _ in zip(cells, drawn):
            decades_x = [10.0 ** d for d in range(math.ceil(math.log10(ns[0])), math.floor(math.log10(ns[-1])) + 1)]
            shown_x = decades_x[::2] if len(decades_x) > 4 else decades_x
            ax.set_xticks(shown_x, [f"1e{int(round(math.log10(d)))}" if d >= 1000 else _fmt(d) for d in shown_x])
            ax.set_xticks([], minor=True)
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            decades_y = [10.0 ** d for d in range(math.ceil(math.log10(lo_y)), math.floor(math.log10(hi_y)) + 1)]
            ax.set_yticks(decades_y, [_fmt(d) if 0.01 <= d < 1000 else f"1e{int(round(math.log10(d)))}"
                                      for d in decades_y])
            ax.set_yticks([], minor=True)
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlim(ns[0], ns[-1])
            ax.set_ylim(lo_y, hi_y)
        for ax in grid[-1][:len(panels) if rows == 1 else 3]:
            if ax.axison:
                ax.set_xlabel("bound-sample size n")
        for row in grid:
            if row[0].axison:
                row[0].set_ylabel("bound (solid), floor (dashed)")
        fig.suptitle(_title(report, f"Bound and floor against n (this run: n = {n0}, dotted)"))
        handles = [Line2D([], [], color=C_BASE, marker="o", lw=1.2, label="contract of the target")]
        if any(len(records) > 1 for _, _, records in drawn):
            handles.append(Line2D([], [], color=C_TIGHT, marker="s", lw=1.2, label="smallest statement at this n"))
        handles += [Line2D([], [], color="#444444", lw=1.0, ls=(0, (2, 1.5)), label="floor: any classifier"),
                   Line2D([], [], ls="none", marker="|", markersize=9, mew=1.4, color="#444444",
                          label="n where the bound reaches 1"),
                   Line2D([], [], color="#777777", lw=0.8, ls=":", label="this run's n"),
                   Line2D([], [], color="black", lw=0.7, ls=(0, (4, 2)), label="1 (vacuous above)")]
        legend_ax.legend(handles=handles, loc="center", ncol=1, title="class proportions as now;\n"
                         "margin losses fixed")
    return fig


def figure_statements_drawn() -> tuple[tuple[str, str], ...]:
    """(statement, legend label) of the statements figure, in drawing order: the headline statements with a
    ``label`` (statements/)."""
    from scilt_theory.statements import headline_statements

    return tuple((s.name, s.label) for s in headline_statements() if s.label)


def figure_statements(report: BoundsReport | dict) -> Figure:
    """Overall and for each group, every statement's bound on one log axis, each beside the test-split value of
    the quantity it bounds (a black dash at the same position; THEORY §4 "What it bounds", §8).

    Overall: Theorem 5.3 and its refinements bound the prior-weighted error; a group: Corollary 5.4's group mean,
    the class-weighted statement and the others bound the group's balanced error. Bounds above 1 are vacuous.
    """
    report = as_report(report)
    targets = ["overall"] + [f"group:{g}" for g in GROUPS if g in report.groups and report.groups[g].num_classes]
    series = []
    for name, label in figure_statements_drawn():
        records = {}
        for t in targets:
            r = report.statement("corollary54" if name == "theorem53" and t != "overall" else name, t)
            if r is not None and r.bound is not None:
                records[t] = r
        if records:
            series.append((label, records))
    if not series:
        raise ValueError("the report has no statement values for the overall or group targets")
    with _style():
        fig = Figure(figsize=(DOUBLE_COLUMN_IN, 3.4), layout="constrained")
        ax = fig.add_subplot()
        ax.set_yscale("log")
        width = 0.8 / len(series)
        values: list[float] = []
        zeros: list[float] = []  # test values of 0 cannot sit on a log axis: drawn at its bottom, labelled 0
        handles = []
        any_ci = False
        for i, (label, records) in enumerate(series):
            colour, marker = RUN_COLOURS[i % len(RUN_COLOURS)], RUN_MARKERS[i % len(RUN_MARKERS)]
            for j, t in enumerate(targets):
                r = records.get(t)
                if r is None:
                    continue
                x = j - 0.4 + width * (i + 0.5)
                ax.plot([x], [r.bound], ls="none", marker=marker, color=colour, zorder=4)
                values.append(r.bound)
                value = None if r.compared_with is None else r.compared_with.value
                ci = _interval(r)
                if ci is not None and ci[1] > 0:
                    any_ci = True
                    ax.plot([x, x], [max(ci[0], ci[1] / 1e3), ci[1]], color="black", lw=0.7, zorder=5)
                    values.append(ci[1])
                if value == 0:
                    zeros.append(x)
                elif value is not None:
                    ax.plot([x - width * 0.4, x + width * 0.4], [value] * 2, color="black", lw=1.4, zorder=5)
                    values.append(value)
            handles.append(Line2D([], [], ls="none", marker=marker, color=colour, label=label))
        low, high = min(values) / 1.6, max(values + [1.0]) * 1.6
        ax.set_ylim(low, high)
        for x in zeros:
            ax.plot([x - width * 0.4, x + width * 0.4], [low * 1.08] * 2, color="black", lw=1.4, zorder=5)
            ax.text(x, low * 1.15, "0", ha="center", va="bottom", fontsize=7)
        decades = [10.0 ** d for d in range(math.ceil(math.log10(low)), math.floor(math.log10(high)) + 1)]
        ax.set_yticks(decades, [_fmt(d) for d in decades])
        ax.set_yticks([], minor=True)
        ax.axhline(1.0, color="black", lw=0.7, ls=(0, (4, 2)), zorder=1)
        ax.set_xticks(range(len(targets)), ["overall\n(prior-weighted error)" if t == "overall" else
                                            f"{GROUP_TITLES[t[6:]]}\n(group balanced error)" for t in targets])
        ax.set_xlim(-0.6, len(targets) - 0.4)
        ax.set_ylabel("bound (log scale)")
        ax.set_title(_title(report, "Every statement beside the test value of what it bounds"), pad=8)
        handles += [Line2D([], [], color="black", lw=1.4, label="test split value of the bounded quantity"
                           + (f"\n(bar: {INTERVAL_LABEL})" if any_ci else "")),
                    Line2D([], [], color="black", lw=0.7, ls=(0, (4, 2)), label="1 (vacuous above)")]
        fig.legend(handles=handles, loc="outside lower center", ncol=4)
    return fig


def plot_statements(report: BoundsReport | dict, out_stem: Path) -> list[Path]:
    """Write :func:`figure_statements` as PNG and PDF."""
    fig = figure_statements(report)
    with _style():
        return _save(fig, out_stem)


def plot_bound_vs_n(report: BoundsReport | dict, out_stem: Path) -> list[Path]:
    """Write :func:`figure_bound_vs_n` as PNG and PDF."""
    fig = figure_bound_vs_n(report)
    with _style():
        return _save(fig, out_stem)


def plot_bound_vs_tail_error(report: BoundsReport | dict, out_stem: Path) -> list[Path]:
    """Write the per-class bound-vs-tail-error figure (see ``figure_bound_vs_tail_error``) as PNG and PDF.

    Returns
    -------
    list of Path
        ``out_stem.png`` and ``out_stem.pdf``.
    """
    fig = figure_bound_vs_tail_error(report)
    with _style():
        return _save(fig, out_stem)


# ------------------------------------------------------------------------------------------- Rademacher

def figure_rademacher(report: BoundsReport | dict) -> Figure:
    """Bars of the empirical Rademacher complexities R̂ᵛ_S(F_{N-1}), R̂ᵛ_S(F_N) and their sum (Lemma 5.1).

    Error bars are the Monte Carlo standard errors; the black dash is the certified upper value (THEORY §5,
    McDiarmid: ``R̂ᵛ <= R̂_m + (B K / n) sqrt(2 Σ‖ψ_i‖² ln(1/δ_mc) / m)`` for the row class, or the closed
    form).
    When the report has the coupled class (THEORY §2) it is a fourth bar, with the Lemma 5.1 sum on the same
    sign draws drawn over it and the tightness ratio coupled / sum written above.
    """
    report = as_report(report)
    rc = report.rademacher
    entries = [("$\\mathcal{F}_{N-1}$\npenultimate", rc.penultimate, OKABE_ITO["sky_blue"], ""),
               ("$\\mathcal{F}_N$\nfinal", rc.final, OKABE_ITO["orange"], "//"),
               ("sum\n(Lemma 5.1)", rc.sum, OKABE_ITO["bluish_green"], "..")]
    coupled = report.coupled
    if coupled is not None:
        entries.append((f"coupled\n(n = {coupled.n_subsample})", coupled, OKABE_ITO["reddish_purple"], "xx"))
    with _style():
        fig = Figure(figsize=(SINGLE_COLUMN_IN, 2.9), layout="constrained")
        ax = fig.add_subplot()
        xs = np.arange(len(entries))
        values = [e[1].value if _is_number(e[1].value) else e[1].upper for e in entries]
        errs = [e[1].stderr if _is_number(e[1].stderr) else 0.0 for e in entries]
        bars = ax.bar(xs, values, width=0.62, color=[e[2] for e in entries], edgecolor="#333333", linewidth=0.6,
                      zorder=2)
        for bar, e in zip(bars, entries):
            bar.set_hatch(e[3])
        handles: list = []
        with_err = [i for i, e in enumerate(entries) if _is_number(e[1].stderr) and e[1].stderr > 0]
        if with_err:  # exact and closed-form values have no standard error: no bar rather than a flat one
            handles.append(ax.errorbar([xs[i] for i in with_err], [values[i] for i in with_err],
                                       yerr=[errs[i] for i in with_err], fmt="none", ecolor="black",
                                       elinewidth=0.9, capsize=3, zorder=3, label="± std. error"))
        uppers = [(x, e[1].upper) for x, e in zip(xs, entries)]
        if uppers:
            ax.scatter([u[0] for u in uppers], [u[1] for u in uppers], marker="_", s=180, linewidths=1.8,
                       color="black", zorder=4)
            handles.append(Line2D([], [], color="black", marker="_", ls="none", markersize=10, mew=1.8,
                                  label="certified upper value"))
        # Highest thing drawn over each bar, so that its value label clears it.
        tops = [max(v + s, e[1].upper) for v, s, e in zip(values, errs, entries)]
        coupled_sum = coupled.sum_value if len(entries) == 4 else None
        if _is_number(coupled_sum):
            tops[3] = max(tops[3], coupled_sum)
            ax.plot([xs[3] - 0.36, xs[3] + 0.36], [coupled_sum] * 2, color="black", lw=1.0, ls=(0, (3, 1.5)),
                    zorder=4)
            handles.append(Line2D([], [], color="black", lw=1.0, ls=(0, (3, 1.5)),
                                  label="sum on same draws"))
        top = max(tops) if max(tops) > 0 else 1.0
        for x, v, t in zip(xs, values, tops):
            ax.text(x, t + 0.02 * top, _fmt(v), ha="center", va="bottom", fontsize=7)
        ymax = top * 1.14
        if len(entries) == 4 and _is_number(coupled.ratio):
            ax.text(0.98, 0.98, f"coupled / sum = {coupled.ratio:.2f}", transform=ax.transAxes, ha="right",
                    va="top", fontsize=7.5, bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "#999999",
                                                  "lw": 0.5})
            ymax = top * 1.32
        ax.set_ylim(0.0, ymax)
        ax.set_xticks(xs, [e[0] for e in entries])
        ax.set_ylabel("empirical Rademacher complexity $\\hat{\\mathfrak{R}}_S$")
        methods = sorted({str(e[1].method) for e in entries[:3]})
        ax.set_title(f"{report.run.dataset}, {report.run.method}, {report.mode} mode\n"
                     f"estimator: {'/'.join(methods)}; δ_mc = {report.delta_mc}", fontsize=8)
        fig.legend(handles=handles, loc="outside lower center", ncol=2, handlelength=1.4, columnspacing=1.0)
    return fig


def plot_rademacher(report: BoundsReport | dict, out_stem: Path) -> list[Path]:
    """Write the Rademacher-complexity figure (see ``figure_rademacher``) as PNG and PDF; return the paths."""
    fig = figure_rademacher(report)
    with _style():
        return _save(fig, out_stem)


# ----------------------------------------------------------------------------------- bound decomposition

def _decomposition_rows(report: BoundsReport) -> list[dict]:
    """Per group and overall: the three terms of the bound, its value and the test error (None where absent)."""
    rows = []
    for g in GROUPS:
        info = report.groups.get(g)
        if info is None:
            rows.append({"key": g, "num_classes": 0, "bound": None, "terms": (None, None, None), "test_error": None})
            continue
        rows.append({"key": g, "num_classes": info.num_classes, "bound": info.bound,
                     "terms": (info.train_margin_loss, info.complexity, info.confidence),
                     "test_error": info.test_error})
    o = report.overall
    rows.append({"key": "overall", "num_classes": report.num_classes, "bound": o.bound,
                 "terms": (o.train_margin_loss, o.complexity, o.confidence),
                 "test_error": o.prior_weighted_test_error})
    return rows


TERM_STYLE = (("train margin loss", C_MARGIN, ""), ("complexity term", C_COMPLEXITY, "//"),
              ("confidence term", C_CONFIDENCE, ".."))


def figure_bound_decomposition(report: BoundsReport | dict) -> Figure:
    """Stacked bars of the three terms of the bound per group and overall (Theorem 5.3, Corollary 5.4).

    bound = R̂_{S,ρ}(f) [train margin loss] + (4/ρ)[R̂ᵛ(F_{N-1}) + R̂ᵛ(F_N)] [complexity] + 3 sqrt(ln(2/δ)/(2n))
    [confidence; ln(2K/δ) and n_c per class]; a group's terms are the means over its classes. Each bar stands beside the
    test-split value of the quantity it bounds: a group's balanced error, the overall prior-weighted error (THEORY §4,
    "What it bounds"). Stacked bars are only honest on a linear axis, so when some bound exceeds the probability range
    the figure has two linear panels: the full scale (totals written on top) and a zoom where the test error and margin
    loss are visible; bars taller than ``CEILING`` are cut there in the zoom and carry an upward triangle and their
    value. The dashed line is y = 1: above it a bound is vacuous.
    """
    report = as_report(report)
    rows = _decomposition_rows(report)
    usable = [r for r in rows if r["bound"] is not None and all(t is not None for t in r["terms"])]
    max_total = max([sum(r["terms"]) for r in usable] + [r["bound"] for r in usable] + [0.0])
    two_panels = max_total > Y_TOP
    with _style():
        width = DOUBLE_COLUMN_IN if two_panels else SINGLE_COLUMN_IN
        fig = Figure(figsize=(width, 2.9), layout="constrained")
        axes = fig.subplots(1, 2) if two_panels else [fig.add_subplot()]
        xs = np.arange(len(rows))
        names = [f"{GROUP_TITLES[r['key']]}\n({r['num_classes']} cl.)" for r in rows]
        for panel, ax in enumerate(axes):
            zoom = panel == 1 or not two_panels
            for x, r in zip(xs, rows):
                if r not in usable:
                    ax.text(x, 0.02 if zoom else 0.02 * max_total, "no bound" if r["num_classes"] else "no classes",
                            rotation=90, ha="center", va="bottom", fontsize=7, color=C_NOBOUND)
                    continue
                total = sum(r["terms"])
                cut = zoom and total > CEILING  # the zoom cuts this bar at the ceiling and says so
                bottom = 0.0
                for value, (_name, colour, hatch) in zip(r["terms"], TERM_STYLE):
                    shown = min(value, max(CEILING - bottom, 0.0)) if cut else value
                    if shown > 0:
                        ax.bar(x, shown, bottom=bottom, width=0.62, color=colour, hatch=hatch, edgecolor="#333333",
                               linewidth=0.5, zorder=2)
                    bottom += value
                if cut:
                    ax.scatter([x], [CEILING + 0.035], marker="^", s=24, color="black", zorder=5, clip_on=False)
                    ax.text(x + 0.1, CEILING + 0.035, _fmt(r["bound"]), ha="left", va="center", fontsize=7)
                else:
                    # Above the bar and above the test-error marker, whichever is higher.
                    scale = Y_TOP if zoom else max_total * 1.12
                    y = max(bottom, r["test_error"] or 0.0) + 0.03 * scale
                    ax.text(x, y, _fmt(r["bound"]), ha="center", va="bottom", fontsize=7)
                if r["test_error"] is not None:
                    ax.scatter([x], [r["test_error"]], marker="o", s=22, color="white", edgecolors="black",
                               linewidths=1.1, zorder=6)
            ax.axhline(1.0, color="black", lw=0.7, ls=(0, (4, 2)), zorder=4)
            ax.set_xticks(xs, names)
            ax.set_xlim(-0.6, len(rows) - 0.4)
            if zoom:
                ax.set_ylim(0.0, Y_TOP)
                ax.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
            else:
                ax.set_ylim(0.0, max_total * 1.12)
            if two_panels:
                ax.set_title(f"zoom on [0, {CEILING:g}]: bars above are cut (▲ value)" if zoom else
                             "full scale (linear; value of the bound on top)")
        axes[0].set_ylabel("bound and its terms")
        title = _title(report, "Bound decomposition")
        fig.suptitle(title if two_panels else title.replace(" — ", "\n"))
        handles = [Patch(facecolor=c, hatch=h, edgecolor="#333333", linewidth=0.5, label=n) for n, c, h in TERM_STYLE]
        handles += [Line2D([], [], ls="none", marker="o", markerfacecolor="white", markeredgecolor="black",
                           label="test value of what it bounds"),
                    Line2D([], [], color="black", lw=0.7, ls=(0, (4, 2)), label="1 (vacuous above)")]
        fig.legend(handles=handles, loc="outside lower center", ncol=5 if two_panels else 2)
    return fig


def plot_bound_decomposition(report: BoundsReport | dict, out_stem: Path) -> list[Path]:
    """Write the bound-decomposition figure (see ``figure_bound_decomposition``) as PNG and PDF."""
    fig = figure_bound_decomposition(report)
    with _style():
        return _save(fig, out_stem)


# -------------------------------------------------------------------------------------------------- overlay

def run_labels(reports: Sequence[BoundsReport | dict], labels: Sequence[str] | None = None,
               fallbacks: Sequence[str] | None = None) -> list[str]:
    """Legend names of runs: ``labels`` if given, else each report's "label" (or "method"), else ``fallbacks``.

    Names that would repeat (two seeds of one method) get their fallback (e.g. the directory name) appended.
    """
    if labels is not None:
        if len(labels) != len(reports):
            raise ValueError(f"got {len(labels)} labels for {len(reports)} runs; give one label per run")
        return [str(s) for s in labels]
    fallbacks = list(fallbacks) if fallbacks is not None else [f"run {i + 1}" for i in range(len(reports))]
    runs = [as_report(r).run for r in reports]
    names = [str(run.label or run.method or fb) for run, fb in zip(runs, fallbacks)]
    if len(set(names)) < len(names):
        names = [n if names.count(n) == 1 or n == fb else f"{n} ({fb})" for n, fb in zip(names, fallbacks)]
    if len(set(names)) < len(names):
        names = [f"{n} [{i + 1}]" for i, n in enumerate(names)]
    return names


def figure_overlay(reports: Sequence[BoundsReport | dict], labels: Sequence[str] | None = None) -> Figure:
    """Several runs on one figure: per-class bound and test error vs n_c (left), group values side by side (right).

    Each run has one colour and one marker; a filled marker is the Corollary 5.4 bound, an open marker the class's test
    error; on the right each group's Corollary 5.4 bound stands beside its balanced test error and Theorem 5.3 beside
    the prior-weighted test error (bars); bounds above 1 are drawn at ``CEILING`` as upward triangles in the run's
    colour with the value above. Runs are shifted by a small factor along the log axis so that classes with equal n_c do
    not hide each other.
    """
    if not reports:
        raise ValueError("an overlay needs at least one bounds report")
    reports = [as_report(r) for r in reports]
    names = run_labels(reports, labels)
    first = reports[0]
    thresholds = {(r.thresholds["few"], r.thresholds["many"]) for r in reports}
    if len(thresholds) > 1:
        raise ValueError(f"the runs use different Many/Few thresholds {sorted(thresholds)}; the group bands "
                         "would be wrong for some of them")
    few, many = first.thresholds["few"], first.thresholds["many"]
    tail = _TailAxis([row.n_train for r in reports for row in r.per_class], few, many)
    k = len(reports)
    with _style():
        fig = Figure(figsize=(DOUBLE_COLUMN_IN, 3.6), layout="constrained")
        ax, axg = fig.subplots(1, 2, width_ratios=[1.9, 1.0])
        tail.decorate(ax)
        _probability_axis(ax, label="error / bound")
        ax.set_xlabel("training examples of the class, $n_c$ (log scale)")
        ax.set_title("per class", pad=12)
        run_handles = []
        any_missing = False
        for i, (report, name) in enumerate(zip(reports, names)):
            colour, marker = RUN_COLOURS[i % len(RUN_COLOURS)], RUN_MARKERS[i % len(RUN_MARKERS)]
            shift = 10.0 ** (0.035 * (i - (k - 1) / 2))  # a small multiplicative offset on the log axis
            rows = sorted(report.per_class, key=lambda r: r.n_train)
            finite = [r for r in rows if r.bound is not None and r.bound <= 1.0]
            vacuous = [r for r in rows if r.bound is not None and r.bound > 1.0]
            tested = [r for r in rows if r.test_error is not None]
            ax.plot([tail.x(r.n_train) * shift for r in tested], [r.test_error for r in tested],
                    ls="none", marker=marker, markerfacecolor="white", markeredgecolor=colour, mew=1.0, zorder=4)
            ax.plot([tail.x(r.n_train) * shift for r in finite], [r.bound for r in finite],
                    ls="none", marker=marker, color=colour, zorder=5)
            missing = [r for r in rows if r.bound is None]
            if missing:
                ax.plot([tail.x(r.n_train) * shift for r in missing], [CEILING] * len(missing), ls="none",
                        marker="x", color=C_NOBOUND, zorder=5, clip_on=False)
                any_missing = True
            label = name
            if vacuous:
                vx = [tail.x(r.n_train) * shift for r in vacuous]
                ax.plot(vx, [CEILING] * len(vacuous), ls="none", marker="^", color=colour, zorder=5, clip_on=False)
                # Value labels of several runs at one n_c would pile up: the legend carries each run's summary.
                largest = max(r.bound for r in vacuous)
                label += f": {len(vacuous)} of {len(finite) + len(vacuous)} class bounds > 1 (max {_fmt(largest)})"
            run_handles.append(Line2D([], [], ls="none", marker=marker, color=colour, label=label))
        # Right panel: group means per run; bar = test error (balanced error of the group), marker = bound.
        keys = [g for g in GROUPS if any(r.groups.get(g) is not None and r.groups[g].num_classes for r in reports)]
        keys.append("overall")
        width = 0.8 / k
        for i, report in enumerate(reports):
            colour, marker = RUN_COLOURS[i % len(RUN_COLOURS)], RUN_MARKERS[i % len(RUN_MARKERS)]
            for j, g in enumerate(keys):
                if g == "overall":  # Theorem 5.3 beside the quantity it bounds
                    test_error, bound = report.overall.prior_weighted_test_error, report.overall.bound
                else:
                    info = report.groups.get(g)
                    test_error, bound = (None, None) if info is None else (info.test_error, info.bound)
                x = j - 0.4 + width * (i + 0.5)
                if test_error is not None:
                    axg.bar(x, test_error, width=width * 0.9, color=colour, alpha=0.35, edgecolor=colour,
                            linewidth=0.8, zorder=2)
                if bound is None:
                    axg.plot([x], [CEILING], ls="none", marker="x", color=C_NOBOUND, zorder=5, clip_on=False)
                elif bound > 1.0:
                    axg.plot([x], [CEILING], ls="none", marker="^", color=colour, zorder=5, clip_on=False)
                    if k <= MAX_LABELLED_RUNS:  # beyond that the rotated 7 pt labels would touch
                        axg.text(x, CEILING + 0.035, _fmt(bound), ha="center", va="bottom", fontsize=7,
                                 color=colour, rotation=90 if k > 1 else 0)
                else:
                    axg.plot([x], [bound], ls="none", marker=marker, color=colour, zorder=5)
        _probability_axis(axg, label="")
        axg.set_ylim(0.0, Y_TOP + (0.25 if 1 < k <= MAX_LABELLED_RUNS else 0.0))
        axg.set_xticks(range(len(keys)), [GROUP_TITLES[g] for g in keys])
        axg.set_title("group means and overall" if k <= MAX_LABELLED_RUNS else
                      "group means and overall\n(values > 1 in each bounds.json)", pad=12)
        datasets = sorted({r.run.dataset for r in reports})
        modes = sorted({r.mode for r in reports})
        deltas = sorted({f"{r.delta:g}" for r in reports})
        fig.suptitle(f"Bounds vs the test-split value of what they bound — {', '.join(datasets)}, "
                     f"{'/'.join(modes)} mode, δ = {'/'.join(deltas)}")
        style_handles = [
            Line2D([], [], ls="none", marker="o", color="#444444", label="bound (filled)"),
            Line2D([], [], ls="none", marker="o", markerfacecolor="white", markeredgecolor="#444444",
                   label="class error (open)"),
            Patch(facecolor="#444444", alpha=0.35, edgecolor="#444444", label="what it bounds (bar)"),
            Line2D([], [], ls="none", marker="^", color="#444444", label=f"bound > 1 (vacuous), at {CEILING:g}"),
            Line2D([], [], color="black", lw=0.7, ls=(0, (4, 2)), label="1 (vacuous above)"),
        ]
        if any_missing:
            style_handles.append(Line2D([], [], ls="none", marker="x", color=C_NOBOUND, label="no bound"))
        fig.legend(handles=run_handles, loc="outside lower left", ncol=1)
        fig.legend(handles=style_handles, loc="outside lower right", ncol=2)
    return fig


def plot_overlay(reports: list[BoundsReport | dict], out_stem: Path, labels: Sequence[str] | None = None) -> list[Path]:
    """Write the overlay of several runs (see ``figure_overlay``) as PNG and PDF; return the paths."""
    fig = figure_overlay(reports, labels)
    with _style():
        return _save(fig, out_stem)


def figure_compare(summary: dict, *, title: str) -> Figure:
    """Bound vs tail error for several methods (``scilt_theory.compare.summarise`` output).

    Left: the Few group's balanced test error (x) against its Corollary 5.4 bound (y); right: the worst class's
    test error against the worst-class bound. One colour and marker per method at the mean over seeds, bars for
    ± one sample std. The bound axis is logarithmic because tail bounds are far above 1 (vacuous, drawn as
    computed); the dashed line marks 1 and the dotted diagonal bound = error (a valid bound lies above it).
    """
    if not summary:
        raise ValueError("a comparison figure needs at least one method")
    panels = (("few_test_error", "few_bound", "Few classes: balanced test error", "Few group bound (Cor. 5.4)"),
              ("worst_class_test_error", "worst_class_bound", "worst-class test error", "worst-class bound (Cor. 5.4)"))
    with _style():
        fig = Figure(figsize=(DOUBLE_COLUMN_IN, 3.4), layout="constrained")
        axes = fig.subplots(1, 2)
        handles = []
        for ax, (xkey, ykey, xlabel, ylabel) in zip(axes, panels):
            ys = []
            for i, (method, stats) in enumerate(summary.items()):
                x, y = stats[xkey], stats[ykey]
                if x["mean"] is None or y["mean"] is None:
                    continue
                colour, marker = RUN_COLOURS[i % len(RUN_COLOURS)], RUN_MARKERS[i % len(RUN_MARKERS)]
                ax.errorbar([x["mean"]], [y["mean"]], xerr=[x["std"] or 0.0], yerr=[y["std"] or 0.0], ls="none",
                            marker=marker, color=colour, ecolor=colour, elinewidth=0.7, capsize=2, zorder=4,
                            clip_on=False)
                ys.append(y["mean"])
                if ax is axes[0]:
                    handles.append(Line2D([], [], ls="none", marker=marker, color=colour, label=method))
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: _fmt(v)))
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlim(-0.03, 1.03)  # errors of 0 and 1 stay visible
            low = min([1.0, *ys]) / 1.5
            high = max([1.0, *ys]) * 1.5
            ax.set_ylim(low, high)
            ax.axhline(1.0, color="black", lw=0.7, ls=(0, (4, 2)), zorder=1)
            grid = np.linspace(max(low, 1e-3), 1.0, 50)
            ax.plot(grid, grid, color="#777777", lw=0.7, ls=":", zorder=1)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
        fig.suptitle(title)
        handles += [Line2D([], [], color="black", lw=0.7, ls=(0, (4, 2)), label="1 (vacuous above)"),
                    Line2D([], [], color="#777777", lw=0.7, ls=":", label="bound = error")]
        fig.legend(handles=handles, loc="outside right upper", ncol=1)
    return fig


def plot_compare(summary: dict, out_stem: Path, *, title: str) -> list[Path]:
    """Write :func:`figure_compare` as PNG and PDF; return the paths."""
    fig = figure_compare(summary, title=title)
    with _style():
        return _save(fig, out_stem)


#: the figures of a bounds folder (each as STEM.png and STEM.pdf), in the order they are written
FIGURE_STEMS = ("bound_vs_tail_error", "rademacher", "bound_decomposition", "bound_vs_n", "statements")


def write_all_plots(report: BoundsReport | dict, out_dir: Path) -> list[Path]:
    """Write every figure of :data:`FIGURE_STEMS` (PNG and PDF each) into ``out_dir``."""
    report = as_report(report)
    out_dir = Path(out_dir)
    writers = {"bound_vs_tail_error": plot_bound_vs_tail_error, "rademacher": plot_rademacher,
               "bound_decomposition": plot_bound_decomposition, "bound_vs_n": plot_bound_vs_n,
               "statements": plot_statements}
    written: list[Path] = []
    for stem in FIGURE_STEMS:
        written += writers[stem](report, out_dir / stem)
    return written
