"""Findings through the alert rules and state into the outbox, then delivered: Slack or the terminal.

``process`` is what ``predwatch analyze`` and the scheduler call after each run; ``flush`` alone
retries the outbox (the scheduler does so every minute, so a Slack outage ends in one delivery);
``preview`` prints what would be sent without touching state or Slack (``--dry-run``).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from analyzers.alerts import outbox
from analyzers.alerts.render import Message, build_message
from analyzers.alerts.slack import SlackSender
from analyzers.alerts.state import Notification, apply, changes_for
from analyzers.config.models import Config, JobConfig
from analyzers.findings import Finding
from analyzers.store.base import Store
from analyzers.timeutil import utcnow

_COLOR = {"critical": "red", "warning": "yellow", "info": "blue"}


@dataclass
class DeliveryReport:
    """What one round did: notifications created, delivered, failed and still waiting, and where to."""

    created: int
    sent: int
    failed: int
    pending: int
    target: str
    errors: list[str]


def job_config(config: Config, finding: Finding) -> JobConfig:
    """The configuration of the job that made a finding (defaults for jobs not configured, e.g. replay)."""
    model = config.models.get(finding.model)
    job = model.job(finding.job) if model is not None else None
    return job if job is not None else JobConfig()


class TerminalSender:
    """Prints messages in the shape Slack would show them (no Slack configured, or a dry run)."""

    target = "terminal"

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console = console or Console(file=sys.stderr if quiet else sys.stdout, highlight=False)

    def send(self, message: Message) -> None:
        title = f"predwatch alert: {message.model}"
        self.console.print(Panel(Text(message.text()), title=title, border_style=_COLOR.get(message.severity, "white")))


def sender_for(config: Config, quiet: bool = False) -> SlackSender | TerminalSender:
    """Slack when a token or webhook is configured, the terminal otherwise."""
    if config.slack is not None and config.slack.enabled:
        return SlackSender(config.slack)
    return TerminalSender(quiet=quiet)


def _by_model(entries: list[outbox.Entry]) -> list[list[outbox.Entry]]:
    groups: dict[str, list[outbox.Entry]] = defaultdict(list)
    for entry in entries:
        groups[entry.notification.model].append(entry)
    return list(groups.values())


def preview(
    store: Store,
    config: Config,
    findings: Sequence[Finding],
    *,
    quiet: bool = False,
    now: datetime | None = None,
    sender: TerminalSender | None = None,
) -> int:
    """A dry run: print what ``process`` would send now, recording and sending nothing; returns how many."""
    now = now or utcnow()
    by_model: dict[str, list[Notification]] = defaultdict(list)
    for finding in sorted(findings, key=lambda f: f.window.end):
        for change in changes_for(store, finding, job_config(config, finding), now):
            if change.notification is not None:
                by_model[change.notification.model].append(change.notification)
    chosen = sender or TerminalSender(quiet=quiet)
    for notes in by_model.values():
        chosen.send(build_message(notes, config))
    return sum(len(notes) for notes in by_model.values())


def flush(
    store: Store,
    config: Config,
    *,
    sender: SlackSender | TerminalSender | None = None,
    quiet: bool = False,
    now: datetime | None = None,
) -> DeliveryReport:
    """Deliver whatever waits in the outbox, one message per model."""
    chosen = sender or sender_for(config, quiet)

    def send(notes: Sequence[Notification]) -> None:
        chosen.send(build_message(notes, config))

    result = outbox.deliver(store, send, _by_model, now or utcnow())
    return DeliveryReport(0, result.sent, result.failed, result.pending, chosen.target, result.errors)


def process(
    store: Store,
    config: Config,
    findings: Sequence[Finding],
    *,
    quiet: bool = False,
    now: datetime | None = None,
    sender: SlackSender | TerminalSender | None = None,
) -> DeliveryReport:
    """Turn findings into notifications (deduplicated, cooled down, resolved) and deliver them."""
    now = now or utcnow()
    created = 0
    for finding in sorted(findings, key=lambda f: f.window.end):
        for change in changes_for(store, finding, job_config(config, finding), now):
            note = change.notification
            queued = note is not None and outbox.enqueue(store, note, now)  # before the state: never lost
            if apply(store, change):
                created += 1 if note is not None else 0
            elif queued and note is not None:
                outbox.discard(store, note)
    report = flush(store, config, sender=sender, quiet=quiet, now=now)
    report.created = created
    return report
