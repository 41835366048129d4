"""Alert state in ``ml-monitor-state``: JSON documents by key, written with ``if_seq_no``/``if_primary_term``."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from analyzers.store.base import ConflictError, StoreError
from analyzers.store.elastic.connection import Connection
from analyzers.store.elastic.hits import sorted_hits
from analyzers.timeutil import format_time, utcnow
from elasticsearch import ConflictError as EsConflictError
from elasticsearch import NotFoundError
from logshipper.schema import STATE_INDEX


def state_id(key: str) -> str:
    """Document id of a state key: the key itself, or a hash when longer than Elasticsearch's 512 bytes."""
    return key if len(key.encode()) <= 512 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _parse_version(version: Any) -> tuple[int, int]:
    try:
        seq_no, term = version
        return int(seq_no), int(term)
    except (TypeError, ValueError):
        raise StoreError(f"state version must be (seq_no, primary_term) from get_state, got {version!r}") from None


def _state_doc(key: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "state": orjson.dumps(doc).decode(), "updated_at": format_time(utcnow())}


def _version(answer: Any) -> tuple[int, int]:
    return (int(answer["_seq_no"]), int(answer["_primary_term"]))


def create_index(conn: Connection) -> None:
    """Create ``ml-monitor-state`` with its mapping (the state is kept as JSON text); an existing one is fine."""
    mappings = {
        "dynamic": "false",
        "properties": {
            "key": {"type": "keyword"},
            "state": {"type": "keyword", "index": False, "doc_values": False},
            "updated_at": {"type": "date"},
        },
    }
    try:
        conn.call(f"creating {STATE_INDEX}", lambda es: es.indices.create(index=STATE_INDEX, mappings=mappings))
    except StoreError as exc:
        if "resource_already_exists_exception" not in str(exc):
            raise


def get(conn: Connection, key: str) -> tuple[dict[str, Any], Any] | None:
    """The state under a key and its version, or None."""
    try:
        answer = conn.call(
            f"reading state {key!r}", lambda es: es.get(index=STATE_INDEX, id=state_id(key)), (NotFoundError,)
        )
    except NotFoundError:
        return None
    return orjson.loads(answer["_source"]["state"]), _version(answer)


def put(conn: Connection, key: str, doc: dict[str, Any], version: Any = None) -> Any:
    """Create the state (no ``version``) or replace the one at ``version``; ConflictError if someone was first."""
    body = _state_doc(key, doc)
    try:
        if version is None:
            answer = conn.call(
                f"creating state {key!r}",
                lambda es: es.create(index=STATE_INDEX, id=state_id(key), document=body, refresh="wait_for"),
                (EsConflictError,),
            )
        else:
            seq_no, term = _parse_version(version)
            answer = conn.call(
                f"writing state {key!r}",
                lambda es: es.index(
                    index=STATE_INDEX,
                    id=state_id(key),
                    document=body,
                    if_seq_no=seq_no,
                    if_primary_term=term,
                    refresh="wait_for",
                ),
                (EsConflictError,),
            )
    except EsConflictError:
        if version is None:
            raise ConflictError(f"state {key!r} already exists") from None
        raise ConflictError(f"state {key!r} changed since version {version}") from None
    return _version(answer)


def delete(conn: Connection, key: str, version: Any = None) -> None:
    """Delete the state (only at ``version`` when given); ConflictError if it changed or went meanwhile."""
    args: dict[str, Any] = {"index": STATE_INDEX, "id": state_id(key), "refresh": "wait_for"}
    if version is not None:
        args["if_seq_no"], args["if_primary_term"] = _parse_version(version)
    try:
        conn.call(f"deleting state {key!r}", lambda es: es.delete(**args), (NotFoundError, EsConflictError))
    except NotFoundError:
        if version is not None:
            raise ConflictError(f"state {key!r} changed since version {version}") from None
    except EsConflictError:
        raise ConflictError(f"state {key!r} changed since version {version}") from None


def list_all(conn: Connection, prefix: str = "") -> dict[str, tuple[dict[str, Any], Any]]:
    """Every state whose key starts with ``prefix``, with its version, in key order."""
    query: dict[str, Any] = {"prefix": {"key": {"value": prefix}}} if prefix else {"match_all": {}}
    out: dict[str, tuple[dict[str, Any], Any]] = {}
    order = [{"key": {"order": "asc", "unmapped_type": "keyword"}}]
    for hit in sorted_hits(
        conn, f"listing state in {STATE_INDEX}", STATE_INDEX, query, order, seq_no_primary_term=True
    ):
        key = hit["_source"]["key"]
        if key.startswith(prefix):
            out[key] = (orjson.loads(hit["_source"]["state"]), _version(hit))
    return out
