"""Fairness job: per group of each ``ml.groups`` attribute, rates and parity gaps with confidence intervals.

Selection is ``prediction == positive_label``, or ``score >= score_threshold`` when a threshold is
configured (rows without a score then take no part).  Counts come from the store's crosstab (or, with a
score threshold, one streamed pass over group, score and label columns).  A verdict needs a gap that is
both significant (its Newcombe interval, Bonferroni-widened over the pairs of groups since the compared
groups are picked from the data, excludes zero) and beyond the configured limit.  A window holding data in
less than ``min_coverage`` of its slots (see :mod:`analyzers.jobs.coverage`) gets no verdict.  Groups smaller
than ``min_group_size`` (in predictions, or in labelled predictions for label-based rates) get
``insufficient_data`` and take no part.  Under sampled logging the rates are weighted by ``1 / sample_rate``
while the intervals, ``min_group_size`` and ``min_rows`` count the rows observed (Kish's effective size of
each group's cells, see :mod:`analyzers.stats.sampling`).  Rows without a value for the attribute are counted as
``missing`` and are not a group.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd

from analyzers.config.models import FairnessConfig
from analyzers.findings import FairnessMetrics, Finding, Signal, Status
from analyzers.findings.fairness import RATES, AttributeResult, GapResult, GroupResult, Rate, SpreadResult
from analyzers.jobs import coverage
from analyzers.jobs.base import error_finding
from analyzers.stats.fairness import (
    AttributeFairness,
    ConfusionCounts,
    Gap,
    Spread,
    assess_attribute,
    confusion_by_group,
)
from analyzers.stats.intervals import Estimate
from analyzers.stats.performance import is_positive
from analyzers.stats.sampling import row_weights
from analyzers.store.base import PredictionReader, Query
from analyzers.timeutil import Window

JOB = "fairness"
GROUP_PREFIX = "groups."
_GROUP_GAPS = ("tpr", "fpr", "accuracy")  # rates whose gap marks one group as served worse


def run(store: PredictionReader, model: str, config: FairnessConfig, window: Window) -> Finding:
    """Measure fairness over the window; never raises (failures become an ``error`` finding)."""
    try:
        return _run(store, model, config, window)
    except Exception as exc:  # a job reports its failure instead of raising
        return error_finding(model, JOB, window, exc)


def _run(store: PredictionReader, model: str, config: FairnessConfig, window: Window) -> Finding:
    query = Query(model=model, window=window, outcome="success")
    reference = _reference(config)
    covered = coverage.measure_spans(store, query, {"window": window})
    total = covered["window"].count
    observed = store.sample_size(query).rows
    attributes = list(config.groups) if config.groups else group_attributes(store, query)
    why = coverage.shortfall(covered, config.min_coverage)
    if why is None and observed < max(config.min_rows, 1):
        why = f"{observed:g} predictions logged < min_rows {config.min_rows}"
    if why is None and not attributes:
        why = "no group attributes logged"
    if why is not None:
        metrics = FairnessMetrics(n=total, n_observed=observed, coverage=covered, reason=why)
        return Finding(model, JOB, window, "insufficient_data", metrics, reference)
    counts = group_counts(store, query, attributes, config)
    out: list[AttributeResult] = []
    signals: list[Signal] = []
    judged = False
    for attr in attributes:
        groups = counts[attr]
        missing = groups.pop(None, ConfusionCounts()).n
        named = match_group(config.reference_group.get(attr), groups)
        result = assess_attribute(
            attr,
            groups,
            min_group_size=config.min_group_size,
            reference_group=named,
            confidence=config.confidence,
            family_wise=True,
        )
        attr_signals = _attribute_signals(result, config) + _group_signals(result, config)
        signals += attr_signals
        judged = judged or result.demographic_parity_difference.value is not None
        out.append(_attribute_result(result, missing, attr_signals))
    status: Status = "alert" if signals else ("ok" if judged else "insufficient_data")
    metrics = FairnessMetrics(n=total, n_observed=observed, attributes=out, coverage=covered)
    return Finding(model, JOB, window, status, metrics, reference, signals)


def _reference(config: FairnessConfig) -> dict[str, Any]:
    return {
        "reference_group": dict(config.reference_group) or "best-served group per rate",
        "positive_label": config.positive_label,
        "score_threshold": config.score_threshold,
        "parity_ratio": config.parity_ratio,
        "max_difference": config.max_difference,
        "min_group_size": config.min_group_size,
        "confidence": config.confidence,
        "interval": "Wilson for rates, Newcombe hybrid score for differences, Katz log for ratios",
    }


def group_attributes(store: PredictionReader, query: Query) -> list[str]:
    return sorted(c.name[len(GROUP_PREFIX) :] for c in store.columns(query) if c.name.startswith(GROUP_PREFIX))


def group_counts(
    store: PredictionReader, query: Query, attributes: list[str], config: FairnessConfig
) -> dict[str, dict[Hashable, ConfusionCounts]]:
    """Weighted confusion counts per group of each attribute, with their squared weights."""
    if config.score_threshold is None:
        out = {}
        for attr in attributes:
            table = store.crosstab(query, [GROUP_PREFIX + attr, "prediction", "label"])
            selected = [is_positive(v, config.positive_label) for v in table["prediction"]]
            out[attr] = confusion_by_group(
                table[GROUP_PREFIX + attr].to_numpy(dtype=object),
                selected,
                _actual(table["label"], config.positive_label),
                table["count"].to_numpy(dtype=float),
                table["weight_sq"].to_numpy(dtype=float),
            )
        return out
    totals: dict[str, dict[Hashable, ConfusionCounts]] = {a: {} for a in attributes}
    columns = [GROUP_PREFIX + a for a in attributes] + ["score", "label", "sample_rate"]
    for chunk in store.rows(query, columns=columns):
        score = pd.to_numeric(chunk["score"], errors="coerce").to_numpy(dtype=float)
        keep = np.isfinite(score)
        chunk = chunk[keep]
        weights = row_weights(chunk)
        actual = _actual(chunk["label"], config.positive_label)
        selected = score[keep] >= config.score_threshold
        for attr in attributes:
            part = confusion_by_group(chunk[GROUP_PREFIX + attr].to_numpy(dtype=object), selected, actual, weights)
            for group, c in part.items():
                totals[attr][group] = totals[attr].get(group, ConfusionCounts()) + c
    return totals


def _actual(labels: pd.Series, positive_label: Any) -> list[bool | None]:
    return [None if _missing(v) else is_positive(v, positive_label) for v in labels]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def match_group(name: str | None, groups: dict[Hashable, ConfusionCounts]) -> Hashable | None:
    """The configured reference group as it appears in the data (the config holds it as text)."""
    if name is None:
        return None
    for group in groups:
        if group == name or str(group) == str(name):
            return group
    return name


def _attribute_signals(result: AttributeFairness, config: FairnessConfig) -> list[Signal]:
    """A demographic-parity breach: significant, and beyond the ratio (four-fifths) or difference limit."""
    diff, ratio = result.demographic_parity_difference, result.demographic_parity_ratio
    if diff.value is None or not diff.interval.excludes_zero or diff.groups is None:
        return []
    hi, lo = diff.groups
    if ratio.value is not None and ratio.value < config.parity_ratio:
        value, threshold, what = ratio.value, config.parity_ratio, f"ratio {ratio.value:.3f} < {config.parity_ratio}"
    elif diff.value > config.max_difference:
        value, threshold, what = diff.value, config.max_difference, f"difference {diff.value:.3f}"
        what += f" > {config.max_difference}"
    else:
        return []
    return [
        Signal(
            subject=f"attribute:{result.name}",
            message=(
                f"demographic parity breached for {result.name}: selection rate {what} "
                f"({result.name}={lo} vs {result.name}={hi}, family-wise {config.confidence:.0%} CI of the difference "
                f"{diff.interval.low:.3f} to {diff.interval.high:.3f})"
            ),
            severity=config.severity,
            value=value,
            threshold=threshold,
        )
    ]


def _group_signals(result: AttributeFairness, config: FairnessConfig) -> list[Signal]:
    """A group served significantly worse than its reference on TPR, FPR or accuracy, beyond ``max_difference``."""
    signals = []
    for group, gaps in result.gaps.items():
        breaches = [g for g in (gaps.get(m) for m in _GROUP_GAPS) if g is not None and _breached(g, config)]
        if not breaches:
            continue
        worst = max(breaches, key=lambda g: g.worse_by or 0.0)
        detail = "; ".join(
            f"{g.metric} {_fmt(g.difference.value)} vs {g.reference} "
            f"(CI {_fmt(g.difference.low)} to {_fmt(g.difference.high)})"
            for g in breaches
        )
        signals.append(
            Signal(
                subject=f"group:{result.name}={group}",
                message=f"{result.name}={group} is served worse: {detail}; limit {config.max_difference}",
                severity=config.severity,
                value=worst.worse_by,
                threshold=config.max_difference,
            )
        )
    return signals


def _breached(gap: Gap, config: FairnessConfig) -> bool:
    worse = gap.worse_by
    return worse is not None and worse > config.max_difference and gap.difference.excludes_zero


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _ci(est: Estimate) -> list[float | None] | None:
    return None if est.low is None else [est.low, est.high]


def _spread(spread: Spread) -> SpreadResult:
    return SpreadResult(spread.value, _ci(spread.interval), list(spread.groups) if spread.groups else None)


def _group_status(result: AttributeFairness, group: Hashable, counts: ConfusionCounts, flagged: set[str]) -> str:
    if not result.eligible[group]:
        return "insufficient_data"
    if f"group:{result.name}={group}" in flagged:
        return "alert"
    return "ok" if result.label_eligible[group] or counts.labeled == 0 else "insufficient_labels"


def _attribute_result(result: AttributeFairness, missing: float, signals: list[Signal]) -> AttributeResult:
    flagged = {s.subject for s in signals}
    groups = [
        GroupResult(
            group=gm.group,
            n=gm.counts.n,
            n_labeled=gm.counts.labeled,
            n_effective=gm.counts.n_effective,
            n_labeled_effective=gm.counts.labeled_effective,
            rates={rate: Rate(getattr(gm, rate).value, _ci(getattr(gm, rate))) for rate in RATES},
            gaps={
                metric: GapResult(gap.difference.value, _ci(gap.difference), gap.ratio.value, gap.reference)
                for metric, gap in result.gaps.get(gm.group, {}).items()
            },
            status=_group_status(result, gm.group, gm.counts, flagged),
        )
        for gm in result.groups
    ]
    judged = result.demographic_parity_difference.value is not None
    return AttributeResult(
        name=result.name,
        groups=groups,
        missing=missing,
        demographic_parity_difference=_spread(result.demographic_parity_difference),
        demographic_parity_ratio=_spread(result.demographic_parity_ratio),
        equalized_odds_difference=_spread(result.equalized_odds_difference),
        equal_opportunity_difference=_spread(result.equal_opportunity_difference),
        false_positive_rate_difference=_spread(result.fpr_difference),
        accuracy_difference=_spread(result.accuracy_difference),
        reference_group=result.reference_group,
        eligible_groups=sum(result.eligible.values()),
        status="alert" if signals else ("ok" if judged else "insufficient_data"),
    )
