"""Silences: set from the command line, honoured when alerts fire, counted in messages, shown in status,
expired by themselves, removed by id or pattern.  They are state documents through the StateStore port,
whose contract both stores pass (test_store_contract.py, test_store_elastic.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from analyzers.alerts import silences
from analyzers.alerts.channels.recording import RecordingSender
from analyzers.alerts.dispatch import flush, process
from analyzers.cli import main
from analyzers.config.loader import load_config
from analyzers.findings import DriftMetrics, Finding, Signal
from analyzers.store import LocalStore
from analyzers.timeutil import Window

T0 = datetime(2026, 11, 20, tzinfo=timezone.utc)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    (tmp_path / "logs").mkdir()
    path = tmp_path / "predwatch.yml"
    path.write_text(
        "store: {local: {path: logs}}\nstate: {path: state}\n"
        "models:\n  fraud:\n    drift: {cooldown: 6h}\n    fairness: {cooldown: 6h}\n"
    )
    return path


@pytest.fixture
def store(tmp_path: Path, config_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "logs", tmp_path / "state") as opened:
        yield opened


def finding(day: int, job: str, *subjects: str) -> Finding:
    window = Window(T0 + timedelta(days=day - 1), T0 + timedelta(days=day))
    signals = [Signal(s, f"{s} is off", "warning", 0.3, 0.1) for s in subjects]
    return Finding("fraud", job, window, "alert" if subjects else "ok", DriftMetrics(n_cur=500), signals=signals)


def run_day(store: LocalStore, config_path: Path, day: int, *findings: Finding) -> RecordingSender:
    channel = RecordingSender("test channel")
    config = load_config(config_path).config
    store.write_findings(list(findings))  # as the runner and the scheduler do before alerting
    process(store, config, list(findings), now=T0 + timedelta(days=day), sender=channel)
    return channel


def test_a_silence_is_set_listed_honoured_counted_and_removed(
    config_path: Path, store: LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    parity = "group:region=south"
    first = run_day(store, config_path, 1, finding(1, "fairness", parity))
    assert [i.subject for m in first.messages for i in m.items] == [parity]
    pattern = "fraud:fairness:*"
    args = ["silence", "-c", str(config_path), pattern, "--for", "400d", "--reason", "base rates differ", "--by", "ana"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "silenced fraud:fairness:* until" in out
    assert f"firing now and silenced: fraud:fairness:{parity}" in out
    assert main(["silence", "-c", str(config_path), "--list", "--format", "json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)["silences"]
    assert (listed["pattern"], listed["created_by"], listed["reason"]) == (pattern, "ana", "base rates differ")

    # honoured: the silenced alert is not repeated, a new one in its pattern is not announced,
    # and the message about the rest of the model says how many are silenced
    day2 = run_day(
        store, config_path, 2, finding(2, "fairness", parity, "group:age=young"), finding(2, "drift", "feature:x")
    )
    (message,) = day2.messages
    assert [i.subject for i in message.items] == ["feature:x"]
    assert message.silenced == 2
    assert "2 silenced" in (message.footer() or "")
    assert store.get_state(f"alert:fraud:fairness:{parity}")[0]["silenced_by"] == listed["id"]

    assert main(["status", "-c", str(config_path), "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    by_key = {a["key"]: a for a in status["firing"]}
    assert by_key[f"fraud:fairness:{parity}"]["silenced_by"] == listed["id"]
    assert by_key[f"fraud:fairness:{parity}"]["next_resend_at"] is None
    assert by_key["fraud:drift:feature:x"]["silenced_by"] is None
    assert by_key["fraud:drift:feature:x"]["since"] == "2026-11-22T00:00:00Z"
    assert by_key["fraud:drift:feature:x"]["next_resend_at"] == "2026-11-22T06:00:00Z", "sent at day 2 + cooldown 6h"
    assert [s["id"] for s in status["silences"]] == [listed["id"]]

    assert main(["silence", "-c", str(config_path), "--remove", listed["id"]]) == 0
    assert "removed" in capsys.readouterr().out
    # once the silence is gone, what still fires is announced at the next delivery round, without
    # waiting for its job: the alert never announced as new, the one announced before as still firing
    channel = RecordingSender("test channel")
    flush(store, load_config(config_path).config, sender=channel, now=T0 + timedelta(days=2, hours=1))
    (message,) = channel.messages
    assert {(i.subject, i.kind) for i in message.items} == {("group:age=young", "firing"), (parity, "reminder")}
    young = next(i for i in message.items if i.subject == "group:age=young")
    assert (young.since, young.end) == ("2026-11-22T00:00:00Z", "2026-11-22T00:00:00Z"), "its last window"
    day3 = run_day(store, config_path, 3, finding(3, "fairness", parity), finding(3, "drift", "feature:x"))
    (message,) = day3.messages
    kinds = {(i.subject, i.kind) for i in message.items}
    assert kinds == {("group:age=young", "resolved"), ("feature:x", "reminder"), (parity, "reminder")}
    assert message.silenced == 0


def test_an_alert_that_resolves_while_silenced_is_never_announced(config_path: Path, store: LocalStore) -> None:
    silences.add(store, "fraud:drift:*", until=T0 + timedelta(days=5), reason="r", created_by="c", now=T0)
    assert run_day(store, config_path, 1, finding(1, "drift", "feature:a")).messages == []
    assert run_day(store, config_path, 2, finding(2, "drift")).messages == []
    assert store.get_state("alert:fraud:drift:feature:a")[0]["status"] == "resolved"
    silences.remove(store, "fraud:drift:*")
    assert run_day(store, config_path, 3, finding(3, "drift")).messages == []


def test_a_silence_expires_by_itself(config_path: Path, store: LocalStore) -> None:
    silence = silences.add(
        store, "fraud:drift:feature:*", until=T0 + timedelta(days=2), reason="deploy", created_by="bo", now=T0
    )
    assert silences.active(store, T0 + timedelta(days=1)) == [silence]
    quiet = run_day(store, config_path, 1, finding(1, "drift", "feature:amount"))
    assert quiet.messages == [], "silenced"
    later = run_day(store, config_path, 3, finding(3, "drift", "feature:amount"))
    (message,) = later.messages
    (item,) = message.items
    assert (item.kind, item.since) == ("firing", "2026-11-21T00:00:00Z"), "announced when the silence ends"
    assert "firing since 2026-11-21 00:00 UTC" in item.timing()
    assert silences.every(store) == [], "an ended silence is deleted"


def test_silence_refuses_unknown_models_and_needs_a_reason(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["silence", "-c", str(config_path), "frud:drift:*", "--for", "1d", "--reason", "x"]) == 2
    assert "did you mean 'fraud'" in capsys.readouterr().err
    assert main(["silence", "-c", str(config_path), "fraud", "--for", "1d", "--reason", "x"]) == 2
    assert "'fraud:*'" in capsys.readouterr().err
    assert main(["silence", "-c", str(config_path), "fraud:drift:*", "--for", "1d"]) == 2
    assert "--reason" in capsys.readouterr().err
    assert main(["silence", "-c", str(config_path), "--remove", "nope"]) == 2
    assert main(["silence", "-c", str(config_path), "--list"]) == 0
    assert "no active silence" in capsys.readouterr().out
