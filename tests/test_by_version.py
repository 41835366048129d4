"""``by_version: true``: a job's finding split per model version, each version's result in the JSON and its
alerts under subjects of their own, resolved when the version is gone."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from analyzers.alerts.channels.recording import RecordingSender
from analyzers.alerts.dispatch import process
from analyzers.alerts.rules import alerts_of
from analyzers.config.models import Config, DriftConfig, EstimationConfig, OpsConfig
from analyzers.findings import DriftMetrics, EstimationMetrics, Finding, OpsMetrics, VersionSplit
from analyzers.jobs import estimation
from analyzers.jobs.versions import VersionSlice
from analyzers.metrics.samples import Limits, finding_samples
from analyzers.report import write_report
from analyzers.report.data import gather
from analyzers.runner import run_job
from analyzers.store import LocalStore
from analyzers.store.base import PredictionReader, Query
from analyzers.timeutil import Window, parse_time
from tests.finding_json import as_json
from tests.log_events import event, write_events
from tests.logged_stores import STORES, store_over
from tests.version_traffic import Version, write_traffic

T0 = parse_time("2026-11-20T00:00:00Z")
DAY1 = Window(T0, T0 + timedelta(days=1))
DAY2 = Window(T0 + timedelta(days=1), T0 + timedelta(days=2))


def test_drift_by_version_finds_the_version_that_moved(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    events = []
    for day, window in enumerate((DAY1, DAY2)):
        for i in range(3000):
            version = "v2" if day == 1 and i % 10 == 0 else "v1"
            shift = 1.0 if version == "v2" else 0.0
            ts = window.start + timedelta(seconds=float(rng.uniform(0, 86_000)))
            ml = {"model": {"name": "m", "version": version}, "features": {"x": float(rng.normal(shift, 1.0))}}
            events.append(event(ts, f"d{day}-{i}", {**ml, "prediction": {"label": int(rng.random() < 0.5)}}))
    write_events(tmp_path / "logs", events)
    config = DriftConfig(window="1d", reference={"start": DAY1.start, "end": DAY1.end}, by_version=True)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        finding = run_job(store, "m", "drift", config, DAY2)
    data = as_json(finding)
    assert finding.status == "alert"
    assert [s.subject for s in finding.signals] == ["version=v2:feature:x"]
    assert finding.signals[0].message.startswith("[v2] x drifted")
    split = finding.by_version
    assert split is not None
    assert [(v.version, v.status) for v in split.versions] == [("v1", "ok"), ("v2", "alert")]
    assert [v["version"] for v in data["by_version"]["versions"]] == ["v1", "v2"]
    v1, v2 = split.versions
    assert (v1.events, v2.events) == (2700, 300)
    assert v2.share == pytest.approx(0.1)
    whole, alone = finding.metrics_as(DriftMetrics), v2.metrics
    assert isinstance(alone, DriftMetrics)
    assert whole is not None
    assert (whole.n_cur, alone.n_cur) == (3000, 300)
    x = next(f for f in alone.features if f.name == "x")
    # the reference is the whole model's: each version is compared with what the model did before
    assert (x.n_ref, x.n_cur) == (3000, 300)
    assert x.drifted
    assert x.extra["mean_cur"] == pytest.approx(1.0, abs=0.15)


def test_ops_by_version_keeps_alerts_apart_and_resolves_a_version_that_left(tmp_path: Path) -> None:
    write_traffic(
        tmp_path / "logs",
        [
            Version("v1", 900, DAY1.start, DAY1.end),
            Version("v2", 300, DAY1.start, DAY1.end, error_rate=0.3),
            Version("v1", 900, DAY2.start, DAY2.end),
        ],
    )
    config = OpsConfig(window="1d", by_version=True, max_error_rate=0.1, latency_ms={}, min_rows=50)
    settings = Config.model_validate({"models": {"m": {"ops": config.model_dump()}}})
    sender = RecordingSender()
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        first = run_job(store, "m", "ops", config, DAY1)
        as_json(first)
        assert [a.key for a in alerts_of(first)] == ["m:ops:version=v2:metric:error_rate"]
        assert first.by_version is not None
        assert [(v.version, v.status) for v in first.by_version.versions] == [("v1", "ok"), ("v2", "alert")]
        whole = first.metrics_as(OpsMetrics)
        assert whole is not None
        assert whole.volume.total == 1200
        process(store, settings, [first], now=DAY1.end, sender=sender)
        second = run_job(store, "m", "ops", config, DAY2)
        assert second.status == "ok"
        assert second.by_version is not None
        assert [v.version for v in second.by_version.versions] == ["v1"]
        process(store, settings, [second], now=DAY2.end, sender=sender)
    fired, resolved = sender.messages
    assert [(i.kind, i.subject) for i in fired.items] == [("firing", "version=v2:metric:error_rate")]
    assert [(i.kind, i.subject) for i in resolved.items] == [("resolved", "version=v2:metric:error_rate")]


def test_without_by_version_nothing_is_split(tmp_path: Path) -> None:
    write_traffic(
        tmp_path / "logs", [Version("v1", 300, DAY1.start, DAY1.end), Version("v2", 300, DAY1.start, DAY1.end)]
    )
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        finding = run_job(store, "m", "ops", OpsConfig(window="1d"), DAY1)
    assert finding.by_version is None
    assert "by_version" not in finding.to_dict()


def _scored(rng: np.random.Generator, n: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a calibrated logistic model on inputs of the given spread, and labels drawn from them."""
    x = rng.normal(0.0, spread, n)
    score = np.round(1 / (1 + np.exp(-2.5 * x)), 3)
    return score, rng.random(n) < score


def _log_canary(log_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A labelled reference day of v1; then v1 as before, the canary v2 unsure of most inputs (its scores crowd
    around 0.5: its ROC AUC and accuracy fall), and v3 with too few predictions.  Returns the scores and labels
    of each version's labelled predictions on the second day."""
    rng = np.random.default_rng(11)
    events = []
    truth: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    # every k-th prediction of a version labelled
    traffic = [
        (DAY1, "v1", 2000, 1.0, 1),
        (DAY2, "v1", 2000, 1.0, 4),
        (DAY2, "v2", 2000, 0.35, 2),
        (DAY2, "v3", 60, 1.0, None),
    ]
    for window, version, n, spread, every in traffic:
        score, y = _scored(rng, n, spread)
        labelled = np.arange(n) % every == 0 if every else np.zeros(n, bool)
        for i in range(n):
            ts = window.start + timedelta(seconds=(i + 0.5) * 86_400 / n)
            pid = f"{window.start:%d}-{version}-{i}"
            prediction = {"label": int(score[i] >= 0.5), "score": float(score[i])}
            events.append(event(ts, pid, {"model": {"name": "m", "version": version}, "prediction": prediction}))
            if labelled[i]:
                events.append(event(ts + timedelta(minutes=5), pid, {"label": int(y[i])}, "ml.feedback"))
        if window == DAY2:
            truth[version] = (score[labelled], y[labelled])
    write_events(log_dir, events)
    return truth


def _canary_split(finding: Finding) -> VersionSplit:
    """The canary's per-version findings: v1 ok, the degraded v2 alerting, v3 too small to judge."""
    split = finding.by_version
    assert split is not None
    assert [(v.version, v.status) for v in split.versions] == [
        ("v1", "ok"),
        ("v2", "alert"),
        ("v3", "insufficient_data"),
    ]
    return split


def test_estimation_by_version_finds_the_canary_whose_estimate_falls(tmp_path: Path) -> None:
    truth = _log_canary(tmp_path / "logs")
    config = EstimationConfig(window="1d", reference={"start": DAY1.start, "end": DAY1.end}, by_version=True)
    settings = Config.model_validate({"models": {"m": {"ingest_delay": "0s", "estimation": config.model_dump()}}})
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        finding = run_job(store, "m", "estimation", config, DAY2)
        store.write_findings([finding])
        page = write_report(store, "m", tmp_path / "m.html", config=settings, at=DAY2.end).read_text("utf-8")
        trend = gather(store, "m", config=settings, at=DAY2.end).trends.estimation
    data = as_json(finding)
    split = _canary_split(finding)
    assert [v["version"] for v in data["by_version"]["versions"]] == ["v1", "v2", "v3"]
    assert finding.status == "alert"
    subjects = {s.subject for s in finding.signals}
    assert {"version=v2:metric:roc_auc", "version=v2:metric:accuracy"} <= subjects
    assert all(s.startswith("version=v2:") for s in subjects)
    keys = {a.key for a in alerts_of(finding)}
    assert "m:estimation:version=v2:metric:roc_auc" in keys
    v1, v2, v3 = (v.metrics for v in split.versions)
    assert isinstance(v1, EstimationMetrics)
    assert isinstance(v2, EstimationMetrics)
    assert isinstance(v3, EstimationMetrics)
    assert (v1.n, v2.n, v3.n) == (2000, 2000, 60)
    assert v3.reason == "60 predictions < min_rows 100"
    # the reference is the whole model's (v1's labelled day): the same reference value for every version
    ref_v1 = {e.name: e.reference for e in v1.estimates}
    ref_v2 = {e.name: e.reference for e in v2.estimates}
    assert ref_v1 == ref_v2
    assert (v1.n_ref, v2.n_ref) == (2000, 2000)
    v1_auc = next(e for e in v1.estimates if e.name == "roc_auc")
    v2_auc = next(e for e in v2.estimates if e.name == "roc_auc")
    assert v1_auc.dropped is False
    assert v2_auc.dropped is True
    assert v2_auc.estimated is not None
    assert v1_auc.estimated is not None
    assert v2_auc.estimated < v1_auc.estimated
    # realized values come from each version's own labels (a quarter of v1's, half of v2's), not the window's
    assert (v1.n_labeled, v2.n_labeled, v3.n_labeled) == (500, 1000, 0)
    for version, metrics in (("v1", v1), ("v2", v2)):
        score, y = truth[version]
        realized = {e.name: e.realized for e in metrics.estimates}
        assert realized["accuracy"] == pytest.approx(accuracy_score(y, score >= 0.5), rel=1e-9), version
        assert realized["roc_auc"] == pytest.approx(roc_auc_score(y, score), abs=1e-3), version  # over score cells
    assert v2_auc.realized is not None
    assert abs(v2_auc.realized - v2_auc.estimated) < 4 * (v2_auc.standard_error or 0.0)
    # the whole window keeps its own estimate, between the two versions'
    whole = finding.metrics_as(EstimationMetrics)
    assert whole is not None
    whole_auc = next(e for e in whole.estimates if e.name == "roc_auc")
    assert whole.n == 4060
    assert whole_auc.estimated is not None
    assert v2_auc.estimated < whole_auc.estimated < v1_auc.estimated
    # each version's estimates are exported as the other versioned jobs' headline numbers are
    exported = {
        (dict(s.labels)["version"], dict(s.labels)["metric"]): s.value
        for s in finding_samples(finding, Limits())
        if s.name == "predwatch_version_estimation_estimate"
    }
    assert exported[("v2", "roc_auc")] == pytest.approx(v2_auc.estimated)
    assert exported[("v1", "roc_auc")] == pytest.approx(v1_auc.estimated)
    assert not any(version == "v3" for version, _ in exported)  # insufficient data: no number, no series
    # the report's estimation section lists each version's own result
    section = re.search(r'<section id="estimation">(.*?)</section>', page, flags=re.S)
    assert section is not None
    assert "<h3>By version</h3>" in section.group(1)
    assert "<td>v3</td>" in section.group(1)
    assert "60 predictions &lt; min_rows 100" in section.group(1)
    # and each version's trend, per day, its buckets read for the version alone against the whole reference
    assert trend is not None
    assert list(trend.versions) == ["v1", "v2", "v3"]  # most traffic over the report's span first
    days = {v: [(f.window, f.status, f.metrics_as(EstimationMetrics)) for f in fs] for v, fs in trend.versions.items()}
    assert [(w, s) for w, s, _ in days["v2"]] == [(DAY1, "insufficient_data"), (DAY2, "alert")]
    assert [(w, s) for w, s, _ in days["v1"]] == [(DAY1, "ok"), (DAY2, "ok")]
    for version, whole_day in (("v1", v1), ("v2", v2), ("v3", v3)):
        last = days[version][-1][2]
        assert last is not None
        assert (last.n, last.n_labeled) == (whole_day.n, whole_day.n_labeled), version
    assert [e.estimated for e in days["v2"][-1][2].estimates] == pytest.approx([e.estimated for e in v2.estimates])
    assert "The predictions of v1 alone per 1d" in section.group(1)
    assert "The predictions of v2 alone per 1d" in section.group(1)
    assert "The predictions of v3 alone" not in section.group(1)  # too few in every bucket: no trend to draw


class QueryLog:
    """Notes every query the store calls made through it carry (and forwards the calls)."""

    def __init__(self, store: PredictionReader) -> None:
        self.store = store
        self.queries: list[Query] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.store, name)
        if not callable(target):
            return target

        def noted(*args: Any, **kwargs: Any) -> Any:
            self.queries += [a for a in (*args, *kwargs.values()) if isinstance(a, Query)]
            return target(*args, **kwargs)

        return noted


SIX_HOURS = [Window(DAY2.start + timedelta(hours=6 * k), DAY2.start + timedelta(hours=6 * (k + 1))) for k in range(4)]
UNEVEN = [
    Window(DAY2.start, DAY2.start + timedelta(hours=5)),
    Window(DAY2.start + timedelta(hours=6), DAY2.start + timedelta(hours=12)),
    Window(DAY2.start + timedelta(hours=12), DAY2.end),
]


@pytest.mark.parametrize(("windows", "read"), [(SIX_HOURS, "aggregates"), (UNEVEN, "rows")], ids=["grid", "rows"])
def test_estimation_run_windows_reads_only_the_version_in_every_window(
    windows: list[Window], read: str, tmp_path: Path
) -> None:
    _log_canary(tmp_path / "logs")
    config = EstimationConfig(window="6h", reference={"start": DAY1.start, "end": DAY1.end})
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        log = QueryLog(store)
        together = estimation.run_windows(cast(PredictionReader, log), "m", config, windows, version="v2")
        alone = [estimation.run(VersionSlice(store, w, "v2"), "m", config, w) for w in windows]
    # every read of the analysed day, its spans included, is v2's; the reference day's reads are the whole model's
    assert {q.window for q in log.queries if q.window.start >= DAY2.start} - set(windows), "no span was read"
    for query in log.queries:
        if query.window.start >= DAY2.start:
            assert query.model_versions == ("v2",), query
        else:
            assert query.window == DAY1, query
            assert query.model_versions is None, query
    # so each window holds v2's predictions alone (2000 over the day; v1's 2000 and v3's 60 left out) and is
    # judged as the by_version runner judges it, one window at a time
    seconds = (np.arange(2000) + 0.5) * 86_400 / 2000
    for window, finding, single in zip(windows, together, alone, strict=True):
        metrics = finding.metrics_as(EstimationMetrics)
        assert metrics is not None
        inside = (seconds >= (window.start - DAY2.start).total_seconds()) & (
            seconds < (window.end - DAY2.start).total_seconds()
        )
        assert metrics.n == int(inside.sum()), window
        assert metrics.n_ref == 2000, window
        assert metrics.window_read == read
        assert finding.status == "alert", window  # v2's estimate falls, in every window
        one = as_json(single)
        for x, y in zip(as_json(finding)["metrics"], one["metrics"], strict=True):
            assert x["estimated"] == pytest.approx(y["estimated"], abs=1e-12), (window, x["name"])
            assert x["reference"] == pytest.approx(y["reference"], abs=1e-12), (window, x["name"])
        assert as_json(finding)["n_labeled"] == one["n_labeled"]


def test_estimation_by_version_estimates_each_regression_version_by_its_own_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    events = []
    truth: dict[str, dict[str, float]] = {}
    # a regression model exact on average whose noise grows with x: a labelled reference day of v1, then v1 as
    # before (no labels yet) and v2 serving the large x where the model errs most (its labels logged)
    traffic = [(DAY1, "v1", 0.0, True), (DAY2, "v1", 0.0, False), (DAY2, "v2", 0.6, True)]
    for window, version, low, labelled in traffic:
        x = rng.uniform(low, 1.0, 1500)
        label = 3 * x + rng.normal(0.0, 0.1 + x)
        for i in range(1500):
            ts = window.start + timedelta(seconds=(i + 0.5) * 57)
            pid = f"{window.start:%d}-{version}-{i}"
            ml = {"model": {"name": "m", "version": version}, "features": {"x": float(x[i])}}
            events.append(event(ts, pid, {**ml, "prediction": {"label": float(3 * x[i])}}))
            if labelled:
                events.append(event(ts + timedelta(minutes=5), pid, {"label": float(label[i])}, "ml.feedback"))
        error = label - 3 * x
        truth[version] = {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error**2)))}
    write_events(tmp_path / "logs", events)
    config = EstimationConfig(window="1d", reference={"start": DAY1.start, "end": DAY1.end}, by_version=True)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        finding = run_job(store, "m", "estimation", config, DAY2)
    split = finding.by_version
    assert split is not None
    assert [(v.version, v.status) for v in split.versions] == [("v1", "ok"), ("v2", "alert")]
    assert {s.subject for s in finding.signals} == {"version=v2:metric:mae", "version=v2:metric:rmse"}
    v1, v2 = (v.metrics for v in split.versions)
    assert isinstance(v1, EstimationMetrics)
    assert isinstance(v2, EstimationMetrics)
    assert (v1.task, v2.task) == ("regression", "regression")
    assert (v1.n, v2.n) == (1500, 1500)
    for entry in v1.estimates:
        assert entry.realized is None, entry.name  # v1's labels have not arrived; v2's are not v1's
        assert entry.dropped is False, entry.name
    for entry in v2.estimates:
        assert entry.dropped is True, entry.name
        assert entry.realized == pytest.approx(truth["v2"][entry.name], rel=1e-9), entry.name
        assert entry.estimated is not None
        assert abs(entry.estimated - entry.realized) < 0.05 * entry.realized, entry.name


@pytest.mark.parametrize("kind", [k for k in STORES if k != "local"])
def test_estimation_by_version_on_elasticsearch(kind: str, tmp_path: Path) -> None:
    truth = _log_canary(tmp_path / "logs")
    config = EstimationConfig(window="1d", reference={"start": DAY1.start, "end": DAY1.end}, by_version=True)
    with store_over(kind, tmp_path / "logs", tmp_path / "state", "m") as (store, model):
        finding = run_job(store, model, "estimation", config, DAY2)
    split = _canary_split(finding)
    for v in split.versions[:2]:
        numbers = v.metrics
        assert isinstance(numbers, EstimationMetrics)
        score, y = truth[v.version]
        realized = {e.name: e.realized for e in numbers.estimates}
        assert realized["accuracy"] == pytest.approx(accuracy_score(y, score >= 0.5), rel=1e-9), v.version
