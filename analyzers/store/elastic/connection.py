"""The Elasticsearch client: built from the configuration, and calls bounded in time whose failures name the
host, never the secrets.

Every call has a budget: ``request_timeout`` seconds for the request and its retries together, and no more
than what is left of the job's budget (:func:`deadline`, set around each job by the runner), so a server that
accepts connections and never answers costs at most the job's timeout.  A request that could not reach the
server marks it down for a few seconds: the calls meanwhile fail at once instead of each waiting again.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from analyzers.config.models import ElasticsearchStoreConfig
from analyzers.store.base import StoreError, StoreUnavailable
from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    Elasticsearch,
    TransportError,
)

T = TypeVar("T")

RETRY_ON_STATUS = (429, 502, 503, 504)
BACKOFF_FIRST = 0.5  # seconds before the first retry; doubled each time, with jitter
DOWN_FOR = 5.0  # seconds a server that could not be reached is not asked again

_job = threading.local()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound every Elasticsearch call made by this thread inside the block to ``seconds`` in total."""
    previous = getattr(_job, "deadline", None)
    mine = time.monotonic() + max(float(seconds), 0.0)
    _job.deadline = mine if previous is None else min(previous, mine)
    try:
        yield
    finally:
        _job.deadline = previous


def _job_deadline() -> float | None:
    return getattr(_job, "deadline", None)


def safe_host(url: str) -> str:
    """A host URL without user name or password, for messages."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = parts.hostname or url
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def error_reason(body: Any) -> str:
    """The first root cause of an Elasticsearch error body as ``type: reason`` (else the body, cut short)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        causes = error.get("root_cause") or [error]
        first = causes[0] if isinstance(causes[0], dict) else error
        return f"{first.get('type', 'error')}: {first.get('reason', '')}".strip()
    return str(body)[:300]


def error_type(body: Any) -> str:
    """The ``error.type`` of an Elasticsearch error body, or ``""``."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("type") or "")
    return ""


def client_from_config(cfg: ElasticsearchStoreConfig, config_dir: Path | None = None) -> Elasticsearch:
    """A client with the configured auth and TLS (CA file relative to the config file); retries are the
    :class:`Connection`'s, within its time budget, so the client itself makes one attempt per call."""
    if not cfg.hosts:
        raise StoreError("store.elasticsearch.hosts is empty: give at least one URL, e.g. https://localhost:9200")
    kwargs: dict[str, Any] = {
        "hosts": list(cfg.hosts),
        "request_timeout": cfg.request_timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": cfg.verify_certs,
    }
    if cfg.api_key:
        kwargs["api_key"] = cfg.api_key
    elif cfg.username:
        kwargs["basic_auth"] = (cfg.username, cfg.password or "")
    if cfg.ca_certs:
        ca = Path(cfg.ca_certs).expanduser()
        if not ca.is_absolute() and config_dir is not None:
            ca = Path(config_dir) / ca
        if not ca.is_file():
            raise StoreError(f"store.elasticsearch.ca_certs: no such file {ca}")
        kwargs["ca_certs"] = str(ca)
    try:
        return Elasticsearch(**kwargs)
    except ValueError as exc:
        raise StoreError(f"store.elasticsearch: {exc}") from None


class Connection:
    """A client and its hosts, named without credentials, with the time budget and retries of every call."""

    def __init__(
        self,
        client: Elasticsearch,
        hosts: Sequence[str] | None = None,
        *,
        request_timeout: float = 30.0,
        max_retries: int = 5,
    ) -> None:
        self.es = client
        if hosts is None:
            hosts = [f"{n.scheme}://{n.host}:{n.port}" for n in client.transport.node_pool.all()]
        self.where = ", ".join(safe_host(h) for h in hosts) or "Elasticsearch"
        self.request_timeout = float(request_timeout)
        self.max_retries = max(int(max_retries), 0)
        self._down_until = 0.0
        self._down_reason = ""

    def call(self, what: str, fn: Callable[[Elasticsearch], T], keep: tuple[type[Exception], ...] = ()) -> T:
        """Run one client call (``fn`` gets the client with this attempt's timeout) with retries on 429/5xx and
        unreachable hosts, within the request's and the job's budget; failures other than ``keep`` become a
        StoreError naming the host, never the credentials."""
        started = time.monotonic()
        if started < self._down_until:
            raise StoreUnavailable(
                f"cannot reach Elasticsearch at {self.where} while {what} ({self._down_reason}; "
                f"not asked again for {self._down_until - started:.0f} s)"
            )
        end = started + self.request_timeout
        job_end = _job_deadline()
        if job_end is not None:
            end = min(end, job_end)
        attempt = 0
        unreachable = ""
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                if unreachable:
                    self._mark_down(unreachable)
                raise StoreUnavailable(self._timeout_message(what, started, job_end))
            try:
                return fn(self.es.options(request_timeout=remaining))
            except (ApiError, TransportError) as exc:
                retryable = isinstance(exc, TransportError) or exc.meta.status in RETRY_ON_STATUS
                if isinstance(exc, TransportError):
                    unreachable = type(exc).__name__
                if not retryable or attempt >= self.max_retries or time.monotonic() >= end:
                    if isinstance(exc, keep):
                        raise
                    raise self._error(what, exc, started, job_end) from None
            attempt += 1
            pause = min(BACKOFF_FIRST * 2 ** (attempt - 1) * random.uniform(0.5, 1.0), end - time.monotonic())
            if pause > 0:
                time.sleep(pause)

    def _error(self, what: str, exc: ApiError | TransportError, started: float, job_end: float | None) -> StoreError:
        """The StoreError a failed call ends in: the host and what went wrong, never the credentials.  A server
        out of reach, too slow, overloaded or refusing the credentials is a :class:`StoreUnavailable`."""
        if isinstance(exc, TransportError):
            self._mark_down(type(exc).__name__)
            if time.monotonic() >= started + self.request_timeout or (job_end and time.monotonic() >= job_end):
                return StoreUnavailable(self._timeout_message(what, started, job_end))
            return StoreUnavailable(f"cannot reach Elasticsearch at {self.where} while {what} ({type(exc).__name__})")
        if isinstance(exc, AuthenticationException):
            return StoreUnavailable(f"Elasticsearch at {self.where} rejected the credentials (HTTP 401) while {what}")
        if exc.meta.status in RETRY_ON_STATUS:
            return StoreUnavailable(
                f"Elasticsearch at {self.where} answered HTTP {exc.meta.status} while {what}: {error_reason(exc.body)}"
            )
        if isinstance(exc, AuthorizationException):
            return StoreError(
                f"Elasticsearch at {self.where}: the user may not do this (HTTP 403) while {what}: "
                f"{error_reason(exc.body)}"
            )
        return StoreError(
            f"Elasticsearch at {self.where} answered HTTP {exc.meta.status} while {what}: {error_reason(exc.body)}"
        )

    def _mark_down(self, reason: str) -> None:
        self._down_until = time.monotonic() + min(DOWN_FOR, self.request_timeout)
        self._down_reason = reason

    def _timeout_message(self, what: str, started: float, job_end: float | None) -> str:
        spent = time.monotonic() - started
        if job_end is not None and job_end <= started + self.request_timeout:
            return f"Elasticsearch at {self.where} did not answer before the job's time ran out while {what}"
        return f"Elasticsearch at {self.where} did not answer within {spent:.0f} s while {what} (request_timeout)"
