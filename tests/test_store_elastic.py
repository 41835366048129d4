"""The Elasticsearch store's requests, and its reading of the answers, against recorded Elasticsearch 8 answers.

A local HTTP server on 127.0.0.1 answers each request with an answer recorded under ``tests/recorded_es/``
(``record_es_answers.py`` records them from the emulator under the templates ``predwatch setup`` installs;
error answers are written from the documentation) and keeps every request: the tests check what the store
sends (patterns, filters, strata, bodies), and every request is checked against the Elasticsearch
specification when the test ends.  The semantics are the store contract's (``test_store_contract.py``).
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from analyzers.config.models import ElasticsearchStoreConfig
from analyzers.findings import DriftMetrics, Finding, Signal
from analyzers.store import ConflictError, Query, StoreError, StoreUnavailable
from analyzers.store.elastic import ElasticsearchStore, limits
from analyzers.timeutil import Window
from tests.conftest import check_requests
from tests.local_http import ELASTIC_JSON, QuietHandler
from tests.store_contract import VALUES_DAY

RECORDED = Path(__file__).parent / "recorded_es"
DAY1 = Window("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z")
PREDICTIONS = "/ml-predictions-fraud-*"
BOTH = "/ml-predictions-fraud-*,ml-feedback-fraud-*"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / f"{name}.json").read_text())


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    line: str = ""


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    answers: list[tuple[int, Any]]
    body_match: str | None = None


@dataclass
class FakeElasticsearch:
    """Routes (method, path regex, optional body substring) to recorded answers, used in order; the last repeats."""

    routes: list[Route] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def on(self, method: str, path: str, *answers: str | tuple[int, str], body: str | None = None) -> None:
        parsed = [(200, a) if isinstance(a, str) else a for a in answers]
        resolved = [(status, recorded(name)) for status, name in parsed]
        self.routes.insert(0, Route(method, re.compile(path), resolved, body))

    def answer(self, method: str, path: str, raw: str) -> tuple[int, Any]:
        for route in self.routes:
            if route.method == method and route.pattern.fullmatch(path) and (route.body_match or "") in raw:
                return route.answers.pop(0) if len(route.answers) > 1 else route.answers[0]
        return 404, {"error": {"type": "no_route", "reason": f"{method} {path} not recorded"}, "status": 404}

    def sent(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and re.fullmatch(path, r.path)]

    def searches(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("_search")]


def _handler(fake: FakeElasticsearch) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if "ndjson" in self.headers.get("Content-Type", ""):
                body: Any = [json.loads(line) for line in raw.splitlines() if line.strip()]
            else:
                body = json.loads(raw) if raw else None
            path = unquote(parts.path)
            params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            fake.requests.append(Request(self.command, path, params, body, self.requestline))
            status, answer = fake.answer(self.command, path, raw)
            self.answer(status, ELASTIC_JSON, json.dumps(answer))

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeElasticsearch]:
    state = FakeElasticsearch()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    state.on("POST", re.escape(PREDICTIONS) + "/_field_caps", "field_caps_window")
    yield state
    server.shutdown()
    server.server_close()
    check_requests(state.requests)


@pytest.fixture
def store(fake: FakeElasticsearch) -> Iterator[ElasticsearchStore]:
    cfg = ElasticsearchStoreConfig(hosts=[fake.url], max_retries=2, request_timeout=10)
    with ElasticsearchStore.from_config(cfg) as s:
        yield s


def _filters(request: Request) -> list[dict[str, Any]]:
    return request.body["query"]["bool"]["filter"]


def _with_labels(fake: FakeElasticsearch) -> None:
    fake.on("POST", re.escape(BOTH) + "/_search", "search_window_facts")
    fake.on("POST", r"/ml-feedback-fraud-\*/_pit", "pit_open")
    fake.on("POST", "/_search", "search_feedback_scan", body='"ml.feedback"')
    fake.on("DELETE", "/_pit", "pit_close")
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", "search_lookup", body='"collapse"')


# ---- counting: one pattern per model, filters exact, weights from strata ----------------------------------
def test_count_reads_the_models_pattern_with_exact_filters(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", "search_count")
    window = Window("2026-11-20T12:00:00Z", "2026-11-21T06:00:00Z")
    query = Query("fraud", window, model_versions=("v1",), groups={"region": ("EU",)}, outcome="success")
    assert store.count(query) == 5.0  # a, b, f at rate 1 and c at rate 0.5 in the recorded day
    (sent,) = fake.searches()
    assert sent.path == "/ml-predictions-fraud-*/_search"
    assert sent.params == {"ignore_unavailable": "true", "allow_no_indices": "true", "pre_filter_shard_size": "1"}
    filters = _filters(sent)
    assert {"term": {"event.dataset": {"value": "ml.prediction"}}} in filters
    assert {"term": {"ml.model.name": {"value": "fraud"}}} in filters  # fraud-v2's indices never match it
    assert {"terms": {"ml.model.version": ["v1"]}} in filters
    assert {"terms": {"ml.groups.region": ["EU"]}} in filters
    assert {"term": {"event.outcome": {"value": "success"}}} in filters
    time_range = next(f["range"]["@timestamp"] for f in filters if "range" in f)
    assert (time_range["gte"], time_range["lt"]) == ("2026-11-20T12:00:00.000Z", "2026-11-21T06:00:00.000Z")
    rates = sent.body["aggregations"]["rates"]["terms"]
    assert rates == {"field": "ml.sample_rate", "missing": 1.0, "size": limits.MAX_SAMPLE_RATES}
    assert "script" not in json.dumps(sent.body)


def test_sample_size_sums_weights_and_their_squares_beside_the_documents(
    fake: FakeElasticsearch, store: ElasticsearchStore
):
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", "search_count")
    size = store.sample_size(Query("fraud", DAY1))
    assert (size.weighted, size.squares, size.rows) == (5.0, 7.0, 4.0)  # c at rate 0.5 weighs 2, its square 4
    (sent,) = fake.searches()
    assert "script" not in json.dumps(sent.body)  # the strata give both sums


def test_quality_counts_the_models_lines_and_the_windows_dead_letters_of_the_model_or_of_none(
    fake: FakeElasticsearch, store: ElasticsearchStore
):
    fake.on("POST", r".*/_field_caps", "field_caps_window")
    fake.on("POST", re.escape(BOTH) + "/_search", "search_lines")
    fake.on("GET", "/ml-deadletter/_stats/docs,store", "stats_deadletter")
    fake.on("POST", "/ml-deadletter/_search", "search_deadletters_of_model")
    report = store.quality(Query("fraud", DAY1))
    assert report.lines == 5 + 2  # a, b, c, f (a's repeat is stored once) and a's feedback; two dead letters
    assert {name: (r.count, r.first) for name, r in report.reasons.items()} == {
        "rejected by Elasticsearch (HTTP 400)": (1, "ml-deadletter-000001/r1"),  # r2 names the other model
        "bad JSON": (1, "ml-deadletter-000001/r0"),  # names no model: every model's
    }
    (sent,) = fake.sent("POST", re.escape(BOTH) + "/_search")
    assert sent.body["track_total_hits"] is True
    assert {"term": {"ml.model.name": {"value": "fraud"}}} in _filters(sent)
    aggregations = sent.body["aggregations"]
    per_column = {a["filter"]["term"]["_ignored"]["value"] for k, a in aggregations.items() if k != "others"}
    assert len(per_column) == len(aggregations) - 1  # one per column of the window's mapping
    assert {"ml.features.amount", "ml.features.country", "ml.groups.region"} <= per_column
    assert aggregations["others"]["filter"]["bool"]["filter"] == [{"exists": {"field": "_ignored"}}]
    (letters,) = fake.sent("POST", "/ml-deadletter/_search")
    whose = letters.body["query"]["bool"]["filter"][1]["bool"]
    assert whose["should"][0] == {"term": {"ml.model.name": {"value": "fraud"}}}
    assert whose["should"][1] == {"bool": {"must_not": [{"exists": {"field": "ml.model.name"}}]}}
    assert whose["minimum_should_match"] == 1


def test_request_line_stays_short_for_any_window(fake: FakeElasticsearch, store: ElasticsearchStore):
    model = "a-model-with-a-rather-long-name-" + "x" * 150
    fake.on("POST", r"/ml-predictions-a-model-.*/_search", "search_count")
    store.count(Query(model, Window("2025-01-01T00:00:00Z", "2026-11-01T00:00:00Z")))  # 669 days
    (sent,) = fake.requests
    assert sent.path == f"/ml-predictions-{model}-*/_search"
    assert len(sent.line.encode()) < 4096


# ---- the column profile: one search answers columns, summaries and categories ------------------------------
def test_one_profile_search_answers_columns_summaries_and_categories(
    fake: FakeElasticsearch, store: ElasticsearchStore
):
    fake.on("POST", re.escape(BOTH) + "/_search", "search_profile")
    fake.on("POST", r"/ml-feedback-fraud-\*/_pit", "pit_open")
    fake.on("POST", "/_search", "search_feedback_scan", body='"ml.feedback"')
    fake.on("DELETE", "/_pit", "pit_close")
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", "search_lookup", body='"collapse"')
    q = Query("fraud", DAY1)
    columns = {c.name: (c.kind, c.count) for c in store.columns(q)}
    assert columns == {
        "prediction": ("numeric", 5.0),
        "score": ("numeric", 5.0),
        "label": ("numeric", 2.0),
        "features.amount": ("numeric", 5.0),
        "features.country": ("categorical", 5.0),
        "groups.region": ("categorical", 5.0),
    }
    summary = store.numeric_summary(q, "features.amount")  # a 1, b 2, c 3 at rate 0.5, failure f 1
    assert (summary.count, summary.missing, summary.min, summary.max) == (5.0, 0.0, 1.0, 3.0)
    assert summary.mean == pytest.approx((1 + 2 + 3 * 2 + 1) / 5)
    assert store.category_counts(q, "features.country") == {"DE": 4.0, "FR": 1.0}
    profiles = [r for r in fake.searches() if r.path == BOTH + "/_search"]
    assert len(profiles) == 1, "columns, summaries and categories of a query share one search"
    field_caps = fake.sent("POST", re.escape(PREDICTIONS) + "/_field_caps")[0]
    assert {"term": {"ml.model.name": {"value": "fraud"}}} in field_caps.body["index_filter"]["bool"]["filter"]
    aggs = profiles[0].body["aggregations"]
    assert set(aggs) == {"query", "window", "feedback"}
    per_rate = aggs["query"]["aggregations"]["rates"]["aggregations"]
    assert {"extended_stats": {"field": "ml.features.amount"}} in per_rate.values()
    assert {"terms": {"field": "ml.features.country", "size": limits.PROFILE_TERMS}} in per_rate.values()
    assert "script" not in json.dumps(profiles[0].body)


def test_values_keep_their_types_from_the_typed_mapping(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", re.escape(PREDICTIONS) + "/_field_caps", "field_caps_values")
    fake.on("POST", re.escape(BOTH) + "/_search", "search_profile_values")
    fake.on("POST", r"/ml-(predictions|feedback)-fraud-\*/_pit", "pit_open")
    fake.on("POST", "/_search", "search_scan_tags", body='"pit"')
    fake.on("POST", "/_search", "search_feedback_scan", body='"ml.feedback"')
    fake.on("DELETE", "/_pit", "pit_close")
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", "search_lookup", body='"collapse"')
    q = Query("fraud", VALUES_DAY)
    kinds = {c.name: c.kind for c in store.columns(q)}
    assert kinds["features.flag"] == "categorical"
    assert kinds["features.n_items"] == "numeric"
    flags = store.category_counts(q, "features.flag")  # a boolean field's terms keys are 1 and 0
    assert flags == {True: 2.0, False: 1.0}
    assert {type(k) for k in flags} == {bool}
    tiers = store.category_counts(q, "groups.tier")  # a number is a double field; whole ones come back as int
    assert tiers == {1: 2.0, 2: 1.0}
    assert {type(k) for k in tiers} == {int}
    assert store.category_counts(q, "features.code") == {"1": 2.0, "01234": 1.0}
    # arrays are many values to Elasticsearch: the profile sees more values than documents, and the column is
    # counted from its values read back, as compact JSON text
    assert store.category_counts(q, "features.tags") == {'["a","b"]': 1.0, '["c","d"]': 1.0, None: 1.0}


def test_boolean_composite_keys_come_back_as_booleans(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", re.escape(PREDICTIONS) + "/_field_caps", "field_caps_values")
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", "search_composite_booleans")
    table = store.crosstab(Query("fraud", VALUES_DAY), ["features.flag", "prediction"])
    rows = {(f, p): c for f, p, c, _ in table.itertuples(index=False, name=None)}
    assert rows == {(True, True): 1.0, (False, False): 1.0, (True, False): 1.0}
    sources = fake.searches()[0].body["aggregations"]["t"]["composite"]["sources"]
    assert sources[-1] == {"rate": {"terms": {"field": "ml.sample_rate", "missing_bucket": True}}}


# ---- batched aggregates ----------------------------------------------------------------------------------
def test_histograms_of_many_columns_in_one_search(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", "search_histograms")
    q = Query("fraud", DAY1, outcome="success")
    hists = store.histograms(q, {"features.amount": [0, 1.5, 2.5, 10]})
    hist = hists["features.amount"]
    assert hist.counts.tolist() == [1.0, 1.0, 2.0]
    assert (hist.underflow, hist.overflow, hist.missing) == (0.0, 0.0, 0.0)
    (sent,) = fake.searches()
    ranges = sent.body["aggregations"]["rates"]["aggregations"]["h0"]["range"]["ranges"]
    assert ranges[0] == {"key": "under", "to": 0.0}
    assert ranges[-1] == {"key": "over", "from": 10.0}
    with pytest.raises(ValueError, match="ascending"):
        store.histogram(q, "features.amount", [2, 1])


def test_bucketed_histograms_page_a_composite_of_time_value_and_rate_with_ranges(
    fake: FakeElasticsearch, store: ElasticsearchStore, monkeypatch
):
    monkeypatch.setattr(limits, "MAX_BUCKETS", 12)  # 12 // (4 cells + 2) = 2 composite buckets a page
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", "search_bucketed_page1", "search_bucketed_page2")
    q = Query("fraud", DAY1, outcome="success")
    hist = store.bucketed_histograms(q, "features.amount", [0, 1.5, 2.5], bucket=timedelta(hours=2), by="prediction")
    assert hist.keys == [0, 1]
    assert hist.counts.shape == (12, 2, 4)
    assert hist.counts[0, 1].tolist() == [0.0, 1.0, 0.0, 0.0]  # a
    assert hist.counts[1, 0].tolist() == [0.0, 0.0, 1.0, 0.0]  # b
    assert hist.counts[1, 1].tolist() == [0.0, 0.0, 0.0, 2.0]  # c, logged at rate 0.5
    assert hist.weight_sq[1, 1].tolist() == [0.0, 0.0, 0.0, 4.0]
    assert hist.counts[2:].sum() == 0.0
    assert hist.missing.sum() == 0.0
    assert str(hist.starts[1]) == "2026-11-20 02:00:00+00:00"
    first, second = fake.searches()
    composite = first.body["aggregations"]["h"]["composite"]
    assert composite["size"] == 2
    assert composite["sources"][0]["t"]["date_histogram"] == {
        "field": "@timestamp",
        "fixed_interval": "7200000ms",
        "offset": "+0ms",
    }
    assert composite["sources"][1]["k"]["terms"] == {"field": "ml.prediction.label", "missing_bucket": True}
    assert composite["sources"][2] == {"rate": {"terms": {"field": "ml.sample_rate", "missing_bucket": True}}}
    ranges = first.body["aggregations"]["h"]["aggregations"]["bins"]["range"]
    assert ranges["field"] == "ml.features.amount"
    assert [r["key"] for r in ranges["ranges"]] == ["under", "b0", "b1", "over"]
    assert "after" not in composite
    assert second.body["aggregations"]["h"]["composite"]["after"] == {"t": 1795140000000, "k": 0.0, "rate": None}
    assert "script" not in json.dumps(first.body)


def test_quantiles_mix_the_percentiles_of_each_sample_rate(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", "search_percentiles_two_rates")
    q = Query("fraud", DAY1, outcome="success")
    low, mid, top = store.quantiles(q, "features.amount", [0.0, 0.5, 1.0])
    # values 1 and 2 at rate 1, value 3 at rate 0.5 (weight 2): the weighted median lies between 2 and 3
    assert (low, top) == (1.0, 3.0)
    assert 2.0 <= mid <= 3.0
    aggs = fake.searches()[0].body["aggregations"]["rates"]["aggregations"]
    assert {0.0, 50.0, 100.0} <= set(aggs["p"]["percentiles"]["percents"])


def test_crosstab_pages_one_composite_aggregation(fake: FakeElasticsearch, store: ElasticsearchStore, monkeypatch):
    monkeypatch.setattr(limits, "COMPOSITE_PAGE", 2)
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", "search_composite_page1", "search_composite_page2")
    table = store.crosstab(Query("fraud", DAY1), ["groups.region", "prediction"])
    rows = {tuple(r[:2]): r[2] for r in table.itertuples(index=False)}
    assert rows == {("EU", 1): 4.0, ("US", 0): 1.0}  # c (rate 0.5) weighs 2
    squares = {tuple(r[:2]): r[3] for r in table.itertuples(index=False)}
    assert squares == {("EU", 1): 6.0, ("US", 0): 1.0}  # a and f weigh 1, c weighs 2: 1 + 1 + 4
    first, second = fake.searches()
    assert "after" not in first.body["aggregations"]["t"]["composite"]
    after = recorded("search_composite_page1")["aggregations"]["t"]["after_key"]
    assert second.body["aggregations"]["t"]["composite"]["after"] == after


def test_volume_is_a_date_histogram_aligned_to_the_window(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", "search_date_histogram")
    vol = store.volume(Query("fraud", DAY1), timedelta(hours=6))
    assert vol["count"].tolist() == [5.0, 0.0, 0.0, 0.0]
    assert vol["failures"].tolist() == [1.0, 0.0, 0.0, 0.0]
    hist = fake.searches()[0].body["aggregations"]["v"]["date_histogram"]
    assert hist["fixed_interval"] == "21600000ms"
    assert hist["min_doc_count"] == 0
    assert hist["extended_bounds"] == {"min": 1795132800000, "max": 1795219199999}


# ---- the label join -------------------------------------------------------------------------------------
def test_labels_join_once_through_feedback_in_time_order_and_bounded_lookups(
    fake: FakeElasticsearch, store: ElasticsearchStore
):
    _with_labels(fake)
    q = Query("fraud", DAY1)
    assert store.count(q.with_(has_label=True)) == 2.0
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", "search_count", body='"rates"')
    assert store.count(q.with_(has_label=False)) == 3.0
    assert store.count(q.with_(has_label=True, outcome="success")) == 2.0  # the join is reused, filtered here
    (pit,) = fake.sent("POST", r"/.+/_pit")
    assert pit.path == "/ml-feedback-fraud-*/_pit"  # feedback lives in its own indices, by day of arrival
    scan = next(r for r in fake.requests if r.path == "/_search")
    assert scan.body["sort"][:2] == [{"@timestamp": {"order": "asc"}}, {"ml.prediction_id": {"order": "asc"}}]
    pid_range = next(f["range"]["ml.prediction_id"] for f in _filters(scan) if "ml.prediction_id" in f.get("range", {}))
    assert pid_range == {"gte": "a", "lte": "f"}  # the window's smallest and largest prediction id
    (lookup,) = [r for r in fake.searches() if "collapse" in r.body]
    assert {"terms": {"ml.prediction_id": ["a", "b"]}} in _filters(lookup)
    assert lookup.body["collapse"] == {"field": "ml.prediction_id"}
    assert len(fake.sent("DELETE", "/_pit")) == 1


def test_lookup_bodies_stay_under_one_megabyte_whatever_the_labels(fake: FakeElasticsearch, monkeypatch):
    from analyzers.store.elastic.labels import lookup

    monkeypatch.setattr(limits, "LOOKUP_BATCH", 10_000)
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", "search_count")
    cfg = ElasticsearchStoreConfig(hosts=[fake.url], max_retries=0)
    with ElasticsearchStore.from_config(cfg) as s:
        pids = [f"0193{i:028x}" for i in range(limits.LOOKUP_BATCH)]  # UUIDv7-sized ids
        lookup(s._conn, Query("fraud", DAY1), pids, ["prediction"])
    body = json.dumps(fake.searches()[0].body)
    assert len(body.encode()) < 1_000_000


# ---- rows and samples -----------------------------------------------------------------------------------
def test_rows_page_through_a_point_in_time(fake: FakeElasticsearch, store: ElasticsearchStore, monkeypatch):
    monkeypatch.setattr(limits, "PAGE", 2)
    fake.on("POST", re.escape(BOTH) + "/_search", "search_profile")
    fake.on("POST", re.escape(PREDICTIONS) + "/_pit", "pit_open")
    fake.on("POST", "/_search", "search_rows_page1", "search_rows_page2", "search_rows_page3")
    fake.on("DELETE", "/_pit", "pit_close")
    columns = ["prediction_id", "features.amount", "features.country"]
    chunks = list(store.rows(Query("fraud", DAY1), columns=columns, chunk_size=2))
    assert [c["prediction_id"].tolist() for c in chunks] == [["a", "b"], ["c", "f"]]
    assert chunks[0]["features.amount"].tolist() == [1.0, 2.0]
    assert chunks[0]["features.country"].tolist() == ["DE", "FR"]
    assert chunks[1]["features.amount"].tolist() == [3.0, 1.0]
    assert chunks[1]["features.country"].tolist() == ["DE", "DE"]
    first, second, _ = [r for r in fake.requests if r.path == "/_search"]
    assert first.params == {"allow_partial_search_results": "false", "pre_filter_shard_size": "1"}
    assert first.body["sort"][:2] == [
        {"@timestamp": {"order": "asc"}},
        {"ml.prediction_id": {"order": "asc", "unmapped_type": "keyword"}},
    ]
    assert "search_after" not in first.body
    assert second.body["search_after"] == recorded("search_rows_page1")["hits"]["hits"][-1]["sort"]


def test_a_point_in_time_survives_a_deleted_index(fake: FakeElasticsearch, store: ElasticsearchStore, monkeypatch):
    monkeypatch.setattr(limits, "PAGE", 2)
    fake.on("POST", re.escape(BOTH) + "/_search", "search_profile")
    fake.on("POST", re.escape(PREDICTIONS) + "/_pit", "pit_open")
    fake.on(
        "POST",
        "/_search",
        "search_rows_page1",
        (404, "error_404_search_context_missing"),
        "search_rows_page2",
        "search_rows_page3",
    )
    fake.on("DELETE", "/_pit", "pit_close")
    chunks = list(store.rows(Query("fraud", DAY1), columns=["prediction_id"], chunk_size=10))
    assert [p for c in chunks for p in c["prediction_id"]] == ["a", "b", "c", "f"]  # nothing twice, nothing lost
    assert len(fake.sent("POST", r"/.+/_pit")) == 2  # opened again on what remains
    pages = [r for r in fake.requests if r.path == "/_search"]
    assert pages[1].body["search_after"] == pages[2].body["search_after"]  # read on from the last hit


def test_a_sample_is_one_search(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", re.escape(BOTH) + "/_search", "search_profile")
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", "search_sample")
    frame = store.sample(Query("fraud", DAY1), 3, seed=7, columns=["prediction_id", "features.country"])
    assert len(frame) == 3
    (sent,) = [r for r in fake.searches() if r.path == PREDICTIONS + "/_search"]
    assert sent.body["query"]["function_score"]["functions"] == [
        {"random_score": {"seed": 7, "field": "ml.prediction_id"}}
    ]
    assert sent.body["size"] == 3


def test_dead_letters_are_counted_by_reason_with_the_first_of_each(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("GET", "/ml-deadletter/_stats/docs,store", "stats_deadletter")
    fake.on("POST", "/ml-deadletter/_search", "search_deadletters")
    found = store.dead_letters(DAY1)
    assert (found.documents, found.bytes, found.in_window) == (4, 1024, 3)  # and day 3's refused document
    assert found.by_reason == {"400": 2, "json": 1}
    assert found.first == {"400": "ml-deadletter-000001/r1", "json": "ml-deadletter-000001/r0"}
    (sent,) = fake.sent("POST", "/ml-deadletter/_search")
    assert sent.body["size"] == 0
    assert sent.body["query"]["range"]["@timestamp"]["lt"] == "2026-11-21T00:00:00.000Z"
    reasons = sent.body["aggregations"]["reasons"]
    assert reasons["terms"]["field"] == "error.type"
    assert reasons["aggregations"]["first"]["top_hits"]["sort"] == [{"@timestamp": {"order": "asc"}}]


# ---- findings and alert state ------------------------------------------------------------------------------
def _finding(**metrics: Any) -> Finding:
    payload = DriftMetrics(n_cur=100, **metrics)
    return Finding("fraud", "drift", DAY1, "alert", payload, signals=[Signal("feature:amount", "drifted", value=0.3)])


def test_findings_are_bulk_indexed_by_id(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("PUT", "/_bulk", "bulk_ok")
    finding = _finding(share_drifted=0.5)
    store.write_findings([finding])
    (sent,) = fake.sent("PUT", "/_bulk")
    assert sent.params["refresh"] == "wait_for"
    action, source = sent.body
    assert action == {"index": {"_index": "ml-monitor-fraud-2026.11.21", "_id": finding.id}}
    assert source["share_drifted"] == 0.5


def test_rejected_findings_are_reported_per_document(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("PUT", "/_bulk", "bulk_partial_failure")
    with pytest.raises(StoreError, match=r"rejected 1 of 2 findings: ID1: HTTP 400 document_parsing_exception") as err:
        store.write_findings([_finding(share_drifted=0.5), _finding(share_drifted="lots")])
    assert not isinstance(err.value, StoreUnavailable), "a rejected document is no outage"


def test_read_findings_sorted_by_window_end(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", r"/ml-monitor-fraud-\*,-ml-monitor-state/_search", "search_findings")
    back = store.read_findings(model="fraud", job="drift", since="2026-11-20T00:00:00Z")
    assert [(f.job, f.to_dict()["share_drifted"], f.signals[0].subject) for f in back] == [
        ("drift", 0.5, "feature:amount")
    ]
    body = fake.requests[-1].body
    assert body["sort"][0] == {"window.end": {"order": "asc", "unmapped_type": "date"}}
    assert {"term": {"job": {"value": "drift"}}} in body["query"]["bool"]["filter"]


KEY = "alert:fraud:drift:feature:amount"


def test_state_uses_optimistic_concurrency(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("PUT", "/ml-monitor-state", "index_created")
    fake.on("PUT", f"/ml-monitor-state/_create/{KEY}", "state_created", (409, "error_409_version_conflict"))
    fake.on("PUT", f"/ml-monitor-state/_doc/{KEY}", "state_updated", (409, "error_409_version_conflict"))
    fake.on("GET", f"/ml-monitor-state/_doc/{KEY}", "state_get")
    fake.on("GET", "/ml-monitor-state/_doc/alert:fraud:none", (404, "state_get_missing"))
    fake.on("DELETE", f"/ml-monitor-state/_doc/{KEY}", "state_deleted")
    fake.on("POST", "/ml-monitor-state/_search", "state_search")

    v1 = store.put_state(KEY, {"firing": True})
    assert v1 == (0, 1)
    with pytest.raises(ConflictError, match="already exists"):
        store.put_state(KEY, {"firing": True})
    assert store.put_state(KEY, {"firing": False}, version=v1) == (1, 1)
    with pytest.raises(ConflictError, match="changed since"):
        store.put_state(KEY, {"x": 1}, version=v1)
    doc, version = store.get_state(KEY)
    assert doc == {"firing": False}
    assert version == (1, 1)
    assert store.get_state("alert:fraud:none") is None
    assert store.list_state("alert:fraud:") == {KEY: ({"firing": False}, (1, 1))}
    store.delete_state(KEY, version=(1, 1))
    updates = fake.sent("PUT", f"/ml-monitor-state/_doc/{KEY}")
    assert [(u.params["if_seq_no"], u.params["if_primary_term"]) for u in updates] == [("0", "1"), ("0", "1")]
    listing = fake.sent("POST", "/ml-monitor-state/_search")[0].body
    assert listing["query"] == {"prefix": {"key": {"value": "alert:fraud:"}}}
    assert len(fake.sent("PUT", "/ml-monitor-state")) == 1  # the index is created once, with its mapping


def test_existing_state_index_is_fine(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("PUT", "/ml-monitor-state", (400, "error_400_index_exists"))
    fake.on("PUT", f"/ml-monitor-state/_create/{KEY}", "state_created")
    assert store.put_state(KEY, {"firing": True}) == (0, 1)


# ---- failures: retried within the budget, named without secrets --------------------------------------------
def test_429_is_retried(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", re.escape(PREDICTIONS) + "/_search", (429, "error_429"), "search_count")
    assert store.count(Query("fraud", DAY1)) == 5.0
    assert len(fake.searches()) == 2


def test_401_names_the_host_never_the_password(fake: FakeElasticsearch):
    fake.on("POST", r"/.+/_search", (401, "error_401"))
    cfg = ElasticsearchStoreConfig(hosts=[fake.url], username="elastic", password="s3cret-pw", max_retries=0)
    with ElasticsearchStore.from_config(cfg, None) as s, pytest.raises(StoreUnavailable) as err:
        s.count(Query("fraud", DAY1))
    message = str(err.value)
    assert fake.url in message
    assert "401" in message
    assert "s3cret-pw" not in message


def test_unreachable_cluster_names_the_host():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = ElasticsearchStoreConfig(hosts=[f"http://elastic:pw@127.0.0.1:{port}"], max_retries=0, request_timeout=2)
    with ElasticsearchStore.from_config(cfg, None) as s, pytest.raises(StoreUnavailable) as err:
        s.count(Query("fraud", DAY1))
    assert f"http://127.0.0.1:{port}" in str(err.value)
    assert "elastic:pw" not in str(err.value)


def test_ca_file_is_taken_from_the_config_directory(tmp_path: Path):
    cfg = ElasticsearchStoreConfig(hosts=["https://127.0.0.1:9200"], ca_certs="certs/ca.crt", api_key="k")
    with pytest.raises(StoreError, match=re.escape(str(tmp_path / "certs" / "ca.crt"))):
        ElasticsearchStore.from_config(cfg, tmp_path)


def test_open_store_builds_the_elasticsearch_store(fake: FakeElasticsearch):
    from analyzers.config.models import Config
    from analyzers.store import open_store

    cfg = Config.model_validate({"store": {"elasticsearch": {"hosts": [fake.url]}}})
    with open_store(cfg) as s:
        assert isinstance(s, ElasticsearchStore)
