"""Webhook actions: signed once per transition, delivered per channel independently of Slack, routed,
confirmed, and the README's recipes (Airflow, GitHub repository_dispatch, a plain endpoint) against stand-ins."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from analyzers.alerts import outbox
from analyzers.alerts.channels.webhook import verify
from analyzers.alerts.dispatch import flush, process
from analyzers.alerts.pacing import Pacing
from analyzers.config.loader import parse_config
from analyzers.config.models import Config
from analyzers.findings import DriftMetrics, Finding, Signal
from analyzers.timeutil import Window
from tests.conftest import store_at
from tests.slack_server import FakeSlack
from tests.webhook_server import FakeEndpoint, Request

T0 = datetime(2026, 11, 20, tzinfo=timezone.utc)
KEY = "whsec-test-shared-key"
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    server = FakeEndpoint()
    yield server
    server.close()


def drift(day: int, *features: str, severity: str = "warning") -> Finding:
    window = Window(T0 + timedelta(days=day - 1), T0 + timedelta(days=day))
    signals = [Signal(f"feature:{f}", f"{f} drifted (psi 0.4 > 0.1)", severity, 0.4, 0.1) for f in features]  # type: ignore[arg-type]
    return Finding("fraud", "drift", window, "alert" if features else "ok", DriftMetrics(n_cur=500), signals=signals)


def config(data: dict[str, Any]) -> Config:
    return Config.model_validate({"models": {"fraud": {"drift": {"cooldown": "6h"}}}, **data})


def quick() -> Pacing:
    return Pacing(backoff_s=0.01, retries=1, timeout_s=5)


def test_the_signature_is_verifiable_by_a_receiver_with_the_shared_key(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    cfg = config({"webhooks": {"hook": {"url": endpoint.url + "/hooks/predwatch", "secret": KEY}}})
    store = store_at(tmp_path)
    report = process(store, cfg, [drift(1, "amount")], now=T0 + timedelta(days=1), pacing=quick())
    assert report.sent == 1
    (request,) = endpoint.requests
    header = request.headers["X-Predwatch-Signature"]
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header)
    assert match is not None, header
    # what a receiver does with the key alone: HMAC-SHA256 over "<t>." and the raw body
    expected = hmac.new(KEY.encode(), match.group(1).encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, match.group(2))
    assert verify(KEY, header, request.body)
    assert not verify("another key", header, request.body), "a wrong key does not verify"
    assert not verify(KEY, header, request.body + b" "), "a changed body does not verify"
    body = request.json
    assert body["key"] == "fraud:drift:feature:amount"
    assert (body["model"], body["job"], body["subject"], body["severity"]) == (
        "fraud",
        "drift",
        "feature:amount",
        "warning",
    )
    assert body["window"] == {"start": "2026-11-20T00:00:00Z", "end": "2026-11-21T00:00:00Z"}
    assert body["message"] == "amount drifted (psi 0.4 > 0.1)"
    assert body["summary"] == drift(1, "amount").summary()
    assert body["kind"] == "firing"
    assert request.headers["X-Predwatch-Delivery"] == body["id"]
    assert KEY not in request.body.decode()


def test_one_delivery_per_transition_across_a_webhook_outage_and_a_restart(
    tmp_path: Path, endpoint: FakeEndpoint
) -> None:
    cfg = config({"webhooks": {"hook": {"url": endpoint.url + "/hook", "secret": KEY}}})
    endpoint.down()
    report = process(store_at(tmp_path), cfg, [drift(1, "amount")], now=T0 + timedelta(days=1), pacing=quick())
    assert (report.sent, report.failed, report.pending) == (0, 1, 1)
    assert "webhook hook (127.0.0.1:" in report.errors[0]
    restarted = store_at(tmp_path)  # a new process on the same state, the same window again
    report = process(restarted, cfg, [drift(1, "amount")], now=T0 + timedelta(days=1, minutes=1), pacing=quick())
    assert (report.created, report.pending) == (0, 1), "nothing new, still waiting"
    endpoint.up()
    report = flush(store_at(tmp_path), cfg, now=T0 + timedelta(days=1, minutes=2), pacing=quick())
    assert report.sent == 1
    assert len(endpoint.requests) == 1
    flush(store_at(tmp_path), cfg, now=T0 + timedelta(days=1, minutes=3), pacing=quick())
    process(store_at(tmp_path), cfg, [drift(1, "amount")], now=T0 + timedelta(days=1, minutes=4), pacing=quick())
    assert len(endpoint.requests) == 1, "delivered once"
    process(store_at(tmp_path), cfg, [drift(2)], now=T0 + timedelta(days=2), pacing=quick())
    assert [r.json["kind"] for r in endpoint.requests] == ["firing", "resolved"], "the next transition is new"


def test_slack_and_a_webhook_fail_independently(tmp_path: Path, slack: FakeSlack, endpoint: FakeEndpoint) -> None:
    cfg = config(
        {
            "slack": {"token": "xoxb-t", "channel": "#ml", "base_url": slack.api_url},
            "webhooks": {"hook": {"url": endpoint.url + "/hook"}},
        }
    )
    store = store_at(tmp_path)
    slack.down()
    report = process(store, cfg, [drift(1, "amount")], now=T0 + timedelta(days=1), pacing=quick())
    assert report.channels["hook"].sent == 1
    assert report.channels["slack"].failed == 1
    slack.up()
    report = flush(store, cfg, now=T0 + timedelta(days=1, minutes=1), pacing=quick())
    assert (report.channels["slack"].sent, report.channels["hook"].sent) == (1, 0)
    assert len(slack.messages()) == 1
    assert len(endpoint.requests) == 1, "the Slack outage did not resend the webhook"
    endpoint.down()
    report = process(store, cfg, [drift(2)], now=T0 + timedelta(days=2), pacing=quick())
    assert (report.channels["slack"].sent, report.channels["hook"].failed) == (1, 1)
    endpoint.up()
    flush(store, cfg, now=T0 + timedelta(days=2, minutes=1), pacing=quick())
    assert len(slack.messages()) == 2, "the webhook outage did not resend to Slack"
    assert [r.json["kind"] for r in endpoint.requests] == ["firing", "resolved"]
    assert outbox.pending(store) == {}


def test_routes_send_each_severity_where_it_belongs(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    other = FakeEndpoint()
    try:
        cfg = config(
            {
                "webhooks": {"pager": {"url": endpoint.url + "/page"}, "chat": {"url": other.url + "/chat"}},
                "routes": [
                    {"channels": ["chat"]},
                    {"channels": ["pager"], "models": ["fr*"], "jobs": ["drift"], "severities": ["critical"]},
                ],
            }
        )
        findings = [drift(1, "amount")]
        findings[0].signals.append(Signal("feature:country", "country drifted", "critical", 0.9, 0.1))
        process(store_at(tmp_path), cfg, findings, now=T0 + timedelta(days=1), pacing=quick())
        assert [r.json["subject"] for r in endpoint.requests] == ["feature:country"], "only critical pages"
        assert sorted(r.json["subject"] for r in other.requests) == ["feature:amount", "feature:country"]
    finally:
        other.close()


def test_confirm_acts_only_when_the_signal_held_in_n_of_the_last_m_windows(
    tmp_path: Path, slack: FakeSlack, endpoint: FakeEndpoint
) -> None:
    cfg = config(
        {
            "slack": {"token": "xoxb-t", "channel": "#ml", "base_url": slack.api_url},
            "webhooks": {"retrain": {"url": endpoint.url + "/retrain"}},
            "routes": [
                {"channels": ["slack"]},
                {"channels": ["retrain"], "jobs": ["drift"], "kinds": ["firing"], "confirm": {"held": 3, "of": 4}},
            ],
        }
    )
    store = store_at(tmp_path)
    days = {1: ("amount",), 2: ("amount",), 3: (), 4: ("amount",), 5: ("amount",), 6: ("amount",)}
    retrain_after = {}
    for day, features in days.items():
        finding = drift(day, *features)
        store.write_findings([finding])
        process(store, cfg, [finding], now=T0 + timedelta(days=day), pacing=quick())
        retrain_after[day] = len(endpoint.requests)
    # day 1 and 2: 1 and 2 of the last 4 windows; day 4: days 1, 2 and 4 -> confirmed, once
    assert retrain_after == {1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 1}
    assert endpoint.requests[0].json["window"]["end"] == "2026-11-24T00:00:00Z"
    texts = [m["body"]["text"] for m in slack.messages()]  # people hear at once, every day (cooldown 6h)
    assert ["still firing" in t for t in texts] == [False, True, False, False, True, True]
    assert ["resolved" in t for t in texts] == [False, False, True, False, False, False]


def _recipe(name: str) -> dict[str, Any]:
    """The YAML block of the README that starts with ``# recipe: <name>``."""
    for block in re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        if block.startswith(f"# recipe: {name}\n"):
            return dict(yaml.safe_load(block))
    raise AssertionError(f"README.md has no recipe {name!r}")


def _with_recipe(name: str, **extra: Any) -> Config:
    text = yaml.safe_dump({"models": {"fraud": {"drift": {}}}, **extra, **_recipe(name)})
    return parse_config(text, f"recipe {name}")


def test_recipe_airflow_triggers_one_dag_run_per_confirmed_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack: FakeSlack
) -> None:
    runs: dict[str, dict[str, Any]] = {}

    def airflow(request: Request) -> tuple[int, dict[str, str], str]:
        match = re.fullmatch(r"/api/v1/dags/([\w.-]+)/dagRuns", request.path)
        if match is None or request.headers.get("Authorization") != "Basic YWlyZmxvdzpzM2NyZXQ=":
            return 404 if match is None else 401, {}, "{}"
        run = request.json
        if run["dag_run_id"] in runs:
            return 409, {"Content-Type": "application/json"}, '{"title": "DAGRun already exists"}'
        runs[run["dag_run_id"]] = {"dag": match.group(1), "conf": run["conf"]}
        return 200, {"Content-Type": "application/json"}, '{"state": "queued"}'

    server = FakeEndpoint(airflow)
    try:
        monkeypatch.setenv("AIRFLOW_URL", server.url)
        monkeypatch.setenv("AIRFLOW_USER", "airflow")
        monkeypatch.setenv("AIRFLOW_PASSWORD", "s3cret")
        cfg = _with_recipe("airflow", slack={"token": "xoxb-t", "channel": "#ml", "base_url": slack.api_url})
        store = store_at(tmp_path)
        for day in (1, 2, 3):
            finding = drift(day, "amount")
            store.write_findings([finding])
            process(store, cfg, [finding], now=T0 + timedelta(days=day), pacing=quick())
        (run,) = runs.values()
        assert run["dag"] == "retrain_fraud"
        assert run["conf"]["key"] == "fraud:drift:feature:amount"
        # a sender that died after Airflow took the run leaves the delivery pending: the retry is answered 409
        ((key, (doc, version)),) = [
            item for item in store.list_state(outbox.OUTBOX_PREFIX).items() if "retrain" in item[1][0]["deliveries"]
        ]
        doc["deliveries"]["retrain"]["status"] = "pending"
        store.put_state(key, {k: v for k, v in doc.items() if k != "done_at"}, version)
        report = flush(store, cfg, now=T0 + timedelta(days=3, minutes=1), pacing=quick())
        assert report.channels["retrain"].sent == 1, "409: the run exists, the alert counts as delivered"
        assert [a.json["dag_run_id"] for a in server.attempts] == [f"predwatch-{doc['notification']['id']}"] * 2
        assert len(runs) == 1
    finally:
        server.close()


def test_recipe_github_repository_dispatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def github(request: Request) -> tuple[int, dict[str, str], str]:
        if request.path != "/repos/acme/models/dispatches" or request.headers.get("Authorization") != "Bearer ghp-t":
            return 404, {}, "{}"
        body = request.json
        if set(body) != {"event_type", "client_payload"} or len(body["client_payload"]) > 10:
            return 422, {}, '{"message": "client_payload has at most 10 top-level properties"}'
        return 204, {}, ""

    server = FakeEndpoint(github)
    try:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("GITHUB_TOKEN", "ghp-t")
        process(store_at(tmp_path), _with_recipe("github"), [drift(1, "amount")], now=T0, pacing=quick())
        (request,) = server.requests
        assert request.json["event_type"] == "predwatch-drift"
        assert request.json["client_payload"]["key"] == "fraud:drift:feature:amount"
        assert request.headers["Accept"] == "application/vnd.github+json"
    finally:
        server.close()


def test_recipe_plain_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endpoint: FakeEndpoint) -> None:
    monkeypatch.setenv("PREDWATCH_HOOK_URL", endpoint.url + "/predwatch")
    monkeypatch.setenv("PREDWATCH_WEBHOOK_KEY", KEY)
    process(store_at(tmp_path), _with_recipe("plain"), [drift(1, "amount")], now=T0, pacing=quick())
    (request,) = endpoint.requests
    assert request.path == "/predwatch"
    assert verify(KEY, request.headers["X-Predwatch-Signature"], request.body)
    assert set(request.json) >= {"id", "key", "model", "job", "subject", "severity", "window", "summary", "report_url"}
