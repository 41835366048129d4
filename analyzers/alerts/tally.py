"""Delivery counts that survive restarts: per channel, the notifications delivered and the attempts that failed.

The outbox says what waits now; its entries are pruned once delivered, so counting them cannot give a total
that only goes up.  Each delivery round adds what it did to one state document per channel
(``tally:delivery:<channel>``), written with optimistic concurrency so that two processes delivering at once
both count; Prometheus reads them as counters (``*_total``) that keep going up across restarts, with
``since`` (when the channel's first count was stored) as their creation time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analyzers.store.base import ConflictError, StateStore
from analyzers.timeutil import format_time, parse_time

log = logging.getLogger("predwatch.alerts")
TALLY_PREFIX = "tally:delivery:"
MAX_TRIES = 50  # a write lost to another process is read again and retried: each loss is another's success


@dataclass(frozen=True)
class DeliveryTally:
    """What one channel delivered and failed to deliver since ``since``."""

    channel: str
    delivered: int
    failed: int
    since: datetime


def add(store: StateStore, channel: str, *, delivered: int, failed: int, now: datetime) -> None:
    """Add one round's deliveries and failed attempts to the channel's stored counts."""
    if delivered == 0 and failed == 0:
        return
    key = f"{TALLY_PREFIX}{channel}"
    for _ in range(MAX_TRIES):
        found = store.get_state(key)
        doc, version = found if found is not None else ({"channel": channel, "since": format_time(now)}, None)
        counted = {
            **doc,
            "delivered": _count(doc.get("delivered")) + delivered,
            "failed": _count(doc.get("failed")) + failed,
        }
        try:
            store.put_state(key, counted, version)
        except ConflictError:
            continue
        return
    log.warning(
        "delivery counts not stored: every write lost to another process",
        extra={"predwatch": {"channel": channel, "delivered": delivered, "failed": failed, "tries": MAX_TRIES}},
    )


def tallies(docs: Iterable[Mapping[str, Any]]) -> list[DeliveryTally]:
    """The stored counts, read field by field (a document without a readable channel or time is skipped)."""
    out = []
    for doc in docs:
        channel, since = doc.get("channel"), doc.get("since")
        if not isinstance(channel, str) or not isinstance(since, str):
            continue
        try:
            started = parse_time(since)
        except ValueError:
            continue
        out.append(DeliveryTally(channel, _count(doc.get("delivered")), _count(doc.get("failed")), started))
    return out


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
