"""Ops job end to end on the LocalStore: an hour with no traffic, a latency spike with errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from analyzers.config.models import OpsConfig
from analyzers.jobs import ops
from analyzers.store import LocalStore
from analyzers.timeutil import Window, format_time, parse_time
from tests.finding_json import as_json
from tests.log_events import write_events

T0 = parse_time("2026-11-20T00:00:00Z")


def event(ts, pid: str, latency: float, failed: bool = False) -> dict:
    ev = {
        "@timestamp": format_time(ts),
        "log.level": "error" if failed else "info",
        "message": "prediction failed" if failed else "prediction",
        "ecs.version": "8.11.0",
        "event": {"dataset": "ml.prediction", "kind": "event", "outcome": "failure" if failed else "success"},
        "service": {"name": "svc", "version": "1", "environment": "test"},
        "ml": {"prediction_id": pid, "model": {"name": "m", "version": "v1"}, "latency_ms": latency},
    }
    if failed:
        ev["error"] = {"type": "TimeoutError", "message": "upstream timed out"}
    else:
        ev["ml"]["prediction"] = {"label": 1, "score": 0.7}
    return ev


def traffic(log_dir: Path, start, minutes: int, skip: range = range(0), spike: range = range(0), seed: int = 0):
    """Four events a minute; none in the ``skip`` minutes; slow and often failing in the ``spike`` minutes."""
    rng = np.random.default_rng(seed)
    events, latencies = [], []
    for m in range(minutes):
        if m in skip:
            continue
        for k in range(4):
            slow = m in spike
            latency = float(rng.normal(1500, 100) if slow else rng.gamma(4, 5))
            failed = slow and rng.random() < 0.3
            events.append(event(start + timedelta(minutes=m, seconds=k * 15), f"e{m}-{k}", latency, failed))
            latencies.append(latency)
    write_events(log_dir, events)
    return np.array(latencies)


def _run(tmp_path: Path, span: Window, **cfg) -> dict:
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        return as_json(ops.run(store, "m", OpsConfig(**cfg), span))


def test_an_hour_without_traffic_alerts(tmp_path: Path) -> None:
    traffic(tmp_path / "logs", T0, 180, skip=range(60, 120))
    out = _run(tmp_path, Window(T0, T0 + timedelta(hours=3)), window="3h")
    assert out["status"] == "alert", out.get("error")
    (signal,) = out["signals"]
    assert signal["subject"] == "metric:silence"
    # exact to the predictions: the last at 00:59:45, the next at 02:00:00 (not the buckets' 01:00 to 02:00)
    assert signal["value"] == 3615
    assert out["silence"]["start"] == format_time(T0 + timedelta(minutes=59, seconds=45))
    assert out["silence"]["end"] == format_time(T0 + timedelta(hours=2))
    assert "from the last one at 2026-11-20T00:59:45Z to the next at 2026-11-20T02:00:00Z" in signal["message"]
    assert out["silence"]["ongoing"] is False
    assert out["volume"]["total"] == 480
    assert out["volume"]["empty_buckets"] == 12


def test_a_silence_across_two_windows_is_measured_from_the_last_prediction(tmp_path: Path) -> None:
    traffic(tmp_path / "logs", T0, 120, skip=range(95, 120))  # the last event at 01:34:45, none after
    first = _run(tmp_path, Window(T0, T0 + timedelta(hours=1)), max_silence="40m")
    assert first["status"] == "ok"
    later = _run(
        tmp_path, Window(T0 + timedelta(hours=1, minutes=20), T0 + timedelta(hours=2, minutes=20)), max_silence="40m"
    )
    (signal,) = later["signals"]
    assert later["silence"]["start"] == format_time(T0 + timedelta(hours=1, minutes=34, seconds=45))
    assert later["silence"]["ongoing"] is True
    assert signal["value"] == 45 * 60 + 15, "from 01:34:45 to the window's end at 02:20"


def test_low_traffic_is_judged_for_silence_and_raises_no_monitoring_alert(tmp_path: Path) -> None:
    from analyzers.alerts.rules import alerts_of
    from analyzers.findings import Finding

    events = [event(T0 + timedelta(minutes=m), f"q{m}", 12.0) for m in range(0, 60, 4)]  # 15 an hour
    write_events(tmp_path / "logs", events)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        finding = ops.run(store, "m", OpsConfig(), Window(T0, T0 + timedelta(hours=1)))
    assert isinstance(finding, Finding)
    assert finding.status == "insufficient_data", "15 events: too few to judge the error rate (min_rows 20)"
    assert alerts_of(finding) == [], "a quiet hour is not a monitoring problem"
    assert finding.metrics is not None
    assert finding.metrics.judged("metric:silence") is True
    assert finding.metrics.judged("metric:latency_p95") is False
    assert finding.metrics.dead_letters is None, "the local store keeps set-aside lines in place (see quality)"


def test_latency_spike_with_errors(tmp_path: Path) -> None:
    latencies = traffic(tmp_path / "logs", T0, 60, spike=range(20, 40), seed=1)
    out = _run(tmp_path, Window(T0, T0 + timedelta(hours=1)), latency_ms={"p95": 500, "p50": 100})
    subjects = {s["subject"] for s in out["signals"]}
    assert subjects == {"metric:latency_p95", "metric:error_rate"}, out["signals"]
    assert out["latency_ms"]["p95"]["value"] == pytest.approx(np.quantile(latencies, 0.95), rel=0.02)
    assert out["latency_ms"]["p50"]["value"] < 100
    assert out["error_rate"]["value"] == pytest.approx(out["volume"]["failures"] / 240)
    assert out["error_rate"]["value"] > 0.05


def test_healthy_service_is_ok(tmp_path: Path) -> None:
    traffic(tmp_path / "logs", T0, 60, seed=2)
    out = _run(tmp_path, Window(T0, T0 + timedelta(hours=1)))
    assert out["status"] == "ok"
    assert out["signals"] == []
    assert out["error_rate"]["value"] == 0.0
    assert out["latency_ms"]["p95"]["threshold"] == 500.0


def test_no_predictions_at_all_is_an_alert(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    out = _run(tmp_path, Window(T0, T0 + timedelta(hours=1)))
    assert out["status"] == "alert"
    assert out["signals"][0]["subject"] == "metric:silence"
    assert out["silence"]["ongoing"] is True


def test_longest_silence_and_percentile_names() -> None:
    from analyzers.stats.ops import longest_silence, percentile_level

    assert longest_silence([1, 0, 0, 3, 0, 0, 0, 2]).buckets == 3
    tie = longest_silence([0, 0, 5, 0, 0])
    assert (tie.start, tie.buckets, tie.ongoing) == (3, 2, True)
    assert longest_silence([1, 2]).start is None
    assert percentile_level("p99.9") == pytest.approx(0.999)
    assert percentile_level("P50") == 0.5
    with pytest.raises(ValueError, match="percentile"):
        percentile_level("max")
