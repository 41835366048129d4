"""The demo's result as tables: each incident (caught or not, when, how strongly) and any false alarm."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from rich.console import Console
from rich.table import Table

from analyzers.demo.scoring import FalseAlarm, Outcome


def _strength(outcome: Outcome) -> str:
    signal = outcome.signal
    if signal is None:
        return "—"
    if signal.value is not None and signal.threshold not in (None, 0):
        return f"{signal.message} ({abs(signal.value / signal.threshold):.1f}× the limit)"
    return signal.message


def print_outcomes(
    outcomes: Sequence[Outcome], false_alarms: Sequence[FalseAlarm], start: datetime, console: Console
) -> None:
    """Print the incidents table, the false alarms (if any), and a one-line verdict."""
    table = Table(title="predwatch demo: injected incidents", show_lines=True)
    for column in ("incident", "model", "day", "caught by", "how strongly", "also flagged (consequences)"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        day = (start + timedelta(days=o.incident.day)).date().isoformat()
        caught = (
            f"[green]✔ {o.incident.job} {o.incident.subject}[/]"
            if o.caught
            else f"[bold red]✘ missed ({o.incident.job} {o.incident.subject})[/]"
        )
        also = "\n".join(o.also)
        table.add_row(
            f"{o.incident.name}\n[dim]{o.incident.description}[/]", o.incident.model, day, caught, _strength(o), also
        )
    console.print(table)
    if false_alarms:
        alarms = Table(title="flagged but not injected (false alarms)")
        for column in ("model", "job", "window", "subject", "what"):
            alarms.add_column(column, overflow="fold")
        for fa in false_alarms:
            f = fa.finding
            alarms.add_row(f.model, f.job, f.window.to_dict()["start"], fa.subject, fa.message)
        console.print(alarms)
    n_caught = sum(o.caught for o in outcomes)
    style = "bold green" if n_caught == len(outcomes) and not false_alarms else "bold red"
    console.print(f"[{style}]{n_caught}/{len(outcomes)} incidents caught, {len(false_alarms)} false alarm(s)[/]")
