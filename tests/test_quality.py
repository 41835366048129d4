"""Every finding carries its window's quality; too many lines set aside is an alert of its own."""

from __future__ import annotations

from datetime import timedelta
from html import escape
from pathlib import Path

import orjson

from analyzers.alerts.channels.recording import RecordingSender
from analyzers.alerts.dispatch import process
from analyzers.alerts.rules import QUALITY, alerts_of
from analyzers.cli import main
from analyzers.config.models import Config
from analyzers.findings import Finding, OpsMetrics, QualityReport, ReasonCount, Status, WindowQuality
from analyzers.runner import run_jobs
from analyzers.store import LocalStore
from analyzers.timeutil import Window
from tests.store_contract import DAY1, prediction


def analyze(tmp_path: Path, bad_lines: int, config: dict) -> list:
    good = [orjson.dumps(prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:00:00Z")) for i in range(200)]
    bad = [b'{"@timestamp": "2026-11-20T05:00:00Z", "ml": {"predic'] * bad_lines
    path = tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\n".join([*good[:100], *bad, *good[100:]]) + b"\n")
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        return run_jobs(store, Config.model_validate(config), at=DAY1.end)


def test_every_finding_carries_the_quality_of_its_window(tmp_path: Path):
    (finding,) = analyze(tmp_path, 1, {"models": {"fraud": {"ops": {"window": "1d", "min_rows": 1}}}})
    quality = finding.to_dict()["quality"]
    path = tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson"
    assert quality == {
        "lines": 201,
        "set_aside": 1,
        "share": 1 / 201,
        "reasons": {"bad JSON": {"count": 1, "first": f"{path}:101"}},
        "max_bad_share": 0.01,
    }
    assert QUALITY not in [a.subject for a in alerts_of(finding)]  # 0.5 % is below the default 1 %


def test_quality_survives_storing_and_reading_back(tmp_path: Path):
    (finding,) = analyze(tmp_path, 3, {"models": {"fraud": {"ops": {"window": "1d", "min_rows": 1}}}})
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        (stored,) = store.read_findings("fraud", "ops")
    assert stored.quality == finding.quality
    assert stored.to_dict()["quality"]["reasons"]["bad JSON"]["count"] == 3


def test_a_share_of_bad_lines_above_the_limit_is_an_alert(tmp_path: Path):
    config = {"quality": {"max_bad_share": 0.05}, "models": {"fraud": {"ops": {"window": "1d", "min_rows": 1}}}}
    (finding,) = analyze(tmp_path, 20, config)
    (alert,) = [a for a in alerts_of(finding) if a.subject == QUALITY]
    assert (alert.value, alert.threshold) == (20 / 220, 0.05)
    assert alert.key == "fraud:ops:quality"
    assert "20 bad JSON (first at " in alert.message


def test_a_model_may_set_its_own_limit(tmp_path: Path):
    config = {"models": {"fraud": {"quality": {"max_bad_share": 0.2}, "ops": {"window": "1d", "min_rows": 1}}}}
    (finding,) = analyze(tmp_path, 20, config)
    assert finding.quality is not None
    assert finding.quality.max_bad_share == 0.2
    assert [a for a in alerts_of(finding) if a.subject == QUALITY] == []


def odd_day(tmp_path: Path) -> Path:
    """A day of 200 predictions with one bad JSON line, one of invalid UTF-8, one dated 1970 and a repeated id."""
    good = [orjson.dumps(prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:00:00Z")) for i in range(200)]
    odd = [
        b'{"@timestamp": "2026-11-20T05:00:00Z", "ml": {"predic',
        orjson.dumps(prediction("u1", "2026-11-20T06:00:00Z")).replace(b'"u1"', b'"u\xff1"'),
        orjson.dumps(prediction("old", "1970-01-01T00:00:00Z")),
        orjson.dumps(prediction("p7", "2026-11-20T07:00:00Z")),
    ]
    path = tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\n".join([*good[:100], *odd, *good[100:]]) + b"\n")
    config = tmp_path / "predwatch.yml"
    config.write_text(
        "store: {local: {path: logs}}\n"
        "models:\n  fraud:\n    ops: {window: 1d, min_rows: 1}\n    drift: {window: 1d, min_rows: 1, min_coverage: 0}\n"
    )
    return config


EXPECTED_REASONS = {  # reason: line of its first occurrence
    "bad JSON": 101,
    "invalid UTF-8": 102,
    "implausible time": 103,
    "repeated id": 104,
}


def test_analyze_and_status_show_each_reason_with_its_first_line(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # rich folds nothing at this width
    config = odd_day(tmp_path)
    path = tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson"
    at = ["--config", str(config), "--at", "2026-11-21T00:00:00Z"]
    assert main(["analyze", *at]) == 0
    analyzed = capsys.readouterr().out
    for reason, line in EXPECTED_REASONS.items():
        assert f"1 {reason} (first at {path}:{line})" in analyzed
    assert "drift, ops" in analyzed  # the two jobs share one window: one row

    assert main(["status", "--config", str(config), "--format", "json"]) == 0
    (row,) = orjson.loads(capsys.readouterr().out)["quality"]
    assert row["model"] == "fraud"
    assert row["jobs"] == ["drift", "ops"]
    assert row["window"] == {"start": "2026-11-20T00:00:00Z", "end": "2026-11-21T00:00:00Z"}
    assert (row["lines"], row["set_aside"]) == (204, 4)
    assert row["reasons"] == {
        reason: {"count": 1, "first": f"{path}:{line}"} for reason, line in EXPECTED_REASONS.items()
    }

    assert main(["status", "--config", str(config)]) == 0
    shown = capsys.readouterr().out
    assert "data quality" in shown
    for reason, line in EXPECTED_REASONS.items():
        assert f"1 {reason} (first at {path}:{line})" in shown


def test_the_report_shows_each_window_quality(tmp_path: Path):
    config = odd_day(tmp_path)
    path = tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson"
    out = tmp_path / "report.html"
    assert main(["report", "--config", str(config), "--at", "2026-11-21T00:00:00Z", "--out", str(out)]) == 0
    page = out.read_text()
    section = page[page.index('<section id="quality">') : page.index("</section>", page.index('id="quality"'))]
    for reason, line in EXPECTED_REASONS.items():
        assert escape(f"1 {reason} (first at {path}:{line})") in section
    assert '<tr class="alert">' in section  # 4 of 204 lines is above the default 1 %


HOUR = timedelta(hours=1)


def hour(n: int, status: Status, bad: int | None, *, lines: int = 200) -> Finding:
    """The ops finding of hour ``n``: ``bad`` lines set aside of ``lines`` (``None``: no quality report)."""
    window = Window(DAY1.start + n * HOUR, DAY1.start + (n + 1) * HOUR)
    reasons = {"bad JSON": ReasonCount(bad, "svc.ndjson:7")} if bad else {}
    report = None if bad is None else QualityReport(lines, reasons)
    error = "the store could not tell" if report is None else None
    metrics = OpsMetrics.from_dict({"volume": {"total": lines}}) if status != "error" else None
    failed = "ConnectionError: store down" if status == "error" else None
    return Finding("fraud", "ops", window, status, metrics, error=failed, quality=WindowQuality(report, 0.01, error))


def quality_items(sender: RecordingSender) -> list[str]:
    return [i.kind for m in sender.messages for i in m.items if i.subject == QUALITY]


def test_a_quality_alert_resolves_on_the_first_window_whose_quality_is_back_whatever_the_verdict(tmp_path: Path):
    config = Config.model_validate({"models": {"fraud": {"ops": {"window": "1h", "cooldown": "1d"}}}})
    sender = RecordingSender()
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:

        def run(finding: Finding) -> None:
            process(store, config, [finding], now=finding.window.end, sender=sender)

        run(hour(0, "ok", 20))  # 10 % set aside
        run(hour(0, "ok", 20))  # the same window again: nothing new
        assert quality_items(sender) == ["firing"]
        run(hour(1, "insufficient_data", None))  # no report: says nothing about quality
        run(hour(2, "ok", None))  # nor does a verdict without a report
        run(hour(3, "insufficient_data", 0, lines=0))  # nor an empty window
        assert quality_items(sender) == ["firing"]
        assert store.get_state("alert:fraud:ops:quality")[0]["status"] == "firing"
        run(hour(4, "error", 1))  # the job failed, but its window's quality is back under 1 %
        assert quality_items(sender) == ["firing", "resolved"]
        run(hour(5, "insufficient_data", 1))  # resolved once
        run(hour(6, "alert", 30))  # flapping back is a new alert, not a reminder
        run(hour(7, "insufficient_data", 1))
        assert quality_items(sender) == ["firing", "resolved", "firing", "resolved"]
