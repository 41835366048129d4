"""The estimation job's payload: each metric estimated without labels, its interval, the reference and the
realized value once labels arrive, and how the scores were calibrated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analyzers.findings.base import Metrics, number
from analyzers.findings.coverage import Coverage, coverage_from_dict, coverage_to_dict
from analyzers.formatting import format_number, format_percent


@dataclass(kw_only=True)
class Estimate:
    """One metric: the estimate and its interval, the reference's realized value and interval, the window's
    realized value (``None`` until ``min_labels`` labels arrive), and whether the estimate dropped."""

    name: str
    estimated: float | None
    lower: float | None
    upper: float | None
    standard_error: float | None
    reference: float | None
    reference_lower: float | None = None
    reference_upper: float | None = None
    realized: float | None = None
    relative_drop: float | None = None
    significant: bool | None = None
    dropped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "estimated": self.estimated,
            "lower": self.lower,
            "upper": self.upper,
            "standard_error": self.standard_error,
            "reference": self.reference,
            "reference_lower": self.reference_lower,
            "reference_upper": self.reference_upper,
            "realized": self.realized,
            "relative_drop": self.relative_drop,
            "significant": self.significant,
            "dropped": self.dropped,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Estimate:
        return cls(
            name=str(data["name"]),
            estimated=data.get("estimated"),
            lower=data.get("lower"),
            upper=data.get("upper"),
            standard_error=data.get("standard_error"),
            reference=data.get("reference"),
            reference_lower=data.get("reference_lower"),
            reference_upper=data.get("reference_upper"),
            realized=data.get("realized"),
            relative_drop=data.get("relative_drop"),
            significant=data.get("significant"),
            dropped=bool(data.get("dropped")),
        )


@dataclass(kw_only=True)
class CalibrationCheck:
    """How the reference's scores became probabilities (classification) or how the loss model was fitted
    (regression): the method kept, its out-of-fold error, and the estimate against the realized value on held-out
    reference rows (``held_out``, per metric)."""

    method: str
    ece: float | None
    n: int
    folds: int
    candidates: list[dict[str, Any]] = field(default_factory=list)
    max_error: float | None = None
    held_out: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "ece": self.ece,
            "n": self.n,
            "folds": self.folds,
            "candidates": self.candidates,
            "max_error": self.max_error,
            "held_out": self.held_out,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationCheck:
        return cls(
            method=str(data.get("method")),
            ece=data.get("ece"),
            n=int(data.get("n") or 0),
            folds=int(data.get("folds") or 0),
            candidates=list(data.get("candidates") or []),
            max_error=data.get("max_error"),
            held_out={k: dict(v) for k, v in (data.get("held_out") or {}).items()},
        )


@dataclass(kw_only=True)
class EstimationMetrics(Metrics):
    """Predictions, labelled predictions and labelled reference predictions; each metric's :class:`Estimate`.

    ``coverage`` is how much of the window and of the reference held predictions.  Without a verdict (``reason``
    set: a span short of ``min_coverage``, too few labelled reference predictions, a calibration too poor to
    trust) ``metrics`` is empty and only the counts, the calibration when it was checked and the reason are
    written.
    """

    job = "estimation"

    n: float
    n_labeled: float
    label_coverage: float | None
    n_ref: float | None
    coverage: dict[str, Coverage] | None = None
    task: str | None = None
    estimates: list[Estimate] = field(default_factory=list)
    n_scored: float | None = None
    outside_reference_range: float | None = None
    calibration: CalibrationCheck | None = None
    decision_threshold: float | None = None
    window_read: str | None = None
    confidence: float | None = None
    max_drop: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "n_labeled": self.n_labeled, "label_coverage": self.label_coverage}
        out["n_ref"] = self.n_ref
        if self.coverage is not None:
            out["coverage"] = coverage_to_dict(self.coverage)
        if self.task is not None:
            out["task"] = self.task
        if self.reason is not None:
            if self.calibration is not None:
                out["calibration"] = self.calibration.to_dict()
            return {**out, "metrics": [], "reason": self.reason}
        return {
            **out,
            "metrics": [e.to_dict() for e in self.estimates],
            "n_scored": self.n_scored,
            "outside_reference_range": self.outside_reference_range,
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "decision_threshold": self.decision_threshold,
            "window_read": self.window_read,
            "confidence": self.confidence,
            "max_drop": self.max_drop,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EstimationMetrics:
        calibration = data.get("calibration")
        return cls(
            n=number(data.get("n")),
            n_labeled=number(data.get("n_labeled")),
            label_coverage=data.get("label_coverage"),
            n_ref=data.get("n_ref"),
            coverage=coverage_from_dict(data.get("coverage")),
            task=data.get("task"),
            estimates=[Estimate.from_dict(e) for e in data.get("metrics") or []],
            n_scored=data.get("n_scored"),
            outside_reference_range=data.get("outside_reference_range"),
            calibration=None if calibration is None else CalibrationCheck.from_dict(calibration),
            decision_threshold=data.get("decision_threshold"),
            window_read=data.get("window_read"),
            confidence=data.get("confidence"),
            max_drop=data.get("max_drop"),
            reason=data.get("reason"),
        )

    def estimate(self, name: str) -> Estimate | None:
        """The entry of one metric, ``None`` when it was not estimated."""
        return next((e for e in self.estimates if e.name == name), None)

    def row_counts(self) -> list[float]:
        return [n for n in (self.n, self.n_ref) if n is not None]

    def no_verdict_reason(self) -> str | None:
        return self.reason

    def headline(self) -> str:
        shown = [
            f"{e.name} ~{format_number(e.estimated)} (reference {format_number(e.reference)})"
            for e in self.estimates[:3]
        ]
        return "; ".join([*shown, f"label coverage {format_percent(self.label_coverage)}"])
