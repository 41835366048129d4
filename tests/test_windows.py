"""One meaning for every window: resolution at a time, the same for every job, and no verdict on a thin span."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from analyzers.config.models import (
    Config,
    DriftConfig,
    FairnessConfig,
    ModelConfig,
    OpsConfig,
    PerformanceConfig,
    ReferenceConfig,
)
from analyzers.jobs import coverage, drift, fairness
from analyzers.report import gather
from analyzers.runner import run_jobs
from analyzers.store import LocalStore
from analyzers.store.base import Query
from analyzers.timeutil import Window, parse_time
from analyzers.windows import evaluation_time, job_window, reference_window, resolve
from tests.finding_json import as_json
from tests.log_events import event, write_events

T = parse_time("2026-11-23T00:00:00Z")
DAY = timedelta(days=1)
RELATIVE = ReferenceConfig(last="7d", ending="7d")


def test_relative_reference_ends_ending_before_the_window_starts_for_every_job() -> None:
    model = ModelConfig(ingest_delay="0s")
    drift_job = DriftConfig(window="1d", reference=RELATIVE)
    performance_job = PerformanceConfig(window="1d", reference=RELATIVE)
    expected = Window(T - 15 * DAY, T - 8 * DAY)
    assert resolve(model, drift_job, T).reference == expected
    assert resolve(model, performance_job, T).reference == expected
    assert resolve(model, drift_job, T).window == Window(T - DAY, T)


def test_last_alone_is_just_before_the_window_and_no_reference_is_the_previous_window() -> None:
    window = Window(T - 7 * DAY, T)
    assert reference_window(window, ReferenceConfig(last="7d")) == Window(T - 14 * DAY, T - 7 * DAY)
    assert reference_window(window, None) == Window(T - 14 * DAY, T - 7 * DAY)


def test_fixed_and_file_references() -> None:
    fixed = ReferenceConfig(start="2026-11-01", end="2026-11-08")
    assert reference_window(Window(T - DAY, T), fixed) == Window(parse_time("2026-11-01"), parse_time("2026-11-08"))
    resolved = resolve(ModelConfig(), DriftConfig(reference=ReferenceConfig(file="train.parquet")), T)
    assert resolved.reference is None
    assert resolved.reference_file == "train.parquet"


def test_jobs_without_a_reference_compare_with_nothing() -> None:
    resolved = resolve(ModelConfig(), FairnessConfig(window="7d"), T)
    assert resolved.compares is False
    assert resolved.window == Window(T - 7 * DAY, T)


def test_evaluation_time_is_at_or_now_less_the_ingest_delay() -> None:
    model = ModelConfig(ingest_delay="5m")
    assert evaluation_time(model, T) == T
    assert evaluation_time(model, now=T) == T - timedelta(minutes=5)
    assert job_window(model, OpsConfig(window="1h"), now=T) == Window(
        T - timedelta(minutes=65), T - timedelta(minutes=5)
    )


@pytest.mark.parametrize(
    "reference",
    [{"last": "0s"}, {"last": "7d", "ending": "-1d"}, {"start": "2026-11-08", "end": "2026-11-01"}],
)
def test_meaningless_references_are_configuration_errors(reference: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        ReferenceConfig(**reference)


def _days(log_dir: Path, start: int, end: int, per_day: int = 240, seed: int = 0) -> None:
    """Predictions spread evenly over days ``start``..``end - 1`` before ``T``, with a group and feedback."""
    rng = np.random.default_rng(seed)
    events = []
    for day in range(start, end):
        for i in range(per_day):
            ts = T - (day + 1) * DAY + timedelta(seconds=float(rng.uniform(0, 86_399)))
            x = float(rng.normal())
            ml = {"features": {"x": x}, "prediction": {"label": int(x > 0), "score": 0.5}, "groups": {"g": "ab"[i % 2]}}
            events.append(event(ts, f"d{day}-{i}", ml))
            events.append(event(ts + timedelta(minutes=1), f"d{day}-{i}", {"label": int(x > 0.1)}, "ml.feedback"))
    write_events(log_dir, events)


@pytest.fixture(scope="module")
def ten_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten days of logs ending at ``T``."""
    root = tmp_path_factory.mktemp("ten-days")
    _days(root / "logs", 0, 10)
    return root


def test_a_reference_holding_two_of_its_seven_days_gives_no_verdict(ten_days: Path) -> None:
    config = DriftConfig(window="1d", reference=RELATIVE, min_rows=50)
    with LocalStore(ten_days / "logs", ten_days / "state") as store:
        out = as_json(drift.run(store, "m", config, Window(T - DAY, T)))
    assert out["status"] == "insufficient_data"
    assert out["reason"].startswith("the reference 2026-11-08T00:00:00Z to 2026-11-15T00:00:00Z holds predictions")
    assert "in 7 of its 24 slots (29% < min_coverage 80%" in out["reason"]
    assert out["coverage"]["reference"]["slots_with_data"] == 7
    assert out["coverage"]["window"]["share"] == 1.0
    assert out["reference"]["window"] == {"start": "2026-11-08T00:00:00Z", "end": "2026-11-15T00:00:00Z"}


def test_min_coverage_is_the_users_to_lower(ten_days: Path) -> None:
    config = DriftConfig(window="1d", reference=RELATIVE, min_rows=50, min_coverage=0.25)
    with LocalStore(ten_days / "logs", ten_days / "state") as store:
        out = as_json(drift.run(store, "m", config, Window(T - DAY, T)))
    assert out["status"] in ("ok", "alert")
    assert out["coverage"]["reference"]["share"] == pytest.approx(7 / 24)


def test_a_window_past_the_end_of_the_logs_gives_no_fairness_verdict(ten_days: Path) -> None:
    late = Window(T - 10 * timedelta(hours=1), T + 14 * timedelta(hours=1))
    config = FairnessConfig(window="1d", min_group_size=10, min_rows=10)
    with LocalStore(ten_days / "logs", ten_days / "state") as store:
        out = as_json(fairness.run(store, "m", config, late))
        covered = coverage.measure(store, Query(model="m", window=late))
    assert out["status"] == "insufficient_data"
    assert "the window" in out["reason"]
    assert "data only from 2026-11-22T14:00:00Z to 2026-11-23T00:00:00Z" in out["reason"]
    assert covered.filled == 10


def test_analyze_and_report_resolve_the_same_windows(ten_days: Path, tmp_path: Path) -> None:
    model = ModelConfig(
        ingest_delay="0s",
        drift=DriftConfig(window="1d", reference=ReferenceConfig(last="3d", ending="1d"), min_rows=50),
        performance=PerformanceConfig(window="2d", reference=ReferenceConfig(last="3d", ending="1d"), min_labels=20),
        fairness=FairnessConfig(window="3d", min_group_size=10),
        ops=OpsConfig(window="6h"),
    )
    config = Config(models={"m": model})
    with LocalStore(ten_days / "logs", tmp_path / "state") as store:
        findings = {f.job: f for f in run_jobs(store, config, at=T)}
        data = gather(store, "m", config=config, at=T)
    for job, finding in findings.items():
        assert data.jobs[job].window == finding.window, job
        assert data.jobs[job].source == "stored", job  # the report shows what analyze stored
    assert findings["drift"].reference["window"] == {"start": "2026-11-18T00:00:00Z", "end": "2026-11-21T00:00:00Z"}
    assert findings["performance"].to_dict()["reference"]["window"] == {
        "start": "2026-11-17T00:00:00Z",
        "end": "2026-11-20T00:00:00Z",
    }
