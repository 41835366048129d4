"""Findings as tables for a terminal: one line per finding with the numbers that matter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from analyzers.findings import Finding

_STYLE = {"ok": "green", "alert": "bold red", "insufficient_data": "yellow", "error": "bold magenta"}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def summarize(finding: Finding) -> str:
    """A one-line account of a finding's key numbers (which features drifted, which group, ...)."""
    if finding.status == "error":
        return finding.error or "failed"
    m = finding.metrics
    if finding.job == "drift":
        drifted = [f for f in m.get("features", []) if f.get("drifted")]
        names = ", ".join(
            f"{f['name']} ({f.get('effect_size_method') or f.get('method')} {_fmt(f.get('effect_size'))})"
            for f in drifted[:5]
        )
        more = f" and {len(drifted) - 5} more" if len(drifted) > 5 else ""
        share = _fmt(m.get("share_drifted"))
        return f"{len(drifted)} drifted, share {share}" + (f": {names}{more}" if drifted else "")
    if finding.signals:
        text = "; ".join(s.message for s in finding.signals[:3])
        return text + (f"; and {len(finding.signals) - 3} more" if len(finding.signals) > 3 else "")
    if finding.job == "fairness":
        parts = [
            f"{a['name']}: parity ratio {_fmt(a.get('demographic_parity_ratio'))}" for a in m.get("attributes", [])
        ]
        return "; ".join(parts) or "no group attributes"
    if finding.job == "ops":
        volume = m.get("volume") or {}
        latency = m.get("latency_ms") or {}
        errors = m.get("error_rate")
        rate = errors.get("value") if isinstance(errors, dict) else errors
        parts = [f"volume {_fmt(volume.get('total'))}", f"error rate {_fmt(rate)}"]
        for name, value in latency.items():
            number = value.get("value") if isinstance(value, dict) else value
            if number is not None:
                parts.append(f"latency {name} {_fmt(number)} ms")
        return ", ".join(parts)
    numbers = [(k, v) for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k} {_fmt(v)}" for k, v in numbers[:6])


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
                _fmt(doc.get("ran_at")),
                _fmt(doc.get("window_end")),
                _fmt(doc.get("status")),
                _fmt(doc.get("duration_s")),
            )
        console.print(table)
    else:
        console.print("no scheduler heartbeat yet (is `predwatch run` running?)")
    if latest:
        print_findings(sorted(latest, key=lambda f: (f.model, f.job)), console)
