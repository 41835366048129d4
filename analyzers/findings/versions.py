"""A finding split per model version (a job's ``by_version: true``): each version's own status, numbers and signals.

The finding itself keeps the whole window's numbers (every version together) at its top level, so reports and
metrics read it as usual; ``by_version`` lists each version's own result, written as its job's JSON shape beside
``version``, ``events`` (its predictions in the window), ``share`` (of the window's events) and ``status``.
A version's signals reach the alerts with their subject prefixed ``version=<version>:`` (see
:func:`version_subject`), so two versions' alerts never share a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analyzers.findings.base import STATUSES, Metrics, Signal, Status, StoredMetrics, clean, describe_signals

_ENTRY_KEYS = frozenset(("version", "events", "share", "status", "signals", "error"))


def version_subject(version: str, subject: str) -> str:
    """The alert subject of one version's signal: ``version=v2:feature:amount``."""
    return f"version={version}:{subject}"


@dataclass(kw_only=True)
class VersionFinding:
    """One version's result over the finding's window (``metrics`` is ``None`` when its run failed)."""

    version: str
    events: float
    share: float | None
    status: Status
    metrics: Metrics | None = None
    signals: list[Signal] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> str:
        """One line, as :meth:`Finding.summary` gives for a whole finding."""
        if self.status == "error":
            return self.error or "failed"
        reason = self.metrics.no_verdict_reason() if self.metrics is not None else None
        if self.status == "insufficient_data" and reason:
            return reason
        return self.metrics.summary(self.signals) if self.metrics is not None else describe_signals(self.signals)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version, "events": self.events, "share": self.share}
        out["status"] = self.status
        if self.metrics is not None:
            out.update(self.metrics.to_dict())
        out["signals"] = [s.to_dict() for s in self.signals]
        if self.error is not None:
            out["error"] = self.error
        return clean(out)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], job: str) -> VersionFinding:
        status = data.get("status")
        if status not in STATUSES:
            raise ValueError(f"version finding status {status!r} is not one of {', '.join(STATUSES)}")
        numbers = {k: v for k, v in data.items() if k not in _ENTRY_KEYS}
        payload = Metrics.for_job(job) or StoredMetrics
        return cls(
            version=str(data.get("version")),
            events=float(data.get("events") or 0.0),
            share=data.get("share"),
            status=status,
            metrics=payload.from_dict(numbers) if numbers else None,
            signals=[Signal.from_dict(s) for s in data.get("signals") or []],
            error=data.get("error"),
        )


@dataclass
class VersionSplit:
    """Each version's result, most traffic first; ``left_out`` counts versions beyond the limit, not analysed."""

    versions: list[VersionFinding]
    left_out: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"versions": [v.to_dict() for v in self.versions], "left_out": self.left_out}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], job: str) -> VersionSplit:
        return cls(
            [VersionFinding.from_dict(v, job) for v in data.get("versions") or []],
            int(data.get("left_out") or 0),
        )

    def version(self, name: str) -> VersionFinding | None:
        """The result of one version, ``None`` when it was not analysed alone."""
        return next((v for v in self.versions if v.version == name), None)
