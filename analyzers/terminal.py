"""Findings as tables for a terminal: one line per finding with the numbers that matter.

Cells are plain text: a feature or group value with brackets is shown as it is, never read as markup.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzers.findings import Finding

_STYLE = {"ok": "green", "alert": "bold red", "insufficient_data": "yellow", "error": "bold magenta"}


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
