"""The Grafana dashboard and the Prometheus alerting rules under deploy/ use only metrics predwatch exports,
with labels those metrics have; the rules are well formed for Prometheus and Alertmanager."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from analyzers.metrics.catalogue import METRICS
from analyzers.timeutil import parse_duration

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy/grafana/dashboards/predwatch.json"
RULES = ROOT / "deploy/prometheus/rules/predwatch.yml"
KEYWORDS = {"and", "or", "unless", "bool", "offset"}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)")
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
COUNTER_FUNCTION = re.compile(r"\b(rate|irate|increase|resets)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords or labels."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = GROUPING.sub("", text)
    names = set()
    for match in IDENTIFIER.finditer(text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group() in KEYWORDS:
            continue  # a function or an aggregation
        names.add(match.group())
    return names


def selector_labels(expr: str) -> Iterator[tuple[str, str]]:
    """(metric, label) of every label matcher in the expression's selectors."""
    for metric, matchers in SELECTOR.findall(expr):
        for label, _op in MATCHER.findall(matchers):
            yield metric, label


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]["query"]
        metric = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
        assert metric, query
        assert metric.group(2) in METRICS[metric.group(1)].labels
        exprs.append(metric.group(1))
    return exprs


def rule_expressions() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_the_expression_reader_sees_metrics_not_functions_or_labels() -> None:
    expr = 'topk(10, a_metric{x="y", z=~"w"} / b_metric) and sum by (severity) (c_metric[5m]) > 0 or time() - d'
    assert metric_names(expr) == {"a_metric", "b_metric", "c_metric", "d"}
    assert list(selector_labels(expr)) == [("a_metric", "x"), ("a_metric", "z")]


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_metric_used_is_one_we_export(source: str) -> None:
    exprs = dashboard_expressions() if source == "dashboard" else rule_expressions()
    assert exprs
    unknown: list[str] = []
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"{expr!r} reads no metric"
        unknown += [f"{name} (in {expr!r})" for name in sorted(names) if name not in METRICS]
        unknown += [
            f"label {label} of {metric} (in {expr!r})"
            for metric, label in selector_labels(expr)
            if label not in METRICS.get(metric, METRICS["predwatch_store_up"]).labels
        ]
    assert not unknown, "\n".join(unknown)


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_counters_are_read_as_increases_and_gauges_never_are(source: str) -> None:
    exprs = dashboard_expressions() if source == "dashboard" else rule_expressions()
    misread: list[str] = []
    for expr in exprs:
        increases = {m.group(2) for m in COUNTER_FUNCTION.finditer(expr)}
        for name in metric_names(expr) & set(METRICS):
            if (METRICS[name].type == "counter") != (name in increases):
                misread.append(f"{name} ({METRICS[name].type}) in {expr!r}")
    assert not misread, "\n".join(misread)


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "predwatch-overview"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] < 24
        assert grid["x"] + grid["w"] <= 24
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
    covered = {name for expr in dashboard_expressions() for name in metric_names(expr)}
    for family in (
        "predwatch_canary_verdict",
        "predwatch_drift_columns_drifted_ratio",
        "predwatch_alerts_firing",
        "predwatch_notification_delivery_failures_total",
        "predwatch_version_traffic_ratio",
        "predwatch_version_estimation_estimate",
        "predwatch_version_estimation_estimate_lower",
        "predwatch_version_estimation_estimate_upper",
        "predwatch_version_estimation_dropped",
    ):
        assert family in covered, family


def test_the_dashboards_panels_do_not_overlap_and_its_variables_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    used = {name for expr in dashboard_expressions() for name in re.findall(r"\$(\w+)", expr)}
    assert used <= defined, used - defined


def test_the_rules_are_well_formed() -> None:
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert re.fullmatch(r"Predwatch[A-Z][A-Za-z]+", rule["alert"])
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert parse_duration(rule["for"]).total_seconds() > 0
    assert "PredwatchCanaryRollback" in names
