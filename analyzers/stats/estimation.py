"""Performance of a binary classifier without labels: Confidence-Based Performance Estimation (CBPE).

If a calibrated score ``p_i`` is the probability that prediction ``i`` is a positive, then, with the
labels unknown, each label is a Bernoulli(``p_i``) draw, and the confusion matrix of a window has
the expected cells (summing over its predictions)::

    E[TP] = Σ_{predicted 1} p_i      E[FP] = Σ_{predicted 1} (1 - p_i)
    E[FN] = Σ_{predicted 0} p_i      E[TN] = Σ_{predicted 0} (1 - p_i)

Accuracy and precision are linear in the labels (their predicted-positive count is known), so their
estimates are their exact expectations; recall and F1 are taken as ratios of the expected cells, as
CBPE does.  ROC AUC is the expected number of correctly ordered (positive, negative) pairs over the
expected number of such pairs, ``E[U] / E[P·N]``, from the expected positive and negative mass at each
score (a pair of equal scores counts one half; a prediction is never paired with itself).

Each estimate comes with the standard error of the *realized* metric around it under the same model
(the labels of this window's predictions drawn independently from their probabilities): exact for
accuracy and precision (sums of independent Bernoulli variables), by the delta method for recall,
F1 and ROC AUC (for the AUC, the linearisation of ``U / (P·N)`` in each label, as in DeLong's
structural components).  It is the sampling error of the metric at the window's size; the
calibration's own error is measured apart (:mod:`analyzers.stats.calibration`).

The window arrives as *cells* in ascending score order: a probability per cell and the weighted
number of predictions in it predicted positive and negative.  A cell may be one prediction, one
distinct score, or a narrow bin of scores (members of a cell count as tied for the AUC), so a window
of millions costs only its bins.

References: NannyML, "Confidence-based Performance Estimation (CBPE)", docs.nannyml.com (how it
works); E. R. DeLong, D. M. DeLong, D. L. Clarke-Pearson, "Comparing the areas under two or more
correlated ROC curves", Biometrics 44, 1988; J. A. Hanley, B. J. McNeil, "The meaning and use of
the area under a ROC curve", Radiology 143, 1982.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from analyzers.stats.binning import bin_counts
from analyzers.stats.intervals import z_value

METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")


@dataclass(frozen=True)
class MetricEstimate:
    """An estimated metric, the standard error of the realized value around it, and the interval."""

    value: float | None
    se: float | None
    lower: float | None
    upper: float | None


NO_ESTIMATE = MetricEstimate(None, None, None, None)


@dataclass(frozen=True)
class Cells:
    """A window in ascending score order: per cell a probability of the positive class and the weighted
    counts of predictions in it that were predicted positive and negative.

    ``positive_sq`` and ``negative_sq`` sum the squared weights (``None``: the counts are unweighted):
    a weighted count ``Σ w y`` of Bernoulli labels varies by ``Σ w² p (1 - p)``, so under sampled logging
    the standard errors follow the rows observed, not the traffic they stand for.
    """

    probability: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    positive_sq: np.ndarray | None = None
    negative_sq: np.ndarray | None = None

    def __post_init__(self) -> None:
        shapes = {np.shape(self.probability), np.shape(self.positive), np.shape(self.negative)}
        shapes |= {np.shape(a) for a in (self.positive_sq, self.negative_sq) if a is not None}
        if len(shapes) != 1:
            raise ValueError("probability, positive and negative must have one value per cell")

    @property
    def n(self) -> float:
        return float(np.sum(self.positive) + np.sum(self.negative))


def estimate_metrics(
    cells: Cells, *, metrics: Sequence[str] = METRICS, confidence: float = 0.95
) -> dict[str, MetricEstimate]:
    """CBPE's estimate of each metric over the cells, with its standard error and interval (see module doc)."""
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(sorted(unknown))}: expected some of {', '.join(METRICS)}")
    p = np.clip(np.asarray(cells.probability, dtype=float), 0.0, 1.0)
    pos = np.asarray(cells.positive, dtype=float)
    neg = np.asarray(cells.negative, dtype=float)
    z = z_value(confidence)
    n1, n0 = float(pos.sum()), float(neg.sum())
    n = n1 + n0
    tp, fn = float((pos * p).sum()), float((neg * p).sum())
    tn = float((neg * (1 - p)).sum())
    pos_sq = pos if cells.positive_sq is None else np.asarray(cells.positive_sq, dtype=float)
    neg_sq = neg if cells.negative_sq is None else np.asarray(cells.negative_sq, dtype=float)
    var_tp, var_fn = float((pos_sq * p * (1 - p)).sum()), float((neg_sq * p * (1 - p)).sum())
    out: dict[str, MetricEstimate] = {}
    for name in metrics:
        if name == "accuracy":
            value = (tp + tn) / n if n > 0 else None
            se = math.sqrt(var_tp + var_fn) / n if n > 0 else None
        elif name == "precision":
            value = tp / n1 if n1 > 0 else None
            se = math.sqrt(var_tp) / n1 if n1 > 0 else None
        elif name == "recall":
            total = tp + fn
            value = tp / total if total > 0 else None
            se = math.sqrt(fn * fn * var_tp + tp * tp * var_fn) / total**2 if total > 0 else None
        elif name == "f1":
            total = tp + fn + n1
            value = 2 * tp / total if total > 0 else None
            se = 2 * math.sqrt((n1 + fn) ** 2 * var_tp + tp * tp * var_fn) / total**2 if total > 0 else None
        else:
            value, se = _roc_auc(p, pos + neg, pos_sq + neg_sq)
        out[name] = _interval(value, se, z)
    return out


def _roc_auc(p: np.ndarray, w: np.ndarray, w_sq: np.ndarray) -> tuple[float | None, float | None]:
    """``E[U] / E[P·N]`` and the delta-method standard error of ``U / (P·N)`` (cells in score order; ``w_sq``
    the cells' squared weights)."""
    mass_pos, mass_neg = w * p, w * (1 - p)
    own = w * p * (1 - p)  # the expected pairs of a prediction with itself in a cell
    spread = w_sq * p * (1 - p)  # the variance of a cell's weighted positives
    mu_p, mu_n = float(mass_pos.sum()), float(mass_neg.sum())
    pairs = mu_p * mu_n - float(own.sum())
    if mu_p <= 0 or mu_n <= 0 or pairs <= 0:
        return None, None
    neg_below = np.cumsum(mass_neg) - mass_neg
    pos_above = mu_p - np.cumsum(mass_pos)
    ordered = float((mass_pos * (neg_below + 0.5 * mass_neg)).sum()) - 0.5 * float(own.sum())
    auc = ordered / pairs
    # d AUC / d y_k: a positive at cell k gains the negatives below it and loses the positives above it,
    # and changes P·N by N - P.
    gain = neg_below + 0.5 * mass_neg - pos_above - 0.5 * mass_pos
    slope = (gain - auc * (mu_n - mu_p)) / (mu_p * mu_n)
    return auc, math.sqrt(float((spread * slope * slope).sum()))


def _interval(value: float | None, se: float | None, z: float) -> MetricEstimate:
    if value is None or se is None:
        return NO_ESTIMATE
    return MetricEstimate(value, se, max(0.0, value - z * se), min(1.0, value + z * se))


def realized_metrics(
    tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray, *, metrics: Sequence[str] = METRICS
) -> dict[str, np.ndarray]:
    """Each metric from confusion counts per cell (cells in ascending score order on the last axis).

    Leading axes are kept, so one call scores many resamples; a metric that cannot be computed is NaN.
    """
    tp, fp, fn, tn = (np.asarray(a, dtype=float) for a in (tp, fp, fn, tn))
    s_tp, s_fp, s_fn, s_tn = (a.sum(axis=-1) for a in (tp, fp, fn, tn))
    n = s_tp + s_fp + s_fn + s_tn
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name in metrics:
            if name == "accuracy":
                out[name] = _nan_where_zero(s_tp + s_tn, n)
            elif name == "precision":
                out[name] = _nan_where_zero(s_tp, s_tp + s_fp)
            elif name == "recall":
                out[name] = _nan_where_zero(s_tp, s_tp + s_fn)
            elif name == "f1":
                out[name] = _nan_where_zero(2 * s_tp, 2 * s_tp + s_fp + s_fn)
            elif name == "roc_auc":
                positives, negatives = tp + fn, fp + tn
                below = np.cumsum(negatives, axis=-1) - negatives
                ordered = (positives * (below + 0.5 * negatives)).sum(axis=-1)
                out[name] = _nan_where_zero(ordered, positives.sum(axis=-1) * negatives.sum(axis=-1))
            else:
                raise ValueError(f"unknown metric {name!r}: expected one of {', '.join(METRICS)}")
    return out


def _nan_where_zero(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def bin_predictions(
    scores: np.ndarray, predicted_positive: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted counts of predictions predicted positive and negative per cell ``[underflow, bins..., overflow]``."""
    s = np.asarray(scores, dtype=float)
    flag = np.asarray(predicted_positive, dtype=bool)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=float)
    return bin_counts(s[flag], edges, w[flag]), bin_counts(s[~flag], edges, w[~flag])


def cells_from_rows(
    scores: np.ndarray,
    probabilities: np.ndarray,
    predicted_positive: np.ndarray,
    edges: np.ndarray,
    weights: np.ndarray | None = None,
) -> Cells:
    """Rows with their own probabilities gathered into cells over ``edges`` (a cell's weighted mean probability)."""
    s = np.asarray(scores, dtype=float)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=float)
    index = np.searchsorted(np.asarray(edges, dtype=float), s, side="right")
    size = len(edges) + 1
    mass = np.bincount(index, weights=w, minlength=size)
    summed = np.bincount(index, weights=w * np.asarray(probabilities, dtype=float), minlength=size)
    positive, negative = bin_predictions(s, predicted_positive, edges, w)
    positive_sq, negative_sq = bin_predictions(s, predicted_positive, edges, w * w)
    probability = np.where(mass > 0, summed / np.where(mass > 0, mass, 1.0), 0.0)
    return Cells(probability, positive, negative, positive_sq, negative_sq)


def cell_probabilities(
    edges: np.ndarray,
    reference_scores: np.ndarray,
    reference_probabilities: np.ndarray,
    calibrator: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """The probability of each cell ``[underflow, bins..., overflow]`` over ``edges``.

    A cell holding reference predictions takes their mean calibrated probability (exact for a cell of
    one distinct score); an empty cell takes the calibration at its middle (at the outer edge for
    underflow and overflow, beyond which no reference score was seen).
    """
    e = np.asarray(edges, dtype=float)
    s = np.asarray(reference_scores, dtype=float)
    index = np.searchsorted(e, s, side="right")
    size = len(e) + 1
    held = np.bincount(index, minlength=size).astype(float)
    summed = np.bincount(index, weights=np.asarray(reference_probabilities, dtype=float), minlength=size)
    where = np.concatenate([[e[0]], (e[:-1] + e[1:]) / 2, [e[-1]]])
    fallback = np.asarray(calibrator(where), dtype=float)
    return np.where(held > 0, summed / np.maximum(held, 1.0), fallback)
