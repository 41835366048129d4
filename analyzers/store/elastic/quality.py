"""A window's data quality on Elasticsearch: the lines considered and the ones set aside, by reason.

Lines considered are the model's prediction and feedback documents stamped in the window, plus the window's
dead letters.  What was set aside is what Filebeat could not place: the dead letters (:mod:`deadletters`),
named as the local store names its reasons (``bad JSON``; ``rejected by Elasticsearch (HTTP 400)`` for a
document the mapping refused), each with its first ``index/_id``.  A dead letter carries no model, so these
are every model's.  Not counted, unlike the local store: a line shipped twice (the second copy is refused by
its ``_id`` and Filebeat drops it) and a value set aside by the mapping (listed in ``_ignored``, which 8.13
cannot aggregate).
"""

from __future__ import annotations

from analyzers.findings.quality import QualityReport, ReasonCount
from analyzers.store.base import Query
from analyzers.store.elastic.connection import Connection
from analyzers.store.elastic.deadletters import DeadLetters
from analyzers.store.elastic.indices import both_patterns
from analyzers.store.elastic.queries import SEARCH_OPTIONS, bool_filter, term, time_range
from logshipper.schema import MODEL_NAME


def reason_name(error_type: str) -> str:
    """Filebeat's ``error.type`` of a dead letter as a quality reason."""
    if error_type == "json":
        return "bad JSON"
    if error_type.isdigit():
        return f"rejected by Elasticsearch (HTTP {error_type})"
    return error_type


def model_lines(conn: Connection, query: Query) -> int:
    """The model's prediction and feedback documents stamped in the query's window (one search)."""
    index = both_patterns(query.model)
    answer = conn.call(
        f"counting the lines of {index}",
        lambda es: es.search(
            index=index,
            **SEARCH_OPTIONS,
            query=bool_filter([term(MODEL_NAME, query.model), time_range(query.window)]),
            size=0,
            track_total_hits=True,
        ),
    )
    return int(((answer.get("hits") or {}).get("total") or {}).get("value") or 0)


def report(lines: int, dead: DeadLetters) -> QualityReport:
    """The quality of a window holding ``lines`` documents of the model, with the window's dead letters."""
    reasons: dict[str, ReasonCount] = {}
    for error_type, count in dead.by_reason.items():
        name = reason_name(error_type)
        previous = reasons.get(name)
        reasons[name] = ReasonCount(
            count + (previous.count if previous else 0),
            previous.first if previous else dead.first.get(error_type),
        )
    return QualityReport(lines + dead.in_window, reasons)
