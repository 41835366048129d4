"""The Elasticsearch store against recorded Elasticsearch 8 responses served to the real client.

A local HTTP server on 127.0.0.1 answers each request with a response recorded under
``tests/recorded_es/`` (shaped as the Elasticsearch documentation shows them) and keeps every
request, so the tests check both what the adapter sends (indices, aggregation bodies, concurrency
parameters, bulk lines) and how it reads the answers.
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

import numpy as np
import pytest

from analyzers.config.models import ElasticsearchStoreConfig
from analyzers.findings import DriftMetrics, Finding, Signal
from analyzers.store import ConflictError, Query, StoreError
from analyzers.store.elastic import ElasticsearchStore
from analyzers.store.elastic import limits as elastic
from analyzers.timeutil import Window
from elasticsearch import Elasticsearch

RECORDED = Path(__file__).parent / "recorded_es"
DAY1 = Window("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z")
WINDOW_INDEX = "ml-predictions-fraud-2026.11.20"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / f"{name}.json").read_text())


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    body: Any


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
        self.routes.insert(0, Route(method, re.compile(path + r"$"), resolved, body))

    def answer(self, method: str, path: str, raw: str) -> tuple[int, Any]:
        for route in self.routes:
            if route.method == method and route.pattern.match(path) and (route.body_match or "") in raw:
                return route.answers.pop(0) if len(route.answers) > 1 else route.answers[0]
        return 404, {"error": {"type": "no_route", "reason": f"{method} {path} not recorded"}, "status": 404}

    def sent(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and re.match(path + r"$", r.path)]


def _handler(fake: FakeElasticsearch) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
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
            fake.requests.append(Request(self.command, path, params, body))
            status, answer = fake.answer(self.command, path, raw)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        def log_message(self, *args: Any) -> None:
            return

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeElasticsearch]:
    state = FakeElasticsearch()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    state.on("POST", r"/ml-predictions-fraud-2026\.11\.20/_field_caps", "field_caps_window")
    state.on("POST", r"/ml-predictions-fraud-[0-9.,a-z*-]+/_field_caps", "field_caps_feedback", body="ml.label")
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def store(fake: FakeElasticsearch) -> Iterator[ElasticsearchStore]:
    client = Elasticsearch(fake.url, max_retries=2, retry_on_status=(429, 502, 503, 504), request_timeout=5)
    with ElasticsearchStore(client) as s:
        yield s
    client.close()


def _searches(fake: FakeElasticsearch, index: str = WINDOW_INDEX) -> list[Request]:
    return fake.sent("POST", f"/{re.escape(index)}/_search")


def _filters(request: Request) -> list[dict[str, Any]]:
    return request.body["query"]["bool"]["filter"]


def test_count_reads_only_the_window_days_with_filters(fake: FakeElasticsearch, store: ElasticsearchStore):
    two_days = r"/ml-predictions-fraud-2026\.11\.20,ml-predictions-fraud-2026\.11\.21"
    fake.on("POST", two_days + "/_field_caps", "field_caps_window")
    fake.on("POST", two_days + "/_search", "search_count")
    window = Window("2026-11-20T12:00:00Z", "2026-11-21T06:00:00Z")
    query = Query("fraud", window, model_versions=("v1",), groups={"region": ("EU",)}, outcome="success")
    assert store.count(query) == 5.0
    (sent,) = fake.sent("POST", two_days + "/_search")
    assert sent.params["ignore_unavailable"] == "true"
    assert sent.params["allow_no_indices"] == "true"
    assert sent.body["size"] == 0
    assert "w" in sent.body["aggs"]
    assert "ml.sample_rate" in sent.body["aggs"]["w"]["sum"]["script"]["source"]
    filters = _filters(sent)
    assert {"term": {"event.dataset": "ml.prediction"}} in filters
    assert {"term": {"ml.model.name": "fraud"}} in filters
    assert {"terms": {"ml.model.version": ["v1"]}} in filters
    assert {"terms": {"ml.groups.region": ["EU"]}} in filters
    assert {"term": {"event.outcome": "success"}} in filters
    time_range = next(f["range"]["@timestamp"] for f in filters if "range" in f)
    assert (time_range["gte"], time_range["lt"]) == ("2026-11-20T12:00:00.000Z", "2026-11-21T06:00:00.000Z")


def test_sample_size_sums_weights_and_their_squares_beside_the_documents(
    fake: FakeElasticsearch, store: ElasticsearchStore
):
    fake.on("POST", f"/{WINDOW_INDEX}/_search", "search_count")
    size = store.sample_size(Query("fraud", DAY1))
    assert (size.weighted, size.squares, size.rows) == (5.0, 7.0, 4.0)
    aggs = _searches(fake)[0].body["aggs"]
    assert aggs["w2"]["sum"]["script"]["source"].endswith("return w * w;")
    assert aggs["all"] == {"filter": {"match_all": {}}}


def test_long_windows_name_their_indices_by_wildcard(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", r"/ml-predictions-fraud-\*/_field_caps", "field_caps_window")
    fake.on("POST", r"/ml-predictions-fraud-\*/_search", "search_count")
    assert store.count(Query("fraud", Window("2026-01-01T00:00:00Z", "2026-11-01T00:00:00Z"))) == 5.0


def _with_feedback(fake: FakeElasticsearch) -> None:
    fake.on("POST", r"/ml-predictions-fraud-[0-9.,a-z*-]+/_pit", "pit_open")
    fake.on("POST", "/_search", "search_feedback_scan", body='"ml.label"')
    fake.on("DELETE", "/_pit", "pit_close")


def test_has_label_joins_feedback_through_a_runtime_field(fake: FakeElasticsearch, store: ElasticsearchStore):
    _with_feedback(fake)
    fake.on("POST", f"/{WINDOW_INDEX}/_search", "search_count")
    assert store.count(Query("fraud", DAY1, has_label=True)) == 5.0
    (pit,) = fake.sent("POST", r"/.+/_pit")
    assert pit.path == "/ml-predictions-fraud-*/_pit"  # feedback may land in any later day's index
    assert pit.params["keep_alive"] == "2m"
    scan = fake.sent("POST", "/_search")[0]
    assert {"term": {"event.dataset": "ml.feedback"}} in _filters(scan)
    assert {"range": {"@timestamp": {"gte": "2026-11-20T00:00:00.000Z", "format": "strict_date_optional_time"}}} in (
        _filters(scan)
    )
    assert scan.body["pit"]["keep_alive"] == "2m"
    assert scan.body["sort"][-1] == {"_shard_doc": "asc"}
    assert len(fake.sent("DELETE", "/_pit")) == 1
    (sent,) = _searches(fake)
    runtime = sent.body["runtime_mappings"]["ml.label"]
    assert runtime["type"] == "double"
    assert runtime["script"]["params"]["labels"] == {"a": 1.0, "b": 0.0}  # the latest feedback of a wins
    assert {"exists": {"field": "ml.label"}} in _filters(sent)


def test_columns_from_the_mapping_with_weighted_counts(fake: FakeElasticsearch, store: ElasticsearchStore):
    _with_feedback(fake)
    fake.on("POST", f"/{WINDOW_INDEX}/_search", "search_columns")
    columns = {c.name: (c.kind, c.count) for c in store.columns(Query("fraud", DAY1))}
    assert columns == {
        "label": ("numeric", 2.0),
        "prediction": ("numeric", 5.0),
        "score": ("numeric", 5.0),
        "features.amount": ("numeric", 5.0),
        "features.country": ("categorical", 5.0),
        "groups.region": ("categorical", 5.0),
    }
    aggs = _searches(fake)[0].body["aggs"]
    fields = [a["filter"]["exists"]["field"] for a in aggs.values()]
    assert "ml.features.note.keyword" in fields
    assert "ml.features.vip" in fields


def test_crosstab_pages_a_composite_aggregation(fake: FakeElasticsearch, store: ElasticsearchStore, monkeypatch):
    monkeypatch.setattr(elastic, "COMPOSITE_PAGE", 2)
    _with_feedback(fake)
    fake.on("POST", f"/{WINDOW_INDEX}/_search", "search_composite_page1", "search_composite_page2")
    table = store.crosstab(Query("fraud", DAY1), ["groups.region", "prediction", "label"])
    rows = {tuple(r[:3]): r[3] for r in table.itertuples(index=False)}
    assert rows == {("EU", 1, 1): 1.0, ("EU", 1, None): 2.0, ("US", 0, 0): 1.0}
    squares = {tuple(r[:3]): r[4] for r in table.itertuples(index=False)}
    assert squares == {("EU", 1, 1): 1.0, ("EU", 1, None): 4.0, ("US", 0, 0): 1.0}  # one document of weight 2
    first, second = _searches(fake)
    assert set(first.body["aggs"]["t"]["aggs"]) == {"w", "w2"}
    sources = first.body["aggs"]["t"]["composite"]["sources"]
    assert [next(iter(s.values()))["terms"]["field"] for s in sources] == [
        "ml.groups.region",
        "ml.prediction.label",
        "ml.label",
    ]
    assert all(next(iter(s.values()))["terms"]["missing_bucket"] for s in sources)
    assert "after" not in first.body["aggs"]["t"]["composite"]
    assert second.body["aggs"]["t"]["composite"]["after"] == {"k0": "EU", "k1": 1.0, "k2": None}


def test_category_counts_keep_missing_values_under_none(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", f"/{WINDOW_INDEX}/_search", "search_category_counts")
    counts = store.category_counts(Query("fraud", DAY1), "features.country")
    assert counts == {None: 1.0, "DE": 3.0, "FR": 1.0}
    assert "runtime_mappings" not in _searches(fake)[0].body


def test_category_counts_of_an_unmapped_column_are_all_missing(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", f"/{WINDOW_INDEX}/_search", "search_count")
    assert store.category_counts(Query("fraud", DAY1), "features.never_seen") == {None: 5.0}


def test_histogram_uses_a_range_aggregation_over_the_edges(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", f"/{WINDOW_INDEX}/_search", "search_range")
    hist = store.histogram(Query("fraud", DAY1), "features.amount", [0, 1.5, 2.5, 10])
    assert hist.counts.tolist() == [1.0, 1.0, 2.0]
    assert (hist.underflow, hist.overflow, hist.missing) == (0.0, 0.0, 1.0)
    ranges = _searches(fake)[0].body["aggs"]["bins"]["range"]["ranges"]
    assert ranges[0] == {"key": "under", "to": 0.0}
    assert ranges[-1] == {"key": "over", "from": 10.0}
    assert ranges[1:-1] == [
        {"key": "b0", "from": 0.0, "to": 1.5},
        {"key": "b1", "from": 1.5, "to": 2.5},
        {"key": "b2", "from": 2.5, "to": 10.0},
    ]
    with pytest.raises(ValueError, match="ascending"):
        store.histogram(Query("fraud", DAY1), "features.amount", [2, 1])


def test_numeric_summary_from_weighted_sums(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", f"/{WINDOW_INDEX}/_search", "search_summary")
    summary = store.numeric_summary(Query("fraud", DAY1), "features.amount")
    assert (summary.count, summary.missing, summary.min, summary.max) == (4.0, 1.0, 1.0, 3.0)
    assert summary.mean == pytest.approx(9 / 4)
    assert summary.std == pytest.approx(np.sqrt(23 / 4 - (9 / 4) ** 2))
    has = _searches(fake)[0].body["aggs"]["has"]
    assert has["filter"] == {"exists": {"field": "ml.features.amount"}}
    assert has["aggs"]["wxx"]["sum"]["script"]["params"] == {"f": "ml.features.amount"}


def test_quantiles_are_percentiles_mixed_over_sample_rates(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", f"/{WINDOW_INDEX}/_search", "search_percentiles_one_rate")
    q = Query("fraud", DAY1)
    assert store.quantiles(q, "features.amount", [0.0, 0.5, 1.0]) == [1.0, 2.0, 3.0]
    aggs = _searches(fake)[0].body["aggs"]
    assert aggs["rates"]["terms"]["field"] == "ml.sample_rate"
    assert {0.0, 50.0, 100.0} <= set(aggs["unsampled"]["aggs"]["p"]["percentiles"]["percents"])
    fake.on("POST", f"/{WINDOW_INDEX}/_search", "search_percentiles_two_rates")
    # values 1 and 2 at rate 1, value 3 at rate 0.5 (weight 2): the weighted median is 2, the top 3
    low, mid, top = store.quantiles(q, "features.amount", [0.0, 0.5, 1.0])
    assert (low, top) == (1.0, 3.0)
    assert 1.5 <= mid <= 2.0
    assert store.quantiles(q, "features.country", [0.5]) == [None]  # not numeric


def test_volume_is_a_date_histogram_aligned_to_the_window(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", f"/{WINDOW_INDEX}/_search", "search_date_histogram")
    vol = store.volume(Query("fraud", DAY1), timedelta(hours=6))
    assert vol["count"].tolist() == [5.0, 0.0, 0.0, 0.0]
    assert vol["failures"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert str(vol["start"].iloc[1]) == "2026-11-20 06:00:00+00:00"
    hist = _searches(fake)[0].body["aggs"]["v"]["date_histogram"]
    assert hist["fixed_interval"] == "21600000ms"
    assert hist["min_doc_count"] == 0
    assert hist["extended_bounds"] == {"min": 1795132800000, "max": 1795219199999}
    assert _searches(fake)[0].body["aggs"]["v"]["aggs"]["failures"]["filter"] == {"term": {"event.outcome": "failure"}}


def test_rows_stream_through_a_point_in_time_with_labels(
    fake: FakeElasticsearch, store: ElasticsearchStore, monkeypatch
):
    monkeypatch.setattr(elastic, "PAGE", 2)
    fake.on("POST", f"/{WINDOW_INDEX}/_pit", "pit_open")
    fake.on("POST", "/_search", "search_rows_page1", "search_rows_page2")
    fake.on("DELETE", "/_pit", "pit_close")
    fake.on("POST", r"/ml-predictions-fraud-[0-9.,a-z*-]+/_search", "search_feedback_collapse", body="collapse")
    columns = ["prediction_id", "timestamp", "features.amount", "features.country", "prediction", "label", "outcome"]
    chunks = list(store.rows(Query("fraud", DAY1), columns=columns, chunk_size=2))
    assert [len(c) for c in chunks] == [2, 1]
    frame = chunks[0]
    assert frame["prediction_id"].tolist() == ["a", "b"]
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert str(frame["timestamp"].iloc[1]).endswith("02:00:00.500000+00:00")
    assert frame["features.amount"].tolist() == [1.0, 2.0]
    assert frame["features.country"].tolist() == ["DE", "FR"]
    assert frame["label"].tolist() == [1.0, 0.0]
    assert frame["outcome"].tolist() == ["success", "success"]
    assert np.isnan(chunks[1]["features.amount"].item())
    assert np.isnan(chunks[1]["label"].item())
    first, second = fake.sent("POST", "/_search")
    assert "search_after" not in first.body
    assert second.body["search_after"] == [1795140000500, "b", 1]
    assert first.body["sort"][0] == {"@timestamp": {"order": "asc"}}
    assert first.body["sort"][-1] == {"_shard_doc": "asc"}
    assert "ml.features.amount" in first.body["_source"]
    assert first.body["size"] == 2
    assert len(fake.sent("DELETE", "/_pit")) == 1
    lookups = [r for r in fake.requests if r.body and "collapse" in r.body]
    assert lookups[0].body["collapse"] == {"field": "ml.prediction_id"}
    assert {"terms": {"ml.prediction_id": ["a", "b"]}} in _filters(lookups[0])


def test_sample_scores_randomly_with_a_seed(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", f"/{WINDOW_INDEX}/_pit", "pit_open")
    fake.on("POST", "/_search", "search_rows_page2")
    fake.on("DELETE", "/_pit", "pit_close")
    frame = store.sample(Query("fraud", DAY1), 5, seed=7, columns=["prediction_id", "features.country"])
    assert frame["prediction_id"].tolist() == ["c"]
    body = fake.sent("POST", "/_search")[0].body
    assert body["query"]["function_score"]["random_score"] == {"seed": 7, "field": "ml.prediction_id"}
    assert body["size"] == 5
    assert body["sort"][0] == {"_score": {"order": "desc"}}


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
    assert source["window"] == {
        "start": "2026-11-20T00:00:00Z",
        "end": "2026-11-21T00:00:00Z",
    }


def test_rejected_findings_are_reported_per_document(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("PUT", "/_bulk", "bulk_partial_failure")
    with pytest.raises(StoreError, match=r"rejected 1 of 2 findings: ID1: HTTP 400 document_parsing_exception"):
        store.write_findings([_finding(share_drifted=0.5), _finding(share_drifted="lots")])


def test_read_findings_sorted_by_window_end(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", r"/ml-monitor-fraud-\*,-ml-monitor-state/_search", "search_findings")
    back = store.read_findings(model="fraud", job="drift", since="2026-11-20T00:00:00Z")
    assert [(f.job, f.to_dict()["share_drifted"], f.signals[0].subject) for f in back] == [
        ("drift", 0.5, "feature:amount")
    ]
    body = fake.requests[-1].body
    assert body["sort"][0] == {"window.end": {"order": "asc", "unmapped_type": "date"}}
    assert {"term": {"job": "drift"}} in body["query"]["bool"]["filter"]
    assert {"range": {"window.end": {"gte": "2026-11-20T00:00:00Z", "format": "strict_date_optional_time"}}} in body[
        "query"
    ]["bool"]["filter"]


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

    created = fake.sent("PUT", f"/ml-monitor-state/_create/{KEY}")[0]
    assert created.params["refresh"] == "wait_for"
    assert created.body["key"] == KEY
    assert json.loads(created.body["state"]) == {"firing": True}
    updates = fake.sent("PUT", f"/ml-monitor-state/_doc/{KEY}")
    assert [(u.params["if_seq_no"], u.params["if_primary_term"]) for u in updates] == [("0", "1"), ("0", "1")]
    assert fake.sent("DELETE", f"/ml-monitor-state/_doc/{KEY}")[0].params["if_seq_no"] == "1"
    listing = fake.sent("POST", "/ml-monitor-state/_search")[0].body
    assert listing["query"] == {"prefix": {"key": "alert:fraud:"}}
    assert listing["seq_no_primary_term"] is True
    assert len(fake.sent("PUT", "/ml-monitor-state")) == 1  # the index is created once, with its mapping


def test_existing_state_index_is_fine(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("PUT", "/ml-monitor-state", (400, "error_400_index_exists"))
    fake.on("PUT", f"/ml-monitor-state/_create/{KEY}", "state_created")
    assert store.put_state(KEY, {"firing": True}) == (0, 1)


def test_429_is_retried(fake: FakeElasticsearch, store: ElasticsearchStore):
    fake.on("POST", f"/{WINDOW_INDEX}/_search", (429, "error_429"), "search_count")
    assert store.count(Query("fraud", DAY1)) == 5.0
    assert len(_searches(fake)) == 2


def test_401_names_the_host_never_the_password(fake: FakeElasticsearch):
    fake.on("POST", r"/.+/_field_caps", (401, "error_401"))
    cfg = ElasticsearchStoreConfig(hosts=[fake.url], username="elastic", password="s3cret-pw", max_retries=0)
    with ElasticsearchStore.from_config(cfg, None) as s, pytest.raises(StoreError) as err:
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
    with ElasticsearchStore.from_config(cfg, None) as s, pytest.raises(StoreError) as err:
        s.count(Query("fraud", DAY1))
    assert f"http://127.0.0.1:{port}" in str(err.value)
    assert "pw" not in str(err.value).replace("cannot", "")


def test_ca_file_is_taken_from_the_config_directory(tmp_path: Path):
    cfg = ElasticsearchStoreConfig(hosts=["https://127.0.0.1:9200"], ca_certs="certs/ca.crt", api_key="k")
    with pytest.raises(StoreError, match=re.escape(str(tmp_path / "certs" / "ca.crt"))):
        ElasticsearchStore.from_config(cfg, tmp_path)


def test_install_templates_puts_policy_and_templates(fake: FakeElasticsearch, store: ElasticsearchStore):
    from logshipper import index_template

    fake.on("PUT", "/_ilm/policy/ml-predictions", "acknowledged")
    fake.on("PUT", "/_index_template/ml-(predictions|monitor)", "acknowledged")
    store.install_templates(delete_after_days=7)
    (policy,) = fake.sent("PUT", "/_ilm/policy/ml-predictions")
    assert policy.body == index_template.lifecycle_policy(7)
    templates = {r.path: r.body for r in fake.sent("PUT", "/_index_template/.+")}
    assert templates == {
        "/_index_template/ml-predictions": index_template.index_template(),
        "/_index_template/ml-monitor": index_template.monitor_index_template(),
    }


def test_open_store_builds_the_elasticsearch_store(fake: FakeElasticsearch):
    from analyzers.config.models import Config
    from analyzers.store import open_store

    cfg = Config.model_validate({"store": {"elasticsearch": {"hosts": [fake.url]}}})
    with open_store(cfg) as s:
        assert isinstance(s, ElasticsearchStore)


def test_labelled_rows_filter_through_the_runtime_field(fake: FakeElasticsearch, store: ElasticsearchStore):
    _with_feedback(fake)
    fake.on("POST", "/_search", "search_rows_page2", body='"ml.features.amount"')
    fake.on("POST", r"/ml-predictions-fraud-[0-9.,a-z*-]+/_search", "search_feedback_collapse", body="collapse")
    chunks = list(store.rows(Query("fraud", DAY1, has_label=True), columns=["prediction_id", "features.amount"]))
    assert [c["prediction_id"].tolist() for c in chunks] == [["c"]]
    page = next(r for r in fake.sent("POST", "/_search") if "ml.features.amount" in r.body["_source"])
    assert page.body["runtime_mappings"]["ml.label"]["script"]["params"]["labels"] == {"a": 1.0, "b": 0.0}
    assert {"exists": {"field": "ml.label"}} in _filters(page)
