"""A window's data quality on Elasticsearch: the lines considered and the ones set aside, by reason.

Lines considered are the model's prediction and feedback documents stamped in the window, plus the window's
dead letters that name the model or no model.  What was set aside, each reason with its first ``index/_id``:

- what Filebeat could not place: the dead letters (:mod:`deadletters`), named as the local store names its
  reasons (``bad JSON``; ``rejected by Elasticsearch (HTTP 400)`` for a document the mapping refused).  A dead
  letter counts for the model its text names (read by the dead-letter pipeline, :mod:`pipelines`); one whose
  text names no model cannot be attributed and counts for every model.
- values the mapping left out of the index (kept in ``_source``; ``_ignored`` lists their fields), per column of
  the window, in documents: ``type mismatch in features.amount`` for a numeric or boolean column
  (``ignore_malformed``: a value whose type differs from the field's first of the day, as the local store
  names it), ``value too long to index in features.country`` for a string column (``ignore_above``, over 1,024
  characters), ``value set aside by the mapping in <column>`` for a column whose type differs between days;
  ``value set aside by the mapping`` for the model's other documents listed in ``_ignored`` (another field,
  the label).  One ``filter`` aggregation per column (``term`` on ``_ignored``: what 8.13, the floor, allows;
  aggregating ``_ignored`` itself needs 8.15 and indices it created).

Not counted, unlike the local store: a line shipped twice.  Its copy has the prediction id as ``_id``, is
refused (409) and dropped by Filebeat, which counts it only in its own ``libbeat.output.events.duplicates``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analyzers.findings.quality import QualityReport, ReasonCount
from analyzers.store.base import Query
from analyzers.store.elastic.connection import Connection
from analyzers.store.elastic.deadletters import DeadLetters
from analyzers.store.elastic.indices import both_patterns
from analyzers.store.elastic.mapping import Field
from analyzers.store.elastic.queries import SEARCH_OPTIONS, bool_filter, term, time_range
from logshipper.schema import MODEL_NAME, TIMESTAMP

SET_ASIDE_BY_MAPPING = "value set aside by the mapping"
_FIRST = {"top_hits": {"size": 1, "_source": False, "sort": [{TIMESTAMP: {"order": "asc"}}]}}


@dataclass(frozen=True)
class WindowLines:
    """The model's documents in a window, and per reason those with a value the mapping set aside."""

    documents: int
    set_aside: dict[str, ReasonCount]


def reason_name(error_type: str) -> str:
    """Filebeat's ``error.type`` of a dead letter as a quality reason."""
    if error_type == "json":
        return "bad JSON"
    if error_type.isdigit():
        return f"rejected by Elasticsearch (HTTP {error_type})"
    return error_type


def set_aside_reason(name: str, field: Field) -> str:
    """The reason a value of the column ``name`` is listed in ``_ignored``, from the field's type."""
    if field.es_type in ("double", "boolean"):
        return f"type mismatch in {name}"
    if field.es_type == "keyword":
        return f"value too long to index in {name}"
    return f"{SET_ASIDE_BY_MAPPING} in {name}"


def _first(bucket: Mapping[str, Any]) -> str | None:
    """``index/_id`` of the earliest document of a ``filter`` bucket (its ``first`` top hit)."""
    hits = ((bucket.get("first") or {}).get("hits") or {}).get("hits") or []
    return f"{hits[0]['_index']}/{hits[0]['_id']}" if hits else None


def model_lines(conn: Connection, query: Query, fields: Mapping[str, Field]) -> WindowLines:
    """The model's prediction and feedback documents stamped in the query's window, and those listed in
    ``_ignored``: per column of ``fields`` (logical name -> field), and the others (one search)."""
    index = both_patterns(query.model)
    columns = sorted((f.path, name, f) for name, f in fields.items())
    ignored = {"exists": {"field": "_ignored"}}
    others = {"bool": {"filter": [ignored], "must_not": [{"terms": {"_ignored": [p for p, _, _ in columns]}}]}}
    aggregations = {"others": {"filter": others if columns else ignored, "aggregations": {"first": _FIRST}}}
    for i, (path, _, _) in enumerate(columns):
        aggregations[f"c{i}"] = {"filter": term("_ignored", path), "aggregations": {"first": _FIRST}}
    answer = conn.call(
        f"counting the lines of {index}",
        lambda es: es.search(
            index=index,
            **SEARCH_OPTIONS,
            query=bool_filter([term(MODEL_NAME, query.model), time_range(query.window)]),
            aggregations=aggregations,
            size=0,
            track_total_hits=True,
        ),
    )
    found = answer.get("aggregations") or {}
    reasons: dict[str, ReasonCount] = {}
    for key, reason in [("others", SET_ASIDE_BY_MAPPING)] + [
        (f"c{i}", set_aside_reason(name, field)) for i, (_, name, field) in enumerate(columns)
    ]:
        bucket = found.get(key) or {}
        if bucket.get("doc_count"):
            reasons[reason] = ReasonCount(int(bucket["doc_count"]), _first(bucket))
    return WindowLines(int(((answer.get("hits") or {}).get("total") or {}).get("value") or 0), reasons)


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
    reasons.update(lines.set_aside)
    return QualityReport(lines.documents + dead.in_window, reasons)
