"""Findings: what a job measured over a window, and the signals that may become alerts."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from analyzers.timeutil import Window, format_time, parse_time, utcnow

Status = Literal["ok", "alert", "insufficient_data", "error"]
Severity = Literal["info", "warning", "critical"]
STATUSES: tuple[str, ...] = ("ok", "alert", "insufficient_data", "error")


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
            "value": _clean(self.value),
            "threshold": _clean(self.threshold),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signal:
        return cls(**{k: data.get(k) for k in ("subject", "message", "severity", "value", "threshold")})


@dataclass
class Finding:
    """The result of one job over one window.

    ``metrics`` holds the job's numbers by name (the JSON shape DESIGN.md gives per job, e.g.
    ``features``/``share_drifted``/``dataset_drift`` for drift) and is merged into the top level
    of :meth:`to_dict`. ``reference`` says what the numbers were compared with.
    """

    model: str
    job: str
    window: Window
    status: Status
    metrics: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] | None = None
    signals: list[Signal] = field(default_factory=list)
    error: str | None = None
    created_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"finding status {self.status!r} is not one of {', '.join(STATUSES)}")

    @property
    def id(self) -> str:
        """Stable id: the same model, job and window always give the same id (idempotent writes)."""
        key = f"{self.model}|{self.job}|{format_time(self.window.start)}|{format_time(self.window.end)}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]

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
        out.update(_clean(self.metrics))
        out["reference"] = _clean(self.reference)
        out["signals"] = [s.to_dict() for s in self.signals]
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        reserved = {"id", "model", "job", "status", "window", "created_at", "reference", "signals", "error"}
        return cls(
            model=data["model"],
            job=data["job"],
            window=Window.from_dict(data["window"]),
            status=data["status"],
            metrics={k: v for k, v in data.items() if k not in reserved},
            reference=data.get("reference"),
            signals=[Signal.from_dict(s) for s in data.get("signals") or []],
            error=data.get("error"),
            created_at=parse_time(data["created_at"]) if data.get("created_at") else utcnow(),
        )


def _clean(value: Any) -> Any:
    """Recursively replace NaN/inf by None and numpy scalars by Python ones."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Window):
        return value.to_dict()
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
