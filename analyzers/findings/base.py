"""Findings: what a job measured over a window, and the signals that may become alerts.

A finding's numbers are its job's payload, a :class:`Metrics` subclass (``DriftMetrics``,
``FairnessMetrics``, ...) that alert rules, the report and ``predwatch status`` read by attribute and
that serialises to the job's JSON shape (the same as ``predwatch analyze --format json`` prints), merged into
the finding's top level.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from analyzers.timeutil import Window, format_time, parse_time, utcnow

Status = Literal["ok", "alert", "insufficient_data", "error"]
Severity = Literal["info", "warning", "critical"]
STATUSES: tuple[str, ...] = ("ok", "alert", "insufficient_data", "error")
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
_RESERVED = frozenset(
    (
        "id",
        "model",
        "job",
        "status",
        "window",
        "created_at",
        "reference",
        "signals",
        "error",
        "by_version",
        "quality",
    )
)

if TYPE_CHECKING:
    from analyzers.findings.quality import WindowQuality
    from analyzers.findings.versions import VersionSplit

_M = TypeVar("_M", bound="Metrics")


@dataclass
class Signal:
    """One thing that fired inside a finding (a drifted feature, a group served worse, ...).

    ``subject`` names it stably (``feature:amount``, ``group:region=EU``, ``metric:accuracy``):
    with the model and job it makes the alert key, so the same problem is recognised run after run.
    """

    subject: str
    message: str
    severity: Severity = "warning"
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "message": self.message,
            "severity": self.severity,
            "value": clean(self.value),
            "threshold": clean(self.threshold),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signal:
        severity = data.get("severity")
        return cls(
            subject=str(data.get("subject")),
            message=str(data.get("message")),
            severity=severity if severity in SEVERITIES else "warning",
            value=data.get("value"),
            threshold=data.get("threshold"),
        )


def describe_signals(signals: Sequence[Signal]) -> str:
    """Up to three signals' messages, and how many more there are."""
    text = "; ".join(s.message for s in signals[:3])
    return text + (f"; and {len(signals) - 3} more" if len(signals) > 3 else "")


class Metrics(ABC):
    """A job's numbers: typed for the code that reads them, written as the job's JSON shape.

    Each subclass names its ``job``; :meth:`Finding.from_dict` reads a stored finding back into the
    payload class of its job.  A payload may say why its job gave no verdict (:meth:`no_verdict_reason`)
    and which prediction counts it measured (:meth:`row_counts`), which the alert rules read.
    """

    job: ClassVar[str]
    _by_job: ClassVar[dict[str, type[Metrics]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "job" in cls.__dict__:
            Metrics._by_job[cls.job] = cls

    @classmethod
    def for_job(cls, job: str) -> type[Metrics] | None:
        """The payload class of a job, ``None`` for a job without one."""
        return Metrics._by_job.get(job)

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The job's JSON shape (NaN and numpy scalars are cleaned by the finding)."""

    @classmethod
    @abstractmethod
    def from_dict(cls: type[_M], data: Mapping[str, Any]) -> _M:
        """The payload back from :meth:`to_dict`'s output."""

    def row_counts(self) -> list[float]:
        """The prediction counts the payload reports (current window, reference, volume)."""
        return []

    def no_verdict_reason(self) -> str | None:
        """Why the job could not judge its window, when it says so."""
        return None

    def unjudged_needs_attention(self) -> bool:
        """Whether a window this job could not judge is itself a problem: by default when it (or its
        reference) held no predictions at all; silence from a job must never look like good news."""
        return any(n == 0 for n in self.row_counts())

    def judged(self, subject: str) -> bool:
        """Whether the job judged this subject although the finding as a whole gave no verdict (an ops
        window too small to judge latency still says whether predictions stopped); then an alert on the
        subject that is no longer found has resolved."""
        return False

    def headline(self) -> str:
        """The key numbers in one line."""
        return ""

    def summary(self, signals: Sequence[Signal]) -> str:
        """One line for people: what fired (up to three signals), or the key numbers."""
        return describe_signals(signals) if signals else self.headline()


@dataclass
class Finding:
    """The result of one job over one window.

    ``metrics`` is the job's payload (``None`` for a job that failed); it is merged into the top
    level of :meth:`to_dict`. ``reference`` says what the numbers were compared with.  ``by_version``
    holds each model version's own result when the job splits its findings per version
    (:mod:`analyzers.findings.versions`).  ``quality`` is the window's data quality (lines set aside by
    reason, :mod:`analyzers.findings.quality`), added by the runner to every finding.
    """

    model: str
    job: str
    window: Window
    status: Status
    metrics: Metrics | None = None
    reference: dict[str, Any] | None = None
    signals: list[Signal] = field(default_factory=list)
    error: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    by_version: VersionSplit | None = None
    quality: WindowQuality | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"finding status {self.status!r} is not one of {', '.join(STATUSES)}")

    @property
    def id(self) -> str:
        """Stable id: the same model, job and window always give the same id (idempotent writes)."""
        key = f"{self.model}|{self.job}|{format_time(self.window.start)}|{format_time(self.window.end)}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def metrics_as(self, kind: type[_M]) -> _M | None:
        """The payload when it is of the given class (a report section reads its own job's), else ``None``."""
        return self.metrics if isinstance(self.metrics, kind) else None

    def summary(self) -> str:
        """A one-line account: its signals, or its key numbers, or why there was no verdict.

        The terminal table and the HTML report's verdict cards both read findings this way.
        """
        if self.status == "error":
            return self.error or "failed"
        reason = self.metrics.no_verdict_reason() if self.metrics is not None else None
        if self.status == "insufficient_data" and reason:
            return reason
        if self.metrics is not None:
            return self.metrics.summary(self.signals)
        return describe_signals(self.signals)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; NaN and infinities become null."""
        out: dict[str, Any] = {
            "id": self.id,
            "model": self.model,
            "job": self.job,
            "status": self.status,
            "window": self.window.to_dict(),
            "created_at": format_time(self.created_at),
        }
        if self.metrics is not None:
            out.update(clean(self.metrics.to_dict()))
        out["reference"] = clean(self.reference)
        out["signals"] = [s.to_dict() for s in self.signals]
        if self.error is not None:
            out["error"] = self.error
        if self.by_version is not None:
            out["by_version"] = self.by_version.to_dict()
        if self.quality is not None:
            out["quality"] = clean(self.quality.to_dict())
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """A finding back from :meth:`to_dict`'s output; a job without a payload class keeps its numbers as they are."""
        from analyzers.findings.quality import WindowQuality
        from analyzers.findings.versions import VersionSplit

        job = str(data["job"])
        numbers = {k: v for k, v in data.items() if k not in _RESERVED}
        payload = Metrics.for_job(job) or StoredMetrics
        status = data["status"]
        if status not in STATUSES:
            raise ValueError(f"finding status {status!r} is not one of {', '.join(STATUSES)}")
        return cls(
            model=str(data["model"]),
            job=job,
            window=Window.from_dict(data["window"]),
            status=status,
            metrics=payload.from_dict(numbers) if numbers else None,
            reference=data.get("reference"),
            signals=[Signal.from_dict(s) for s in data.get("signals") or []],
            error=data.get("error"),
            created_at=parse_time(data["created_at"]) if data.get("created_at") else utcnow(),
            by_version=VersionSplit.from_dict(data["by_version"], job) if data.get("by_version") else None,
            quality=WindowQuality.from_dict(data["quality"]) if data.get("quality") else None,
        )


@dataclass
class StoredMetrics(Metrics):
    """The numbers of a stored finding whose job has no payload class here, kept exactly as they were."""

    values: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.values)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoredMetrics:
        return cls(dict(data))


def number(value: Any) -> float:
    """A stored number back as a float: null (a NaN or infinity when written) reads as NaN."""
    return math.nan if value is None else float(value)


def clean(value: Any) -> Any:
    """Recursively replace NaN/inf by None, numpy scalars by Python ones, times by ISO 8601 text."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Window):
        return value.to_dict()
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
