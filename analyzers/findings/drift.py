"""The drift job's payload: every column's comparison, the dataset verdict, and the settings it used."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from analyzers.findings.base import Metrics, Signal, number
from analyzers.findings.coverage import Coverage, coverage_from_dict, coverage_to_dict
from analyzers.formatting import format_number
from analyzers.stats.drift import ColumnDrift

_COMMON = ("method", "statistic", "threshold", "drifted", "n_reference", "n_current", "features", "reason")


@dataclass(kw_only=True)
class MultivariateDrift:
    """The features taken together: the method, its statistic against its threshold, and the verdict.

    ``details`` holds the method's own numbers (PCA: ``lower_threshold``, ``reference_mean``, ``spread``,
    ``n_components``, ...; classifier: ``p_value``, ``alpha``, ``fold_auc``, ...).  A window the method cannot
    judge has null numbers, ``drifted: false`` and a ``reason``.
    """

    method: str
    statistic: float | None
    threshold: float | None
    drifted: bool
    n_reference: float | None
    n_current: float
    features: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    @property
    def lower_threshold(self) -> float | None:
        """The lower edge of the PCA method's band (``None`` for the classifier)."""
        value = self.details.get("lower_threshold")
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "statistic": self.statistic,
            "threshold": self.threshold,
            "drifted": self.drifted,
            **self.details,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "features": self.features,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MultivariateDrift:
        return cls(
            method=str(data.get("method")),
            statistic=data.get("statistic"),
            threshold=data.get("threshold"),
            drifted=bool(data.get("drifted")),
            n_reference=data.get("n_reference"),
            n_current=data.get("n_current") or 0,
            features=[str(f) for f in data.get("features") or []],
            details={k: v for k, v in data.items() if k not in _COMMON},
            reason=data.get("reason"),
        )


@dataclass(kw_only=True)
class DriftMetrics(Metrics):
    """``features`` (one :class:`ColumnDrift` per feature and output), ``share_drifted``, ``dataset_drift``.

    ``coverage`` is how much of the window and of the reference window held predictions.  Without a
    verdict (``reason`` set: a span short of ``min_coverage``, or too few rows on one side) only ``n_cur``,
    ``n_ref``, the coverage and the reason are written.  ``n_cur`` and ``n_ref`` are the predictions the
    windows stand for (weighted by ``1 / sample_rate``); ``n_cur_observed`` and ``n_ref_observed`` the rows
    logged, which the tests count on (each column's ``n_*_effective``).
    """

    job = "drift"

    n_cur: float
    features: list[ColumnDrift] = field(default_factory=list)
    share_drifted: float = 0.0
    dataset_drift: bool = False
    n_drifted: int = 0
    n_columns: int = 0
    alpha: float | None = None
    correction: str | None = None
    drift_share: float | None = None
    n_ref: float | None = None
    n_cur_observed: float | None = None
    n_ref_observed: float | None = None
    coverage: dict[str, Coverage] | None = None
    multivariate: MultivariateDrift | None = None
    reason: str | None = None

    def _counts(self) -> dict[str, float]:
        named = {
            "n_cur": self.n_cur,
            "n_ref": self.n_ref,
            "n_cur_observed": self.n_cur_observed,
            "n_ref_observed": self.n_ref_observed,
        }
        return {k: v for k, v in named.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        covered = {} if self.coverage is None else {"coverage": coverage_to_dict(self.coverage)}
        if self.reason is not None:
            return {**self._counts(), **covered, "reason": self.reason}
        return {
            "features": [f.to_dict() for f in self.features],
            "share_drifted": self.share_drifted,
            "dataset_drift": self.dataset_drift,
            "n_drifted": self.n_drifted,
            "n_columns": self.n_columns,
            **self._counts(),
            "alpha": self.alpha,
            "correction": self.correction,
            "drift_share": self.drift_share,
            **covered,
            **({} if self.multivariate is None else {"multivariate": self.multivariate.to_dict()}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftMetrics:
        return cls(
            n_cur=number(data.get("n_cur")),
            features=[ColumnDrift.from_dict(f) for f in data.get("features") or []],
            share_drifted=number(data.get("share_drifted")),
            dataset_drift=bool(data.get("dataset_drift")),
            n_drifted=int(data.get("n_drifted") or 0),
            n_columns=int(data.get("n_columns") or 0),
            alpha=data.get("alpha"),
            correction=data.get("correction"),
            drift_share=data.get("drift_share"),
            n_ref=data.get("n_ref"),
            n_cur_observed=data.get("n_cur_observed"),
            n_ref_observed=data.get("n_ref_observed"),
            coverage=coverage_from_dict(data.get("coverage")),
            multivariate=MultivariateDrift.from_dict(data["multivariate"]) if data.get("multivariate") else None,
            reason=data.get("reason"),
        )

    @property
    def drifted(self) -> list[ColumnDrift]:
        return [f for f in self.features if f.drifted]

    def row_counts(self) -> list[float]:
        return [n for n in (self.n_cur, self.n_ref) if n is not None]

    def no_verdict_reason(self) -> str | None:
        return self.reason

    def summary(self, signals: Sequence[Signal]) -> str:
        """How many columns drifted, and the first four with their effect sizes (signals are those columns)."""
        drifted = self.drifted
        named = ", ".join(
            f"{f.name} ({f.effect_size_method or f.method} {format_number(f.effect_size)})" for f in drifted[:4]
        )
        more = f" and {len(drifted) - 4} more" if len(drifted) > 4 else ""
        head = f"{len(drifted)} of {format_number(self.n_columns)} columns drifted"
        joint = self.multivariate
        together = (
            f"; features together drifted ({joint.method} {format_number(joint.statistic)} > "
            f"{format_number(joint.threshold)})"
            if joint is not None and joint.drifted
            else ""
        )
        return (f"{head}: {named}{more}" if drifted else head) + together
