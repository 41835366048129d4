"""What the HTML report shows, gathered from the store and the configuration.

The report is "as of" one evaluation time ``T`` (``--at``, else now less the model's ingest delay).
Each job's finding is for the window that job analyses at ``T``, resolved by :mod:`analyzers.windows`
exactly as ``analyze`` and the scheduler resolve it (its configured window, or ``window`` when the
caller overrides every job's window): read from the stored findings when one covers exactly that window,
and otherwise computed now (and not stored: writing a report changes nothing).  The "over time" sections
are computed from the store over ``[T - span, T)`` by :mod:`analyzers.report.trends`, so they show every
logged day even before any finding was stored; stored findings mark where a job alerted.  The drift
section's distributions are counted afresh from the store on common bins, since findings keep only
statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from analyzers.config.models import Config, JobConfig, ModelConfig, OpsConfig, QualityConfig
from analyzers.findings import DriftMetrics, Finding
from analyzers.findings.quality import QualityRow, quality_rows
from analyzers.jobs.registry import JOBS
from analyzers.report.trends import Trends, compute
from analyzers.runner import run_job, window_quality, with_paths_resolved
from analyzers.stats.drift import ColumnDrift
from analyzers.stats.ops import percentile_level
from analyzers.store import open_reference_file
from analyzers.store.base import PredictionReader, Query, Store
from analyzers.timeutil import Window, utcnow
from analyzers.windows import JobWindows, evaluation_time, resolve
from logshipper.schema import FEATURE_PREFIX

DEFAULT_JOBS: dict[str, type[JobConfig]] = {name: spec.config for name, spec in JOBS.items()}
DEFAULT_SPAN = timedelta(days=30)  # how far back the "over time" sections reach (trimmed to the first event)
UNCONFIGURED_WINDOW = timedelta(days=1)  # the operations plot's window when no ops job is configured
OUTPUT_COLUMNS = ("prediction", "score", "label")
MAX_DISTRIBUTIONS = 24  # features plotted (drifted and largest effects first); the table lists all
MAX_CATEGORIES = 10  # categories shown per categorical feature; the rest are pooled as "other"
NUMERIC_BINS = 30
MAX_DISCRETE_BINS = 40  # an integer feature spanning at most this many values gets one bin per value
TAIL = 0.005  # numeric bins span the 0.5-99.5% quantiles of both windows; tails fold into the end bins
MAX_BUCKETS = 200  # operations buckets over the window
LATENCY_SAMPLE = 20_000  # events read for latency percentiles per bucket
LATENCY_PERCENTILES = ("p50", "p95", "p99")
MIN_BUCKET_EVENTS = 5  # fewer events in a bucket give no latency percentile
LATENCY_EVENTS_PER_BUCKET = 30  # latency buckets are widened (whole volume buckets) to hold about this many
NICE_BUCKETS = tuple(
    timedelta(seconds=s) for s in (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
)

Source = Literal["stored", "computed"]


@dataclass
class JobSection:
    """One job in the report: its window and reference at ``T``, its finding (if any) and where it came from."""

    name: str
    configured: bool
    windows: JobWindows
    finding: Finding | None = None
    source: Source | None = None
    history: list[Finding] = field(default_factory=list)  # stored findings over the span, and this one
    config: JobConfig | None = None
    note: str | None = None

    @property
    def window(self) -> Window:
        return self.windows.window


@dataclass
class Distribution:
    """Reference and current shares of one drift column over common bins (numeric) or categories."""

    name: str
    kind: str
    ref: list[float]
    cur: list[float]
    n_ref: float
    n_cur: float
    edges: list[float] | None = None
    categories: list[str] | None = None
    discrete: bool = False  # numeric with one bin per integer value
    note: str | None = None


@dataclass
class OpsSeries:
    """Events and failures per bucket over the window, and latency percentiles per bucket."""

    window: Window
    bucket: timedelta
    starts: list[datetime]
    counts: list[float]
    failures: list[float]
    latency_bucket: timedelta
    latency_starts: list[datetime]
    latency: dict[str, list[float | None]]
    latency_sampled: int
    latency_total: int


@dataclass
class ReportData:
    """Everything one model's report shows as of ``at``: each job's window, and the trends over the span."""

    model: str
    at: datetime
    generated_at: datetime
    jobs: dict[str, JobSection]
    trends: Trends
    distributions: list[Distribution] = field(default_factory=list)
    distribution_notes: list[str] = field(default_factory=list)
    ops: OpsSeries | None = None
    ops_note: str | None = None
    window_override: timedelta | None = None

    @property
    def span(self) -> Window:
        return self.trends.span

    @property
    def quality(self) -> list[QualityRow]:
        """The data quality of each job's window (jobs over the same window share a row)."""
        return quality_rows([s.finding for s in self.jobs.values() if s.finding is not None])

    @property
    def n_events(self) -> float:
        return sum(self.trends.ops.counts) if self.trends.ops is not None else 0.0

    @property
    def n_failures(self) -> float:
        return sum(self.trends.ops.failures) if self.trends.ops is not None else 0.0


def gather(
    store: Store,
    model: str,
    *,
    config: Config | None = None,
    at: datetime | None = None,
    window: timedelta | None = None,
    span: timedelta = DEFAULT_SPAN,
    base: Path | None = None,
) -> ReportData:
    """Collect findings, trends, distributions and the operations series of one model as of ``at``.

    ``window`` replaces every job's configured window (references resolve from it as the jobs would).
    """
    model_config = config.models[model] if config is not None and model in config.models else ModelConfig()
    job_configs = _job_configs(config, model)
    quality = config.quality_for(model) if config is not None else QualityConfig()
    t = evaluation_time(model_config, at)
    jobs = {
        name: _job_section(
            store,
            model,
            name,
            model_config=model_config,
            job_config=job_configs[name],
            at=t,
            window=window,
            since=t - span,
            base=base,
            quality=quality,
        )
        for name in JOBS
    }
    findings = [f for section in jobs.values() for f in section.history]
    configured = {name: job for name, job in job_configs.items() if job is not None}
    data = ReportData(
        model=model,
        at=t,
        generated_at=utcnow(),
        jobs=jobs,
        trends=compute(store, model, configured, t, span, findings, base=base),
        window_override=window,
    )
    _add_distributions(store, data, base)
    ops_window = jobs["ops"].window
    volume = store.volume(Query(model=model, window=ops_window), _bucket(ops_window, jobs["ops"].config))
    if float(volume["count"].sum()) <= 0:
        data.ops_note = "No events were logged for this model in the operations window."
        return data
    try:
        data.ops = _ops_series(store, model, ops_window, volume)
    except Exception as exc:  # the operations plot's data cannot be read: the rest of the report stands
        data.ops_note = f"The operations series could not be read: {type(exc).__name__}: {exc}"
    return data


def _job_configs(config: Config | None, model: str) -> dict[str, JobConfig | None]:
    """The model's enabled jobs (``None`` for the others); every job with defaults for a model not configured."""
    if config is None or model not in config.models:
        return {name: DEFAULT_JOBS[name]() for name in JOBS}
    enabled = config.models[model].jobs()
    return {name: enabled.get(name) for name in JOBS}


def _job_section(
    store: Store,
    model: str,
    name: str,
    *,
    model_config: ModelConfig,
    job_config: JobConfig | None,
    at: datetime,
    window: timedelta | None,
    since: datetime,
    base: Path | None,
    quality: QualityConfig,
) -> JobSection:
    if job_config is not None:
        windows = resolve(model_config, job_config, at, length=window)
    else:
        windows = JobWindows(Window.ending(at, window or UNCONFIGURED_WINDOW), compares=False)
    past = store.read_findings(model, name, since=since, until=at)
    stored = [f for f in past if f.window == windows.window]
    section = JobSection(name, job_config is not None, windows, config=job_config)
    if stored:
        section.finding, section.source = stored[-1], "stored"
        if section.finding.quality is None:  # stored before findings carried it: measured now, for the page only
            section.finding.quality = window_quality(store, model, windows.window, quality)
    elif job_config is not None:
        job = with_paths_resolved(job_config, base)
        section.finding = run_job(store, model, name, job, windows.window, quality=quality)
        section.source = "computed"
    else:
        section.note = (
            f"The {name} job is not configured (or disabled) for this model, and no stored result covers this window."
        )
    current_id = section.finding.id if section.finding is not None else None
    series = [f for f in past if f.id != current_id]
    if section.finding is not None:
        series.append(section.finding)
    series.sort(key=lambda f: (f.window.end, f.window.start))
    section.history = series
    return section


# ---- drift distributions -------------------------------------------------------------------------
def _add_distributions(store: PredictionReader, data: ReportData, base: Path | None) -> None:
    section = data.jobs["drift"]
    finding = section.finding
    metrics = finding.metrics_as(DriftMetrics) if finding is not None else None
    if finding is None or metrics is None or not metrics.features:
        return
    features = sorted(metrics.features, key=_drift_rank)
    if len(features) > MAX_DISTRIBUTIONS:
        data.distribution_notes.append(
            f"Distributions are drawn for the {MAX_DISTRIBUTIONS} columns with the largest effects "
            f"(drifted first) of {len(features)}; the table lists them all."
        )
    try:
        ref_store, ref_query = _reference(store, data.model, section, finding, base)
    except Exception as exc:  # a reference that cannot be opened leaves the statistics, drops the plots
        data.distribution_notes.append(f"The reference could not be read for the distributions: {exc}")
        return
    cur_query = Query(model=data.model, window=section.window, outcome="success")
    try:
        for feature in features[:MAX_DISTRIBUTIONS]:
            data.distributions.append(
                _distribution(feature, store=store, cur_query=cur_query, ref_store=ref_store, ref_query=ref_query)
            )
    finally:
        if ref_store is not store:
            ref_store.close()


def _drift_rank(feature: ColumnDrift) -> tuple[int, float]:
    """Drifted columns first, then by effect size beyond noise relative to its threshold (largest first)."""
    return (0 if feature.drifted else 1, -(_relative_effect(feature) or 0.0))


def _relative_effect(feature: ColumnDrift) -> float | None:
    """Effect size over its threshold (1 is where a column starts to count as drifted)."""
    effect, threshold = feature.effect_beyond_noise, feature.threshold
    if not math.isfinite(effect):
        return None
    return effect / threshold if math.isfinite(threshold) and threshold > 0 else effect


def _reference(
    store: PredictionReader, model: str, section: JobSection, finding: Finding, base: Path | None
) -> tuple[PredictionReader, Query]:
    """The store and query of the drift reference, as the finding describes it (else as resolved for the job)."""
    described = finding.reference or {}
    file = described.get("file") or section.windows.reference_file
    if file:
        return _file_reference(file, model, section.window, base)
    ref_window = Window.from_dict(described["window"]) if described.get("window") else section.windows.reference
    if ref_window is None:
        raise ValueError("the drift job has no reference window")
    return store, Query(model=model, window=ref_window, outcome="success")


def _file_reference(path: str, model: str, window: Window, base: Path | None) -> tuple[PredictionReader, Query]:
    resolved = Path(path) if Path(path).is_absolute() or base is None else base / path
    return open_reference_file(str(resolved), model), Query(model=model, window=window)


def _column(name: str) -> str:
    return name if name in OUTPUT_COLUMNS else FEATURE_PREFIX + name


def _distribution(
    feature: ColumnDrift, *, store: PredictionReader, cur_query: Query, ref_store: PredictionReader, ref_query: Query
) -> Distribution:
    name, kind = feature.name, feature.kind
    column = _column(name)
    if column == "label":
        cur_query, ref_query = cur_query.with_(has_label=True), ref_query.with_(has_label=True)
    try:
        if kind == "numeric":
            return _numeric(
                column,
                name,
                feature.discrete,
                store=store,
                cur_query=cur_query,
                ref_store=ref_store,
                ref_query=ref_query,
            )
        return _categorical(column, name, store=store, cur_query=cur_query, ref_store=ref_store, ref_query=ref_query)
    except Exception as exc:  # one column that cannot be counted does not stop the report
        return Distribution(name, kind, [], [], 0.0, 0.0, note=f"could not be counted: {type(exc).__name__}: {exc}")


def _numeric(
    column: str,
    name: str,
    discrete: bool,
    *,
    store: PredictionReader,
    cur_query: Query,
    ref_store: PredictionReader,
    ref_query: Query,
) -> Distribution:
    ref_q = ref_store.quantiles(ref_query, column, [TAIL, 1 - TAIL])
    cur_q = store.quantiles(cur_query, column, [TAIL, 1 - TAIL])
    bounds = [v for v in (*ref_q, *cur_q) if v is not None and math.isfinite(v)]
    if not bounds:
        return Distribution(name, "numeric", [], [], 0.0, 0.0, note="no values in either window")
    edges = numeric_edges(min(bounds), max(bounds), discrete)
    ref = _folded_shares(ref_store.histogram(ref_query, column, edges.tolist()))
    cur = _folded_shares(store.histogram(cur_query, column, edges.tolist()))
    unit_bins = discrete and bool(np.allclose(np.diff(edges), 1.0))
    return Distribution(
        name, "numeric", ref[0], cur[0], ref[1], cur[1], edges=[float(e) for e in edges], discrete=unit_bins
    )


def numeric_edges(low: float, high: float, discrete: bool) -> np.ndarray:
    """Common bin edges over ``[low, high]``: one bin per integer for a narrow discrete column, else equal widths."""
    if discrete and high - low <= MAX_DISCRETE_BINS:
        return np.arange(math.floor(low) - 0.5, math.ceil(high) + 1.0, 1.0)
    if high <= low:
        pad = abs(low) * 0.05 or 0.5
        low, high = low - pad, high + pad
    return np.linspace(low, high, NUMERIC_BINS + 1)


def _folded_shares(hist: Any) -> tuple[list[float], float]:
    """Shares per bin with the under- and overflow folded into the end bins, and the count of values."""
    counts = np.asarray(hist.counts, dtype=float).copy()
    counts[0] += hist.underflow
    counts[-1] += hist.overflow
    total = float(counts.sum())
    shares = counts / total if total > 0 else counts
    return [float(v) for v in shares], total


def _categorical(
    column: str, name: str, *, store: PredictionReader, cur_query: Query, ref_store: PredictionReader, ref_query: Query
) -> Distribution:
    ref = {k: float(v) for k, v in ref_store.category_counts(ref_query, column).items() if k is not None}
    cur = {k: float(v) for k, v in store.category_counts(cur_query, column).items() if k is not None}
    labels, ref_shares, cur_shares = top_categories(ref, cur, MAX_CATEGORIES)
    return Distribution(
        name, "categorical", ref_shares, cur_shares, sum(ref.values()), sum(cur.values()), categories=labels
    )


def top_categories(ref: dict[Any, float], cur: dict[Any, float], k: int) -> tuple[list[str], list[float], list[float]]:
    """The ``k`` categories with the largest share in either window, and the rest pooled as ``other``."""
    n_ref, n_cur = sum(ref.values()), sum(cur.values())
    share_ref = {key: v / n_ref for key, v in ref.items()} if n_ref > 0 else {}
    share_cur = {key: v / n_cur for key, v in cur.items()} if n_cur > 0 else {}
    keys = sorted(
        set(share_ref) | set(share_cur), key=lambda key: (-max(share_ref.get(key, 0), share_cur.get(key, 0)), str(key))
    )
    shown, rest = keys[:k], keys[k:]
    labels = [str(key) for key in shown]
    ref_out = [share_ref.get(key, 0.0) for key in shown]
    cur_out = [share_cur.get(key, 0.0) for key in shown]
    if rest:
        labels.append(f"other ({len(rest)})")
        ref_out.append(sum(share_ref.get(key, 0.0) for key in rest))
        cur_out.append(sum(share_cur.get(key, 0.0) for key in rest))
    return labels, ref_out, cur_out


# ---- operations ----------------------------------------------------------------------------------
def _bucket(window: Window, config: JobConfig | None) -> timedelta:
    """The smallest round bucket, no finer than the ops job's own, that gives at most ``MAX_BUCKETS``."""
    floor = config.bucket if isinstance(config, OpsConfig) else NICE_BUCKETS[0]
    for bucket in NICE_BUCKETS:
        if bucket >= floor and window.length / bucket <= MAX_BUCKETS:
            return bucket
    return window.length / MAX_BUCKETS


def _ops_series(store: PredictionReader, model: str, window: Window, volume: pd.DataFrame) -> OpsSeries:
    bucket = volume["start"].iloc[1] - volume["start"].iloc[0] if len(volume) > 1 else window.length
    total = float(volume["count"].sum())
    wanted = bucket * (max(1, math.ceil(LATENCY_EVENTS_PER_BUCKET * len(volume) / total)) if total > 0 else 1)
    latency_bucket = next((b for b in NICE_BUCKETS if b >= wanted and b % bucket == timedelta(0)), wanted)
    n_latency = math.ceil(window.length / latency_bucket)
    sample = store.sample(Query(model=model, window=window), LATENCY_SAMPLE, columns=["timestamp", "latency_ms"])
    return OpsSeries(
        window=window,
        bucket=bucket,
        starts=[pd.Timestamp(s).to_pydatetime() for s in volume["start"]],
        counts=[float(c) for c in volume["count"]],
        failures=[float(f) for f in volume["failures"]],
        latency_bucket=latency_bucket,
        latency_starts=[window.start + i * latency_bucket for i in range(n_latency)],
        latency=latency_by_bucket(sample, window, latency_bucket, n_latency),
        latency_sampled=len(sample),
        latency_total=int(total),
    )


def latency_by_bucket(
    sample: pd.DataFrame, window: Window, bucket: timedelta, n_buckets: int
) -> dict[str, list[float | None]]:
    """p50/p95/p99 of latency per bucket (``None`` where a bucket has fewer than ``MIN_BUCKET_EVENTS``)."""
    out: dict[str, list[float | None]] = {name: [None] * n_buckets for name in LATENCY_PERCENTILES}
    if sample.empty or "latency_ms" not in sample:
        return out
    latency = pd.to_numeric(sample["latency_ms"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    offsets = (pd.to_datetime(sample["timestamp"], utc=True) - pd.Timestamp(window.start)).to_numpy()
    index = (offsets // np.timedelta64(bucket)).astype(int)
    keep = np.isfinite(latency) & (index >= 0) & (index < n_buckets)
    frame = pd.DataFrame({"bucket": index[keep], "latency": latency[keep]})
    levels = [percentile_level(name) for name in LATENCY_PERCENTILES]
    for b, values in frame.groupby("bucket")["latency"]:
        if len(values) < MIN_BUCKET_EVENTS:
            continue
        for name, value in zip(LATENCY_PERCENTILES, np.quantile(values.to_numpy(), levels), strict=True):
            out[name][int(b)] = float(value)
    return out
