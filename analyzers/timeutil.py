"""Durations (``90s``, ``15m``, ``1h``, ``7d``, ``2w``), ISO 8601 times and time windows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse ``90s``, ``15m``, ``1h``, ``7d``, ``2w`` (a bare number is seconds)."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return timedelta(seconds=text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"invalid duration {text!r}: expected a number and a unit (ms, s, m, h, d, w), e.g. 15m")
    value, unit = match.groups()
    return float(value) * _UNITS[unit]


def format_duration(delta: timedelta) -> str:
    """Shortest exact form of a duration (``timedelta(hours=24)`` -> ``1d``)."""
    seconds = delta.total_seconds()
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"


def parse_time(value: str | datetime) -> datetime:
    """Parse an ISO 8601 time; a time without offset is UTC. Returns an aware UTC datetime."""
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"invalid time {value!r}: expected ISO 8601, e.g. 2026-11-22T10:00:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_time(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` and milliseconds dropped when zero."""
    value = value.astimezone(timezone.utc)
    # Whole milliseconds decide, not microseconds: 15.000283 s is written "15Z" and reads back the same.
    text = value.isoformat(timespec="milliseconds" if value.microsecond >= 1000 else "seconds")
    return text.replace("+00:00", "Z")


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True, order=True)
class Window:
    """A half-open time range ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", parse_time(self.start))
        object.__setattr__(self, "end", parse_time(self.end))
        if self.end <= self.start:
            raise ValueError(f"window end {format_time(self.end)} is not after its start {format_time(self.start)}")

    @classmethod
    def ending(cls, end: datetime | str, length: timedelta | str) -> Window:
        """The window of the given length that ends at ``end``."""
        end_time = parse_time(end)
        return cls(end_time - parse_duration(length), end_time)

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def shift(self, delta: timedelta) -> Window:
        """The same window moved by ``delta`` (negative moves it back)."""
        return Window(self.start + delta, self.end + delta)

    def days(self) -> list[datetime]:
        """Midnights (UTC) of every day the window touches."""
        day = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        out = []
        while day < self.end:
            out.append(day)
            day += timedelta(days=1)
        return out

    def to_dict(self) -> dict[str, str]:
        return {"start": format_time(self.start), "end": format_time(self.end)}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Window:
        return cls(parse_time(data["start"]), parse_time(data["end"]))
