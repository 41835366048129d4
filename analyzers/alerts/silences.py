"""Silences: alerts that people decided not to hear about for a while, with who, why and until when.

A silence is a glob pattern over alert keys (``fraud:fairness:*``, or one key exactly) kept as a state
document ``silence:<id>`` through the store's ``StateStore``, so both stores and every process see it.  A
silenced alert still has its state (it fires, it resolves) but no message says so; when the silence ends
and the alert still fires, it is announced then.  A silence past its ``until`` no longer applies and is
deleted by the next ``analyze``, ``run`` or ``predwatch silence``.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from analyzers.store.base import ConflictError, StateStore
from analyzers.timeutil import format_time, parse_time

SILENCE_PREFIX = "silence:"


@dataclass(frozen=True)
class Silence:
    """One silence: the alert keys it covers (a glob), why, who set it, and from when until when."""

    id: str
    pattern: str
    reason: str
    created_by: str
    created_at: datetime
    until: datetime

    def matches(self, key: str) -> bool:
        return fnmatchcase(key, self.pattern)

    def active(self, now: datetime) -> bool:
        return now < self.until

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pattern": self.pattern,
            "reason": self.reason,
            "created_by": self.created_by,
            "created_at": format_time(self.created_at),
            "until": format_time(self.until),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Silence:
        return cls(
            id=str(data["id"]),
            pattern=str(data["pattern"]),
            reason=str(data.get("reason") or ""),
            created_by=str(data.get("created_by") or ""),
            created_at=parse_time(data["created_at"]),
            until=parse_time(data["until"]),
        )


def add(store: StateStore, pattern: str, *, until: datetime, reason: str, created_by: str, now: datetime) -> Silence:
    """Store a new silence and return it."""
    if until <= now:
        raise ValueError("a silence must end in the future")
    if not reason.strip():
        raise ValueError("give a --reason: the next person on call needs to know why this is silent")
    silence = Silence(secrets.token_hex(4), pattern, reason.strip(), created_by, now, until)
    store.put_state(SILENCE_PREFIX + silence.id, silence.to_dict(), None)
    return silence


def every(store: StateStore) -> list[Silence]:
    """Every stored silence, expired ones included, the one ending first first."""
    docs = store.list_state(SILENCE_PREFIX)
    return sorted((Silence.from_dict(doc) for doc, _v in docs.values()), key=lambda s: (s.until, s.id))


def active(store: StateStore, now: datetime) -> list[Silence]:
    """The silences that apply at ``now``."""
    return [s for s in every(store) if s.active(now)]


def covering(silences: Iterable[Silence], key: str) -> Silence | None:
    """The silence that covers an alert key for longest, if any."""
    matching = [s for s in silences if s.matches(key)]
    return max(matching, key=lambda s: s.until) if matching else None


def expire(store: StateStore, now: datetime) -> list[Silence]:
    """Delete the silences that have ended; returns them."""
    ended = [s for s in every(store) if s.until <= now]
    for silence in ended:
        with contextlib.suppress(ConflictError):
            store.delete_state(SILENCE_PREFIX + silence.id)
    return ended


def remove(store: StateStore, which: str) -> list[Silence]:
    """Delete the silences with this id, or with exactly this pattern; returns what was removed."""
    gone = [s for s in every(store) if which in (s.id, s.pattern)]
    for silence in gone:
        store.delete_state(SILENCE_PREFIX + silence.id)
    return gone


def describe(silence: Silence) -> str:
    """``a1b2c3d4 fraud:fairness:* until 2026-11-27T10:00:00Z by alice: base rates differ``."""
    return (
        f"{silence.id} {silence.pattern} until {format_time(silence.until)} by {silence.created_by}: {silence.reason}"
    )


def names_models(pattern: str, models: Sequence[str]) -> bool:
    """Whether the model part of a pattern (before the first ``:``) matches a configured model."""
    model_part = pattern.split(":", 1)[0]
    return any(fnmatchcase(model, model_part) for model in models)
