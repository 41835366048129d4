"""``predwatch setup``: install what Elasticsearch needs (:mod:`analyzers.store.elastic.install`: lifecycle
policies, index templates, the dead-letter alias, after checking the cluster's version) and import the Kibana
saved objects, waiting for both to be ready.  Safe to run again: everything is an upsert.

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
from typing import Any

from analyzers.config.models import Config, KibanaConfig
from analyzers.store.elastic.install import ElasticsearchAssets, InstallError, SetupStep, default_assets, install
from analyzers.store.elastic.templates import DEFAULT_RETENTION_DAYS

SAVED_OBJECTS_FILE = Path("kibana") / "saved_objects.ndjson"
READY_KIBANA_LEVELS = ("available", "degraded")

__all__ = ["ElasticsearchAssets", "SetupError", "SetupReport", "SetupStep", "import_saved_objects", "run_setup"]


class SetupError(RuntimeError):
    """Set-up cannot finish: unreachable, not ready in time, too old, credentials refused, objects rejected."""


@dataclass
class SetupReport:
    """Everything one run of setup did, in order."""

    steps: list[SetupStep] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [{"name": s.name, "status": s.status, "detail": s.detail} for s in self.steps]}


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
    """Install Elasticsearch's policies, templates and dead-letter alias, then import Kibana's saved objects.

    ``wait`` bounds how long (seconds) each service may take to become ready; ``assets`` defaults to what
    :mod:`analyzers.store.elastic.templates` generates from the schema with ``retention_days``.
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
            try:
                chosen = assets if assets is not None else default_assets(retention_days)
            except ValueError as exc:
                raise SetupError(str(exc)) from None
            try:
                report.steps.extend(install(es_config, chosen, wait=wait, retry_interval=retry_interval))
            except InstallError as exc:
                raise SetupError(str(exc)) from None
    if not es_only:
        if config.kibana is None:
            if kibana_only:
                raise SetupError("setup needs a kibana section in the configuration to import saved objects")
            report.steps.append(SetupStep("kibana", "skipped", "no kibana section in the configuration"))
        else:
            path = saved_objects if saved_objects is not None else find_saved_objects()
            report.steps.append(import_saved_objects(config.kibana, path, wait=wait, retry_interval=retry_interval))
    return report


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
