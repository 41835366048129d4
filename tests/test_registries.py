"""The extension points are tables: every part that lists jobs, stores or channels reads them from there."""

from __future__ import annotations

import argparse
import importlib

import pytest

from analyzers.alerts.channels import open_channel
from analyzers.alerts.channels.slack import SlackSender
from analyzers.alerts.channels.terminal import TerminalSender
from analyzers.cli import build_parser
from analyzers.config.models import Config, ModelConfig
from analyzers.jobs.registry import JOB_NAMES, JOBS, job_spec
from analyzers.report.data import DEFAULT_JOBS
from analyzers.report.html import JOB_TITLES
from analyzers.runner import job_function
from analyzers.store.factory import OPENERS
from analyzers.store.settings import StoreConfig


def test_the_job_table_is_what_config_runner_cli_and_report_know() -> None:
    assert JOB_NAMES == ("drift", "fairness", "performance", "ops", "canary", "estimation")
    assert [n for n in ModelConfig.model_fields if n not in ("ingest_delay", "quality")] == list(JOB_NAMES)
    for name, spec in JOBS.items():
        assert ModelConfig.model_fields[name].annotation == spec.config | None
        assert job_function(name) is importlib.import_module(spec.module).run
    assert {name: spec.config for name, spec in JOBS.items()} == DEFAULT_JOBS
    assert {name: spec.title for name, spec in JOBS.items()} == JOB_TITLES
    analyze = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["analyze"]
    job_option = next(a for a in analyze._actions if "--job" in a.option_strings)
    assert tuple(job_option.choices) == JOB_NAMES


def test_a_model_lists_its_enabled_jobs_in_table_order() -> None:
    model = ModelConfig.model_validate({"ops": {}, "drift": {"enabled": False}, "fairness": {}})
    assert list(model.jobs()) == ["fairness", "ops"]
    assert model.job("drift") is not None
    assert model.job("performance") is None
    expected = "unknown job 'replay': expected one of drift, fairness, performance, ops, canary, estimation"
    with pytest.raises(ValueError, match=expected):
        job_spec("replay")


def test_every_kind_of_store_has_one_opener() -> None:
    assert OPENERS.keys() == StoreConfig.model_fields.keys()
    assert StoreConfig().chosen()[0] == "local"
    assert StoreConfig.model_validate({"elasticsearch": {"hosts": ["http://es:9200"]}}).chosen()[0] == "elasticsearch"
    with pytest.raises(ValueError, match="give one of 'local' or 'elasticsearch', not both"):
        StoreConfig.model_validate({"local": {}, "elasticsearch": {"hosts": ["http://es:9200"]}})


def test_the_configured_channel_else_the_terminal() -> None:
    assert isinstance(open_channel(Config()), TerminalSender)
    slack = open_channel(Config.model_validate({"slack": {"webhook_url": "http://127.0.0.1:9/hook"}}))
    assert isinstance(slack, SlackSender)
    assert slack.target == "Slack incoming webhook"
