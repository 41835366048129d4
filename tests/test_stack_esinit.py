"""deploy/es-init.sh (the compose stack's security set-up) run with bash and curl against a recorded
Elasticsearch on 127.0.0.1: users and roles upserted, Kibana's token created once, no secret printed."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "es-init.sh"
TOKEN = "AAEAAWVsYXN0aWMva2liYW5hL3ByZWR3YXRjaDpzZWNyZXQ"
PASSWORDS = {"ELASTIC_PASSWORD": "elasticPw1", "PREDWATCH_ES_PASSWORD": "predwatchPw2", "FILEBEAT_ES_PASSWORD": "fbPw3"}

pytestmark = pytest.mark.skipif(not (shutil.which("bash") and shutil.which("curl")), reason="needs bash and curl")


class FakeES:
    """Answers like Elasticsearch 8's security APIs; ``valid_tokens`` are accepted as bearer tokens."""

    def __init__(self, refuse_writes: bool = False) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.valid_tokens: set[str] = set()
        self.refuse_writes = refuse_writes

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        auth = headers.get("authorization", "")
        if path == "/_security/_authenticate":
            ok = auth.removeprefix("Bearer ") in self.valid_tokens
            return (200, {"username": "elastic/kibana"}) if ok else (401, {"status": 401})
        expected = "Basic " + base64.b64encode(f"elastic:{PASSWORD_ELASTIC}".encode()).decode()
        if auth != expected:
            return 401, {"error": {"type": "security_exception"}, "status": 401}
        if path.startswith("/_cluster/health"):
            return 200, {"status": "green"}
        if self.refuse_writes and method == "PUT":
            return 403, {"error": {"type": "security_exception", "reason": "action is unauthorized"}, "status": 403}
        if path.startswith("/_security/service/elastic/kibana/credential/token/"):
            if method == "POST":
                self.valid_tokens.add(TOKEN)
                return 200, {"created": True, "token": {"name": path.rsplit("/", 1)[1], "value": TOKEN}}
            return 404, {"found": False}
        if method == "PUT":
            return 200, {"created": True}
        return 400, {"error": "unexpected request"}


PASSWORD_ELASTIC = PASSWORDS["ELASTIC_PASSWORD"]


@pytest.fixture
def es() -> Iterator[tuple[FakeES, str]]:
    with _serve(FakeES()) as served:
        yield served


@contextmanager
def _serve(fake: FakeES) -> Iterator[tuple[FakeES, str]]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            fake.seen.append((self.command, self.path, headers, body))
            status, payload = fake.respond(self.command, self.path, headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = _handle

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run(url: str, token_file: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ["PATH"], "ES_URL": url, "TOKEN_FILE": str(token_file), **PASSWORDS, **env}
    return subprocess.run(["bash", str(SCRIPT)], env=full, capture_output=True, text=True, timeout=30, check=False)


def assert_no_secret(result: subprocess.CompletedProcess[str]) -> None:
    for secret in [*PASSWORDS.values(), TOKEN]:
        assert secret not in result.stdout + result.stderr


def test_creates_least_privilege_users_and_kibanas_token(es: tuple[FakeES, str], tmp_path: Path) -> None:
    fake, url = es
    token_file = tmp_path / "kibana"
    result = run(url, token_file)
    assert result.returncode == 0, result.stderr
    assert_no_secret(result)
    puts = {path: json.loads(body) for method, path, _, body in fake.seen if method == "PUT"}
    assert puts["/_security/user/predwatch"] == {
        "password": PASSWORDS["PREDWATCH_ES_PASSWORD"],
        "roles": ["predwatch_analyzer"],
    }
    assert puts["/_security/user/predwatch_filebeat"]["password"] == PASSWORDS["FILEBEAT_ES_PASSWORD"]
    filebeat = {tuple(i["names"]): i["privileges"] for i in puts["/_security/role/predwatch_filebeat"]["indices"]}
    assert "create_doc" in filebeat[("ml-predictions-*",)]
    assert "index" not in filebeat[("ml-predictions-*",)]
    assert "index" in filebeat[("ml-feedback-*",)]  # a later label replaces the day's earlier one
    assert "create_doc" in filebeat[("ml-deadletter*",)]
    assert not any("delete" in p for p in filebeat.values())
    analyzer = {tuple(i["names"]): i["privileges"] for i in puts["/_security/role/predwatch_analyzer"]["indices"]}
    assert analyzer[("ml-predictions-*", "ml-feedback-*")] == ["read", "view_index_metadata"]
    assert "monitor" in analyzer[("ml-deadletter*",)]  # the ops job reports the dead letters' size
    assert "manage_index_templates" in puts["/_security/role/predwatch_analyzer"]["cluster"]
    assert token_file.read_text() == TOKEN
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"


def test_running_again_keeps_a_valid_token(es: tuple[FakeES, str], tmp_path: Path) -> None:
    fake, url = es
    token_file = tmp_path / "kibana"
    assert run(url, token_file).returncode == 0
    fake.seen.clear()
    result = run(url, token_file)
    assert result.returncode == 0
    assert "still valid" in result.stdout
    assert not [p for m, p, _, _ in fake.seen if "/credential/token/" in p]
    assert token_file.read_text() == TOKEN


def test_a_token_from_the_environment_is_used_as_is(es: tuple[FakeES, str], tmp_path: Path) -> None:
    fake, url = es
    token_file = tmp_path / "kibana"
    result = run(url, token_file, KIBANA_SERVICE_TOKEN="my-own-token")
    assert result.returncode == 0
    assert token_file.read_text() == "my-own-token"
    assert not [p for m, p, _, _ in fake.seen if "/credential/token/" in p]


def test_missing_password_stops_with_a_clear_message(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "ES_URL": "http://127.0.0.1:9", "ELASTIC_PASSWORD": "x"}
    result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert "PREDWATCH_ES_PASSWORD is not set" in result.stderr


def test_a_refused_request_fails_naming_it_without_secrets(tmp_path: Path) -> None:
    with _serve(FakeES(refuse_writes=True)) as (_, url):
        result = run(url, tmp_path / "kibana")
        assert result.returncode != 0
        assert "PUT /_security/role/predwatch_filebeat answered HTTP 403" in result.stderr
        assert_no_secret(result)
        assert not (tmp_path / "kibana").exists()


def test_a_refused_password_while_waiting_stops_at_once_saying_so(es: tuple[FakeES, str], tmp_path: Path) -> None:
    _, url = es
    result = run(url, tmp_path / "kibana", ELASTIC_PASSWORD="not-the-password")
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr
    assert "ELASTIC_PASSWORD" in result.stderr
    assert "not-the-password" not in result.stdout + result.stderr
    assert not (tmp_path / "kibana").exists()
