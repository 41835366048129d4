"""``predwatch demo``: simulate, analyse every day, alert, report, and say which incidents were caught."""

from __future__ import annotations

import importlib
import io
import shutil
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from analyzers.alerts.channels import open_channel
from analyzers.alerts.dispatch import DeliveryReport, process
from analyzers.config.models import Config
from analyzers.demo.incidents import incidents
from analyzers.demo.scoring import score
from analyzers.demo.settings import demo_settings, write_settings
from analyzers.demo.table import print_outcomes
from analyzers.demo.traffic import MODELS, simulate
from analyzers.findings import Finding
from analyzers.runner import run_job
from analyzers.store.base import Store
from analyzers.store.local import LocalStore
from analyzers.timeutil import Window, format_time, utcnow


def _end_of_simulation() -> datetime:
    now = utcnow()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _analyse(store: Store, config: Config, days: Sequence[Window], advance: Callable[[], None]) -> list[Finding]:
    findings: list[Finding] = []
    for window in days:
        for model, model_config in config.models.items():
            for name, job in model_config.jobs().items():
                findings.append(run_job(store, model, name, job, window, quality=config.quality_for(model)))
                advance()
    return findings


def run_demo(
    *,
    days: int = 14,
    per_day: int = 2000,
    seed: int = 7,
    out: str | Path = "./predwatch-demo",
    console: Console | None = None,
    reports: bool = True,
) -> int:
    """Run the whole loop on this machine; 0 when every incident was caught and nothing else flagged.

    Alerts go to Slack when the environment configures it, else to ``console`` after the progress bar;
    ``reports=False`` skips the HTML reports (the slowest step, for quick repeated runs).
    """
    console = console or Console()
    try:
        injected = incidents(days)
    except ValueError as exc:
        console.print(f"[bold red]predwatch demo: {exc}[/]")
        return 2
    if per_day < 1:
        console.print(f"[bold red]predwatch demo: --per-day must be at least 1, got {per_day}[/]")
        return 2
    out = Path(out)
    for part in ("logs", "state"):
        shutil.rmtree(out / part, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    end = _end_of_simulation()
    start = end - timedelta(days=days)
    reference_end = start + timedelta(days=days // 2)
    config = write_settings(demo_settings(start, reference_end, out), out / "predwatch.yml")
    windows = [Window(start + timedelta(days=d), start + timedelta(days=d + 1)) for d in range(days // 2, days)]
    jobs = sum(len(m.jobs()) for m in config.models.values())
    # Whatever a channel prints waits until the progress bar is gone, then shows in order.
    held = io.StringIO()
    sender = open_channel(
        config, console=Console(file=held, width=console.width, force_terminal=console.is_terminal, highlight=False)
    )
    started = time.monotonic()
    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        traffic = bar.add_task("simulating traffic", total=days * len(MODELS))
        logged = simulate(
            out / "logs",
            days=days,
            per_day=per_day,
            seed=seed,
            end=end,
            injected=injected,
            progress=lambda: bar.advance(traffic),
        )
        analysis = bar.add_task("analysing each day", total=len(windows) * jobs)
        store = LocalStore(out / "logs", out / "state")
        with store:
            findings = _analyse(store, config, windows, lambda: bar.advance(analysis))
            store.write_findings(findings)
            alerts = bar.add_task("alerting", total=len(windows))
            deliveries = []
            for window in windows:
                day = [f for f in findings if f.window == window]
                deliveries.append(process(store, config, day, now=window.end, sender=sender))
                bar.advance(alerts)
            written = _reports(store, config, end, timedelta(days=days), out, bar) if reports else []
    console.file.write(held.getvalue())
    outcomes, false_alarms = score(findings, injected, start)
    print_outcomes(outcomes, false_alarms, start, console)
    console.print(
        f"{logged:,} predictions over {days} days for {len(MODELS)} models, {len(findings)} job runs, "
        f"{time.monotonic() - started:.1f} s; logs and state in {out}/, configuration {out / 'predwatch.yml'}"
    )
    _print_deliveries(deliveries, sender.target, console)
    for path in written:
        console.print(f"report: {path}")
    settings = out / "predwatch.yml"
    last_day = format_time(windows[-1].end)
    console.print(
        f"[dim]again by hand: predwatch analyze -c {settings} --at {last_day}; "
        f"predwatch report -c {settings} --at {last_day} --out {out}/[/]"
    )
    return 0 if all(o.caught for o in outcomes) and not false_alarms else 1


def _print_deliveries(deliveries: Sequence[DeliveryReport], target: str, console: Console) -> None:
    """How many alert notifications went where, and why any could not be delivered (no secrets in these)."""
    sent = sum(d.sent for d in deliveries)
    where = "printed above" if target == "terminal" else f"sent to the {target}"
    console.print(f"alerts: {sent} notification(s) {where}")
    waiting = deliveries[-1].pending if deliveries else 0
    errors = list(dict.fromkeys(e for d in deliveries for e in d.errors))
    if waiting or errors:
        console.print(f"[yellow]{waiting} notification(s) not delivered yet: {'; '.join(errors[:3]) or 'waiting'}[/]")


def _reports(store: Store, config: Config, at: datetime, span: timedelta, out: Path, bar: Progress) -> list[Path]:
    """One HTML report per model as of the end of the simulation, trends over every simulated day."""
    try:
        report = importlib.import_module("analyzers.report")
    except ImportError:
        return []
    task = bar.add_task("writing reports", total=len(config.models))
    paths = []
    for model in config.models:
        path = out / f"report-{model}.html"
        paths.append(report.write_report(store, model, path, config=config, at=at, span=span, base=out))
        bar.advance(task)
    return paths
