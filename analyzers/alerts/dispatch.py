"""Findings through the alert rules and state into the outbox, then delivered through each channel.

``record`` turns findings into state changes and queued notifications; ``flush`` announces the alerts
whose silence ended (``release``) and delivers what waits in the outbox, channel by channel (the
scheduler calls it once the jobs fired together have finished, and every ``scheduler.outbox_every``
for retries); ``process`` is both, what ``predwatch analyze`` calls; ``preview`` prints what would be
sent without writing anything (``--dry-run``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rich.console import Console

from analyzers.alerts import outbox, silences, tally
from analyzers.alerts.channels import LooksBack, Sender, open_channels
from analyzers.alerts.channels.terminal import TerminalSender
from analyzers.alerts.errors import ChannelUnreachable, DeliveryError, DeliveryInterrupted, RetryLater
from analyzers.alerts.message import Message, StillFiring, build_message
from analyzers.alerts.pacing import Pacing
from analyzers.alerts.routing import HeldCount, Routing, channel_names
from analyzers.alerts.rules import alerts_of
from analyzers.alerts.state import (
    STATE_PREFIX,
    Change,
    Context,
    Notification,
    apply,
    changes_for,
    implied_by_current,
    released,
    unsilenced,
)
from analyzers.config.models import Config, JobConfig
from analyzers.findings import Finding
from analyzers.formatting import format_number
from analyzers.store.base import FindingStore, StateStore
from analyzers.timeutil import format_duration, utcnow

LOOK_BACK_MARGIN = timedelta(minutes=5)  # how much earlier than an entry's creation a channel's history is read


@dataclass
class ChannelReport:
    """What one delivery round did on one channel."""

    channel: str
    target: str
    messages: int = 0  # messages sent
    sent: int = 0  # notifications in them
    recovered: int = 0  # notifications found already delivered (after a crash) and not sent again
    failed: int = 0  # notifications not delivered this round (kept in the outbox)
    refused: int = 0  # of those, the ones whose attempt failed (not those handed back when the process stops)
    errors: list[str] = field(default_factory=list)
    retry_after_s: float | None = None  # the channel asked to wait this long (a long Retry-After)
    interrupted: bool = False  # the process is stopping; what was not sent waits in the outbox


@dataclass
class DeliveryReport:
    """What a round did: notifications created and silenced, and per channel what was sent or kept."""

    created: int = 0
    silenced: int = 0
    channels: dict[str, ChannelReport] = field(default_factory=dict)
    pending: int = 0  # outbox entries still waiting for some channel
    retry_every: timedelta | None = None

    @property
    def sent(self) -> int:
        return sum(c.sent + c.recovered for c in self.channels.values())

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.channels.values())

    @property
    def errors(self) -> list[str]:
        return [e for c in self.channels.values() for e in c.errors]

    @property
    def target(self) -> str:
        return ", ".join(c.target for c in self.channels.values()) or "nowhere"

    def lines(self) -> list[str]:
        """One line per channel that did something, for people: what was sent, what is kept and why."""
        out = []
        for c in self.channels.values():
            if c.messages:
                alerts = f" ({c.sent} alert{'s' * (c.sent != 1)})" if c.sent != c.messages else ""
                out.append(f"sent {c.messages} message{'s' * (c.messages != 1)}{alerts} to {c.target}")
            if c.recovered:
                out.append(
                    f"{c.recovered} alert(s) already in {c.target} after an interrupted delivery: not sent again"
                )
            if c.failed:
                if c.retry_after_s is not None:
                    when = f"retried after {format_number(c.retry_after_s)} s"
                elif c.interrupted:
                    when = "sent when predwatch runs again"
                elif self.retry_every is not None:
                    when = f"retried every {format_duration(self.retry_every)}"
                else:
                    when = "retried at the next run"
                why = c.errors[0] if c.errors else "not delivered"
                out.append(f"{why}: {c.failed} alert(s) kept, {when}")
        return out


def job_config(config: Config, finding: Finding) -> JobConfig:
    """The configuration of the job that made a finding (defaults for jobs not configured, e.g. replay)."""
    return settings_of(config, finding.model, finding.job)


def settings_of(config: Config, model: str, job: str) -> JobConfig:
    """A model's job configuration, or the defaults for a job or model not configured."""
    found = config.models[model].job(job) if model in config.models else None
    return found if found is not None else JobConfig()


def _held(history: FindingStore | None, finding: Finding, job: JobConfig) -> HeldCount | None:
    """How many of the last ``of`` windows of the finding's job (itself included) raised an alert key."""
    if history is None:
        return None
    past: list[Finding] | None = None

    def held(key: str, of: int) -> int:
        nonlocal past
        if past is None:
            earlier = history.read_findings(finding.model, finding.job, until=finding.window.end)
            past = [f for f in earlier if f.window.end < finding.window.end and f.id != finding.id]
        window = past[-(of - 1) :] if of > 1 else []
        return 1 + sum(1 for f in window if key in {a.key for a in alerts_of(f, job.severity)})

    return held


def _context(
    store: StateStore, config: Config, finding: Finding, active: Sequence[silences.Silence], *, dry: bool = False
) -> Context:
    history = store if isinstance(store, FindingStore) else None
    return Context(Routing(config, configured=dry), active, _held(history, finding, job_config(config, finding)))


def record(
    store: StateStore, config: Config, findings: Sequence[Finding], *, now: datetime | None = None
) -> DeliveryReport:
    """Turn findings into alert state and queued notifications (deduplicated, cooled down, silenced, routed)."""
    now = now or utcnow()
    silences.expire(store, now)
    active = silences.active(store, now)
    report = DeliveryReport()
    for finding in sorted(findings, key=lambda f: f.window.end):
        context = _context(store, config, finding, active)
        _write(store, changes_for(store, finding, job_config(config, finding), now, context), now, report)
    return report


def _write(store: StateStore, changes: Sequence[Change], now: datetime, report: DeliveryReport) -> None:
    """Queue each change's notifications, then write its state; a change lost to another process keeps
    only what the winner's change implies too."""
    for change in changes:
        queued = [n for n in change.notifications if outbox.enqueue(store, n, now)]  # before the state: never lost
        if apply(store, change):
            report.created += len(change.notifications)
            report.silenced += 1 if change.doc.get("silenced_by") and change.doc.get("status") == "firing" else 0
            continue
        for note in queued:
            if not implied_by_current(store, change, note):
                outbox.discard(store, note)


def release(store: StateStore, config: Config, *, now: datetime | None = None) -> DeliveryReport:
    """Announce the firing alerts whose silence ended (expired or removed) since their job last ran."""
    now = now or utcnow()
    report = DeliveryReport()
    if not isinstance(store, FindingStore):
        return report
    silences.expire(store, now)
    active = silences.active(store, now)
    for model, job, end in sorted({(d["model"], d["job"], d["last_window_end"]) for d in unsilenced(store, active)}):
        for finding in store.read_findings(model, job, since=end, until=end):
            context = _context(store, config, finding, active)
            _write(store, released(store, finding, job_config(config, finding), now, context), now, report)
    return report


def _by_model(entries: list[outbox.Entry]) -> list[list[outbox.Entry]]:
    groups: dict[str, list[outbox.Entry]] = defaultdict(list)
    for entry in entries:
        groups[entry.notification.model].append(entry)
    return list(groups.values())


def _others(store: StateStore, model: str, channel: str, now: datetime) -> tuple[list[StillFiring], int]:
    """The model's alerts still firing that this channel heard of, and how many of its alerts are silenced."""
    active = silences.active(store, now)
    still, silenced = [], 0
    for doc, _v in store.list_state(f"{STATE_PREFIX}{model}:").values():
        if doc.get("status") != "firing":
            continue
        if silences.covering(active, str(doc.get("key"))) is not None:
            silenced += 1
        elif channel in (doc.get("notified") or []):
            alert = doc.get("alert") or {}
            still.append(
                StillFiring(
                    str(doc.get("key")),
                    str(doc.get("job")),
                    str(doc.get("subject")),
                    str(alert.get("severity")),
                    doc.get("first_window_end"),
                )
            )
    return still, silenced


def _message(
    store: StateStore, config: Config, channel: str, sender: Sender, notes: list[Notification], now: datetime
) -> Message:
    if sender.per_alert:
        return build_message(notes, config, max_items=len(notes))
    still, silenced = _others(store, notes[0].model, channel, now)
    return build_message(notes, config, still_firing=still, silenced=silenced)


def _deliver(
    store: StateStore,
    config: Config,
    channel: str,
    sender: Sender,
    now: datetime,
    wanted: Callable[[Notification], bool] | None,
) -> ChannelReport:
    report = ChannelReport(channel, sender.target)
    entries = outbox.claim(store, channel, now, wanted=wanted)
    doubtful = [e for e in entries if e.in_doubt]
    if doubtful and isinstance(sender, LooksBack):
        try:
            since = min(e.created_at for e in doubtful) - LOOK_BACK_MARGIN
            found = sender.already_delivered({e.notification.id for e in doubtful}, since)
        except DeliveryError as exc:
            found = None
            for entry in doubtful:
                outbox.mark_failed(store, entry, now, str(exc), retry_at=None, in_doubt=True)
            report.failed += len(doubtful)
            report.refused += len(doubtful)
            report.errors.append(str(exc))
        if found is None:
            entries = [e for e in entries if not e.in_doubt]
        else:
            for entry in doubtful:
                if entry.notification.id in found:
                    outbox.mark_sent(store, entry, now)
                    report.recovered += 1
            entries = [e for e in entries if e.notification.id not in found]
    batches = [[e] for e in entries] if sender.per_alert else _by_model(entries)
    for i, batch in enumerate(batches):
        try:
            sender.send(_message(store, config, channel, sender, [e.notification for e in batch], now))
        except DeliveryInterrupted:
            report.interrupted = True
            for rest in batches[i:]:
                outbox.release(store, rest)
            report.failed += sum(len(b) for b in batches[i:])
            report.errors.append(f"{sender.target}: stopped before delivering")
            break
        except RetryLater as exc:
            retry_at = now + timedelta(seconds=exc.after_s)
            for rest in batches[i:]:
                for entry in rest:
                    outbox.mark_failed(store, entry, now, str(exc), retry_at=retry_at, in_doubt=False)
            report.failed += sum(len(b) for b in batches[i:])
            report.refused += sum(len(b) for b in batches[i:])
            report.errors.append(str(exc))
            report.retry_after_s = exc.after_s
            break
        except DeliveryError as exc:
            unreachable = isinstance(exc, ChannelUnreachable)
            failed: list[list[outbox.Entry]] = batches[i:] if unreachable else [batch]  # no answer: not asked again
            for later in failed:
                doubt = unreachable and later is batch  # it may have arrived before the connection broke
                for entry in later:
                    outbox.mark_failed(store, entry, now, str(exc), retry_at=None, in_doubt=doubt)
            report.failed += sum(len(b) for b in failed)
            report.refused += sum(len(b) for b in failed)
            report.errors.append(str(exc))
            if unreachable:
                break
            continue
        report.messages += 1
        report.sent += len(batch)
        for entry in batch:
            outbox.mark_sent(store, entry, now)
    return report


def flush(
    store: StateStore,
    config: Config,
    *,
    sender: Sender | None = None,
    senders: Mapping[str, Sender] | None = None,
    quiet: bool = False,
    now: datetime | None = None,
    pacing: Pacing | None = None,
    wanted: Callable[[Notification], bool] | None = None,
) -> DeliveryReport:
    """Deliver whatever waits in the outbox, channel by channel (one message per model, or per alert for
    channels that take one at a time), and add what each channel delivered and failed to its stored counts;
    ``sender`` stands in for every configured channel (tests, the demo)."""
    now = now or utcnow()
    if senders is None:
        if sender is not None:
            senders = {name: sender for name in channel_names(config)}
        else:
            senders = open_channels(config, quiet=quiet, pacing=pacing)
    report = DeliveryReport(retry_every=config.scheduler.outbox_every)
    report.created = release(store, config, now=now).created
    outbox.prune(store, now)
    for name, chosen in senders.items():
        done = report.channels[name] = _deliver(store, config, name, chosen, now, wanted)
        tally.add(store, name, delivered=done.sent + done.recovered, failed=done.refused, now=now)
    report.pending = len(outbox.pending(store))
    return report


def process(
    store: StateStore,
    config: Config,
    findings: Sequence[Finding],
    *,
    quiet: bool = False,
    now: datetime | None = None,
    sender: Sender | None = None,
    senders: Mapping[str, Sender] | None = None,
    pacing: Pacing | None = None,
) -> DeliveryReport:
    """Record findings as alert state and notifications, then deliver them."""
    now = now or utcnow()
    recorded = record(store, config, findings, now=now)
    report = flush(store, config, sender=sender, senders=senders, quiet=quiet, now=now, pacing=pacing)
    report.created += recorded.created
    report.silenced = recorded.silenced
    return report


def preview(
    store: StateStore,
    config: Config,
    findings: Sequence[Finding],
    *,
    quiet: bool = False,
    now: datetime | None = None,
    console: Console | None = None,
) -> int:
    """A dry run: print what ``process`` would send now and to which channels, writing nothing; returns
    how many notifications."""
    now = now or utcnow()
    active = silences.active(store, now)
    by_model: dict[str, list[Notification]] = defaultdict(list)
    silenced: dict[str, int] = defaultdict(int)
    for finding in sorted(findings, key=lambda f: f.window.end):
        context = _context(store, config, finding, active, dry=True)
        for change in changes_for(store, finding, job_config(config, finding), now, context):
            by_model[finding.model].extend(change.notifications)
            if change.doc.get("silenced_by") and change.doc.get("status") == "firing":
                silenced[finding.model] += 1
    terminal = TerminalSender(console, quiet=quiet)
    for notes in by_model.values():
        if not notes:
            continue
        terminal.send(build_message(notes, config, silenced=silenced[notes[0].model]))
        channels = sorted({c for n in notes for c in n.channels})
        terminal.console.print(f"(dry run: would go to {', '.join(channels)}; nothing was sent or recorded)")
    return sum(len(notes) for notes in by_model.values())
