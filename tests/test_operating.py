"""Operating predwatch: status with firing alerts and the outbox, a read-only dry run, check-config against
the logs, plain terminal text, the lean install's message, and messages an on-call engineer acts on."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rich.console import Console

from analyzers.alerts.channels.recording import RecordingSender
from analyzers.alerts.channels.terminal import TerminalSender
from analyzers.alerts.dispatch import process
from analyzers.alerts.message import build_message
from analyzers.alerts.state import Notification
from analyzers.cli import main
from analyzers.config.models import Config
from analyzers.findings import DriftMetrics, Finding, OpsMetrics, Signal
from analyzers.store import LocalStore
from analyzers.timeutil import Window, format_time
from tests.log_events import event, write_events
from tests.slack_server import FakeSlack

T0 = datetime(2026, 11, 20, tzinfo=timezone.utc)
NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


def slow_hour(log_dir: Path, start: datetime, latency_ms: float = 900.0) -> None:
    events = [
        event(start + timedelta(minutes=m), f"s{start:%H}{m}", {"latency_ms": latency_ms}) for m in range(0, 60, 2)
    ]
    write_events(log_dir, events)


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "predwatch.yml"
    path.write_text("store: {local: {path: logs}}\nstate: {path: state}\n" + body)
    return path


OPS = "models:\n  m:\n    ingest_delay: 0s\n    ops: {window: 1h, min_rows: 1, latency_ms: {p95: 500}}\n"


def test_status_shows_firing_alerts_and_the_undelivered_outbox(
    tmp_path: Path, slack: FakeSlack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PW_TOKEN", "xoxb-status")
    monkeypatch.setenv("COLUMNS", "200")
    slow_hour(tmp_path / "logs", T0)
    slack_line = f"slack: {{token: '${{PW_TOKEN}}', channel: '#ml', base_url: '{slack.api_url}'}}\n"
    path = write_config(tmp_path, slack_line + "delivery: {retries: 0}\n" + OPS)
    slack.replies.append((503, {"Content-Type": "text/plain"}, "down"))
    at = format_time(T0 + timedelta(hours=1))
    assert main(["analyze", "-c", str(path), "--at", at]) == 0, "a failed delivery alone does not fail analyze"
    err = capsys.readouterr().err
    assert "Slack channel #ml refused the message: HTTP 503" in err
    assert "1 alert(s) kept, retried every 1m" in err
    assert main(["status", "-c", str(path), "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    (firing,) = status["firing"]
    assert firing["key"] == "m:ops:metric:latency_p95"
    assert firing["since"] == at
    assert firing["silenced_by"] is None
    assert firing["next_resend_at"] is not None
    (waiting,) = status["outbox"]
    assert (waiting["channel"], waiting["status"], waiting["attempts"]) == ("slack", "pending", 1)
    assert "HTTP 503" in waiting["last_error"]
    assert main(["status", "-c", str(path)]) == 0
    text = capsys.readouterr().out
    assert "firing alerts (1)" in text
    assert "outbox: 1 undelivered" in text
    assert "m:ops:metric:latency_p95" in text


def test_a_dry_run_needs_no_token_and_leaves_the_state_file_byte_identical(
    tmp_path: Path, slack: FakeSlack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_hour(tmp_path / "logs", T0)
    slow_hour(tmp_path / "logs", T0 + timedelta(hours=1))
    slow_hour(tmp_path / "logs", T0 + timedelta(hours=8), latency_ms=20.0)
    slack_line = f"slack: {{token: '${{PW_DRY_TOKEN}}', channel: '#ml', base_url: '{slack.api_url}'}}\n"
    path = write_config(tmp_path, slack_line + OPS)
    monkeypatch.setenv("PW_DRY_TOKEN", "xoxb-dry")
    assert main(["analyze", "-c", str(path), "--at", format_time(T0 + timedelta(hours=1))]) == 0
    state = tmp_path / "state" / "predwatch.sqlite"
    before = hashlib.sha256(state.read_bytes()).hexdigest()
    monkeypatch.delenv("PW_DRY_TOKEN")
    capsys.readouterr()
    assert main(["analyze", "-c", str(path), "--at", format_time(T0 + timedelta(hours=2)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "still firing" not in out, "within its cooldown: nothing would be sent"
    assert main(["analyze", "-c", str(path), "--at", format_time(T0 + timedelta(hours=9)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "resolved · ops metric:latency_p95" in out, "what a later run would send"
    assert "dry run: would go to slack" in out
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before
    assert len(slack.messages()) == 1, "only the real run sent"
    monkeypatch.setenv("PW_DRY_TOKEN", "xoxb-dry")
    assert main(["status", "-c", str(path), "--format", "json"]) == 0
    latest = json.loads(capsys.readouterr().out)["latest"]
    assert [f["window"]["end"] for f in latest] == [format_time(T0 + timedelta(hours=1))], "no dry-run finding"


def test_check_config_reports_each_mistake_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = tmp_path / "logs"
    events = [
        event(
            NOW - timedelta(hours=1, minutes=m),
            f"c{m}",
            {
                "features": {"texture": 0.5 * m, "country": "DE"},
                "groups": {"age_band": "<45" if m % 2 else "45+"},
                "prediction": {"label": m % 2},
            },
        )
        for m in range(40)
    ]
    write_events(logs, events)
    path = write_config(
        tmp_path,
        "models:\n"
        "  m:\n"
        "    drift:\n"
        "      reference: {file: train.parquet}\n"  # line 6: does not exist
        "      features:\n"
        "        textur: {threshold: 0.1}\n"  # line 8: not in the logs
        "        country: {test: ks}\n"  # line 9: ks on a categorical column
        "    fairness:\n"
        "      groups: [age]\n"  # line 11: not in the logs
        "      positive_label: 'yes'\n"  # line 12: labels are 0 and 1
        "  n:\n"
        "    ops: {latency_ms: {p95: 100}}\n",
    )
    assert main(["check-config", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}:6: models.m.drift.reference.file: reference file" in err
    assert f"warning: {path}:8: models.m.drift.features.textur: feature 'textur' does not appear" in err
    assert "(did you mean 'texture'?)" in err
    assert f"error: {path}:9: models.m.drift.features.country.test:" in err
    assert "'country' is categorical" in err
    assert f"warning: {path}:11: models.m.fairness.groups.0: group attribute 'age' does not appear" in err
    assert "(did you mean 'age_band'?)" in err
    assert f"warning: {path}:12: models.m.fairness.positive_label: 'yes' never appears" in err
    assert f"warning: {path}:13: models.n: no predictions of model 'n'" in err

    bad = tmp_path / "bad.yml"
    bad.write_text(
        "store: {local: {path: nowhere}}\nmodels:\n  m:\n    ops: {latency_ms: {p9x: 100}}\n"
        "    drift:\n      features:\n        texture: {method: anderson}\n"
    )
    assert main(["check-config", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:4: models.m.ops.latency_ms: latency threshold key 'p9x' is not a percentile" in err
    assert f"{bad}:7: models.m.drift.features.texture.method: unknown drift effect size 'anderson'" in err
    bad.write_text("store: {local: {path: nowhere}}\nmodels:\n  m:\n    ops: {}\n")
    assert main(["check-config", "-c", str(bad)]) == 2
    assert f"error: {bad}:1: store.local.path: log directory" in capsys.readouterr().err


def test_the_terminal_shows_plain_text_without_slack_markup_or_kibana_links(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Config.model_validate({"kibana": {"url": "http://localhost:5601"}, "models": {"m": {"fairness": {}}}})
    window = Window(T0, T0 + timedelta(days=1))
    signal = Signal("group:age_band=<45", "age_band=<45 *rate* [red]x[/] is served worse", "warning", 0.3, 0.1)
    finding = Finding("m", "fairness", window, "alert", DriftMetrics(n_cur=500), signals=[signal])
    (tmp_path / "logs").mkdir()
    console = Console(file=(buffer := __import__("io").StringIO()), width=200)
    process(
        LocalStore(tmp_path / "logs", tmp_path / "state"), config, [finding], now=T0, sender=TerminalSender(console)
    )
    out = buffer.getvalue()
    assert "group:age_band=<45" in out
    assert "*rate* [red]x[/]" in out, "values as written: no markup read"
    for markup in ("&lt;", "&gt;", ":large_orange_circle:", "*warning*", "Kibana", "`"):
        assert markup not in out


def test_a_lean_install_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['pydantic'] = None; from analyzers.cli import main; "
        "sys.exit(main(['status', '-c', 'x.yml']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=os.environ)
    assert done.returncode == 2
    assert "pip install 'predwatch[analyzers]'" in done.stderr
    assert "Traceback" not in done.stderr


def _note(kind: str, subject: str, start: datetime, end: datetime, since: datetime | None = None) -> Notification:
    alert = {
        "key": f"m:ops:{subject}",
        "model": "m",
        "job": "ops",
        "subject": subject,
        "severity": "warning",
        "message": f"{subject} is off",
    }
    return Notification(kind, alert, Window(start, end).to_dict(), "f", format_time(since) if since else None)  # type: ignore[arg-type]


def test_messages_say_since_when_for_how_long_and_never_hide_a_resolve() -> None:
    config = Config.model_validate({"slack": {"webhook_url": "http://127.0.0.1:9/x", "max_items": 2}})
    hour = (T0 + timedelta(hours=9), T0 + timedelta(hours=10))
    day = (T0 - timedelta(hours=14), T0 + timedelta(hours=10))
    notes = [
        _note("firing", "metric:error_rate", *hour, T0 + timedelta(hours=10)),
        _note("reminder", "metric:latency_p95", *hour, T0 + timedelta(hours=4)),
        _note("firing", "metric:latency_p99", *hour, T0 + timedelta(hours=10)),
        *[_note("resolved", f"metric:old{i}", *day, T0 - timedelta(days=2, hours=3)) for i in range(4)],
    ]
    message = build_message(notes, config)
    assert message.headline() == "m: 3 alerts (warning), 4 resolved"
    assert (message.firing, message.more) == (3, 1), "firing alerts past max_items are counted"
    resolved = [i for i in message.items if i.kind == "resolved"]
    assert len(resolved) == 4, "every resolve is listed"
    assert resolved[0].timing() == "after 2d 13h (firing since 2026-11-17 21:00 UTC)"
    reminder = next(i for i in message.items if i.kind == "reminder")
    assert reminder.timing() == "since 2026-11-20 04:00 UTC (6h)"
    assert message.window == "as of 2026-11-20 10:00 UTC", "the lines have their own windows"
    assert message.when(reminder) == "since 2026-11-20 04:00 UTC (6h); window 2026-11-20 09:00 → 10:00 UTC"
    assert message.when(resolved[0]).endswith("window 2026-11-19 10:00 → 2026-11-20 10:00 UTC")


def test_messages_summarise_what_else_still_fires(tmp_path: Path) -> None:
    config = Config.model_validate({"models": {"m": {"ops": {"cooldown": "1d"}}}})
    (tmp_path / "logs").mkdir()
    store = LocalStore(tmp_path / "logs", tmp_path / "state")
    window = Window(T0, T0 + timedelta(hours=1))
    metrics = OpsMetrics.from_dict({"volume": {"total": 50}, "error_rate": {"judged": True}})
    first = Finding("m", "ops", window, "alert", metrics, signals=[Signal("metric:error_rate", "errors 9%")])
    channel = RecordingSender("test")
    process(store, config, [first], now=T0 + timedelta(hours=1), sender=channel)
    both = [Signal("metric:error_rate", "errors 9%"), Signal("metric:latency_p95", "slow")]
    second = Finding("m", "ops", window.shift(timedelta(hours=1)), "alert", metrics, signals=both)
    process(store, config, [second], now=T0 + timedelta(hours=2), sender=channel)
    message = channel.messages[-1]
    assert [i.subject for i in message.items] == ["metric:latency_p95"]
    assert [s.subject for s in message.still_firing] == ["metric:error_rate"]
    assert message.footer() == "also still firing: 1 (ops metric:error_rate since 2026-11-20 01:00 UTC)"
