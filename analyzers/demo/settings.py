"""The demo's predwatch configuration: what a user would write for these two models.

Built as the same plain data a ``predwatch.yml`` holds, so the demo writes it next to its logs and
``predwatch analyze -c <out>/predwatch.yml`` repeats any day by hand.  Secrets stay in the
environment: the file names the variables, never their values.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from analyzers.config.models import Config
from analyzers.timeutil import format_time


def _slack_from_environment() -> dict[str, Any] | None:
    """Slack settings when the environment provides a bot token and channel, or a webhook URL."""
    slack: dict[str, Any] = {}
    if os.environ.get("SLACK_BOT_TOKEN") and os.environ.get("SLACK_CHANNEL"):
        slack = {"token": "${SLACK_BOT_TOKEN}", "channel": "${SLACK_CHANNEL}"}
    elif os.environ.get("SLACK_WEBHOOK_URL"):
        slack = {"webhook_url": "${SLACK_WEBHOOK_URL}"}
    if slack and os.environ.get("SLACK_BASE_URL"):
        slack["base_url"] = "${SLACK_BASE_URL}"
    return slack or None


def demo_settings(reference_start: datetime, reference_end: datetime, report_dir: Path) -> dict[str, Any]:
    """The configuration as YAML-ready data: a fixed reference (the first half), daily windows.

    Daily checks run often, so drift tests use alpha 0.01, fairness gaps 99% intervals and performance
    alerts a 10% drop: at 5% per test, two weeks of daily runs over a dozen columns would cry wolf
    every few runs.
    """
    reference = {"start": format_time(reference_start), "end": format_time(reference_end)}
    daily = {"window": "1d", "schedule": {"every": "1d"}, "cooldown": "20h"}
    ops = {
        **daily,
        "bucket": "15m",
        "max_silence": "45m",
        "max_error_rate": 0.02,
        "min_rows": 50,
    }
    data: dict[str, Any] = {
        "store": {"local": {"path": "logs"}},
        "state": {"path": "state"},
        "kibana": {"url": "http://localhost:5601"},
        "models": {
            "fraud": {
                "ingest_delay": "0s",
                "drift": {**daily, "reference": reference, "alpha": 0.01, "multivariate": {"method": "classifier"}},
                "fairness": {
                    **daily,
                    "groups": ["region"],
                    "positive_label": 1,
                    "min_group_size": 100,
                    "confidence": 0.99,
                },
                "performance": {**daily, "reference": reference, "min_labels": 200, "max_drop": 0.1},
                "estimation": {**daily, "reference": reference, "max_drop": 0.1},
                "ops": {**ops, "latency_ms": {"p95": 120}},
                "canary": {**daily, "metric": "accuracy", "min_detectable": 0.05, "min_rows": 50},
            },
            "eta": {
                "ingest_delay": "0s",
                "drift": {**daily, "reference": reference, "alpha": 0.01},
                "performance": {
                    **daily,
                    "reference": reference,
                    "task": "regression",
                    "min_labels": 200,
                    "max_drop": 0.1,
                },
                "ops": {**ops, "latency_ms": {"p95": 80}},
            },
        },
    }
    slack = _slack_from_environment()
    if slack is not None:
        slack["report_url"] = (report_dir / "report-{model}.html").resolve().as_uri()
        data["slack"] = slack
    return data


class _PlainDumper(yaml.SafeDumper):
    """Writes shared sub-mappings out in full: a file for people to read has no YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_settings(data: dict[str, Any], path: Path) -> Config:
    """Write the configuration file and load it back the way ``predwatch`` does."""
    from analyzers.config.loader import load_config

    path.write_text(yaml.dump(data, Dumper=_PlainDumper, sort_keys=False), encoding="utf-8")
    return load_config(path).config
