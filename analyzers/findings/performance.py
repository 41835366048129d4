"""The performance job's payload: label coverage and each metric against its floor and the reference."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analyzers.findings.base import Metrics, number
from analyzers.findings.coverage import Coverage, coverage_from_dict, coverage_to_dict
from analyzers.formatting import format_number, format_percent

_NOT_METRICS = ("task", "n", "n_labeled", "label_coverage", "coverage", "reason", "n_labeled_observed")


@dataclass(frozen=True)
class Comparison:
    """A metric against the reference's: the change, the relative drop (worse is positive), significance."""

    change: float
    relative_drop: float | None
    significant: bool | None


@dataclass(kw_only=True)
class MetricResult:
    """One metric: its value, the reference's, its threshold, and whether it breached (``None``: no value)."""

    value: float | None
    reference: float | None
    higher_is_better: bool
    threshold: float | None = None
    ci: list[float | None] | None = None
    versus_reference: Comparison | None = None
    breached: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": self.value,
            "reference": self.reference,
            "higher_is_better": self.higher_is_better,
        }
        if self.ci is not None:
            out["ci"] = self.ci
        out["threshold"] = self.threshold
        if self.versus_reference is not None:
            v = self.versus_reference
            out.update(change=v.change, relative_drop=v.relative_drop, significant=v.significant)
        if self.breached is not None:
            out["breached"] = self.breached
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricResult:
        compared = None
        if "change" in data:
            compared = Comparison(data["change"], data.get("relative_drop"), data.get("significant"))
        return cls(
            value=data.get("value"),
            reference=data.get("reference"),
            higher_is_better=bool(data.get("higher_is_better")),
            threshold=data.get("threshold"),
            ci=data.get("ci"),
            versus_reference=compared,
            breached=data.get("breached"),
        )


@dataclass(kw_only=True)
class PerformanceMetrics(Metrics):
    """The task, how many predictions are labelled, and each metric by name (``measured``).

    ``n`` and ``n_labeled`` are the predictions they stand for (weighted by ``1 / sample_rate``),
    ``n_labeled_observed`` the labelled rows logged, which ``min_labels`` and the tests count.

    The metrics are written at the top level under their own names (``accuracy``, ``mae``, ...);
    ``coverage`` is how much of the window and the reference held predictions; ``reason`` says why there
    was no verdict (a window short of ``min_coverage``, too few labels, nothing to judge against).
    """

    job = "performance"

    n: float
    n_labeled: float
    label_coverage: float | None
    task: str | None = None
    measured: dict[str, MetricResult] = field(default_factory=dict)
    coverage: dict[str, Coverage] | None = None
    reason: str | None = None
    n_labeled_observed: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.task is None else {"task": self.task}
        out.update(n=self.n, n_labeled=self.n_labeled, label_coverage=self.label_coverage)
        if self.n_labeled_observed is not None:
            out["n_labeled_observed"] = self.n_labeled_observed
        if self.coverage is not None:
            out["coverage"] = coverage_to_dict(self.coverage)
        out.update({name: result.to_dict() for name, result in self.measured.items()})
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerformanceMetrics:
        return cls(
            n=number(data.get("n")),
            n_labeled=number(data.get("n_labeled")),
            label_coverage=data.get("label_coverage"),
            task=data.get("task"),
            measured={
                k: MetricResult.from_dict(v)
                for k, v in data.items()
                if k not in _NOT_METRICS and isinstance(v, Mapping)
            },
            coverage=coverage_from_dict(data.get("coverage")),
            reason=data.get("reason"),
            n_labeled_observed=data.get("n_labeled_observed"),
        )

    def row_counts(self) -> list[float]:
        return [self.n]

    def no_verdict_reason(self) -> str | None:
        return self.reason

    def headline(self) -> str:
        shown = [
            f"{name} {format_number(m.value)} (reference {format_number(m.reference)})"
            for name, m in list(self.measured.items())[:3]
        ]
        return "; ".join([*shown, f"label coverage {format_percent(self.label_coverage)}"])
