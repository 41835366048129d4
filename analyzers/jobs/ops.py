"""Operations job: volume per bucket (a long enough silence alerts), error rate and latency percentiles.

Every event counts, failures included (a timeout's latency matters).  The error rate and latency are
judged only when the window holds at least ``min_rows`` events; silence is judged always, and a window
with no event at all alerts when it is at least ``max_silence`` long.
"""

from __future__ import annotations

from analyzers.config.models import OpsConfig
from analyzers.findings import Finding, OpsMetrics, Signal, Status
from analyzers.findings.ops import ErrorRate, Latency, Silence, Volume, VolumePoint
from analyzers.jobs.base import error_finding
from analyzers.stats.intervals import wilson
from analyzers.stats.ops import longest_silence, percentile_level
from analyzers.store.base import PredictionReader, Query
from analyzers.timeutil import Window, format_duration, format_time

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
    silence = longest_silence(counts)
    silent_for = min(silence.buckets * config.bucket, window.length)
    quiet = Silence(
        value_s=silent_for.total_seconds(),
        threshold_s=config.max_silence.total_seconds(),
        start=volume["start"].iloc[silence.start] if silence.start is not None else None,
        ongoing=silence.ongoing,
    )
    if quiet.start is not None and silent_for >= config.max_silence:
        signals.append(
            Signal(
                subject="metric:silence",
                message=(
                    f"no predictions for {format_duration(silent_for)} from {format_time(quiet.start)}"
                    f"{' until now' if silence.ongoing else ''} (limit {format_duration(config.max_silence)})"
                ),
                severity=config.severity,
                value=silent_for.total_seconds(),
                threshold=config.max_silence.total_seconds(),
            )
        )
    judged = total >= max(config.min_rows, 1)
    err = wilson(failures, total)
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
