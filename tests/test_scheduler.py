"""The scheduler: windows tied to fire times, catch-up after a restart, heartbeats, a clean stop on SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from analyzers.config.loader import load_config
from analyzers.config.models import Schedule
from analyzers.findings import Finding
from analyzers.scheduler import Scheduler, heartbeat_key
from analyzers.store import LocalStore
from analyzers.timeutil import Window
from analyzers.triggers import fire_times, latest_fire_time, make_trigger

UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_interval_schedules_are_aligned_and_late_runs_keep_their_fire_time() -> None:
    hourly = make_trigger(Schedule(every=timedelta(hours=1)))
    assert latest_fire_time(hourly, at("2026-11-20T10:59:59")) == at("2026-11-20T10:00:00")
    assert fire_times(hourly, at("2026-11-20T07:00:00"), at("2026-11-20T10:30:00"), 24) == [
        at("2026-11-20T08:00:00"),
        at("2026-11-20T09:00:00"),
        at("2026-11-20T10:00:00"),
    ]
    assert fire_times(hourly, at("2026-11-01T00:00:00"), at("2026-11-20T10:30:00"), 2) == [
        at("2026-11-20T09:00:00"),
        at("2026-11-20T10:00:00"),
    ]


def test_cron_schedules() -> None:
    daily = make_trigger(Schedule(cron="30 2 * * *"))
    assert latest_fire_time(daily, at("2026-11-20T01:00:00")) == at("2026-11-19T02:30:00")
    assert fire_times(daily, at("2026-11-17T02:30:00"), at("2026-11-20T03:00:00"), 10) == [
        at("2026-11-18T02:30:00"),
        at("2026-11-19T02:30:00"),
        at("2026-11-20T02:30:00"),
    ]
    weekly = make_trigger(Schedule(cron="0 6 * * 1"))
    assert latest_fire_time(weekly, at("2026-11-22T00:00:00")) == at("2026-11-16T06:00:00")


def write_events(log_dir: Path, start: datetime, hours: int) -> None:
    folder = log_dir / "svc"
    folder.mkdir(parents=True, exist_ok=True)
    by_day: dict[str, list[str]] = {}
    for i in range(hours * 12):
        ts = start + timedelta(minutes=5 * i)
        event = {
            "@timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "event": {"dataset": "ml.prediction", "outcome": "success"},
            "ml": {
                "prediction_id": f"p{i}",
                "model": {"name": "fraud"},
                "features": {"x": i % 7},
                "prediction": {"label": i % 2, "score": 0.5},
                "latency_ms": 10.0,
            },
        }
        by_day.setdefault(ts.strftime("%Y-%m-%d"), []).append(json.dumps(event))
    for day, lines in by_day.items():
        (folder / f"predictions-{day}.ndjson").write_text("\n".join(lines) + "\n")


def config_file(tmp_path: Path, every: str = "1h") -> Path:
    path = tmp_path / "predwatch.yml"
    path.write_text(
        "store: {local: {path: logs}}\n"
        "state: {path: state}\n"
        "models:\n"
        "  fraud:\n"
        "    ingest_delay: 0s\n"
        f"    ops: {{window: 1h, schedule: {{every: {every}}}, min_rows: 1, max_silence: 2h}}\n"
    )
    return path


def test_a_restart_catches_up_on_missed_windows(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    write_events(tmp_path / "logs", now - timedelta(hours=6), 6)
    loaded = load_config(config_file(tmp_path))
    store = LocalStore(tmp_path / "logs", tmp_path / "state")
    scheduler = Scheduler(loaded, store)
    assert scheduler.catch_up() == 1, "first start: the latest window only"
    doc, _ = store.get_state(heartbeat_key("fraud", "ops"))
    assert doc["window_end"] == now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert doc["status"] in ("ok", "alert")
    assert set(doc) >= {"ran_at", "window_end", "status", "duration_s"}
    store.put_state(
        heartbeat_key("fraud", "ops"),
        {**doc, "window_end": (now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")},
        _,
    )
    assert Scheduler(loaded, store).catch_up() == 3, "three hourly windows missed"
    assert Scheduler(loaded, store).catch_up() == 0, "nothing missed any more"
    ends = sorted(f.window.end for f in store.read_findings(model="fraud", job="ops"))
    assert ends[-3:] == [now - timedelta(hours=2), now - timedelta(hours=1), now]
    store.close()


def test_predwatch_run_runs_on_schedule_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    write_events(tmp_path / "logs", now - timedelta(hours=2), 3)
    path = config_file(tmp_path, every="1s")
    proc = subprocess.Popen(
        [sys.executable, "-m", "analyzers.cli", "run", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        store = LocalStore(tmp_path / "logs", tmp_path / "state")
        deadline = time.monotonic() + 60
        seen: set[str] = set()
        while time.monotonic() < deadline and len(seen) < 3:
            found = store.get_state(heartbeat_key("fraud", "ops"))
            if found is not None:
                seen.add(found[0]["window_end"])
            time.sleep(0.2)
        assert len(seen) >= 3, "the job ran on its 1-second schedule"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    events = [json.loads(line) for line in err.splitlines() if line.strip()]
    messages = [e["message"] for e in events]
    assert messages[0] == "started"
    assert "job finished" in messages
    assert messages[-1] == "stopped"
    assert all(e["service"]["name"] == "predwatch-scheduler" and "@timestamp" in e for e in events)
    finished = next(e for e in events if e["message"] == "job finished")
    assert finished["predwatch"]["model"] == "fraud"
    assert finished["predwatch"]["job"] == "ops"


def test_a_sigterm_just_before_the_scheduler_starts_still_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signal lands after the catch-up's stop check and before the scheduler runs: it must not be lost."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    write_events(tmp_path / "logs", datetime.now(UTC) - timedelta(hours=1), 1)
    loaded = load_config(config_file(tmp_path))
    store = LocalStore(tmp_path / "logs", tmp_path / "state")
    start = BlockingScheduler.start
    hung: list[bool] = []

    def start_after_a_signal(self: BlockingScheduler, *args: object, **kwargs: object) -> None:
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # serve()'s handler, as the signal would call it
        guard = threading.Timer(30, lambda: (hung.append(True), self.shutdown(wait=False)))
        guard.start()
        try:
            start(self, *args, **kwargs)
        finally:
            guard.cancel()

    monkeypatch.setattr(BlockingScheduler, "start", start_after_a_signal)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert Scheduler(loaded, store).serve() == 0
    finally:
        for signum, handler in handlers.items():  # serve() installed its own
            signal.signal(signum, handler)
        store.close()
    assert not hung, "the scheduler ran on after the signal until the test's guard stopped it"


def test_a_run_longer_than_its_timeout_is_reported_and_the_next_one_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = load_config(config_file(tmp_path))
    ops = loaded.config.models["fraud"].ops
    assert ops is not None
    ops.timeout = timedelta(milliseconds=50)
    release = threading.Event()

    def stuck(_store: object, model: str, name: str, _job: object, window: Window, *, quality: object) -> Finding:
        release.wait(5)
        return Finding(model, name, window, "ok")  # too late: the run was already reported

    monkeypatch.setattr("analyzers.scheduler.run_job", stuck)
    (tmp_path / "logs").mkdir()
    store = LocalStore(tmp_path / "logs", tmp_path / "state")
    scheduler = Scheduler(loaded, store)
    fire = at("2026-11-20T10:00:00")
    try:
        finding = scheduler.run_once("fraud", "ops", fire)
        assert finding is not None
        assert finding.status == "error"
        assert "timed out" in (finding.error or "")
        doc, _ = store.get_state(heartbeat_key("fraud", "ops"))
        assert doc["status"] == "error"
        assert "timed out" in doc["error"]
        assert doc["window_end"] == "2026-11-20T10:00:00Z"
        assert store.get_state("alert:fraud:ops:monitoring")[0]["status"] == "firing"
        (failed,) = [r for r in caplog.records if r.getMessage() == "job failed"]
        assert failed.levelno == logging.ERROR
        assert "timed out" in failed.predwatch["error"]
        assert scheduler.run_once("fraud", "ops", fire + timedelta(hours=1)) is None, "still running: skipped"
    finally:
        release.set()
        store.close()


def test_one_message_per_model_per_tick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzers.alerts.channels.recording import RecordingSender
    from analyzers.findings import Signal

    path = tmp_path / "predwatch.yml"
    path.write_text(
        "store: {local: {path: logs}}\nstate: {path: state}\nscheduler: {group_wait: 1h}\n"
        "models:\n"
        "  fraud:\n    ingest_delay: 0s\n    drift: {window: 1h}\n    ops: {window: 1h}\n"
        "  eta:\n    ingest_delay: 0s\n    ops: {window: 1h}\n"
    )

    def alerting(_store: object, model: str, name: str, _job: object, window: Window, *, quality: object) -> Finding:
        return Finding(model, name, window, "alert", signals=[Signal(f"metric:{name}", f"{name} is off")])

    monkeypatch.setattr("analyzers.scheduler.run_job", alerting)
    (tmp_path / "logs").mkdir()
    channel = RecordingSender("test channel")
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        scheduler = Scheduler(load_config(path), store, senders={"terminal": channel})
        fire = at("2026-11-20T10:00:00")
        scheduler.run_once("fraud", "ops", fire)
        assert channel.messages == [], "fraud's drift fired at the same time and is still running"
        scheduler.run_once("eta", "ops", fire)
        scheduler.run_once("fraud", "drift", fire)
        assert [(m.model, sorted(i.job for i in m.items)) for m in channel.messages] == [
            ("eta", ["ops"]),
            ("fraud", ["drift", "ops"]),
        ]
    with LocalStore(tmp_path / "logs", tmp_path / "restarted") as store:
        for model, job in (("fraud", "drift"), ("fraud", "ops"), ("eta", "ops")):
            store.put_state(heartbeat_key(model, job), {"window_end": "2026-11-20T08:00:00Z"})
        monkeypatch.setattr("analyzers.scheduler.utcnow", lambda: at("2026-11-20T10:30:00"))
        channel.messages.clear()
        scheduler = Scheduler(load_config(path), store, senders={"terminal": channel})
        assert scheduler.catch_up() == 6, "09:00 and 10:00 for three jobs"
        assert [m.model for m in channel.messages] == ["eta", "fraud"], "09:00: one message per model"
        assert sorted(i.job for i in channel.messages[1].items) == ["drift", "ops"]
