"""The report page: one self-contained HTML document (inline CSS, inline SVG, no external resource).

Every piece of user data (model, feature, group and category names, messages) is escaped.  A tiny
inline script records script errors in ``<body data-errors>`` and, once loaded, the number of plots
in ``data-plots`` and ``data-rendered="1"``, so a headless browser can prove the page rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from html import escape
from string import Template
from typing import Any

from analyzers.config.models import FairnessConfig, OpsConfig
from analyzers.findings import (
    CanaryMetrics,
    DriftMetrics,
    EstimationMetrics,
    FairnessMetrics,
    Finding,
    MultivariateDrift,
    OpsMetrics,
    PerformanceMetrics,
)
from analyzers.findings.canary import MetricComparison
from analyzers.findings.fairness import AttributeResult
from analyzers.findings.quality import describe_reasons
from analyzers.formatting import format_number
from analyzers.formatting import format_percent as pct
from analyzers.jobs.registry import JOBS
from analyzers.report import charts
from analyzers.report.data import Distribution, JobSection, ReportData
from analyzers.report.trends import EstimationTrend
from analyzers.stats.drift import ColumnDrift
from analyzers.timeutil import Window, format_duration, format_time

STATUS_TEXT = {
    "ok": "OK",
    "alert": "ALERT",
    "insufficient_data": "NOT ENOUGH DATA",
    "error": "ERROR",
    None: "NOT RUN",
}
JOB_TITLES = {name: spec.title for name, spec in JOBS.items()}

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; \
script-src 'unsafe-inline'; img-src data:">
<meta name="generator" content="predwatch">
<title>$title</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#f6f7f9;
line-height:1.4}
main{max-width:1100px;margin:0 auto;padding:1rem 1.5rem 3rem}
header{background:#1f2937;color:#fff;padding:1rem 1.5rem}
header h1{margin:0;font-size:1.4rem}
header p{margin:.25rem 0 0;color:#cbd5e1;font-size:.9rem}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);margin:1rem 0;padding:1rem 1.25rem}
h2{margin:.2rem 0 .6rem;font-size:1.2rem}
h3{margin:1rem 0 .4rem;font-size:1rem}
table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0;width:100%}
th,td{border-bottom:1px solid #e5e7eb;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f4f6;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;border-radius:4px;padding:.1rem .5rem;font-size:.75rem;font-weight:700;color:#fff;
white-space:nowrap}
.s-ok{background:#2e7d32}.s-alert{background:#c62828}.s-insufficient_data{background:#b26a00}
.s-error{background:#6a1b9a}.s-none{background:#757575}
.v-promote{background:#2e7d32}.v-hold{background:#b26a00}.v-rollback{background:#c62828}
tr.alert td{background:#fdecea}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:.75rem}
.card{border:1px solid #e5e7eb;border-left:6px solid #757575;border-radius:6px;padding:.6rem .75rem}
.card.s-ok-b{border-left-color:#2e7d32}.card.s-alert-b{border-left-color:#c62828}
.card.s-insufficient_data-b{border-left-color:#b26a00}.card.s-error-b{border-left-color:#6a1b9a}
.card h3{margin:0 0 .3rem;display:flex;flex-wrap:wrap;gap:.25rem .5rem;justify-content:space-between;
align-items:center}
.card p{margin:.2rem 0;font-size:.85rem}
.note{background:#fff8e1;border-left:4px solid #b26a00;padding:.5rem .75rem;margin:.5rem 0;font-size:.9rem}
.muted{color:#6b7280;font-size:.85rem}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:.5rem}
figure{margin:.5rem 0}
svg.plot{width:100%;height:auto;max-width:900px}
svg.plot *{stroke-linejoin:round;stroke-linecap:butt}
.scroll{overflow-x:auto}
</style>
</head>
<body data-errors="0" data-plots="0" data-rendered="0">
<script>
(function(){var b=document.body;window.addEventListener("error",function(){
b.setAttribute("data-errors",String(Number(b.getAttribute("data-errors")||0)+1));});})();
</script>
<header><h1>$heading</h1><p>$subtitle</p></header>
<main>
$sections
<p class="muted">$footer</p>
</main>
<script>
(function(){function done(){var b=document.body;
b.setAttribute("data-plots",String(document.querySelectorAll("svg.plot").length));
b.setAttribute("data-rendered","1");}
if(document.readyState==="complete"){done();}else{window.addEventListener("load",done);}})();
</script>
</body>
</html>
""")


def render(data: ReportData) -> str:
    """The whole page for one model as of one time."""
    at, span = format_time(data.at), data.span.to_dict()
    windows = f"window of {format_duration(data.window_override)}" if data.window_override else "configured window"
    sections = [
        _summary(data),
        _quality(data),
        _drift(data),
        _fairness(data),
        _performance(data),
        _estimation(data),
        _operations(data),
        _canary(data),
    ]
    return _PAGE.substitute(
        title=escape(f"predwatch report: {data.model} as of {at}"),
        heading=escape(f"predwatch report: {data.model}"),
        subtitle=escape(
            f"as of {at}: each job over its {windows}"
            f" ending then; trends from {span['start']} to {span['end']} per {format_duration(data.trends.bucket)}, "
            f"{data.n_events:,.0f} events of which {data.n_failures:,.0f} failed"
        ),
        sections="\n".join(sections),
        footer=escape(f"Generated {format_time(data.generated_at)} by predwatch. Times are UTC."),
    )


# ---- helpers -------------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table cell (``—`` when missing); text is returned escaped."""
    return escape(format_number(value, digits))


def ci(interval: Any, as_pct: bool = False) -> str:
    """``[low, high]`` as text (``—`` when there is none)."""
    if not interval or interval[0] is None or interval[1] is None:
        return "—"
    f: Callable[[Any], str] = pct if as_pct else fmt
    return f"{f(interval[0])} – {f(interval[1])}"


def badge(status: str | None) -> str:
    css = status if status in STATUS_TEXT and status is not None else "none"
    return f'<span class="badge s-{css}">{escape(STATUS_TEXT.get(status, str(status)))}</span>'


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def table(headers: Sequence[str], rows: Iterable[tuple[str, Sequence[str]]], numeric: set[int] | None = None) -> str:
    """A table from already escaped cells; each row is ``(css class, cells)``."""
    numeric = numeric or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for css, cells in rows:
        tds = "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(cells))
        body.append(f'<tr class="{css}">{tds}</tr>' if css else f"<tr>{tds}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def plot(draw: Callable[..., str], *args: Any) -> str:
    """A chart in a ``<figure>``, or a note saying why it could not be drawn (the rest of the page stays)."""
    try:
        return f"<figure>{draw(*args)}</figure>"
    except Exception as exc:  # odd data must not cost the whole report
        return note(f"This plot could not be drawn: {type(exc).__name__}: {exc}")


def _section(job: str, body: str) -> str:
    return f'<section id="{job}"><h2>{escape(JOB_TITLES[job])}</h2>\n{body}\n</section>'


def _missing(section: JobSection) -> str | None:
    """A note in place of a job's content when it has no usable finding, else ``None``."""
    finding = section.finding
    if finding is None:
        return note(section.note or f"No {section.name} result for this window.")
    if finding.status == "error":
        return note(f"The {section.name} job failed: {finding.error or 'unknown error'}")
    if finding.status == "insufficient_data":
        return note(f"Not enough data for a {section.name} verdict: {finding.summary()}")
    return None


def window_text(window: Window) -> str:
    """``start → end (length)`` of a window."""
    bounds = window.to_dict()
    return f"{bounds['start']} → {bounds['end']} ({format_duration(window.length)})"


def _coverage_text(finding: Finding | None) -> str:
    """How much of the window and reference held data, from the finding's ``coverage`` entry."""
    metrics = finding.metrics if finding is not None else None
    covered = (
        metrics.coverage
        if isinstance(metrics, (DriftMetrics, FairnessMetrics, PerformanceMetrics, EstimationMetrics))
        else None
    )
    parts = [f"{name} {pct(entry.share)} of {fmt(entry.slots)} slots" for name, entry in (covered or {}).items()]
    return f" Slots holding data: {', '.join(parts)}." if parts else ""


def _window_line(section: JobSection) -> str:
    """The section's window and what it was compared with (as its finding says, else as resolved), and coverage;
    nothing for a job that is neither configured nor stored."""
    if section.finding is None:
        return ""
    text = f"Window {window_text(section.window)}"
    described = (section.finding.reference or {}) if section.finding is not None else {}
    window = described.get("window")
    if described.get("file") or section.windows.reference_file is not None:
        text += f", compared with the file {described.get('file') or section.windows.reference_file}"
    else:
        reference = Window.from_dict(window) if isinstance(window, dict) else window or section.windows.reference
        if isinstance(reference, Window):
            text += f", compared with the reference {window_text(reference)}"
    return f'<p class="muted">{escape(text + ".")}{escape(_coverage_text(section.finding))}</p>'


def _card_window(section: JobSection) -> str:
    return f"{window_text(section.window)}; " if section.finding is not None else ""


def _fired_note(data: ReportData, job: str) -> str:
    """Which buckets are shaded: those where a finding of ``job`` alerted (stored, or computed for this report)."""
    fired = data.trends.fired.get(job) or []
    title = JOB_TITLES[job].lower()
    if not any(fired):
        return f"The {title} job did not alert in this span."
    return f"Shaded: the {sum(fired)} bucket(s) of {format_duration(data.trends.bucket)} where the {title} job alerted."


def _source(section: JobSection) -> str:
    if section.source == "stored":
        return "stored result of a scheduled run"
    if section.source == "computed":
        return "computed for this report"
    return "not run"


# ---- sections ------------------------------------------------------------------------------------
def _summary(data: ReportData) -> str:
    cards = []
    for name, section in data.jobs.items():
        finding = section.finding
        status = finding.status if finding is not None else None
        text = finding.summary() if finding is not None else (section.note or "not run")
        css = f"s-{status}-b" if status else ""
        cards.append(
            f'<div class="card {css}"><h3><a href="#{name}">{escape(JOB_TITLES[name])}</a>{badge(status)}</h3>'
            f'<p>{escape(text)}</p><p class="muted">{escape(_card_window(section) + _source(section))}</p></div>'
        )
    return f'<section id="summary"><h2>Verdicts</h2><div class="cards">{"".join(cards)}</div></section>'


def _quality(data: ReportData) -> str:
    """Each job window's lines considered and set aside, by reason with the first file:line of each."""
    rows = []
    for row in data.quality:
        report = row.quality.report
        jobs = escape(", ".join(JOB_TITLES.get(j, j) for j in row.jobs))
        if report is None:
            cause = escape(row.quality.error or "the store could not tell")
            rows.append(("", [jobs, escape(window_text(row.window)), "—", "—", f"not measured: {cause}"]))
            continue
        reasons = "<br>".join(escape(r) for r in describe_reasons(report)) or "none"
        share = f"{fmt(report.set_aside)} ({pct(report.share)})"
        rows.append(
            (
                "alert" if row.quality.exceeded() else "",
                [jobs, escape(window_text(row.window)), fmt(report.lines), share, reasons],
            )
        )
    if not rows:
        body = note("No job window to describe.")
    else:
        limits = sorted({pct(row.quality.max_bad_share) for row in data.quality})
        body = (
            f'<p class="muted">Log lines of each job\'s window that were set aside (bad JSON, a time out of any '
            f"plausible range, invalid UTF-8, repeated ids, ...), with the file and line of the first of each "
            f"reason.  A share above {escape(' / '.join(limits))} raises a quality alert (highlighted).</p>"
            + table(["jobs", "window", "lines", "set aside", "reasons (first file:line)"], rows, numeric={2, 3})
        )
    return f'<section id="quality"><h2>Data quality</h2>\n{body}\n</section>'


def _drift(data: ReportData) -> str:
    section = data.jobs["drift"]
    parts = [_window_line(section)]
    missing = _missing(section)
    finding = section.finding
    m = finding.metrics_as(DriftMetrics) if finding is not None else None
    if missing is not None:
        parts.append(missing)
    elif m is not None:
        parts.append(
            f"<p>{fmt(m.n_drifted)} of {fmt(m.n_columns)} columns "
            f"drifted (share {fmt(m.share_drifted)}; dataset drift when at least {fmt(m.drift_share)}): "
            f"<strong>{'dataset drift' if m.dataset_drift else 'no dataset drift'}</strong>. "
            f"p-values adjusted with {escape(m.correction or '')} at alpha {fmt(m.alpha)}; a column "
            "drifts when its adjusted p-value is below alpha and its effect size, less the noise sampling alone "
            "gives at these sizes, above its threshold.</p>"
        )
        parts.append(_drift_table(m.features))
        parts.extend(note(text) for text in data.distribution_notes)
        by_name = {f.name: f for f in m.features}
        plots = [_distribution_plot(d, by_name.get(d.name), i) for i, d in enumerate(data.distributions)]
        if plots:
            parts.append("<h3>Distributions: reference against current</h3>")
            parts.append(f'<div class="plots">{"".join(plots)}</div>')
        if m.multivariate is not None:
            parts.extend(_multivariate(m.multivariate))
    trend, trends = data.trends.drift, data.trends
    shown = None
    if trend is not None and trend.ratios:
        shown = (
            plot(charts.drift_trend, trend, trends.starts, trends.bucket, trends.fired.get("drift"), "drift-trend"),
            f"Each column against {trend.reference}, from the logs per {format_duration(trends.bucket)}; effect sizes"
            " beyond sampling noise (a column drifts when its test is also significant).",
        )
    parts.extend(_over_time(data, "drift", shown, "No drift trend: no column could be compared."))
    joint = [f for f in section.history if (d := f.metrics_as(DriftMetrics)) is not None and d.multivariate]
    if joint:
        parts.append(plot(charts.multivariate_history, joint, "multivariate-history"))
        parts.append(
            f'<p class="muted">The features taken together in each of the {len(joint)} drift result(s) stored or '
            "computed for this report, by window end.</p>"
        )
    parts.append(_versions(section))
    return _section("drift", "\n".join(parts))


def _multivariate(joint: MultivariateDrift) -> list[str]:
    """The multivariate verdict of a drift finding."""
    method = "PCA reconstruction error" if joint.method == "pca" else "domain classifier ROC AUC"
    if joint.statistic is None:
        return ["<h3>Features together</h3>", note(f"Multivariate drift could not be judged: {joint.reason}")]
    return [
        "<h3>Features together</h3>",
        f"<p>{escape(method)} {fmt(joint.statistic, 4)} against threshold {fmt(joint.threshold, 4)} "
        f"{badge('alert' if joint.drifted else 'ok')} ({fmt(joint.n_reference)} reference and "
        f"{fmt(joint.n_current)} current rows sampled; features {escape(', '.join(joint.features))}).</p>",
    ]


def _drift_table(features: list[ColumnDrift]) -> str:
    rows = []
    for f in features:
        missing = "—"
        if f.missing is not None:
            missing = f"{pct(f.missing.rate_ref)} → {pct(f.missing.rate_cur)}"
        new_text = ", ".join(f"{escape(str(c.get('value')))} ({pct(c.get('share'))})" for c in f.new_categories[:3])
        cells = [
            escape(f.name),
            escape(f.kind),
            escape(f.method),
            fmt(f.statistic),
            fmt(f.p_value_adjusted, 2),
            f"{escape(f.effect_size_method)} {fmt(f.effect_size)}",
            fmt(f.effect_size_noise),
            fmt(f.threshold),
            missing,
            new_text or "—",
            badge("alert") if f.drifted else badge("ok"),
        ]
        rows.append(("alert" if f.drifted else "", cells))
    headers = ["column", "kind", "test", "statistic", "adjusted p", "effect size", "noise", "threshold"]
    return table([*headers, "missing", "new", ""], rows, numeric={3, 4, 6, 7})


def _distribution_plot(dist: Distribution, feature: ColumnDrift | None, index: int) -> str:
    if dist.note is not None or not dist.ref:
        reason = dist.note or "no values to draw"
        return f"<div>{note(f'{dist.name}: {reason}')}</div>"
    return plot(charts.distribution, dist, feature, f"dist{index}")


def _fairness(data: ReportData) -> str:
    section = data.jobs["fairness"]
    missing = _missing(section)
    parts = [_window_line(section)] + ([missing] if missing is not None else [])
    finding = section.finding
    fairness = finding.metrics_as(FairnessMetrics) if finding is not None else None
    attributes = fairness.attributes if fairness is not None else []
    if missing is None and not attributes:
        parts.append(note("No group attributes were logged in this window."))
    config = section.config if isinstance(section.config, FairnessConfig) else FairnessConfig()
    reference = (finding.reference or {}) if finding is not None else {}
    parity_ratio = float(reference.get("parity_ratio", config.parity_ratio))
    max_difference = float(reference.get("max_difference", config.max_difference))
    if attributes:
        parts.append(
            f"<p>Groups smaller than {fmt(reference.get('min_group_size', config.min_group_size))} predictions get no "
            f"verdict. Intervals at {pct(reference.get('confidence', config.confidence))}: "
            f"{escape(str(reference.get('interval', 'Wilson')))}.</p>"
        )
        flagged = _parity_breaches(finding)
        parts.append(plot(charts.fairness_gaps, attributes, parity_ratio, max_difference, flagged, "fair-gaps"))
        parts.append(_gap_table(attributes, parity_ratio, flagged))
    for i, attribute in enumerate(attributes):
        parts.append(f"<h3>{escape(attribute.name)} {badge(attribute.status)}</h3>")
        if attribute.groups:
            parts.append(plot(charts.fairness_groups, attribute, f"fair{i}"))
        parts.append(_group_table(attribute))
    trend, trends = data.trends.fairness, data.trends
    shown = None
    if trend is not None and trend.attributes:
        fired = trends.fired.get("fairness")
        shown = (
            plot(charts.fairness_trend, trend, trends.starts, trends.bucket, fired, "fair-trend"),
            f"Parity measures per {format_duration(trends.bucket)} from the logs, over the groups of at least"
            f" {fmt(trend.min_group_size)} predictions in the bucket (no point where fewer than two are).",
        )
    parts.extend(_over_time(data, "fairness", shown, "No fairness trend: no group attribute was logged."))
    parts.append(_versions(section))
    return _section("fairness", "\n".join(parts))


def _parity_breaches(finding: Finding | None) -> frozenset[str]:
    """The attributes whose demographic parity the fairness job flagged (significant and beyond a limit)."""
    signals = finding.signals if finding is not None else []
    return frozenset(s.subject.removeprefix("attribute:") for s in signals if s.subject.startswith("attribute:"))


def _gap_table(attributes: list[AttributeResult], parity_ratio: float, flagged: frozenset[str]) -> str:
    """Each attribute's parity gaps; a row is highlighted only when its verdict is an alert, and a ratio below
    ``parity_ratio`` that the job did not flag (its difference is not significant) says so."""
    rows = []
    for a in attributes:
        difference, ratio, odds = (
            a.demographic_parity_difference,
            a.demographic_parity_ratio,
            a.equalized_odds_difference,
        )
        cells = [
            escape(a.name),
            f"{fmt(difference.value)} ({ci(difference.ci)})",
            f"{fmt(ratio.value)} ({ci(ratio.ci)}){_unflagged_ratio(a, parity_ratio, flagged)}",
            f"{fmt(odds.value)} ({ci(odds.ci)})",
            fmt(a.eligible_groups),
            fmt(a.missing),
            badge(a.status),
        ]
        rows.append(("alert" if a.status == "alert" else "", cells))
    headers = ["attribute", "parity difference (CI)", "parity ratio (CI)", "equalized odds diff. (CI)"]
    return table([*headers, "groups judged", "rows without a group", ""], rows)


def _unflagged_ratio(attribute: AttributeResult, parity_ratio: float, flagged: frozenset[str]) -> str:
    ratio = attribute.demographic_parity_ratio.value
    if ratio is None or ratio >= parity_ratio or attribute.name in flagged:
        return ""
    return f'<br><span class="muted">below {fmt(parity_ratio)}, not significant</span>'


def _group_table(attribute: AttributeResult) -> str:
    rows = []
    for g in attribute.groups:
        cells = [escape(str(g.group)), fmt(g.n), fmt(g.n_labeled)]
        for rate, _label in charts.FAIRNESS_RATES:
            cells.append(f"{pct(g.rate(rate).value)} ({ci(g.rate(rate).ci, as_pct=True)})")
        cells.append(badge(g.status))
        rows.append(("alert" if g.status == "alert" else "", cells))
    headers = ["group", "n", "labelled", *(label for _r, label in charts.FAIRNESS_RATES), ""]
    return table(headers, rows, numeric={1, 2})


def _performance(data: ReportData) -> str:
    section = data.jobs["performance"]
    missing = _missing(section)
    parts = [_window_line(section)] + ([missing] if missing is not None else [])
    finding = section.finding
    m = finding.metrics_as(PerformanceMetrics) if finding is not None else None
    if missing is None and finding is not None and m is not None:
        reference = finding.reference or {}
        parts.append(
            f"<p>Task: {escape(str(m.task))}. {fmt(m.n_labeled)} of {fmt(m.n)} predictions "
            f"labelled (coverage {pct(m.label_coverage)}); the reference has {fmt(reference.get('n_labeled'))} "
            "labelled.</p>"
        )
        rows = []
        for name, entry in m.measured.items():
            compared = entry.versus_reference
            cells = [
                escape(name),
                fmt(entry.value, 4),
                ci(entry.ci),
                fmt(entry.reference, 4),
                fmt(compared.change if compared is not None else None, 3),
                fmt(compared.significant if compared is not None else None),
                badge("alert") if entry.breached else badge("ok"),
            ]
            rows.append(("alert" if entry.breached else "", cells))
        headers = ["metric", "value", "95% CI", "reference", "change", "significant", ""]
        parts.append(table(headers, rows, numeric={1, 3, 4}))
    trend, trends = data.trends.performance, data.trends
    shown = None
    if trend is not None:
        fired = trends.fired.get("performance")
        references = _metric_references(finding)
        shown = (
            plot(charts.performance_trend, trend, trends.starts, trends.bucket, fired, references, "perf-trend"),
            f"Task: {trend.task}. Metrics and label coverage per {format_duration(trends.bucket)} from the logs"
            f" ({fmt(sum(trend.n_labeled))} labelled of {fmt(sum(trend.n))} predictions); dotted lines: the"
            " reference values of the current window's finding.",
        )
    parts.extend(_over_time(data, "performance", shown, "No performance trend."))
    parts.append(_versions(section))
    return _section("performance", "\n".join(parts))


def _metric_references(finding: Finding | None) -> dict[str, float]:
    """Each metric's reference value in a finding (the dotted lines of the trend)."""
    m = finding.metrics_as(PerformanceMetrics) if finding is not None else None
    if m is None:
        return {}
    return {name: float(entry.reference) for name, entry in m.measured.items() if entry.reference is not None}


def _estimation(data: ReportData) -> str:
    section = data.jobs["estimation"]
    missing = _missing(section)
    parts = [_window_line(section)] + ([missing] if missing is not None else [])
    finding = section.finding
    m = finding.metrics_as(EstimationMetrics) if finding is not None else None
    if missing is None and m is not None:
        calibration = m.calibration
        method = (
            f"calibration {escape(calibration.method)} (out-of-fold calibration error {fmt(calibration.ece)}) on "
            f"{fmt(calibration.n)} labelled reference predictions"
            if calibration is not None and m.task is None
            else f"loss models fitted on {fmt(calibration.n if calibration is not None else None)} labelled "
            "reference predictions"
        )
        parts.append(
            f"<p>Estimated from {fmt(m.n_scored)} predictions without their labels ({fmt(m.n_labeled)} labelled so "
            f"far); {method}. Intervals at {pct(m.confidence)}: the sampling error of the realized value.</p>"
        )
        rows = []
        for entry in m.estimates:
            cells = [
                escape(entry.name),
                fmt(entry.estimated, 4),
                ci([entry.lower, entry.upper]),
                fmt(entry.realized, 4),
                f"{fmt(entry.reference, 4)} ({ci([entry.reference_lower, entry.reference_upper])})",
                badge("alert") if entry.dropped else badge("ok"),
            ]
            rows.append(("alert" if entry.dropped else "", cells))
        headers = ["metric", "estimated", "interval", "realized", "reference (interval)", ""]
        parts.append(table(headers, rows, numeric={1, 3}))
    trend, trends = data.trends.estimation, data.trends
    shown = None
    if trend is not None and any(f.metrics_as(EstimationMetrics) for f in trend.findings):
        fired = trends.fired.get("estimation")
        shown = (
            plot(charts.estimation_trend, trend, trends.starts, trends.bucket, fired, "estimation-trend"),
            f"Estimated per {format_duration(trends.bucket)} from the logs against {trend.reference} (a bucket short"
            " of the job's min_coverage or min_rows has no point).",
        )
    parts.extend(_over_time(data, "estimation", shown, "No estimation trend."))
    if trend is not None:
        parts.extend(_estimation_version_trends(trend, data))
    parts.append(_versions(section))
    return _section("estimation", "\n".join(parts))


def _estimation_version_trends(trend: EstimationTrend, data: ReportData) -> list[str]:
    """Each version's estimation trend (``by_version``), shaded where the version's estimate dropped."""
    parts = []
    for i, (version, findings) in enumerate(trend.versions.items()):
        if not any(m.estimates for m in (f.metrics_as(EstimationMetrics) for f in findings) if m is not None):
            continue  # no bucket of the version could be estimated: its findings' reasons are in "By version"
        alone = EstimationTrend(findings, trend.reference)
        dropped = [f.status == "alert" for f in findings]
        title = f"Version {version}: estimated performance per bucket"
        starts, bucket = data.trends.starts, data.trends.bucket
        shown = plot(charts.estimation_trend, alone, starts, bucket, dropped, f"estimation-v{i}", title, "dropped")
        parts.append(shown)
        parts.append(
            f'<p class="muted">The predictions of {escape(version)} alone per {format_duration(data.trends.bucket)}, '
            f"against the whole model's reference ({escape(trend.reference)}); shaded where its estimate dropped.</p>"
        )
    return parts


def _operations(data: ReportData) -> str:
    section = data.jobs["ops"]
    missing = _missing(section)
    parts = [_window_line(section)] + ([missing] if missing is not None else [])
    finding = section.finding
    m = finding.metrics_as(OpsMetrics) if finding is not None else None
    if finding is not None and m is not None and finding.status in ("ok", "alert", "insufficient_data"):
        err = m.error_rate
        cells = [
            fmt(m.volume.total),
            fmt(err.failures),
            f"{pct(err.value)} ({ci(err.ci, as_pct=True)})",
            ", ".join(f"{escape(k)} {fmt(v.value)} ms" for k, v in m.latency_ms.items()) or "—",
            escape(format_duration_s(m.silence.value_s)),
        ]
        parts.append(table(["events", "failures", "error rate (CI)", "latency", "longest silence"], [("", cells)]))
        for signal in finding.signals:
            parts.append(f'<p class="note">{escape(signal.message)}</p>')
    if data.ops is not None:
        config = section.config if isinstance(section.config, OpsConfig) else OpsConfig()
        parts.append(plot(charts.operations, data.ops, config.max_error_rate, dict(config.latency_ms), "ops"))
        sampled = data.ops.latency_sampled < data.ops.latency_total
        detail = f"from a uniform sample of {data.ops.latency_sampled:,} events" if sampled else "from every event"
        parts.append(
            f'<p class="muted">Volume per {escape(format_duration(data.ops.bucket))}; latency percentiles per '
            f"{escape(format_duration(data.ops.latency_bucket))} {detail}.</p>"
        )
    else:
        parts.append(note(data.ops_note or "No operations data."))
    trend, trends = data.trends.ops, data.trends
    shown = None
    if trend is not None:
        shown = (
            plot(charts.ops_trend, trend, trends.starts, trends.bucket, trends.fired.get("ops"), "ops-trend"),
            f"Events, error rate and latency percentiles per {format_duration(trends.bucket)} from the logs.",
        )
    parts.extend(_over_time(data, "ops", shown, "No operations trend."))
    parts.append(_versions(section))
    return _section("ops", "\n".join(parts))


def _over_time(data: ReportData, job: str, shown: tuple[str, str] | None, fallback: str) -> list[str]:
    """A section's "Over time": its trend chart and caption, with the buckets where the job's alert fired, or why
    there is no trend (the trend's own note, else ``fallback``)."""
    if shown is None:
        return ["<h3>Over time</h3>", note(data.trends.notes.get(job) or fallback)]
    chart, caption = shown
    return ["<h3>Over time</h3>", chart, f'<p class="muted">{escape(caption)} {escape(_fired_note(data, job))}</p>']


def format_duration_s(seconds: Any) -> str:
    """Seconds as a short duration (``0s`` for none)."""
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        return "0s"
    return format_duration(timedelta(seconds=round(seconds)))


def _versions(section: JobSection) -> str:
    """Each model version's own result when the job splits its findings per version (``by_version``)."""
    finding = section.finding
    split = finding.by_version if finding is not None else None
    if split is None:
        return ""
    rows = [
        (
            "alert" if v.status == "alert" else "",
            [escape(v.version), fmt(v.events), pct(v.share), badge(v.status), escape(v.summary())],
        )
        for v in split.versions
    ]
    more = f" {split.left_out} more version(s) were not analysed alone." if split.left_out else ""
    return (
        "<h3>By version</h3>"
        + table(["version", "events", "share", "", "what was found"], rows, numeric={1, 2})
        + f'<p class="muted">Each version alone against the same reference.{escape(more)}</p>'
    )


VERDICT_TEXT = {"promote": "PROMOTE", "hold": "HOLD", "rollback": "ROLL BACK"}


def verdict_badge(verdict: str | None) -> str:
    """The canary verdict as a coloured badge (grey when there was no canary)."""
    if verdict not in VERDICT_TEXT:
        return '<span class="badge s-none">NO CANARY</span>'
    return f'<span class="badge v-{verdict}">{VERDICT_TEXT[verdict]}</span>'


def _canary(data: ReportData) -> str:
    section = data.jobs["canary"]
    finding = section.finding
    m = finding.metrics_as(CanaryMetrics) if finding is not None else None
    if finding is None or finding.status == "error" or m is None:
        return _section("canary", _missing(section) or note("No canary result for this window."))
    parts = [f"<p>{verdict_badge(m.verdict)} {escape(m.reason)}</p>"]
    if m.traffic:
        rows = [
            (
                "",
                [
                    escape(t.version),
                    fmt(t.events),
                    pct(t.share),
                    escape(format_time(t.first_seen) if t.first_seen else "—"),
                ],
            )
            for t in m.traffic
        ]
        parts.append("<h3>Traffic</h3>" + table(["version", "events", "share", "first seen"], rows, numeric={1, 2}))
    sides = [s for s in (m.baseline, m.candidate) if s is not None]
    if sides:
        latency = list(sides[0].latency_ms)
        rows = [
            (
                "",
                [
                    escape(s.version),
                    escape(s.chosen_as),
                    fmt(s.events),
                    fmt(s.labeled),
                    pct(s.error_rate),
                    *(fmt(s.latency_ms.get(p)) for p in latency),
                ],
            )
            for s in sides
        ]
        headers = ["version", "chosen as", "events", "labelled", "error rate", *(f"latency {p} (ms)" for p in latency)]
        parts.append("<h3>Baseline and candidate</h3>" + table(headers, rows, numeric=set(range(2, 5 + len(latency)))))
    if m.comparisons:
        parts.append(
            f"<h3>Candidate minus baseline</h3><p>Intervals at {pct(m.level)} each, so the gated metrics together "
            f"hold {pct(m.confidence)}; latency is the share of events at or above the baseline's percentile.</p>"
        )
        parts.append(_comparison_table(m.comparisons))
    size = m.sample_size
    if size is not None and size.required is not None:
        parts.append(
            f"<p>Power calculation for {escape(size.metric)}: {fmt(size.required)} candidate observations detect a "
            f"worsening of {fmt(m.min_detectable)} with power {pct(m.power)}; the window has {fmt(size.observed)}.</p>"
        )
    if m.drift:
        parts.append("<h3>Prediction and score: candidate against baseline</h3>" + _drift_table(m.drift))
    parts.append(_verdict_history(section.history))
    return _section("canary", "\n".join(parts))


def _comparison_table(comparisons: list[MetricComparison]) -> str:
    rows = []
    for c in comparisons:
        shown = pct if c.is_share else fmt
        state = "worse" if c.worse else "better" if c.better else "no significant difference"
        cells = [
            escape(c.metric),
            shown(c.baseline),
            shown(c.candidate),
            escape(c.describe_difference().removeprefix("difference ")),
            fmt(c.n_baseline),
            fmt(c.n_candidate),
            "yes" if c.gated else "no",
            escape(state),
        ]
        rows.append(("alert" if c.worse else "", cells))
    headers = ["metric", "baseline", "candidate", "difference (interval)", "n baseline", "n candidate", "gated", ""]
    return table(headers, rows, numeric={1, 2, 4, 5})


def _verdict_history(history: list[Finding]) -> str:
    rows = []
    for f in history[-10:][::-1]:
        m = f.metrics_as(CanaryMetrics)
        if m is None:
            continue
        candidate = m.candidate.version if m.candidate is not None else "—"
        rows.append(("", [escape(format_time(f.window.end)), escape(candidate), verdict_badge(m.verdict)]))
    if not rows:
        return ""
    return "<h3>Recent verdicts</h3>" + table(["window end", "candidate", "verdict"], rows)
