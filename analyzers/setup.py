"""``predwatch setup``: install the index templates and lifecycle policy in Elasticsearch and import
the Kibana saved objects, waiting for both to be ready.  Safe to run again: everything is an upsert.

Secrets (passwords, API keys) never appear in messages: errors name the host and the HTTP status.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from analyzers.config.models import Config, ElasticsearchStoreConfig, KibanaConfig

DEFAULT_RETENTION_DAYS = 30
SAVED_OBJECTS_FILE = Path("kibana") / "saved_objects.ndjson"
READY_KIBANA_LEVELS = ("available", "degraded")

StepStatus = Literal["created", "updated", "imported", "skipped"]


class SetupError(RuntimeError):
    """Set-up cannot finish: unreachable, not ready in time, credentials refused, objects rejected."""


@dataclass(frozen=True)
class SetupStep:
    """One thing setup did: what (``index_template ml-predictions``), how it went, and details."""

    name: str
    status: StepStatus
    detail: str = ""


@dataclass
class SetupReport:
    """Everything one run of setup did, in order."""

    steps: list[SetupStep] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [{"name": s.name, "status": s.status, "detail": s.detail} for s in self.steps]}


@dataclass(frozen=True)
class ElasticsearchAssets:
    """What goes into Elasticsearch: lifecycle policies and composable index templates, by name."""

    policies: Mapping[str, dict[str, Any]]
    templates: Mapping[str, dict[str, Any]]


def run_setup(
    config: Config,
    *,
    es_only: bool = False,
    kibana_only: bool = False,
    saved_objects: Path | None = None,
    assets: ElasticsearchAssets | None = None,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    wait: float = 300.0,
    retry_interval: float = 5.0,
) -> SetupReport:
    """Install Elasticsearch templates and policy, then import Kibana's saved objects.

    ``wait`` bounds how long (seconds) each service may take to become ready; ``assets`` defaults
    to what :mod:`logshipper.index_template` generates from the schema with ``retention_days``.
    Raises :class:`SetupError` with a message naming the service when a step cannot be done.
    """
    if es_only and kibana_only:
        raise SetupError("es_only and kibana_only exclude each other")
    report = SetupReport()
    if not kibana_only:
        es_config = config.store.elasticsearch
        if es_config is None:
            if es_only:
                raise SetupError("setup needs store.elasticsearch in the configuration to install templates")
            report.steps.append(SetupStep("elasticsearch", "skipped", "the store is local: no templates to install"))
        else:
            chosen = assets if assets is not None else default_assets(retention_days)
            report.steps.extend(install_elasticsearch(es_config, chosen, wait=wait, retry_interval=retry_interval))
    if not es_only:
        if config.kibana is None:
            if kibana_only:
                raise SetupError("setup needs a kibana section in the configuration to import saved objects")
            report.steps.append(SetupStep("kibana", "skipped", "no kibana section in the configuration"))
        else:
            path = saved_objects if saved_objects is not None else find_saved_objects()
            report.steps.append(import_saved_objects(config.kibana, path, wait=wait, retry_interval=retry_interval))
    return report


def default_assets(retention_days: int = DEFAULT_RETENTION_DAYS) -> ElasticsearchAssets:
    """The templates and lifecycle policy generated from the event schema."""
    from logshipper import index_template as generated

    predictions = generated.index_template()
    monitor = generated.monitor_index_template()
    policy = generated.lifecycle_policy(retention_days)
    policy_name = lifecycle_name(predictions) or "ml-predictions"
    return ElasticsearchAssets(
        policies={policy_name: policy},
        templates={"ml-predictions": predictions, "ml-monitor": monitor},
    )


def lifecycle_name(template: Mapping[str, Any]) -> str | None:
    """The lifecycle policy an index template's settings name, in nested or dotted form."""
    settings = (template.get("template") or {}).get("settings") or {}
    if "index.lifecycle.name" in settings:
        return str(settings["index.lifecycle.name"])
    index = settings.get("index") or {}
    if "lifecycle.name" in index:
        return str(index["lifecycle.name"])
    name = (index.get("lifecycle") or {}).get("name")
    return str(name) if name else None


def install_elasticsearch(
    es_config: ElasticsearchStoreConfig,
    assets: ElasticsearchAssets,
    *,
    wait: float = 300.0,
    retry_interval: float = 5.0,
) -> list[SetupStep]:
    """Put the lifecycle policies, then the index templates (which name the policies)."""
    from analyzers.store.elastic.errors import (
        ApiError,
        AuthenticationException,
        AuthorizationException,
        EsConnectionError,
        NotFoundError,
    )

    es = _es_client(es_config)
    where = ", ".join(_safe_url(h) for h in es_config.hosts)
    deadline = time.monotonic() + wait
    last = "no answer"
    while True:
        try:
            es.cluster.health(wait_for_status="yellow", timeout="10s")
            break
        except AuthenticationException:
            raise SetupError(f"Elasticsearch at {where} rejected the credentials (HTTP 401)") from None
        except AuthorizationException:
            raise SetupError(f"Elasticsearch at {where}: the user may not read cluster health (HTTP 403)") from None
        except EsConnectionError as exc:
            last = f"cannot connect ({type(exc).__name__})"
        except ApiError as exc:
            if exc.meta.status not in (408, 429, 500, 502, 503, 504):
                raise SetupError(f"Elasticsearch at {where} answered HTTP {exc.meta.status}: {exc.message}") from None
            last = f"HTTP {exc.meta.status}"
        if time.monotonic() + retry_interval > deadline:
            raise SetupError(f"Elasticsearch at {where} was not ready after {wait:.0f}s ({last})")
        time.sleep(retry_interval)

    steps: list[SetupStep] = []
    try:
        for name, body in assets.policies.items():
            try:
                es.ilm.get_lifecycle(name=name)
                existed = True
            except NotFoundError:
                existed = False
            es.ilm.put_lifecycle(name=name, body=body if "policy" in body else {"policy": body})
            steps.append(SetupStep(f"lifecycle_policy {name}", "updated" if existed else "created"))
        for name, body in assets.templates.items():
            existed = bool(es.indices.exists_index_template(name=name))
            es.indices.put_index_template(name=name, body=dict(body))
            patterns = ", ".join(body.get("index_patterns", []))
            steps.append(SetupStep(f"index_template {name}", "updated" if existed else "created", patterns))
    except AuthenticationException:
        raise SetupError(f"Elasticsearch at {where} rejected the credentials (HTTP 401)") from None
    except ApiError as exc:
        raise SetupError(
            f"Elasticsearch at {where} refused the set-up: HTTP {exc.meta.status}: {exc.message}"
        ) from None
    return steps


def _es_client(es_config: ElasticsearchStoreConfig) -> Any:
    """The store's client without its own retries: set-up waits for the cluster in its own loop."""
    from analyzers.store.elastic.connection import client_from_config

    return client_from_config(es_config.model_copy(update={"max_retries": 0}))


def find_saved_objects() -> Path:
    """``kibana/saved_objects.ndjson`` in the working directory (the image's /app), else in the source tree."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = base / SAVED_OBJECTS_FILE
        if candidate.is_file():
            return candidate
    raise SetupError(f"cannot find {SAVED_OBJECTS_FILE} in {Path.cwd()} or the predwatch source tree")


def import_saved_objects(
    kibana: KibanaConfig,
    path: Path,
    *,
    wait: float = 300.0,
    retry_interval: float = 5.0,
    opener: Callable[..., Any] = urllib.request.urlopen,
) -> SetupStep:
    """Wait for Kibana, then import the NDJSON file through the saved-objects API with overwrite."""
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise SetupError(f"cannot read Kibana saved objects {path}: {exc.strerror}") from None
    base = kibana.url.rstrip("/") + (f"/s/{urllib.parse.quote(kibana.space)}" if kibana.space else "")
    where = _safe_url(kibana.url)
    headers = _kibana_auth(kibana)
    _wait_for_kibana(kibana.url.rstrip("/"), headers, where, wait, retry_interval, opener)

    boundary = f"predwatch-{uuid.uuid4().hex}"
    body = _multipart(boundary, "file", path.name, payload)
    request = urllib.request.Request(
        f"{base}/api/saved_objects/_import?overwrite=true",
        data=body,
        method="POST",
        headers={**headers, "kbn-xsrf": "true", "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    status, answer = _call(opener, request, where)
    if status == 401:
        raise SetupError(f"Kibana at {where} rejected the credentials (HTTP 401)")
    if status == 403:
        raise SetupError(f"Kibana at {where}: the user may not import saved objects (HTTP 403)")
    if status != 200:
        raise SetupError(f"Kibana at {where} refused the import: HTTP {status}: {_short(answer)}")
    result = _json(answer, where)
    if not result.get("success", False):
        problems = "; ".join(
            f"{e.get('type')} {e.get('id')}: {(e.get('error') or {}).get('type', 'error')}"
            for e in result.get("errors") or []
        )
        raise SetupError(f"Kibana at {where} imported {result.get('successCount', 0)} objects but not: {problems}")
    return SetupStep("kibana saved_objects", "imported", f"{result.get('successCount', 0)} objects from {path.name}")


def _wait_for_kibana(
    base: str,
    headers: Mapping[str, str],
    where: str,
    wait: float,
    retry_interval: float,
    opener: Callable[..., Any],
) -> None:
    deadline = time.monotonic() + wait
    while True:
        request = urllib.request.Request(f"{base}/api/status", headers=dict(headers), method="GET")
        try:
            status, answer = _call(opener, request, where)
        except SetupError as exc:
            status, last = 0, str(exc)
        else:
            if status == 401:
                raise SetupError(f"Kibana at {where} rejected the credentials (HTTP 401)")
            level = _status_level(answer) if status == 200 else None
            if level in READY_KIBANA_LEVELS:
                return
            last = f"HTTP {status}" + (f", status {level}" if level else "")
        if time.monotonic() + retry_interval > deadline:
            raise SetupError(f"Kibana at {where} was not ready after {wait:.0f}s ({last})")
        time.sleep(retry_interval)


def _status_level(answer: bytes) -> str | None:
    try:
        overall = json.loads(answer)["status"]["overall"]
    except (ValueError, KeyError, TypeError):
        return None
    return overall.get("level") or overall.get("state")


def _call(opener: Callable[..., Any], request: urllib.request.Request, where: str) -> tuple[int, bytes]:
    try:
        with opener(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SetupError(f"cannot connect to Kibana at {where}: {reason}") from None


def _kibana_auth(kibana: KibanaConfig) -> dict[str, str]:
    if kibana.api_key:
        return {"Authorization": f"ApiKey {kibana.api_key}"}
    if kibana.username:
        token = base64.b64encode(f"{kibana.username}:{kibana.password or ''}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    return {}


def _multipart(boundary: str, field_name: str, filename: str, payload: bytes) -> bytes:
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
        "Content-Type: application/ndjson\r\n\r\n"
    ).encode()
    return head + payload + f"\r\n--{boundary}--\r\n".encode()


def _json(answer: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(answer)
    except ValueError:
        raise SetupError(f"Kibana at {where} answered something that is not JSON: {_short(answer)}") from None
    if not isinstance(data, dict):
        raise SetupError(f"Kibana at {where} answered an unexpected JSON value: {_short(answer)}")
    return data


def _short(answer: bytes, limit: int = 300) -> str:
    text = answer.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "…"


def _safe_url(url: str) -> str:
    """The URL without any user:password part."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
