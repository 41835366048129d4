"""``by_version: true``: a job's finding split per model version, each version's result in the JSON and its
alerts under subjects of their own, resolved when the version is gone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from analyzers.alerts.channels.recording import RecordingSender
from analyzers.alerts.dispatch import process
from analyzers.alerts.rules import alerts_of
from analyzers.config.models import Config, DriftConfig, OpsConfig
from analyzers.findings import DriftMetrics, OpsMetrics
from analyzers.runner import run_job
from analyzers.store import LocalStore
from analyzers.timeutil import Window, parse_time
from tests.finding_json import as_json
from tests.log_events import event, write_events
from tests.version_traffic import Version, write_traffic

T0 = parse_time("2026-11-20T00:00:00Z")
DAY1 = Window(T0, T0 + timedelta(days=1))
DAY2 = Window(T0 + timedelta(days=1), T0 + timedelta(days=2))


def test_drift_by_version_finds_the_version_that_moved(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    events = []
    for day, window in enumerate((DAY1, DAY2)):
        for i in range(3000):
            version = "v2" if day == 1 and i % 10 == 0 else "v1"
            shift = 1.0 if version == "v2" else 0.0
            ts = window.start + timedelta(seconds=float(rng.uniform(0, 86_000)))
            ml = {"model": {"name": "m", "version": version}, "features": {"x": float(rng.normal(shift, 1.0))}}
            events.append(event(ts, f"d{day}-{i}", {**ml, "prediction": {"label": int(rng.random() < 0.5)}}))
    write_events(tmp_path / "logs", events)
    config = DriftConfig(window="1d", reference={"start": DAY1.start, "end": DAY1.end}, by_version=True)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        finding = run_job(store, "m", "drift", config, DAY2)
    data = as_json(finding)
    assert finding.status == "alert"
    assert [s.subject for s in finding.signals] == ["version=v2:feature:x"]
    assert finding.signals[0].message.startswith("[v2] x drifted")
    split = finding.by_version
    assert split is not None
    assert [(v.version, v.status) for v in split.versions] == [("v1", "ok"), ("v2", "alert")]
    assert [v["version"] for v in data["by_version"]["versions"]] == ["v1", "v2"]
    v1, v2 = split.versions
    assert (v1.events, v2.events) == (2700, 300)
    assert v2.share == pytest.approx(0.1)
    whole, alone = finding.metrics_as(DriftMetrics), v2.metrics
    assert isinstance(alone, DriftMetrics)
    assert whole is not None
    assert (whole.n_cur, alone.n_cur) == (3000, 300)
    x = next(f for f in alone.features if f.name == "x")
    # the reference is the whole model's: each version is compared with what the model did before
    assert (x.n_ref, x.n_cur) == (3000, 300)
    assert x.drifted
    assert x.extra["mean_cur"] == pytest.approx(1.0, abs=0.15)


def test_ops_by_version_keeps_alerts_apart_and_resolves_a_version_that_left(tmp_path: Path) -> None:
    write_traffic(
        tmp_path / "logs",
        [
            Version("v1", 900, DAY1.start, DAY1.end),
            Version("v2", 300, DAY1.start, DAY1.end, error_rate=0.3),
            Version("v1", 900, DAY2.start, DAY2.end),
        ],
    )
    config = OpsConfig(window="1d", by_version=True, max_error_rate=0.1, latency_ms={}, min_rows=50)
    settings = Config.model_validate({"models": {"m": {"ops": config.model_dump()}}})
    sender = RecordingSender()
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        first = run_job(store, "m", "ops", config, DAY1)
        as_json(first)
        assert [a.key for a in alerts_of(first)] == ["m:ops:version=v2:metric:error_rate"]
        assert first.by_version is not None
        assert [(v.version, v.status) for v in first.by_version.versions] == [("v1", "ok"), ("v2", "alert")]
        whole = first.metrics_as(OpsMetrics)
        assert whole is not None
        assert whole.volume.total == 1200
        process(store, settings, [first], now=DAY1.end, sender=sender)
        second = run_job(store, "m", "ops", config, DAY2)
        assert second.status == "ok"
        assert second.by_version is not None
        assert [v.version for v in second.by_version.versions] == ["v1"]
        process(store, settings, [second], now=DAY2.end, sender=sender)
    fired, resolved = sender.messages
    assert [(i.kind, i.subject) for i in fired.items] == [("firing", "version=v2:metric:error_rate")]
    assert [(i.kind, i.subject) for i in resolved.items] == [("resolved", "version=v2:metric:error_rate")]


def test_without_by_version_nothing_is_split(tmp_path: Path) -> None:
    write_traffic(
        tmp_path / "logs", [Version("v1", 300, DAY1.start, DAY1.end), Version("v2", 300, DAY1.start, DAY1.end)]
    )
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        finding = run_job(store, "m", "ops", OpsConfig(window="1d"), DAY1)
    assert finding.by_version is None
    assert "by_version" not in finding.to_dict()
