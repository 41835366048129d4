"""CBPE and calibration against hand-computed expectations, enumeration over every labelling, and scikit-learn."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from analyzers.stats.calibration import calibrate, expected_calibration_error, fit_calibrator
from analyzers.stats.estimation import (
    METRICS,
    Cells,
    bin_predictions,
    cell_probabilities,
    cells_from_rows,
    estimate_metrics,
    realized_metrics,
)

# Five calibrated scores, predicted positive from 0.5: E[TP] = 0.7 + 0.9, E[FP] = 0.3 + 0.1,
# E[FN] = 0.1 + 0.2 + 0.4, E[TN] = 0.9 + 0.8 + 0.6.
SCORES = np.array([0.1, 0.2, 0.4, 0.7, 0.9])
PREDICTED = SCORES >= 0.5


def _row_cells(scores: np.ndarray, predicted: np.ndarray) -> Cells:
    return Cells(scores, predicted.astype(float), (~predicted).astype(float))


def test_perfectly_calibrated_scores_give_the_hand_computed_expected_confusion_matrix() -> None:
    est = estimate_metrics(_row_cells(SCORES, PREDICTED))
    assert est["accuracy"].value == pytest.approx((1.6 + 2.3) / 5)
    assert est["precision"].value == pytest.approx(1.6 / 2)
    assert est["recall"].value == pytest.approx(1.6 / (1.6 + 0.7))
    assert est["f1"].value == pytest.approx(2 * 1.6 / (2 * 1.6 + 0.4 + 0.7))
    # ROC AUC: expected ordered (positive, negative) pairs over expected pairs, a prediction never paired with itself.
    p = SCORES
    ordered = sum(p[i] * (1 - p[j]) for i in range(5) for j in range(5) if i != j and p[i] > p[j])
    pairs = sum(p[i] * (1 - p[j]) for i in range(5) for j in range(5) if i != j)
    assert est["roc_auc"].value == pytest.approx(ordered / pairs)


def _every_labelling(scores: np.ndarray, predicted: np.ndarray):
    """Each labelling of the rows with its probability when each label is Bernoulli(score)."""
    for labels in itertools.product([False, True], repeat=len(scores)):
        y = np.array(labels)
        yield y, float(np.prod(np.where(y, scores, 1 - scores)))


def test_accuracy_and_precision_are_the_exact_expectation_and_standard_deviation() -> None:
    est = estimate_metrics(_row_cells(SCORES, PREDICTED))
    rows = np.arange(len(SCORES))[None, :]
    for name in ("accuracy", "precision"):
        values, weights = [], []
        for y, prob in _every_labelling(SCORES, PREDICTED):
            tp, fp = (PREDICTED & y).astype(float), (PREDICTED & ~y).astype(float)
            fn, tn = (~PREDICTED & y).astype(float), (~PREDICTED & ~y).astype(float)
            values.append(float(realized_metrics(tp[rows], fp[rows], fn[rows], tn[rows], metrics=[name])[name][0]))
            weights.append(prob)
        mean = np.average(values, weights=weights)
        sd = np.sqrt(np.average((np.array(values) - mean) ** 2, weights=weights))
        assert est[name].value == pytest.approx(mean)
        assert est[name].se == pytest.approx(sd)


def test_intervals_cover_the_realized_metric_when_scores_are_calibrated() -> None:
    rng = np.random.default_rng(3)
    n, draws = 2000, 400
    scores = np.sort(rng.beta(0.6, 0.6, n))
    predicted = scores >= 0.5
    est = estimate_metrics(_row_cells(scores, predicted))
    y = rng.random((draws, n)) < scores
    realized = realized_metrics(
        (predicted & y).astype(float), (predicted & ~y).astype(float), (~predicted & y).astype(float),
        (~predicted & ~y).astype(float),
    )  # fmt: skip
    for name in METRICS:
        inside = (realized[name] >= est[name].lower) & (realized[name] <= est[name].upper)
        assert 0.92 <= inside.mean() <= 0.98, (name, inside.mean())
        assert abs(realized[name].mean() - est[name].value) < 3 * est[name].se / np.sqrt(draws) + 2e-3, name


def test_realized_metrics_match_scikit_learn_with_tied_scores() -> None:
    rng = np.random.default_rng(1)
    scores = np.round(rng.random(3000), 2)
    y = rng.random(3000) < scores
    predicted = scores >= 0.5
    edges = np.unique(scores)
    tp, fn = bin_predictions(scores[y], predicted[y], edges)
    fp, tn = bin_predictions(scores[~y], predicted[~y], edges)
    got = realized_metrics(tp, fp, fn, tn)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, scores))
    assert got["accuracy"] == pytest.approx(accuracy_score(y, predicted))
    assert got["precision"] == pytest.approx(precision_score(y, predicted))
    assert got["recall"] == pytest.approx(recall_score(y, predicted))
    assert got["f1"] == pytest.approx(f1_score(y, predicted))


def test_binned_cells_give_the_per_row_estimate_when_each_cell_holds_one_score() -> None:
    rng = np.random.default_rng(2)
    scores = np.round(rng.random(5000), 2)
    predicted = scores >= 0.3
    order = np.argsort(scores, kind="stable")
    per_row = estimate_metrics(_row_cells(scores[order], predicted[order]))
    edges = np.unique(scores)
    cells = cells_from_rows(scores, scores, predicted, edges)
    binned = estimate_metrics(cells)
    for name in ("accuracy", "precision", "recall", "f1"):
        assert binned[name].value == pytest.approx(per_row[name].value)
    # Rows of one score are tied for the AUC in cells, ordered in the per-row form: close, not equal.
    assert binned["roc_auc"].value == pytest.approx(per_row["roc_auc"].value, abs=0.01)
    probability = cell_probabilities(edges, scores, scores, lambda s: s)
    assert np.allclose(probability[1:], edges)  # a cell of one score takes exactly that score's probability


def test_undefined_metrics_are_none_never_zero() -> None:
    est = estimate_metrics(Cells(np.array([0.2, 0.4]), np.zeros(2), np.ones(2)))  # nothing predicted positive
    assert est["precision"].value is None
    assert est["precision"].lower is None
    assert est["accuracy"].value == pytest.approx(0.7)
    assert estimate_metrics(Cells(np.zeros(2), np.ones(2), np.ones(2)))["roc_auc"].value is None


def test_unknown_metric_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        estimate_metrics(_row_cells(SCORES, PREDICTED), metrics=["auc"])


# ---- calibration ------------------------------------------------------------------------------
def test_auto_keeps_calibrated_scores_as_they_are() -> None:
    rng = np.random.default_rng(4)
    scores = rng.random(8000)
    y = rng.random(8000) < scores
    result = calibrate(scores, y)
    assert result.method == "none"
    assert result.ece < 0.03
    assert [c.method for c in result.candidates] == ["none", "platt", "isotonic"]


def _overconfident(p: np.ndarray) -> np.ndarray:
    """Scores three times too sure of themselves (logits tripled): a logistic curve on the logit undoes it."""
    return 1 / (1 + np.exp(-3 * np.log(p / (1 - p))))


@pytest.mark.parametrize(
    ("distort", "expected"), [(_overconfident, {"platt"}), (lambda p: p**3, {"platt", "isotonic"})]
)
def test_auto_repairs_miscalibrated_scores(distort, expected: set[str]) -> None:
    rng = np.random.default_rng(5)
    truth = rng.random(8000)
    y = rng.random(8000) < truth
    scores = distort(truth)
    result = calibrate(scores, y)
    assert result.method in expected
    assert expected_calibration_error(scores, y) > 0.05  # the raw scores were off
    assert result.ece < 0.03  # the kept map repairs them on rows it did not see
    assert np.abs(result.calibrator(scores) - truth).mean() < 0.03


def test_platt_on_logits_can_be_the_identity_and_isotonic_is_monotone() -> None:
    rng = np.random.default_rng(6)
    scores = rng.random(20000)
    y = rng.random(20000) < scores
    platt = fit_calibrator("platt", scores, y)
    assert platt(np.array([0.1, 0.5, 0.9])) == pytest.approx([0.1, 0.5, 0.9], abs=0.02)
    iso = fit_calibrator("isotonic", scores, y)
    assert np.all(np.diff(iso(np.linspace(-1, 2, 200))) >= 0)
    assert iso(np.array([-5.0, 5.0])).tolist() == [iso(np.array([0.0]))[0], iso(np.array([1.0]))[0]]


def test_calibration_refuses_what_it_cannot_fit() -> None:
    with pytest.raises(ValueError, match="at least 5 positives"):
        calibrate(np.array([0.1, 0.2, 0.9]), np.array([False, False, True]))
    with pytest.raises(ValueError, match="needs scores in"):
        calibrate(np.linspace(-3, 3, 100), np.arange(100) % 2 == 0, method="none")
    margins = np.linspace(-3, 3, 400)
    assert calibrate(margins, np.arange(400) % 3 == 0).method in ("platt", "isotonic")  # 'none' is not a candidate
