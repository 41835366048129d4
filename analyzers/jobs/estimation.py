"""Estimation job: a binary classifier's performance on a window before (or without) its labels.

The scores are calibrated on labelled predictions of the reference (a window, or a file with
``score``, ``prediction`` and ``label`` columns) by :mod:`analyzers.stats.calibration`; the window's
expected confusion matrix and metrics follow by CBPE (:mod:`analyzers.stats.estimation`).

What is read:

- reference: a uniform sample of at most ``sample_size`` labelled predictions (score, prediction,
  label); everything fitted on it (calibration, the decision rule, score cells, the reference's
  realized metrics with a bootstrap interval) is kept in memory while the reference's labelled scores
  keep the same count, mean and spread, so a scheduler that runs every hour fits it once;
- window: one crosstab (predictions and labels) and one histogram of the score over the reference's
  score cells.  When the reference shows that a prediction is positive exactly when its score reaches
  a threshold, and the window's count of positive predictions agrees with its scores, that is all
  (aggregates: the work grows with the cells, not the predictions); otherwise the scores and
  predictions are streamed once in chunks.  Labelled predictions of the window, when at least
  ``min_labels`` have arrived, are streamed once for the realized metrics.

Every estimate's interval is the sampling error of the realized metric at the window's size (the
labels of exactly these predictions); the reference's value has a bootstrap interval over its sample
(200 resamples), which grows as the sample shrinks (standard error about ``1/sqrt(n)``).  A metric has
``dropped`` when its estimate is more than ``max_drop`` (relative) below the reference's realized value
and the difference is significant at 95% family-wise (Bonferroni over the metrics), as the
performance job judges realized drops; the alert subject is ``metric:<name>``, as there.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analyzers.config.models import EstimationConfig
from analyzers.findings import Finding, Signal
from analyzers.jobs.base import error_finding
from analyzers.jobs.drift import reference_window
from analyzers.stats.binning import quantile_edges, quantile_levels
from analyzers.stats.calibration import Calibration, calibrate
from analyzers.stats.estimation import (
    Cells,
    MetricEstimate,
    bin_predictions,
    cell_probabilities,
    cells_from_rows,
    estimate_metrics,
    realized_metrics,
)
from analyzers.stats.intervals import z_value
from analyzers.stats.performance import is_positive
from analyzers.store import open_reference_file
from analyzers.store.base import Query, Store
from analyzers.timeutil import Window

JOB = "estimation"
SCORE_CELLS = 2000  # reference score quantiles that bound the cells (atoms of repeated scores get their own)
BOOTSTRAP = 200  # resamples of the reference for its interval
SIGNIFICANCE_LEVEL = 0.95  # a drop must be significant at this level, family-wise over the metrics
FITS_KEPT = 16  # reference fits kept in memory
SEED = 0


class TooFewLabels(ValueError):
    """The reference's labels cannot support a calibration (too few of one class)."""


@dataclass(frozen=True)
class ReferenceFit:
    """Everything the job learns from the reference's labelled predictions."""

    calibration: Calibration
    threshold: float | None  # predicted positive exactly when score >= threshold (None: no such rule)
    edges: np.ndarray
    probability: np.ndarray  # per cell [underflow, bins..., overflow]
    realized: dict[str, float | None]
    interval: dict[str, tuple[float | None, float | None, float | None]]  # (se, lower, upper)
    held_out: dict[str, dict[str, float | None]]  # CBPE with out-of-fold calibration against the realized value
    n_sample: int


_fits: OrderedDict[tuple[Any, ...], ReferenceFit] = OrderedDict()
_fits_lock = threading.Lock()


def run(store: Store, model: str, config: EstimationConfig, window: Window) -> Finding:
    """Estimate the window's performance; never raises (failures become an ``error`` finding)."""
    try:
        return _run(store, model, config, window)
    except Exception as exc:  # a job reports its failure instead of raising
        return error_finding(model, JOB, window, exc)


def _run(store: Store, model: str, config: EstimationConfig, window: Window) -> Finding:
    reference = config.reference
    ref_store = open_reference_file(reference.file, model) if reference.file is not None else store
    try:
        ref_window = window if reference.file is not None else reference_window(window, reference)
        described: dict[str, Any] = (
            {"file": reference.file} if reference.file is not None else {"window": ref_window.to_dict()}
        )
        ref_query = Query(model=model, window=ref_window, outcome="success", has_label=True)
        return _estimate(store, ref_store, ref_query, model, config, window, described)
    finally:
        if ref_store is not store:
            ref_store.close()


def _estimate(
    store: Store,
    ref_store: Store,
    ref_query: Query,
    model: str,
    config: EstimationConfig,
    window: Window,
    described: dict[str, Any],
) -> Finding:
    query = Query(model=model, window=window, outcome="success")
    table = store.crosstab(query, ["prediction", "label"])
    n = float(table["count"].sum()) if len(table) else 0.0
    predicted = _flags(table["prediction"], config.positive_label) if len(table) else np.zeros(0, dtype=bool)
    n_predicted_positive = float(table["count"][predicted].sum()) if len(table) else 0.0
    n_labeled = float(table["count"][table["label"].notna()].sum()) if len(table) else 0.0
    summary = ref_store.numeric_summary(ref_query, "score")
    described["n_labeled"] = summary.count
    coverage = {
        "n": n,
        "n_labeled": n_labeled,
        "label_coverage": n_labeled / n if n > 0 else None,
        "n_ref": summary.count,
    }
    if summary.count < config.min_labels:
        why = f"{summary.count:g} labelled reference predictions with a score < min_labels {config.min_labels}"
        return _insufficient(model, window, coverage, why, described)
    if n < max(config.min_rows, 1):
        return _insufficient(model, window, coverage, f"{n:g} predictions < min_rows {config.min_rows}", described)
    try:
        fit = _reference_fit(ref_store, ref_query, summary, config, described)
    except TooFewLabels as exc:
        return _insufficient(model, window, coverage, str(exc), described)
    described["n_sample"] = fit.n_sample
    calibration = {**fit.calibration.to_dict(), "max_error": config.max_calibration_error, "held_out": fit.held_out}
    if not math.isfinite(fit.calibration.ece) or fit.calibration.ece > config.max_calibration_error:
        why = (
            f"calibration too poor to estimate: out-of-fold expected calibration error {fit.calibration.ece:.3f}"
            f" > max_calibration_error {config.max_calibration_error:g} ({fit.calibration.method})"
        )
        return _insufficient(model, window, {**coverage, "calibration": calibration}, why, described)
    positive, negative, source = _window_cells(store, query, fit, config, n_predicted_positive)
    n_scored = float(positive.sum() + negative.sum())
    if n_scored <= 0:
        return _insufficient(model, window, coverage, "no prediction in the window has a score", described)
    estimates = estimate_metrics(
        Cells(fit.probability, positive, negative), metrics=config.metrics, confidence=config.confidence
    )
    realized = _realized(store, query, fit, config) if n_labeled >= config.min_labels else {}
    outside = float(positive[0] + positive[-1] + negative[0] + negative[-1]) / n_scored
    entries, signals = _compare(estimates, realized, fit, config)
    metrics = {
        **coverage,
        "metrics": entries,
        "n_scored": n_scored,
        "outside_reference_range": outside,
        "calibration": calibration,
        "decision_threshold": fit.threshold,
        "window_read": source,
        "confidence": config.confidence,
        "max_drop": config.max_drop,
    }
    return Finding(model, JOB, window, "alert" if signals else "ok", metrics, described, signals)


def _insufficient(
    model: str, window: Window, metrics: dict[str, Any], reason: str, described: dict[str, Any]
) -> Finding:
    return Finding(model, JOB, window, "insufficient_data", {**metrics, "metrics": [], "reason": reason}, described)


# ---- the reference ----------------------------------------------------------------------------
def _reference_fit(
    ref_store: Store, ref_query: Query, summary: Any, config: EstimationConfig, described: dict[str, Any]
) -> ReferenceFit:
    """The reference's fit, from memory when its labelled scores have not changed since it was made."""
    key = (
        ref_query.model,
        str(described.get("file") or described.get("window")),
        summary.count,
        summary.mean,
        summary.std,
        summary.min,
        summary.max,
        config.calibration,
        str(config.positive_label),
        config.sample_size,
        config.folds,
        config.confidence,
    )
    with _fits_lock:
        if key in _fits:
            _fits.move_to_end(key)
            return _fits[key]
    columns = ["score", "prediction", "label", "sample_rate"]
    sample = ref_store.sample(ref_query, config.sample_size, seed=SEED, columns=columns)
    fit = fit_reference(sample, config)
    with _fits_lock:
        _fits[key] = fit
        while len(_fits) > FITS_KEPT:
            _fits.popitem(last=False)
    return fit


def fit_reference(sample: pd.DataFrame, config: EstimationConfig) -> ReferenceFit:
    """Calibration, decision rule, score cells and realized metrics from labelled reference predictions."""
    scores = _numeric(sample["score"])
    keep = np.isfinite(scores) & sample["label"].notna().to_numpy()
    sample = sample[keep]
    s = scores[keep]
    y = _flags(sample["label"], config.positive_label)
    predicted = _flags(sample["prediction"], config.positive_label)
    w = _weights(sample)
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
    realized = {k: _finite(v) for k, v in realized_metrics(*counts).items()}
    interval = _bootstrap(counts, len(s), config.confidence)
    held_cells = cells_from_rows(s, calibration.out_of_fold, predicted, edges, w)
    held_estimates = estimate_metrics(held_cells, confidence=config.confidence)
    held_out = {m: {"estimated": held_estimates[m].value, "realized": realized[m]} for m in held_estimates}
    return ReferenceFit(calibration, threshold, edges, probability, realized, interval, held_out, len(s))


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


# ---- the window -------------------------------------------------------------------------------
def _window_cells(
    store: Store, query: Query, fit: ReferenceFit, config: EstimationConfig, n_predicted_positive: float
) -> tuple[np.ndarray, np.ndarray, str]:
    """Weighted predicted-positive and predicted-negative counts per cell, and how they were read."""
    if fit.threshold is not None:
        hist = store.histogram(query, "score", fit.edges.tolist())
        full = np.concatenate([[hist.underflow], hist.counts, [hist.overflow]])
        above = np.concatenate([[False], fit.edges >= fit.threshold])  # cell i + 1 starts at edges[i]
        positive = np.where(above, full, 0.0)
        agrees = abs(float(positive.sum()) - n_predicted_positive) <= 1e-9 * max(1.0, n_predicted_positive)
        if hist.missing == 0 and agrees:
            return positive, np.where(above, 0.0, full), "aggregates"
    positive = np.zeros(len(fit.edges) + 1)
    negative = np.zeros(len(fit.edges) + 1)
    for chunk in store.rows(query, columns=["score", "prediction", "sample_rate"]):
        s = _numeric(chunk["score"])
        ok = np.isfinite(s)
        pos, neg = bin_predictions(
            s[ok], _flags(chunk["prediction"], config.positive_label)[ok], fit.edges, _weights(chunk)[ok]
        )
        positive += pos
        negative += neg
    return positive, negative, "rows"


def _realized(store: Store, query: Query, fit: ReferenceFit, config: EstimationConfig) -> dict[str, float | None]:
    """Each metric over the window's labelled, scored predictions (one streamed pass)."""
    size = len(fit.edges) + 1
    counts = [np.zeros(size) for _ in range(4)]
    columns = ["score", "prediction", "label", "sample_rate"]
    for chunk in store.rows(query.with_(has_label=True), columns=columns):
        s = _numeric(chunk["score"])
        ok = np.isfinite(s) & chunk["label"].notna().to_numpy()
        y = _flags(chunk["label"], config.positive_label)[ok]
        predicted = _flags(chunk["prediction"], config.positive_label)[ok]
        cells = _confusion_cells(s[ok], predicted, y, _weights(chunk)[ok], fit.edges)
        for total, part in zip(counts, cells, strict=True):
            total += part
    if sum(float(c.sum()) for c in counts) <= 0:
        return {}
    return {k: _finite(v) for k, v in realized_metrics(*counts, metrics=config.metrics).items()}


# ---- the verdict ------------------------------------------------------------------------------
def _compare(
    estimates: dict[str, MetricEstimate],
    realized: dict[str, float | None],
    fit: ReferenceFit,
    config: EstimationConfig,
) -> tuple[list[dict[str, Any]], list[Signal]]:
    """One entry per metric (estimate, interval, reference, realized, drop) and a signal per dropped metric."""
    compared = [m for m in config.metrics if estimates[m].value is not None and fit.realized.get(m) is not None]
    z = z_value(1 - (1 - SIGNIFICANCE_LEVEL) / max(len(compared), 1))
    entries: list[dict[str, Any]] = []
    signals: list[Signal] = []
    for name in config.metrics:
        estimate = estimates[name]
        ref = fit.realized.get(name)
        ref_se, ref_low, ref_high = fit.interval.get(name, (None, None, None))
        entry: dict[str, Any] = {
            "name": name,
            "estimated": estimate.value,
            "lower": estimate.lower,
            "upper": estimate.upper,
            "standard_error": estimate.se,
            "reference": ref,
            "reference_lower": ref_low,
            "reference_upper": ref_high,
            "realized": realized.get(name),
            "relative_drop": None,
            "significant": None,
            "dropped": False,
        }
        if estimate.value is not None and estimate.se is not None and ref is not None and ref_se is not None:
            drop = (ref - estimate.value) / abs(ref) if ref else None
            significant = abs(ref - estimate.value) > z * math.hypot(estimate.se, ref_se)
            entry["relative_drop"] = drop
            entry["significant"] = significant
            entry["dropped"] = bool(drop is not None and drop > config.max_drop and significant)
            if entry["dropped"]:
                signals.append(
                    Signal(
                        subject=f"metric:{name}",
                        message=(
                            f"estimated {name} {estimate.value:.4g} is {drop:.1%} below the reference {ref:.4g}"
                            f" (limit {config.max_drop:.0%}; labels not needed)"
                        ),
                        severity=config.severity,
                        value=estimate.value,
                        threshold=ref * (1 - config.max_drop),
                    )
                )
        entries.append(entry)
    return entries, signals


# ---- helpers ----------------------------------------------------------------------------------
def _flags(values: pd.Series, positive_label: Any) -> np.ndarray:
    """Whether each logged class is the positive one (decided once per distinct value)."""
    series = pd.Series(values).astype(object)
    decided = {v: is_positive(v, positive_label) for v in series.dropna().unique()}
    return series.map(decided).fillna(False).to_numpy(dtype=bool)


def _numeric(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _weights(chunk: pd.DataFrame) -> np.ndarray:
    """``1 / sample_rate`` per row (1 when the rate is missing), as the store weights its aggregates."""
    if "sample_rate" not in chunk:
        return np.ones(len(chunk))
    rate = _numeric(chunk["sample_rate"])
    return np.where(np.isfinite(rate) & (rate > 0), 1.0 / np.where(rate > 0, rate, 1.0), 1.0)


def _finite(value: Any) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None
