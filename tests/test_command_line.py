"""The predwatch command: analyze's JSON shape and exit codes, check-config's errors with lines and keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest

from analyzers.cli import main
from analyzers.config.loader import ConfigError, parse_config

CONFIG = """
store:
  local: {path: logs}
models:
  fraud:
    drift:
      reference: {last: 1d, ending: 0d}
      window: 1d
      min_rows: 50
    fairness: {window: 1d, min_group_size: 20}
    ops: {window: 1d, bucket: 1h, max_silence: 3h, latency_ms: {p95: 1000}}
"""


def _events(day: str, n: int, rng: np.random.Generator, shift: float) -> list[bytes]:
    lines = []
    for i in range(n):
        ts = f"{day}T{(i * 24) // n:02d}:{(i * 7) % 60:02d}:00Z"
        ml = {
            "prediction_id": f"{day}-{i}",
            "model": {"name": "fraud", "version": "v1"},
            "features": {"amount": float(rng.normal(shift)), "country": str(rng.choice(["DE", "FR"]))},
            "prediction": {"label": int(rng.random() < 0.3), "score": float(rng.random())},
            "groups": {"region": str(rng.choice(["EU", "US"]))},
            "latency_ms": 10.0,
        }
        lines.append(
            orjson.dumps({"@timestamp": ts, "event": {"dataset": "ml.prediction", "outcome": "success"}, "ml": ml})
        )
    return lines


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    svc = tmp_path / "logs" / "fraud-api"
    svc.mkdir(parents=True)
    (svc / "predictions-2026-11-20.ndjson").write_bytes(b"\n".join(_events("2026-11-20", 600, rng, 0.0)) + b"\n")
    (svc / "predictions-2026-11-21.ndjson").write_bytes(b"\n".join(_events("2026-11-21", 600, rng, 1.0)) + b"\n")
    path = tmp_path / "predwatch.yml"
    path.write_text(CONFIG)
    return path


def test_analyze_prints_findings_json_and_stores_them(config_file: Path, capsys):
    code = main(
        [
            "analyze",
            "--config",
            str(config_file),
            "--at",
            "2026-11-22T00:00:00Z",
            "--format",
            "json",
            "--dry-run",
            "--fail-on-alert",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    by_job = {f["job"]: f for f in out["findings"]}
    assert set(by_job) == {"drift", "fairness", "ops"}
    drift = by_job["drift"]
    assert drift["window"] == {"start": "2026-11-21T00:00:00Z", "end": "2026-11-22T00:00:00Z"}
    features = {f["name"]: f for f in drift["features"]}
    assert {"amount", "country", "prediction", "score"} <= set(features), "features by their own names"
    assert features["amount"]["drifted"] is True
    assert drift["status"] == "alert"
    assert code == 1  # an alert fired and --fail-on-alert
    assert main(["status", "--config", str(config_file), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["latest"] == [], "a dry run stores no finding"
    assert main(["analyze", "--config", str(config_file), "--at", "2026-11-22T00:00:00Z", "--format", "json"]) == 0
    by_job = {f["job"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    assert main(["status", "--config", str(config_file), "--format", "json"]) == 0
    stored = {f["job"]: f for f in json.loads(capsys.readouterr().out)["latest"]}
    assert stored.keys() == by_job.keys(), "every finding was stored"
    for job, finding in by_job.items():
        assert stored[job] == finding, f"the stored {job} finding reads back as printed"


def test_analyze_text_table(config_file: Path, capsys):
    assert main(["analyze", "--config", str(config_file), "--at", "2026-11-22T00:00:00Z", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "drift" in out
    assert "alert" in out


def test_unknown_model_is_an_error(config_file: Path, capsys):
    assert main(["analyze", "--config", str(config_file), "--model", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_check_config_reports_every_problem_with_line_and_key(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.delenv("PW_MISSING_TOKEN", raising=False)
    monkeypatch.setenv("PW_SECRET", "xoxb-very-secret")
    path = tmp_path / "bad.yml"
    path.write_text(
        "store:\n  local: {path: logs}\n"
        "slack: {token: '${PW_MISSING_TOKEN}', channel: '#x'}\n"
        "models:\n  fraud:\n    drift:\n      windw: 1d\n      schedule: {every: 1 hour}\n"
        "    fairness:\n      min_group_size: '${PW_SECRET}'\n"
    )
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: slack.token: environment variable PW_MISSING_TOKEN is not set" in err
    assert f"{path}:7: models.fraud.drift.windw: unknown key" in err
    assert f"{path}:8: models.fraud.drift.schedule.every" in err
    assert f"{path}:10: models.fraud.fairness.min_group_size" in err
    assert "xoxb-very-secret" not in err


def test_env_defaults_and_valid_config(monkeypatch):
    monkeypatch.delenv("KIBANA_URL", raising=False)
    cfg = parse_config("kibana: {url: '${KIBANA_URL:-http://kb:5601}'}\nmodels: {}\n")
    assert cfg.kibana.url == "http://kb:5601"
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("models: [\n")
