"""Alert rules, state and delivery: once per problem, cooldowns, resolves, outages, restarts, grouping."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from analyzers.alerts import outbox
from analyzers.alerts.channels import slack as slack_channel
from analyzers.alerts.channels.recording import RecordingSender
from analyzers.alerts.channels.slack import SlackSender
from analyzers.alerts.channels.terminal import TerminalSender
from analyzers.alerts.dispatch import preview, process
from analyzers.alerts.errors import ChannelConfigError, ChannelUnreachable, DeliveryError
from analyzers.alerts.message import build_message, kibana_discover_url
from analyzers.alerts.pacing import Pacing
from analyzers.alerts.routing import Routing
from analyzers.alerts.rules import alerts_of
from analyzers.alerts.state import Context, Notification, changes_for
from analyzers.config.models import Config, JobConfig, SlackConfig
from analyzers.findings import DriftMetrics, Finding, OpsMetrics, PerformanceMetrics, Signal
from analyzers.store import LocalStore
from analyzers.timeutil import Window
from tests.conftest import store_at
from tests.slack_server import FakeSlack

TOKEN = "xoxb-test-secret-token-123"
T0 = datetime(2026, 11, 20, tzinfo=timezone.utc)


def make_config(slack: FakeSlack | None, *, webhook: bool = False, **drift: object) -> Config:
    data: dict = {
        "kibana": {"url": "http://kibana.example:5601"},
        "models": {"fraud": {"drift": {"cooldown": "6h", **drift}, "ops": {}}},
    }
    if slack is not None:
        data["slack"] = (
            {"webhook_url": slack.webhook_url}
            if webhook
            else {"token": TOKEN, "channel": "#ml", "base_url": slack.api_url}
        )
    return Config.model_validate(data)


def drift(day: int, *features: str, status: str | None = None) -> Finding:
    window = Window(T0 + timedelta(days=day - 1), T0 + timedelta(days=day))
    signals = [Signal(f"feature:{f}", f"{f} drifted (wasserstein 0.2 > 0.03)", "warning", 0.2, 0.03) for f in features]
    status = status or ("alert" if features else "ok")
    return Finding("fraud", "drift", window, status, DriftMetrics(n_cur=500), signals=signals)


def texts(slack: FakeSlack) -> list[str]:
    return [p["body"]["text"] for p in slack.posts]


def quick() -> Pacing:
    """Retries without long waits, for outages."""
    return Pacing(backoff_s=0.01)


def test_an_alert_is_sent_once_and_the_same_window_again_sends_nothing(tmp_path: Path, slack: FakeSlack) -> None:
    config, store = make_config(slack), store_at(tmp_path)
    report = process(store, config, [drift(1, "amount", "country")], now=T0 + timedelta(days=1))
    assert (report.created, report.sent, report.pending) == (2, 2, 0)
    assert len(slack.posts) == 1, "several alerts of one run are grouped into one message"
    post = slack.posts[0]
    assert post["path"] == "/api/chat.postMessage"
    assert post["auth"] == f"Bearer {TOKEN}"
    assert post["body"]["channel"] == "#ml"
    assert "amount" in post["body"]["text"]
    assert "country" in post["body"]["text"]
    blocks = post["body"]["blocks"]
    assert blocks[0]["type"] == "header"
    assert "fraud" in blocks[0]["text"]["text"]
    assert "2026-11-20 00:00 → 2026-11-21 00:00 UTC" in blocks[0]["text"]["text"], "the headline names the window"
    assert post["body"]["metadata"]["event_type"] == "predwatch_alert", "tagged with the transitions it delivers"
    assert len(post["body"]["metadata"]["event_payload"]["ids"].split(",")) == 2
    process(store, config, [drift(1, "amount", "country")], now=T0 + timedelta(days=1, hours=1))
    assert len(slack.posts) == 1


def test_still_firing_waits_for_its_cooldown_with_backoff_then_resolves_once(tmp_path: Path, slack: FakeSlack) -> None:
    config, store = make_config(slack, cooldown="1d", cooldown_backoff=2.0, max_cooldown="3d"), store_at(tmp_path)
    for day in range(1, 8):
        process(store, config, [drift(day, "amount")], now=T0 + timedelta(days=day))
    kinds = [("still firing" in t, "resolved" in t) for t in texts(slack)]
    # sent on day 1; again after 1 day (day 2), 2 days (day 4), then capped at 3 days (day 7)
    assert len(slack.posts) == 4
    assert all(k == (i > 0, False) for i, k in enumerate(kinds))
    process(store, config, [drift(8)], now=T0 + timedelta(days=8))
    process(store, config, [drift(9)], now=T0 + timedelta(days=9))
    assert len(slack.posts) == 5
    assert "resolved" in texts(slack)[-1]
    process(store, config, [drift(10, "amount")], now=T0 + timedelta(days=10))
    assert len(slack.posts) == 6, "firing again after resolving is new"
    assert "still firing" not in texts(slack)[-1], "firing again after resolving is new"


def test_a_rate_limit_is_waited_out(tmp_path: Path, slack: FakeSlack) -> None:
    slack.replies.append(
        (429, {"Retry-After": "1", "Content-Type": "application/json"}, '{"ok": false, "error": "ratelimited"}')
    )
    report = process(store_at(tmp_path), make_config(slack), [drift(1, "amount")], now=T0)
    assert report.sent == 1
    assert slack.attempts == 2
    assert len(slack.posts) == 1


def test_an_outage_keeps_the_message_and_a_restart_delivers_it_exactly_once(
    tmp_path: Path, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = make_config(slack)
    slack.down()
    report = process(store_at(tmp_path), config, [drift(1, "amount")], now=T0, pacing=quick())
    assert (report.sent, report.failed, report.pending) == (0, 1, 1)
    assert report.errors
    assert all(TOKEN not in e for e in report.errors)
    restarted = store_at(tmp_path)  # a new process on the same state
    report = process(restarted, config, [drift(1, "amount")], now=T0 + timedelta(minutes=1), pacing=quick())
    assert report.created == 0, "nothing new: the same window, still waiting"
    assert report.pending == 1, "nothing new: the same window, still waiting"
    slack.up()
    report = process(store_at(tmp_path), config, [drift(1, "amount")], now=T0 + timedelta(minutes=2))
    assert (report.sent, report.pending) == (1, 0)
    assert len(slack.posts) == 1
    process(store_at(tmp_path), config, [drift(1, "amount")], now=T0 + timedelta(minutes=3))
    assert len(slack.posts) == 1
    assert TOKEN not in caplog.text


def test_slack_refusing_the_token_is_an_error_without_the_token(tmp_path: Path, slack: FakeSlack) -> None:
    slack.replies.append((200, {"Content-Type": "application/json"}, '{"ok": false, "error": "invalid_auth"}'))
    report = process(store_at(tmp_path), make_config(slack), [drift(1, "amount")], now=T0)
    assert report.failed == 1
    assert "invalid_auth" in report.errors[0]
    assert TOKEN not in report.errors[0]


def test_webhook_delivery_and_truncation(tmp_path: Path, slack: FakeSlack) -> None:
    config = make_config(slack, webhook=True)
    features = [f"f{i:02d}" for i in range(25)]
    process(store_at(tmp_path), config, [drift(1, *features)], now=T0)
    (post,) = slack.posts
    assert post["path"].startswith("/services/")
    lines = [b for b in post["body"]["blocks"] if b["type"] == "rich_text"]
    assert len(lines) == 11
    assert lines[-1]["elements"][0]["elements"][0]["text"] == "and 15 more firing"
    assert "and 15 more firing" in post["body"]["text"]
    assert len(post["body"]["blocks"]) <= 50


def test_a_failed_job_and_an_empty_window_are_monitoring_problems_that_resolve(
    tmp_path: Path, slack: FakeSlack
) -> None:
    config, store = make_config(slack), store_at(tmp_path)
    window = Window(T0, T0 + timedelta(hours=1))
    failed = Finding("fraud", "ops", window, "error", error="ConnectionError: store down")
    process(store, config, [failed], now=T0)
    assert "ops failed: ConnectionError" in texts(slack)[0]
    again = Finding("fraud", "ops", window.shift(timedelta(hours=1)), "error", error="ConnectionError: store down")
    process(store, config, [again], now=T0 + timedelta(hours=2))
    assert len(slack.posts) == 1, "still the same monitoring problem, inside its cooldown"
    ok = Finding(
        "fraud",
        "ops",
        Window(T0 + timedelta(hours=2), T0 + timedelta(hours=3)),
        "ok",
        OpsMetrics.from_dict({"volume": {"total": 50}}),
    )
    process(store, config, [ok], now=T0 + timedelta(hours=3))
    assert "resolved" in texts(slack)[-1]
    assert len(slack.posts) == 2


def test_too_few_labels_is_not_a_monitoring_problem(tmp_path: Path, slack: FakeSlack) -> None:
    window = Window(T0, T0 + timedelta(days=1))
    coverage = PerformanceMetrics(n=900, n_labeled=3, label_coverage=3 / 900)
    waiting = Finding("fraud", "performance", window, "insufficient_data", coverage)
    report = process(store_at(tmp_path), make_config(slack), [waiting], now=T0)
    assert report.created == 0
    assert slack.posts == []


def test_without_slack_alerts_print_in_the_same_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = process(store_at(tmp_path), make_config(None), [drift(1, "amount")], now=T0)
    out = capsys.readouterr().out
    assert report.target == "terminal"
    assert report.sent == 1
    assert "fraud: 1 alert (warning)" in out
    assert "feature:amount" in out
    assert "Kibana" not in out, "the local store has no Kibana to link to"


def test_two_processes_enqueue_one_change_once(tmp_path: Path, slack: FakeSlack) -> None:
    first, second = store_at(tmp_path), store_at(tmp_path)
    note = Notification(
        "firing",
        {
            "key": "fraud:drift:feature:a",
            "model": "fraud",
            "job": "drift",
            "subject": "feature:a",
            "severity": "warning",
            "message": "m",
        },
        drift(1).window.to_dict(),
        "fid",
    )
    note.channels = ["slack"]
    assert outbox.enqueue(first, note, T0) is True
    assert outbox.enqueue(second, note, T0) is False
    assert len(outbox.claim(first, "slack", T0)) == 1, "claimed entries are not sent twice"
    assert outbox.claim(second, "slack", T0) == [], "claimed entries are not sent twice"


def test_messages_escape_user_data_and_mention_on_critical() -> None:
    config = Config.model_validate({"slack": {"webhook_url": "http://x", "mention": "<!here>"}})
    alert = {
        "key": "k",
        "model": "fraud",
        "job": "fairness",
        "subject": "group:region=<EU>",
        "severity": "critical",
        "message": "selection rate gap 0.3 & rising",
    }
    window = {"start": "2026-11-20T00:00:00Z", "end": "2026-11-21T00:00:00Z"}
    message = build_message([Notification("firing", alert, window, "f")], config)
    assert config.slack is not None
    mention = slack_channel.mention_for(message, config.slack.mention)
    assert mention == "<!here>"
    line = slack_channel.blocks(message, mention)[2]["elements"][0]["elements"]
    assert {"type": "text", "text": "group:region=<EU>", "style": {"code": True}} in line, "rich text: taken as is"
    assert "&lt;EU&gt;" in slack_channel.text(message, mention), "the plain-text fallback is escaped"
    assert "&amp;" in slack_channel.text(message, mention)
    assert slack_channel.text(message, mention).startswith("<!here>")
    message.severity = "warning"
    assert slack_channel.mention_for(message, config.slack.mention) is None, "only critical alerts mention"


def test_messages_link_kibana_only_where_kibana_can_show_the_window() -> None:
    window = {"start": "2026-11-20T00:00:00Z", "end": "2026-11-21T00:00:00Z"}
    alert = {"key": "k", "model": "fraud", "job": "drift", "subject": "s", "severity": "warning", "message": "m"}
    note = Notification("firing", alert, window, "f")
    elastic = Config.model_validate(
        {"store": {"elasticsearch": {"hosts": ["https://es:9200"]}}, "kibana": {"url": "http://kb:5601"}}
    )
    local = Config.model_validate({"kibana": {"url": "http://kb:5601"}, "delivery": {"report_url": "http://r/{model}"}})
    assert [link.label for link in build_message([note], elastic).links] == ["Open in Kibana"]
    assert [(link.label, link.url) for link in build_message([note], local).links] == [
        ("HTML report", "http://r/fraud")
    ]


def test_kibana_link_carries_model_and_window() -> None:
    url = kibana_discover_url("http://k:5601/", "fraud", "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z")
    assert url.startswith(
        "http://k:5601/app/discover#/?_g=(time:(from:'2026-11-20T00:00:00Z',to:'2026-11-21T00:00:00Z'))"
    )
    assert "ml.model.name" in url
    assert "fraud" in url
    assert " " not in url
    odd = kibana_discover_url("http://k", "it's!", "a", "b")
    assert "query:'ml.model.name:%22it!'s!!%22'" in odd, "rison escapes ' and ! inside strings"


def test_terminal_sender_prints_to_stderr_when_quiet(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    process(store_at(tmp_path), make_config(None), [drift(1, "amount")], now=T0, sender=TerminalSender(quiet=True))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "feature:amount" in captured.err


def test_an_empty_reference_is_a_monitoring_problem_and_a_quiet_ops_window_is_not() -> None:
    window = Window(T0, T0 + timedelta(hours=1))
    quiet_ops = Finding("fraud", "ops", window, "insufficient_data", OpsMetrics.from_dict({"volume": {"total": 3}}))
    no_reference = Finding("fraud", "drift", window, "insufficient_data", DriftMetrics(n_cur=80, n_ref=0, reason="r"))
    few_rows = Finding("fraud", "drift", window, "insufficient_data", DriftMetrics(n_cur=8, n_ref=900, reason="8 rows"))
    assert alerts_of(quiet_ops) == [], "low traffic is not a monitoring problem: silence is judged on its own"
    assert [a.key for a in alerts_of(no_reference)] == ["fraud:drift:monitoring"]
    assert alerts_of(few_rows) == []


def test_a_dry_run_prints_the_alerts_and_records_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = store_at(tmp_path)
    assert preview(store, make_config(None), [drift(1, "amount", "country")], now=T0) == 2
    out = capsys.readouterr().out
    assert "fraud: 2 alerts (warning)" in out
    assert "feature:country" in out
    assert store.list_state("") == {}
    assert preview(store, make_config(None), [drift(1, "amount", "country")], now=T0) == 2, "nothing was recorded"


def test_predwatch_analyze_dry_run_prints_alerts_and_sends_nothing(
    tmp_path: Path, slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    from analyzers.cli import main

    log_dir = tmp_path / "logs" / "svc"
    log_dir.mkdir(parents=True)
    end = T0 + timedelta(hours=1)
    lines = [
        {
            "@timestamp": (T0 + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "event": {"dataset": "ml.prediction", "outcome": "success"},
            "ml": {"prediction_id": f"p{m}", "model": {"name": "fraud"}, "latency_ms": 900.0},
        }
        for m in range(0, 60, 2)
    ]
    (log_dir / "predictions-2026-11-20.ndjson").write_text("".join(json.dumps(line) + "\n" for line in lines))
    config = tmp_path / "predwatch.yml"
    config.write_text(
        "store: {local: {path: logs}}\nstate: {path: state}\n"
        f"slack: {{token: {TOKEN}, channel: '#ml', base_url: '{slack.api_url}'}}\n"
        "models:\n  fraud:\n    ingest_delay: 0s\n    ops: {window: 1h, min_rows: 1, latency_ms: {p95: 500}}\n"
    )
    at = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    main(["analyze", "--config", str(config), "--at", at, "--dry-run"])
    out = capsys.readouterr().out
    assert "fraud: 1 alert (warning)" in out
    assert "metric:latency_p95" in out
    assert slack.posts == []
    assert not LocalStore(tmp_path / "logs", tmp_path / "state").list_state("alert:")
    main(["analyze", "--config", str(config), "--at", at])
    assert len(slack.posts) == 1
    assert "latency p95" in slack.posts[0]["body"]["text"]


def test_a_change_lost_to_another_process_is_not_sent_twice(
    tmp_path: Path, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, finding = make_config(slack), drift(1, "amount")
    context = Context(Routing(config))
    stale = changes_for(store_at(tmp_path), finding, JobConfig(), T0, context)  # this process looked first ...
    report = process(store_at(tmp_path), config, [finding], now=T0)  # ... another one sent it meanwhile
    assert report.sent == 1
    monkeypatch.setattr("analyzers.alerts.dispatch.changes_for", lambda *_args, **_kwargs: stale)
    report = process(store_at(tmp_path), config, [finding], now=T0)
    assert (report.created, report.sent, report.pending) == (0, 0, 0)
    assert len(slack.posts) == 1


def test_an_unreachable_webhook_never_shows_its_url(tmp_path: Path, slack: FakeSlack) -> None:
    config = make_config(slack, webhook=True)
    slack.down()
    report = process(store_at(tmp_path), config, [drift(1, "amount")], now=T0, pacing=quick())
    assert report.failed == 1
    assert report.errors
    assert all("webhooksecretXYZ" not in error for error in report.errors)
    entries = outbox.claim(store_at(tmp_path), "slack", T0 + timedelta(hours=1))
    assert len(entries) == 1
    assert "webhooksecretXYZ" not in str(entries[0].doc)


def test_any_channel_plugs_into_the_same_seam_and_an_outage_ends_in_one_delivery(tmp_path: Path) -> None:
    store, config = store_at(tmp_path), make_config(None)
    down = RecordingSender("test channel", fail=ChannelUnreachable("test channel unreachable: timed out"))
    report = process(store, config, [drift(1, "amount")], now=T0, sender=down)
    assert (report.created, report.sent, report.failed, report.pending) == (1, 0, 1, 1)
    assert report.errors == ["test channel unreachable: timed out"]
    assert report.target == "test channel"
    up = RecordingSender("test channel")
    process(store, config, [drift(1, "amount")], now=T0 + timedelta(minutes=1), sender=up)
    (message,) = up.messages
    assert message.model == "fraud"
    assert [(i.kind, i.job, i.subject) for i in message.items] == [("firing", "drift", "feature:amount")]
    assert message.headline() == "fraud: 1 alert (warning)"
    process(store, config, [drift(1, "amount")], now=T0 + timedelta(minutes=2), sender=up)
    assert len(up.messages) == 1, "delivered once"


def test_delivery_errors_form_one_tree() -> None:
    assert issubclass(ChannelUnreachable, DeliveryError)
    with pytest.raises(ChannelConfigError, match="bot token and channel, or an incoming webhook"):
        SlackSender(SlackConfig(mention="<!here>"))
