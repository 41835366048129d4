"""Alert state: what is firing, who was told, and what each new finding changes.

One state document per alert key (``alert:<model>:<job>:<subject>``) in the store, written with
optimistic concurrency so that a scheduler and a CLI run never both claim the same change.  A new
alert is announced to the channels its routes name; while it keeps firing it is re-sent only after its
cooldown (growing by ``cooldown_backoff`` each time, capped at ``max_cooldown``); when a later finding
no longer has it, the channels that heard of it hear once that it resolved.  A silenced alert keeps
its state but nobody is told; when the silence ends and it still fires, it is announced then.  A route
with ``confirm`` hears of an alert once it held in enough recent windows.  A finding whose window was
already processed changes nothing, so running the same window twice sends nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from analyzers.alerts.routing import HeldCount, Routing
from analyzers.alerts.rules import (
    MONITORING,
    QUALITY,
    Alert,
    alerts_of,
    as_dict,
    is_monitoring_problem,
    judges_subjects,
    quality_within_limit,
)
from analyzers.alerts.silences import Silence, covering
from analyzers.config.models import JobConfig
from analyzers.findings import Finding
from analyzers.store.base import ConflictError, StateStore
from analyzers.timeutil import format_time, parse_time

STATE_PREFIX = "alert:"
Kind = Literal["firing", "reminder", "resolved"]


@dataclass
class Notification:
    """Something to tell people: an alert that started, still fires (after its cooldown), or resolved.

    ``id`` identifies the transition (the same change of the same alert in the same window always has
    the same id): it is the outbox key, the tag in a Slack message's metadata and a webhook's
    ``X-Predwatch-Delivery``, so nothing is delivered twice.  ``channels`` are the channels that hear of it.
    """

    kind: Kind
    alert: dict[str, Any]
    window: dict[str, str]
    finding_id: str
    since: str | None = None
    sent_count: int = 1
    channels: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def id(self) -> str:
        text = f"{self.alert['key']}|{self.kind}|{self.window['end']}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def model(self) -> str:
        return str(self.alert["model"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "alert": self.alert,
            "window": self.window,
            "finding_id": self.finding_id,
            "since": self.since,
            "sent_count": self.sent_count,
            "channels": self.channels,
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notification:
        return cls(
            kind=data["kind"],
            alert=data["alert"],
            window=data["window"],
            finding_id=data["finding_id"],
            since=data.get("since"),
            sent_count=int(data.get("sent_count", 1)),
            channels=list(data.get("channels") or []),
            summary=str(data.get("summary") or ""),
        )


def cooldown_for(job: JobConfig, sent_count: int) -> timedelta:
    """How long a still-firing alert waits before it is sent again, after ``sent_count`` sends."""
    factor = job.cooldown_backoff ** max(sent_count - 1, 0)
    return min(job.cooldown * factor, max(job.max_cooldown, job.cooldown))


@dataclass
class Change:
    """A state document to write and the notifications it implies (none, one, or a new channel's too)."""

    key: str
    doc: dict[str, Any]
    version: Any
    notifications: list[Notification] = field(default_factory=list)


@dataclass
class Context:
    """What besides the finding decides who hears of it: routes, active silences, the job's recent past."""

    routing: Routing
    silences: Sequence[Silence] = ()
    held: HeldCount | None = None  # how many recent windows had an alert key (``confirm`` rules)


def changes_for(store: StateStore, finding: Finding, job: JobConfig, now: datetime, context: Context) -> list[Change]:
    """What a finding changes in the alert state of its model and job (nothing for a window already seen)."""
    prefix = f"{STATE_PREFIX}{finding.model}:{finding.job}:"
    existing = store.list_state(prefix)
    end = finding.window.end
    changes: list[Change] = []
    current = {f"{STATE_PREFIX}{a.key}": a for a in alerts_of(finding, job.severity)}
    for state_key, alert in current.items():
        doc, version = existing.get(state_key, (None, None))
        if doc is not None and _seen(doc, finding, end):
            continue
        changes.append(
            _firing(state_key, alert, doc=doc, version=version, finding=finding, job=job, now=now, ctx=context)
        )
    for state_key, (doc, version) in existing.items():
        if state_key in current or doc.get("status") != "firing" or _seen(doc, finding, end):
            continue
        if not _judged(doc, finding):
            continue
        changes.append(_resolved(state_key, doc, version, finding, context))
    return changes


def _judged(doc: dict[str, Any], finding: Finding) -> bool:
    """Whether the finding says the alert of this document is over."""
    subject = str(doc.get("subject"))
    if subject == MONITORING:
        return not is_monitoring_problem(finding)
    if subject == QUALITY:
        return quality_within_limit(finding)
    if judges_subjects(finding):
        return True
    return finding.metrics is not None and finding.metrics.judged(subject)


def _seen(doc: dict[str, Any], finding: Finding, end: datetime) -> bool:
    """This finding, or a later window of the same job, was already processed."""
    if doc.get("last_finding_id") == finding.id:
        return True
    last = doc.get("last_window_end")
    return last is not None and parse_time(last) > end


def _resolved(state_key: str, doc: dict[str, Any], version: Any, finding: Finding, ctx: Context) -> Change:
    end = format_time(finding.window.end)
    told = _told(doc, ctx.routing)
    silence = covering(ctx.silences, str(doc.get("key")))
    resolved = {
        **doc,
        "status": "resolved",
        "resolved_at": end,
        "last_finding_id": finding.id,
        "last_window_end": end,
        "silenced_by": silence.id if silence else None,
    }
    notes: list[Notification] = []
    channels = [c for c in ctx.routing.channels(doc["alert"], "resolved", doc.get("confirmed") or {}) if c in told]
    if channels and silence is None:
        since = doc.get("first_window_end")
        note = Notification(
            "resolved", doc["alert"], finding.window.to_dict(), finding.id, since=since, summary=finding.summary()
        )
        note.channels = channels
        notes.append(note)
    resolved["notification_ids"] = [n.id for n in notes]
    return Change(state_key, resolved, version, notes)


def _firing(
    state_key: str,
    alert: Alert,
    *,
    doc: dict[str, Any] | None,
    version: Any,
    finding: Finding,
    job: JobConfig,
    now: datetime,
    ctx: Context,
) -> Change:
    window = finding.window.to_dict()
    data = as_dict(alert)
    fresh = doc is None or doc.get("status") != "firing"
    base: dict[str, Any] = {} if fresh or doc is None else dict(doc)
    base.update(
        key=alert.key,
        model=alert.model,
        job=alert.job,
        subject=alert.subject,
        alert=data,
        status="firing",
        last_finding_id=finding.id,
        last_window_end=window["end"],
    )
    if fresh:
        base.update(first_window_end=window["end"], last_sent_at=None, sent_count=0, notified=[], confirmed={})
        base.pop("resolved_at", None)
    silence = covering(ctx.silences, alert.key)
    base["silenced_by"] = silence.id if silence else None
    notes: list[Notification] = []
    if silence is None:
        notes = _announcements(base, data, finding=finding, job=job, now=now, ctx=ctx)
    base["notification_ids"] = [n.id for n in notes]
    return Change(state_key, base, version, notes)


def _announcements(
    doc: dict[str, Any], alert: dict[str, Any], *, finding: Finding, job: JobConfig, now: datetime, ctx: Context
) -> list[Notification]:
    """The notifications of a firing alert (updating ``doc``): news to the channels not yet told, and a
    reminder to those told once the cooldown has passed."""
    window = finding.window.to_dict()
    confirmed: dict[str, str] = dict(doc.get("confirmed") or {})
    for route_id, rule in ctx.routing.to_confirm(alert, confirmed):
        held = ctx.held(alert["key"], rule.of) if ctx.held is not None else 1
        if held >= rule.held:
            confirmed[route_id] = window["end"]
    doc["confirmed"] = confirmed
    told = _told(doc, ctx.routing)
    sent_count = int(doc.get("sent_count") or 0)
    since = str(doc.get("first_window_end") or window["end"])
    summary = finding.summary()
    notes: list[Notification] = []
    news = [c for c in ctx.routing.channels(alert, "firing", confirmed) if c not in told]
    if news:
        notes.append(
            Notification("firing", alert, window, finding.id, since, sent_count + 1, channels=news, summary=summary)
        )
    last_sent = parse_time(doc["last_sent_at"]) if doc.get("last_sent_at") else None
    if told and (last_sent is None or now - last_sent >= cooldown_for(job, sent_count)):
        again = [c for c in ctx.routing.channels(alert, "reminder", confirmed) if c in told]
        if again:
            notes.append(
                Notification(
                    "reminder", alert, window, finding.id, since, sent_count + 1, channels=again, summary=summary
                )
            )
    if notes:
        doc.update(
            last_sent_at=format_time(now),
            sent_count=sent_count + 1,
            notified=told + [c for c in news if c not in told],
        )
    return notes


def _told(doc: dict[str, Any], routing: Routing) -> list[str]:
    """The channels told of this firing episode (a document written before channels were recorded was
    sent to every channel that hears of it)."""
    if "notified" in doc:
        return list(doc["notified"] or [])
    return routing.channels(doc["alert"], "firing") if int(doc.get("sent_count") or 0) > 0 else []


def released(store: StateStore, finding: Finding, job: JobConfig, now: datetime, context: Context) -> list[Change]:
    """The alerts whose last finding is this one, silenced then and no longer: announced now, without
    waiting for the job's next run."""
    changes = []
    for state_key, (doc, version) in store.list_state(f"{STATE_PREFIX}{finding.model}:{finding.job}:").items():
        if doc.get("status") != "firing" or not doc.get("silenced_by") or doc.get("last_finding_id") != finding.id:
            continue
        if covering(context.silences, str(doc.get("key"))) is not None:
            continue
        base = {**doc, "silenced_by": None}
        notes = _announcements(base, doc["alert"], finding=finding, job=job, now=now, ctx=context)
        base["notification_ids"] = [n.id for n in notes]
        changes.append(Change(state_key, base, version, notes))
    return changes


def unsilenced(store: StateStore, silences: Sequence[Silence]) -> list[dict[str, Any]]:
    """The firing alerts last seen under a silence that no longer covers them."""
    return [
        doc
        for doc, _v in store.list_state(STATE_PREFIX).values()
        if doc.get("status") == "firing" and doc.get("silenced_by") and covering(silences, str(doc.get("key"))) is None
    ]


def apply(store: StateStore, change: Change) -> bool:
    """Write a change; ``False`` when another process changed the same alert first (then it owns it)."""
    try:
        store.put_state(change.key, change.doc, change.version)
    except ConflictError:
        return False
    return True


def implied_by_current(store: StateStore, change: Change, notification: Notification) -> bool:
    """Whether the alert's state as it is now (written by whoever won) implies this notification too."""
    current = store.get_state(change.key)
    return current is not None and notification.id in (current[0].get("notification_ids") or [])
