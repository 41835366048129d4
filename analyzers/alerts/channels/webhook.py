"""A generic webhook: one signed JSON POST per alert transition, for pipelines that act on alerts.

The body is the alert (``id``, ``kind``, ``key``, ``model``, ``job``, ``subject``, ``severity``,
``message``, ``summary``, ``window``, ``since``, ``value``, ``threshold``, ``report_url``,
``kibana_url``), or the configured ``body`` template with ``{field}`` placeholders and ``"{alert}"`` for
the whole alert (Airflow's ``conf``, GitHub's ``client_payload``).  Headers:

- ``X-Predwatch-Delivery``: the transition id, the same on every retry: a receiver that has seen it can
  ignore the repeat;
- ``X-Predwatch-Signature: t=<unix seconds>,v1=<hex>``, with ``secret`` set: HMAC-SHA256 keyed by the
  secret over ``<t>.`` followed by the exact body bytes (see :func:`verify`).

A connection error or a 5xx is retried ``delivery.retries`` times with a bounded backoff, a 429 after its
Retry-After when that fits in ``delivery.max_wait``; anything else leaves the alert in the outbox for
the next round.  Answers listed in ``accept_status`` count as delivered (Airflow answers 409 for a
``dag_run_id`` it already has).  Errors name the endpoint's host, never its path, query or headers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from analyzers.alerts.errors import ChannelRefused, ChannelUnreachable, DeliveryError
from analyzers.alerts.message import Item, Message
from analyzers.alerts.pacing import Pacing
from analyzers.config.channels import WHOLE_ALERT, WebhookConfig

SIGNATURE_HEADER = "X-Predwatch-Signature"
DELIVERY_HEADER = "X-Predwatch-Delivery"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Predwatch-Signature`` value for a body sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, *, now: float | None = None, tolerance_s: float = 300) -> bool:
    """What a receiver checks: the signature matches the body and is no older than ``tolerance_s``."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def payload(message: Message) -> dict[str, Any]:
    """The alert of a one-alert message as the webhook's JSON object."""
    item: Item = message.items[0]
    links = {link.label: link.url for link in message.links}
    return {
        "id": item.id,
        "kind": item.kind,
        "key": item.key,
        "model": message.model,
        "job": item.job,
        "subject": item.subject,
        "severity": item.severity,
        "message": item.message,
        "summary": item.summary,
        "window": {"start": item.start, "end": item.end},
        "since": item.since,
        "value": item.value,
        "threshold": item.threshold,
        "report_url": links.get("HTML report"),
        "kibana_url": links.get("Open in Kibana"),
    }


def _fields(body: dict[str, Any]) -> dict[str, str]:
    flat = {k: "" if v is None else str(v) for k, v in body.items() if not isinstance(v, dict)}
    flat.update(window_start=body["window"]["start"], window_end=body["window"]["end"])
    return flat


def render(template: Any, body: dict[str, Any], fields: dict[str, str]) -> Any:
    """A body template with ``{field}`` replaced in its strings and ``"{alert}"`` by the whole alert."""
    if isinstance(template, dict):
        return {key: render(value, body, fields) for key, value in template.items()}
    if isinstance(template, list):
        return [render(value, body, fields) for value in template]
    if template == WHOLE_ALERT:
        return body
    if isinstance(template, str):
        return template.format_map(fields)
    return template


class WebhookSender:
    """Posts one alert per request to a configured URL."""

    per_alert = True

    def __init__(self, config: WebhookConfig, *, name: str, pacing: Pacing | None = None) -> None:
        self.name = name
        self._config = config
        self._pacing = pacing or Pacing()
        self.target = f"webhook {name} ({urlsplit(config.url).netloc})"
        self._secrets = [s for s in (config.secret, *config.headers.values()) if s]
        if config.auth is not None:
            self._secrets.append(config.auth.password)

    def send(self, message: Message) -> None:
        """POST the alert; raises a ``DeliveryError`` when the endpoint does not take it."""
        body = payload(message)
        fields = _fields(body)
        data = json.dumps(render(self._config.body, body, fields) if self._config.body else body).encode()
        url = self._config.url.format_map(fields)
        attempt = 0
        while True:
            self._pacing.check(self.target)
            try:
                self._post(url, data, body["id"], body["kind"])
                return
            except _Retryable as exc:
                if attempt >= self._pacing.retries:
                    raise exc.error from None
                self._pacing.wait(
                    exc.after_s if exc.after_s is not None else self._pacing.backoff(attempt), self.target
                )
                attempt += 1

    def _post(self, url: str, data: bytes, delivery_id: str, kind: str) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "predwatch",
            DELIVERY_HEADER: delivery_id,
            "X-Predwatch-Event": kind,
        }
        if self._config.secret:
            headers[SIGNATURE_HEADER] = sign(self._config.secret, int(time.time()), data)
        if self._config.auth is not None:
            pair = f"{self._config.auth.username}:{self._config.auth.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        headers.update(self._config.headers)
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._pacing.timeout_s) as answer:
                answer.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            if status in self._config.accept_status:
                return
            refused = ChannelRefused(self._safe(f"{self.target} refused the alert: HTTP {status} {exc.reason}"))
            if status == 429:
                after = exc.headers.get("Retry-After")
                raise _Retryable(refused, float(after) if after and after.isdigit() else None) from None
            if status >= 500:
                raise _Retryable(refused, None) from None
            raise refused from None
        except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            unreachable = ChannelUnreachable(self._safe(f"{self.target} unreachable: {type(exc).__name__}: {reason}"))
            if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
                raise unreachable from None  # it may have arrived: the outbox decides, not a quick retry
            raise _Retryable(unreachable, None) from None

    def _safe(self, detail: str) -> str:
        for secret in self._secrets:
            detail = detail.replace(secret, "***")
        return detail


class _Retryable(Exception):
    """A failure worth another try inside this delivery, after ``after_s`` (or a backoff)."""

    def __init__(self, error: DeliveryError, after_s: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.after_s = after_s
