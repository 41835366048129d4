"""A stand-in HTTP endpoint on 127.0.0.1 for webhooks: records requests, answers as scripted.

``requests`` holds each request taken (method, path, headers, raw body, parsed JSON); ``replies``
scripts the next answers (status, headers, body); ``answer`` can decide from the request instead (an
Airflow that answers 409 for a dag_run_id it already has); ``down()``/``up()`` simulate an outage.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str], str]


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False


class FakeEndpoint:
    """Takes POSTs and records those it answered with a 2xx."""

    def __init__(self, answer: Callable[[Request], Reply] | None = None) -> None:
        self.requests: list[Request] = []
        self.attempts: list[Request] = []
        self.replies: list[Reply] = []
        self.answer = answer
        self._server: _Server | None = None
        self.port = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = Request("POST", self.path, {k: v for k, v in self.headers.items()}, body)
                owner.attempts.append(request)
                if owner.replies:
                    status, headers, text = owner.replies.pop(0)
                elif owner.answer is not None:
                    status, headers, text = owner.answer(request)
                else:
                    status, headers, text = 200, {"Content-Type": "application/json"}, "{}"
                if 200 <= status < 300:
                    owner.requests.append(request)
                payload = text.encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.down()
