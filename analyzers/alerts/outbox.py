"""The outbox: notifications wait in the store until each of their channels has taken them.

An entry (``outbox:<notification id>``) is written before its alert state changes, under the
notification's deterministic id, so two processes that see the same change enqueue it once.  It keeps
one delivery record per channel: a sender claims an entry for its channel (optimistic concurrency),
sends, and marks that channel sent.  Once every channel has it the entry is marked ``done_at`` and
kept for ``KEEP_DONE`` (then pruned): a process that computed the same change from a stale read finds
it there and does not queue it again.  So a Slack outage never
re-sends a webhook that went through, and the other way round.  A claim whose sender died (its process
is gone, or the claim is older than ``CLAIM_TTL``) is taken over, and the delivery is then "in doubt":
the channel may have taken the message before the sender died, so a channel that can look (Slack's
history) does before sending again.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from analyzers.alerts.state import Notification
from analyzers.processes import process_alive
from analyzers.store.base import ConflictError, StateStore
from analyzers.timeutil import format_time, parse_time

OUTBOX_PREFIX = "outbox:"
CLAIM_TTL = timedelta(minutes=5)  # a claim older than this is from a sender that died mid-send
KEEP_DONE = timedelta(days=1)  # how long a delivered entry stays to recognise the same transition
_UPDATE_TRIES = 20
PENDING, SENT = "pending", "sent"


@dataclass
class Entry:
    """A notification claimed for one channel, with its document as claimed and that document's version."""

    key: str
    notification: Notification
    doc: dict[str, Any]
    version: Any
    channel: str
    in_doubt: bool = False

    @property
    def created_at(self) -> datetime:
        return parse_time(self.doc["created_at"])


def _delivery(attempts: int = 0) -> dict[str, Any]:
    return {"status": PENDING, "attempts": attempts, "last_error": None, "not_before": None, "in_doubt": False}


def enqueue(store: StateStore, notification: Notification, now: datetime) -> bool:
    """Add a notification, pending for each of its channels; ``False`` when it is already there."""
    doc = {
        "notification": notification.to_dict(),
        "created_at": format_time(now),
        "deliveries": {channel: _delivery() for channel in notification.channels},
    }
    try:
        store.put_state(OUTBOX_PREFIX + notification.id, doc, None)
    except ConflictError:
        return False
    return True


def discard(store: StateStore, notification: Notification) -> None:
    """Withdraw a notification enqueued for a state change that another process's different change replaced."""
    store.delete_state(OUTBOX_PREFIX + notification.id)


def deliveries(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-channel delivery records of an entry (an entry from before channels were recorded is
    pending for the channels its notification names, or, naming none, for every configured one)."""
    found = doc.get("deliveries")
    if isinstance(found, dict):
        return found
    channels = doc.get("notification", {}).get("channels") or ["*"]
    return {c: _delivery(int(doc.get("attempts") or 0)) for c in channels}


def owner() -> str:
    """Who claims: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(holder: str) -> bool:
    """Whether the process that holds a claim may still be running (it surely is not when it ran on this
    host and its pid is gone)."""
    host, _, pid_text = holder.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    return pid == os.getpid() or process_alive(pid)


def _claim_stale(record: dict[str, Any], now: datetime) -> bool | None:
    """``None`` when unclaimed, ``True`` when the claim is from a sender that is gone, else ``False``."""
    claimed_at = record.get("claimed_at")
    if claimed_at is None:
        return None
    return now - parse_time(claimed_at) >= CLAIM_TTL or not _alive(str(record.get("claimed_by") or ""))


def _record_for(doc: dict[str, Any], channel: str) -> dict[str, Any] | None:
    records = deliveries(doc)
    return records.get(channel, records.get("*"))


def claim(
    store: StateStore, channel: str, now: datetime, *, wanted: Callable[[Notification], bool] | None = None
) -> list[Entry]:
    """Take every entry pending for ``channel`` that is due and not being sent by a live sender, oldest first."""
    claimed = []
    entries = sorted(store.list_state(OUTBOX_PREFIX).items(), key=lambda kv: kv[1][0].get("created_at", ""))
    for key, (doc, version) in entries:
        record = _record_for(doc, channel)
        if record is None or record.get("status") != PENDING:
            continue
        if record.get("not_before") and parse_time(record["not_before"]) > now:
            continue
        stale = _claim_stale(record, now)
        if stale is False:
            continue
        notification = Notification.from_dict(doc["notification"])
        if wanted is not None and not wanted(notification):
            continue
        records = {k: dict(v) for k, v in deliveries(doc).items()}
        records.pop("*", None)
        mine = {**(record or {}), "claimed_at": format_time(now), "claimed_by": owner()}
        records[channel] = mine
        new_doc = {**doc, "deliveries": records}
        try:
            new_version = store.put_state(key, new_doc, version)
        except ConflictError:
            continue
        in_doubt = bool(stale) or bool(record.get("in_doubt"))
        claimed.append(Entry(key, notification, new_doc, new_version, channel, in_doubt))
    return claimed


def _update(store: StateStore, entry: Entry, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the entry's record for its channel, re-reading the document when another
    channel's sender changed it meanwhile; the entry goes when every channel has been served."""
    doc, version = entry.doc, entry.version
    for _ in range(_UPDATE_TRIES):
        records = {k: dict(v) for k, v in deliveries(doc).items()}
        records.pop("*", None)
        record = records.setdefault(entry.channel, _delivery())
        change(record)
        record.pop("claimed_at", None)
        record.pop("claimed_by", None)
        new_doc = {**doc, "deliveries": records}
        if all(r.get("status") == SENT for r in records.values()):
            new_doc["done_at"] = record.get("sent_at") or format_time(parse_time(doc["created_at"]))
        try:
            store.put_state(entry.key, new_doc, version)
            return
        except ConflictError:
            current = store.get_state(entry.key)
            if current is None:
                return
            doc, version = current
            if doc.get("done_at"):
                return
    raise ConflictError(f"outbox entry {entry.key!r} kept changing while recording its delivery to {entry.channel}")


def mark_sent(store: StateStore, entry: Entry, now: datetime) -> None:
    """The channel took the message."""

    def sent(record: dict[str, Any]) -> None:
        record.update(status=SENT, sent_at=format_time(now), last_error=None, in_doubt=False, not_before=None)

    _update(store, entry, sent)


def mark_failed(
    store: StateStore, entry: Entry, now: datetime, error: str, *, retry_at: datetime | None, in_doubt: bool
) -> None:
    """The channel did not take the message: count the attempt, keep the error (free of secrets)."""

    def failed(record: dict[str, Any]) -> None:
        record.update(
            attempts=int(record.get("attempts") or 0) + 1,
            last_error=error[:500],
            last_attempt_at=format_time(now),
            not_before=format_time(retry_at) if retry_at is not None else None,
            in_doubt=in_doubt or bool(record.get("in_doubt")),
        )

    _update(store, entry, failed)


def release(store: StateStore, entries: Iterable[Entry]) -> None:
    """Give entries back untouched (the process is stopping before it could send them)."""
    for entry in entries:
        with contextlib.suppress(ConflictError):
            _update(store, entry, lambda record: None)


def pending(store: StateStore) -> dict[str, dict[str, Any]]:
    """Every entry not yet delivered everywhere, by key."""
    return {key: doc for key, (doc, _v) in store.list_state(OUTBOX_PREFIX).items() if not doc.get("done_at")}


def prune(store: StateStore, now: datetime) -> int:
    """Delete the delivered entries older than ``KEEP_DONE``; returns how many."""
    gone = 0
    for key, (doc, version) in store.list_state(OUTBOX_PREFIX).items():
        done = doc.get("done_at")
        if done and now - parse_time(done) >= KEEP_DONE:
            with contextlib.suppress(ConflictError):
                store.delete_state(key, version)
                gone += 1
    return gone
