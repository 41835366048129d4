"""A stand-in HTTP endpoint on 127.0.0.1 for webhooks: records requests, answers as scripted.

``requests`` holds each request taken (method, path, headers, raw body, parsed JSON); ``replies``
scripts the next answers (status, headers, body); ``answer`` can decide from the request instead (an
Airflow that answers 409 for a dag_run_id it already has); ``down()``/``up()`` simulate an outage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.local_http import LocalListener, QuietHandler


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


class FakeEndpoint(LocalListener):
    """Takes POSTs and records those it answered with a 2xx."""

    def __init__(self, answer: Callable[[Request], Reply] | None = None) -> None:
        self.requests: list[Request] = []
        self.attempts: list[Request] = []
        self.replies: list[Reply] = []
        self.answer = answer
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(QuietHandler):
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
                self.answer(status, headers, text)

        return Handler
