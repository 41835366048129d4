"""Every finding carries its window's quality; too many lines set aside is an alert of its own."""

from __future__ import annotations

from pathlib import Path

import orjson

from analyzers.alerts.rules import QUALITY, alerts_of
from analyzers.config.models import Config
from analyzers.runner import run_jobs
from analyzers.store import LocalStore
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
