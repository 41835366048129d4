"""Estimation job: a model's performance on a window before (or without) its labels.

Two methods, chosen by the model's task (``task``; else classification when the reference's predictions carry
a score, and otherwise inferred from them as the performance job infers it):

- classification (a binary classifier that logs a ``score``): CBPE.  The scores are calibrated on labelled
  predictions of the reference by :mod:`analyzers.stats.calibration`, and the window's expected confusion
  matrix and metrics follow (:mod:`analyzers.stats.estimation`); see :mod:`analyzers.jobs.cbpe`;
- regression: direct loss estimation (DLE).  Models of the absolute and squared error are fitted on the
  reference's features and predictions, and their mean over the window's rows estimates MAE and RMSE
  (:mod:`analyzers.stats.loss_estimation`); see :mod:`analyzers.jobs.dle`.

The reference is a window or a file (resolved by :mod:`analyzers.windows`).  When the window or a reference
window holds data in less than ``min_coverage`` of its slots (:mod:`analyzers.jobs.coverage`), the finding is
``insufficient_data`` with the reason, as are a reference with fewer than ``min_labels`` labelled predictions
and a calibration too poor to trust.  What the reference teaches (the fit) is kept in memory while its
labelled predictions keep the same count, mean and spread, so a scheduler running every hour fits it once.

Every estimate's interval is the sampling error of the realized metric at the window's size (the labels of
exactly these predictions); the reference's value has its own interval.  A metric has ``dropped`` when its
estimate is more than ``max_drop`` (relative) worse than the reference's realized value and the difference
is significant at 95% family-wise (Bonferroni over the metrics), as the performance job judges realized
drops; the alert subject is ``metric:<name>``, as there.  Labelled predictions of the window, once
``min_labels`` have arrived, give the realized value beside the estimate.

:func:`run` reads one window with a handful of store queries.  :func:`run_windows` judges many windows
(a backfill, the report's trend) with a fixed number of queries: the windows that share a reference share
its reading and fit, their coverage comes from one volume aggregate, and their rows are read in one pass.

With ``by_version`` the runner runs :func:`run` once more per live version (:mod:`analyzers.jobs.versions`):
the window is narrowed to the version, the reference is not, so every version reuses the whole model's fit.
:func:`run_windows` takes the version itself (``version=``): its spans (the windows' coverage, their rows
read in one pass, their grid of aggregates) are not any one window, so a reader that narrows queries by
their window could not tell them from a reference; the windows' queries carry the version instead, and
every read derived from them keeps it.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from analyzers.config.models import EstimationConfig
from analyzers.findings import Coverage, EstimationMetrics, Finding, Signal
from analyzers.findings.estimation import Estimate
from analyzers.jobs import coverage
from analyzers.jobs.base import error_finding
from analyzers.jobs.cbpe import fit_classification
from analyzers.jobs.dle import fit_regression
from analyzers.jobs.estimator import Estimator, TooFewLabels, WindowEstimate, read_windows
from analyzers.jobs.performance import infer_task
from analyzers.stats.estimation import MetricEstimate
from analyzers.stats.intervals import z_value
from analyzers.store import open_reference_file
from analyzers.store.base import NumericSummary, PredictionReader, Query
from analyzers.timeutil import Window
from analyzers.windows import reference_window

JOB = "estimation"
SIGNIFICANCE_LEVEL = 0.95  # a drop must be significant at this level, family-wise over the metrics
FITS_KEPT = 16  # reference fits kept in memory
SUMMARISED = ("score", "prediction", "label")  # the reference's labelled columns whose summary keys its fit

_fits: OrderedDict[Hashable, Estimator] = OrderedDict()
_fits_lock = threading.Lock()


def run(store: PredictionReader, model: str, config: EstimationConfig, window: Window) -> Finding:
    """Estimate the window's performance; never raises (failures become an ``error`` finding)."""
    return run_windows(store, model, config, [window])[0]


def run_windows(
    store: PredictionReader,
    model: str,
    config: EstimationConfig,
    windows: Sequence[Window],
    *,
    reference_as_of: Window | None = None,
    version: str | None = None,
) -> list[Finding]:
    """The finding of each window, as :func:`run` gives it, reading the store a fixed number of times.

    ``reference_as_of``: every window is compared with the reference of this window (the report's trend keeps
    the reference of its evaluation time) instead of its own.  ``version``: only that model version's
    predictions in every window, compared with the whole model's reference (as ``by_version`` does).  Never
    raises: a failure is an ``error`` finding for each window it concerns.
    """
    groups: dict[Window | None, list[int]] = {}
    try:
        for i, window in enumerate(windows):
            groups.setdefault(reference_window(reference_as_of or window, config.reference), []).append(i)
    except Exception as exc:  # a job reports its failure instead of raising
        return [error_finding(model, JOB, window, exc) for window in windows]
    out: list[Finding | None] = [None] * len(windows)
    for resolved, members in groups.items():
        try:
            findings = _judge(store, model, config, [windows[i] for i in members], resolved, version=version)
        except Exception as exc:  # a job reports its failure instead of raising
            findings = [error_finding(model, JOB, windows[i], exc) for i in members]
        for i, finding in zip(members, findings, strict=True):
            out[i] = finding
    return [f for f in out if f is not None]


@dataclass(frozen=True)
class _Reference:
    """What the windows of one reference are compared with: where it is read, its coverage, its fit."""

    store: PredictionReader
    query: Query
    described: dict[str, Any]
    covered: dict[str, Coverage]
    summaries: dict[str, NumericSummary]


def _judge(
    store: PredictionReader,
    model: str,
    config: EstimationConfig,
    windows: list[Window],
    resolved: Window | None,
    *,
    version: str | None,
) -> list[Finding]:
    """The findings of windows that share the reference ``resolved`` (``None``: the configured file), each
    window read for ``version`` alone when one is given (the reference never is)."""
    file = config.reference.file
    ref_store = open_reference_file(file, model) if file is not None else store
    try:
        ref_query = Query(model=model, window=resolved or windows[0], outcome="success", has_label=True)
        described: dict[str, Any] = {"file": file} if resolved is None else {"window": resolved.to_dict()}
        covered = {"reference": coverage.measure(store, ref_query.with_(has_label=None))} if resolved else {}
        summaries = ref_store.numeric_summaries(ref_query, list(SUMMARISED))
        reference = _Reference(ref_store, ref_query, described, covered, summaries)
        versions = (version,) if version is not None else None
        queries = [Query(model=model, window=w, outcome="success", model_versions=versions) for w in windows]
        window_coverage = coverage.measure_windows(store, queries)
        return _findings(store, model, config, queries, reference=reference, window_coverage=window_coverage)
    finally:
        if ref_store is not store:
            ref_store.close()


def _findings(
    store: PredictionReader,
    model: str,
    config: EstimationConfig,
    queries: list[Query],
    *,
    reference: _Reference,
    window_coverage: list[Coverage],
) -> list[Finding]:
    labelled = reference.summaries["label"].count
    reference.described["n_labeled"] = labelled
    estimator: Estimator | None = None
    unusable = coverage.shortfall(reference.covered, config.min_coverage)
    if unusable is None and labelled < config.min_labels:
        unusable = f"{labelled:g} labelled reference predictions < min_labels {config.min_labels}"
    if unusable is None:
        try:
            estimator = _fitted(reference, config)
        except TooFewLabels as exc:
            unusable = str(exc)
    calibration = None
    if estimator is not None:
        reference.described["n_sample"] = estimator.n_sample
        calibration = estimator.calibration(config)
        unusable = estimator.unusable(config)
    judged = [
        (q, c)
        for q, c in zip(queries, window_coverage, strict=True)
        if coverage.shortfall({"window": c}, config.min_coverage) is None and c.count >= max(config.min_rows, 1)
    ]
    read: dict[Window, WindowEstimate] = {}
    if estimator is not None and unusable is None:
        rows = sum(c.count for _, c in judged)
        read = read_windows(store, [q for q, _ in judged], estimator, config, rows=rows)
    counted = _label_counts(store, [q for q in queries if q.window not in read])
    out = []
    for query, covered in zip(queries, window_coverage, strict=True):
        estimate = read.get(query.window)
        n_labeled = estimate.n_labeled if estimate is not None else counted[query.window]
        metrics = EstimationMetrics(
            n=covered.count,
            n_labeled=n_labeled,
            label_coverage=n_labeled / covered.count if covered.count > 0 else None,
            n_ref=labelled,
            coverage={"window": covered, **reference.covered},
            task=estimator.task if estimator is not None and estimator.task != "classification" else None,
        )
        reason = coverage.shortfall({"window": covered}, config.min_coverage) or unusable
        if reason is None and covered.count < max(config.min_rows, 1):
            reason = f"{covered.count:g} predictions < min_rows {config.min_rows}"
        if reason is None and (estimate is None or estimate.n_scored <= 0):
            what = "a score" if metrics.task is None else "a numeric prediction"
            reason = f"no prediction in the window has {what}"
        if reason is not None or estimator is None or estimate is None:
            metrics.reason = reason
            if reason == unusable and estimator is not None:  # the fit itself was too poor: show how poor
                metrics.calibration = calibration
            out.append(Finding(model, JOB, query.window, "insufficient_data", metrics, dict(reference.described)))
            continue
        metrics.calibration = calibration
        out.append(_finding(model, config, query.window, metrics, estimator, estimate, reference.described))
    return out


def _finding(
    model: str,
    config: EstimationConfig,
    window: Window,
    metrics: EstimationMetrics,
    estimator: Estimator,
    estimate: WindowEstimate,
    described: dict[str, Any],
) -> Finding:
    entries, signals = _compare(estimate, estimator, config)
    metrics.estimates = entries
    metrics.n_scored = estimate.n_scored
    metrics.outside_reference_range = estimate.outside
    metrics.decision_threshold = estimator.decision_threshold
    metrics.window_read = estimate.source
    metrics.confidence = config.confidence
    metrics.max_drop = config.max_drop
    return Finding(model, JOB, window, "alert" if signals else "ok", metrics, dict(described), signals)


def _label_counts(store: PredictionReader, queries: list[Query]) -> dict[Window, float]:
    """Labelled predictions of windows that were not read (one count each: only windows with no verdict)."""
    return {q.window: store.count(q.with_(has_label=True)) for q in queries}


# ---- the reference's fit ----------------------------------------------------------------------
def _fitted(reference: _Reference, config: EstimationConfig) -> Estimator:
    """The reference's fit, from memory when its labelled predictions have not changed since it was made."""
    summary_key = tuple((s.count, s.mean, s.std, s.min, s.max) for s in (reference.summaries[c] for c in SUMMARISED))
    key = (
        reference.query.model,
        str(reference.described.get("file") or reference.described.get("window")),
        summary_key,
        config.model_dump_json(include=_FIT_SETTINGS),
    )
    with _fits_lock:
        if key in _fits:
            _fits.move_to_end(key)
            return _fits[key]
    task = config.task or _task(reference)
    fit: Callable[[PredictionReader, Query, EstimationConfig], Estimator] = (
        fit_classification if task == "classification" else fit_regression
    )
    estimator = fit(reference.store, reference.query, config)
    with _fits_lock:
        _fits[key] = estimator
        while len(_fits) > FITS_KEPT:
            _fits.popitem(last=False)
    return estimator


def _task(reference: _Reference) -> str:
    """Classification when the reference's labelled predictions carry a score (what CBPE reads), else as the
    performance job infers it from the predictions."""
    if reference.summaries["score"].count > 0:
        return "classification"
    return infer_task(reference.store, reference.query)


_FIT_SETTINGS = {"task", "calibration", "positive_label", "sample_size", "folds", "confidence", "metrics"}


# ---- the verdict ------------------------------------------------------------------------------
def _compare(
    estimate: WindowEstimate, estimator: Estimator, config: EstimationConfig
) -> tuple[list[Estimate], list[Signal]]:
    """One entry per metric (estimate, interval, reference, realized, drop) and a signal per dropped metric."""
    names = estimator.metrics(config)
    estimates: dict[str, MetricEstimate] = estimate.estimates
    compared = [m for m in names if estimates[m].value is not None and estimator.reference(m)[0] is not None]
    z = z_value(1 - (1 - SIGNIFICANCE_LEVEL) / max(len(compared), 1))
    entries: list[Estimate] = []
    signals: list[Signal] = []
    for name in names:
        value = estimates[name]
        ref, ref_se, ref_low, ref_high = estimator.reference(name)
        entry = Estimate(
            name=name,
            estimated=value.value,
            lower=value.lower,
            upper=value.upper,
            standard_error=value.se,
            reference=ref,
            reference_lower=ref_low,
            reference_upper=ref_high,
            realized=estimate.realized.get(name),
        )
        if value.value is not None and value.se is not None and ref is not None and ref_se is not None:
            higher_is_better = estimator.higher_is_better(name)
            worse = (ref - value.value) if higher_is_better else (value.value - ref)
            drop = worse / abs(ref) if ref else None
            entry.relative_drop = drop
            entry.significant = abs(ref - value.value) > z * math.hypot(value.se, ref_se)
            entry.dropped = bool(drop is not None and drop > config.max_drop and entry.significant)
            if entry.dropped and drop is not None:
                limit = ref * (1 - config.max_drop) if higher_is_better else ref * (1 + config.max_drop)
                direction = "below" if higher_is_better else "above"
                signals.append(
                    Signal(
                        subject=f"metric:{name}",
                        message=(
                            f"estimated {name} {value.value:.4g} is {drop:.1%} {direction} the reference {ref:.4g}"
                            f" (limit {config.max_drop:.0%}; labels not needed)"
                        ),
                        severity=config.severity,
                        value=value.value,
                        threshold=limit,
                    )
                )
        entries.append(entry)
    return entries, signals
