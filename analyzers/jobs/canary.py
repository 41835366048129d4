"""Canary job: a candidate model version against its baseline over the same window, and one verdict.

The two versions are configured by name, or ``latest`` (the live version first seen most recently) and
``previous`` (the live version first seen just before the candidate); "live" means it served events in
the window, and first-seen times come from the store (:mod:`analyzers.jobs.versions`).  Over the same
window the job compares:

- performance where labels exist: accuracy, and precision and recall of ``positive_label`` for a binary
  classifier (from the confusion counts of each version); MAE and RMSE for a regressor (streamed over
  the labelled rows, the only part that reads rows);
- the error rate (failures over events) and latency: for each percentile, the share of each version's
  events at or above the *baseline's* percentile (about 5% for the baseline's p95), so that "slower" is
  a difference of proportions with an interval, counted with one histogram per version;
- the prediction and score distributions, with the drift methods of :mod:`analyzers.stats.drift_methods`;
- every live version's share of the traffic.

Differences are candidate minus baseline with intervals at a level that keeps the gated metrics
(``metric`` and ``guardrails``) family-wise at ``confidence``.  The verdict (see
:func:`analyzers.stats.canary.decide`) is ``rollback`` (an alert under the subject
``rollback:<candidate>`` with the job's severity), ``promote`` (``promote:<candidate>``, severity
``info``), or ``hold`` with how many more candidate predictions the power calculation asks for
(status ``insufficient_data``, no alert).  Fewer than two live versions is no canary: ``ok``, no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from analyzers.config.jobs import BASELINE_PREVIOUS, CANDIDATE_LATEST
from analyzers.config.models import CanaryConfig
from analyzers.findings import CanaryMetrics, Finding, Signal, Status
from analyzers.findings.canary import MetricComparison, SampleSize, TrafficShare, VersionFigures
from analyzers.formatting import format_number, format_percent
from analyzers.jobs.base import error_finding
from analyzers.jobs.performance import confusion_metrics, infer_task, numeric_values
from analyzers.jobs.versions import by_first_seen, first_seen, live_versions
from analyzers.stats.binning import fine_edges, quantile_edges, quantile_levels
from analyzers.stats.canary import (
    Decision,
    Difference,
    decide,
    family_level,
    mean_difference,
    proportion_difference,
    proportion_sample_size,
    sample_size,
)
from analyzers.stats.drift import ColumnDrift, is_discrete, spread
from analyzers.stats.drift import decide as decide_drift
from analyzers.stats.drift_methods import NumericColumn, categorical_drift, default_effect_size, numeric_drift
from analyzers.stats.ops import percentile_level
from analyzers.stats.performance import RegressionAccumulator
from analyzers.stats.sampling import row_weights
from analyzers.store.base import Histogram, PredictionReader, Query
from analyzers.timeutil import Window, format_duration

JOB = "canary"
LATENCY_PERCENTILES = ("p50", "p95", "p99")  # always reported; any other named in the configuration too
DRIFT_COLUMNS = ("prediction", "score")
N_BINS = 100  # score and numeric prediction bins: the baseline's percentiles
N_COARSE = 10


def run(store: PredictionReader, model: str, config: CanaryConfig, window: Window) -> Finding:
    """Compare the candidate with the baseline over the window; never raises."""
    try:
        return _run(store, model, config, window)
    except Exception as exc:  # a job reports its failure instead of raising
        return error_finding(model, JOB, window, exc)


def _run(store: PredictionReader, model: str, config: CanaryConfig, window: Window) -> Finding:
    everything = Query(model=model, window=window)
    traffic = live_versions(store, everything)
    total = store.count(everything)
    lookback = max(config.first_seen_lookback, window.length)
    seen = first_seen(store, model, list(traffic), end=window.end, lookback=lookback) if len(traffic) > 1 else {}
    gates = [config.metric, *(g for g in config.guardrails if g != config.metric)]
    metrics = CanaryMetrics(
        verdict=None,
        reason="",
        metric=config.metric,
        min_detectable=config.min_detectable,
        confidence=config.confidence,
        level=family_level(config.confidence, len(gates)),
        power=config.power,
        traffic=[TrafficShare(v, n, n / total if total > 0 else math.nan, seen.get(v)) for v, n in traffic.items()],
    )
    reference: dict[str, Any] = {
        "baseline": config.baseline,
        "candidate": config.candidate,
        "min_rows": config.min_rows,
        "guardrails": list(config.guardrails),
        "min_detectable": config.min_detectable,
        "confidence": config.confidence,
    }
    pair = _pair(config, traffic, seen)
    if isinstance(pair, str):
        metrics.reason = pair
        return Finding(model, JOB, window, "ok", metrics, reference)
    (baseline, baseline_rule), (candidate, candidate_rule) = pair
    base_query = everything.with_(model_versions=(baseline,))
    cand_query = everything.with_(model_versions=(candidate,))
    percentiles = list(
        dict.fromkeys([*LATENCY_PERCENTILES, *(g.removeprefix("latency_") for g in gates if g.startswith("latency_"))])
    )
    metrics.baseline = _figures(
        store, base_query, version=baseline, chosen_as=baseline_rule, seen=seen.get(baseline), percentiles=percentiles
    )
    metrics.candidate = _figures(
        store,
        cand_query,
        version=candidate,
        chosen_as=candidate_rule,
        seen=seen.get(candidate),
        percentiles=percentiles,
    )
    compared = _compare(store, config, base_query=base_query, cand_query=cand_query, metrics=metrics)
    for comparison in compared.compared:
        comparison.gated = comparison.metric in gates
    metrics.comparisons = compared.compared
    metrics.drift = _drift(store, base_query, cand_query, alpha=1 - config.confidence)
    power = compared.power.get(config.metric)
    metrics.sample_size = _sample_size(config, power, metrics, window)
    decision = decide(
        n_baseline=metrics.baseline.events_observed or 0.0,
        n_candidate=metrics.candidate.events_observed or 0.0,
        min_rows=config.min_rows,
        worse=[c.metric for c in metrics.comparisons if c.gated and c.worse],
        required=metrics.sample_size.required,
        observed=metrics.sample_size.observed,
    )
    metrics.verdict = decision.verdict
    metrics.reason = _reason(decision, metrics, config)
    signals: list[Signal] = []
    status: Status = "insufficient_data"
    if decision.verdict == "rollback":
        worst = metrics.comparison(decision.worse[0])
        value = worst.difference if worst is not None else None
        signals.append(Signal(f"rollback:{candidate}", metrics.reason, config.severity, value, 0.0))
        status = "alert"
    elif decision.verdict == "promote":
        signals.append(Signal(f"promote:{candidate}", metrics.reason, "info"))
        status = "alert"
    return Finding(model, JOB, window, status, metrics, reference, signals)


# ---- which versions -------------------------------------------------------------------------------
def _pair(
    config: CanaryConfig, traffic: Mapping[str, float], seen: Mapping[str, datetime | None]
) -> tuple[tuple[str, str], tuple[str, str]] | str:
    """(baseline, how chosen) and (candidate, how chosen), or why there is no canary in the window."""
    if len(traffic) < 2:
        live = ", ".join(traffic) or "no version"
        return f"no canary: {live} served the window's events (a canary needs two versions live at once)"
    ordered = by_first_seen(traffic, seen)
    if config.candidate == CANDIDATE_LATEST:
        others = [v for v in ordered if v != config.baseline]  # a configured baseline is never its own candidate
        candidate, candidate_rule = others[-1], CANDIDATE_LATEST
    elif config.candidate in traffic:
        candidate, candidate_rule = config.candidate, "configured"
    else:
        return f"no canary: the candidate {config.candidate} served no events in the window"
    if config.baseline == BASELINE_PREVIOUS:
        older = ordered[: ordered.index(candidate)]
        if not older:
            return f"no canary: no live version was first seen before the candidate {candidate}"
        baseline, baseline_rule = older[-1], BASELINE_PREVIOUS
    elif config.baseline in traffic:
        baseline, baseline_rule = config.baseline, "configured"
    else:
        return f"no canary: the baseline {config.baseline} served no events in the window"
    return (baseline, baseline_rule), (candidate, candidate_rule)


def _figures(
    store: PredictionReader,
    query: Query,
    *,
    version: str,
    chosen_as: str,
    seen: datetime | None,
    percentiles: Sequence[str],
) -> VersionFigures:
    """A version's events, failures, successful and labelled predictions and latency percentiles."""
    volume = store.volume(query, query.window.length)
    events, failures = float(volume["count"].sum()), float(volume["failures"].sum())
    size = store.sample_size(query)
    ok = query.with_(outcome="success")
    latency = store.quantiles(query, "latency_ms", [percentile_level(p) for p in percentiles]) if events > 0 else []
    return VersionFigures(
        version=version,
        chosen_as=chosen_as,
        first_seen=seen,
        events=events,
        predictions=store.count(ok),
        labeled=store.count(ok.with_(has_label=True)),
        failures=failures,
        error_rate=failures / events if events > 0 else None,
        latency_ms=dict(zip(percentiles, latency or [None] * len(percentiles), strict=True)),
        events_observed=size.rows,
        events_effective=size.effective,
    )


# ---- comparisons ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _PowerInputs:
    """What the power calculation of one metric needs: each side's observations, the baseline's value and
    its variance per observation."""

    n_baseline: float
    n_candidate: float
    baseline: float
    variance: float


class _Comparisons:
    """Collects each metric's comparison (at one interval level) and the inputs of its power calculation."""

    def __init__(self, level: float) -> None:
        self.level = level
        self.compared: list[MetricComparison] = []
        self.power: dict[str, _PowerInputs] = {}

    def _add(self, name: str, diff: Difference, n_baseline: float, n_candidate: float) -> None:
        self.compared.append(
            MetricComparison(
                metric=name,
                baseline=diff.baseline,
                candidate=diff.candidate,
                difference=diff.value,
                low=diff.low,
                high=diff.high,
                higher_is_better=diff.higher_is_better,
                worse=diff.worse,
                better=diff.better,
                gated=False,
                n_baseline=n_baseline,
                n_candidate=n_candidate,
            )
        )

    def proportion(self, name: str, x_c: float, n_c: float, x_b: float, n_b: float, *, higher_is_better: bool) -> None:
        diff = proportion_difference(x_c, n_c, x_b, n_b, higher_is_better=higher_is_better, confidence=self.level)
        self._add(name, diff, n_b, n_c)
        if diff.baseline is not None:
            self.power[name] = _PowerInputs(n_b, n_c, diff.baseline, diff.baseline * (1 - diff.baseline))

    def mean(
        self,
        name: str,
        candidate: tuple[float, float | None, float | None],
        baseline: tuple[float, float | None, float | None],
    ) -> None:
        """A mean metric from each side's (observations, value, standard error); lower is better (errors)."""
        (n_c, value_c, se_c), (n_b, value_b, se_b) = candidate, baseline
        diff = mean_difference(value_c, se_c, value_b, se_b, higher_is_better=False, confidence=self.level)
        self._add(name, diff, n_b, n_c)
        if value_b is not None and se_b is not None:
            self.power[name] = _PowerInputs(n_b, n_c, value_b, se_b * se_b * n_b)


def _compare(
    store: PredictionReader, config: CanaryConfig, *, base_query: Query, cand_query: Query, metrics: CanaryMetrics
) -> _Comparisons:
    """Performance (where both versions have labels), the error rate and latency of the two versions."""
    base, cand = metrics.baseline, metrics.candidate
    assert base is not None and cand is not None
    out = _Comparisons(metrics.level)
    if base.labeled > 0:
        _performance(store, config, base_query, cand_query, out)
    # Weighted counts give the rates; each version's effective size per weighted event the observations.
    out.proportion(
        "error_rate",
        cand.failures * cand.scale,
        cand.events * cand.scale,
        base.failures * base.scale,
        base.events * base.scale,
        higher_is_better=False,
    )
    thresholds = {name: t for name, t in base.latency_ms.items() if t is not None}
    if thresholds:
        # one histogram per version over the baseline's percentiles answers every "at or above"
        ordered = sorted(set(thresholds.values()))
        edges = [*ordered, float(np.nextafter(ordered[-1], math.inf))]
        hist_b = store.histogram(base_query, "latency_ms", edges)
        hist_c = store.histogram(cand_query, "latency_ms", edges)
        for name, threshold in thresholds.items():
            slow_b, n_b = (x * base.scale for x in _at_or_above(hist_b, threshold))
            slow_c, n_c = (x * cand.scale for x in _at_or_above(hist_c, threshold))
            out.proportion(f"latency_{name}", slow_c, n_c, slow_b, n_b, higher_is_better=False)
    return out


def _at_or_above(hist: Histogram, threshold: float) -> tuple[float, float]:
    """Values at or above ``threshold`` (one of the histogram's edges), and all values (missing left out)."""
    first = int(np.searchsorted(hist.edges, threshold, side="left"))
    above = float(np.sum(hist.counts[first:])) + hist.overflow
    return above, float(np.sum(hist.counts)) + hist.overflow + hist.underflow


def _performance(
    store: PredictionReader, config: CanaryConfig, base_query: Query, cand_query: Query, out: _Comparisons
) -> None:
    """Accuracy (and binary precision and recall) of a classifier, or MAE and RMSE of a regressor."""
    labeled = [q.with_(outcome="success", has_label=True) for q in (base_query, cand_query)]
    task = config.task or infer_task(store, labeled[0])
    if task == "regression":
        sides = []
        for query in labeled:
            acc = RegressionAccumulator()
            for chunk in store.rows(query, columns=["prediction", "label", "sample_rate"]):
                acc.add(numeric_values(chunk["prediction"]), numeric_values(chunk["label"]), row_weights(chunk))
            sides.append((acc.effective, acc.metrics(), acc.standard_errors()))
        (n_b, values_b, se_b), (n_c, values_c, se_c) = sides
        for name in ("mae", "rmse"):
            out.mean(name, (n_c, values_c[name], se_c[name]), (n_b, values_b[name], se_b[name]))
        return
    base, cand = (confusion_metrics(store, query, config.positive_label) for query in labeled)
    out.proportion("accuracy", *cand.accuracy_counts, *base.accuracy_counts, higher_is_better=True)
    for name, base_counts, cand_counts in (
        ("precision", base.precision_counts, cand.precision_counts),
        ("recall", base.recall_counts, cand.recall_counts),
    ):
        if base_counts is not None and cand_counts is not None:
            out.proportion(name, *cand_counts, *base_counts, higher_is_better=True)


# ---- drift between the versions -------------------------------------------------------------------
def _drift(store: PredictionReader, base_query: Query, cand_query: Query, *, alpha: float) -> list[ColumnDrift]:
    """The prediction and score of the candidate against the baseline's (successful predictions only)."""
    base_ok, cand_ok = base_query.with_(outcome="success"), cand_query.with_(outcome="success")
    kinds: dict[str, set[str]] = {}
    for query in (base_ok, cand_ok):
        for info in store.columns(query):
            if info.name in DRIFT_COLUMNS:
                kinds.setdefault(info.name, set()).add(info.kind)
    scales = (store.sample_size(base_ok).scale, store.sample_size(cand_ok).scale)
    results: list[ColumnDrift] = []
    for column in DRIFT_COLUMNS:
        if column not in kinds:
            continue
        if kinds[column] == {"numeric"}:
            result = _numeric_drift(store, column, base_ok, cand_ok, scales=scales)
        else:
            counts = [store.category_counts(q, column) for q in (base_ok, cand_ok)]
            present = [sum(v for k, v in c.items() if k is not None) for c in counts]
            result = categorical_drift(
                column,
                *counts,
                effect=default_effect_size("categorical"),
                ref_effective=present[0] * scales[0],
                cur_effective=present[1] * scales[1],
            )
        if result is not None:
            results.append(result)
    decide_drift(results, alpha=alpha, correction="bh", drift_share=1.0)
    return results


def _numeric_drift(
    store: PredictionReader, column: str, base: Query, cand: Query, *, scales: tuple[float, float]
) -> ColumnDrift | None:
    """A numeric column over bins fixed from the baseline's percentiles (as the drift job bins a reference);
    ``scales`` are each side's observations per weighted prediction."""
    found = store.quantiles(base, column, quantile_levels(N_BINS))
    quantiles = [q for q in found if q is not None]
    summaries = (store.numeric_summary(base, column), store.numeric_summary(cand, column))
    if len(quantiles) < len(found) or any(s.count <= 0 or s.min is None or s.max is None for s in summaries):
        return None
    fine = fine_edges(quantiles)
    coarse = quantile_edges(quantiles[:: N_BINS // N_COARSE], outer=False)
    counted = [store.histogram(q, column, fine.tolist()) for q in (base, cand)]
    full = [np.concatenate([[h.underflow], h.counts, [h.overflow]]) for h in counted]
    discrete = is_discrete(quantiles)
    values = NumericColumn(
        ref_fine=full[0],
        cur_fine=full[1],
        fine_edges=fine,
        coarse_edges=coarse,
        low=min(float(s.min) for s in summaries if s.min is not None),
        high=max(float(s.max) for s in summaries if s.max is not None),
        scale=spread(ref_std=summaries[0].std, cur_std=summaries[1].std, ref_mean=summaries[0].mean),
        discrete=discrete,
        ref_effective=float(full[0].sum()) * scales[0],
        cur_effective=float(full[1].sum()) * scales[1],
    )
    return numeric_drift(column, values, effect=default_effect_size("numeric", discrete=discrete))


# ---- the verdict ----------------------------------------------------------------------------------
def _sample_size(
    config: CanaryConfig, inputs: _PowerInputs | None, metrics: CanaryMetrics, window: Window
) -> SampleSize:
    """The power calculation for ``config.metric``, and what is missing in candidate predictions and time."""
    base, cand = metrics.baseline, metrics.candidate
    assert base is not None and cand is not None
    primary = metrics.comparison(config.metric)
    if inputs is None or primary is None:
        return SampleSize(metric=config.metric, required=None, observed=primary.n_candidate if primary else 0.0)
    n_base, n_cand = inputs.n_baseline, inputs.n_candidate
    ratio = n_base / n_cand if n_cand > 0 else base.events / max(cand.events, 1.0)
    if primary.metric in ("mae", "rmse"):
        required = sample_size(
            variance_candidate=inputs.variance,
            variance_baseline=inputs.variance,
            difference=config.min_detectable,
            ratio=ratio,
            confidence=metrics.level,
            power=config.power,
        )
    else:
        required = proportion_sample_size(
            inputs.baseline,
            difference=config.min_detectable,
            ratio=ratio,
            higher_is_better=primary.higher_is_better,
            confidence=metrics.level,
            power=config.power,
        )
    required = math.ceil(required)
    more = max(required - n_cand, 0.0)
    # candidate observations per candidate event (e.g. the share labelled); the baseline's while it has none
    rate = n_cand / cand.events if n_cand > 0 and cand.events > 0 else (n_base / base.events if base.events else 0.0)
    per_second = rate * cand.events / window.length.total_seconds()
    return SampleSize(
        metric=config.metric,
        required=float(required),
        observed=n_cand,
        more_observations=more,
        more_predictions=math.ceil(more / rate) if rate > 0 else None,
        window_needed_s=required / per_second if per_second > 0 else None,
    )


def _reason(decision: Decision, metrics: CanaryMetrics, config: CanaryConfig) -> str:
    """The verdict in one line, as alerts, ``status`` and the report show it."""
    base, cand = metrics.baseline, metrics.candidate
    assert base is not None and cand is not None
    share = next((t.share for t in metrics.traffic if t.version == cand.version), None)
    head = f"{decision.verdict} {cand.version} (baseline {base.version}, {format_percent(share)} of the traffic)"
    if decision.verdict == "rollback":
        worse = [c for c in metrics.comparisons if c.metric in decision.worse]
        return f"{head}: significantly worse on " + "; ".join(_describe(c, metrics) for c in worse)
    primary = metrics.comparison(config.metric)
    size = metrics.sample_size
    if decision.verdict == "promote":
        detail = _describe(primary, metrics) if primary is not None else config.metric
        needed = f" (power calculation: {format_number(size.required)})" if size is not None else ""
        return (
            f"{head}: no gated metric significantly worse; {detail} over "
            f"{format_number(size.observed if size else None)} observations{needed}"
        )
    waits: list[str] = []
    if decision.rows_short > 0:
        waits.append(
            f"{format_number(decision.rows_short)} more events logged before a verdict (min_rows {config.min_rows}; "
            f"baseline {format_number(base.events_observed)}, candidate {format_number(cand.events_observed)})"
        )
    if size is None or size.required is None:
        waits.append(f"{config.metric} cannot be compared yet ({_missing_metric(config, metrics)})")
    elif size.more_observations:
        window = (
            f"; a window of about {format_duration(_round_up(size.window_needed_s))} would hold enough at this traffic"
        )
        waits.append(
            f"about {format_number(size.more_predictions)} more {cand.version} predictions for {config.metric} "
            f"({format_number(size.more_observations)} more observations of the "
            f"{format_number(size.required)} the power calculation needs"
            f"{window if size.window_needed_s is not None else ''})"
        )
    return f"{head}: " + "; ".join(waits)


def _missing_metric(config: CanaryConfig, metrics: CanaryMetrics) -> str:
    assert metrics.baseline is not None
    if config.metric in ("accuracy", "precision", "recall", "mae", "rmse") and metrics.baseline.labeled <= 0:
        return f"no labelled predictions of the baseline {metrics.baseline.version}"
    return f"it does not apply to this model's predictions or was not measured for {config.metric}"


def _round_up(seconds: float | None) -> timedelta:
    """A duration rounded up to whole minutes below an hour, hours below two days, else days: a window to configure."""
    value = seconds or 0.0
    step = 60 if value <= 3600 else 3600 if value <= 2 * 86_400 else 86_400
    return timedelta(seconds=step * max(math.ceil(value / step), 1))


def _describe(comparison: MetricComparison, metrics: CanaryMetrics) -> str:
    if not comparison.metric.startswith("latency_"):
        return comparison.describe()
    name = comparison.metric.removeprefix("latency_")
    base = metrics.baseline
    threshold = base.latency_ms.get(name) if base is not None else None
    return (
        f"latency {name}: {format_percent(comparison.candidate)} of the candidate's events at or above the "
        f"baseline's {name} of {format_number(threshold)} ms, against {format_percent(comparison.baseline)} "
        f"({comparison.describe_difference()})"
    )
