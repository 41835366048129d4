"""A window's data quality on Elasticsearch: the lines considered and the ones set aside, by reason.

Lines considered are the model's prediction and feedback documents stamped in the window, plus the window's
dead letters that name the model or no model.  What was set aside, each reason with its first ``index/_id``:

- what Filebeat could not place: the dead letters (:mod:`deadletters`), named as the local store names its
  reasons (``bad JSON``; ``rejected by Elasticsearch (HTTP 400)`` for a document the mapping refused).  A dead
  letter counts for the model its text names (read by the dead-letter pipeline, :mod:`pipelines`); one whose
  text names no model cannot be attributed and counts for every model.
- ``value set aside by the mapping``: the model's documents kept with one value or more left out of the index
  (``ignore_malformed``: a value whose type differs from the field's first of the day; ``ignore_above``: a
  string over 1,024 characters), which ``_ignored`` lists.  Counted in documents, not per field: 8.13 (the
  floor) can filter on ``_ignored`` but not aggregate it (8.15 can, on indices it created).

Not counted, unlike the local store: a line shipped twice.  Its copy has the prediction id as ``_id``, is
refused (409) and dropped by Filebeat, which counts it only in its own ``libbeat.output.events.duplicates``.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzers.findings.quality import QualityReport, ReasonCount
from analyzers.store.base import Query
from analyzers.store.elastic.connection import Connection
from analyzers.store.elastic.deadletters import DeadLetters
from analyzers.store.elastic.indices import both_patterns
from analyzers.store.elastic.queries import SEARCH_OPTIONS, bool_filter, term, time_range
from logshipper.schema import MODEL_NAME, TIMESTAMP

SET_ASIDE_BY_MAPPING = "value set aside by the mapping"
_FIRST = {"top_hits": {"size": 1, "_source": False, "sort": [{TIMESTAMP: {"order": "asc"}}]}}


@dataclass(frozen=True)
class WindowLines:
    """The model's documents in a window, and those with a value the mapping set aside (the first of them)."""

    documents: int
    set_aside: int
    first: str | None  # "index/_id" of the earliest document with a value set aside


def reason_name(error_type: str) -> str:
    """Filebeat's ``error.type`` of a dead letter as a quality reason."""
    if error_type == "json":
        return "bad JSON"
    if error_type.isdigit():
        return f"rejected by Elasticsearch (HTTP {error_type})"
    return error_type


def model_lines(conn: Connection, query: Query) -> WindowLines:
    """The model's prediction and feedback documents stamped in the query's window, and those of them listed in
    ``_ignored`` (one search)."""
    index = both_patterns(query.model)
    answer = conn.call(
        f"counting the lines of {index}",
        lambda es: es.search(
            index=index,
            **SEARCH_OPTIONS,
            query=bool_filter([term(MODEL_NAME, query.model), time_range(query.window)]),
            aggregations={"ignored": {"filter": {"exists": {"field": "_ignored"}}, "aggregations": {"first": _FIRST}}},
            size=0,
            track_total_hits=True,
        ),
    )
    ignored = (answer.get("aggregations") or {}).get("ignored") or {}
    hits = ((ignored.get("first") or {}).get("hits") or {}).get("hits") or []
    return WindowLines(
        int(((answer.get("hits") or {}).get("total") or {}).get("value") or 0),
        int(ignored.get("doc_count") or 0),
        f"{hits[0]['_index']}/{hits[0]['_id']}" if hits else None,
    )


def report(lines: WindowLines, dead: DeadLetters) -> QualityReport:
    """The quality of a window holding ``lines`` of the model, with the window's dead letters (the model's and
    those of no model)."""
    reasons: dict[str, ReasonCount] = {}
    for error_type, count in dead.by_reason.items():
        name = reason_name(error_type)
        previous = reasons.get(name)
        reasons[name] = ReasonCount(
            count + (previous.count if previous else 0),
            previous.first if previous else dead.first.get(error_type),
        )
    if lines.set_aside:
        reasons[SET_ASIDE_BY_MAPPING] = ReasonCount(lines.set_aside, lines.first)
    return QualityReport(lines.documents + dead.in_window, reasons)
