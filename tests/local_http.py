"""A listener on 127.0.0.1 for the tests' stand-in servers: up, down (an outage) and up again on the same port."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    """Handler threads never hold up a stop (a stalled answer to a killed client)."""

    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False


ELASTIC_JSON = {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"}  # what a cluster sends


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing and answers with a status, headers and a text body (none to a HEAD)."""

    def log_message(self, *args: Any) -> None:
        pass

    def answer(self, status: int, headers: dict[str, str], text: str) -> None:
        payload = text.encode()
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout, a killed sender)


class LocalListener:
    """Serves ``handler()`` on 127.0.0.1; ``down()`` and ``up()`` keep the port across an outage."""

    def __init__(self) -> None:
        self._server: _Server | None = None
        self.port = 0
        self.up()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The handler class, bound to this listener's recorded state."""
        raise NotImplementedError

    def up(self) -> None:
        self._server = _Server(("127.0.0.1", self.port), self.handler())
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.down()
