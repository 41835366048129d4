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
from analyzers.report import charts
from analyzers.report.data import Distribution, JobSection, ReportData
from analyzers.report_text import format_number, summarize
from analyzers.report_text import format_percent as pct
from analyzers.timeutil import Window, format_duration, format_time

STATUS_TEXT = {
    "ok": "OK",
    "alert": "ALERT",
    "insufficient_data": "NOT ENOUGH DATA",
    "error": "ERROR",
    None: "NOT RUN",
}
JOB_TITLES = {
    "drift": "Drift",
    "fairness": "Fairness",
    "performance": "Performance",
    "ops": "Operations",
    "estimation": "Estimated performance",
}

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
tr.alert td{background:#fdecea}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:.75rem}
.card{border:1px solid #e5e7eb;border-left:6px solid #757575;border-radius:6px;padding:.6rem .75rem}
.card.s-ok-b{border-left-color:#2e7d32}.card.s-alert-b{border-left-color:#c62828}
.card.s-insufficient_data-b{border-left-color:#b26a00}.card.s-error-b{border-left-color:#6a1b9a}
.card h3{margin:0 0 .3rem;display:flex;justify-content:space-between;align-items:center}
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
    """The whole page for one model and window."""
    window = data.window.to_dict()
    sections = [
        _summary(data),
        _drift(data),
        _fairness(data),
        _performance(data),
        _estimation(data),
        _operations(data),
    ]
    return _PAGE.substitute(
        title=escape(f"predwatch report: {data.model}, {window['start']} to {window['end']}"),
        heading=escape(f"predwatch report: {data.model}"),
        subtitle=escape(
            f"window {window['start']} to {window['end']} ({format_duration(data.window.length)}), "
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
        return note(f"Not enough data for a {section.name} verdict: {summarize(finding)}")
    return None


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
        text = summarize(finding) if finding is not None else (section.note or "not run")
        css = f"s-{status}-b" if status else ""
        cards.append(
            f'<div class="card {css}"><h3><a href="#{name}">{escape(JOB_TITLES[name])}</a>{badge(status)}</h3>'
            f'<p>{escape(text)}</p><p class="muted">{escape(_source(section))}</p></div>'
        )
    return f'<section id="summary"><h2>Verdicts</h2><div class="cards">{"".join(cards)}</div></section>'


def _drift(data: ReportData) -> str:
    section = data.jobs["drift"]
    parts = []
    missing = _missing(section)
    if missing is not None:
        parts.append(missing)
    else:
        finding = section.finding
        assert finding is not None
        m = finding.metrics
        reference = data.reference or _describe_reference(finding.reference)
        parts.append(
            f"<p>Compared with {escape(reference)}. {fmt(m.get('n_drifted'))} of {fmt(m.get('n_columns'))} columns "
            f"drifted (share {fmt(m.get('share_drifted'))}; dataset drift when at least {fmt(m.get('drift_share'))}): "
            f"<strong>{'dataset drift' if m.get('dataset_drift') else 'no dataset drift'}</strong>. "
            f"p-values adjusted with {escape(str(m.get('correction', '')))} at alpha {fmt(m.get('alpha'))}; a column "
            "drifts when its adjusted p-value is below alpha and its effect size above its threshold.</p>"
        )
        parts.append(_drift_table(m.get("features") or []))
        parts.extend(note(text) for text in data.distribution_notes)
        by_name = {str(f.get("name")): f for f in m.get("features") or []}
        plots = [_distribution_plot(d, by_name.get(d.name, {}), i) for i, d in enumerate(data.distributions)]
        if plots:
            parts.append("<h3>Distributions: reference against current</h3>")
            parts.append(f'<div class="plots">{"".join(plots)}</div>')
        parts.extend(_multivariate(m.get("multivariate")))
    parts.append("<h3>Over time</h3>")
    history = [f for f in section.history if f.metrics.get("features")]
    if history:
        parts.append(plot(charts.drift_history, history, "drift-history"))
        parts.append(f'<p class="muted">{len(history)} drift result(s) by window end.</p>')
    else:
        parts.append(note("No stored drift results with feature scores to draw over time."))
    joint_history = [f for f in section.history if isinstance(f.metrics.get("multivariate"), dict)]
    if joint_history:
        parts.append(plot(charts.multivariate_history, joint_history, "multivariate-history"))
    return _section("drift", "\n".join(parts))


def _multivariate(joint: Any) -> list[str]:
    """The multivariate verdict of a drift finding, when one was configured."""
    if not isinstance(joint, dict):
        return []
    method = "PCA reconstruction error" if joint.get("method") == "pca" else "domain classifier ROC AUC"
    if joint.get("statistic") is None:
        return ["<h3>Features together</h3>", note(f"Multivariate drift could not be judged: {joint.get('reason')}")]
    verdict = badge("alert") if joint.get("drifted") else badge("ok")
    return [
        "<h3>Features together</h3>",
        f"<p>{escape(method)} {fmt(joint.get('statistic'), 4)} against threshold {fmt(joint.get('threshold'), 4)} "
        f"{verdict} ({fmt(joint.get('n_reference'))} reference and {fmt(joint.get('n_current'))} current rows "
        "sampled).</p>",
    ]


def _describe_reference(reference: dict[str, Any] | None) -> str:
    if not reference:
        return "the reference"
    if reference.get("file"):
        return f"the file {reference['file']}"
    window = reference.get("window")
    if isinstance(window, Window):
        window = window.to_dict()
    if not isinstance(window, dict):
        return "the reference"
    return f"the window {window.get('start')} to {window.get('end')}"


def _drift_table(features: list[dict[str, Any]]) -> str:
    rows = []
    for f in features:
        missing = "—"
        if f.get("missing_rate_ref") is not None:
            missing = f"{pct(f.get('missing_rate_ref'))} → {pct(f.get('missing_rate_cur'))}"
        new = f.get("new_categories") or []
        new_text = ", ".join(f"{escape(str(c.get('value')))} ({pct(c.get('share'))})" for c in new[:3])
        cells = [
            escape(str(f.get("name"))),
            escape(str(f.get("kind"))),
            escape(str(f.get("method"))),
            fmt(f.get("statistic")),
            fmt(f.get("p_value_adjusted"), 2),
            f"{escape(str(f.get('effect_size_method', '')))} {fmt(f.get('effect_size'))}",
            fmt(f.get("threshold")),
            missing,
            new_text or "—",
            badge("alert") if f.get("drifted") else badge("ok"),
        ]
        rows.append(("alert" if f.get("drifted") else "", cells))
    headers = ["column", "kind", "test", "statistic", "adjusted p", "effect size", "threshold", "missing", "new", ""]
    return table(headers, rows, numeric={3, 4, 6})


def _distribution_plot(dist: Distribution, feature: dict[str, Any], index: int) -> str:
    if dist.note is not None or not dist.ref:
        reason = dist.note or "no values to draw"
        return f"<div>{note(f'{dist.name}: {reason}')}</div>"
    return plot(charts.distribution, dist, feature, f"dist{index}")


def _fairness(data: ReportData) -> str:
    section = data.jobs["fairness"]
    missing = _missing(section)
    parts = [missing] if missing is not None else []
    finding = section.finding
    attributes = finding.metrics.get("attributes") or [] if finding is not None else []
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
        parts.append(plot(charts.fairness_gaps, attributes, parity_ratio, max_difference, "fair-gaps"))
        parts.append(_gap_table(attributes, parity_ratio))
    for i, attribute in enumerate(attributes):
        parts.append(f"<h3>{escape(str(attribute.get('name')))} {badge(attribute.get('status'))}</h3>")
        if attribute.get("groups"):
            parts.append(plot(charts.fairness_groups, attribute, f"fair{i}"))
        parts.append(_group_table(attribute))
    return _section("fairness", "\n".join(parts))


def _gap_table(attributes: list[dict[str, Any]], parity_ratio: float) -> str:
    rows = []
    for a in attributes:
        ratio = a.get("demographic_parity_ratio")
        cells = [
            escape(str(a.get("name"))),
            f"{fmt(a.get('demographic_parity_difference'))} ({ci(a.get('demographic_parity_difference_ci'))})",
            f"{fmt(ratio)} ({ci(a.get('demographic_parity_ratio_ci'))})",
            f"{fmt(a.get('equalized_odds_difference'))} ({ci(a.get('equalized_odds_difference_ci'))})",
            fmt(a.get("eligible_groups")),
            fmt(a.get("missing")),
            badge(a.get("status")),
        ]
        breached = ratio is not None and ratio < parity_ratio
        rows.append(("alert" if a.get("status") == "alert" or breached else "", cells))
    headers = ["attribute", "parity difference (CI)", "parity ratio (CI)", "equalized odds diff. (CI)"]
    return table([*headers, "groups judged", "rows without a group", ""], rows)


def _group_table(attribute: dict[str, Any]) -> str:
    rows = []
    for g in attribute.get("groups") or []:
        cells = [escape(str(g.get("group"))), fmt(g.get("n")), fmt(g.get("n_labeled"))]
        for rate, _label in charts.FAIRNESS_RATES:
            cells.append(f"{pct(g.get(rate))} ({ci(g.get(f'{rate}_ci'), as_pct=True)})")
        cells.append(badge(g.get("status")))
        rows.append(("alert" if g.get("status") == "alert" else "", cells))
    headers = ["group", "n", "labelled", *(label for _r, label in charts.FAIRNESS_RATES), ""]
    return table(headers, rows, numeric={1, 2})


def _performance(data: ReportData) -> str:
    section = data.jobs["performance"]
    missing = _missing(section)
    parts = [missing] if missing is not None else []
    finding = section.finding
    if missing is None and finding is not None:
        m = finding.metrics
        reference = finding.reference or {}
        ref_text = _describe_reference(reference)
        parts.append(
            f"<p>Task: {escape(str(m.get('task')))}. {fmt(m.get('n_labeled'))} of {fmt(m.get('n'))} predictions "
            f"labelled (coverage {pct(m.get('label_coverage'))}). Compared with {escape(ref_text)} "
            f"({fmt(reference.get('n_labeled'))} labelled).</p>"
        )
        rows = []
        for name, entry in m.items():
            if not isinstance(entry, dict) or "value" not in entry:
                continue
            cells = [
                escape(name),
                fmt(entry.get("value"), 4),
                ci(entry.get("ci")),
                fmt(entry.get("reference"), 4),
                fmt(entry.get("change"), 3),
                fmt(entry.get("significant")),
                badge("alert") if entry.get("breached") else badge("ok"),
            ]
            rows.append(("alert" if entry.get("breached") else "", cells))
        headers = ["metric", "value", "95% CI", "reference", "change", "significant", ""]
        parts.append(table(headers, rows, numeric={1, 3, 4}))
    parts.append("<h3>Over time</h3>")
    history = [f for f in section.history if f.metrics.get("label_coverage") is not None]
    if history:
        parts.append(plot(charts.performance_history, history, "perf-history"))
        parts.append(f'<p class="muted">{len(history)} performance result(s) by window end.</p>')
    else:
        parts.append(note("No performance results with labels to draw over time."))
    return _section("performance", "\n".join(parts))


def _estimation(data: ReportData) -> str:
    section = data.jobs["estimation"]
    missing = _missing(section)
    parts = [missing] if missing is not None else []
    finding = section.finding
    if missing is None and finding is not None:
        m = finding.metrics
        calibration = m.get("calibration") or {}
        parts.append(
            f"<p>Estimated from the scores of {fmt(m.get('n_scored'))} predictions without their labels "
            f"({fmt(m.get('n_labeled'))} labelled so far); calibration {escape(str(calibration.get('method')))} "
            f"(out-of-fold calibration error {fmt(calibration.get('ece'))}) on {fmt(calibration.get('n'))} labelled "
            f"predictions of {escape(_describe_reference(finding.reference))}.</p>"
        )
        rows = []
        for entry in m.get("metrics") or []:
            reference_interval = ci([entry.get("reference_lower"), entry.get("reference_upper")])
            cells = [
                escape(str(entry.get("name"))),
                fmt(entry.get("estimated"), 4),
                ci([entry.get("lower"), entry.get("upper")]),
                fmt(entry.get("realized"), 4),
                f"{fmt(entry.get('reference'), 4)} ({reference_interval})",
                badge("alert") if entry.get("dropped") else badge("ok"),
            ]
            rows.append(("alert" if entry.get("dropped") else "", cells))
        headers = ["metric", "estimated", "interval", "realized", "reference (interval)", ""]
        parts.append(table(headers, rows, numeric={1, 3}))
    history = [f for f in section.history if f.metrics.get("metrics")]
    if history:
        parts.append("<h3>Over time</h3>")
        parts.append(plot(charts.estimation_history, history, "estimation-history"))
    return _section("estimation", "\n".join(parts))


def _operations(data: ReportData) -> str:
    section = data.jobs["ops"]
    missing = _missing(section)
    parts = [missing] if missing is not None else []
    finding = section.finding
    if finding is not None and finding.status in ("ok", "alert", "insufficient_data") and finding.metrics:
        m = finding.metrics
        err = m.get("error_rate") or {}
        latency = m.get("latency_ms") or {}
        silence = m.get("silence") or {}
        cells = [
            fmt((m.get("volume") or {}).get("total")),
            fmt(err.get("failures")),
            f"{pct(err.get('value'))} ({ci(err.get('ci'), as_pct=True)})",
            ", ".join(f"{escape(k)} {fmt(v.get('value'))} ms" for k, v in latency.items()) or "—",
            escape(format_duration_s(silence.get("value_s"))),
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
    return _section("ops", "\n".join(parts))


def format_duration_s(seconds: Any) -> str:
    """Seconds as a short duration (``0s`` for none)."""
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        return "0s"
    return format_duration(timedelta(seconds=round(seconds)))
