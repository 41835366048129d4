"""The replay payload: how many logged predictions a model reproduced, and examples of those it did not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from analyzers.findings.base import Metrics, number
from analyzers.formatting import format_number
from analyzers.timeutil import parse_time


@dataclass(frozen=True, kw_only=True)
class Mismatch:
    """A logged prediction the replay did not reproduce: what was logged, what came out, the score gap."""

    prediction_id: Any
    entity_id: Any
    timestamp: datetime | None
    logged: Any
    replayed: Any
    logged_score: float | None
    replayed_score: float | None
    score_difference: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prediction_id": self.prediction_id,
            "entity_id": self.entity_id,
            "timestamp": self.timestamp,
            "logged": self.logged,
            "replayed": self.replayed,
            "logged_score": self.logged_score,
            "replayed_score": self.replayed_score,
            "score_difference": self.score_difference,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Mismatch:
        stamp = data.get("timestamp")
        return cls(
            prediction_id=data.get("prediction_id"),
            entity_id=data.get("entity_id"),
            timestamp=parse_time(stamp) if stamp is not None else None,
            logged=data.get("logged"),
            replayed=data.get("replayed"),
            logged_score=data.get("logged_score"),
            replayed_score=data.get("replayed_score"),
            score_difference=data.get("score_difference"),
        )


@dataclass(frozen=True)
class Tolerance:
    """How far a replayed value may be from the logged one and still match: ``atol + rtol * |logged|``;
    ``source`` says where ``atol`` came from (given, or the decimals the values were logged with)."""

    atol: float
    rtol: float
    source: str

    def matches(self, logged: float, replayed: float) -> bool:
        return abs(replayed - logged) <= self.atol + self.rtol * abs(logged)

    def to_dict(self) -> dict[str, Any]:
        return {"atol": self.atol, "rtol": self.rtol, "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tolerance:
        return cls(number(data.get("atol")), number(data.get("rtol")), str(data.get("source") or ""))


@dataclass(kw_only=True)
class ReplayMetrics(Metrics):
    """Counts of predictions replayed and mismatched, score differences, the tolerance of each compared
    column (``score``, ``prediction``), and examples of mismatches."""

    job = "replay"

    target: str
    entity_ids: list[str] | None = None
    prediction_ids: list[str] | None = None
    n: int = 0
    mismatches: int = 0
    mismatch_rate: float | None = None
    prediction_mismatches: int = 0
    score_mismatches: int = 0
    scores_compared: int = 0
    max_score_difference: float | None = None
    mean_abs_score_difference: float | None = None
    tolerance: dict[str, Tolerance] = field(default_factory=dict)
    largest_differences: list[Mismatch] = field(default_factory=list)
    examples: list[Mismatch] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "filters": {"entity_ids": self.entity_ids, "prediction_ids": self.prediction_ids},
            "n": self.n,
            "mismatches": self.mismatches,
            "mismatch_rate": self.mismatch_rate,
            "prediction_mismatches": self.prediction_mismatches,
            "score_mismatches": self.score_mismatches,
            "scores_compared": self.scores_compared,
            "max_score_difference": self.max_score_difference,
            "mean_abs_score_difference": self.mean_abs_score_difference,
            "tolerance": {column: t.to_dict() for column, t in self.tolerance.items()},
            "largest_differences": [m.to_dict() for m in self.largest_differences],
            "examples": [m.to_dict() for m in self.examples],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplayMetrics:
        filters = data.get("filters") or {}
        return cls(
            target=str(data.get("target")),
            entity_ids=filters.get("entity_ids"),
            prediction_ids=filters.get("prediction_ids"),
            n=int(data.get("n") or 0),
            mismatches=int(data.get("mismatches") or 0),
            mismatch_rate=data.get("mismatch_rate"),
            prediction_mismatches=int(data.get("prediction_mismatches") or 0),
            score_mismatches=int(data.get("score_mismatches") or 0),
            scores_compared=int(data.get("scores_compared") or 0),
            max_score_difference=data.get("max_score_difference"),
            mean_abs_score_difference=data.get("mean_abs_score_difference"),
            tolerance={column: Tolerance.from_dict(t) for column, t in (data.get("tolerance") or {}).items()},
            largest_differences=[Mismatch.from_dict(m) for m in data.get("largest_differences") or []],
            examples=[Mismatch.from_dict(m) for m in data.get("examples") or []],
        )

    def row_counts(self) -> list[float]:
        return [float(self.n)]

    def headline(self) -> str:
        numbers = [
            ("n", self.n),
            ("mismatches", self.mismatches),
            ("mismatch_rate", self.mismatch_rate),
            ("prediction_mismatches", self.prediction_mismatches),
            ("score_mismatches", self.score_mismatches),
            ("scores_compared", self.scores_compared),
            ("max_score_difference", self.max_score_difference),
            ("mean_abs_score_difference", self.mean_abs_score_difference),
        ]
        return ", ".join(f"{k} {format_number(v)}" for k, v in [(k, v) for k, v in numbers if v is not None][:6])
