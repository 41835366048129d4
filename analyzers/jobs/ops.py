"""Operations job: volume per bucket (a long enough silence alerts), error rate and latency percentiles.

Every event counts, failures included (a timeout's latency matters).  The error rate and latency are
judged only when the window holds at least ``min_rows`` events (20 by default: a quiet service's hour);
silence is judged always.  The longest run of empty buckets is measured exactly: from the last event
before it (looking back before the window when it starts the window, as far as the window's length or
``max_silence``) to the first event after it, or to the window's end while it lasts, so a silence that
spans two windows is caught and its times are those of the predictions themselves.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from analyzers.config.models import OpsConfig
from analyzers.findings import Finding, OpsMetrics, Signal, Status
from analyzers.findings.ops import ErrorRate, Latency, Silence, Volume, VolumePoint
from analyzers.formatting import format_span
from analyzers.jobs.base import error_finding
from analyzers.stats.intervals import wilson
from analyzers.stats.ops import longest_silence, percentile_level
from analyzers.stats.sampling import effective_pair
from analyzers.store.base import PredictionReader, Query
from analyzers.timeutil import Window, format_duration, format_time, parse_time

JOB = "ops"
DEFAULT_PERCENTILES = ("p50", "p95", "p99")


def run(store: PredictionReader, model: str, config: OpsConfig, window: Window) -> Finding:
    """Measure volume, errors and latency over the window; never raises."""
    try:
        return _run(store, model, config, window)
    except Exception as exc:  # a job reports its failure instead of raising
        return error_finding(model, JOB, window, exc)


def _run(store: PredictionReader, model: str, config: OpsConfig, window: Window) -> Finding:
    query = Query(model=model, window=window)
    volume = store.volume(query, config.bucket)
    counts = volume["count"].to_numpy(dtype=float)
    total = float(counts.sum())
    failures = float(volume["failures"].to_numpy(dtype=float).sum())
    signals: list[Signal] = []
    quiet = _silence(store, query, volume, config)
    if quiet.value_s > 0 and quiet.value_s >= quiet.threshold_s:
        signals.append(
            Signal(
                subject="metric:silence",
                message=f"{_describe(quiet, window)} (limit {format_duration(config.max_silence)})",
                severity=config.severity,
                value=quiet.value_s,
                threshold=quiet.threshold_s,
            )
        )
    judged = total >= max(config.min_rows, 1)
    # The rate from the weighted counts, its interval from the observations behind them (sampled logging).
    err = wilson(*effective_pair(failures, total, store.sample_size(query).effective), confidence=0.95)
    error_rate = ErrorRate(
        value=err.value,
        ci=[err.low, err.high] if err.low is not None else None,
        failures=failures,
        total=total,
        threshold=config.max_error_rate,
        judged=judged,
    )
    if judged and err.value is not None and err.value > config.max_error_rate:
        signals.append(
            Signal(
                subject="metric:error_rate",
                message=f"error rate {err.value:.2%} ({failures:g} of {total:g}) > {config.max_error_rate:.2%}",
                severity=config.severity,
                value=err.value,
                threshold=config.max_error_rate,
            )
        )
    names = list(dict.fromkeys([*DEFAULT_PERCENTILES, *config.latency_ms]))
    levels = [percentile_level(n) for n in names]
    values = store.quantiles(query, "latency_ms", levels) if total > 0 else [None] * len(names)
    latency: dict[str, Latency] = {}
    for name, value in zip(names, values, strict=True):
        threshold = config.latency_ms.get(name)
        latency[name] = Latency(value, threshold)
        if judged and value is not None and threshold is not None and value > threshold:
            signals.append(
                Signal(
                    subject=f"metric:latency_{name}",
                    message=f"latency {name} {value:.1f} ms > {threshold:g} ms",
                    severity=config.severity,
                    value=value,
                    threshold=threshold,
                )
            )
    metrics = OpsMetrics(
        volume=Volume(
            total=total,
            failures=failures,
            bucket_s=config.bucket.total_seconds(),
            buckets=len(counts),
            empty_buckets=int((counts <= 0).sum()),
            series=[
                VolumePoint(s, float(c), float(f))
                for s, c, f in zip(volume["start"], volume["count"], volume["failures"], strict=True)
            ],
        ),
        silence=quiet,
        error_rate=error_rate,
        latency_ms=latency,
        dead_letters=store.dead_letter_pile(),
    )
    status: Status
    if signals:
        status = "alert"
    elif total == 0 or not judged:
        status = "insufficient_data"
    else:
        status = "ok"
    reference = {
        "max_silence_s": config.max_silence.total_seconds(),
        "max_error_rate": config.max_error_rate,
        "latency_ms": dict(config.latency_ms),
        "min_rows": config.min_rows,
    }
    return Finding(model, JOB, window, status, metrics, reference, signals)


def _edge(store: PredictionReader, query: Query, bucket: Window, *, last: bool) -> datetime | None:
    """The time of the last (or first) event inside one bucket."""
    found: datetime | None = None
    for chunk in store.rows(query.with_(window=bucket), columns=["timestamp"]):
        if chunk.empty:
            continue
        moment = parse_time(pd.Timestamp(chunk["timestamp"].max() if last else chunk["timestamp"].min()))
        if found is None or (moment > found if last else moment < found):
            found = moment
    return found


def _bucket(volume: pd.DataFrame, index: int, size: timedelta) -> Window:
    start = parse_time(pd.Timestamp(volume["start"].iloc[index]))
    return Window(start, start + size)


def _silence(store: PredictionReader, query: Query, volume: pd.DataFrame, config: OpsConfig) -> Silence:
    """The longest run of empty buckets, measured from the event before it to the event after it."""
    window = query.window
    counts = volume["count"].to_numpy(dtype=float)
    run = longest_silence(counts)
    threshold = config.max_silence.total_seconds()
    if run.start is None:
        return Silence(0.0, threshold)
    lookback = max(window.length, config.max_silence)
    if run.start > 0:
        last = _edge(store, query, _bucket(volume, run.start - 1, config.bucket), last=True)
    else:
        before = query.with_(window=Window(window.start - lookback, window.start))
        earlier = store.volume(before, config.bucket)
        busy = [i for i, c in enumerate(earlier["count"].to_numpy(dtype=float)) if c > 0]
        last = _edge(store, before, _bucket(earlier, busy[-1], config.bucket), last=True) if busy else None
    first = None
    if not run.ongoing:
        first = _edge(store, query, _bucket(volume, run.start + run.buckets, config.bucket), last=False)
    began = last if last is not None else window.start - lookback
    ended = first if first is not None else window.end
    return Silence((ended - began).total_seconds(), threshold, last, run.ongoing, first)


def _describe(quiet: Silence, window: Window) -> str:
    """``no predictions for 1h 0m from the last one at ... to the next at ...``, exact to the events."""
    span = format_span(timedelta(seconds=quiet.value_s))
    if quiet.start is None:
        since = format_time(window.end - timedelta(seconds=quiet.value_s))
        return f"no predictions for at least {span} (none since {since} or earlier)"
    since = f"from the last one at {format_time(quiet.start)}"
    if quiet.ongoing or quiet.end is None:
        return f"no predictions for {span} {since}, none up to {format_time(window.end)}"
    return f"no predictions for {span} {since} to the next at {format_time(quiet.end)}"
