"""The Elasticsearch client: built from the configuration, and calls whose failures name the host, not the secrets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from analyzers.config.models import ElasticsearchStoreConfig
from analyzers.store.base import StoreError
from elasticsearch import ApiError, AuthenticationException, AuthorizationException, Elasticsearch, TransportError

T = TypeVar("T")

RETRY_ON_STATUS = (429, 502, 503, 504)


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


def client_from_config(cfg: ElasticsearchStoreConfig, config_dir: Path | None = None) -> Elasticsearch:
    """A client with the configured auth, TLS (CA file relative to the config file) and retries."""
    if not cfg.hosts:
        raise StoreError("store.elasticsearch.hosts is empty: give at least one URL, e.g. https://localhost:9200")
    kwargs: dict[str, Any] = {
        "hosts": list(cfg.hosts),
        "request_timeout": cfg.request_timeout,
        "max_retries": cfg.max_retries,
        "retry_on_timeout": True,
        "retry_on_status": RETRY_ON_STATUS,
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
    """A client and its hosts, named without credentials so that every failure message can say where."""

    def __init__(self, client: Elasticsearch, hosts: Sequence[str] | None = None) -> None:
        self.es = client
        if hosts is None:
            hosts = [f"{n.scheme}://{n.host}:{n.port}" for n in client.transport.node_pool.all()]
        self.where = ", ".join(safe_host(h) for h in hosts) or "Elasticsearch"

    def call(self, what: str, fn: Callable[[], T], keep: tuple[type[Exception], ...] = ()) -> T:
        """Run one client call; turn its failures (except ``keep``) into a StoreError naming the host, never
        the credentials."""
        try:
            return fn()
        except keep:
            raise
        except AuthenticationException:
            raise StoreError(
                f"Elasticsearch at {self.where} rejected the credentials (HTTP 401) while {what}"
            ) from None
        except AuthorizationException as exc:
            raise StoreError(
                f"Elasticsearch at {self.where}: the user may not do this (HTTP 403) while {what}: "
                f"{error_reason(exc.body)}"
            ) from None
        except ApiError as exc:
            raise StoreError(
                f"Elasticsearch at {self.where} answered HTTP {exc.meta.status} while {what}: {error_reason(exc.body)}"
            ) from None
        except TransportError as exc:
            raise StoreError(
                f"cannot reach Elasticsearch at {self.where} while {what} ({type(exc).__name__})"
            ) from None
