"""What the dead-letter alias holds: lines Filebeat could not decode and documents the cluster rejected.

What a data-quality report needs of it: the alias's size, so a growing pile is seen, and the window's dead
letters by reason (Filebeat's ``error.type``: the HTTP status of a rejection, ``json`` for a line that was not
JSON), each with the first one seen (``index/_id``).  A dead letter keeps its line only as text; the ingest
pipeline of the dead-letter indices (:mod:`pipelines`) reads the model that text names into ``ml.model.name``.
Asked for a model, the counts are that model's dead letters and those whose text names no model (which cannot
be attributed); asked for none, every dead letter of the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analyzers.findings.ops import DeadLetterPile
from analyzers.store.elastic.connection import Connection
from analyzers.store.elastic.queries import term, time_range
from analyzers.timeutil import Window
from elasticsearch import NotFoundError
from logshipper.schema import DEAD_LETTER_INDEX, ERROR_TYPE, MODEL_NAME, TIMESTAMP


@dataclass(frozen=True)
class DeadLetters:
    """Documents and bytes in every dead-letter index, and the window's dead letters counted by reason."""

    documents: int
    bytes: int
    in_window: int
    by_reason: dict[str, int] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)  # reason -> "index/_id" of its earliest dead letter


def pile(conn: Connection) -> DeadLetterPile:
    """Documents and bytes in every dead-letter index (none before setup has made the alias)."""
    return _measured(conn) or DeadLetterPile(0, 0)


def _measured(conn: Connection) -> DeadLetterPile | None:
    """``_stats`` on the alias; ``None`` when setup has not created it yet (nothing was rejected)."""
    try:
        stats = conn.call(
            f"measuring {DEAD_LETTER_INDEX}",
            lambda es: es.indices.stats(index=DEAD_LETTER_INDEX, metric="docs,store"),
            keep=(NotFoundError,),
        )
    except NotFoundError:
        return None
    primaries = (stats.get("_all") or {}).get("primaries") or {}
    documents = int((primaries.get("docs") or {}).get("count") or 0)
    return DeadLetterPile(documents, int((primaries.get("store") or {}).get("size_in_bytes") or 0))


def of_model(model: str) -> dict[str, Any]:
    """Dead letters that name ``model``, or that name no model (a line whose model cannot be read)."""
    no_model = {"bool": {"must_not": [{"exists": {"field": MODEL_NAME}}]}}
    return {"bool": {"should": [term(MODEL_NAME, model), no_model], "minimum_should_match": 1}}


def report(conn: Connection, window: Window, model: str | None = None) -> DeadLetters:
    """The dead-letter alias's size (``_stats``) and the window's dead letters by ``error.type`` (``model``'s and
    those of no model, or all of them), each reason with its earliest dead letter (one search)."""
    size = _measured(conn)
    if size is None:
        return DeadLetters(0, 0, 0, {})
    answer = conn.call(
        f"counting the dead letters in {DEAD_LETTER_INDEX}",
        lambda es: es.search(
            index=DEAD_LETTER_INDEX,
            ignore_unavailable=True,
            allow_no_indices=True,
            query=time_range(window) if model is None else {"bool": {"filter": [time_range(window), of_model(model)]}},
            aggregations={
                "reasons": {
                    "terms": {"field": ERROR_TYPE, "size": 50, "missing": "unknown"},
                    "aggregations": {
                        "first": {"top_hits": {"size": 1, "_source": False, "sort": [{TIMESTAMP: {"order": "asc"}}]}}
                    },
                }
            },
            size=0,
            track_total_hits=True,
        ),
    )
    buckets = ((answer.get("aggregations") or {}).get("reasons") or {}).get("buckets") or []
    by_reason = {str(b["key"]): int(b["doc_count"]) for b in buckets}
    first = {}
    for b in buckets:
        hits = ((b.get("first") or {}).get("hits") or {}).get("hits") or []
        if hits:
            first[str(b["key"])] = f"{hits[0]['_index']}/{hits[0]['_id']}"
    total = (answer.get("hits") or {}).get("total") or {}
    return DeadLetters(size.documents, size.bytes, int(total.get("value") or 0), by_reason, first)
