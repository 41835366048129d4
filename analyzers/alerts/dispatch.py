"""Findings through the alert rules and state into the outbox, then delivered through a channel.

``process`` is what ``predwatch analyze`` and the scheduler call after each run; ``flush`` alone
retries the outbox (the scheduler does so every minute, so a Slack outage ends in one delivery);
``preview`` prints what would be sent without touching state or Slack (``--dry-run``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from analyzers.alerts import outbox
from analyzers.alerts.channels import Sender, open_channel
from analyzers.alerts.channels.terminal import TerminalSender
from analyzers.alerts.message import build_message
from analyzers.alerts.state import Notification, apply, changes_for
from analyzers.config.models import Config, JobConfig
from analyzers.findings import Finding
from analyzers.store.base import StateStore
from analyzers.timeutil import utcnow


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


def _by_model(entries: list[outbox.Entry]) -> list[list[outbox.Entry]]:
    groups: dict[str, list[outbox.Entry]] = defaultdict(list)
    for entry in entries:
        groups[entry.notification.model].append(entry)
    return list(groups.values())


def preview(
    store: StateStore,
    config: Config,
    findings: Sequence[Finding],
    *,
    quiet: bool = False,
    now: datetime | None = None,
    sender: Sender | None = None,
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
    store: StateStore,
    config: Config,
    *,
    sender: Sender | None = None,
    quiet: bool = False,
    now: datetime | None = None,
) -> DeliveryReport:
    """Deliver whatever waits in the outbox, one message per model."""
    chosen = sender or open_channel(config, quiet=quiet)

    def send(notes: Sequence[Notification]) -> None:
        chosen.send(build_message(notes, config))

    result = outbox.deliver(store, send, _by_model, now or utcnow())
    return DeliveryReport(0, result.sent, result.failed, result.pending, chosen.target, result.errors)


def process(
    store: StateStore,
    config: Config,
    findings: Sequence[Finding],
    *,
    quiet: bool = False,
    now: datetime | None = None,
    sender: Sender | None = None,
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
