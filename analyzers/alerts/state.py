"""Alert state: what is firing, when it was last sent, and what each new finding changes.

One state document per alert key (``alert:<model>:<job>:<subject>``) in the store, written with
optimistic concurrency so that a scheduler and a CLI run never both claim the same change.  A new
alert is sent; while it keeps firing it is re-sent only after its cooldown (growing by
``cooldown_backoff`` each time, capped at ``max_cooldown``); when a later finding no longer has it,
one "resolved" follows.  A finding whose window was already processed changes nothing, so running
the same window twice sends nothing twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from analyzers.alerts.rules import MONITORING, Alert, alerts_of, as_dict, is_monitoring_problem, judges_subjects
from analyzers.config.models import JobConfig
from analyzers.findings import Finding
from analyzers.store.base import ConflictError, StateStore
from analyzers.timeutil import format_time, parse_time

STATE_PREFIX = "alert:"
Kind = Literal["firing", "reminder", "resolved"]


@dataclass
class Notification:
    """Something to tell people: an alert that started, still fires (after its cooldown), or resolved."""

    kind: Kind
    alert: dict[str, Any]
    window: dict[str, str]
    finding_id: str
    since: str | None = None
    sent_count: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The same change of the same alert in the same window always has the same id (dedup)."""
        text = f"{self.alert['key']}|{self.kind}|{self.window['end']}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def model(self) -> str:
        return str(self.alert["model"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "alert": self.alert,
            "window": self.window,
            "finding_id": self.finding_id,
            "since": self.since,
            "sent_count": self.sent_count,
            "extra": self.extra,
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
            extra=data.get("extra") or {},
        )


def cooldown_for(job: JobConfig, sent_count: int) -> timedelta:
    """How long a still-firing alert waits before it is sent again, after ``sent_count`` sends."""
    factor = job.cooldown_backoff ** max(sent_count - 1, 0)
    return min(job.cooldown * factor, max(job.max_cooldown, job.cooldown))


@dataclass
class Change:
    """A state document to write and, maybe, the notification it implies."""

    key: str
    doc: dict[str, Any]
    version: Any
    notification: Notification | None


def changes_for(store: StateStore, finding: Finding, job: JobConfig, now: datetime) -> list[Change]:
    """What a finding changes in the alert state of its model and job (nothing for a window already seen)."""
    prefix = f"{STATE_PREFIX}{finding.model}:{finding.job}:"
    existing = store.list_state(prefix)
    window = finding.window.to_dict()
    end = finding.window.end
    changes: list[Change] = []
    current = {f"{STATE_PREFIX}{a.key}": a for a in alerts_of(finding, job.severity)}
    for state_key, alert in current.items():
        doc, version = existing.get(state_key, (None, None))
        if doc is not None and _seen(doc, finding, end):
            continue
        changes.append(_firing(state_key, alert, doc=doc, version=version, finding=finding, job=job, now=now))
    for state_key, (doc, version) in existing.items():
        if state_key in current or doc.get("status") != "firing" or _seen(doc, finding, end):
            continue
        monitoring = doc.get("subject") == MONITORING
        if (monitoring and is_monitoring_problem(finding)) or (not monitoring and not judges_subjects(finding)):
            continue
        resolved = {**doc, "status": "resolved", "resolved_at": format_time(end), "last_finding_id": finding.id}
        resolved["last_window_end"] = format_time(end)
        note = Notification("resolved", doc["alert"], window, finding.id, since=doc.get("first_window_end"))
        changes.append(Change(state_key, resolved, version, note))
    return changes


def _seen(doc: dict[str, Any], finding: Finding, end: datetime) -> bool:
    """This finding, or a later window of the same job, was already processed."""
    if doc.get("last_finding_id") == finding.id:
        return True
    last = doc.get("last_window_end")
    return last is not None and parse_time(last) > end


def _firing(
    state_key: str,
    alert: Alert,
    *,
    doc: dict[str, Any] | None,
    version: Any,
    finding: Finding,
    job: JobConfig,
    now: datetime,
) -> Change:
    window = finding.window.to_dict()
    base = {
        "key": alert.key,
        "model": alert.model,
        "job": alert.job,
        "subject": alert.subject,
        "alert": as_dict(alert),
        "last_finding_id": finding.id,
        "last_window_end": window["end"],
    }
    if doc is None or doc.get("status") != "firing":
        new = {
            **base,
            "status": "firing",
            "first_window_end": window["end"],
            "last_sent_at": format_time(now),
            "sent_count": 1,
        }
        return Change(
            state_key, new, version, Notification("firing", as_dict(alert), window, finding.id, window["end"])
        )
    sent_count = int(doc.get("sent_count", 1))
    last_sent = parse_time(doc["last_sent_at"]) if doc.get("last_sent_at") else None
    kept = {**doc, **base}
    if last_sent is None or now - last_sent >= cooldown_for(job, sent_count):
        kept.update(last_sent_at=format_time(now), sent_count=sent_count + 1)
        note = Notification(
            "reminder", as_dict(alert), window, finding.id, doc.get("first_window_end"), sent_count=sent_count + 1
        )
        return Change(state_key, kept, version, note)
    return Change(state_key, kept, version, None)


def apply(store: StateStore, change: Change) -> bool:
    """Write a change; ``False`` when another process changed the same alert first (then it owns it)."""
    try:
        store.put_state(change.key, change.doc, change.version)
    except ConflictError:
        return False
    return True
