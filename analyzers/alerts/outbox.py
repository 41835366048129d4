"""The outbox: notifications wait in the store until a delivery succeeds, so none is lost or sent twice.

An entry is written before its alert state changes, under the notification's deterministic id, so two
processes that see the same change enqueue it once.  A sender claims entries (optimistic concurrency)
before sending and deletes them after, so a restart resends only what was never delivered.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from analyzers.alerts.state import Notification
from analyzers.store.base import ConflictError, StateStore
from analyzers.timeutil import format_time, parse_time

OUTBOX_PREFIX = "outbox:"
CLAIM_TTL = timedelta(minutes=5)  # a claim older than this is from a sender that died mid-send


@dataclass
class Entry:
    """A pending notification with its state-document version."""

    key: str
    notification: Notification
    doc: dict[str, Any]
    version: Any


@dataclass
class Delivery:
    """What one delivery round did."""

    sent: int = 0
    failed: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)


def enqueue(store: StateStore, notification: Notification, now: datetime) -> bool:
    """Add a notification; ``False`` when it is already there (another process enqueued the same change)."""
    doc = {"notification": notification.to_dict(), "created_at": format_time(now), "attempts": 0}
    try:
        store.put_state(OUTBOX_PREFIX + notification.id, doc, None)
    except ConflictError:
        return False
    return True


def discard(store: StateStore, notification: Notification) -> None:
    """Withdraw a notification this process enqueued for a state change it then lost to another process."""
    store.delete_state(OUTBOX_PREFIX + notification.id)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(store: StateStore, now: datetime) -> list[Entry]:
    """Take every pending entry not being sent by someone else right now, oldest first."""
    claimed = []
    for key, (doc, version) in sorted(
        store.list_state(OUTBOX_PREFIX).items(), key=lambda kv: kv[1][0].get("created_at", "")
    ):
        holder = doc.get("claimed_at")
        if holder is not None and now - parse_time(holder) < CLAIM_TTL:
            continue
        mine = {**doc, "claimed_at": format_time(now), "claimed_by": _owner()}
        try:
            new_version = store.put_state(key, mine, version)
        except ConflictError:
            continue
        claimed.append(Entry(key, Notification.from_dict(doc["notification"]), mine, new_version))
    return claimed


def deliver(
    store: StateStore,
    send: Callable[[Sequence[Notification]], None],
    group: Callable[[list[Entry]], list[list[Entry]]],
    now: datetime,
) -> Delivery:
    """Send every pending entry, grouped into messages; delivered entries are removed, failed ones released."""
    result = Delivery()
    for batch in group(claim(store, now)):
        try:
            send([e.notification for e in batch])
        except Exception as exc:  # a channel's DeliveryError text is free of secrets (see alerts.errors)
            result.failed += len(batch)
            result.errors.append(str(exc))
            for entry in batch:
                released = {k: v for k, v in entry.doc.items() if k not in ("claimed_at", "claimed_by")}
                released.update(attempts=int(entry.doc.get("attempts", 0)) + 1, last_error=str(exc)[:500])
                with contextlib.suppress(ConflictError):
                    store.put_state(entry.key, released, entry.version)
            continue
        result.sent += len(batch)
        for entry in batch:
            try:
                store.delete_state(entry.key, entry.version)
            except ConflictError:
                store.delete_state(entry.key)
    result.pending = len(store.list_state(OUTBOX_PREFIX))
    return result
