"""A replay's finding for a terminal: what was compared, how far apart, within which tolerance, a few rows."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from analyzers.findings import Finding
from analyzers.report_text import format_number, format_percent
from analyzers.stats.performance import normalize_label

EXAMPLE_ROWS = 5
_STYLE = {"ok": "green", "alert": "bold red", "insufficient_data": "yellow", "error": "bold magenta"}


def _exact(value: Any) -> str:
    """A logged or replayed value with ten significant digits (two that differ in the 7th decimal print apart);
    classes as classes (a logged ``1.0`` is the class ``1``), ``—`` when missing."""
    value = normalize_label(value)
    if value is None:
        return "—"
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def print_replay(finding: Finding, console: Console | None = None) -> None:
    """The replay's verdict, counts, score differences against the tolerance, and example rows."""
    console = console or Console(soft_wrap=True)  # long lines stay whole for grep and copy
    m = finding.metrics
    bounds = finding.window.to_dict()
    style = _STYLE.get(finding.status, "")
    console.print(
        f"replay of [bold]{finding.model}[/] through {m.get('target', '?')}, {bounds['start']} → {bounds['end']}: "
        f"[{style}]{finding.status}[/]"
    )
    if finding.status == "error":
        console.print(f"  {finding.error}")
        return
    n = m.get("n") or 0
    if not n:
        console.print("  no logged prediction matches the selection")
        return
    tolerance = (m.get("tolerance") or {}).get("score") or {}
    console.print(
        f"  {format_number(n)} predictions replayed; {format_number(m.get('prediction_mismatches'))} predictions differ"
    )
    console.print(
        f"  scores: {format_number(m.get('score_mismatches'))} of {format_number(m.get('scores_compared'))} beyond "
        f"{tolerance.get('atol', 0):.3g} + {tolerance.get('rtol', 0):.3g} x |score| ({tolerance.get('source', '')}); "
        f"largest difference {_difference(m.get('max_score_difference'))}, "
        f"mean {_difference(m.get('mean_abs_score_difference'))}"
    )
    console.print(f"  {format_number(m.get('mismatches'))} rows differ ({format_percent(m.get('mismatch_rate'))})")
    rows = (m.get("examples") or [])[:EXAMPLE_ROWS] or (m.get("largest_differences") or [])[:EXAMPLE_ROWS]
    if rows:
        table = Table(title="rows that differ" if m.get("mismatches") else None)
        for column in ("prediction id", "entity", "logged", "replayed", "logged score", "replayed score", "diff."):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                str(row.get("prediction_id")),
                _exact(row.get("entity_id")),
                _exact(row.get("logged")),
                _exact(row.get("replayed")),
                _exact(row.get("logged_score")),
                _exact(row.get("replayed_score")),
                _difference(row.get("score_difference")),
            )
        console.print(table)


def _difference(value: Any) -> str:
    return "—" if value is None else f"{value:.3g}"
