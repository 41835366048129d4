"""What the HTML report shows, gathered from the store and the configuration.

Each job's finding for the report's window is read from the stored findings when one covers exactly
that window, and otherwise computed now (and not stored: writing a report changes nothing).  Stored
findings of the preceding ``history`` span give the series over time.  The drift section's
distributions are counted afresh from the store on common bins, since findings keep only statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from analyzers.config.models import Config, DriftConfig, FairnessConfig, JobConfig, OpsConfig, PerformanceConfig
from analyzers.findings import Finding
from analyzers.jobs.drift import reference_window
from analyzers.runner import JOB_NAMES, run_job, with_paths_resolved
from analyzers.stats.ops import percentile_level
from analyzers.store import open_reference_file
from analyzers.store.base import Query, Store
from analyzers.timeutil import Window, utcnow
from logshipper.schema import FEATURE_PREFIX

DEFAULT_JOBS: dict[str, type[JobConfig]] = {
    "drift": DriftConfig,
    "fairness": FairnessConfig,
    "performance": PerformanceConfig,
    "ops": OpsConfig,
}
OUTPUT_COLUMNS = ("prediction", "score", "label")
MAX_DISTRIBUTIONS = 24  # features plotted (drifted and largest effects first); the table lists all
MAX_CATEGORIES = 10  # categories shown per categorical feature; the rest are pooled as "other"
NUMERIC_BINS = 30
MAX_DISCRETE_BINS = 40  # an integer feature spanning at most this many values gets one bin per value
TAIL = 0.005  # numeric bins span the 0.5-99.5% quantiles of both windows; tails fold into the end bins
MAX_HISTORY = 400  # points per series over time (the most recent ones)
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
    """One job in the report: its finding for the window (if any), where it came from, and its history."""

    name: str
    configured: bool
    finding: Finding | None = None
    source: Source | None = None
    history: list[Finding] = field(default_factory=list)
    config: JobConfig | None = None
    note: str | None = None


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
    """Everything one model's report shows for one window."""

    model: str
    window: Window
    generated_at: datetime
    n_events: float
    n_failures: float
    jobs: dict[str, JobSection]
    distributions: list[Distribution] = field(default_factory=list)
    distribution_notes: list[str] = field(default_factory=list)
    reference: str | None = None
    ops: OpsSeries | None = None
    ops_note: str | None = None


def gather(
    store: Store,
    model: str,
    window: Window,
    config: Config | None = None,
    history: timedelta = timedelta(days=30),
    base: Path | None = None,
) -> ReportData:
    """Collect findings, history, distributions and operations series for one model and window."""
    jobs = {name: _job_section(store, model, window, name, config, history, base) for name in JOB_NAMES}
    volume = store.volume(Query(model=model, window=window), _bucket(window, jobs["ops"].config))
    data = ReportData(
        model=model,
        window=window,
        generated_at=utcnow(),
        n_events=float(volume["count"].sum()),
        n_failures=float(volume["failures"].sum()),
        jobs=jobs,
    )
    _add_distributions(store, data, config, base)
    if data.n_events > 0:
        data.ops = _ops_series(store, model, window, volume)
    else:
        data.ops_note = "No events were logged for this model in the window."
    return data


def _model_jobs(config: Config | None, model: str) -> dict[str, JobConfig] | None:
    """The model's enabled jobs, or ``None`` when there is no configuration for it (then defaults apply)."""
    if config is None or model not in config.models:
        return None
    return config.models[model].jobs()


def _job_section(
    store: Store,
    model: str,
    window: Window,
    name: str,
    config: Config | None,
    history: timedelta,
    base: Path | None,
) -> JobSection:
    configured = _model_jobs(config, model)
    default = DEFAULT_JOBS.get(name)  # estimation runs only where configured: it needs labelled scores
    job_config = (default() if default is not None else None) if configured is None else configured.get(name)
    past = store.read_findings(model, name, since=window.end - history, until=window.end)
    stored = [f for f in past if f.window == window]
    section = JobSection(name, job_config is not None, config=job_config)
    if stored:
        section.finding, section.source = stored[-1], "stored"
    elif job_config is not None:
        section.finding = run_job(store, model, name, with_paths_resolved(job_config, base), window)
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
    section.history = series[-MAX_HISTORY:]
    return section


# ---- drift distributions -------------------------------------------------------------------------
def _add_distributions(store: Store, data: ReportData, config: Config | None, base: Path | None) -> None:
    section = data.jobs["drift"]
    finding = section.finding
    if finding is None or not finding.metrics.get("features"):
        return
    features = sorted(finding.metrics["features"], key=_drift_rank)
    if len(features) > MAX_DISTRIBUTIONS:
        data.distribution_notes.append(
            f"Distributions are drawn for the {MAX_DISTRIBUTIONS} columns with the largest effects "
            f"(drifted first) of {len(features)}; the table lists them all."
        )
    try:
        ref_store, ref_query, data.reference = _reference(store, data, finding, section.config, base)
    except Exception as exc:  # a reference that cannot be opened leaves the statistics, drops the plots
        data.distribution_notes.append(f"The reference could not be read for the distributions: {exc}")
        return
    cur_query = Query(model=data.model, window=data.window, outcome="success")
    try:
        for feature in features[:MAX_DISTRIBUTIONS]:
            data.distributions.append(_distribution(store, cur_query, ref_store, ref_query, feature))
    finally:
        if ref_store is not store:
            ref_store.close()


def _drift_rank(feature: dict[str, Any]) -> tuple[int, float]:
    """Drifted columns first, then by effect size relative to its threshold (largest first)."""
    return (0 if feature.get("drifted") else 1, -(_relative_effect(feature) or 0.0))


def _relative_effect(feature: dict[str, Any]) -> float | None:
    """Effect size over its threshold (1 is where a column starts to count as drifted)."""
    effect, threshold = feature.get("effect_size"), feature.get("threshold")
    if not _finite(effect):
        return None
    return effect / threshold if _finite(threshold) and threshold > 0 else effect


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _reference(
    store: Store, data: ReportData, finding: Finding, config: JobConfig | None, base: Path | None
) -> tuple[Store, Query, str]:
    """The store and query of the drift reference, as the finding describes it (else as configured)."""
    described = finding.reference or {}
    if described.get("file"):
        return _file_reference(described["file"], data, base)
    if described.get("window"):
        ref_window = Window.from_dict(described["window"])
    else:
        drift_config = config if isinstance(config, DriftConfig) else DriftConfig()
        if drift_config.reference.file is not None:
            return _file_reference(drift_config.reference.file, data, base)
        ref_window = reference_window(data.window, drift_config.reference)
    query = Query(model=data.model, window=ref_window, outcome="success")
    window = ref_window.to_dict()
    return store, query, f"the window {window['start']} to {window['end']}"


def _file_reference(path: str, data: ReportData, base: Path | None) -> tuple[Store, Query, str]:
    resolved = Path(path) if Path(path).is_absolute() or base is None else base / path
    ref_store = open_reference_file(str(resolved), data.model)
    return ref_store, Query(model=data.model, window=data.window), f"the file {path}"


def _column(name: str) -> str:
    return name if name in OUTPUT_COLUMNS else FEATURE_PREFIX + name


def _distribution(
    store: Store, cur_query: Query, ref_store: Store, ref_query: Query, feature: dict[str, Any]
) -> Distribution:
    name, kind = str(feature.get("name")), str(feature.get("kind"))
    column = _column(name)
    if column == "label":
        cur_query, ref_query = cur_query.with_(has_label=True), ref_query.with_(has_label=True)
    try:
        if kind == "numeric":
            return _numeric(store, cur_query, ref_store, ref_query, column, name, bool(feature.get("discrete")))
        return _categorical(store, cur_query, ref_store, ref_query, column, name)
    except Exception as exc:  # one column that cannot be counted does not stop the report
        return Distribution(name, kind, [], [], 0.0, 0.0, note=f"could not be counted: {type(exc).__name__}: {exc}")


def _numeric(
    store: Store, cur_query: Query, ref_store: Store, ref_query: Query, column: str, name: str, discrete: bool
) -> Distribution:
    ref_q = ref_store.quantiles(ref_query, column, [TAIL, 1 - TAIL])
    cur_q = store.quantiles(cur_query, column, [TAIL, 1 - TAIL])
    bounds = [v for v in (*ref_q, *cur_q) if v is not None and math.isfinite(v)]
    if not bounds:
        return Distribution(name, "numeric", [], [], 0.0, 0.0, note="no values in either window")
    edges = numeric_edges(min(bounds), max(bounds), discrete)
    ref = _folded_shares(ref_store.histogram(ref_query, column, edges))
    cur = _folded_shares(store.histogram(cur_query, column, edges))
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
    store: Store, cur_query: Query, ref_store: Store, ref_query: Query, column: str, name: str
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


def _ops_series(store: Store, model: str, window: Window, volume: pd.DataFrame) -> OpsSeries:
    bucket = volume["start"].iloc[1] - volume["start"].iloc[0] if len(volume) > 1 else window.length
    total = float(volume["count"].sum())
    wanted = bucket * (max(1, math.ceil(LATENCY_EVENTS_PER_BUCKET * len(volume) / total)) if total > 0 else 1)
    latency_bucket = next((b for b in NICE_BUCKETS if b >= wanted and b % bucket == timedelta(0)), wanted)
    n_latency = math.ceil(window.length / latency_bucket)
    sample = store.sample(Query(model=model, window=window), LATENCY_SAMPLE, columns=["timestamp", "latency_ms"])
    return OpsSeries(
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
