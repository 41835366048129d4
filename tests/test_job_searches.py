"""What the jobs ask of Elasticsearch, counted against the emulator: the drift job's summaries, categories and
histograms of all its columns come in a handful of searches per side, fairness's group metrics in one
composite aggregation, and the label join is read once per job, in bounded requests."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from analyzers.config.models import DriftConfig, ElasticsearchStoreConfig, FairnessConfig, PerformanceConfig
from analyzers.jobs import drift, fairness, performance
from analyzers.store.elastic import ElasticsearchStore
from analyzers.timeutil import Window
from tests.conftest import check_requests
from tests.es_emulator import Emulator, Request
from tests.live_es import emulated
from tests.store_contract import feedback, prediction_line

NUMERIC = [f"f{i}" for i in range(10)]
CATEGORICAL = [f"c{i}" for i in range(10)]
DAYS = ("2026-11-20", "2026-11-21")
WINDOW = Window("2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z")


def events(model: str, other: str) -> list[dict[str, Any]]:
    """Two days of 300 predictions of each model, spread over each day, with 20 features, a region, a prediction
    and a score; ``model`` has 43 labels a day, ``other`` none."""
    rng = random.Random(5)
    out = []
    for name in (model, other):
        for day in DAYS:
            for i in range(300):
                pid = f"{name}-{day}-{i:03d}"
                second = i * 288  # spread over the day, so every hour of the window holds predictions
                at = f"{day}T{second // 3600:02d}:{second % 3600 // 60:02d}:{second % 60:02d}Z"
                line = prediction_line(pid, at, name)
                features: dict[str, Any] = {f: rng.gauss(0, 1) for f in NUMERIC}
                features |= {c: rng.choice("abcd") for c in CATEGORICAL}
                line["ml"].update(
                    features=features,
                    prediction={"label": i % 2, "score": rng.random()},
                    groups={"region": rng.choice(["EU", "US"])},
                )
                out.append(line)
                if name == model and i % 7 == 0:
                    out.append(feedback(pid, f"{day}T23:{i % 60:02d}:30Z", i % 3 % 2, model=name))
    return out


@pytest.fixture(scope="module")
def es() -> Iterator[tuple[Any, str, Emulator]]:
    with emulated(events) as served:
        yield served
        check_requests(served[2].requests)


def _searches_since(emulator: Emulator, start: int) -> list[Request]:
    return [r for r in emulator.requests[start:] if r.path.endswith("_search")]


def _windows(node: Any) -> Iterator[str]:
    """The start of every bounded ``@timestamp`` range in a request body (a window's)."""
    if isinstance(node, dict):
        bounds = (node.get("range") or {}).get("@timestamp")
        if isinstance(bounds, dict) and "gte" in bounds and "lt" in bounds:
            yield str(bounds["gte"])[:10]
        for value in node.values():
            yield from _windows(value)
    elif isinstance(node, list):
        for value in node:
            yield from _windows(value)


def _side(request: Request) -> str:
    """The day whose window a search reads, or ``labels`` for the label join's scan of the feedback."""
    days = set(_windows(request.body))
    return days.pop() if len(days) == 1 else "labels"


def test_drift_over_20_columns_takes_at_most_4_searches_per_side(es: tuple[Any, str, Emulator]) -> None:
    store, _, emulator = es
    start = len(emulator.requests)
    config = DriftConfig(reference={"last": "1d"}, sample_size=100, min_rows=10)
    finding = drift.run(store, "other", config, WINDOW)  # no labels: 20 features, prediction and score
    assert finding.status in ("ok", "alert"), finding.error
    assert len(finding.to_dict()["features"]) >= 20
    per_side: dict[str, int] = {}
    for request in _searches_since(emulator, start):
        per_side[_side(request)] = per_side.get(_side(request), 0) + 1
    # volume (coverage, and the count with it), profile (columns, summaries, categories), the reference sample,
    # histograms
    assert per_side == {DAYS[0]: 4, DAYS[1]: 3}


def test_labels_add_their_join_once_per_side(es: tuple[Any, str, Emulator]) -> None:
    store, model, emulator = es
    start = len(emulator.requests)
    finding = drift.run(store, model, DriftConfig(reference={"last": "1d"}, sample_size=100, min_rows=10), WINDOW)
    assert finding.status in ("ok", "alert"), finding.error
    assert "label" in [f["name"] for f in finding.to_dict()["features"]]
    searches = _searches_since(emulator, start)
    assert sum(_side(r) == "labels" for r in searches) == 2  # one feedback scan per side, read once
    lookups = [r for r in searches if "collapse" in r.body]
    assert len(lookups) == 2
    assert all(len(r.body["query"]["bool"]["filter"][-1]["terms"]["ml.prediction_id"]) == 43 for r in lookups)


def test_fairness_group_metrics_are_one_composite_aggregation(es: tuple[Any, str, Emulator]) -> None:
    store, model, emulator = es
    start = len(emulator.requests)
    finding = fairness.run(store, model, FairnessConfig(groups=["region"], min_group_size=5, min_rows=10), WINDOW)
    assert finding.status in ("ok", "alert", "insufficient_data"), finding.error
    composites = [r for r in _searches_since(emulator, start) if "composite" in json.dumps(r.body)]
    (crosstab,) = composites
    sources = [
        next(iter(s.values()))["terms"]["field"] for s in crosstab.body["aggregations"]["t"]["composite"]["sources"]
    ]
    assert sources == ["ml.groups.region", "ml.prediction.label", "ml.sample_rate"]


def test_the_label_join_is_read_once_per_job(es: tuple[Any, str, Emulator]) -> None:
    _, model, emulator = es
    start = len(emulator.requests)
    with ElasticsearchStore.from_config(ElasticsearchStoreConfig(hosts=[emulator.url])) as store:  # nothing cached
        finding = performance.run(store, model, PerformanceConfig(min_labels=5), WINDOW)
    assert finding.status in ("ok", "alert"), finding.error
    feedback_pits = [
        r for r in emulator.requests[start:] if r.path.startswith("/ml-feedback-") and r.path.endswith("/_pit")
    ]
    assert len(feedback_pits) == 2  # the window and its reference, once each, for every call of the job
    assert max(r.size for r in emulator.requests[start:]) < 1_000_000


def test_dead_letters_are_measured_for_the_ops_report() -> None:
    from analyzers.store.elastic.deadletters import DeadLetters

    def rejects(model: str, other: str) -> list[dict[str, Any]]:
        return []

    with emulated(rejects) as (store, _, emulator):
        for i, reason in enumerate(["400", "400", "json"]):
            line = {"@timestamp": f"2026-11-21T0{i}:00:00Z", "message": "{not json", "error": {"type": reason}}
            emulator.put_doc("ml-deadletter", f"r{i}", line, "index", {})
        found = store.dead_letters(WINDOW)
        check_requests(emulator.requests)
    assert isinstance(found, DeadLetters)
    assert (found.documents, found.in_window, found.by_reason) == (3, 3, {"400": 2, "json": 1})
    assert found.first == {"400": "ml-deadletter-000001/r0", "json": "ml-deadletter-000001/r2"}
    assert found.bytes > 0


def test_the_ops_job_reports_the_size_of_the_dead_letter_pile() -> None:
    from analyzers.config.models import OpsConfig
    from analyzers.jobs import ops

    def rejects(model: str, other: str) -> list[dict[str, Any]]:
        return []

    with emulated(rejects) as (store, _, emulator):
        for i in range(2):
            line = {"@timestamp": f"2026-11-21T0{i}:00:00Z", "message": "{not json", "error": {"type": "json"}}
            emulator.put_doc("ml-deadletter", f"r{i}", line, "index", {})
        finding = ops.run(store, "fraud", OpsConfig(), WINDOW)
        check_requests(emulator.requests)
    pile = finding.metrics.dead_letters
    assert pile is not None, finding.error
    assert pile.documents == 2
    assert pile.bytes > 0
    assert finding.metrics.to_dict()["dead_letters"] == {"documents": 2, "bytes": pile.bytes}
