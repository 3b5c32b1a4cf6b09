"""Human-readable Markdown summary of a bounds report (scilt_theory/schema.py's BoundsReport, bounds.json)."""

from __future__ import annotations

from scilt_theory.schema import BoundsReport


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if abs(value) >= 1000 or (0 < abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def dominant_term(row) -> str:
    """Name of the largest of the three terms of a bound (margin loss, complexity, confidence)."""
    parts = {"train margin loss": row.train_margin_loss, "complexity": row.complexity,
             "confidence": row.confidence}
    parts = {k: v for k, v in parts.items() if v is not None}
    return max(parts, key=parts.get) if parts else "—"


def bounds_markdown(report: BoundsReport) -> str:
    o = report.overall
    rc = report.rademacher
    run = report.run
    lines = [
        f"# Generalisation bounds — {run.method} on {run.dataset}",
        "",
        f"**Mode: {report.mode}** (validity: {report.validity}). {report.mode_description}",
        "",
    ]
    if run.method_summary:
        lines += [f"Method `{run.method}`: {run.method_summary}."]
        lines += [f"- {note}" for note in run.method_notes]
        lines += [""]
    lines += [
        f"Checkpoint `{run.checkpoint}`; n = {report.n} training samples, K = {report.num_classes} "
        f"classes; δ = {report.delta}, δ_mc = {report.delta_mc} (Monte Carlo certificates); "
        f"{run.head} heads, scale s = {run.scale}, α = {_num(run.alpha)}. Row-norm radii "
        f"(THEORY §1, worst case over α): B_penult = {_num(report.radii['penultimate'])}, "
        f"B_final = {_num(report.radii['final'])}. Margin grid: {report.margin['grid_size']} value(s), "
        f"chosen ρ = {_num(report.margin['chosen'])} (every grid point paid for with δ/m).",
        "",
        "## Empirical Rademacher complexities (THEORY §1, §5)",
        "",
        "| class | value | std. error | certified upper | method |",
        "|---|---:|---:|---:|---|",
    ]
    for key, label in (("penultimate", "F_{N-1} (penultimate)"), ("final", "F_N (final)"),
                       ("sum", "F_{N-1} + F_N (Lemma 5.1 sum)")):
        r = getattr(rc, key)
        lines.append(f"| {label} | {_num(r.value)} | {_num(r.stderr)} | {_num(r.upper)} | {r.method} |")
    coupled = report.coupled
    if coupled:
        lines += ["", f"Coupled class (one W1, W2, α; THEORY §2): R̂ = {_num(coupled.value)} ± "
                      f"{_num(coupled.stderr)} against the Lemma 5.1 sum {_num(coupled.sum_value)} on the same "
                      f"sign draws: tightness ratio coupled/sum = **{_num(coupled.ratio)}** "
                      f"({coupled.method}, n = {coupled.n_subsample}"
                      f"{' — a seeded subsample of the training set' if coupled.n_subsample < report.n else ''})."]
    lines += [
        "",
        "## Theorem 5.3 (overall) and Corollary 5.4 (groups, worst class)",
        "",
        "| | bound | margin loss | complexity | confidence | test error | vacuous | dominant term |",
        "|---|---:|---:|---:|---:|---:|---|---|",
        f"| overall | {_num(o.bound)} | {_num(o.train_margin_loss)} | {_num(o.complexity)} | "
        f"{_num(o.confidence)} | {_num(o.balanced_test_error)} | {_num(o.vacuous)} | {dominant_term(o)} |",
    ]
    for g, v in report.groups.items():
        if not v.num_classes:
            continue
        lines.append(f"| {g} ({v.num_classes} classes) | {_num(v.bound)} | {_num(v.train_margin_loss)} | "
                     f"{_num(v.complexity)} | {_num(v.confidence)} | {_num(v.test_error)} | "
                     f"{_num(v.bound is not None and v.bound > 1)} | {dominant_term(v)} |")
    w = report.worst_class
    lines.append(f"| worst class | {_num(w.bound)} | | | | {_num(w.test_error)} (class {w.class_index}, "
                 f"{w.name}) | {_num(w.bound is not None and w.bound > 1)} | |")
    lines += ["", "Group bound = mean of its classes' Corollary 5.4 bounds (≥ the group's balanced error); group test "
                  "error = mean of its classes' test errors.", "",
              "## Per class (sorted by training count)", "",
              "| class | name | n_train | group | bound | margin loss | complexity | confidence | test error | "
              "R̂ sum | vacuous |",
              "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in sorted(report.per_class, key=lambda r: -r.n_train):
        rsum = row.rademacher.sum.value if row.rademacher else None
        bound = _num(row.bound) if row.bound is not None else f"— ({row.reason})"
        lines.append(f"| {row.class_index} | {row.name} | {row.n_train} | {row.group} | {bound} | "
                     f"{_num(row.train_margin_loss)} | {_num(row.complexity)} | {_num(row.confidence)} | "
                     f"{_num(row.test_error)} | {_num(rsum)} | {_num(row.vacuous)} |")
    spectral = report.spectral
    if spectral:
        lines += ["", "## Confusion spectra (CAR's quantities, THEORY §6)", "",
                  "C = confusion rates, columns = true classes, diagonal zeroed; w = CAR's frequency weights "
                  f"(r0 = {spectral['r0']}). ‖C‖₁ (max column sum) is exactly the worst-class error; "
                  "‖C‖₁ ≤ √K·‖C‖₂.", "",
                  "| confusion | ‖C‖₁ = worst-class error | ‖C‖₂ | ‖C·diag(w)‖₂ | √K·‖C‖₂ | ‖C‖∞ |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name in ("train", "test", "car_ema"):
            f = spectral.get(name)
            if f:
                label = f"CAR's soft EMA C̄ ({f['steps']} steps)" if name == "car_ema" else \
                    {"train": "train (bound sample)", "test": "test"}[name]
                lines.append(f"| {label} | {_num(f['norm_1'])} | {_num(f['norm_2'])} | {_num(f['weighted_norm_2'])} | "
                             f"{_num(f['sqrt_k_norm_2'])} | {_num(f['norm_inf'])} |")
        lines += ["", f"Corollary 5.4's worst-class bound on the same model: "
                      f"{_num(spectral.get('corollary54_worst_class_bound'))}. {spectral['note']}."]
    vacuous = sum(1 for r in report.per_class if r.vacuous)
    lines += [
        "",
        "## Caveats",
        "",
        f"- {vacuous} of {len(report.per_class)} per-class bounds exceed 1 (vacuous). They are reported, not "
        "hidden; plots clip them at the top and mark them.",
        "- Complexity term = (4/ρ)·[R̂ᵛ(F_{N-1}) + R̂ᵛ(F_N)] with the certified upper values of the complexities; "
        "it scales like s·K/(ρ·√n_c), so tail classes (small n_c) are the loosest — the bound says what the data "
        "can certify, not what the model achieves.",
        "- The confidence term pays for the margin grid (ln m) and, per class, for the union over K classes.",
        "- Monte Carlo complexities are replaced by their McDiarmid-certified upper values (THEORY §5); the "
        "statement then holds with probability ≥ 1 − δ − δ_mc.",
    ]
    if report.validity == "diagnostic":
        lines.append("- Diagnostic mode: the feature maps were fitted on this same sample, so this is not a "
                     "certificate. Train with `--holdout-fraction` and use `--mode certified` for one.")
    t = report.timing
    lines += ["", f"Timing: features {_num(t.get('features_seconds'), 1)} s, complexities "
                  f"{_num(t.get('rademacher_seconds'), 1)} s, total {_num(t.get('total_seconds'), 1)} s.", ""]
    return "\n".join(lines)
