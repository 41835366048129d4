"""Weighted counts give the estimates, the rows observed give the uncertainty (``analyzers.stats.sampling``).

Rows logged at 10% weigh 10: every test, interval and standard error on them must equal the unweighted
one on the same rows, while every rate, share and metric stays what the weighted counts say.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analyzers.stats.drift import missing_rate_test
from analyzers.stats.drift_methods import categorical_drift
from analyzers.stats.estimation import Cells, estimate_metrics
from analyzers.stats.fairness import assess_attribute, confusion_by_group, group_metrics
from analyzers.stats.performance import RegressionAccumulator, ScoreAccumulator, classification_metrics
from analyzers.stats.sampling import SampleSize, effective_counts, row_weights, weights_from_rates


def test_weights_are_inverse_rates_and_one_where_the_rate_is_unusable() -> None:
    weights = weights_from_rates(np.array([0.1, 0.5, 1.0, np.nan, 0.0, 2.0]))
    assert weights.tolist() == pytest.approx([10.0, 2.0, 1.0, 1.0, 1.0, 1.0])
    assert row_weights(pd.DataFrame({"sample_rate": [0.25, None]})).tolist() == [4.0, 1.0]
    assert row_weights(pd.DataFrame({"x": [1, 2]})).tolist() == [1.0, 1.0]


def test_kish_effective_size() -> None:
    same = SampleSize.of(np.full(50, 10.0))
    assert (same.weighted, same.rows, same.effective) == (500.0, 50.0, pytest.approx(50.0))
    mixed = SampleSize.of(np.array([1.0] * 50 + [10.0] * 50))
    assert mixed.effective == pytest.approx(550**2 / (50 + 5000))
    assert mixed.effective < mixed.rows
    assert (same + mixed).rows == 150.0
    assert mixed.scale * mixed.weighted == pytest.approx(mixed.effective)
    assert effective_counts(np.array([30.0, 70.0]), 10.0).tolist() == pytest.approx([3.0, 7.0])


def test_categorical_drift_tests_the_rows_observed_and_measures_the_weighted_shares() -> None:
    ref = {"a": 60.0, "b": 40.0}
    cur = {"a": 52.0, "b": 48.0}
    plain = categorical_drift("c", ref, cur)
    sampled = categorical_drift(
        "c",
        {k: 10 * v for k, v in ref.items()},
        {k: 10 * v for k, v in cur.items()},
        ref_effective=100.0,
        cur_effective=100.0,
    )
    assert sampled.p_value == pytest.approx(plain.p_value)
    assert sampled.effect_size == pytest.approx(plain.effect_size)
    assert sampled.effect_size_noise == pytest.approx(plain.effect_size_noise)
    assert (sampled.n_cur, sampled.n_cur_effective) == (1000.0, 100.0)
    inflated = categorical_drift("c", {k: 10 * v for k, v in ref.items()}, {k: 10 * v for k, v in cur.items()})
    assert inflated.p_value < plain.p_value / 100  # weighted counts as observations: what the bug did


def test_missing_rate_test_counts_the_rows_observed() -> None:
    plain = missing_rate_test(missing_ref=5, n_ref=100, missing_cur=12, n_cur=100)
    sampled = missing_rate_test(
        missing_ref=50, n_ref=1000, missing_cur=120, n_cur=1000, n_ref_effective=100, n_cur_effective=100
    )
    assert sampled.p_value == pytest.approx(plain.p_value)
    assert sampled.rate_cur == pytest.approx(0.12)


def test_fairness_intervals_count_each_groups_rows_observed() -> None:
    groups = ["a"] * 200 + ["b"] * 200
    rng = np.random.default_rng(0)
    selected = rng.random(400) < 0.4
    actual = list(rng.random(400) < 0.5)
    plain = confusion_by_group(groups, selected, actual)
    sampled = confusion_by_group(groups, selected, actual, np.full(400, 10.0))
    assert plain["a"].squares is None
    assert sampled["a"].n == 2000.0
    assert sampled["a"].n_effective == pytest.approx(200.0)
    for name in ("selection_rate", "tpr", "fpr", "accuracy", "precision"):
        p, s = getattr(group_metrics("a", plain["a"]), name), getattr(group_metrics("a", sampled["a"]), name)
        assert (s.value, s.low, s.high) == pytest.approx((p.value, p.low, p.high)), name
    gap_plain = assess_attribute("g", plain).demographic_parity_difference.interval
    gap_sampled = assess_attribute("g", sampled).demographic_parity_difference.interval
    assert (gap_sampled.low, gap_sampled.high) == pytest.approx((gap_plain.low, gap_plain.high))
    summed = sampled["a"] + sampled["b"]
    assert summed.n_effective == pytest.approx(400.0)


def test_min_group_size_counts_rows_observed() -> None:
    counts = confusion_by_group(["a"] * 50 + ["b"] * 150, [True] * 200, [None] * 200, np.full(200, 10.0))
    result = assess_attribute("g", counts, min_group_size=100)
    assert result.eligible == {"a": False, "b": True}  # a stands for 500 predictions but 50 were observed


def test_classification_intervals_count_the_rows_observed() -> None:
    cells = {(1, 1): 40.0, (1, 0): 10.0, (0, 1): 15.0, (0, 0): 35.0}
    plain = classification_metrics(cells)
    sampled = classification_metrics(
        {k: 10 * v for k, v in cells.items()}, squares={k: 100 * v for k, v in cells.items()}
    )
    assert (sampled.accuracy.low, sampled.accuracy.high) == pytest.approx((plain.accuracy.low, plain.accuracy.high))
    assert sampled.precision_counts == pytest.approx(plain.precision_counts)
    assert sampled.recall_counts == pytest.approx(plain.recall_counts)
    assert (sampled.n, sampled.n_effective) == (1000.0, pytest.approx(100.0))


def test_score_and_regression_standard_errors_count_the_rows_observed() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(500)
    positive = rng.random(500) < scores
    plain, sampled = ScoreAccumulator.for_range(0, 1), ScoreAccumulator.for_range(0, 1)
    plain.add(scores, positive)
    sampled.add(scores, positive, np.full(500, 10.0))
    assert sampled.roc_auc() == pytest.approx(plain.roc_auc())
    assert sampled.roc_auc_se() == pytest.approx(plain.roc_auc_se())
    assert sampled.log_loss_se() == pytest.approx(plain.log_loss_se())
    truth = rng.normal(size=500)
    guess = truth + rng.normal(scale=0.3, size=500)
    flat, weighted = RegressionAccumulator(), RegressionAccumulator()
    flat.add(guess, truth)
    weighted.add(guess, truth, np.full(500, 10.0))
    assert weighted.standard_errors() == pytest.approx(flat.standard_errors())
    assert weighted.effective == pytest.approx(500.0)


def test_cbpe_standard_errors_count_the_rows_observed() -> None:
    p = np.linspace(0.05, 0.95, 10)
    positive, negative = np.full(10, 8.0), np.full(10, 12.0)
    plain = estimate_metrics(Cells(p, positive, negative))
    sampled = estimate_metrics(Cells(p, positive * 10, negative * 10, positive * 100, negative * 100))
    for name, estimate in plain.items():
        # the AUC leaves out each prediction's pair with itself, fewer of the pairs among 10 times the traffic
        tolerance = 2e-3 if name == "roc_auc" else 1e-9
        assert sampled[name].value == pytest.approx(estimate.value, rel=tolerance), name
        assert sampled[name].se == pytest.approx(estimate.se, rel=tolerance), name
