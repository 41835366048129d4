"""The canary job's payload: which versions were compared, their figures, each comparison, and the verdict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from analyzers.findings.base import Metrics, number
from analyzers.formatting import format_number, format_percent
from analyzers.stats.canary import VERDICTS, Verdict
from analyzers.stats.drift import ColumnDrift
from analyzers.timeutil import parse_time

# Metrics whose values are shares (shown as percentages).
SHARES = ("accuracy", "precision", "recall", "error_rate")


def _time(value: Any) -> datetime | None:
    return None if value is None else parse_time(value)


@dataclass(kw_only=True)
class VersionFigures:
    """One side of the comparison: the version, how it was chosen (``previous``, ``latest`` or ``configured``),
    when it was first seen, and its figures over the window.

    ``events``, ``predictions``, ``labeled`` and ``failures`` are what the version's logged rows stand for
    (weighted by ``1 / sample_rate``); ``events_observed`` the rows logged and ``events_effective`` the
    observations the comparisons count on (equal to ``events_observed`` with one sample rate).
    """

    version: str
    chosen_as: str
    first_seen: datetime | None
    events: float
    predictions: float
    labeled: float
    failures: float
    error_rate: float | None
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    events_observed: float | None = None
    events_effective: float | None = None

    @property
    def scale(self) -> float:
        """Observations per weighted event: turns the version's weighted counts into effective ones."""
        if self.events_effective is None or self.events <= 0:
            return 1.0
        return self.events_effective / self.events

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "chosen_as": self.chosen_as,
            "first_seen": self.first_seen,
            "events": self.events,
            "predictions": self.predictions,
            "labeled": self.labeled,
            "failures": self.failures,
            "error_rate": self.error_rate,
            "latency_ms": dict(self.latency_ms),
            "events_observed": self.events_observed,
            "events_effective": self.events_effective,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VersionFigures:
        return cls(
            version=str(data.get("version")),
            chosen_as=str(data.get("chosen_as")),
            first_seen=_time(data.get("first_seen")),
            events=number(data.get("events")),
            predictions=number(data.get("predictions")),
            labeled=number(data.get("labeled")),
            failures=number(data.get("failures")),
            error_rate=data.get("error_rate"),
            latency_ms=dict(data.get("latency_ms") or {}),
            events_observed=data.get("events_observed"),
            events_effective=data.get("events_effective"),
        )


@dataclass(frozen=True)
class TrafficShare:
    """A version live in the window: its events, their share of the model's, and when it was first seen."""

    version: str
    events: float
    share: float
    first_seen: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "events": self.events, "share": self.share, "first_seen": self.first_seen}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrafficShare:
        return cls(
            str(data.get("version")),
            number(data.get("events")),
            number(data.get("share")),
            _time(data.get("first_seen")),
        )


@dataclass(kw_only=True)
class MetricComparison:
    """One metric on both versions, ``candidate - baseline`` with its interval, and whether it gates the verdict.

    ``n_*`` count each side's observations of the metric (labelled predictions, events, ...).
    """

    metric: str
    baseline: float | None
    candidate: float | None
    difference: float | None
    low: float | None
    high: float | None
    higher_is_better: bool
    worse: bool
    better: bool
    gated: bool
    n_baseline: float
    n_candidate: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "higher_is_better": self.higher_is_better,
            "worse": self.worse,
            "better": self.better,
            "gated": self.gated,
            "n_baseline": self.n_baseline,
            "n_candidate": self.n_candidate,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricComparison:
        return cls(
            metric=str(data.get("metric")),
            baseline=data.get("baseline"),
            candidate=data.get("candidate"),
            difference=data.get("difference"),
            low=data.get("low"),
            high=data.get("high"),
            higher_is_better=bool(data.get("higher_is_better")),
            worse=bool(data.get("worse")),
            better=bool(data.get("better")),
            gated=bool(data.get("gated")),
            n_baseline=number(data.get("n_baseline")),
            n_candidate=number(data.get("n_candidate")),
        )

    @property
    def is_share(self) -> bool:
        """Whether the metric is a share (its differences are shown in percentage points)."""
        return self.metric in SHARES or self.metric.startswith("latency_")

    def describe_difference(self) -> str:
        """``-13.5 pts, -18.8 to -8.7`` for shares, ``+1.2, -0.3 to 2.7`` for others."""

        def shown(value: float | None) -> str:
            if value is None:
                return "—"
            return f"{value * 100:+.1f}" if self.is_share else f"{value:+.3g}"

        unit = " pts" if self.is_share else ""
        interval = f", interval {shown(self.low)} to {shown(self.high)}" if self.low is not None else ""
        return f"difference {shown(self.difference)}{unit}{interval}"

    def describe(self) -> str:
        """``accuracy 76.0% vs 89.5% (difference -13.5 pts, interval -18.8 to -8.7)``: candidate first."""
        shown = format_percent if self.is_share else format_number
        return f"{self.metric} {shown(self.candidate)} vs {shown(self.baseline)} ({self.describe_difference()})"


@dataclass(kw_only=True)
class SampleSize:
    """The power calculation for the primary metric: candidate observations required and observed, and what
    is still missing, in observations and in candidate predictions (at the window's share of predictions
    that are observations, e.g. labelled), and the window that would hold enough at the current traffic."""

    metric: str
    required: float | None
    observed: float
    more_observations: float | None = None
    more_predictions: float | None = None
    window_needed_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "required": self.required,
            "observed": self.observed,
            "more_observations": self.more_observations,
            "more_predictions": self.more_predictions,
            "window_needed_s": self.window_needed_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SampleSize:
        return cls(
            metric=str(data.get("metric")),
            required=data.get("required"),
            observed=number(data.get("observed")),
            more_observations=data.get("more_observations"),
            more_predictions=data.get("more_predictions"),
            window_needed_s=data.get("window_needed_s"),
        )


@dataclass(kw_only=True)
class CanaryMetrics(Metrics):
    """``verdict`` (``promote``, ``hold``, ``rollback``, or ``None`` when fewer than two versions were live)
    and ``reason`` (the verdict in words), the two versions' figures, every version's share of the traffic,
    each metric's comparison, the power calculation and the prediction and score drift between the versions.

    ``confidence`` is family-wise over the gated metrics; each interval is at ``level`` (Bonferroni).
    """

    job = "canary"

    verdict: Verdict | None
    reason: str
    metric: str
    min_detectable: float
    confidence: float
    level: float
    power: float
    baseline: VersionFigures | None = None
    candidate: VersionFigures | None = None
    traffic: list[TrafficShare] = field(default_factory=list)
    comparisons: list[MetricComparison] = field(default_factory=list)
    sample_size: SampleSize | None = None
    drift: list[ColumnDrift] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "metric": self.metric,
            "min_detectable": self.min_detectable,
            "confidence": self.confidence,
            "level": self.level,
            "power": self.power,
            "baseline": self.baseline.to_dict() if self.baseline is not None else None,
            "candidate": self.candidate.to_dict() if self.candidate is not None else None,
            "traffic": [t.to_dict() for t in self.traffic],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "sample_size": self.sample_size.to_dict() if self.sample_size is not None else None,
            "drift": [d.to_dict() for d in self.drift],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CanaryMetrics:
        verdict = data.get("verdict")
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"canary verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
        baseline, candidate, sample = data.get("baseline"), data.get("candidate"), data.get("sample_size")
        return cls(
            verdict=verdict,
            reason=str(data.get("reason") or ""),
            metric=str(data.get("metric")),
            min_detectable=number(data.get("min_detectable")),
            confidence=number(data.get("confidence")),
            level=number(data.get("level")),
            power=number(data.get("power")),
            baseline=VersionFigures.from_dict(baseline) if baseline else None,
            candidate=VersionFigures.from_dict(candidate) if candidate else None,
            traffic=[TrafficShare.from_dict(t) for t in data.get("traffic") or []],
            comparisons=[MetricComparison.from_dict(c) for c in data.get("comparisons") or []],
            sample_size=SampleSize.from_dict(sample) if sample else None,
            drift=[ColumnDrift.from_dict(d) for d in data.get("drift") or []],
        )

    def comparison(self, metric: str) -> MetricComparison | None:
        """The comparison of one metric, ``None`` when it was not compared."""
        return next((c for c in self.comparisons if c.metric == metric), None)

    def row_counts(self) -> list[float]:
        return [side.events for side in (self.baseline, self.candidate) if side is not None]

    def no_verdict_reason(self) -> str | None:
        return self.reason if self.verdict in (None, "hold") else None

    def unjudged_needs_attention(self) -> bool:
        """A canary that needs more data is waiting, not failing (the ops job watches for silence)."""
        return False

    def headline(self) -> str:
        return self.reason
