"""``predwatch setup`` against local HTTP servers on 127.0.0.1: recorded Elasticsearch answers for the version,
policies, templates and dead-letter alias (every request checked against the specification), a Kibana that
checks the import's headers and body; live when ES_URL is set."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from analyzers.config.models import Config
from analyzers.provision import SetupError, import_saved_objects, run_setup
from analyzers.store.elastic import templates
from analyzers.store.elastic.install import default_assets
from tests.conftest import check_requests

PASSWORD = "s3cret-pa55word"
ES_HEADERS = {"X-Elastic-Product": "Elasticsearch", "Content-Type": "application/json"}


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def params(self) -> dict[str, str]:
        return {k: v[-1] for k, v in self.query.items()}

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Server:
    """An HTTP server on 127.0.0.1 answering with ``respond`` and recording every request."""

    respond: Callable[[Seen], Answer]
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def __enter__(self) -> Server:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                req = Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                outer.seen.append(req)
                status, headers, body = outer.respond(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class EsSeen:
    """A recorded Elasticsearch request as the specification check reads it."""

    def __init__(self, seen: Seen) -> None:
        self.method, self.path, self.params, self.body = seen.method, seen.path, seen.params, seen.json


def checked(server: Server) -> list[Seen]:
    """The server's requests, after checking them against the Elasticsearch specification."""
    check_requests(EsSeen(r) for r in server.seen)
    return server.seen


def es_json(status: int, data: Any) -> Answer:
    return status, ES_HEADERS, json.dumps(data).encode()


def recorded_es(
    existing: bool = False, health: list[int] | None = None, version: str = "8.17.0", squatter: bool = False
) -> Callable[[Seen], Answer]:
    """Answers shaped as Elasticsearch 8 gives them; ``health`` is the status of successive health calls;
    ``squatter``: an index already holds the dead-letter alias's name."""
    health_codes = list(health or [200])

    def respond(req: Seen) -> Answer:
        if req.path == "/_cluster/health":
            code = health_codes.pop(0) if len(health_codes) > 1 else health_codes[0]
            if code == 401:
                return es_json(401, {"error": {"type": "security_exception"}, "status": 401})
            if code != 200:
                return es_json(code, {"error": {"type": "master_not_discovered_exception"}, "status": code})
            return es_json(200, {"cluster_name": "predwatch", "status": "yellow", "timed_out": False})
        if req.path == "/" and req.method == "GET":
            info = {
                "name": "es01",
                "cluster_name": "predwatch",
                "version": {"number": version},
                "tagline": "You Know, for Search",
            }
            return es_json(200, info)
        if req.path.startswith("/_ilm/policy/") and req.method == "GET":
            name = req.path.rsplit("/", 1)[1]
            if existing:
                return es_json(200, {name: {"version": 1, "policy": {"phases": {}}}})
            return es_json(404, {"error": {"type": "resource_not_found_exception"}, "status": 404})
        if req.path.startswith("/_index_template/") and req.method == "HEAD":
            return (200 if existing else 404), ES_HEADERS, b""
        if req.path == "/_alias/ml-deadletter" and req.method == "HEAD":
            return (200 if existing else 404), ES_HEADERS, b""
        if req.path == "/ml-deadletter" and req.method == "HEAD":
            return (200 if squatter else 404), ES_HEADERS, b""
        if req.path.startswith("/_ingest/pipeline/") and req.method == "GET":
            name = req.path.rsplit("/", 1)[1]
            return es_json(200, {name: {"processors": []}}) if existing else (404, ES_HEADERS, b"{}")
        if req.path == "/ml-deadletter-*/_search" and existing:  # two dead letters stored before they had a model
            return es_json(200, {"took": 1, "timed_out": False, "hits": {"total": {"value": 2, "relation": "eq"}}})
        if req.path == "/ml-deadletter-*/_update_by_query" and existing:
            return es_json(200, {"task": "es01:4242"})
        if req.method == "PUT":
            return es_json(200, {"acknowledged": True})
        return es_json(400, {"error": {"type": "unexpected", "reason": f"{req.method} {req.path}"}, "status": 400})

    return respond


def es_config(url: str, **extra: Any) -> Config:
    return Config.model_validate(
        {"store": {"elasticsearch": {"hosts": [url], "username": "elastic", "password": PASSWORD}}, **extra}
    )


def test_installs_the_policies_then_the_templates_that_name_them_then_the_dead_letter_alias() -> None:
    with Server(recorded_es()) as es:
        report = run_setup(es_config(es.url), es_only=True, retention_days=45, retry_interval=0.01)
    puts = [r for r in checked(es) if r.method == "PUT"]
    assert [r.path for r in puts] == [
        "/_ingest/pipeline/ml-deadletter",
        "/_ilm/policy/ml-predictions",
        "/_ilm/policy/ml-deadletter",
        "/_index_template/ml-predictions",
        "/_index_template/ml-feedback",
        "/_index_template/ml-monitor",
        "/_index_template/ml-deadletter",
        "/ml-deadletter-000001",
    ]
    assets = default_assets(45)
    assert puts[0].json == assets.pipelines["ml-deadletter"]
    assert puts[1].json == assets.policies["ml-predictions"]
    assert puts[1].json["policy"]["phases"]["delete"]["min_age"] == "45d"
    assert puts[3].json == assets.templates["ml-predictions"]
    assert "data_stream" not in puts[3].json
    assert puts[6].json["template"]["settings"]["index.default_pipeline"] == "ml-deadletter"
    assert puts[7].json == {"aliases": {"ml-deadletter": {"is_write_index": True}}}
    expected_auth = "Basic " + base64.b64encode(f"elastic:{PASSWORD}".encode()).decode()
    assert all(r.headers["authorization"] == expected_auth for r in es.seen)
    assert [(s.name, s.status) for s in report.steps] == [
        ("ingest_pipeline ml-deadletter", "created"),
        ("lifecycle_policy ml-predictions", "created"),
        ("lifecycle_policy ml-deadletter", "created"),
        ("index_template ml-predictions", "created"),
        ("index_template ml-feedback", "created"),
        ("index_template ml-monitor", "created"),
        ("index_template ml-deadletter", "created"),
        ("dead_letter_alias ml-deadletter", "created"),
    ]


def test_running_again_updates_in_place_and_keeps_the_alias() -> None:
    with Server(recorded_es(existing=True)) as es:
        report = run_setup(es_config(es.url), es_only=True, retry_interval=0.01)
    assert {s.status for s in report.steps} == {"updated", "kept"}
    assert not [r for r in checked(es) if r.method == "DELETE"]
    assert "/ml-deadletter-000001" not in [r.path for r in es.seen]
    # the existing dead-letter indices get the pipeline and the field, and their stored letters are re-read
    changed = [(r.method, r.path) for r in es.seen if r.path.startswith("/ml-deadletter-*")]
    assert changed == [
        ("PUT", "/ml-deadletter-*/_settings"),
        ("PUT", "/ml-deadletter-*/_mapping"),
        ("POST", "/ml-deadletter-*/_search"),
        ("POST", "/ml-deadletter-*/_update_by_query"),
    ]
    (reread,) = [r for r in es.seen if r.path.endswith("/_update_by_query")]
    assert reread.params["pipeline"] == "ml-deadletter"
    assert reread.params["wait_for_completion"] == "false"  # a task: setup does not wait for a big pile
    (step,) = [s for s in report.steps if s.name.startswith("dead_letter_model")]
    assert step.detail.endswith("2 stored dead letters without a model re-read in task es01:4242")


def test_an_older_elasticsearch_is_refused_before_anything_is_installed() -> None:
    with Server(recorded_es(version="8.12.2")) as es, pytest.raises(SetupError) as err:
        run_setup(es_config(es.url), es_only=True, retry_interval=0.01)
    assert "8.12.2" in str(err.value)
    assert "8.13" in str(err.value)
    assert not [r for r in checked(es) if r.method == "PUT"]
    assert templates.MIN_VERSION == (8, 13, 0)


def test_an_index_holding_the_dead_letter_name_is_explained() -> None:
    with (
        Server(recorded_es(squatter=True)) as es,
        pytest.raises(SetupError, match="reindex it into ml-deadletter-000001"),
    ):
        run_setup(es_config(es.url), es_only=True, retry_interval=0.01)
    checked(es)


def test_waits_for_elasticsearch_to_be_ready() -> None:
    with Server(recorded_es(health=[503, 503, 200])) as es:
        run_setup(es_config(es.url), es_only=True, retry_interval=0.01)
    assert [r.path for r in checked(es)[:3]] == ["/_cluster/health"] * 3


def test_gives_up_when_elasticsearch_never_becomes_ready() -> None:
    with Server(recorded_es(health=[503])) as es, pytest.raises(SetupError, match="not ready after"):
        run_setup(es_config(es.url), es_only=True, wait=0.2, retry_interval=0.05)


def test_wrong_elasticsearch_credentials_give_a_clear_error_without_the_password() -> None:
    with Server(recorded_es(health=[401])) as es, pytest.raises(SetupError) as err:
        run_setup(es_config(es.url), es_only=True, retry_interval=0.01)
    assert "401" in str(err.value)
    assert es.url in str(err.value)
    assert PASSWORD not in str(err.value)
    assert len(es.seen) == 1, "credentials refused: no retry"


def test_a_retention_below_one_day_is_refused() -> None:
    with pytest.raises(SetupError, match="retention"):
        run_setup(es_config("http://127.0.0.1:9"), es_only=True, retention_days=0)


# Kibana ---------------------------------------------------------------------------------------


def saved_objects_file(tmp_path: Path) -> Path:
    path = tmp_path / "saved_objects.ndjson"
    objects = [
        {"type": "index-pattern", "id": "ml-predictions", "attributes": {"title": "ml-predictions-*"}},
        {"type": "dashboard", "id": "overview", "attributes": {"title": "ü overview"}, "references": []},
    ]
    path.write_text("\n".join(json.dumps(o, ensure_ascii=False) for o in objects) + "\n", encoding="utf-8")
    return path


def parse_multipart(req: Seen) -> tuple[dict[str, str], bytes]:
    """The single part of a multipart/form-data body: its headers and content."""
    ctype = req.headers["content-type"]
    assert ctype.startswith("multipart/form-data; boundary=")
    boundary = ctype.split("boundary=", 1)[1].encode()
    parts = req.body.split(b"--" + boundary)
    assert parts[0] == b"", "body must start with the boundary and close it"
    assert parts[-1] == b"--\r\n", "body must start with the boundary and close it"
    (part,) = parts[1:-1]
    head, _, content = part.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().strip().split("\r\n"))
    assert content.endswith(b"\r\n")
    return headers, content[:-2]


def kibana(status_codes: list[int] | None = None, import_answer: Answer | None = None) -> Callable[[Seen], Answer]:
    codes = list(status_codes or [200])

    def respond(req: Seen) -> Answer:
        if req.path == "/api/status":
            code = codes.pop(0) if len(codes) > 1 else codes[0]
            if code == 200:
                body = {"status": {"overall": {"level": "available", "summary": "All services are available"}}}
                return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
            return code, {"Content-Type": "text/plain"}, b"Kibana server is not ready yet"
        if req.path.endswith("/api/saved_objects/_import") and req.method == "POST":
            if req.headers.get("kbn-xsrf") is None:
                return 400, {}, b'{"statusCode":400,"message":"Request must contain a kbn-xsrf header."}'
            if import_answer:
                return import_answer
            _, content = parse_multipart(req)
            count = len(content.decode().splitlines())
            return (
                200,
                {"Content-Type": "application/json"},
                json.dumps({"success": True, "successCount": count}).encode(),
            )
        return 404, {}, b"{}"

    return respond


def kibana_config(url: str, **extra: Any) -> Config:
    return Config.model_validate({"kibana": {"url": url, "username": "elastic", "password": PASSWORD, **extra}})


def test_imports_saved_objects_with_overwrite_headers_and_multipart_ndjson(tmp_path: Path) -> None:
    path = saved_objects_file(tmp_path)
    with Server(kibana(status_codes=[503, 503, 200])) as kb:
        report = run_setup(kibana_config(kb.url), kibana_only=True, saved_objects=path, retry_interval=0.01)
    statuses = [r for r in kb.seen if r.path == "/api/status"]
    assert len(statuses) == 3, "waits until Kibana says it is available"
    (imp,) = [r for r in kb.seen if r.method == "POST"]
    assert imp.path == "/api/saved_objects/_import"
    assert imp.query == {"overwrite": ["true"]}
    assert imp.headers["kbn-xsrf"]
    assert imp.headers["authorization"] == "Basic " + base64.b64encode(f"elastic:{PASSWORD}".encode()).decode()
    headers, content = parse_multipart(imp)
    assert headers["Content-Disposition"] == 'form-data; name="file"; filename="saved_objects.ndjson"'
    assert headers["Content-Type"] == "application/ndjson"
    assert content == path.read_bytes()
    (step,) = report.steps
    assert step.status == "imported"
    assert "2 objects" in step.detail


def test_imports_into_a_space_with_an_api_key(tmp_path: Path) -> None:
    with Server(kibana()) as kb:
        config = Config.model_validate({"kibana": {"url": kb.url + "/", "api_key": "a2V5", "space": "ml team"}})
        run_setup(config, kibana_only=True, saved_objects=saved_objects_file(tmp_path), retry_interval=0.01)
    (imp,) = [r for r in kb.seen if r.method == "POST"]
    assert imp.path == "/s/ml%20team/api/saved_objects/_import"
    assert imp.headers["authorization"] == "ApiKey a2V5"


def test_wrong_kibana_credentials_give_a_clear_error_without_the_password(tmp_path: Path) -> None:
    with Server(kibana(status_codes=[401])) as kb, pytest.raises(SetupError) as err:
        run_setup(kibana_config(kb.url), kibana_only=True, saved_objects=saved_objects_file(tmp_path))
    assert "rejected the credentials" in str(err.value)
    assert "401" in str(err.value)
    assert PASSWORD not in str(err.value)
    assert base64.b64encode(f"elastic:{PASSWORD}".encode()).decode() not in str(err.value)


def test_objects_kibana_rejects_are_named(tmp_path: Path) -> None:
    answer = {
        "success": False,
        "successCount": 1,
        "errors": [{"id": "overview", "type": "dashboard", "error": {"type": "missing_references"}}],
    }
    answer_bytes = json.dumps(answer).encode()
    with (
        Server(kibana(import_answer=(200, {}, answer_bytes))) as kb,
        pytest.raises(SetupError, match="dashboard overview: missing_references"),
    ):
        run_setup(kibana_config(kb.url), kibana_only=True, saved_objects=saved_objects_file(tmp_path))


def test_kibana_that_never_becomes_ready(tmp_path: Path) -> None:
    with Server(kibana(status_codes=[503])) as kb, pytest.raises(SetupError, match=r"not ready after.*HTTP 503"):
        import_saved_objects(kibana_config(kb.url).kibana, saved_objects_file(tmp_path), wait=0.2, retry_interval=0.05)


def test_unreachable_kibana_is_retried_then_reported(tmp_path: Path) -> None:
    with Server(kibana()) as kb:
        url = kb.url
    with pytest.raises(SetupError, match=r"not ready after.*cannot connect"):
        import_saved_objects(kibana_config(url).kibana, saved_objects_file(tmp_path), wait=0.1, retry_interval=0.02)


def test_full_setup_does_elasticsearch_then_kibana(tmp_path: Path) -> None:
    with Server(recorded_es()) as es, Server(kibana()) as kb:
        config = es_config(es.url, kibana={"url": kb.url, "username": "elastic", "password": PASSWORD})
        report = run_setup(config, saved_objects=saved_objects_file(tmp_path), retry_interval=0.01)
    assert [s.name for s in report.steps][-1] == "kibana saved_objects"
    assert len(report.steps) == 9
    assert json.dumps(report.to_dict())


def test_local_store_and_missing_kibana_are_skipped_or_refused(tmp_path: Path) -> None:
    report = run_setup(Config.model_validate({"store": {"local": {"path": str(tmp_path)}}}))
    assert [s.status for s in report.steps] == ["skipped", "skipped"]
    with pytest.raises(SetupError, match=r"store\.elasticsearch"):
        run_setup(Config(), es_only=True)
    with pytest.raises(SetupError, match="kibana section"):
        run_setup(Config(), kibana_only=True)


def test_the_committed_saved_objects_are_found_from_the_source_tree(tmp_path: Path, monkeypatch) -> None:
    from analyzers.provision import find_saved_objects

    monkeypatch.chdir(tmp_path)
    found = find_saved_objects()
    assert found.name == "saved_objects.ndjson"
    assert found.parent.name == "kibana"


# Live -------------------------------------------------------------------------------------------


@pytest.fixture
def live_es() -> Iterator[str]:
    url = os.environ.get("ES_URL")
    if not url:
        pytest.skip("set ES_URL (and ES_USERNAME/ES_PASSWORD or ES_API_KEY) to run against a live Elasticsearch")
    yield url


@pytest.mark.live_es
def test_live_setup_installs_the_schema_templates(live_es: str) -> None:
    es = {"hosts": [live_es], "verify_certs": False}
    if os.environ.get("ES_API_KEY"):
        es["api_key"] = os.environ["ES_API_KEY"]
    elif os.environ.get("ES_USERNAME"):
        es["username"] = os.environ["ES_USERNAME"]
        es["password"] = os.environ.get("ES_PASSWORD", "")
    config = Config.model_validate({"store": {"elasticsearch": es}})
    first = run_setup(config, es_only=True, wait=60, retry_interval=2)
    again = run_setup(config, es_only=True, wait=60, retry_interval=2)
    assert {s.status for s in again.steps} == {"updated", "kept"}
    assert len(first.steps) in (8, 9)  # the dead-letter indices are brought up to date when they were there
    assert len(again.steps) == 9
