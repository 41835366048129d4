"""The operations job's payload: volume per bucket, the longest silence, the error rate and latency."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from analyzers.findings.base import Metrics, number
from analyzers.formatting import format_number, format_percent
from analyzers.timeutil import parse_time


def _time(value: Any) -> datetime | None:
    return None if value is None else parse_time(value)


@dataclass(frozen=True)
class VolumePoint:
    """Events and failures in the bucket that starts at ``start``."""

    start: datetime
    count: float
    failures: float


@dataclass(kw_only=True)
class Volume:
    """Events over the window: totals, bucket size and count, empty buckets, and the series."""

    total: float
    failures: float = 0.0
    bucket_s: float = 0.0
    buckets: int = 0
    empty_buckets: int = 0
    series: list[VolumePoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "failures": self.failures,
            "bucket_s": self.bucket_s,
            "buckets": self.buckets,
            "empty_buckets": self.empty_buckets,
            "series": [{"start": p.start, "count": p.count, "failures": p.failures} for p in self.series],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Volume:
        return cls(
            total=number(data.get("total")),
            failures=number(data.get("failures")),
            bucket_s=number(data.get("bucket_s")),
            buckets=int(data.get("buckets") or 0),
            empty_buckets=int(data.get("empty_buckets") or 0),
            series=[VolumePoint(parse_time(p["start"]), p["count"], p["failures"]) for p in data.get("series") or []],
        )


@dataclass(frozen=True)
class Silence:
    """The longest time without predictions around the longest run of empty buckets: its length and limit
    (seconds), the last prediction before it (``start``; ``None`` when none was found in the look-back),
    whether it lasts to the window's end, and the first prediction after it (``end``)."""

    value_s: float
    threshold_s: float
    start: datetime | None = None
    ongoing: bool = False
    end: datetime | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Silence:
        return cls(
            number(data.get("value_s")),
            number(data.get("threshold_s")),
            _time(data.get("start")),
            bool(data.get("ongoing")),
            _time(data.get("end")),
        )


@dataclass(frozen=True, kw_only=True)
class ErrorRate:
    """Failures over events with a Wilson interval, the limit, and whether there were enough events to judge."""

    value: float | None
    ci: list[float | None] | None
    failures: float
    total: float
    threshold: float
    judged: bool

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ErrorRate:
        return cls(
            value=data.get("value"),
            ci=data.get("ci"),
            failures=number(data.get("failures")),
            total=number(data.get("total")),
            threshold=number(data.get("threshold")),
            judged=bool(data.get("judged")),
        )


@dataclass(frozen=True)
class Latency:
    """A latency percentile (ms) and its configured limit, if any."""

    value: float | None
    threshold: float | None = None


@dataclass(frozen=True)
class DeadLetterPile:
    """What a store keeps apart of the lines it could not index (Elasticsearch's dead-letter alias), every
    model's together: documents and bytes, so that a growing pile is seen."""

    documents: int
    bytes: int


@dataclass(kw_only=True)
class OpsMetrics(Metrics):
    """``volume``, ``silence``, ``error_rate``, ``latency_ms`` (by percentile name: ``p50``, ``p95``, ...) and,
    where the store keeps rejected lines apart, the size of that ``dead_letters`` pile."""

    job = "ops"

    volume: Volume
    silence: Silence
    error_rate: ErrorRate
    latency_ms: dict[str, Latency] = field(default_factory=dict)
    dead_letters: DeadLetterPile | None = None

    def to_dict(self) -> dict[str, Any]:
        e, s = self.error_rate, self.silence
        pile = self.dead_letters
        return {
            "volume": self.volume.to_dict(),
            "silence": {
                "value_s": s.value_s,
                "threshold_s": s.threshold_s,
                "start": s.start,
                "ongoing": s.ongoing,
                "end": s.end,
            },
            "error_rate": {
                "value": e.value,
                "ci": e.ci,
                "failures": e.failures,
                "total": e.total,
                "threshold": e.threshold,
                "judged": e.judged,
            },
            "latency_ms": {name: {"value": p.value, "threshold": p.threshold} for name, p in self.latency_ms.items()},
            "dead_letters": None if pile is None else {"documents": pile.documents, "bytes": pile.bytes},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OpsMetrics:
        latency = data.get("latency_ms") or {}
        pile = data.get("dead_letters")
        return cls(
            volume=Volume.from_dict(data.get("volume") or {}),
            silence=Silence.from_dict(data.get("silence") or {}),
            error_rate=ErrorRate.from_dict(data.get("error_rate") or {}),
            latency_ms={name: Latency(p.get("value"), p.get("threshold")) for name, p in latency.items()},
            dead_letters=None if pile is None else DeadLetterPile(int(pile["documents"]), int(pile["bytes"])),
        )

    def row_counts(self) -> list[float]:
        return [self.volume.total]

    def unjudged_needs_attention(self) -> bool:
        """A window with too few events to judge errors and latency is low traffic, not a monitoring
        problem: silence is judged whatever the count, and alerts when it lasts."""
        return False

    def judged(self, subject: str) -> bool:
        """Silence is always judged; error rate and latency when the window had ``min_rows`` events."""
        return subject == "metric:silence" or (subject.startswith("metric:") and self.error_rate.judged)

    def headline(self) -> str:
        p95 = self.latency_ms.get("p95")
        return (
            f"{format_number(self.volume.total)} events, error rate {format_percent(self.error_rate.value)}, "
            f"latency p95 {format_number(p95.value if p95 is not None else None)} ms"
        )
