"""Performance job: feedback joined to predictions (the store's ``label``), metrics against a reference.

The reference is ``config.reference`` (a fixed window, or ``{last, ending}`` for the ``last`` long window
that ended ``ending`` (default 0) before this window's start), or by default the previous window of the same
length (see :mod:`analyzers.windows`). A window holding data in less than ``min_coverage`` of its slots gets
no verdict; a reference that thin, or with fewer than ``min_labels`` labels, is not compared with, and a
finding with neither a reference nor a configured floor to judge by is ``insufficient_data``. A metric
alerts when it crosses its configured floor (ceiling for errors and losses) or falls more than ``max_drop``
(relative) behind the reference; the drop must also be significant at 95% family-wise (Bonferroni over the
metrics compared, since each run tests several): Newcombe's interval of the difference for accuracy,
precision and recall (proportions); a z-test on standard errors for ROC AUC (Hanley–McNeil), log loss, MAE,
MAPE, RMSE and R² (delta method); precision or recall for F1. Both windows need ``min_labels`` labelled
rows.  Under sampled logging the metrics are weighted by ``1 / sample_rate`` while the intervals, standard
errors and ``min_labels`` count the rows observed (see :mod:`analyzers.stats.sampling`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from analyzers.config.models import PerformanceConfig, ReferenceConfig
from analyzers.findings import Finding, PerformanceMetrics, Signal, Status
from analyzers.findings.performance import Comparison, MetricResult
from analyzers.jobs import coverage
from analyzers.jobs.base import error_finding
from analyzers.stats.intervals import newcombe_difference
from analyzers.stats.performance import (
    ClassificationMetrics,
    RegressionAccumulator,
    ScoreAccumulator,
    classification_metrics,
    higher_is_better,
    is_positive,
)
from analyzers.stats.sampling import row_weights
from analyzers.store.base import PredictionReader, Query
from analyzers.timeutil import Window
from analyzers.windows import reference_window

JOB = "performance"
CLASSIFICATION_MAX_CLASSES = 20  # integer predictions with at most this many values are classes
_SAMPLE_FOR_TASK = 2_000
SIGNIFICANCE_LEVEL = 0.95  # changes against the reference must be significant at this level, family-wise


def run(store: PredictionReader, model: str, config: PerformanceConfig, window: Window) -> Finding:
    """Measure performance over the window; never raises (failures become an ``error`` finding)."""
    try:
        return _run(store, model, config, window)
    except Exception as exc:  # a job reports its failure instead of raising
        return error_finding(model, JOB, window, exc)


def reference_span(window: Window, reference: ReferenceConfig | None) -> Window:
    """The window the current one is compared with (see :mod:`analyzers.windows`); a file cannot be one."""
    resolved = reference_window(window, reference)
    if resolved is None:
        raise ValueError("performance needs labelled predictions: a reference file is not supported, use a window")
    return resolved


def _run(store: PredictionReader, model: str, config: PerformanceConfig, window: Window) -> Finding:
    query = Query(model=model, window=window, outcome="success")
    ref_window = reference_span(window, config.reference)
    covered = coverage.measure_spans(store, query, {"window": window, "reference": ref_window})
    total = covered["window"].count
    labels = store.sample_size(query.with_(has_label=True))
    labeled = labels.weighted
    metrics = PerformanceMetrics(
        n=total,
        n_labeled=labeled,
        label_coverage=labeled / total if total > 0 else None,
        coverage=covered,
        n_labeled_observed=labels.rows,
    )
    reference: dict[str, Any] = {"window": ref_window}
    thin = coverage.shortfall({"window": covered["window"]}, config.min_coverage)
    if thin is None and labels.rows < max(config.min_labels, 1):
        thin = f"{labels.rows:g} labelled predictions logged < min_labels {config.min_labels}"
    if thin is not None:
        metrics.reason = thin
        return Finding(model, JOB, window, "insufficient_data", metrics, reference)
    task = config.task or infer_task(store, query)
    current = measure(store, query, task, config)
    ref_query = query.with_(window=ref_window)
    ref_labels = store.sample_size(ref_query.with_(has_label=True))
    ref_labeled = ref_labels.weighted
    ref_thin = coverage.shortfall({"reference": covered["reference"]}, config.min_coverage)
    if ref_thin is None and ref_labels.rows < max(config.min_labels, 1):
        ref_thin = f"the reference has {ref_labels.rows:g} labelled predictions logged < min_labels {config.min_labels}"
    ref = measure(store, ref_query, task, config) if ref_thin is None else None
    metrics.task = task
    signals: list[Signal] = []
    names = [n for n in current if not n.startswith("_")]
    compared = sum(1 for n in names if current[n] is not None and ref is not None and ref.get(n) is not None)
    level = 1 - (1 - SIGNIFICANCE_LEVEL) / max(compared, 1)  # Bonferroni over the metrics compared
    for name in names:
        entry, signal = _compare(name, current[name], config, ref=ref, current=current, level=level)
        metrics.measured[name] = entry
        if signal is not None:
            signals.append(signal)
    floors = sum(1 for n in names if current[n] is not None and config.thresholds.get(n) is not None)
    reference.update(
        n_labeled=ref_labeled,
        n_labeled_observed=ref_labels.rows,
        label_coverage=ref_labeled / ref_total if (ref_total := covered["reference"].count) > 0 else None,
        status="ok" if ref is not None else "insufficient_data",
        max_drop=config.max_drop,
        thresholds=dict(config.thresholds),
    )
    if ref_thin is not None:
        reference["reason"] = ref_thin
    status: Status
    if signals:
        status = "alert"
    elif compared or floors:
        status = "ok"
    else:  # neither a reference to compare with nor a floor to check: no verdict
        why = ref_thin or "no metric could be computed on both sides"
        status, metrics.reason = "insufficient_data", f"nothing to judge against: {why}"
    return Finding(model, JOB, window, status, metrics, reference, signals)


def infer_task(store: PredictionReader, query: Query) -> str:
    """Classification when predictions are categorical, or integers with few distinct values; else regression."""
    kinds = {c.name: c.kind for c in store.columns(query)}
    if kinds.get("prediction", "categorical") == "categorical":
        return "classification"
    sample = store.sample(query, _SAMPLE_FOR_TASK, columns=["prediction"])
    values = pd.to_numeric(sample["prediction"], errors="coerce").dropna().to_numpy(dtype=float)
    if len(values) and np.all(values == np.round(values)) and len(np.unique(values)) <= CLASSIFICATION_MAX_CLASSES:
        return "classification"
    return "regression"


def measure(store: PredictionReader, query: Query, task: str, config: PerformanceConfig) -> dict[str, Any]:
    """Every metric of the task over the labelled predictions of the query (keys with ``_`` are internals)."""
    labeled = query.with_(has_label=True)
    if task == "regression":
        acc = RegressionAccumulator()
        for chunk in store.rows(labeled, columns=["prediction", "label", "sample_rate"]):
            acc.add(numeric_values(chunk["prediction"]), numeric_values(chunk["label"]), row_weights(chunk))
        return {**acc.metrics(), "_se": acc.standard_errors()}
    cm = confusion_metrics(store, labeled, config.positive_label)
    out: dict[str, Any] = {
        "accuracy": cm.accuracy.value,
        "precision": cm.precision,
        "recall": cm.recall,
        "f1": cm.f1,
        "_average": cm.average,
        "_counts": {
            "accuracy": cm.accuracy_counts,
            "precision": cm.precision_counts,
            "recall": cm.recall_counts,
        },
        "_ci": {"accuracy": [cm.accuracy.low, cm.accuracy.high] if cm.accuracy.low is not None else None},
    }
    if cm.average == "binary":
        scored = _score_metrics(store, labeled, config)
        out["_se"] = scored.pop("_se", {})
        out.update(scored)
    return out


def confusion_metrics(store: PredictionReader, query: Query, positive_label: Any) -> ClassificationMetrics:
    """Classification metrics of the query's labelled predictions from one crosstab (weights and their squares)."""
    table = store.crosstab(query, ["prediction", "label"])
    keys = list(zip(table["prediction"], table["label"], strict=True))
    confusion = {k: float(c) for k, c in zip(keys, table["count"], strict=True)}
    squares = {k: float(c) for k, c in zip(keys, table["weight_sq"], strict=True)}
    return classification_metrics(confusion, positive_label=positive_label, squares=squares)


def _score_metrics(store: PredictionReader, labeled: Query, config: PerformanceConfig) -> dict[str, Any]:
    """ROC AUC and log loss from one streamed pass over scores (fine bins; see the stats module)."""
    kinds = {c.name: c.kind for c in store.columns(labeled)}
    if kinds.get("score") != "numeric":
        return {}
    summary = store.numeric_summary(labeled, "score")
    if not summary.count or summary.min is None or summary.max is None:
        return {}
    unit = summary.min >= 0 and summary.max <= 1
    acc = ScoreAccumulator.for_range(0.0, 1.0) if unit else ScoreAccumulator.for_range(summary.min, summary.max)
    for chunk in store.rows(labeled, columns=["score", "label", "sample_rate"]):
        # Each distinct label is compared once, not each row (a window holds few classes and many rows).
        codes, classes = pd.factorize(chunk["label"], use_na_sentinel=True)
        flags = np.array([is_positive(c, config.positive_label) for c in classes] + [False], dtype=bool)
        acc.add(numeric_values(chunk["score"]), flags[codes], row_weights(chunk))
    return {
        "roc_auc": acc.roc_auc(),
        "log_loss": acc.log_loss(),
        "_se": {"roc_auc": acc.roc_auc_se(), "log_loss": acc.log_loss_se()},
    }


def numeric_values(series: pd.Series) -> np.ndarray:
    """A column as floats, NaN where a value is missing or not a number."""
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _compare(
    name: str,
    value: float | None,
    config: PerformanceConfig,
    *,
    ref: dict[str, Any] | None,
    current: dict[str, Any],
    level: float = SIGNIFICANCE_LEVEL,
) -> tuple[MetricResult, Signal | None]:
    """One metric's entry (value, reference, threshold, change) and its signal if it breached."""
    better_high = higher_is_better(name)
    ref_value = ref.get(name) if ref is not None else None
    threshold = config.thresholds.get(name)
    entry = MetricResult(
        value=value,
        reference=ref_value,
        higher_is_better=better_high,
        threshold=threshold,
        ci=current.get("_ci", {}).get(name),
    )
    if value is None:
        return entry, None
    reasons = []
    if threshold is not None and (value < threshold if better_high else value > threshold):
        reasons.append(f"{'below floor' if better_high else 'above ceiling'} {threshold:g}")
    limit = None
    if ref_value is not None:
        drop = (ref_value - value if better_high else value - ref_value) / abs(ref_value) if ref_value else None
        limit = ref_value * (1 - config.max_drop if better_high else 1 + config.max_drop)
        significant = _significant(name, current, ref, level=level)
        entry.versus_reference = Comparison(value - ref_value, drop, significant)
        if drop is not None and drop > config.max_drop and significant is not False:
            reasons.append(f"{drop:.1%} worse than the reference {ref_value:.4g} (limit {config.max_drop:.0%})")
    entry.breached = bool(reasons)
    if not reasons:
        return entry, None
    return entry, Signal(
        subject=f"metric:{name}",
        message=f"{name} {value:.4g} is " + " and ".join(reasons),
        severity=config.severity,
        value=value,
        threshold=threshold if threshold is not None else limit,
    )


def _significant(
    name: str, current: dict[str, Any], ref: dict[str, Any] | None, *, level: float = SIGNIFICANCE_LEVEL
) -> bool | None:
    """Whether the change from the reference is significant: Newcombe's interval for proportions, a z-test on
    the standard errors for the others, precision or recall for F1; None when it cannot be told."""
    if ref is None:
        return None
    if name == "f1":
        parts = [_significant(m, current, ref, level=level) for m in ("precision", "recall")]
        return None if all(p is None for p in parts) else any(parts)
    counts_now = current.get("_counts", {}).get(name)
    counts_ref = ref.get("_counts", {}).get(name)
    if counts_now and counts_ref:
        (x1, n1), (x2, n2) = counts_now, counts_ref
        return newcombe_difference(x1, n1, x2, n2, confidence=level).excludes_zero
    se_now, se_ref = current.get("_se", {}).get(name), ref.get("_se", {}).get(name)
    if se_now is None or se_ref is None or current.get(name) is None or ref.get(name) is None:
        return None
    spread = math.hypot(se_now, se_ref)
    z = float(norm.ppf(1 - (1 - level) / 2))
    return abs(current[name] - ref[name]) > z * spread if spread > 0 else current[name] != ref[name]
