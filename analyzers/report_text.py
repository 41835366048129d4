"""Findings as tables for a terminal: one line per finding with the numbers that matter."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from analyzers.findings import Finding

_STYLE = {"ok": "green", "alert": "bold red", "insufficient_data": "yellow", "error": "bold magenta"}


def format_number(value: Any, digits: int = 3) -> str:
    """A number people read at a glance: ``—`` when missing, whole numbers with separators."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if (value.is_integer() or abs(value) >= 1000) and abs(value) < 1e15:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def format_percent(value: Any) -> str:
    """A share as a percentage with one decimal (``—`` when missing)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.1%}"


def summarize(finding: Finding) -> str:
    """A one-line account of a finding: its signals, or its key numbers, or why there was no verdict.

    The terminal table and the HTML report's verdict cards both read findings this way.
    """
    m = finding.metrics
    if finding.status == "error":
        return finding.error or "failed"
    if finding.status == "insufficient_data" and m.get("reason"):
        return str(m["reason"])
    if finding.job == "drift":
        drifted = [f for f in m.get("features") or [] if f.get("drifted")]
        named = ", ".join(
            f"{f.get('name')} ({f.get('effect_size_method') or f.get('method')} {format_number(f.get('effect_size'))})"
            for f in drifted[:4]
        )
        more = f" and {len(drifted) - 4} more" if len(drifted) > 4 else ""
        head = f"{len(drifted)} of {format_number(m.get('n_columns'))} columns drifted"
        return f"{head}: {named}{more}" if drifted else head
    if finding.signals:
        text = "; ".join(s.message for s in finding.signals[:3])
        return text + (f"; and {len(finding.signals) - 3} more" if len(finding.signals) > 3 else "")
    if finding.job == "fairness":
        parts = [
            f"{a['name']}: parity ratio {format_number(a.get('demographic_parity_ratio'))}"
            for a in m.get("attributes", [])
        ]
        return "; ".join(parts) or "no group attributes"
    if finding.job == "performance":
        shown = [
            f"{name} {format_number(entry.get('value'))} (reference {format_number(entry.get('reference'))})"
            for name, entry in m.items()
            if isinstance(entry, dict) and "value" in entry
        ][:3]
        return "; ".join([*shown, f"label coverage {format_percent(m.get('label_coverage'))}"])
    if finding.job == "estimation":
        shown = [
            f"{e.get('name')} ~{format_number(e.get('estimated'))} (reference {format_number(e.get('reference'))})"
            for e in m.get("metrics") or []
        ][:3]
        return "; ".join([*shown, f"label coverage {format_percent(m.get('label_coverage'))}"])
    if finding.job == "ops":
        total = (m.get("volume") or {}).get("total")
        rate = (m.get("error_rate") or {}).get("value")
        p95 = ((m.get("latency_ms") or {}).get("p95") or {}).get("value")
        return f"{format_number(total)} events, error rate {format_percent(rate)}, latency p95 {format_number(p95)} ms"
    numbers = [(k, v) for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k} {format_number(v)}" for k, v in numbers[:6])


def print_findings(findings: Sequence[Finding], console: Console | None = None) -> None:
    """A table of findings: model, job, window, status and summary."""
    console = console or Console()
    table = Table(title="predwatch findings", show_lines=False)
    for column in ("model", "job", "window", "status", "what was found"):
        table.add_column(column, overflow="fold")
    for f in findings:
        window = f"{f.window.to_dict()['start']} → {f.window.to_dict()['end']}"
        status = f"[{_STYLE.get(f.status, '')}]{f.status}[/]"
        table.add_row(f.model, f.job, window, status, summarize(f))
    console.print(table)


def print_status(heartbeats: dict[str, tuple[dict[str, Any], Any]], latest: Sequence[Finding]) -> None:
    """When each job last ran and how, and the latest finding of each model and job."""
    console = Console()
    if heartbeats:
        table = Table(title="scheduler heartbeats")
        for column in ("job", "last run", "window end", "status", "seconds"):
            table.add_column(column)
        for key, (doc, _version) in sorted(heartbeats.items()):
            table.add_row(
                key.removeprefix("heartbeat:"),
                format_number(doc.get("ran_at")),
                format_number(doc.get("window_end")),
                format_number(doc.get("status")),
                format_number(doc.get("duration_s")),
            )
        console.print(table)
    else:
        console.print("no scheduler heartbeat yet (is `predwatch run` running?)")
    if latest:
        print_findings(sorted(latest, key=lambda f: (f.model, f.job)), console)
