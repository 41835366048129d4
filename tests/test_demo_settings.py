"""The demo's predwatch.yml: Slack from the environment by variable name, values from the environment intact."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from analyzers.config.loader import parse_config
from analyzers.demo.settings import demo_settings, write_settings

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
END = datetime(2026, 11, 8, tzinfo=timezone.utc)
SLACK_VARIABLES = ("SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_WEBHOOK_URL", "SLACK_BASE_URL")


def test_a_channel_starting_with_hash_and_the_token_stay_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SLACK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-123-secret")
    monkeypatch.setenv("SLACK_CHANNEL", "#ml-alerts")
    config = write_settings(demo_settings(START, END, tmp_path), tmp_path / "predwatch.yml")
    assert config.slack is not None
    assert (config.slack.token, config.slack.channel) == ("xoxb-123-secret", "#ml-alerts")
    text = (tmp_path / "predwatch.yml").read_text(encoding="utf-8")
    assert "${SLACK_BOT_TOKEN}" in text
    assert "xoxb-123-secret" not in text


def test_without_slack_variables_there_is_no_slack_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SLACK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    config = write_settings(demo_settings(START, END, tmp_path), tmp_path / "predwatch.yml")
    assert config.slack is None
    assert config.models["fraud"].fairness is not None
    assert config.models["eta"].fairness is None


def test_environment_values_are_strings_the_model_converts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW_GROUP_SIZE", "150")
    monkeypatch.setenv("PW_PASSWORD", "123456")
    monkeypatch.setenv("PW_CHANNEL", "#alerts")
    config = parse_config(
        "store: {elasticsearch: {hosts: ['http://es:9200'], username: u, password: '${PW_PASSWORD}'}}\n"
        "slack: {token: t, channel: '${PW_CHANNEL}'}\n"
        "models: {m: {fairness: {min_group_size: '${PW_GROUP_SIZE}'}}}\n"
    )
    assert config.models["m"].fairness is not None
    assert config.models["m"].fairness.min_group_size == 150
    assert config.store.elasticsearch is not None
    assert config.store.elasticsearch.password == "123456"
    assert config.slack is not None
    assert config.slack.channel == "#alerts"
