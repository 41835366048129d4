"""Fairness metrics by group from weighted confusion counts, after Fairlearn's MetricFrame.

Counts are weighted by ``1 / sample_rate`` (the rates describe the whole traffic), while every interval
and minimum size counts the observations behind them (see :mod:`analyzers.stats.sampling`).

Per group: volume, selection rate, and with feedback accuracy, TPR, FPR and precision, each with a
Wilson interval.  Per attribute: demographic parity difference and ratio, equal-opportunity and
equalized-odds differences, in Fairlearn's ``between_groups`` sense (largest minus smallest over the
eligible groups) or, with a named reference group, the largest gap to that group.  Differences get
Newcombe's hybrid score interval; ratios the Katz log interval.  Groups smaller than the minimum size
are reported but take no part in any difference or verdict; a value that cannot be computed is ``None``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analyzers.stats.intervals import NONE, Estimate, newcombe_difference, proportion, ratio_interval, wilson
from analyzers.stats.sampling import effective_pair, effective_size


@dataclass(frozen=True)
class ConfusionCounts:
    """Weighted counts of one group: all predictions, the selected ones, and the labelled confusion cells.

    ``squares`` holds the same cells summed over the squared weights (``None``: every weight is 1, so
    they equal the counts); a rate's interval counts ``(Σw)² / Σw²`` observations of its denominator
    (see :mod:`analyzers.stats.sampling`), its value the weighted counts.
    """

    n: float = 0.0
    selected: float = 0.0
    tp: float = 0.0
    fp: float = 0.0
    fn: float = 0.0
    tn: float = 0.0
    squares: ConfusionCounts | None = None

    @property
    def labeled(self) -> float:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def sum_sq(self) -> ConfusionCounts:
        """The cells summed over squared weights."""
        return self.squares if self.squares is not None else _cells(self._values())

    @property
    def n_effective(self) -> float:
        """The observations behind ``n``."""
        return effective_size(self.n, self.sum_sq.n)

    @property
    def labeled_effective(self) -> float:
        """The observations behind ``labeled``."""
        return effective_size(self.labeled, self.sum_sq.labeled)

    def __add__(self, other: ConfusionCounts) -> ConfusionCounts:
        values = [a + b for a, b in zip(self._values(), other._values(), strict=True)]
        if self.squares is None and other.squares is None:
            return _cells(values)
        return _cells(values, self.sum_sq + other.sum_sq)

    def _values(self) -> tuple[float, ...]:
        return (self.n, self.selected, self.tp, self.fp, self.fn, self.tn)


def _cells(values: Sequence[float], squares: ConfusionCounts | None = None) -> ConfusionCounts:
    """Counts from the six cells in ``ConfusionCounts`` order (n, selected, tp, fp, fn, tn)."""
    n, selected, tp, fp, fn, tn = values
    return ConfusionCounts(n, selected, tp, fp, fn, tn, squares)


def confusion_by_group(
    groups: np.ndarray | list[Any],
    selected: np.ndarray | list[bool],
    actual: np.ndarray | list[Any],
    weights: np.ndarray | list[float] | None = None,
    weights_sq: np.ndarray | list[float] | None = None,
) -> dict[Hashable, ConfusionCounts]:
    """Sum weights (and squared weights) per group into confusion counts.

    ``selected`` says whether each prediction is positive; ``actual`` is True/False for the label
    being positive and ``None``/NaN where no feedback has arrived (counted in ``n`` only).
    ``weights_sq`` are the squared weights behind each entry when the entries are themselves sums
    (a crosstab's combinations); by default each entry is one row and its weight squared.
    """
    group_arr = np.asarray(groups, dtype=object)
    sel = np.asarray(selected, dtype=bool)
    w = np.ones(len(group_arr)) if weights is None else np.asarray(weights, dtype=float)
    w2 = w * w if weights_sq is None else np.asarray(weights_sq, dtype=float)
    act = np.asarray(actual, dtype=object)
    if not (len(group_arr) == len(sel) == len(act) == len(w) == len(w2)):
        raise ValueError("groups, selected, actual and weights must have the same length")
    has_label = np.array([a is not None and not (isinstance(a, float) and np.isnan(a)) for a in act], dtype=bool)
    pos = np.zeros(len(act), dtype=bool)
    pos[has_label] = act[has_label].astype(bool)
    out: dict[Hashable, ConfusionCounts] = {}
    keys = [_key(g) for g in group_arr]
    for key in dict.fromkeys(keys):
        m = np.fromiter((k == key for k in keys), dtype=bool, count=len(keys))
        lab = m & has_label
        cells = (m, m & sel, lab & sel & pos, lab & sel & ~pos, lab & ~sel & pos, lab & ~sel & ~pos)
        values = [float(w[c].sum()) for c in cells]
        squares = [float(w2[c].sum()) for c in cells]
        # Unit weights (no sampling) leave ``squares`` unset: the counts are their own squares.
        out[key] = _cells(values, None if squares == values else _cells(squares))
    return out


def _key(value: Any) -> Hashable:
    """Group keys: missing values (None, NaN) become ``None`` so they form one group."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


@dataclass(frozen=True)
class GroupMetrics:
    """One group's rates with their Wilson intervals."""

    group: Hashable
    counts: ConfusionCounts
    selection_rate: Estimate
    accuracy: Estimate
    tpr: Estimate
    fpr: Estimate
    precision: Estimate


def group_metrics(group: Hashable, counts: ConfusionCounts, *, confidence: float = 0.95) -> GroupMetrics:
    """Rates of one group; a rate whose denominator is 0 is ``None``."""
    c = counts
    return GroupMetrics(
        group=group,
        counts=c,
        selection_rate=wilson(*_count_pair("selection_rate", c), confidence=confidence),
        accuracy=wilson(*_count_pair("accuracy", c), confidence=confidence),
        tpr=wilson(*_count_pair("tpr", c), confidence=confidence),
        fpr=wilson(*_count_pair("fpr", c), confidence=confidence),
        precision=wilson(*_count_pair("precision", c), confidence=confidence),
    )


# For each rate: the numerator and denominator, and whether a higher value serves a group better.
_RATES: dict[str, tuple[Any, Any, bool]] = {
    "selection_rate": (lambda c: c.selected, lambda c: c.n, True),
    "accuracy": (lambda c: c.tp + c.tn, lambda c: c.labeled, True),
    "tpr": (lambda c: c.tp, lambda c: c.tp + c.fn, True),
    "fpr": (lambda c: c.fp, lambda c: c.fp + c.tn, False),
    "precision": (lambda c: c.tp, lambda c: c.tp + c.fp, True),
}


@dataclass(frozen=True)
class Gap:
    """How far one group is from its reference on one rate: signed ``group - reference``."""

    metric: str
    group: Hashable
    reference: Hashable
    difference: Estimate
    ratio: Estimate

    @property
    def worse_by(self) -> float | None:
        """How much worse the group is served (positive = worse), by the rate's direction."""
        if self.difference.value is None:
            return None
        higher_is_better = _RATES[self.metric][2]
        return -self.difference.value if higher_is_better else self.difference.value


@dataclass(frozen=True)
class Spread:
    """An attribute-level difference (or ratio) and the two groups that define it."""

    value: float | None
    interval: Estimate = NONE
    groups: tuple[Hashable, Hashable] | None = None


@dataclass
class AttributeFairness:
    """Every group of one attribute, the parity measures over the eligible ones, and the gaps."""

    name: str
    groups: list[GroupMetrics]
    eligible: dict[Hashable, bool]
    label_eligible: dict[Hashable, bool]
    demographic_parity_difference: Spread
    demographic_parity_ratio: Spread
    equal_opportunity_difference: Spread
    equalized_odds_difference: Spread
    fpr_difference: Spread
    accuracy_difference: Spread
    gaps: dict[Hashable, dict[str, Gap]] = field(default_factory=dict)
    reference_group: Hashable | None = None


def _count_pair(metric: str, c: ConfusionCounts) -> tuple[float, float]:
    """A rate as (successes, observations): the weighted rate over its denominator's effective size."""
    num, den, _ = _RATES[metric]
    weighted = float(den(c))
    return effective_pair(float(num(c)), weighted, effective_size(weighted, float(den(c.sum_sq))))


def _rate(metric: str, c: ConfusionCounts) -> float | None:
    num, den, _ = _RATES[metric]
    return proportion(float(num(c)), float(den(c)))


def _spread(
    metric: str, counts: Mapping[Hashable, ConfusionCounts], reference: Hashable | None, confidence: float
) -> tuple[Spread, Spread]:
    """Difference and ratio of a rate over groups: largest minus smallest (or largest gap to the reference)."""
    rates = {g: r for g, c in counts.items() if (r := _rate(metric, c)) is not None}
    if reference is not None:
        if reference not in rates or len(rates) < 2:
            return Spread(None), Spread(None)
        others = [g for g in rates if g != reference]
        far = max(others, key=lambda g: abs(rates[g] - rates[reference]))
        hi, lo = (far, reference) if rates[far] >= rates[reference] else (reference, far)
        ratio_group = min(
            others,
            key=lambda g: _safe_ratio(min(rates[g], rates[reference]), max(rates[g], rates[reference])),
        )
        rhi, rlo = (ratio_group, reference) if rates[ratio_group] >= rates[reference] else (reference, ratio_group)
    else:
        if len(rates) < 2:
            return Spread(None), Spread(None)
        hi = max(rates, key=lambda g: rates[g])
        lo = min(rates, key=lambda g: rates[g])
        rhi, rlo = hi, lo
    (x_hi, n_hi), (x_lo, n_lo) = _count_pair(metric, counts[hi]), _count_pair(metric, counts[lo])
    diff = newcombe_difference(x_hi, n_hi, x_lo, n_lo, confidence=confidence)
    ratio_value = _safe_ratio(rates[rlo], rates[rhi])
    (x_rlo, n_rlo), (x_rhi, n_rhi) = _count_pair(metric, counts[rlo]), _count_pair(metric, counts[rhi])
    ratio_ci = ratio_interval(x_rlo, n_rlo, x_rhi, n_rhi, confidence=confidence)
    return (
        Spread(rates[hi] - rates[lo], diff, (hi, lo)),
        Spread(ratio_value, Estimate(ratio_value, ratio_ci.low, ratio_ci.high), (rlo, rhi)),
    )


def _safe_ratio(a: float, b: float) -> float:
    """``a / b`` with 0/0 as a perfect 1 (two groups both never selected are at parity)."""
    if b == 0:
        return 1.0 if a == 0 else float("inf")
    return a / b


def assess_attribute(
    name: str,
    counts: Mapping[Hashable, ConfusionCounts],
    *,
    min_group_size: float = 0,
    reference_group: Hashable | None = None,
    confidence: float = 0.95,
    family_wise: bool = False,
) -> AttributeFairness:
    """Per-group metrics, parity measures over the groups of at least ``min_group_size``, and each group's
    gap to its reference (the named group, or else the best-served eligible group for that rate).

    Group rates get ``confidence`` intervals.  With ``family_wise`` the intervals of the differences and
    ratios between groups are Bonferroni-widened over the ``k (k - 1) / 2`` pairs of eligible groups: the
    groups compared (largest against smallest, or against the best-served) are picked after looking at
    the data, so per-pair intervals would call chance gaps significant far more often than 1 - confidence.

    Selection-rate measures need ``min_group_size`` observations (``n_effective``: the rows logged, under
    sampled logging); label-based ones need that many labelled observations.  A named reference group
    that is too small or absent leaves the parity measures ``None``.
    """
    metrics = [group_metrics(g, c, confidence=confidence) for g, c in counts.items()]
    eligible = {g: _at_least(c.n_effective, min_group_size) and c.n > 0 for g, c in counts.items()}
    label_eligible = {
        g: eligible[g] and _at_least(c.labeled_effective, max(min_group_size, 1)) for g, c in counts.items()
    }
    sel_counts = {g: c for g, c in counts.items() if eligible[g]}
    lab_counts = {g: c for g, c in counts.items() if label_eligible[g]}
    pairs = max(len(sel_counts) * (len(sel_counts) - 1) // 2, 1)
    compare = 1 - (1 - confidence) / pairs if family_wise else confidence
    dp_diff, dp_ratio = _spread("selection_rate", sel_counts, reference_group, compare)
    tpr_diff, _ = _spread("tpr", lab_counts, reference_group, compare)
    fpr_diff, _ = _spread("fpr", lab_counts, reference_group, compare)
    acc_diff, _ = _spread("accuracy", lab_counts, reference_group, compare)
    eo = _worst(tpr_diff, fpr_diff)
    gaps: dict[Hashable, dict[str, Gap]] = {g: {} for g in counts}
    for metric, pool in (
        ("selection_rate", sel_counts),
        ("accuracy", lab_counts),
        ("tpr", lab_counts),
        ("fpr", lab_counts),
    ):
        ref = _reference_for(metric, pool, reference_group)
        if ref is None:
            continue
        rx, rn = _count_pair(metric, pool[ref])
        for g, c in pool.items():
            if g == ref:
                continue
            gx, gn = _count_pair(metric, c)
            gaps[g][metric] = Gap(
                metric,
                g,
                ref,
                newcombe_difference(gx, gn, rx, rn, confidence=compare),
                ratio_interval(gx, gn, rx, rn, confidence=compare),
            )
    return AttributeFairness(
        name=name,
        groups=metrics,
        eligible=eligible,
        label_eligible=label_eligible,
        demographic_parity_difference=dp_diff,
        demographic_parity_ratio=dp_ratio,
        equal_opportunity_difference=tpr_diff,
        equalized_odds_difference=eo,
        fpr_difference=fpr_diff,
        accuracy_difference=acc_diff,
        gaps=gaps,
        reference_group=reference_group,
    )


def _at_least(size: float, minimum: float) -> bool:
    """``size >= minimum`` up to rounding (an effective size of whole rows comes out of a division)."""
    return size >= minimum * (1 - 1e-9)


def _reference_for(metric: str, pool: Mapping[Hashable, ConfusionCounts], named: Hashable | None) -> Hashable | None:
    """The named reference group if it is in the pool, else the best-served group for this rate."""
    rates = {g: r for g, c in pool.items() if (r := _rate(metric, c)) is not None}
    if named is not None:
        return named if named in rates else None
    if len(rates) < 2:
        return None
    higher_is_better = _RATES[metric][2]
    return (max if higher_is_better else min)(rates, key=lambda g: rates[g])


def _worst(a: Spread, b: Spread) -> Spread:
    """Equalized odds: the larger of the TPR and FPR spreads (``None`` if either is unknown, as in Fairlearn)."""
    if a.value is None or b.value is None:
        return Spread(None)
    return a if a.value >= b.value else b
