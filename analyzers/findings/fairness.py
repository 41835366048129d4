"""The fairness job's payload: per attribute, its groups' rates and the parity gaps between them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analyzers.findings.base import Metrics, number
from analyzers.findings.coverage import Coverage, coverage_from_dict, coverage_to_dict
from analyzers.formatting import format_number

Interval = list[float | None]
RATES = ("selection_rate", "accuracy", "tpr", "fpr", "precision")
SPREADS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equal_opportunity_difference",
    "false_positive_rate_difference",
    "accuracy_difference",
)
_GAP = "_reference_group"


@dataclass(frozen=True)
class Rate:
    """A rate of one group and its confidence interval (``None`` when it cannot be computed)."""

    value: float | None
    ci: Interval | None = None


@dataclass(frozen=True)
class GapResult:
    """A group's difference from (and ratio to) its reference group on one rate."""

    difference: float | None
    difference_ci: Interval | None
    ratio: float | None
    reference_group: Any


@dataclass(frozen=True)
class SpreadResult:
    """The largest gap of one kind across an attribute's groups, its interval and the two groups."""

    value: float | None
    ci: Interval | None = None
    groups: list[Any] | None = None

    def to_dict(self, name: str) -> dict[str, Any]:
        return {name: self.value, f"{name}_ci": self.ci, f"{name}_groups": self.groups}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str) -> SpreadResult:
        return cls(data.get(name), data.get(f"{name}_ci"), data.get(f"{name}_groups"))


@dataclass(kw_only=True)
class GroupResult:
    """One group: its size, its rates (``RATES``), its gaps to the reference group, and its verdict.

    ``n`` and ``n_labeled`` are the predictions the group stands for (weighted by ``1 / sample_rate``);
    ``n_effective`` and ``n_labeled_effective`` the observations behind them that the intervals and
    ``min_group_size`` count (the rows logged, when one sample rate applies).
    """

    group: Any
    n: float
    n_labeled: float
    rates: dict[str, Rate]
    gaps: dict[str, GapResult] = field(default_factory=dict)
    status: str
    n_effective: float | None = None
    n_labeled_effective: float | None = None

    def rate(self, name: str) -> Rate:
        """The named rate (``Rate(None)`` when the group has none of that name)."""
        return self.rates.get(name, Rate(None))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"group": self.group, "n": self.n, "n_labeled": self.n_labeled}
        out.update(n_effective=self.n_effective, n_labeled_effective=self.n_labeled_effective)
        for name, rate in self.rates.items():
            out[name] = rate.value
            out[f"{name}_ci"] = rate.ci
        for metric, gap in self.gaps.items():
            out[f"{metric}_difference"] = gap.difference
            out[f"{metric}_difference_ci"] = gap.difference_ci
            out[f"{metric}_ratio"] = gap.ratio
            out[f"{metric}{_GAP}"] = gap.reference_group
        out["status"] = self.status
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupResult:
        gaps = {
            key[: -len(_GAP)]: GapResult(
                data.get(f"{key[: -len(_GAP)]}_difference"),
                data.get(f"{key[: -len(_GAP)]}_difference_ci"),
                data.get(f"{key[: -len(_GAP)]}_ratio"),
                data[key],
            )
            for key in data
            if key.endswith(_GAP)
        }
        return cls(
            group=data.get("group"),
            n=number(data.get("n")),
            n_labeled=number(data.get("n_labeled")),
            rates={name: Rate(data.get(name), data.get(f"{name}_ci")) for name in RATES if name in data},
            gaps=gaps,
            status=str(data.get("status")),
            n_effective=data.get("n_effective"),
            n_labeled_effective=data.get("n_labeled_effective"),
        )


@dataclass(kw_only=True)
class AttributeResult:
    """One attribute of ``ml.groups``: its groups, rows without a value, the parity gaps and its verdict."""

    name: str
    groups: list[GroupResult]
    missing: float
    demographic_parity_difference: SpreadResult
    demographic_parity_ratio: SpreadResult
    equalized_odds_difference: SpreadResult
    equal_opportunity_difference: SpreadResult
    false_positive_rate_difference: SpreadResult
    accuracy_difference: SpreadResult
    reference_group: Any
    eligible_groups: int
    status: str

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "groups": [g.to_dict() for g in self.groups], "missing": self.missing}
        for name in SPREADS:
            spread: SpreadResult = getattr(self, name)
            out.update(spread.to_dict(name))
        out.update(reference_group=self.reference_group, eligible_groups=self.eligible_groups, status=self.status)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttributeResult:
        return cls(
            name=str(data.get("name")),
            groups=[GroupResult.from_dict(g) for g in data.get("groups") or []],
            missing=number(data.get("missing")),
            demographic_parity_difference=SpreadResult.from_dict(data, "demographic_parity_difference"),
            demographic_parity_ratio=SpreadResult.from_dict(data, "demographic_parity_ratio"),
            equalized_odds_difference=SpreadResult.from_dict(data, "equalized_odds_difference"),
            equal_opportunity_difference=SpreadResult.from_dict(data, "equal_opportunity_difference"),
            false_positive_rate_difference=SpreadResult.from_dict(data, "false_positive_rate_difference"),
            accuracy_difference=SpreadResult.from_dict(data, "accuracy_difference"),
            reference_group=data.get("reference_group"),
            eligible_groups=int(data.get("eligible_groups") or 0),
            status=str(data.get("status")),
        )


@dataclass(kw_only=True)
class FairnessMetrics(Metrics):
    """``n`` predictions (weighted by ``1 / sample_rate``) and ``n_observed`` rows logged, one entry per
    attribute, how much of the window held predictions (``coverage``), and ``reason`` when there was nothing
    to judge."""

    job = "fairness"

    n: float
    attributes: list[AttributeResult] = field(default_factory=list)
    coverage: dict[str, Coverage] | None = None
    reason: str | None = None
    n_observed: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "attributes": [a.to_dict() for a in self.attributes]}
        if self.n_observed is not None:
            out["n_observed"] = self.n_observed
        if self.coverage is not None:
            out["coverage"] = coverage_to_dict(self.coverage)
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FairnessMetrics:
        return cls(
            n=number(data.get("n")),
            attributes=[AttributeResult.from_dict(a) for a in data.get("attributes") or []],
            coverage=coverage_from_dict(data.get("coverage")),
            reason=data.get("reason"),
            n_observed=data.get("n_observed"),
        )

    def row_counts(self) -> list[float]:
        return [self.n]

    def no_verdict_reason(self) -> str | None:
        return self.reason

    def headline(self) -> str:
        parts = [f"{a.name}: parity ratio {format_number(a.demographic_parity_ratio.value)}" for a in self.attributes]
        return "; ".join(parts) or "no group attributes"
