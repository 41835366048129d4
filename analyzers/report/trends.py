"""The report's "over time": statistics per bucket of the report's span, computed from the store.

The span ``[T - span, T)`` is cut into buckets that end at ``T`` (:func:`trend_bucket`: an hour for
spans under three days, a day up to 92 days, a week beyond), and the leading buckets without any event
are dropped, so a first report over ten days of logs shows ten days, whatever findings are stored.
Each bucket is measured as the jobs measure a window:

- drift: each column's effect size beyond sampling noise (the drift job's method, noise and threshold,
  :mod:`analyzers.stats.drift`) of the bucket against the reference the drift job would use for a
  window ending where the bucket ends, counted over bins fixed once from the reference at ``T`` (so a
  bucket costs its bins, not its rows), and the job's verdict rule on the bucket's columns (binned
  tests, corrected together; missing rates left to the job);
- performance: label coverage, and where a bucket has ``min_labels`` labels, the task's metrics
  (classification from the bucket's confusion counts; regression errors need each row's error, so those
  buckets stream their labelled rows as the performance job does);
- fairness: per attribute, the demographic-parity and equalized-odds differences and the parity ratio
  over the groups of at least ``min_group_size``;
- operations: events, failures and latency percentiles;
- estimation: the estimation job's finding for each bucket (:func:`analyzers.jobs.estimation.run_windows`: its
  reading and fit of the reference at ``T``, every bucket's rows in one pass), so the estimate and its interval
  show where performance moved before the labels came; with ``by_version``, the same for each version live in
  the span (its buckets read for that version alone, against the whole model's reference and fit).

Everything else is a Store aggregate (volume, histograms, category counts, crosstabs, quantiles), one
call per bucket and job; a relative drift reference that falls on bucket boundaries is the sum of its
buckets' counts, so it costs nothing more.  Buckets where a finding alerted are marked from the findings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np

from analyzers.config.models import (
    DriftConfig,
    EstimationConfig,
    FairnessConfig,
    FeatureOverride,
    OpsConfig,
    PerformanceConfig,
)
from analyzers.findings import Finding
from analyzers.jobs.drift import compare_categorical, compare_numeric, display_name, feature_override
from analyzers.jobs.estimation import run_windows
from analyzers.jobs.fairness import group_attributes, group_counts, match_group
from analyzers.jobs.performance import infer_task, measure
from analyzers.jobs.versions import live_versions
from analyzers.runner import with_paths_resolved
from analyzers.stats.binning import fine_edges, quantile_edges, quantile_levels
from analyzers.stats.drift import ColumnDrift, Kind, decide, is_discrete, spread
from analyzers.stats.drift_methods import NumericColumn
from analyzers.stats.fairness import assess_attribute
from analyzers.stats.ops import percentile_level
from analyzers.stats.performance import classification_metrics
from analyzers.stats.sampling import SampleSize
from analyzers.store import open_reference_file
from analyzers.store.base import PredictionReader, Query
from analyzers.timeutil import Window, format_duration
from analyzers.windows import reference_window
from logshipper.schema import FEATURE_PREFIX

HOUR, DAY, WEEK = timedelta(hours=1), timedelta(days=1), timedelta(weeks=1)
N_FINE = 100  # reference percentiles that bound the fine bins, as the drift job's
N_COARSE = 10  # reference deciles for PSI
DRIFT_OUTPUTS = ("prediction", "score")  # the label's drift needs labelled rows on both sides: left to the job
LATENCY = ("p50", "p95", "p99")
CLASSIFICATION = ("accuracy", "precision", "recall", "f1")
REGRESSION = ("mae", "rmse", "r2")
TREND_VERSIONS = 3  # versions with a trend of their own (``by_version``): a baseline, its canary and one more
FAIRNESS = ("demographic_parity_difference", "equalized_odds_difference", "demographic_parity_ratio")

Series = list[float | None]


def trend_bucket(span: timedelta) -> timedelta:
    """An hour for spans under three days, a day up to 92 days, a week beyond."""
    if span < 3 * DAY:
        return HOUR
    return DAY if span <= 92 * DAY else WEEK


def buckets(at: datetime, span: timedelta, bucket: timedelta) -> list[Window]:
    """The buckets of ``[at - span, at)``, the last ending at ``at`` (the span rounded up to whole buckets)."""
    n = max(1, math.ceil(span / bucket))
    return [Window(at - (n - i) * bucket, at - (n - i - 1) * bucket) for i in range(n)]


@dataclass
class DriftTrend:
    """Per column (display name), its effect size beyond sampling noise (0 when within it) over its
    threshold in each bucket (1: the threshold), and whether the drift job's rule (significant after
    correction, and beyond noise by more than the threshold) calls it drifted."""

    ratios: dict[str, Series]
    drifted: dict[str, list[bool]]
    methods: dict[str, str]  # column -> "wasserstein > 0.03"
    reference: str

    @property
    def n_drifted(self) -> list[int]:
        """Columns drifted per bucket."""
        return [int(sum(flags)) for flags in zip(*self.drifted.values(), strict=True)] if self.drifted else []


@dataclass
class PerformanceTrend:
    """The task's metrics per bucket (``None`` below ``min_labels``), predictions and labelled predictions."""

    task: str
    metrics: dict[str, Series]
    n: list[float]
    n_labeled: list[float]
    min_labels: int


@dataclass
class FairnessTrend:
    """Per attribute, the parity measures per bucket (``None`` when fewer than two groups are large enough)."""

    attributes: dict[str, dict[str, Series]]
    max_difference: float
    parity_ratio: float
    min_group_size: int


@dataclass
class OpsTrend:
    """Events, failures and latency percentiles per bucket."""

    counts: list[float]
    failures: list[float]
    latency: dict[str, Series]
    max_error_rate: float
    latency_limits: dict[str, float]


@dataclass
class EstimationTrend:
    """The estimation job's finding for each bucket, all against the reference the job uses at ``T``; with
    ``by_version``, each version's own findings too (the versions live in the span, most traffic first, at
    most ``TREND_VERSIONS``), each against the same, whole model's, reference."""

    findings: list[Finding]
    reference: str
    versions: dict[str, list[Finding]] = field(default_factory=dict)


@dataclass
class Trends:
    """Everything the "over time" sections draw, bucket by bucket, with the buckets where a finding alerted."""

    windows: list[Window]
    bucket: timedelta
    ops: OpsTrend | None = None
    drift: DriftTrend | None = None
    performance: PerformanceTrend | None = None
    fairness: FairnessTrend | None = None
    estimation: EstimationTrend | None = None
    fired: dict[str, list[bool]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # job -> why it has no trend

    @property
    def starts(self) -> list[datetime]:
        return [w.start for w in self.windows]

    @property
    def span(self) -> Window:
        return Window(self.windows[0].start, self.windows[-1].end)


def compute(
    store: PredictionReader,
    model: str,
    jobs: dict[str, Any],
    at: datetime,
    span: timedelta,
    findings: Sequence[Finding],
    *,
    base: Path | None = None,
) -> Trends:
    """The trends of ``model`` over ``[at - span, at)`` for the configured ``jobs``; a part that fails is a note."""
    bucket = trend_bucket(span)
    windows = buckets(at, span, bucket)
    volume = store.volume(Query(model=model, window=Window(windows[0].start, windows[-1].end)), bucket)
    counts = volume["count"].to_numpy(dtype=float)
    filled = np.flatnonzero(counts > 0)
    if filled.size == 0:
        trends = Trends(windows[-1:], bucket)
        for job in ("drift", "fairness", "performance", "ops", "estimation"):
            trends.notes[job] = "No events were logged for this model in the report's span."
        return trends
    first = int(filled[0])
    trends = Trends(windows[first:], bucket)
    failures = volume["failures"].to_numpy(dtype=float)[first:]
    ops: OpsConfig = jobs["ops"] if isinstance(jobs.get("ops"), OpsConfig) else OpsConfig()
    parts: dict[str, Callable[[], Any]] = {
        "ops": lambda: _ops(store, model, ops, trends.windows, counts[first:], failures),
    }
    if isinstance(jobs.get("drift"), DriftConfig):
        parts["drift"] = lambda: _drift(store, model, jobs["drift"], trends.windows, base)
    if isinstance(jobs.get("performance"), PerformanceConfig):
        parts["performance"] = lambda: _performance(store, model, jobs["performance"], trends.windows)
    if isinstance(jobs.get("fairness"), FairnessConfig):
        parts["fairness"] = lambda: _fairness(store, model, jobs["fairness"], trends.windows)
    if isinstance(jobs.get("estimation"), EstimationConfig):
        parts["estimation"] = lambda: _estimation(store, model, jobs["estimation"], trends.windows, base)
    for job in ("drift", "performance", "fairness", "estimation"):
        if job not in parts:
            trends.notes[job] = f"The {job} job is not configured (or disabled) for this model."
    for job, part in parts.items():
        try:
            setattr(trends, job, part())
        except Exception as exc:  # one trend that cannot be computed leaves the others and the report
            trends.notes[job] = f"The {job} trend could not be computed: {type(exc).__name__}: {exc}"
    trends.fired = fired(findings, trends.windows)
    return trends


def fired(findings: Sequence[Finding], windows: Sequence[Window]) -> dict[str, list[bool]]:
    """Per job, whether an alerting finding's window ended inside each bucket."""
    out: dict[str, list[bool]] = {}
    for finding in findings:
        if finding.status != "alert":
            continue
        last_instant = finding.window.end - timedelta(microseconds=1)
        for i, window in enumerate(windows):
            if window.start <= last_instant < window.end:
                out.setdefault(finding.job, [False] * len(windows))[i] = True
    return out


# ---- operations ----------------------------------------------------------------------------------
def _ops(
    store: PredictionReader,
    model: str,
    config: OpsConfig,
    windows: list[Window],
    counts: np.ndarray,
    failures: np.ndarray,
) -> OpsTrend:
    levels = [percentile_level(name) for name in LATENCY]
    latency: dict[str, Series] = {name: [None] * len(windows) for name in LATENCY}
    for i, window in enumerate(windows):
        if counts[i] <= 0:
            continue
        values = store.quantiles(Query(model=model, window=window), "latency_ms", levels)
        for name, value in zip(LATENCY, values, strict=True):
            latency[name][i] = value
    return OpsTrend(
        counts=[float(c) for c in counts],
        failures=[float(f) for f in failures],
        latency=latency,
        max_error_rate=config.max_error_rate,
        latency_limits=dict(config.latency_ms),
    )


# ---- performance ---------------------------------------------------------------------------------
def _performance(
    store: PredictionReader, model: str, config: PerformanceConfig, windows: list[Window]
) -> PerformanceTrend:
    span = Query(model=model, window=Window(windows[0].start, windows[-1].end), outcome="success")
    bucket = windows[0].length
    n = [float(c) for c in store.volume(span, bucket)["count"]]
    n_labeled = [float(c) for c in store.volume(span.with_(has_label=True), bucket)["count"]]
    task = config.task or infer_task(store, span)
    names = CLASSIFICATION if task == "classification" else REGRESSION
    metrics: dict[str, Series] = {name: [None] * len(windows) for name in names}
    for i, window in enumerate(windows):
        if n_labeled[i] < max(config.min_labels, 1):
            continue
        for name, value in _metrics(store, span.with_(window=window), task, config).items():
            metrics[name][i] = value
    return PerformanceTrend(task, metrics, n, n_labeled, config.min_labels)


def _metrics(store: PredictionReader, query: Query, task: str, config: PerformanceConfig) -> dict[str, float | None]:
    """Classification metrics from the confusion counts (an aggregate); regression ones as the job measures them."""
    if task == "regression":
        measured = measure(store, query, task, config)
        return {name: measured.get(name) for name in REGRESSION}
    table = store.crosstab(query.with_(has_label=True), ["prediction", "label"])
    confusion = {(p, y): float(c) for p, y, c in zip(table["prediction"], table["label"], table["count"], strict=True)}
    cm = classification_metrics(confusion, positive_label=config.positive_label)
    return {"accuracy": cm.accuracy.value, "precision": cm.precision, "recall": cm.recall, "f1": cm.f1}


# ---- estimation ----------------------------------------------------------------------------------
def _estimation(
    store: PredictionReader, model: str, config: EstimationConfig, windows: list[Window], base: Path | None
) -> EstimationTrend:
    job = cast(EstimationConfig, with_paths_resolved(config, base))  # the same class, its file made absolute
    at = Window.ending(windows[-1].end, config.window)
    findings = run_windows(store, model, job, windows, reference_as_of=at)
    versions: dict[str, list[Finding]] = {}
    if config.by_version:
        live = live_versions(store, Query(model=model, window=Window(windows[0].start, windows[-1].end)))
        for version in list(live)[:TREND_VERSIONS]:
            versions[version] = run_windows(store, model, job, windows, reference_as_of=at, version=version)
    reference = config.reference
    described = f"the file {reference.file}" if reference.file is not None else _reference_at(at, reference)
    return EstimationTrend(findings, described, versions)


def _reference_at(window: Window, reference: Any) -> str:
    resolved = reference_window(window, reference)
    if resolved is None:
        return "the reference"
    span = resolved.to_dict()
    return f"the reference {span['start']} to {span['end']}"


# ---- fairness ------------------------------------------------------------------------------------
def _fairness(store: PredictionReader, model: str, config: FairnessConfig, windows: list[Window]) -> FairnessTrend:
    span = Query(model=model, window=Window(windows[0].start, windows[-1].end), outcome="success")
    attributes = list(config.groups) if config.groups else group_attributes(store, span)
    series: dict[str, dict[str, Series]] = {a: {m: [None] * len(windows) for m in FAIRNESS} for a in attributes}
    volume = store.volume(span, windows[0].length)["count"] if attributes else []
    for i, window in enumerate(windows):
        if not attributes or volume[i] <= 0:
            continue
        counts = group_counts(store, span.with_(window=window), attributes, config)
        for attribute in attributes:
            groups = {g: c for g, c in counts[attribute].items() if g is not None}
            result = assess_attribute(
                attribute,
                groups,
                min_group_size=config.min_group_size,
                reference_group=match_group(config.reference_group.get(attribute), groups),
                confidence=config.confidence,
                family_wise=True,
            )
            values = {
                "demographic_parity_difference": result.demographic_parity_difference.value,
                "equalized_odds_difference": result.equalized_odds_difference.value,
                "demographic_parity_ratio": result.demographic_parity_ratio.value,
            }
            for measure_name, value in values.items():
                series[attribute][measure_name][i] = value
    return FairnessTrend(series, config.max_difference, config.parity_ratio, config.min_group_size)


# ---- drift ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Bins:
    """A numeric column's bins and the bounds and scale its effect sizes need, fixed once from the reference."""

    fine: np.ndarray
    coarse: np.ndarray
    discrete: bool
    low: float
    high: float
    scale: float


@dataclass
class _Counts:
    """Counts of the drift columns over one window: full histograms of numeric columns, categories of the rest,
    and the window's size (weighted and observed: the tests count the rows observed under sampled logging)."""

    hist: dict[str, np.ndarray]
    cats: dict[str, dict[Any, float]]
    size: SampleSize

    def __add__(self, other: _Counts) -> _Counts:
        cats = {}
        for column, mine in self.cats.items():
            merged = dict(mine)
            for key, value in other.cats[column].items():
                merged[key] = merged.get(key, 0.0) + value
            cats[column] = merged
        return _Counts({c: h + other.hist[c] for c, h in self.hist.items()}, cats, self.size + other.size)


class _Counter:
    """Counts over windows with one store call per window, a window on the bucket grid summed from its buckets."""

    def __init__(
        self,
        store: PredictionReader,
        query: Query,
        grid_end: datetime,
        bucket: timedelta,
        edges: dict[str, Sequence[float]],
        categorical: list[str],
    ) -> None:
        self.store, self.query, self.grid_end, self.bucket = store, query, grid_end, bucket
        self.edges, self.categorical = edges, categorical
        self._cache: dict[Window, _Counts] = {}

    def counts(self, window: Window) -> _Counts:
        if window not in self._cache:
            on_grid = (self.grid_end - window.end) % self.bucket == timedelta(0)
            whole = window.length % self.bucket == timedelta(0)
            if window.length > self.bucket and on_grid and whole:
                parts = [
                    self.counts(Window(window.start + k * self.bucket, window.start + (k + 1) * self.bucket))
                    for k in range(window.length // self.bucket)
                ]
                total = parts[0]
                for part in parts[1:]:
                    total = total + part
                self._cache[window] = total
            else:
                self._cache[window] = self.direct(window)
        return self._cache[window]

    def direct(self, window: Window) -> _Counts:
        """The counts of one window from the store (one histograms call and one category count per column)."""
        query = self.query.with_(window=window)
        hists = self.store.histograms(query, self.edges) if self.edges else {}
        full = {c: np.concatenate([[h.underflow], h.counts, [h.overflow]]) for c, h in hists.items()}
        cats = {c: self.store.category_counts(query, c) for c in self.categorical}
        return _Counts(full, cats, self.store.sample_size(query))


def _drift(
    store: PredictionReader, model: str, config: DriftConfig, windows: list[Window], base: Path | None
) -> DriftTrend:
    reference = config.reference
    at = windows[-1].end
    span = Query(model=model, window=Window(windows[0].start, at), outcome="success")
    file_store = None
    if reference.file is not None:
        path = Path(reference.file)
        file_store = open_reference_file(path if path.is_absolute() or base is None else base / path, model)
    try:
        ref_store = file_store or store
        ref_at = reference_window(Window.ending(at, config.window), reference)
        ref_query = span.with_(window=ref_at or span.window)
        kinds = _drift_columns(ref_store, ref_query, store, span, config)
        numeric = [c for c, k in kinds.items() if k == "numeric"]
        categorical = [c for c, k in kinds.items() if k == "categorical"]
        bins = _numeric_bins(ref_store, ref_query, store, span, numeric)
        counter = _Counter(
            store, span, at, windows[0].length, {c: b.fine.tolist() for c, b in bins.items()}, categorical
        )
        file_counts = (  # a file's rows have no time: every window holds all of them
            _Counter(file_store, ref_query, at, windows[0].length, counter.edges, categorical).direct(ref_query.window)
            if file_store is not None
            else None
        )
        names = [display_name(c) for c in kinds]
        ratios: dict[str, Series] = {name: [None] * len(windows) for name in names}
        drifted = {name: [False] * len(windows) for name in names}
        methods: dict[str, str] = {}
        for i, window in enumerate(windows):
            ref_window = reference_window(Window.ending(window.end, config.window), reference)
            ref = counter.counts(ref_window) if ref_window is not None else file_counts
            if ref is None:
                continue
            cur = counter.counts(window)
            results = [
                result
                for column, kind in kinds.items()
                if (
                    result := _effect(
                        column, kind, bins.get(column), ref=ref, cur=cur, override=feature_override(config, column)
                    )
                )
                is not None
            ]
            decide(
                results,
                alpha=config.alpha,
                correction=config.correction,
                drift_share=config.drift_share,
                missing_threshold=config.missing_threshold,
            )
            for result in results:
                methods[result.name] = f"{result.effect_size_method} > {result.threshold:g}"
                drifted[result.name][i] = result.drifted
                if math.isfinite(result.effect_beyond_noise) and result.threshold > 0:
                    ratios[result.name][i] = max(0.0, result.effect_beyond_noise) / result.threshold
        described = f"the file {reference.file}" if reference.file is not None else _describe(reference, config)
        return DriftTrend(ratios, drifted, methods, described)
    finally:
        if file_store is not None:
            file_store.close()


def _describe(reference: Any, config: DriftConfig) -> str:
    if reference.start is not None and reference.end is not None:
        window = Window(reference.start, reference.end).to_dict()
        return f"the fixed reference {window['start']} to {window['end']}"
    ending = f"that ended {format_duration(reference.ending)} before" if reference.ending else "just before"
    last = format_duration(reference.last)
    return f"the {last} {ending} each {format_duration(config.window)} window ending with the bucket"


def _drift_columns(
    ref_store: PredictionReader, ref_query: Query, store: PredictionReader, span: Query, config: DriftConfig
) -> dict[str, Kind]:
    """Features on either side and the prediction and score on both, with their kind, overrides applied."""
    seen: dict[str, list[str]] = {}
    for side_store, query in ((ref_store, ref_query), (store, span)):
        for info in side_store.columns(query):
            if info.name.startswith(FEATURE_PREFIX) or info.name in DRIFT_OUTPUTS:
                seen.setdefault(info.name, []).append(info.kind)
    out: dict[str, Kind] = {}
    for column in sorted(seen):
        override = feature_override(config, column)
        if (column in DRIFT_OUTPUTS and len(seen[column]) < 2) or (override is not None and override.ignore):
            continue
        kind: Kind = "numeric" if set(seen[column]) == {"numeric"} else "categorical"
        out[column] = override.kind if override is not None and override.kind is not None else kind
    return out


def _numeric_bins(
    ref_store: PredictionReader, ref_query: Query, store: PredictionReader, span: Query, columns: list[str]
) -> dict[str, _Bins]:
    """Bins from the reference's percentiles, bounded by both sides' extremes, scaled by the reference's spread."""
    if not columns:
        return {}
    ref_summaries = ref_store.numeric_summaries(ref_query, columns)
    span_summaries = store.numeric_summaries(span, columns)
    out = {}
    for column in columns:
        ref, cur = ref_summaries[column], span_summaries[column]
        quantiles = ref_store.quantiles(ref_query, column, quantile_levels(N_FINE))
        if quantiles[0] is None or ref.min is None or ref.max is None:
            continue
        low = min(v for v in (ref.min, cur.min) if v is not None)
        high = max(v for v in (ref.max, cur.max) if v is not None)
        out[column] = _Bins(
            fine=fine_edges(quantiles),
            coarse=quantile_edges(quantiles[:: N_FINE // N_COARSE], outer=False),
            discrete=is_discrete(quantiles),
            low=low,
            high=high,
            scale=spread(ref_std=ref.std, cur_std=cur.std, ref_mean=ref.mean),
        )
    return out


def _effect(
    column: str,
    kind: Kind,
    bins: _Bins | None,
    *,
    ref: _Counts,
    cur: _Counts,
    override: FeatureOverride | None,
) -> ColumnDrift | None:
    """The drift job's comparison of one column between two windows' counts; ``None`` when a side is empty."""
    name = display_name(column)
    if kind == "numeric":
        if bins is None or column not in ref.hist:
            return None
        r, c = ref.hist[column], cur.hist[column]
        if r.sum() <= 0 or c.sum() <= 0:
            return None
        counts = NumericColumn(
            ref_fine=r,
            cur_fine=c,
            fine_edges=bins.fine,
            coarse_edges=bins.coarse,
            low=bins.low,
            high=bins.high,
            scale=bins.scale,
            discrete=bins.discrete,
            ref_effective=float(r.sum()) * ref.size.scale,
            cur_effective=float(c.sum()) * cur.size.scale,
        )
        return compare_numeric(name, counts, override)
    ref_counts = _present(ref.cats.get(column, {}))
    cur_counts = _present(cur.cats.get(column, {}))
    if not ref_counts or not cur_counts:
        return None
    return compare_categorical(
        name,
        ref_counts,
        cur_counts,
        override,
        ref_effective=sum(ref_counts.values()) * ref.size.scale,
        cur_effective=sum(cur_counts.values()) * cur.size.scale,
    )


def _present(counts: dict[Hashable, float]) -> dict[Hashable, float]:
    return {k: v for k, v in counts.items() if k is not None and v > 0}
