"""Fairness statistics against Fairlearn's MetricFrame and parity functions, and the intervals against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, precision_score

from analyzers.stats.fairness import ConfusionCounts, assess_attribute, confusion_by_group
from analyzers.stats.intervals import newcombe_difference, ratio_interval, wilson


def _data(seed: int, weighted: bool):
    rng = np.random.default_rng(seed)
    n = 3000
    group = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    y_true = rng.integers(0, 2, size=n)
    bias = np.where(group == "a", 0.7, np.where(group == "b", 0.5, 0.35))
    y_pred = np.where(rng.random(n) < bias, y_true, 1 - y_true)
    y_pred = np.where(rng.random(n) < 0.2, 1, y_pred)
    w = rng.choice([1.0, 2.0, 10.0], size=n) if weighted else None
    return group, y_true, y_pred, w


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_fairlearn(seed: int, weighted: bool) -> None:
    group, y_true, y_pred, w = _data(seed, weighted)
    counts = confusion_by_group(group, y_pred == 1, y_true == 1, w)
    result = assess_attribute("g", counts)
    params = {"sample_weight": w} if weighted else None
    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "accuracy": accuracy_score,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "precision": precision_score,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=group,
        sample_params={k: params for k in ("selection_rate", "accuracy", "tpr", "fpr", "precision")}
        if weighted
        else None,
    )
    for gm in result.groups:
        for metric in ("selection_rate", "accuracy", "tpr", "fpr", "precision"):
            assert getattr(gm, metric).value == pytest.approx(frame.by_group.loc[gm.group, metric], abs=1e-12)
    kw = {"sample_weight": w} if weighted else {}
    assert result.demographic_parity_difference.value == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=group, **kw)
    )
    assert result.demographic_parity_ratio.value == pytest.approx(
        demographic_parity_ratio(y_true, y_pred, sensitive_features=group, **kw)
    )
    assert result.equalized_odds_difference.value == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=group, **kw)
    )
    assert result.equal_opportunity_difference.value == pytest.approx(
        equal_opportunity_difference(y_true, y_pred, sensitive_features=group, **kw)
    )


def test_reference_group_agrees_with_fairlearn_to_reference() -> None:
    group, y_true, y_pred, _ = _data(3, False)
    result = assess_attribute("g", confusion_by_group(group, y_pred == 1, y_true == 1), reference_group="b")
    frame = MetricFrame(metrics=selection_rate, y_true=y_true, y_pred=y_pred, sensitive_features=group)
    rates = frame.by_group
    assert result.demographic_parity_difference.value == pytest.approx(max(abs(rates - rates["b"])))
    assert result.demographic_parity_ratio.value == pytest.approx(
        min(min(r, rates["b"]) / max(r, rates["b"]) for r in rates)
    )
    assert result.gaps["a"]["selection_rate"].reference == "b"
    assert result.gaps["a"]["selection_rate"].difference.value == pytest.approx(rates["a"] - rates["b"])


def test_small_groups_take_no_part() -> None:
    counts = {
        "big1": ConfusionCounts(n=1000, selected=500, tp=400, fp=100, fn=100, tn=400),
        "big2": ConfusionCounts(n=1000, selected=450, tp=380, fp=70, fn=120, tn=430),
        "tiny": ConfusionCounts(n=5, selected=0, tp=0, fp=0, fn=3, tn=2),
    }
    result = assess_attribute("g", counts, min_group_size=100)
    assert result.eligible == {"big1": True, "big2": True, "tiny": False}
    assert result.demographic_parity_difference.value == pytest.approx(0.05)
    assert result.demographic_parity_difference.groups == ("big1", "big2")
    assert result.gaps["tiny"] == {}
    tiny = next(g for g in result.groups if g.group == "tiny")
    assert tiny.precision.value is None  # nothing selected: undefined, not 0
    assert tiny.selection_rate.value == 0.0


def test_unlabelled_rows_count_only_in_volume() -> None:
    counts = confusion_by_group(["a", "a", "a", "b"], [True, False, True, False], [True, None, float("nan"), False])
    assert counts["a"] == ConfusionCounts(n=3, selected=2, tp=1)
    assert counts["b"] == ConfusionCounts(n=1, tn=1)
    result = assess_attribute("g", counts)
    b = next(g for g in result.groups if g.group == "b")
    assert b.tpr.value is None
    assert b.fpr.value == 0.0


def test_wilson_known_values() -> None:
    # Newcombe (1998), table I: 81/263 -> 0.2553 to 0.3662 at 95%.
    est = wilson(81, 263)
    assert est.low == pytest.approx(0.2553, abs=1e-4)
    assert est.high == pytest.approx(0.3662, abs=1e-4)
    zero = wilson(0, 10)
    assert zero.low == 0.0
    assert zero.high == pytest.approx(0.2775, abs=1e-4)
    assert wilson(0, 0).value is None


def test_newcombe_known_values() -> None:
    # Newcombe (1998), table II example (56/70 vs 48/80): difference 0.2, method 10 gives 0.0524 to 0.3339.
    est = newcombe_difference(56, 70, 48, 80)
    assert est.value == pytest.approx(0.2)
    assert est.low == pytest.approx(0.0524, abs=1e-4)
    assert est.high == pytest.approx(0.3339, abs=1e-4)
    assert est.excludes_zero
    assert not newcombe_difference(5, 10, 4, 10).excludes_zero
    assert newcombe_difference(1, 0, 1, 10).value is None


def test_ratio_interval_katz() -> None:
    est = ratio_interval(30, 100, 60, 100)
    se = math.sqrt(1 / 30 - 1 / 100 + 1 / 60 - 1 / 100)
    assert est.value == pytest.approx(0.5)
    assert est.low == pytest.approx(0.5 * math.exp(-1.959964 * se), rel=1e-5)
    assert est.excludes_one
    assert ratio_interval(0, 100, 10, 100).low is None


def test_family_wise_intervals_keep_chance_gaps_between_equal_groups_rare() -> None:
    """Six groups with the same selection rate: the largest-minus-smallest gap is picked from the data,
    so per-pair intervals call it significant far too often; Bonferroni over the pairs keeps it near 5%."""
    from analyzers.stats.fairness import ConfusionCounts, assess_attribute

    rng = np.random.default_rng(0)
    runs, hits_pairwise, hits_family = 400, 0, 0
    for _ in range(runs):
        counts = {f"g{i}": ConfusionCounts(n=500.0, selected=float(rng.binomial(500, 0.1))) for i in range(6)}
        pairwise = assess_attribute("a", counts).demographic_parity_difference
        family = assess_attribute("a", counts, family_wise=True).demographic_parity_difference
        hits_pairwise += pairwise.interval.excludes_zero
        hits_family += family.interval.excludes_zero
    assert hits_family / runs <= 0.07
    assert hits_pairwise / runs > 2 * max(hits_family / runs, 0.02)
