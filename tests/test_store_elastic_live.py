"""The store contract of ``test_store_local.py`` against a live Elasticsearch, when ``ES_URL`` is set.

``ES_URL`` is a cluster URL; credentials come from ``ES_USERNAME``/``ES_PASSWORD`` or ``ES_API_KEY``
(or the URL itself); ``ES_CA_CERTS`` names a CA file and ``ES_VERIFY_CERTS=0`` turns certificate checks
off.  The fixture events are indexed the way Filebeat ships them (daily index of the event's day, a prediction's
``_id`` is its id, so a second copy is refused) under a model name unique to the run, and removed after.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pytest
from test_store_local import feedback, prediction

from analyzers.findings import Finding, Signal
from analyzers.store import ConflictError, Query
from analyzers.store.elastic import ElasticsearchStore
from analyzers.timeutil import Window
from logshipper.schema import MONITOR_INDEX_PREFIX, PREDICTIONS_INDEX_PREFIX, predictions_index

ES_URL = os.environ.get("ES_URL")
pytestmark = [
    pytest.mark.live_es,
    pytest.mark.skipif(
        not ES_URL, reason="live Elasticsearch tests need ES_URL (e.g. https://elastic:changeme@localhost:9200)"
    ),
]

DAY1 = Window("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z")


def _events(model: str, other: str) -> list[dict]:
    return [
        prediction("a", "2026-11-20T01:00:00Z", amount=1.0, model=model),
        prediction("b", "2026-11-20T02:00:00.500Z", amount=2.0, country="FR", region="US", label=0, model=model),
        prediction("c", "2026-11-20T03:00:00Z", amount=3.0, rate=0.5, model=model),
        prediction("a", "2026-11-20T04:00:00Z", amount=99.0, model=model),  # shipped twice: refused by _id
        prediction("f", "2026-11-20T05:00:00Z", outcome="failure", model=model),
        prediction("x", "2026-11-20T06:00:00Z", model=other),
        feedback("a", "2026-11-20T09:00:00Z", 0, model=model),
        prediction("d", "2026-11-21T01:00:00Z", amount=4.0, model=model),
        feedback("b", "2026-11-21T02:00:00Z", 0, model=model),
        feedback("a", "2026-11-23T02:00:00Z", 1, model=model),  # latest feedback wins
    ]


def _action(event: dict) -> dict:
    ml = event["ml"]
    day = event["@timestamp"][:10].replace("-", ".")
    if event["event"]["dataset"] == "ml.prediction":
        doc_id = ml["prediction_id"]
    else:
        doc_id = hashlib.sha256(f"{ml['prediction_id']}|{ml['label']}".encode()).hexdigest()
    return {
        "_op_type": "create",
        "_index": predictions_index(ml["model"]["name"], day),
        "_id": doc_id,
        "_source": event,
    }


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[ElasticsearchStore, str]]:
    from elasticsearch.helpers import bulk

    from elasticsearch import Elasticsearch

    kwargs: dict = {"request_timeout": 30, "verify_certs": os.environ.get("ES_VERIFY_CERTS", "1") != "0"}
    if os.environ.get("ES_API_KEY"):
        kwargs["api_key"] = os.environ["ES_API_KEY"]
    elif os.environ.get("ES_USERNAME"):
        kwargs["basic_auth"] = (os.environ["ES_USERNAME"], os.environ.get("ES_PASSWORD", ""))
    if os.environ.get("ES_CA_CERTS"):
        kwargs["ca_certs"] = os.environ["ES_CA_CERTS"]
    client = Elasticsearch(ES_URL, **kwargs)
    run = uuid.uuid4().hex[:8]
    model, other = f"pwtest{run}", f"pwother{run}"
    store = ElasticsearchStore(client)
    store.install_templates()
    bulk(client, [_action(e) for e in _events(model, other)], raise_on_error=False, refresh="wait_for")
    try:
        yield store, model
    finally:
        for prefix in (PREDICTIONS_INDEX_PREFIX, MONITOR_INDEX_PREFIX):
            for name in (model, other):
                client.indices.delete(index=f"{prefix}{name}-*", ignore_unavailable=True, allow_no_indices=True)
        for key in store.list_state(f"alert:{model}:"):
            store.delete_state(key)
        client.close()


def test_window_reads_its_days_and_weights(live):
    store, model = live
    q = Query(model, DAY1)
    assert store.count(q) == 1 + 1 + 2 + 1
    assert store.count(q.with_(outcome="success")) == 4
    assert store.count(Query(model, Window("2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z"))) == 1


def test_feedback_from_later_days_is_joined_latest_wins(live):
    store, model = live
    rows = next(store.rows(Query(model, DAY1), columns=["prediction_id", "label", "features.amount"]))
    labels = dict(zip(rows["prediction_id"], rows["label"], strict=False))
    assert labels["a"] == 1 and labels["b"] == 0 and np.isnan(labels["c"])
    assert rows.loc[rows["prediction_id"] == "a", "features.amount"].item() == 1.0
    assert store.count(Query(model, DAY1, has_label=True)) == 2
    assert store.count(Query(model, DAY1, has_label=False)) == 3


def test_columns_kinds(live):
    store, model = live
    kinds = {c.name: c.kind for c in store.columns(Query(model, DAY1))}
    assert kinds["features.amount"] == "numeric"
    assert kinds["features.country"] == "categorical"
    assert kinds["groups.region"] == "categorical"
    assert kinds["score"] == "numeric" and "label" in kinds


def test_aggregates(live):
    store, model = live
    q = Query(model, DAY1, outcome="success")
    assert store.category_counts(q, "features.country") == {"DE": 3.0, "FR": 1.0}
    hist = store.histogram(q, "features.amount", [0, 1.5, 2.5, 10])
    assert hist.counts.tolist() == [1.0, 1.0, 2.0] and hist.missing == 0
    hist = store.histogram(q, "features.amount", [1.5, 2.5])
    assert (hist.underflow, hist.counts.tolist(), hist.overflow) == (1.0, [1.0], 2.0)
    summary = store.numeric_summary(q, "features.amount")
    assert summary.count == 4 and summary.mean == pytest.approx((1 + 2 + 3 * 2) / 4)
    low, mid, top = store.quantiles(q, "features.amount", [0.0, 0.5, 1.0])  # TDigest: approximate
    assert (low, top) == (1.0, 3.0) and 1.0 <= mid <= 3.0
    tab = store.crosstab(q, ["groups.region", "prediction", "label"])
    eu = tab[(tab["groups.region"] == "EU") & (tab["label"] == 1)]
    assert eu["count"].sum() == 1.0
    assert store.count(Query(model, DAY1, groups={"region": ("US",)})) == 1


def test_volume_buckets_include_empty_ones(live):
    store, model = live
    vol = store.volume(Query(model, DAY1), timedelta(hours=6))
    assert vol["count"].tolist() == [5.0, 0.0, 0.0, 0.0]
    assert vol["failures"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert str(vol["start"].iloc[1]) == "2026-11-20 06:00:00+00:00"


def test_sample_is_bounded_and_reproducible(live):
    store, model = live
    q = Query(model, DAY1)
    one = store.sample(q, 2, seed=3)
    assert len(one) == 2
    assert one["prediction_id"].tolist() == store.sample(q, 2, seed=3)["prediction_id"].tolist()
    assert len(store.sample(q, 100)) == 4


def test_rows_are_chunked_and_ordered(live):
    store, model = live
    chunks = list(store.rows(Query(model, DAY1), chunk_size=2))
    assert [len(c) for c in chunks] == [2, 2]
    assert [p for c in chunks for p in c["prediction_id"]] == ["a", "b", "c", "f"]
    assert str(chunks[0]["timestamp"].dt.tz) == "UTC"


def test_findings_round_trip_and_idempotent(live):
    store, model = live
    f = Finding(model, "drift", DAY1, "alert", {"share_drifted": 0.5}, signals=[Signal("feature:amount", "drifted")])
    store.write_findings([f])
    store.write_findings([f])
    back = store.read_findings(model=model)
    assert len(back) == 1 and back[0].signals[0].subject == "feature:amount"
    assert store.read_findings(model=model, job="ops") == []


def test_state_optimistic_concurrency(live):
    store, model = live
    key = f"alert:{model}:drift:feature:amount"
    v1 = store.put_state(key, {"firing": True})
    with pytest.raises(ConflictError):
        store.put_state(key, {"firing": True})
    v2 = store.put_state(key, {"firing": False}, version=v1)
    with pytest.raises(ConflictError):
        store.put_state(key, {"x": 1}, version=v1)
    doc, version = store.get_state(key)
    assert doc == {"firing": False} and version == v2
    assert list(store.list_state(f"alert:{model}:")) == [key]
    store.delete_state(key, version=v2)
    assert store.get_state(key) is None
