"""predwatch demo: every injected incident is caught and nothing else is flagged, over several seeds."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rich.console import Console

from analyzers.config.loader import load_config
from analyzers.demo import run_demo
from analyzers.demo.incidents import incidents
from analyzers.demo.scoring import score
from analyzers.findings import Finding, Signal
from analyzers.timeutil import Window
from tests.slack_server import FakeSlack

SLACK_VARIABLES = ("SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_WEBHOOK_URL", "SLACK_BASE_URL")


# One seed covers the demo in the default run; delivery itself is covered by test_alerts.py.  The other seeds
# (and the demo's Slack paths) run with `python -m pytest -m slow`.
@pytest.mark.parametrize(
    ("seed", "delivery"),
    [
        (7, "terminal"),
        pytest.param(11, "token", marks=pytest.mark.slow),
        pytest.param(23, "webhook", marks=pytest.mark.slow),
    ],
)
def test_demo_catches_every_incident_and_nothing_else(
    tmp_path: Path, seed: int, delivery: str, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SLACK_VARIABLES:
        monkeypatch.delenv(name, raising=False)  # never a real Slack
    if delivery == "token":
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-demo-secret")
        monkeypatch.setenv("SLACK_CHANNEL", "#ml-alerts")
        monkeypatch.setenv("SLACK_BASE_URL", slack.api_url)
    elif delivery == "webhook":
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    stale = tmp_path / "logs" / "old-api"
    stale.mkdir(parents=True)
    (stale / "predictions-2020-01-01.ndjson").write_text("not json\n")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "leftover").write_text("from an earlier run\n")
    reports = seed == 7  # the HTML reports are the slowest step: one seed checks them
    out = io.StringIO()
    code = run_demo(
        days=12, per_day=900, seed=seed, out=tmp_path, console=Console(file=out, width=200), reports=reports
    )
    text = out.getvalue()
    assert code == 0, text
    assert "8/8 incidents caught, 0 false alarm(s)" in text
    assert not stale.exists()
    assert not (tmp_path / "state" / "leftover").exists()
    settings = (tmp_path / "predwatch.yml").read_text(encoding="utf-8")
    assert load_config(tmp_path / "predwatch.yml").config.models.keys() == {"fraud", "eta"}
    assert "&id" not in settings  # readable: no YAML anchors
    assert "xoxb-demo-secret" not in settings + text
    assert "webhooksecret" not in settings + text
    if delivery == "terminal":
        assert not slack.posts
        assert "predwatch alert: fraud" in text
        assert "predwatch alert: eta" in text
        assert "notification(s) printed above" in text
    else:
        assert "predwatch alert:" not in text
        posted = " ".join(json.dumps(post["body"]) for post in slack.posts)
        assert "fraud" in posted
        assert "eta" in posted
        sent = re.search(r"alerts: (\d+) notification\(s\) sent to the Slack", text)
        assert sent is not None
        assert int(sent.group(1)) >= len(slack.posts) > 0  # one message per model and day
        assert "not delivered" not in text
        if delivery == "token":
            assert {post["auth"] for post in slack.posts} == {"Bearer xoxb-demo-secret"}
    for model in ("fraud", "eta"):
        assert len(list((tmp_path / "logs" / f"{model}-api").glob("predictions-*.ndjson"))) == 12
        report = tmp_path / f"report-{model}.html"
        assert report.exists() == reports
        if reports:
            assert "<svg" in report.read_text(encoding="utf-8")
    if reports:  # the version rollout is among the recent verdicts of the fraud report's canary section
        fraud = (tmp_path / "report-fraud.html").read_text(encoding="utf-8")
        assert '<td>v2.0.0</td><td><span class="badge v-rollback">ROLL BACK</span></td>' in fraud


def test_alerts_on_other_days_or_subjects_are_false_alarms() -> None:
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    injected = incidents(12)
    shift = injected[0]

    def alert(day: int, model: str, job: str, subject: str) -> Finding:
        window = Window(start + timedelta(days=day), start + timedelta(days=day + 1))
        return Finding(model, job, window, "alert", signals=[Signal(subject, f"{subject} fired", "warning", 2.0, 1.0)])

    findings = [
        alert(shift.day, "fraud", "drift", "feature:amount"),
        alert(shift.day, "fraud", "drift", "feature:score"),  # a declared consequence
        alert(shift.day + 1, "fraud", "drift", "feature:amount"),  # the day after: not injected
        alert(shift.day, "eta", "drift", "feature:amount"),  # another model
        Finding("fraud", "ops", Window(start, start + timedelta(days=1)), "error", error="boom"),
    ]
    outcomes, false_alarms = score(findings, injected, start)
    assert outcomes[0].caught
    assert outcomes[0].also == ["drift feature:score"]
    assert not any(o.caught for o in outcomes[1:])
    assert [(f.finding.model, f.subject) for f in false_alarms] == [
        ("fraud", "feature:amount"),
        ("eta", "feature:amount"),
        ("fraud", "monitoring"),
    ]


def test_too_few_days_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 12 days"):
        incidents(8)
    out = io.StringIO()
    assert run_demo(days=8, out=tmp_path / "demo", console=Console(file=out, width=200)) == 2
    assert "at least 12 days" in out.getvalue()
    assert run_demo(per_day=0, out=tmp_path / "demo", console=Console(file=out, width=200)) == 2
    assert "--per-day must be at least 1" in out.getvalue()
    assert not (tmp_path / "demo").exists()
