"""Performance statistics against scikit-learn on the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from analyzers.stats.performance import (
    RegressionAccumulator,
    ScoreAccumulator,
    classification_metrics,
    is_positive,
    normalize_label,
)


def _confusion(pred, label, w):
    out: dict = {}
    for p, y, wi in zip(pred, label, w, strict=True):
        out[(p, y)] = out.get((p, y), 0.0) + wi
    return out


@pytest.mark.parametrize("weighted", [False, True])
def test_binary_classification_matches_sklearn(weighted: bool) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    p = np.where(rng.random(5000) < 0.8, y, 1 - y)
    w = rng.uniform(0.5, 5, 5000) if weighted else np.ones(5000)
    m = classification_metrics(_confusion(p.tolist(), y.tolist(), w.tolist()), positive_label=1)
    assert m.average == "binary"
    assert m.accuracy.value == pytest.approx(accuracy_score(y, p, sample_weight=w))
    assert m.precision == pytest.approx(precision_score(y, p, sample_weight=w))
    assert m.recall == pytest.approx(recall_score(y, p, sample_weight=w))
    assert m.f1 == pytest.approx(f1_score(y, p, sample_weight=w))
    assert m.accuracy.low < m.accuracy.value < m.accuracy.high


def test_multiclass_macro_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.choice(["a", "b", "c"], 3000)
    p = np.where(rng.random(3000) < 0.6, y, rng.choice(["a", "b", "c", "d"], 3000))
    m = classification_metrics(_confusion(p.tolist(), y.tolist(), [1.0] * 3000), positive_label="a")
    assert m.average == "macro"
    with np.errstate(all="ignore"):
        assert m.precision == pytest.approx(precision_score(y, p, average="macro", zero_division=0))
        assert m.recall == pytest.approx(recall_score(y, p, average="macro", zero_division=0))
        assert m.f1 == pytest.approx(f1_score(y, p, average="macro", zero_division=0))


def test_undefined_precision_is_none() -> None:
    m = classification_metrics({(0, 0): 10.0, (0, 1): 5.0}, positive_label=1)
    assert m.precision is None
    assert m.recall == 0.0
    assert m.accuracy.value == pytest.approx(10 / 15)


def test_labels_match_across_types() -> None:
    assert normalize_label(1.0) == normalize_label(True) == normalize_label(np.int64(1)) == 1
    assert normalize_label(float("nan")) is None
    assert is_positive("1", 1)
    assert is_positive(1.0, "1")
    assert not is_positive(0, 1)


@pytest.mark.parametrize("weighted", [False, True])
def test_scores_match_sklearn(weighted: bool) -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 20000)
    s = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    w = rng.uniform(0.5, 3, len(y)) if weighted else None
    acc = ScoreAccumulator.for_range(0.0, 1.0)
    for chunk in np.array_split(np.arange(len(y)), 7):
        acc.add(s[chunk], y[chunk] == 1, None if w is None else w[chunk])
    assert acc.roc_auc() == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-4)
    assert acc.log_loss() == pytest.approx(log_loss(y, s, sample_weight=w), rel=1e-9)


def test_auc_exact_on_coarse_scores_and_undefined_cases() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2000)
    s = np.round(rng.random(2000) * 0.5 + 0.3 * y, 2)  # many ties
    acc = ScoreAccumulator.for_range(0.0, 1.0, bins=1000)
    acc.add(s, y == 1)
    assert acc.roc_auc() == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    one_class = ScoreAccumulator.for_range(0.0, 1.0)
    one_class.add(np.array([0.2, 0.3]), np.array([True, True]))
    assert one_class.roc_auc() is None
    logits = ScoreAccumulator.for_range(-5.0, 5.0)
    logits.add(np.array([-2.0, 3.0]), np.array([False, True]))
    assert logits.log_loss() is None
    assert logits.roc_auc() == 1.0


@pytest.mark.parametrize("weighted", [False, True])
def test_regression_matches_sklearn(weighted: bool) -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(100, 20, 10000)
    p = y + rng.normal(0, 5, 10000)
    w = rng.uniform(0.5, 3, len(y)) if weighted else None
    acc = RegressionAccumulator()
    for chunk in np.array_split(np.arange(len(y)), 5):
        acc.add(p[chunk], y[chunk], None if w is None else w[chunk])
    m = acc.metrics()
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p, sample_weight=w))
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, p, sample_weight=w)))
    assert m["mape"] == pytest.approx(mean_absolute_percentage_error(y, p, sample_weight=w))
    assert m["r2"] == pytest.approx(r2_score(y, p, sample_weight=w))


def test_regression_without_data_or_spread() -> None:
    assert RegressionAccumulator().metrics()["mae"] is None
    acc = RegressionAccumulator()
    acc.add(np.array([1.0, 2.0, np.nan]), np.array([3.0, 3.0, 1.0]))
    assert acc.metrics()["r2"] is None
    assert acc.metrics()["mae"] == pytest.approx(1.5)


def test_standard_errors() -> None:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 4000)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0.01, 0.99)
    acc = ScoreAccumulator.for_range(0.0, 1.0)
    acc.add(s, y == 1)
    loss = -np.where(y == 1, np.log(s), np.log1p(-s))
    assert acc.log_loss_se() == pytest.approx(loss.std() / np.sqrt(len(loss)))
    auc, n1, n0 = acc.roc_auc(), (y == 1).sum(), (y == 0).sum()
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    expected = np.sqrt((auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n1 * n0))
    assert acc.roc_auc_se() == pytest.approx(expected)
    reg = RegressionAccumulator()
    truth = rng.normal(10, 2, 3000)
    pred = truth + rng.normal(0, 1, 3000)
    reg.add(pred, truth)
    err = truth - pred
    se = reg.standard_errors()
    assert se["mae"] == pytest.approx(np.abs(err).std() / np.sqrt(3000))
    assert se["rmse"] == pytest.approx((err**2).std() / np.sqrt(3000) / (2 * np.sqrt((err**2).mean())))
