"""A stand-in for Slack on 127.0.0.1: chat.postMessage, conversations.list and .history, an incoming webhook.

``posts`` records every message Slack took (the API's and the webhook's); ``calls`` every API call.
``replies`` scripts the next responses to posts (status, headers, body); ``stall_s`` makes Slack take
a post and then answer only that much later (a crash between Slack's acceptance and the sender's
outbox update); ``down()`` and ``up()`` stop and restart the listener on the same port (an outage).
Channel ``#ml`` has the id ``CML000001``; history lists the posts with their metadata, newest first.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from tests.local_http import LocalListener, QuietHandler

CHANNEL_IDS = {"ml": "CML000001", "ml-alerts": "CMLALERTS1"}


class FakeSlack(LocalListener):
    """Records every post; answers like Slack unless a scripted reply is queued."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.attempts = 0
        self.replies: list[tuple[int, dict[str, str], str]] = []
        self.stall_s = 0.0
        super().__init__()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/webhooksecretXYZ"

    def messages(self) -> list[dict[str, Any]]:
        """The posts made through chat.postMessage."""
        return [p for p in self.posts if p["path"] == "/api/chat.postMessage"]

    def _history(self) -> list[dict[str, Any]]:
        out = []
        for i, post in enumerate(self.messages()):
            body = post["body"]
            metadata = body.get("metadata")
            if isinstance(metadata, str):
                metadata = json.loads(metadata)
            out.append({"type": "message", "ts": f"{post['ts']:.6f}", "text": body.get("text"), "metadata": metadata})
            out[-1]["client_msg_id"] = str(i)
        return list(reversed(out))

    def handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    data = json.loads(body or "{}")
                else:
                    data = {k: v[0] for k, v in parse_qs(body).items()}
                method = self.path.removeprefix("/api/")
                if self.path.startswith("/api/") and method != "chat.postMessage":
                    owner.calls.append(method)
                    self._api(method, data)
                    return
                owner.attempts += 1
                if owner.replies:
                    status, headers, text = owner.replies.pop(0)
                    self.answer(status, headers, text)
                    return
                owner.posts.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": data, "ts": time.time()}
                )
                if owner.stall_s:
                    time.sleep(owner.stall_s)
                if self.path.startswith("/api/"):
                    channel = CHANNEL_IDS.get(str(data.get("channel", "")).lstrip("#"), data.get("channel"))
                    answer = {"ok": True, "ts": f"{owner.posts[-1]['ts']:.6f}", "channel": channel}
                    self.answer(200, {"Content-Type": "application/json"}, json.dumps(answer))
                else:
                    self.answer(200, {"Content-Type": "text/plain"}, "ok")

            def _api(self, method: str, data: dict[str, Any]) -> None:
                if method == "conversations.list":
                    channels = [{"id": cid, "name": name} for name, cid in CHANNEL_IDS.items()]
                    answer: dict[str, Any] = {
                        "ok": True,
                        "channels": channels,
                        "response_metadata": {"next_cursor": ""},
                    }
                elif method == "conversations.history":
                    oldest = float(data.get("oldest") or 0)
                    found = [m for m in owner._history() if float(m["ts"]) >= oldest]
                    if data.get("include_all_metadata") not in ("1", "true", True):
                        found = [{k: v for k, v in m.items() if k != "metadata"} for m in found]
                    answer = {"ok": True, "messages": found, "has_more": False, "response_metadata": {}}
                else:
                    answer = {"ok": False, "error": "unknown_method"}
                self.answer(200, {"Content-Type": "application/json"}, json.dumps(answer))

        return Handler
