"""Model performance from aggregates: classification metrics from weighted confusion counts, ROC AUC and
log loss from streamed scores, regression errors from streamed sums.  Everything is weighted and memory
stays bounded by the number of classes and score bins, not the number of predictions.  Under sampled
logging the metrics are weighted by ``1 / sample_rate`` while their intervals and standard errors count
the observations behind them (Kish's effective size, from the sums of squared weights kept alongside;
see :mod:`analyzers.stats.sampling`).

ROC AUC is computed from score histograms per class over fine bins: pairs whose scores fall in the same
bin count as ties (one half), so the result is exact when no bin holds both a positive and a negative
with different scores, and otherwise off by at most half the share of such pairs.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analyzers.stats.intervals import Estimate, wilson
from analyzers.stats.sampling import effective_pair, effective_size

EPS = float(np.finfo(np.float64).eps)
HIGHER_IS_BETTER = {"accuracy": True, "precision": True, "recall": True, "f1": True, "roc_auc": True, "r2": True}
LOWER_IS_BETTER = {"log_loss": False, "mae": False, "rmse": False, "mape": False}


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of the metric is better (errors and losses are not)."""
    return {**HIGHER_IS_BETTER, **LOWER_IS_BETTER}.get(metric, True)


def normalize_label(value: Any) -> Hashable:
    """One key for the same class however it was logged: ``1``, ``1.0`` and ``True`` match; ``None``/NaN is None."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return int(value)
    return value


def is_positive(value: Any, positive_label: Any) -> bool:
    """Whether a logged class is the positive one (compared after :func:`normalize_label`)."""
    v, p = normalize_label(value), normalize_label(positive_label)
    return v == p or (isinstance(v, str) != isinstance(p, str) and str(v) == str(p))


@dataclass(frozen=True)
class ClassificationMetrics:
    """Accuracy (with its Wilson interval), precision, recall and F1 (binary or macro-averaged).

    ``n`` is the weighted number of labelled predictions, ``n_effective`` the observations behind it; the
    ``*_counts`` pairs are (successes, observations) for intervals and tests: the weighted proportion over
    its denominator's effective size.
    """

    n: float
    accuracy: Estimate
    precision: float | None
    recall: float | None
    f1: float | None
    average: str
    classes: list[Hashable]
    precision_counts: tuple[float, float] | None = None  # (true positives, predicted positives), binary only
    recall_counts: tuple[float, float] | None = None  # (true positives, actual positives), binary only
    n_effective: float = 0.0
    accuracy_counts: tuple[float, float] = (0.0, 0.0)  # (correct, labelled)


def classification_metrics(
    confusion: Mapping[tuple[Any, Any], float],
    *,
    positive_label: Any = 1,
    confidence: float = 0.95,
    squares: Mapping[tuple[Any, Any], float] | None = None,
) -> ClassificationMetrics:
    """Metrics from weighted counts keyed by ``(prediction, label)``; ``squares`` holds each cell's sum of
    squared weights (``None``: the counts are unweighted), for the intervals' effective sizes.

    Binary (precision/recall/F1 of ``positive_label``) when at most two classes occur and the positive
    label is one of them; otherwise macro averages over every class seen in predictions or labels, as
    scikit-learn's ``average="macro"``.  A ratio with a zero denominator is ``None``.
    """
    cells: dict[tuple[Hashable, Hashable], float] = {}
    cells_sq: dict[tuple[Hashable, Hashable], float] = {}
    for (pred, label), w in confusion.items():
        key = (normalize_label(pred), normalize_label(label))
        if key[1] is None:
            continue
        cells[key] = cells.get(key, 0.0) + float(w)
        sq = float(w) if squares is None else float(squares[(pred, label)])
        cells_sq[key] = cells_sq.get(key, 0.0) + sq

    def observed(successes: float, keys: Any) -> tuple[float, float]:
        chosen = [k for k in cells if keys(k)]
        total = sum(cells[k] for k in chosen)
        return effective_pair(successes, total, effective_size(total, sum(cells_sq[k] for k in chosen)))

    n = sum(cells.values())
    correct = sum(w for (p, y), w in cells.items() if p == y)
    accuracy_counts = observed(correct, lambda k: True)
    classes = sorted({k for pair in cells for k in pair if k is not None}, key=lambda v: (str(type(v)), v))
    pos = next((c for c in classes if is_positive(c, positive_label)), None)
    precision_counts: tuple[float, float] | None
    recall_counts: tuple[float, float] | None
    if len(classes) <= 2 and pos is not None:
        p, r, f = _prf(cells, pos)
        average = "binary"
        tp = cells.get((pos, pos), 0.0)
        precision_counts = observed(tp, lambda k: k[0] == pos)
        recall_counts = observed(tp, lambda k: k[1] == pos)
    else:
        per_class = [_prf(cells, c, zero=True) for c in classes]
        p, r, f = (float(np.mean([x[i] for x in per_class])) if per_class else None for i in range(3))
        average = "macro"
        precision_counts = recall_counts = None
    return ClassificationMetrics(
        n,
        wilson(*accuracy_counts, confidence=confidence),
        p,
        r,
        f,
        average,
        classes,
        precision_counts,
        recall_counts,
        n_effective=accuracy_counts[1],
        accuracy_counts=accuracy_counts,
    )


def _prf(
    cells: Mapping[tuple[Hashable, Hashable], float], cls: Hashable, zero: bool = False
) -> tuple[float | None, float | None, float | None]:
    """Precision, recall, F1 of one class; undefined ratios are None (or 0 inside a macro average, as sklearn)."""
    tp = sum(w for (p, y), w in cells.items() if p == cls and y == cls)
    pred_pos = sum(w for (p, _), w in cells.items() if p == cls)
    actual_pos = sum(w for (_, y), w in cells.items() if y == cls)
    fill = 0.0 if zero else None
    precision = tp / pred_pos if pred_pos > 0 else fill
    recall = tp / actual_pos if actual_pos > 0 else fill
    f1 = 2 * tp / (pred_pos + actual_pos) if pred_pos + actual_pos > 0 else fill
    return precision, recall, f1


@dataclass
class ScoreAccumulator:
    """Streams (score, is-positive, weight) into per-class histograms over fixed edges and log-loss sums."""

    edges: np.ndarray
    pos: np.ndarray = field(init=False)
    neg: np.ndarray = field(init=False)
    loss_sum: float = 0.0
    loss_sq_sum: float = 0.0
    weight_sum: float = 0.0
    weight_sq_sum: float = 0.0
    pos_sq: float = 0.0  # squared weights of the positives and negatives: their effective numbers
    neg_sq: float = 0.0
    outside_unit: bool = False

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=float)
        if self.edges.ndim != 1 or len(self.edges) < 2 or np.any(np.diff(self.edges) <= 0):
            raise ValueError("score edges must be at least two strictly increasing numbers")
        self.pos = np.zeros(len(self.edges) - 1)
        self.neg = np.zeros(len(self.edges) - 1)

    @classmethod
    def for_range(cls, low: float, high: float, *, bins: int = 20_000) -> ScoreAccumulator:
        """Fine bins over ``[low, high]`` (``[0, 1]`` for probabilities)."""
        if not high > low:
            high = low + 1.0
        return cls(np.linspace(low, high, bins + 1))

    def add(self, scores: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Add one chunk; rows with a missing score are skipped."""
        s = np.asarray(scores, dtype=float)
        y = np.asarray(positive, dtype=bool)
        w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=float)
        ok = np.isfinite(s)
        s, y, w = s[ok], y[ok], w[ok]
        idx = np.clip(np.searchsorted(self.edges, s, side="right") - 1, 0, len(self.pos) - 1)
        self.pos += np.bincount(idx[y], weights=w[y], minlength=len(self.pos))
        self.neg += np.bincount(idx[~y], weights=w[~y], minlength=len(self.neg))
        if len(s) and (s.min() < 0 or s.max() > 1):
            self.outside_unit = True
        p = np.clip(s, EPS, 1 - EPS)
        loss = -np.where(y, np.log(p), np.log1p(-p))
        self.loss_sum += float((w * loss).sum())
        self.loss_sq_sum += float((w * loss * loss).sum())
        self.weight_sum += float(w.sum())
        self.weight_sq_sum += float((w * w).sum())
        self.pos_sq += float((w[y] ** 2).sum())
        self.neg_sq += float((w[~y] ** 2).sum())

    def roc_auc(self) -> float | None:
        """Area under the ROC curve (ties within a bin count one half); None without both classes."""
        total_pos, total_neg = self.pos.sum(), self.neg.sum()
        if total_pos <= 0 or total_neg <= 0:
            return None
        neg_below = np.concatenate(([0.0], np.cumsum(self.neg)[:-1]))
        return float((self.pos * (neg_below + 0.5 * self.neg)).sum() / (total_pos * total_neg))

    def roc_auc_se(self) -> float | None:
        """Standard error of the AUC by Hanley and McNeil (1982), for comparing two windows (positives and
        negatives counted as their effective numbers)."""
        auc = self.roc_auc()
        if auc is None:
            return None
        n_pos = effective_size(float(self.pos.sum()), self.pos_sq)
        n_neg = effective_size(float(self.neg.sum()), self.neg_sq)
        q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
        var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
        return math.sqrt(max(var, 0.0))

    def log_loss_se(self) -> float | None:
        """Standard error of the mean log loss (the spread of per-row losses over the square root of the
        effective n)."""
        mean = self.log_loss()
        if mean is None:
            return None
        n = effective_size(self.weight_sum, self.weight_sq_sum)
        return math.sqrt(max(self.loss_sq_sum / self.weight_sum - mean * mean, 0.0) / n)

    def log_loss(self) -> float | None:
        """Mean cross-entropy of the scores as probabilities of the positive class (None outside [0, 1])."""
        if self.outside_unit or self.weight_sum <= 0:
            return None
        return self.loss_sum / self.weight_sum


@dataclass
class RegressionAccumulator:
    """Streams (prediction, label, weight) into the sums MAE, RMSE, MAPE and R² need (Chan's merge for R²)."""

    weight: float = 0.0
    weight_sq: float = 0.0
    abs_error: float = 0.0
    sq_error: float = 0.0
    pct_error: float = 0.0
    quartic_error: float = 0.0
    pct_sq_error: float = 0.0
    mean_y: float = 0.0
    m2_y: float = 0.0

    def add(self, predictions: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Add one chunk; rows where either value is missing or not finite are skipped."""
        p = np.asarray(predictions, dtype=float)
        y = np.asarray(labels, dtype=float)
        w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=float)
        ok = np.isfinite(p) & np.isfinite(y) & np.isfinite(w)
        p, y, w = p[ok], y[ok], w[ok]
        cw = float(w.sum())
        if cw <= 0:
            return
        err = y - p
        self.weight_sq += float((w * w).sum())
        self.abs_error += float((w * np.abs(err)).sum())
        self.sq_error += float((w * err * err).sum())
        pct = np.abs(err) / np.maximum(np.abs(y), EPS)
        self.pct_error += float((w * pct).sum())
        self.quartic_error += float((w * err**4).sum())
        self.pct_sq_error += float((w * pct * pct).sum())
        c_mean = float((w * y).sum() / cw)
        c_m2 = float((w * (y - c_mean) ** 2).sum())
        total = self.weight + cw
        delta = c_mean - self.mean_y
        self.m2_y += c_m2 + delta * delta * self.weight * cw / total
        self.mean_y += delta * cw / total
        self.weight = total

    @property
    def effective(self) -> float:
        """The observations behind the weighted sums."""
        return effective_size(self.weight, self.weight_sq)

    def metrics(self) -> dict[str, float | None]:
        """MAE, RMSE, MAPE (a fraction, as scikit-learn) and R² (None when the labels do not vary)."""
        if self.weight <= 0:
            return {"mae": None, "rmse": None, "mape": None, "r2": None}
        return {
            "mae": self.abs_error / self.weight,
            "rmse": math.sqrt(self.sq_error / self.weight),
            "mape": self.pct_error / self.weight,
            "r2": 1 - self.sq_error / self.m2_y if self.m2_y > 0 else None,
        }

    def standard_errors(self) -> dict[str, float | None]:
        """Standard errors of the metrics, for comparing two windows: of the means for MAE, MAPE and the
        squared error (over the effective n), then by the delta method for RMSE (``se(MSE) / 2 RMSE``) and
        R² (``se(MSE) / var(y)``)."""
        w = self.weight
        if w <= 0:
            return {"mae": None, "rmse": None, "mape": None, "r2": None}
        n = self.effective
        mae, mse, mape = self.abs_error / w, self.sq_error / w, self.pct_error / w
        se_mae = math.sqrt(max(mse - mae * mae, 0.0) / n)
        se_mse = math.sqrt(max(self.quartic_error / w - mse * mse, 0.0) / n)
        se_mape = math.sqrt(max(self.pct_sq_error / w - mape * mape, 0.0) / n)
        return {
            "mae": se_mae,
            "rmse": se_mse / (2 * math.sqrt(mse)) if mse > 0 else None,
            "mape": se_mape,
            "r2": se_mse / (self.m2_y / w) if self.m2_y > 0 else None,
        }
