"""Prometheus metrics: ``/metrics`` scraped over HTTP on 127.0.0.1 and parsed with prometheus_client's parser,
values equal to the stored findings, heartbeats, alert state and outbox; names and labels as declared."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from analyzers.alerts import tally
from analyzers.alerts.channels.recording import RecordingSender
from analyzers.alerts.dispatch import flush, process
from analyzers.alerts.errors import ChannelUnreachable
from analyzers.config.models import Config
from analyzers.findings import (
    CanaryMetrics,
    DriftMetrics,
    EstimationMetrics,
    FairnessMetrics,
    Finding,
    OpsMetrics,
    PerformanceMetrics,
)
from analyzers.metrics.catalogue import METRICS, PERFORMANCE_FAMILIES, MetricSpec
from analyzers.metrics.samples import Limits, Sample, finding_samples, versions_left_out
from analyzers.metrics.server import MetricsServer, start_metrics_server
from analyzers.runner import run_jobs
from analyzers.scheduler import write_heartbeat
from analyzers.stats.drift import ColumnDrift
from analyzers.store import LocalStore
from analyzers.timeutil import Window, format_time, parse_time, utcnow
from tests.report_events import T0, Incidents, build
from tests.version_traffic import Version, write_traffic

END = T0 + timedelta(days=2)
NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
SETTINGS: dict[str, Any] = {
    "scheduler": {"metrics_max_columns": 3, "metrics_max_groups": 2},
    "models": {
        "fraud": {
            "drift": {
                "window": "1d",
                "reference": {"start": format_time(T0), "end": format_time(T0 + timedelta(days=1))},
                "multivariate": {"method": "pca"},
            },
            "estimation": {
                "window": "1d",
                "reference": {"start": format_time(T0), "end": format_time(T0 + timedelta(days=1))},
                "min_labels": 30,
                "max_calibration_error": 0.15,  # 359 labelled reference predictions: a coarse calibration check
            },
            "fairness": {"window": "1d", "groups": ["region"], "min_group_size": 50},
            "performance": {"window": "1d", "min_labels": 30},
            "ops": {"window": "1d", "min_rows": 50, "latency_ms": {"p95": 100}},
        },
        "m": {"canary": {"window": "4h", "min_detectable": 0.05}},
    },
}

Scrape = dict[str, dict[tuple[tuple[str, str], ...], float]]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStore, Config, list[Finding]]]:
    """Two days of a classifier with incidents on the last, a canary rolling out a worse v2, their findings
    stored, a heartbeat, and alerts whose delivery failed (still in the outbox)."""
    root = tmp_path_factory.mktemp("metrics")
    build(root / "logs", days=2, per_day=600, last_day=Incidents(shift=0.6, worse_group="south", slow=True))
    write_traffic(
        root / "logs",
        [
            Version("v1", 3000, END - timedelta(days=1), END),
            Version("v2", 300, END - timedelta(hours=4), END, accuracy=0.7),
        ],
    )
    config = Config.model_validate(SETTINGS)
    store = LocalStore(root / "logs", root / "state")
    findings = run_jobs(store, config, at=END)
    write_heartbeat(
        store,
        "fraud",
        "ops",
        {
            "model": "fraud",
            "job": "ops",
            "ran_at": format_time(END + timedelta(seconds=42)),
            "window_end": format_time(END),
            "status": "alert",
            "duration_s": 1.25,
        },
    )
    down = RecordingSender("test channel", fail=ChannelUnreachable("test channel unreachable"))
    process(store, config, findings, now=END, sender=down)
    yield store, config, store.read_findings()
    store.close()


@pytest.fixture(scope="module")
def server(stored: tuple[LocalStore, Config, list[Finding]]) -> Iterator[MetricsServer]:
    store, config, _ = stored
    served = start_metrics_server(store, store, config, port=0, address="127.0.0.1")
    yield served
    served.close()


def scrape(url: str) -> tuple[Scrape, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        text = response.read().decode("utf-8")
    out: Scrape = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out, text


def value(metrics: Scrape, name: str, **labels: str) -> float:
    return metrics[name][tuple(sorted(labels.items()))]


def latest(findings: list[Finding], model: str, job: str) -> Finding:
    return [f for f in findings if (f.model, f.job) == (model, job)][-1]


@pytest.fixture(scope="module")
def scraped(server: MetricsServer) -> Scrape:
    assert server.url.startswith("http://127.0.0.1:")
    return scrape(server.url)[0]


def test_drift_gauges_are_the_stored_finding(scraped: Scrape, stored: tuple[LocalStore, Config, list[Finding]]) -> None:
    drift = latest(stored[2], "fraud", "drift").metrics_as(DriftMetrics)
    assert drift is not None
    assert drift.n_drifted > 0
    assert value(scraped, "predwatch_drift_columns_drifted_ratio", model="fraud") == pytest.approx(drift.share_drifted)
    assert value(scraped, "predwatch_drift_dataset_drift", model="fraud") == float(drift.dataset_drift)
    exported = scraped["predwatch_drift_effect_size"]
    assert len(exported) == 3  # scheduler.metrics_max_columns
    by_name = {f.name: f for f in drift.features}
    for labels, effect in exported.items():
        column = by_name[dict(labels)["column"]]
        assert effect == pytest.approx(column.effect_size)
        assert dict(labels)["method"] == column.effect_size_method
    drifted = {f.name for f in drift.features if f.drifted}
    shown = {dict(labels)["column"] for labels in exported}
    # drifted columns are exported first
    assert (shown <= drifted) if len(drifted) >= 3 else (drifted <= shown)
    left_out = value(scraped, "predwatch_metrics_series_left_out", model="fraud", kind="column")
    assert left_out == len(drift.features) - 3


def test_estimation_and_multivariate_gauges_are_the_stored_findings(
    scraped: Scrape, stored: tuple[LocalStore, Config, list[Finding]]
) -> None:
    estimation = latest(stored[2], "fraud", "estimation").metrics_as(EstimationMetrics)
    assert estimation is not None
    assert estimation.estimates  # the reference day is labelled: every metric estimated
    for entry in estimation.estimates:
        assert entry.estimated is not None
        assert value(scraped, "predwatch_estimation_estimate", model="fraud", metric=entry.name) == pytest.approx(
            entry.estimated
        )
        lower = value(scraped, "predwatch_estimation_estimate_lower", model="fraud", metric=entry.name)
        assert lower == pytest.approx(entry.lower)
        dropped = value(scraped, "predwatch_estimation_dropped", model="fraud", metric=entry.name)
        assert dropped == float(entry.dropped)
    joint = latest(stored[2], "fraud", "drift").metrics_as(DriftMetrics)
    assert joint is not None
    assert joint.multivariate is not None
    assert joint.multivariate.statistic is not None
    statistic = value(scraped, "predwatch_drift_multivariate_statistic", model="fraud", method="pca")
    assert statistic == pytest.approx(joint.multivariate.statistic)
    drifted = value(scraped, "predwatch_drift_multivariate_drifted", model="fraud", method="pca")
    assert drifted == float(joint.multivariate.drifted)


def test_fairness_performance_and_ops_gauges_are_the_stored_findings(
    scraped: Scrape, stored: tuple[LocalStore, Config, list[Finding]]
) -> None:
    findings = stored[2]
    fairness = latest(findings, "fraud", "fairness").metrics_as(FairnessMetrics)
    assert fairness is not None
    region = next(a for a in fairness.attributes if a.name == "region")
    got = value(scraped, "predwatch_fairness_demographic_parity_ratio", model="fraud", attribute="region")
    assert got == pytest.approx(region.demographic_parity_ratio.value)
    assert len(scraped["predwatch_fairness_selection_rate_ratio"]) == 2  # scheduler.metrics_max_groups
    assert value(scraped, "predwatch_metrics_series_left_out", model="fraud", kind="group") == len(region.groups) - 2
    for labels, rate in scraped["predwatch_fairness_selection_rate_ratio"].items():
        group = next(g for g in region.groups if g.group == dict(labels)["group"])
        assert rate == pytest.approx(group.rate("selection_rate").value)

    performance = latest(findings, "fraud", "performance").metrics_as(PerformanceMetrics)
    assert performance is not None
    coverage = value(scraped, "predwatch_performance_label_coverage_ratio", model="fraud")
    assert coverage == pytest.approx(performance.label_coverage)
    for name, result in performance.measured.items():
        if result.value is not None:
            assert value(scraped, PERFORMANCE_FAMILIES[name], model="fraud") == pytest.approx(result.value)

    ops = latest(findings, "fraud", "ops").metrics_as(OpsMetrics)
    assert ops is not None
    assert value(scraped, "predwatch_ops_events", model="fraud") == ops.volume.total
    assert value(scraped, "predwatch_ops_error_rate_ratio", model="fraud") == pytest.approx(ops.error_rate.value)
    p95 = ops.latency_ms["p95"].value
    assert p95 is not None
    assert value(scraped, "predwatch_ops_latency_seconds", model="fraud", percentile="p95") == pytest.approx(p95 / 1000)
    assert value(scraped, "predwatch_finding_status", model="fraud", job="ops", status="alert") == 1.0
    assert value(scraped, "predwatch_finding_status", model="fraud", job="ops", status="ok") == 0.0


def test_the_canary_verdict_and_traffic(scraped: Scrape, stored: tuple[LocalStore, Config, list[Finding]]) -> None:
    canary = latest(stored[2], "m", "canary").metrics_as(CanaryMetrics)
    assert canary is not None
    assert canary.verdict == "rollback"
    verdicts = {dict(labels)["verdict"]: v for labels, v in scraped["predwatch_canary_verdict"].items()}
    assert verdicts == {"promote": 0.0, "hold": 0.0, "rollback": 1.0}
    assert value(scraped, "predwatch_canary_info", model="m", baseline="v1", candidate="v2") == 1.0
    for share in canary.traffic:
        got = value(scraped, "predwatch_canary_traffic_ratio", model="m", version=share.version)
        assert got == pytest.approx(share.share)
    accuracy = canary.comparison("accuracy")
    assert accuracy is not None
    got = value(scraped, "predwatch_canary_difference", model="m", metric="accuracy")
    assert got == pytest.approx(accuracy.difference)
    assert value(scraped, "predwatch_canary_difference_upper", model="m", metric="accuracy") == pytest.approx(
        accuracy.high
    )


def test_runs_alerts_and_the_outbox_are_the_stored_state(
    scraped: Scrape, stored: tuple[LocalStore, Config, list[Finding]]
) -> None:
    store = stored[0]
    labels = {"model": "fraud", "job": "ops"}
    assert value(scraped, "predwatch_job_last_run_duration_seconds", **labels) == 1.25
    assert (
        value(scraped, "predwatch_job_last_run_timestamp_seconds", **labels)
        == (END + timedelta(seconds=42)).timestamp()
    )
    assert value(scraped, "predwatch_job_last_run_status", **labels, status="alert") == 1.0
    assert value(scraped, "predwatch_job_last_window_end_timestamp_seconds", **labels) == END.timestamp()
    firing = [doc for doc, _ in store.list_state("alert:").values() if doc["status"] == "firing"]
    assert firing
    assert sum(scraped["predwatch_alerts_firing"].values()) == len(firing)
    critical = sum(1 for doc in firing if doc["alert"]["severity"] == "critical")
    assert value(scraped, "predwatch_alerts_firing", model="m", job="canary", severity="critical") == critical
    # a configured job shows 0 for a severity it has no alert of (not an absent series)
    assert value(scraped, "predwatch_alerts_firing", model="fraud", job="drift", severity="critical") == 0.0
    outbox = store.list_state("outbox:")
    assert outbox
    assert value(scraped, "predwatch_outbox_notifications") == len(outbox)
    assert value(scraped, "predwatch_outbox_failing_notifications") == len(outbox)
    attempts = [record["attempts"] for doc, _ in outbox.values() for record in doc["deliveries"].values()]
    assert all(attempts)
    assert value(scraped, "predwatch_outbox_failed_attempts") == sum(attempts)
    assert value(scraped, "predwatch_notification_delivery_failures_total", channel="terminal") == sum(attempts)
    assert value(scraped, "predwatch_notifications_delivered_total", channel="terminal") == 0.0
    assert value(scraped, "predwatch_store_up") == 1.0


def spec_of(family: str) -> tuple[MetricSpec, str]:
    """The declared family a parsed one comes from: a counter's family is its name without ``_total``, and
    prometheus_client's text format adds each counter's ``_created`` as a gauge of its own."""
    if family in METRICS:
        return METRICS[family], "gauge"
    if family.endswith("_created") and f"{family.removesuffix('_created')}_total" in METRICS:
        return METRICS[f"{family.removesuffix('_created')}_total"], "gauge"
    return METRICS[f"{family}_total"], "counter"


def test_names_labels_and_help_follow_the_conventions(server: MetricsServer) -> None:
    scraped, text = scrape(server.url)
    families = {f.name: f for f in text_string_to_metric_families(text) if f.name.startswith("predwatch_")}
    assert {"predwatch_build_info", "predwatch_store_up", "predwatch_canary_verdict"} <= set(families)
    assert "predwatch_notification_delivery_failures" in families
    for name, family in families.items():
        spec, parsed_type = spec_of(name)
        assert NAME.match(name)
        assert family.type == parsed_type
        assert spec.name.endswith("_total") == (spec.type == "counter"), "counters, and only they, end in _total"
        assert family.documentation == spec.help
        for s in family.samples:
            assert tuple(sorted(s.labels)) == tuple(sorted(spec.labels)), name
    assert "process_resident_memory_bytes" in scraped  # the daemon's own process metrics


def test_an_unreadable_store_says_so(tmp_path: Path) -> None:
    class Broken(LocalStore):
        def list_state(self, prefix: str = "") -> dict[str, tuple[dict[str, Any], Any]]:
            raise OSError("disk gone")

    (tmp_path / "logs").mkdir()
    store = Broken(tmp_path / "logs", tmp_path / "state")
    served = start_metrics_server(store, store, Config(), port=0, address="127.0.0.1")
    try:
        scraped, _ = scrape(served.url)
    finally:
        served.close()
        store.close()
    assert value(scraped, "predwatch_store_up") == 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_predwatch_run_serves_metrics_on_the_port_it_is_given(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    config = {
        "store": {"local": {"path": str(tmp_path / "logs")}},
        "state": {"path": str(tmp_path / "state")},
        "models": {"m": {"ops": {"window": "1h", "schedule": {"every": "1h"}, "min_rows": 10}}},
    }
    path = tmp_path / "predwatch.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "analyzers.cli", "run", "-c", str(path), "--metrics-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        scraped: Scrape = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "predwatch_job_last_run_status" not in scraped:
            try:
                scraped = scrape(f"http://127.0.0.1:{port}/metrics")[0]
            except OSError:
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    served = [json.loads(line) for line in err.splitlines() if '"serving metrics"' in line]
    assert [e["predwatch"]["url"] for e in served] == [f"http://127.0.0.1:{port}/metrics"]
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        found = store.get_state("heartbeat:m:ops")
        (finding,) = store.read_findings("m", "ops")
    assert found is not None
    heartbeat = found[0]
    assert value(scraped, "predwatch_job_last_run_status", model="m", job="ops", status=heartbeat["status"]) == 1.0
    assert value(scraped, "predwatch_job_last_run_duration_seconds", model="m", job="ops") == heartbeat["duration_s"]
    assert value(scraped, "predwatch_finding_status", model="m", job="ops", status=finding.status) == 1.0
    assert value(scraped, "predwatch_finding_window_end_timestamp_seconds", model="m", job="ops") == (
        finding.window.end.timestamp()
    )


def test_a_missing_number_is_absent_and_a_repeated_series_is_sent_once(tmp_path: Path) -> None:
    def column(name: str, effect: float) -> ColumnDrift:
        return ColumnDrift(
            name=name,
            kind="numeric",
            method="ks",
            statistic=0.1,
            p_value=0.5,
            effect_size_method="wasserstein",
            effect_size=effect,
            threshold=0.03,
            n_ref=100,
            n_cur=100,
        )

    now = utcnow()
    window = Window(now - timedelta(hours=1), now)
    drift = DriftMetrics(n_cur=100, features=[column("score", 0.5), column("score", 0.7), column("x", math.nan)])
    (tmp_path / "logs").mkdir()
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        store.write_findings([Finding("m", "drift", window, "ok", drift)])
        served = start_metrics_server(
            store, store, Config.model_validate({"models": {"m": {"drift": {}}}}), port=0, address="127.0.0.1"
        )
        try:
            scraped, text = scrape(served.url)
        finally:
            served.close()
    # the first of the two in export order (the larger effect) is the one series; NaN gives no sample
    assert scraped["predwatch_drift_effect_size"] == {
        (("column", "score"), ("method", "wasserstein"), ("model", "m")): 0.7
    }
    assert text.count('predwatch_drift_column_drifted{column="score"') == 1
    assert value(scraped, "predwatch_drift_column_drifted", model="m", column="x") == 0.0


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    with socket.socket() as taken, LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=rf"cannot serve metrics on 127.0.0.1:{port} \(scheduler.metrics_address"):
            start_metrics_server(store, store, Config(), port=port, address="127.0.0.1")


def scrape_store(store: LocalStore, config: Config) -> Scrape:
    """One scrape of a metrics server started on the store (as a restarted ``predwatch run`` would)."""
    served = start_metrics_server(store, store, config, port=0, address="127.0.0.1")
    try:
        return scrape(served.url)[0]
    finally:
        served.close()


def test_delivery_counters_only_go_up_across_retries_restarts_and_a_pruned_outbox(tmp_path: Path) -> None:
    config = Config.model_validate({"models": {"m": {"ops": {"window": "1h"}}}})
    start = utcnow() - timedelta(days=3)
    failed = Finding("m", "ops", Window(start - timedelta(hours=1), start), "error", error="store down")
    down = RecordingSender(fail=ChannelUnreachable("terminal unreachable"))
    (tmp_path / "logs").mkdir()
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        assert scrape_store(store, config)["predwatch_notifications_delivered_total"] == {
            (("channel", "terminal"),): 0.0
        }, "a configured channel starts at 0"
        process(store, config, [failed], now=start, sender=down)
        flush(store, config, sender=down, now=start + timedelta(minutes=1))
        before = scrape_store(store, config)
        flush(store, config, sender=RecordingSender(), now=start + timedelta(minutes=2))
    with LocalStore(tmp_path / "logs", tmp_path / "state") as restarted:
        flush(restarted, config, sender=RecordingSender(), now=start + timedelta(days=2))  # prunes the outbox
        assert restarted.list_state("outbox:") == {}
        after = scrape_store(restarted, config)
    assert value(before, "predwatch_notification_delivery_failures_total", channel="terminal") == 2.0
    assert value(before, "predwatch_outbox_failed_attempts") == 2.0
    assert value(after, "predwatch_notification_delivery_failures_total", channel="terminal") == 2.0
    assert value(after, "predwatch_outbox_failed_attempts") == 0.0, "the gauge forgets what was pruned"
    assert value(after, "predwatch_notifications_delivered_total", channel="terminal") == 1.0
    created = value(after, "predwatch_notifications_delivered_created", channel="terminal")
    assert created == parse_time(format_time(start)).timestamp(), "counting started with the first round"


def test_two_processes_counting_at_once_lose_no_count(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    now = utcnow()
    other = LocalStore(tmp_path / "logs", tmp_path / "state")

    class Raced(LocalStore):
        """Another process adds its count between this one's read and its write, once."""

        raced = False

        def put_state(self, key: str, doc: dict[str, Any], version: Any = None) -> Any:
            if key.startswith("tally:") and not self.raced:
                self.raced = True
                tally.add(other, "slack", delivered=5, failed=1, now=now)
            return super().put_state(key, doc, version)

    with Raced(tmp_path / "logs", tmp_path / "state") as store:
        tally.add(store, "slack", delivered=1, failed=0, now=now)
        tally.add(store, "slack", delivered=2, failed=3, now=now)
        (counted,) = tally.tallies(doc for doc, _v in store.list_state("tally:").values())
    other.close()
    assert (counted.delivered, counted.failed) == (8, 4)


def test_by_version_findings_export_each_version_bounded(tmp_path: Path) -> None:
    day = Window(T0, T0 + timedelta(days=1))
    write_traffic(
        tmp_path / "logs",
        [
            Version("v1", 900, day.start, day.end),
            Version("v2", 300, day.start, day.end, error_rate=0.3, accuracy=0.6),
            Version("v3", 100, day.start, day.end),
        ],
    )
    config = Config.model_validate(
        {
            "scheduler": {"metrics_max_versions": 2},
            "models": {
                "m": {
                    "ops": {"window": "1d", "by_version": True, "min_rows": 50, "max_error_rate": 0.1},
                    "performance": {"window": "1d", "by_version": True, "min_labels": 30},
                }
            },
        }
    )
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        findings = run_jobs(store, config, at=day.end)
        for finding in findings:  # the collector reads 30 days back from now
            finding.window = Window(utcnow() - timedelta(days=1), utcnow())
        store.write_findings(findings)
        scraped = scrape_store(store, config)
    ops, performance = (f for job in ("ops", "performance") for f in findings if f.job == job)
    assert ops.by_version is not None
    assert [v.version for v in ops.by_version.versions] == ["v1", "v2", "v3"]
    exported = {dict(labels)["version"] for labels in scraped["predwatch_version_ops_error_rate_ratio"]}
    assert exported == {"v1", "v2"}, "metrics_max_versions: the most traffic first"
    assert value(scraped, "predwatch_metrics_series_left_out", model="m", kind="version") == 2  # v3, in two jobs
    for v in ops.by_version.versions[:2]:
        labels = {"model": "m", "job": "ops", "version": v.version}
        assert value(scraped, "predwatch_version_events", **labels) == v.events
        assert value(scraped, "predwatch_version_traffic_ratio", **labels) == pytest.approx(v.share)
        assert value(scraped, "predwatch_version_status", **labels, status=v.status) == 1.0
        numbers = v.metrics
        assert isinstance(numbers, OpsMetrics)
        got = value(scraped, "predwatch_version_ops_error_rate_ratio", model="m", version=v.version)
        assert got == pytest.approx(numbers.error_rate.value)
    assert value(scraped, "predwatch_version_status", model="m", job="ops", version="v2", status="alert") == 1.0
    assert performance.by_version is not None
    for v in performance.by_version.versions[:2]:
        numbers = v.metrics
        assert isinstance(numbers, PerformanceMetrics)
        accuracy = numbers.measured["accuracy"].value
        assert accuracy is not None
        got = value(scraped, "predwatch_version_performance_accuracy_ratio", model="m", version=v.version)
        assert got == pytest.approx(accuracy)
    whole = performance.metrics_as(PerformanceMetrics)
    assert whole is not None
    assert value(scraped, "predwatch_performance_accuracy_ratio", model="m") == pytest.approx(
        whole.measured["accuracy"].value
    ), "the whole window keeps its own family"


def test_a_canary_exports_the_compared_versions_first_up_to_the_limit(
    stored: tuple[LocalStore, Config, list[Finding]],
) -> None:
    canary = latest(stored[2], "m", "canary")
    shares = canary.metrics_as(CanaryMetrics)
    assert shares is not None
    assert [t.version for t in shares.traffic] == ["v1", "v2"]
    one = Limits(max_versions=1)
    exported = [s for s in finding_samples(canary, one) if s.name == "predwatch_canary_traffic_ratio"]
    assert [dict(s.labels)["version"] for s in exported] == ["v1"]
    assert versions_left_out([canary], one) == [
        Sample("predwatch_metrics_series_left_out", (("model", "m"), ("kind", "version")), 1.0)
    ]
