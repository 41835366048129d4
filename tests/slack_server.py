"""A stand-in for Slack on 127.0.0.1: the Web API's chat.postMessage and an incoming webhook, recording posts.

``replies`` scripts the next responses (status, headers, body); ``down()`` and ``up()`` stop and restart
the listener on the same port to simulate an outage.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class FakeSlack:
    """Records every post; answers like Slack unless a scripted reply is queued."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.attempts = 0
        self.replies: list[tuple[int, dict[str, str], str]] = []
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.up()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/webhooksecretXYZ"

    def up(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                owner.attempts += 1
                if owner.replies:
                    status, headers, text = owner.replies.pop(0)
                    self._answer(status, headers, text)
                    return
                if "json" in (self.headers.get("Content-Type") or ""):
                    data = json.loads(body or "{}")
                else:
                    data = {k: v[0] for k, v in parse_qs(body).items()}
                owner.posts.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": data})
                if self.path.startswith("/api/"):
                    self._answer(200, {"Content-Type": "application/json"}, json.dumps({"ok": True, "ts": "1.0"}))
                else:
                    self._answer(200, {"Content-Type": "text/plain"}, "ok")

            def _answer(self, status: int, headers: dict[str, str], text: str) -> None:
                payload = text.encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.down()
