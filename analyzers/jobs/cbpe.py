"""The estimation job for scored binary classifiers: CBPE on the store's windows.

Reference: a uniform sample of at most ``sample_size`` labelled predictions (score, prediction, label) gives
the calibration, the decision rule, the score cells and the reference's realized metrics with a bootstrap
interval (200 multinomial resamples of its cells, standard error about ``1/sqrt(n)``).

Windows: windows of one length on one grid (back-to-back hours, a single window) are read together by one
aggregate, the histogram of the score over the reference's score cells per window and logged class (the class
says whether a prediction was predicted positive, so no decision rule is assumed), and one count of labelled
predictions per window: work that grows with the windows and cells, not the predictions.  Other windows are
read from one pass over their rows.  Labelled predictions of a window, when at least ``min_labels`` have
arrived, give the realized metrics (one pass over them).
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd

from analyzers.config.models import EstimationConfig
from analyzers.findings.estimation import CalibrationCheck
from analyzers.jobs.estimator import (
    Accumulator,
    Estimator,
    Rows,
    TooFewLabels,
    WindowEstimate,
    finite,
    numeric,
    routed,
)
from analyzers.stats.binning import quantile_edges, quantile_levels
from analyzers.stats.calibration import Calibration, calibrate
from analyzers.stats.estimation import (
    Cells,
    bin_predictions,
    cell_probabilities,
    cells_from_rows,
    estimate_metrics,
    realized_metrics,
)
from analyzers.stats.performance import is_positive
from analyzers.stats.sampling import SampleSize, row_weights
from analyzers.store.base import PredictionReader, Query
from analyzers.timeutil import Window

SCORE_CELLS = 2000  # reference score quantiles that bound the cells (atoms of repeated scores get their own)
BOOTSTRAP = 200  # resamples of the reference for its interval
SEED = 0


def fit_classification(store: PredictionReader, query: Query, config: EstimationConfig) -> ClassificationEstimator:
    """Sample the reference's labelled predictions and fit CBPE on them."""
    columns = ["score", "prediction", "label", "sample_rate"]
    return fit_reference(store.sample(query, config.sample_size, seed=SEED, columns=columns), config)


class ClassificationEstimator(Estimator):
    """Calibration, decision rule, score cells and the reference's realized metrics."""

    task = "classification"
    columns = ("score", "prediction", "label", "sample_rate")

    def __init__(
        self,
        *,
        calibration: Calibration,
        threshold: float | None,
        edges: np.ndarray,
        probability: np.ndarray,
        realized: dict[str, float | None],
        interval: dict[str, tuple[float | None, float | None, float | None]],
        held_out: dict[str, dict[str, float | None]],
        n_sample: int,
        positive_label: str | int | float | bool,
    ) -> None:
        self.fitted = calibration
        self.decision_threshold = threshold
        self.edges = edges
        self.probability = probability  # per cell [underflow, bins..., overflow]
        self.realized = realized
        self.interval = interval  # (se, lower, upper)
        self.held_out = held_out  # CBPE with out-of-fold calibration against the realized value
        self.n_sample = n_sample
        self.positive_label = positive_label

    @property
    def cells(self) -> int:
        return len(self.edges) + 1

    def metrics(self, config: EstimationConfig) -> list[str]:
        return config.metrics_of(self.task)

    def reference(self, name: str) -> tuple[float | None, float | None, float | None, float | None]:
        se, low, high = self.interval.get(name, (None, None, None))
        return self.realized.get(name), se, low, high

    def higher_is_better(self, name: str) -> bool:
        return True

    def calibration(self, config: EstimationConfig) -> CalibrationCheck:
        c = self.fitted
        return CalibrationCheck(
            method=c.method,
            ece=c.ece,
            n=c.n,
            folds=c.folds,
            candidates=[{"method": m.method, "brier": m.brier, "se_vs_best": m.se_vs_best} for m in c.candidates],
            max_error=config.max_calibration_error,
            held_out=self.held_out,
        )

    def unusable(self, config: EstimationConfig) -> str | None:
        ece = self.fitted.ece
        if math.isfinite(ece) and ece <= config.max_calibration_error:
            return None
        return (
            f"calibration too poor to estimate: out-of-fold expected calibration error {ece:.3f}"
            f" > max_calibration_error {config.max_calibration_error:g} ({self.fitted.method})"
        )

    # ---- windows on one grid by aggregates -------------------------------------------------------
    def read_grid(
        self, store: PredictionReader, span: Query, bucket: timedelta, config: EstimationConfig
    ) -> list[WindowEstimate]:
        """Each bucket of the span from one aggregate: the score's histogram over the cells per bucket and
        logged class (the class says predicted positive or negative, so no decision rule is assumed); the
        labelled predictions per bucket from one volume count, and, where ``min_labels`` arrived, their rows."""
        hist = store.bucketed_histograms(span, "score", self.edges.tolist(), bucket=bucket, by="prediction")
        predicted = self.flags(pd.Series(hist.keys, dtype=object))
        positive = hist.counts[:, predicted, :].sum(axis=1)
        negative = hist.counts[:, ~predicted, :].sum(axis=1)
        positive_sq = hist.weight_sq[:, predicted, :].sum(axis=1)
        negative_sq = hist.weight_sq[:, ~predicted, :].sum(axis=1)
        labelled = store.volume(span.with_(has_label=True), bucket)["count"].to_numpy(dtype=float)
        sums = []
        for b in range(len(hist.starts)):
            one = _Sums(self)
            one.positive, one.negative, one.n_labeled = positive[b], negative[b], float(labelled[b])
            one.positive_sq, one.negative_sq = positive_sq[b], negative_sq[b]
            sums.append(one)
        realized = [b for b in range(len(sums)) if labelled[b] >= config.min_labels]
        if realized:
            starts = [hist.starts[b].to_pydatetime() for b in realized]
            windows = [Window(start, min(start + bucket, span.window.end)) for start in starts]
            read = span.with_(window=Window(windows[0].start, windows[-1].end), has_label=True)
            for i, rows in routed(store, read, windows, self):
                sums[realized[i]].add_realized(rows)
        return [s.result(config, source="aggregates") for s in sums]

    # ---- rows -----------------------------------------------------------------------------------
    def prepare(self, chunk: pd.DataFrame) -> Rows:
        s = numeric(chunk["score"])
        labelled = chunk["label"].notna().to_numpy()
        return {
            "cell": np.searchsorted(self.edges, s, side="right"),
            "scored": np.isfinite(s),
            "predicted": self.flags(chunk["prediction"]),
            "labelled": labelled,
            "positive": self.flags(chunk["label"]) & labelled,
            "weight": row_weights(chunk),
        }

    def accumulator(self) -> Accumulator:
        return _Sums(self)

    def flags(self, values: pd.Series) -> np.ndarray:
        """Whether each logged class is the positive one (decided once per distinct value)."""
        return _flags(values, self.positive_label)


class _Sums(Accumulator):
    """Weighted predictions per score cell, predicted positive and negative; labelled ones by outcome."""

    def __init__(self, estimator: ClassificationEstimator) -> None:
        size = estimator.cells
        self.estimator = estimator
        self.positive = np.zeros(size)
        self.negative = np.zeros(size)
        self.positive_sq = np.zeros(size)  # squared weights: the observations behind the weighted counts
        self.negative_sq = np.zeros(size)
        self.confusion = [np.zeros(size) for _ in range(4)]  # tp, fp, fn, tn
        self.n_labeled = 0.0

    def add(self, rows: Rows) -> None:
        size = self.estimator.cells
        scored, predicted, w = rows["scored"], rows["predicted"], rows["weight"]
        cell = rows["cell"]
        self.positive += np.bincount(cell[scored & predicted], w[scored & predicted], minlength=size)
        self.negative += np.bincount(cell[scored & ~predicted], w[scored & ~predicted], minlength=size)
        self.positive_sq += np.bincount(cell[scored & predicted], w[scored & predicted] ** 2, minlength=size)
        self.negative_sq += np.bincount(cell[scored & ~predicted], w[scored & ~predicted] ** 2, minlength=size)
        self.n_labeled += float(w[rows["labelled"]].sum())
        self.add_realized(rows)

    def add_realized(self, rows: Rows) -> None:
        """The labelled, scored rows' confusion counts per cell."""
        size = self.estimator.cells
        cell, w, predicted, y = rows["cell"], rows["weight"], rows["predicted"], rows["positive"]
        use = rows["scored"] & rows["labelled"]
        for total, where in zip(
            self.confusion, (predicted & y, predicted & ~y, ~predicted & y, ~predicted & ~y), strict=True
        ):
            picked = use & where
            total += np.bincount(cell[picked], w[picked], minlength=size)

    def result(self, config: EstimationConfig, source: str = "rows") -> WindowEstimate:
        fit = self.estimator
        names = fit.metrics(config)
        n_scored = float(self.positive.sum() + self.negative.sum())
        estimates = estimate_metrics(
            Cells(fit.probability, self.positive, self.negative, self.positive_sq, self.negative_sq),
            metrics=names,
            confidence=config.confidence,
        )
        realized: dict[str, float | None] = {}
        if self.n_labeled >= config.min_labels and sum(float(c.sum()) for c in self.confusion) > 0:
            realized = {k: finite(v) for k, v in realized_metrics(*self.confusion, metrics=names).items()}
        outside = self.positive[[0, -1]].sum() + self.negative[[0, -1]].sum()
        return WindowEstimate(
            n_labeled=self.n_labeled,
            n_scored=n_scored,
            outside=float(outside) / n_scored if n_scored > 0 else None,
            estimates=estimates,
            realized=realized,
            source=source,
        )


# ---- the reference -----------------------------------------------------------------------------
def fit_reference(sample: pd.DataFrame, config: EstimationConfig) -> ClassificationEstimator:
    """Calibration, decision rule, score cells and realized metrics from labelled reference predictions."""
    scores = numeric(sample["score"])
    keep = np.isfinite(scores) & sample["label"].notna().to_numpy()
    sample = sample[keep]
    s = scores[keep]
    y = _flags(sample["label"], config.positive_label)
    predicted = _flags(sample["prediction"], config.positive_label)
    w = row_weights(sample)
    # The store returns a sample in no set order; the folds must not depend on it (the same rows, from a
    # window or a file, give the same fit).
    order = np.lexsort((w, y, predicted, s))
    s, y, predicted, w = s[order], y[order], predicted[order], w[order]
    positives, negatives = int(y.sum()), int((~y).sum())
    if min(positives, negatives) < config.folds:
        raise TooFewLabels(
            f"the reference's labelled sample has {positives} positives and {negatives} negatives:"
            f" calibrating needs at least {config.folds} of each (folds)"
        )
    calibration = calibrate(s, y, w, method=config.calibration, folds=config.folds, seed=SEED)
    threshold = decision_threshold(s, predicted)
    edges = score_edges(s, threshold)
    probability = cell_probabilities(edges, s, calibration.calibrator(s), calibration.calibrator)
    counts = _confusion_cells(s, predicted, y, w, edges)
    realized = {k: finite(v) for k, v in realized_metrics(*counts).items()}
    held_cells = cells_from_rows(s, calibration.out_of_fold, predicted, edges, w)
    held_estimates = estimate_metrics(held_cells, confidence=config.confidence)
    return ClassificationEstimator(
        calibration=calibration,
        threshold=threshold,
        edges=edges,
        probability=probability,
        realized=realized,
        interval=_bootstrap(counts, max(round(SampleSize.of(w).effective), 1), config.confidence),
        held_out={m: {"estimated": held_estimates[m].value, "realized": realized[m]} for m in held_estimates},
        n_sample=len(s),
        positive_label=config.positive_label,
    )


def decision_threshold(scores: np.ndarray, predicted_positive: np.ndarray) -> float | None:
    """The score at which predictions turn positive, when every prediction follows one such threshold."""
    if predicted_positive.all() or not predicted_positive.any():
        return None
    threshold = float(scores[predicted_positive].min())
    return threshold if float(scores[~predicted_positive].max()) < threshold else None


def score_edges(scores: np.ndarray, threshold: float | None) -> np.ndarray:
    """Cell edges: the reference's score quantiles (a cell per repeated score) and the decision threshold."""
    edges = quantile_edges(list(np.quantile(scores, quantile_levels(SCORE_CELLS))), outer=True)
    return np.unique(np.concatenate([edges, [threshold] if threshold is not None else []]))


def _confusion_cells(
    s: np.ndarray, predicted: np.ndarray, y: np.ndarray, w: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted true positives, false positives, false negatives and true negatives per score cell."""
    tp, fn = bin_predictions(s[y], predicted[y], edges, w[y])
    fp, tn = bin_predictions(s[~y], predicted[~y], edges, w[~y])
    return tp, fp, fn, tn


def _bootstrap(
    counts: tuple[np.ndarray, ...], n: int, confidence: float
) -> dict[str, tuple[float | None, float | None, float | None]]:
    """Standard error and percentile interval of each realized metric over multinomial resamples of the cells."""
    stacked = np.concatenate(counts)
    total = float(stacked.sum())
    rng = np.random.default_rng(SEED)
    draws = rng.multinomial(n, stacked / total, size=BOOTSTRAP).astype(float) * (total / n)
    parts = np.split(draws, 4, axis=1)
    values = realized_metrics(*parts)
    alpha = 1 - confidence
    out: dict[str, tuple[float | None, float | None, float | None]] = {}
    for name, v in values.items():
        v = v[np.isfinite(v)]
        if len(v) < 2:
            out[name] = (None, None, None)
            continue
        low, high = np.quantile(v, [alpha / 2, 1 - alpha / 2])
        out[name] = (float(np.std(v, ddof=1)), float(low), float(high))
    return out


def _flags(values: pd.Series, positive_label: str | int | float | bool) -> np.ndarray:
    """Whether each logged class is the positive one (decided once per distinct value; missing is not)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    decided = np.array([is_positive(v, positive_label) for v in uniques] + [False], dtype=bool)
    return decided[codes]  # the sentinel -1 picks the final False
