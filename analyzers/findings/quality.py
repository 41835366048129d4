"""Data quality of a window: how many log lines were considered and, per reason, how many were set aside.

The store measures it (:meth:`analyzers.store.base.PredictionReader.quality`); every finding carries its
window's (:class:`WindowQuality`, the ``quality`` object of ``analyze --format json``), which ``status``, the
report and the ``quality`` alert read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analyzers.timeutil import Window

if TYPE_CHECKING:
    from analyzers.findings.base import Finding


@dataclass
class ReasonCount:
    """How many lines (or values) of a window were set aside for one reason, and where the first one was."""

    count: int
    first: str | None  # "path:line" (or index/document for Elasticsearch)


@dataclass
class QualityReport:
    """What a window's lines cost: how many were considered and, per reason, how many were set aside.

    ``lines`` counts the lines (events) considered for the window, kept and set aside alike.  Reasons are
    short stable names (``bad JSON``, ``bad time``, ``implausible time``, ``invalid UTF-8``,
    ``repeated id``, ``duplicate key``, ``line too long``, ``too many keys``, ``truncated gzip``, ``nested value in
    features.tags``, ``type mismatch in features.amount``, ...); a reason that names a field counts values.
    """

    lines: int
    reasons: dict[str, ReasonCount] = field(default_factory=dict)

    @property
    def set_aside(self) -> int:
        """Lines (or values) set aside, over every reason."""
        return sum(r.count for r in self.reasons.values())

    @property
    def share(self) -> float:
        """Set aside over considered (0 for an empty window)."""
        return self.set_aside / self.lines if self.lines else 0.0

    def largest(self, n: int) -> list[tuple[str, ReasonCount]]:
        """The ``n`` reasons that set aside the most, largest first (ties by name)."""
        return sorted(self.reasons.items(), key=lambda item: (-item[1].count, item[0]))[:n]

    def to_dict(self) -> dict[str, Any]:
        """The measured part of the ``quality`` object every finding carries."""
        return {
            "lines": self.lines,
            "set_aside": self.set_aside,
            "share": self.share,
            "reasons": {name: {"count": r.count, "first": r.first} for name, r in sorted(self.reasons.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityReport:
        reasons = data.get("reasons") or {}
        return cls(
            int(data.get("lines") or 0),
            {str(name): ReasonCount(int(r.get("count") or 0), r.get("first")) for name, r in reasons.items()},
        )


@dataclass
class WindowQuality:
    """The quality a finding carries: its window's report (``None`` when the store could not tell, with the
    ``error`` saying why) and the share of set-aside lines above which the ``quality`` alert fires."""

    report: QualityReport | None
    max_bad_share: float
    error: str | None = None

    def exceeded(self) -> bool:
        """Whether more of the window's lines were set aside than ``max_bad_share`` allows."""
        return self.report is not None and self.report.share > self.max_bad_share

    def to_dict(self) -> dict[str, Any]:
        """``lines``, ``set_aside``, ``share``, ``reasons`` (count and first file:line each), ``max_bad_share``."""
        if self.report is None:
            measured: dict[str, Any] = {"lines": None, "set_aside": None, "share": None, "reasons": {}}
        else:
            measured = self.report.to_dict()
        out = {**measured, "max_bad_share": self.max_bad_share}
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowQuality:
        report = None if data.get("lines") is None else QualityReport.from_dict(data)
        error = data.get("error")
        return cls(report, float(data.get("max_bad_share") or 0.0), None if error is None else str(error))


@dataclass
class QualityRow:
    """The quality of one model's window, and the jobs whose findings over that window carry it."""

    model: str
    window: Window
    jobs: list[str]
    quality: WindowQuality

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "window": self.window.to_dict(), "jobs": self.jobs, **self.quality.to_dict()}


def quality_rows(findings: Sequence[Finding]) -> list[QualityRow]:
    """One row per model window (jobs over the same window share it), in the findings' order; findings that
    carry no quality (stored before it was measured) are left out."""
    rows: list[QualityRow] = []
    for finding in findings:
        if finding.quality is None:
            continue
        same = next(
            (
                r
                for r in rows
                if (r.model, r.window) == (finding.model, finding.window) and r.quality == finding.quality
            ),
            None,
        )
        if same is None:
            rows.append(QualityRow(finding.model, finding.window, [finding.job], finding.quality))
        elif finding.job not in same.jobs:
            same.jobs.append(finding.job)
    return rows


def describe_reasons(report: QualityReport) -> list[str]:
    """Each reason as ``count reason (first at file:line)``, largest first."""
    return [f"{r.count:,} {name} (first at {r.first or 'unknown'})" for name, r in report.largest(len(report.reasons))]
