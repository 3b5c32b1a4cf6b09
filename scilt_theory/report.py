"""report.md: a bounds report (scilt_theory/schema.py's BoundsReport) for a reader.

Every bound stands only beside the empirical value of the quantity it bounds (its record's ``compared_with``: the
same quantity, on a named split, of the classifier it is about), with its floor — the value no model of the class
could beat at this n — so that a reader sees at once what the data can certify and what the theory adds.
"""

from __future__ import annotations

from scilt_theory.metrics import md
from scilt_theory.schema import QUANTITIES, BoundsReport, StatementRecord

#: the order of targets in the tables
_TARGET_ORDER = ("overall", "balanced", "group:many", "group:medium", "group:few", "worst_class")


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if abs(value) >= 1000 or (0 < abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def has_intervals(report: BoundsReport) -> bool:
    """Whether the report's comparisons carry the 95 % interval of the population error estimate."""
    return any(getattr(r.compared_with, "interval_low", None) is not None for r in report.statements
               if r.compared_with is not None)


def value_text(comparison) -> str:
    """The empirical value a bound stands beside, with its 95 % interval when the report has one."""
    if comparison is None:
        return "—"
    low, high = getattr(comparison, "interval_low", None), getattr(comparison, "interval_high", None)
    if low is None or high is None:
        return _num(comparison.value)
    return f"{_num(comparison.value)} [{_num(low)}, {_num(high)}]"


#: the name of the empirical column when it carries intervals
ESTIMATE_LABEL = "population error estimate (95 % CI)"


def dominant_term(row) -> str:
    """Name of the largest of the three terms of a bound (margin loss, complexity, confidence)."""
    parts = {"train margin loss": row.train_margin_loss, "complexity": row.complexity,
             "confidence": row.confidence}
    parts = {k: v for k, v in parts.items() if v is not None}
    return max(parts, key=parts.get) if parts else "—"


def compared_text(r: StatementRecord) -> str:
    """'<quantity> on <split> split (<classifier>)' — the cell that names what a bound is compared with."""
    c = r.compared_with
    if c is None:
        return "—"
    who = "trained model" if c.classifier == "trained" else "bounded classifier"
    caveat = "" if c.same_distribution else "; not the training distribution"
    return f"{c.quantity} on {c.split} split ({who}{caveat})"


def _target_label(report: BoundsReport, target: str) -> str:
    if target.startswith("class:"):
        c = int(target.split(":", 1)[1])
        return f"class {c} ({md(report.per_class[c].name)})"
    if target.startswith("group:"):
        g = target.split(":", 1)[1]
        n = report.groups[g].num_classes if g in report.groups else "?"
        return f"{GROUP_NAMES.get(g, g)} group ({n} {'class' if n == 1 else 'classes'})"
    return target.replace("_", " ")


GROUP_NAMES = {"many": "Many", "medium": "Medium", "few": "Few"}


def group_rule(report: BoundsReport) -> str:
    """The one sentence that defines the groups (said once in report.md)."""
    many, few = report.thresholds["many"], report.thresholds["few"]
    text = (f"Many / Medium / Few are defined on each class's count in the training split (Many > {many}, "
            f"Few < {few}, Medium otherwise), the same in every mode")
    if report.mode == "certified":
        text += ("; here the bound sample is the held-out part, so the n of a class below is smaller than the "
                 "training count its group is defined on")
    return text + "."


def _vacuous_text(r: StatementRecord) -> str:
    if r.bound is None:
        return "—"
    if r.vacuous_by_construction:
        return "by construction"
    return _num(r.vacuous)


def key_statements() -> tuple[str, ...]:
    """The statements of the headline table, in its order: those whose ``headline`` is set (statements/); every
    statement is in "All statements"."""
    from scilt_theory.statements import headline_statements

    return tuple(s.name for s in headline_statements())


def _statement_table(report: BoundsReport, title: str, names: tuple[str, ...] | None) -> list[str]:
    value = f"value: {ESTIMATE_LABEL}" if has_intervals(report) else "value"
    lines = [f"## {title}", "",
             "| statement | target | bounds | bound | floor | vacuous | n for bound < 1 | compared with | "
             f"{value} | certificate |", "|---|---|---|---:|---:|---|---:|---|---:|---|"]
    order = {name: i for i, name in enumerate(names or ())}
    for target in _TARGET_ORDER:
        rows = [r for r in report.statements if r.target == target and r.bound is not None
                and (names is None or r.name in order)]
        for r in sorted(rows, key=lambda r: order.get(r.name, 0)):
            lines.append(f"| {r.name} | {_target_label(report, target)} | {r.bounds_quantity} | {_num(r.bound)} | "
                         f"{_num(r.floor)} | {_vacuous_text(r)} | {_num(r.n_for_nonvacuous, 0)} | "
                         f"{compared_text(r)} | {value_text(r.compared_with)} | {_num(r.certificate)} |")
    return lines + [""]


def _headline(report: BoundsReport) -> list[str]:
    lines = _statement_table(report, "The key statements beside the quantity each bounds", key_statements())
    lines += ["*bounds* and *compared with* name the same quantity (" +
              "; ".join(f"{q}: {d}" for q, d in QUANTITIES.items()) + "). *floor*: the value the statement takes "
              "for every classifier of its class at this n, K, radii and grid (uniform bounds), or with zero errors "
              "(certificates); a floor ≥ 1 means vacuous by construction. *n for bound < 1*: the bound-sample size at "
              "which the bound would drop below 1 if the margin losses stayed as they are and the complexity and "
              "confidence terms shrank like 1/√n (class proportions fixed) — for PAC-Bayes the Gibbs loss and the KL "
              "stay as they are; — when the losses alone keep it ≥ 1. *certificate*: valid as a certificate in this "
              "run (uniform bounds: features fixed before the "
              "sample; hold-out / test-set: the classifier fixed before that sample, and the sample drawn from the "
              "training distribution).", ""]
    return lines


def _tightest(report: BoundsReport) -> list[str]:
    records = report.records("tightest_uniform")
    if not records:
        return []
    first = records[0]
    members = first.terms.get("members", [])
    lines = ["## The tightest uniform statement (THEORY §8)", "",
             f"For every target, the smallest value of the J = {len(members)} uniform statements that apply, each "
             f"evaluated at δ/J = {_num(first.terms.get('delta_each'), 5)} so that the minimum holds with "
             f"probability ≥ 1 − δ (− δ_mc): {', '.join(members)}.", "",
             "| target | bounds | contract | tightest | tightest / contract | attained by |",
             "|---|---|---:|---:|---:|---|"]
    contract = {"overall": "theorem53"}
    for r in records:
        if not (r.target in _TARGET_ORDER or r.target.startswith("group:")):
            continue
        base = report.statement(contract.get(r.target, "corollary54"), r.target)
        ratio = None if base is None or not base.bound else r.bound / base.bound
        lines.append(f"| {_target_label(report, r.target)} | {r.bounds_quantity} | "
                     f"{_num(base.bound if base else None)} | {_num(r.bound)} | {_num(ratio)} | "
                     f"{r.terms.get('attained_by')} |")
    return lines + [""]


def _ranks(report: BoundsReport) -> list[str]:
    if not report.rank_correlation:
        return []
    lines = ["## Do the bounds rank the classes as their errors do? (Jiang et al. 2020)", "",
             "Kendall τ-b between each statement's per-class values and the per-class test errors they bound "
             "(class error, test split). A valid bound can still rank the classes wrongly: τ ≤ 0 says the statement "
             "does not predict which classes generalise. The test-set certificate is computed from the very errors it "
             "is compared with, so its τ is high by construction; the hold-out certificate's comes from another "
             "sample.",
             "",
             "| statement | Kendall τ | p-value | classes |", "|---|---:|---:|---:|"]
    for rc in report.rank_correlation:
        lines.append(f"| {rc.statement} | {_num(rc.tau)} | {_num(rc.p_value)} | {rc.n} |")
    return lines + [""]


def _certificates(report: BoundsReport) -> list[str]:
    lines: list[str] = []
    for block, title in ((report.holdout, "Hold-out certificates"), (report.test_certificate,
                                                                       "Test-set certificates")):
        if block is None:
            continue
        lines += [f"## {title} ({block.statement}, THEORY §8)", "",
                  f"Errors of {block.classifier} on the {block.split} split, a sample it was not fitted on"
                  f"{'' if block.same_distribution else ' (not drawn from the training distribution)'}. Total "
                  f"δ = {block.delta}: δ/2 for the pooled count (kl-inverse, valid for class-stratified samples), "
                  f"δ/2 shared by the classes (one-sided Clopper–Pearson at δ/(2K₊) each); the balanced, group, "
                  f"worst-class and π-weighted values follow from the class event.", "",
                  "| target | bounds | errors | n | errors / n | δ′ | certified bound | method |",
                  "|---|---|---:|---:|---:|---:|---:|---|"]
        for row in block.rows:
            lines.append(f"| {_target_label(report, row.target)} | {row.quantity} | {_num(row.errors, 0)} | "
                         f"{_num(row.n, 0)} | {_num(row.empirical_error)} | {_num(row.delta, 4)} | "
                         f"{_num(row.bound)} | {row.method} |")
        lines.append("")
    return lines


def _per_class(report: BoundsReport) -> list[str]:
    def value(name: str, c: int) -> StatementRecord | None:
        return report.statement(name, f"class:{c}")

    split = "test split" + ("" if report.test_same_distribution else ", not the training distribution")
    sample = "held-out part" if report.mode == "certified" else "fitted part"
    intervals = has_intervals(report)
    error = f"class error on the {split}" + (f": {ESTIMATE_LABEL}" if intervals else "")
    lines = ["## Per class", "",
             f"Every column is about the **class error** err_c: its value on the {split} (bounded classifier), "
             "its certificates, and its uniform bound (Corollary 5.4) with that bound's floor. Rows are sorted by "
             f"class index, head first; *n* is the class's count in the {sample} the bounds are computed on, and "
             "*group* is by training count (see the rule at the top).", "",
             f"| class | name | n ({sample}) | group (by training count) | {error} | hold-out certificate | "
             "test-set certificate | Cor. 5.4 bound | Cor. 5.4 floor | vacuous | margin loss | complexity | "
             "confidence |", "|---:|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for row in sorted(report.per_class, key=lambda r: r.class_index):
        c = row.class_index
        hold, test, cor = value("holdout_certificate", c), value("testset_certificate", c), value("corollary54", c)
        bound = _num(row.bound) if row.bound is not None else f"— ({md(row.reason)})"
        shown = value_text(cor.compared_with) if intervals and cor is not None and cor.compared_with is not None \
            else _num(row.test_error)
        lines.append(f"| {c} | {md(row.name)} | {row.n_train} | {GROUP_NAMES.get(row.group, row.group)} | {shown} | "
                     f"{_num(hold.bound if hold else None)} | {_num(test.bound if test else None)} | {bound} | "
                     f"{_num(cor.floor if cor else None)} | {_vacuous_text(cor) if cor else '—'} | "
                     f"{_num(row.train_margin_loss)} | {_num(row.complexity)} | {_num(row.confidence)} |")
    return lines + [""]


def _complexities(report: BoundsReport) -> list[str]:
    rc = report.rademacher
    lines = ["## Empirical Rademacher complexities (THEORY §1, §5)", "",
             "| class | value | std. error | certified upper | method |", "|---|---:|---:|---:|---|"]
    for key, label in (("penultimate", "F_{N-1} (penultimate)"), ("final", "F_N (final)"),
                       ("sum", "F_{N-1} + F_N (Lemma 5.1 sum)")):
        r = getattr(rc, key)
        lines.append(f"| {label} | {_num(r.value)} | {_num(r.stderr)} | {_num(r.upper)} | {r.method} |")
    coupled = report.coupled
    if coupled:
        sub = " — a seeded subsample of the bound sample" if coupled.n_subsample < report.n else ""
        lines += ["", f"Coupled class (one W1, W2, α; THEORY §2): R̂ = {_num(coupled.value)} ± "
                      f"{_num(coupled.stderr)} against the Lemma 5.1 sum {_num(coupled.sum_value)} on the same "
                      f"sign draws: ratio coupled/sum = **{_num(coupled.ratio)}** ({coupled.method}, "
                      f"n = {coupled.n_subsample}{sub}). Random unit-norm features of the same n and d give "
                      f"{_num(coupled.baseline_ratio)}: the ratio is ≈ 2/3 for *any* unit-norm features at this n, so "
                      f"it measures the coupling of the class, not a property of ψ₁, ψ₂ (THEORY §2)."]
    return lines + [""]


def _delta_budget(report: BoundsReport) -> list[str]:
    total = sum(e.delta for e in report.delta_budget)
    lines = ["## δ accounting", "",
             "Each statement holds on its own with probability ≥ 1 − its δ (− δ_mc when it uses Monte Carlo "
             "complexities); every value of one event holds simultaneously. All statements together hold with "
             f"probability ≥ 1 − {_num(total, 4)} (union bound over the events below).", "",
             "| event | family | δ | values |", "|---|---|---:|---:|"]
    for e in report.delta_budget:
        lines.append(f"| {e.event} | {e.family} | {_num(e.delta, 4)} | {e.targets} |")
    return lines + [""]


def _spectral(report: BoundsReport) -> list[str]:
    spectral = report.spectral
    if not spectral:
        return []
    lines = ["## Confusion spectra (CAR's quantities, THEORY §6)", "",
             "C = confusion rates, columns = true classes, diagonal zeroed; w = CAR's frequency weights "
             f"(r0 = {spectral['r0']}). ‖C‖₁ (max column sum) is exactly the worst-class error; ‖C‖₁ ≤ √K·‖C‖₂.", "",
             "| confusion | ‖C‖₁ = worst-class error | ‖C‖₂ | ‖C·diag(w)‖₂ | √K·‖C‖₂ | ‖C‖∞ |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in ("train", "test", "car_ema"):
        f = spectral.get(name)
        if f:
            label = f"CAR's soft EMA C̄ ({f['steps']} steps)" if name == "car_ema" else \
                {"train": "train (bound sample)", "test": "test"}[name]
            lines.append(f"| {label} | {_num(f['norm_1'])} | {_num(f['norm_2'])} | {_num(f['weighted_norm_2'])} | "
                         f"{_num(f['sqrt_k_norm_2'])} | {_num(f['norm_inf'])} |")
    lines += ["", f"Corollary 5.4's worst-class bound (worst-class error) on the same model: "
                  f"{_num(spectral.get('corollary54_worst_class_bound'))}. {spectral['note']}.", ""]
    return lines


#: the order of the targets in the bottom line
_BOTTOM_TARGETS = (("overall", "overall"), ("balanced", "balanced"), ("group:many", "Many"),
                   ("group:medium", "Medium"), ("group:few", "Few"), ("worst_class", "worst class"))


def best_certificate(report: BoundsReport, target: str = "overall") -> StatementRecord | None:
    """The smallest value for ``target`` among the records that are certificates in this run (None if none is)."""
    found = [r for r in report.statements if r.target == target and r.certificate and r.bound is not None]
    return min(found, key=lambda r: r.bound) if found else None


def _n_text(value: float | None) -> str:
    if value is None:
        return "no n (the margin losses alone keep it ≥ 1)"
    exponent = int(f"{value:.1e}".split("e")[1])
    mantissa = value / 10 ** exponent
    return f"n ≈ {mantissa:.1f}·10^{exponent}" if exponent >= 4 else f"n ≈ {value:.0f}"


def vacuity_text(r: StatementRecord, n: int, *, explain: bool = True) -> str:
    """Whether a bound is vacuous and why, and the n that would make it informative (one clause)."""
    if r.bound is None:
        return f"no value ({md(r.reason or 'not defined')})"
    if not r.vacuous:
        return f"{_num(r.bound)}, informative"
    if r.vacuous_by_construction:
        why = (f"vacuous by construction: its floor (its value with zero margin loss, for any classifier of the "
               f"class) is {_num(r.floor)} ≥ 1 at n = {n}" if explain else
               f"vacuous by construction (floor {_num(r.floor)})")
    elif r.floor is not None:
        why = f"vacuous, not by construction: floor {_num(r.floor)} < 1, the model's margin loss pushes it over 1"
    else:
        why = "vacuous"
    return f"{_num(r.bound)}, {why}; below 1 from {_n_text(r.n_for_nonvacuous)}"


def bottom_line(report: BoundsReport) -> list[str]:
    """Five lines: the best certificate per target, the contract, the tightest uniform statement, every uniform
    statement's vacuity at a glance, and the measured values they stand beside."""
    n = report.n
    parts = []
    for target, label in _BOTTOM_TARGETS:
        best = best_certificate(report, target)
        if best is not None:
            parts.append(f"{label} {_num(best.bound)} ({best.name})")
    line1 = ("1. **Best certificate** per target (smallest value valid in this run): " + "; ".join(parts) + "."
             if parts else "1. **Best certificate**: none — no statement is a certificate in this run "
             f"({report.validity}); train with `--holdout-fraction` and use `--mode certified`.")
    contract = report.statement("theorem53", "overall")
    balanced = report.statement("corollary54", "balanced")
    line2 = "2. **Contract** (Theorem 5.3, prior-weighted error): " + (
        vacuity_text(contract, n) if contract is not None else "not computed")
    if balanced is not None:
        line2 += f"; Corollary 5.4 on the balanced error: {vacuity_text(balanced, n, explain=contract is None)}"
    tight = report.statement("tightest_uniform", "overall")
    line3 = "3. **Tightest uniform statement** overall: " + (
        f"{vacuity_text(tight, n, explain=contract is None)} (attained by {tight.terms.get('attained_by')})"
        if tight is not None
        else "not computed (add `tightest_uniform` to --statements)")
    uniform = {}
    for r in report.statements:
        if r.family == "uniform" and r.name != "tightest_uniform" and r.bound is not None:
            uniform.setdefault(r.name, []).append(r)
    names = sorted(uniform)
    vacuous = [name for name in names if all(r.vacuous for r in uniform[name])]
    built = [name for name in vacuous if all(r.vacuous_by_construction for r in uniform[name])]
    line4 = (f"4. **Uniform statements**: {len(vacuous)} of {len(names)} are vacuous for every target"
             + (f", {len(built)} of them by construction (floor ≥ 1: the complexity and confidence terms alone "
                "exceed 1 at this n, whatever the model)" if built else "")
             + (f"; informative for some target: {', '.join(n_ for n_ in names if n_ not in vacuous)}"
                if len(vacuous) < len(names) else "")
             + (". Certificates that need no complexity term (hold-out, test-set, PAC-Bayes) are the informative "
                "numbers at this n." if vacuous else "."))
    o = report.overall
    worst = report.worst_class
    line5 = (f"5. **Measured** on the test split: prior-weighted error {_num(o.prior_weighted_test_error)}, "
             f"balanced error {_num(o.balanced_test_error)}, worst class {_num(worst.test_error)}"
             + (f" ({md(worst.name)})" if worst.name else ""))
    if contract is not None and has_intervals(report):
        line5 += f"; {ESTIMATE_LABEL} of the prior-weighted error: {value_text(contract.compared_with)}"
    line5 += f". {group_rule(report)}"
    return [line1, line2, line3, line4, line5]


def _statements_note(report: BoundsReport) -> list[str]:
    requested = report.settings.get("statements_requested")
    if not requested:
        return []
    added = report.settings.get("statements_added") or []
    text = f"Statements computed: those asked for ({', '.join(requested)})"
    if added:
        text += (f", plus {', '.join(added)}, added because the overall, per-class, group and worst-class views "
                 "are built on them")
    return [text + ".", ""]


def bounds_markdown(report: BoundsReport) -> str:
    o = report.overall
    run = report.run
    lines = [f"# Generalisation bounds — {md(run.method)} on {md(run.dataset)}", "",
             "## Bottom line", "", *bottom_line(report), "",
             f"**Mode: {report.mode}** (validity: {report.validity}). {report.mode_description}", ""]
    lines += _statements_note(report)
    if run.method_summary:
        lines += [f"Method `{run.method}`: {run.method_summary}."]
        lines += [f"- {note}" for note in run.method_notes]
        lines += [""]
    lines += [
        f"Checkpoint `{run.checkpoint}`; bound sample n = {report.n}, K = {report.num_classes} classes; "
        f"δ = {report.delta} per statement, δ_mc = {report.delta_mc} (Monte Carlo certificates); {run.head} heads, "
        f"scale s = {run.scale}, α = {_num(run.alpha)}. Row-norm radii (THEORY §1, worst case over α): "
        f"B_penult = {_num(report.radii['penultimate'])}, B_final = {_num(report.radii['final'])}. Margin grid: "
        f"{report.margin['grid_size']} value(s) fixed before the data, each paid for with δ/m; Theorem 5.3 chose "
        f"ρ = {_num(report.margin['chosen'])}.",
        "",
        f"The test split {'is' if report.test_same_distribution else 'is NOT'} drawn from the training distribution "
        f"class by class, so class-level comparisons with it are "
        f"{'like with like' if report.test_same_distribution else 'only indicative'}. "
        f"Theorem 5.3 (n = {report.n}): bound {_num(o.bound)} = train margin loss {_num(o.train_margin_loss)} + "
        f"complexity {_num(o.complexity)} + confidence {_num(o.confidence)}; it bounds the prior-weighted error, "
        f"which is {_num(o.prior_weighted_test_error)} on the test split (the balanced test error, "
        f"{_num(o.balanced_test_error)}, is a different quantity with its own statements below).",
        "",
    ]
    lines += _headline(report)
    lines += _tightest(report)
    lines += _certificates(report)
    lines += _per_class(report)
    lines += _ranks(report)
    lines += _statement_table(report, "All statements beside the quantity each bounds", None)
    lines += _complexities(report)
    lines += _delta_budget(report)
    lines += _spectral(report)
    lines += ["## Caveats", "",
              "- Uniform bounds scale like s·K/(ρ·√n_c): with margins at most 4s and ρ at most 4s their floor is at "
              "least about 3K/√n_c, so every class with n_c ≤ 9K² is vacuous whatever the features — the floor column "
              "shows it. The hold-out and test-set certificates need no complexity term and are the informative ones "
              "at these sizes.",
              "- Monte Carlo complexities enter the bounds through their McDiarmid-certified upper values "
              "(THEORY §5).",
              "- The confidence term pays for the margin grid (ln m) and, per class, for the union over K classes."]
    if report.validity == "diagnostic":
        lines.append("- Diagnostic mode: the feature maps were fitted on this same sample, so the uniform bounds are "
                     "not certificates. Train with `--holdout-fraction` and use `--mode certified` for one.")
    t = report.timing
    lines += ["", f"Timing: features {_num(t.get('features_seconds'), 1)} s, complexities "
                  f"{_num(t.get('rademacher_seconds'), 1)} s, total {_num(t.get('total_seconds'), 1)} s.", ""]
    return "\n".join(lines)
