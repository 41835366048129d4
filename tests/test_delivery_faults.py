"""Delivery under faults, against the Slack stand-in: bounded waits, failures that show, SIGTERM mid-delivery,
a crash after Slack took a message, two processes racing between queuing and claiming, hostile values."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from analyzers.alerts import dispatch, outbox
from analyzers.alerts.channels.recording import RecordingSender
from analyzers.alerts.dispatch import flush, process, record
from analyzers.alerts.pacing import Pacing
from analyzers.cli import main
from analyzers.config.models import Config
from analyzers.findings import DriftMetrics, Finding, Signal
from analyzers.timeutil import Window, format_time
from tests.conftest import store_at
from tests.slack_server import FakeSlack

T0 = datetime(2026, 11, 20, tzinfo=timezone.utc)
TOKEN = "xoxb-fault-secret"


def slack_config(slack: FakeSlack, **delivery: Any) -> Config:
    return Config.model_validate(
        {
            "slack": {"token": TOKEN, "channel": "#ml", "base_url": slack.api_url},
            "delivery": delivery,
            "models": {"fraud": {"drift": {}}},
        }
    )


def drift(day: int, *features: str) -> Finding:
    window = Window(T0 + timedelta(days=day - 1), T0 + timedelta(days=day))
    signals = [Signal(f"feature:{f}", f"{f} drifted", "warning", 0.2, 0.03) for f in features]
    return Finding("fraud", "drift", window, "alert" if features else "ok", DriftMetrics(n_cur=500), signals=signals)


def write_slow_hour(tmp_path: Path, start: datetime) -> None:
    """An hour of predictions whose latency is above the configured p95 limit: one ops alert."""
    folder = tmp_path / "logs" / "svc"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for minute in range(0, 60, 2):
        ts = start + timedelta(minutes=minute)
        event = {
            "@timestamp": format_time(ts),
            "event": {"dataset": "ml.prediction", "outcome": "success"},
            "ml": {"prediction_id": f"p{ts.timestamp():.0f}", "model": {"name": "fraud"}, "latency_ms": 900.0},
        }
        lines.append(json.dumps(event))
    with (folder / f"predictions-{start:%Y-%m-%d}.ndjson").open("a") as out:
        out.write("\n".join(lines) + "\n")


def config_file(tmp_path: Path, slack: FakeSlack, *, every: str = "1h", delivery: str = "") -> Path:
    path = tmp_path / "predwatch.yml"
    path.write_text(
        "store: {local: {path: logs}}\nstate: {path: state}\n"
        f"slack: {{token: '${{PW_TEST_TOKEN}}', channel: '#ml', base_url: '{slack.api_url}'}}\n"
        f"delivery: {{{delivery}}}\n"
        "scheduler: {outbox_every: 1h}\n"
        "models:\n  fraud:\n    ingest_delay: 0s\n"
        f"    ops: {{window: 1h, schedule: {{every: {every}}}, min_rows: 1, max_silence: 2h,"
        " latency_ms: {p95: 500}}\n"
    )
    return path


def test_a_long_retry_after_is_not_waited_and_keeps_the_message_until_then(tmp_path: Path, slack: FakeSlack) -> None:
    store, config = store_at(tmp_path), slack_config(slack)
    slack.replies.append((429, {"Retry-After": "3600", "Content-Type": "application/json"}, '{"ok": false}'))
    report = process(store, config, [drift(1, "amount")], now=T0)
    assert slack.attempts == 1, "one attempt: a one-hour Retry-After is beyond delivery.max_wait (30s)"
    assert (report.failed, report.pending) == (1, 1)
    assert report.channels["slack"].retry_after_s == 3600
    assert "retried after 3,600 s" in " ".join(report.lines())
    (entry,) = outbox.pending(store).values()
    assert entry["deliveries"]["slack"]["not_before"] == "2026-11-20T01:00:00Z"
    flush(store, config, now=T0 + timedelta(minutes=10))
    assert slack.attempts == 1, "not tried again before the time Slack gave"
    report = flush(store, config, now=T0 + timedelta(hours=1, minutes=1))
    assert report.sent == 1
    assert len(slack.messages()) == 1


@pytest.mark.parametrize(
    ("fault", "shown"),
    [
        ((503, {"Content-Type": "text/plain"}, "upstream connect error"), "HTTP 503"),
        ((500, {"Content-Type": "application/json"}, '{"ok": false, "error": "fatal_error"}'), "HTTP 500"),
        ((200, {"Content-Type": "application/json"}, '{"ok": false, "error": "invalid_auth"}'), "invalid_auth"),
        ("hang", "unreachable"),
    ],
)
def test_a_failed_delivery_is_printed_and_fails_analyze_on_request(
    tmp_path: Path,
    slack: FakeSlack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fault: Any,
    shown: str,
) -> None:
    monkeypatch.setenv("PW_TEST_TOKEN", TOKEN)
    write_slow_hour(tmp_path, T0)
    path = config_file(tmp_path, slack, delivery="timeout: 1s, retries: 0")
    if fault == "hang":
        slack.stall_s = 3
    else:
        slack.replies.append(fault)
    at = format_time(T0 + timedelta(hours=1))
    code = main(["analyze", "-c", str(path), "--at", at, "--fail-on-delivery"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert shown in err
    assert "1 alert(s) kept, retried every 1h" in err
    assert TOKEN not in err
    slack.stall_s = 0
    assert main(["analyze", "-c", str(path), "--at", at, "--fail-on-delivery"]) == 0, "delivered on the next run"
    assert len(slack.messages()) == 1, "once, also after a hang in which Slack took the post"


def test_sigterm_during_a_delivery_stops_the_scheduler_and_keeps_the_message(tmp_path: Path, slack: FakeSlack) -> None:
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    write_slow_hour(tmp_path, now - timedelta(hours=1))
    path = config_file(tmp_path, slack, delivery="max_wait: 1h")  # a 10-minute Retry-After is waited out...
    slack.replies.append((429, {"Retry-After": "600", "Content-Type": "application/json"}, '{"ok": false}'))
    env = {**os.environ, "PW_TEST_TOKEN": TOKEN, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "analyzers.cli", "run", "-c", str(path), "--fail-on-delivery"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while slack.attempts == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert slack.attempts == 1, "the scheduler is waiting out Slack's Retry-After"
        proc.send_signal(signal.SIGTERM)  # ... unless the scheduler is asked to stop
        _out, err = proc.communicate(timeout=120)  # a guard against a hang, not a measure of speed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    messages = [json.loads(line)["message"] for line in err.splitlines() if line.startswith("{")]
    assert messages[-1] == "stopped", err[-2000:]
    assert proc.returncode == 3, "stopped with an undelivered alert and --fail-on-delivery"
    assert any("stopped before delivering" in m or "stopped while waiting" in m for m in messages), messages
    assert slack.attempts == 1
    with store_at(tmp_path) as store:
        (entry,) = outbox.pending(store).values()
        assert entry["deliveries"]["slack"]["status"] == "pending", "kept for the next run"


def test_a_crash_after_slack_took_the_message_leaves_exactly_one_message(
    tmp_path: Path, slack: FakeSlack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PW_TEST_TOKEN", TOKEN)
    write_slow_hour(tmp_path, T0)
    path = config_file(tmp_path, slack)
    at = format_time(T0 + timedelta(hours=1))
    slack.stall_s = 60  # Slack takes the post, then the sender is killed before it hears back
    proc = subprocess.Popen(
        [sys.executable, "-m", "analyzers.cli", "analyze", "-c", str(path), "--at", at],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PW_TEST_TOKEN": TOKEN},
    )
    try:
        deadline = time.monotonic() + 120
        while not slack.messages() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(slack.messages()) == 1
    finally:
        proc.kill()
        proc.wait()
    slack.stall_s = 0
    with store_at(tmp_path) as store:
        (entry,) = outbox.pending(store).values()
        assert entry["deliveries"]["slack"]["claimed_by"].endswith(f":{proc.pid}"), "the dead sender's claim"
    assert main(["analyze", "-c", str(path), "--at", at, "--fail-on-delivery"]) == 0
    err = capsys.readouterr().err
    assert "1 alert(s) already in Slack channel #ml after an interrupted delivery: not sent again" in err
    assert len(slack.messages()) == 1
    assert "conversations.history" in slack.calls, "looked in the channel before posting again"
    with store_at(tmp_path) as store:
        assert outbox.pending(store) == {}


def test_two_processes_racing_between_queuing_and_claiming_lose_no_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config.model_validate({"models": {"fraud": {"drift": {}}}})
    finding = drift(1, "amount")
    a_queued, b_done = threading.Event(), threading.Event()
    real_apply = dispatch.apply

    def paused_apply(store: Any, change: Any) -> bool:
        if threading.current_thread().name == "process-a":  # the injected pause, between queuing and the state
            a_queued.set()
            b_done.wait(30)
        return real_apply(store, change)

    monkeypatch.setattr(dispatch, "apply", paused_apply)
    a = threading.Thread(
        target=record, args=(store_at(tmp_path), config, [finding]), kwargs={"now": T0}, name="process-a"
    )
    a.start()
    assert a_queued.wait(30)
    b_store = store_at(tmp_path)
    b_report = record(b_store, config, [finding], now=T0)  # B sees the same change: queued already, B's state wins
    b_done.set()
    a.join(30)
    assert b_report.created == 1
    assert b_store.get_state("alert:fraud:drift:feature:amount")[0]["status"] == "firing"
    channel = RecordingSender("test channel")
    report = flush(b_store, config, sender=channel, now=T0)
    assert report.sent == 1, "A lost the state race but kept the entry B relied on"
    assert len(channel.messages) == 1
    flush(store_at(tmp_path), config, sender=channel, now=T0 + timedelta(minutes=1))
    assert len(channel.messages) == 1


def test_values_are_shown_as_written_and_never_format_or_ping(tmp_path: Path, slack: FakeSlack) -> None:
    config = Config.model_validate(
        {
            "slack": {"token": TOKEN, "channel": "#ml", "base_url": slack.api_url, "mention": "<!here>"},
            "models": {"fraud": {"fairness": {"severity": "critical"}}},
        }
    )
    window = Window(T0, T0 + timedelta(days=1))
    hostile = "age_band=<45 *bold* _it_ `tick <!here> &amp;"
    signal_ = Signal(f"group:{hostile}", f"{hostile} is served worse", "critical", 0.3, 0.1)
    finding = Finding("fraud", "fairness", window, "alert", DriftMetrics(n_cur=500), signals=[signal_])
    process(store_at(tmp_path), config, [finding], now=T0 + timedelta(days=1), pacing=Pacing(backoff_s=0.01))
    (post,) = slack.messages()
    body = post["body"]
    blocks = body["blocks"] if isinstance(body["blocks"], list) else json.loads(body["blocks"])
    mrkdwn = [b["text"]["text"] for b in blocks if b.get("text", {}).get("type") == "mrkdwn"]
    assert mrkdwn == ["<!here>"], "the only markup is the configured mention"
    texts = [
        e["text"]
        for b in blocks
        if b["type"] == "rich_text"
        for s in b["elements"]
        for e in s["elements"]
        if e["type"] == "text"
    ]
    assert f"group:{hostile}" in texts, "the subject, in a code element, exactly as written"
    assert any(hostile in t for t in texts)
    assert str(body.get("mrkdwn")).lower() in ("false", "0"), "the notification text is sent with markup off"
    assert "&lt;!here&gt;" in body["text"]
    assert "&amp;amp;" in body["text"]
    assert "<!here> fraud" in body["text"], "the configured mention stays a mention"
