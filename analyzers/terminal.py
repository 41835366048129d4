"""Findings as tables for a terminal: one line per finding with the numbers that matter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from analyzers.findings import Finding
from analyzers.formatting import format_number

_STYLE = {"ok": "green", "alert": "bold red", "insufficient_data": "yellow", "error": "bold magenta"}


def print_findings(findings: Sequence[Finding], console: Console | None = None) -> None:
    """A table of findings: model, job, window, status and summary."""
    console = console or Console()
    table = Table(title="predwatch findings", show_lines=False)
    for column in ("model", "job", "window", "status", "what was found"):
        table.add_column(column, overflow="fold")
    for f in findings:
        window = f"{f.window.to_dict()['start']} → {f.window.to_dict()['end']}"
        status = f"[{_STYLE.get(f.status, '')}]{f.status}[/]"
        table.add_row(f.model, f.job, window, status, f.summary())
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
