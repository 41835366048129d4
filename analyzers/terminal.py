"""Findings for a terminal: one line per finding with the numbers that matter, and a replay in detail.

Cells are plain text: a feature or group value with brackets is shown as it is, never read as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzers.findings import Finding, ReplayMetrics
from analyzers.findings.quality import QualityRow, describe_reasons
from analyzers.findings.replay import Mismatch
from analyzers.formatting import format_number, format_percent
from analyzers.stats.performance import normalize_label

_STYLE = {"ok": "green", "alert": "bold red", "insufficient_data": "yellow", "error": "bold magenta"}
EXAMPLE_ROWS = 5  # rows of a replay shown in the terminal


def print_findings(findings: Sequence[Finding], console: Console | None = None) -> None:
    """A table of findings: model, job, window, status and summary."""
    console = console or Console()
    table = Table(title="predwatch findings", show_lines=False)
    for column in ("model", "job", "window", "status", "what was found"):
        table.add_column(column, overflow="fold")
    for f in findings:
        window = f"{f.window.to_dict()['start']} → {f.window.to_dict()['end']}"
        status = Text(f.status, style=_STYLE.get(f.status, ""))
        table.add_row(Text(f.model), Text(f.job), Text(window), status, Text(f.summary()))
    console.print(table)


def quality_cells(row: QualityRow) -> tuple[str, str, str]:
    """Lines considered, lines set aside (share and the limit that alerts), and the reasons with their first
    file:line, as plain text."""
    quality, report = row.quality, row.quality.report
    if report is None:
        return "—", "not measured", quality.error or "the store could not tell"
    aside = f"{format_number(report.set_aside)} ({format_percent(report.share)}; alert above "
    aside += f"{format_percent(quality.max_bad_share)})"
    return format_number(report.lines), aside, "\n".join(describe_reasons(report)) or "none"


def print_quality(rows: Sequence[QualityRow], console: Console | None = None) -> None:
    """The data quality of each model window: lines considered and set aside, by reason with the first file:line
    of each (out-of-time lines, invalid UTF-8 and repeated ids among them)."""
    console = console or Console()
    table = Table(title="data quality: lines set aside per window", show_lines=False)
    for column in ("model", "window", "jobs", "lines", "set aside", "reasons (first file:line)"):
        table.add_column(column, overflow="fold")
    for row in rows:
        bounds = row.window.to_dict()
        cells = (row.model, f"{bounds['start']} → {bounds['end']}", ", ".join(row.jobs), *quality_cells(row))
        table.add_row(*(Text(c) for c in cells))
    console.print(table)


def print_replay(finding: Finding, console: Console | None = None) -> None:
    """A replay's verdict, counts, score differences against the tolerance, and example rows."""
    console = console or Console(soft_wrap=True)  # long lines stay whole for grep and copy
    m = finding.metrics_as(ReplayMetrics)
    bounds = finding.window.to_dict()
    style = _STYLE.get(finding.status, "")
    target = m.target if m is not None else "?"
    console.print(
        f"replay of [bold]{finding.model}[/] through {target}, {bounds['start']} → {bounds['end']}: "
        f"[{style}]{finding.status}[/]"
    )
    if finding.status == "error" or m is None:
        console.print(f"  {finding.error}")
        return
    if not m.n:
        console.print("  no logged prediction matches the selection")
        return
    score = m.tolerance.get("score")
    within = f"{score.atol:.3g} + {score.rtol:.3g} x |score| ({score.source})" if score is not None else "—"
    console.print(
        f"  {format_number(m.n)} predictions replayed; {format_number(m.prediction_mismatches)} predictions differ"
    )
    console.print(
        f"  scores: {format_number(m.score_mismatches)} of {format_number(m.scores_compared)} beyond {within}; "
        f"largest difference {_difference(m.max_score_difference)}, mean {_difference(m.mean_abs_score_difference)}"
    )
    console.print(f"  {format_number(m.mismatches)} rows differ ({format_percent(m.mismatch_rate)})")
    rows = m.examples[:EXAMPLE_ROWS] or m.largest_differences[:EXAMPLE_ROWS]
    if rows:
        console.print(_replay_rows(rows, differ=bool(m.mismatches)))


def _replay_rows(rows: Sequence[Mismatch], *, differ: bool) -> Table:
    table = Table(title="rows that differ" if differ else None)
    for column in ("prediction id", "entity", "logged", "replayed", "logged score", "replayed score", "diff."):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.prediction_id),
            _exact(row.entity_id),
            _exact(row.logged),
            _exact(row.replayed),
            _exact(row.logged_score),
            _exact(row.replayed_score),
            _difference(row.score_difference),
        )
    return table


def _exact(value: Any) -> str:
    """A logged or replayed value with ten significant digits (two that differ in the 7th decimal print apart);
    classes as classes (a logged ``1.0`` is the class ``1``), ``—`` when missing."""
    value = normalize_label(value)
    if value is None:
        return "—"
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def _difference(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"
