"""Multivariate drift in the drift job, end to end: PredictionLogger's files read by the LocalStore.

Two features keep their marginals while their correlation flips from +0.8 to -0.8 on the last day: no
column drifts on its own, the features taken together do.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from analyzers.alerts.rules import alerts_of
from analyzers.config.models import DriftConfig
from analyzers.findings import Finding
from analyzers.jobs import drift
from analyzers.jobs.multivariate import multivariate_drift, multivariate_windows
from analyzers.store import LocalStore, Query
from analyzers.timeutil import Window, format_time, parse_time
from logshipper import PredictionLogger, configure, shutdown
from tests.finding_json import as_json
from tests.logged_stores import STORES, store_over

T0 = parse_time("2026-05-01T00:00:00Z")
REFERENCE = {"start": format_time(T0), "end": format_time(T0 + timedelta(days=2))}
CALM = Window(T0 + timedelta(days=2), T0 + timedelta(days=3))
FLIP = Window(T0 + timedelta(days=3), T0 + timedelta(days=4))


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multivariate")
    rng = np.random.default_rng(0)
    configure(service="svc", log_dir=root / "logs")
    plog = PredictionLogger(model="m", version="v1")
    try:
        for day in range(4):
            rho = -0.8 if day == 3 else 0.8
            z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], 1500)
            channel = rng.choice(["web", "app"], 1500)
            for i in range(1500):
                features = {"x": float(z[i, 0]), "y": float(z[i, 1]), "channel": str(channel[i])}
                plog.prediction(features, 0, score=0.5, timestamp=T0 + timedelta(days=day, seconds=i * 50))
    finally:
        shutdown()
    return root


def _run(root: Path, window: Window, **multivariate) -> Finding:
    config = DriftConfig(reference=REFERENCE, multivariate=multivariate or None)
    with LocalStore(root / "logs", root / "state") as store:
        return drift.run(store, "m", config, window)


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("method", ["pca", "classifier"])
def test_a_flipped_correlation_drifts_jointly_while_no_column_drifts(
    logs: Path, method: str, kind: str, tmp_path: Path
) -> None:
    config = DriftConfig(reference=REFERENCE, multivariate={"method": method})
    with store_over(kind, logs / "logs", tmp_path / "state", "m") as (store, model):
        calm, flipped = drift.run(store, model, config, CALM), drift.run(store, model, config, FLIP)
    for finding in (calm, flipped):
        assert not any(f["drifted"] for f in as_json(finding)["features"])  # univariate: nothing to see
    assert calm.status == "ok"
    assert as_json(calm)["multivariate"]["drifted"] is False
    joint = as_json(flipped)["multivariate"]
    assert joint["method"] == method
    assert joint["drifted"] is True
    assert joint["statistic"] > joint["threshold"]
    assert sorted(joint["features"]) == ["channel", "x", "y"]
    assert joint["n_current"] == 1500
    assert flipped.status == "alert"
    assert [a.key for a in alerts_of(flipped)] == [f"{model}:drift:multivariate"]


def test_without_multivariate_configured_the_finding_has_no_such_field(logs: Path) -> None:
    assert "multivariate" not in _run(logs, FLIP).to_dict()


def test_a_window_the_method_cannot_judge_says_why_with_null_numbers(logs: Path) -> None:
    config = DriftConfig(
        reference=REFERENCE,
        multivariate={"method": "pca"},
        features={"y": {"ignore": True}, "channel": {"ignore": True}},
    )
    with LocalStore(logs / "logs", logs / "state") as store:
        joint = as_json(drift.run(store, "m", config, FLIP))["multivariate"]
    assert joint["drifted"] is False
    assert joint["statistic"] is None
    assert "at least two encoded columns" in joint["reason"]


def test_the_report_draws_the_multivariate_statistic_against_its_threshold(logs: Path, tmp_path: Path) -> None:
    from analyzers.config.models import Config
    from analyzers.report import write_report

    config = Config.model_validate(
        {"models": {"m": {"drift": {"reference": REFERENCE, "multivariate": {"method": "pca"}}}}}
    )
    job = config.models["m"].drift
    assert job is not None
    with LocalStore(logs / "logs", tmp_path / "state") as store:
        store.write_findings([drift.run(store, "m", job, day) for day in (CALM, FLIP)])
        page = write_report(store, "m", tmp_path / "report.html", config=config, at=FLIP.end).read_text("utf-8")
    assert "<h3>Features together</h3>" in page
    assert "PCA reconstruction error" in page
    assert 'aria-label="multivariate drift over time"' in page


@pytest.mark.parametrize("method", ["pca", "classifier"])
def test_many_windows_read_in_one_pass_judge_as_each_window_alone(logs: Path, method: str) -> None:
    config = DriftConfig(reference=REFERENCE, multivariate={"method": method})
    reference = Window(T0, T0 + timedelta(days=2))
    with LocalStore(logs / "logs", logs / "state") as store:
        ref = (store, Query(model="m", window=reference, outcome="success"))
        columns = {c.name: c.kind for c in store.columns(ref[1])}
        described = {"window": reference.to_dict(), "n": store.count(ref[1])}
        queries = [Query(model="m", window=w, outcome="success") for w in (CALM, FLIP)]
        together = multivariate_windows(ref, store, queries, columns, config, reference=described)
        alone = [multivariate_drift(ref, (store, q), columns, config, reference=described)[0] for q in queries]
    assert [j.drifted for j in together] == [False, True]
    for a, b in zip(together, alone, strict=True):
        assert a.n_current == b.n_current == 1500  # fewer rows than the sample size: every row, both ways
        assert a.statistic == pytest.approx(b.statistic, rel=1e-9 if method == "pca" else 0.05)


def test_a_window_larger_than_the_sample_is_judged_on_a_uniform_sample_of_it(logs: Path) -> None:
    config = DriftConfig(reference=REFERENCE, multivariate={"method": "pca", "sample_size": 500})
    reference = Window(T0, T0 + timedelta(days=2))
    with LocalStore(logs / "logs", logs / "state") as store:
        ref = (store, Query(model="m", window=reference, outcome="success"))
        columns = {c.name: c.kind for c in store.columns(ref[1])}
        described = {"window": reference.to_dict(), "n": store.count(ref[1])}
        queries = [Query(model="m", window=w, outcome="success") for w in (CALM, FLIP)]
        calm, flipped = multivariate_windows(ref, store, queries, columns, config, reference=described)
    assert (calm.n_current, flipped.n_current) == (500, 500)
    assert (calm.drifted, flipped.drifted) == (False, True)
