"""A window's profile in one search: every column's presence, numeric summary and categories, and the facts
the label join needs (the window's prediction id range, whether any feedback may belong to it).

The drift job asks for the columns, then the summaries of all numeric columns and the counts of every
categorical one; all of it comes from this one search (answers for ``columns``, ``numeric_summaries`` and
``category_counts`` of the same query are read from it), so a side costs a count, this profile, the
reference sample and the histograms.  A column Elasticsearch cannot aggregate as it is (its type changed
between days, a value of another type was set aside into ``_ignored``, or it holds arrays) is flagged here;
its aggregates are then computed from its values (:mod:`analyzers.store.elastic.rowset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analyzers.store.base import NumericSummary, Query
from analyzers.store.elastic import limits
from analyzers.store.elastic.connection import Connection
from analyzers.store.elastic.indices import both_patterns
from analyzers.store.elastic.keys import key_value
from analyzers.store.elastic.mapping import Field
from analyzers.store.elastic.queries import (
    SEARCH_OPTIONS,
    bool_filter,
    feedback_filter,
    prediction_filter,
    strata,
    strata_of,
    term,
    window_filter,
)
from logshipper.schema import PREDICTION_ID


@dataclass(frozen=True)
class ColumnProfile:
    """What one search tells of a column: weighted rows with a value, and (when Elasticsearch can aggregate it
    as it is) its numeric summary or its complete category counts (``None`` key: rows without a value)."""

    present: float
    scanned: bool
    summary: NumericSummary | None = None
    categories: dict[Any, float] | None = None


@dataclass(frozen=True)
class WindowFacts:
    """What the label join needs to know of a (model, window): the smallest and largest prediction id, and how
    many feedback events may label its predictions (0: no join needed)."""

    pid_range: tuple[str, str] | None
    feedback: int


@dataclass(frozen=True)
class Profile:
    total: float
    columns: dict[str, ColumnProfile]
    facts: WindowFacts


def _column_aggs(i: int, field: Field) -> dict[str, Any]:
    aggs: dict[str, Any] = {f"e{i}": {"filter": {"exists": {"field": field.path}}}}
    if not field.exact:
        return aggs
    if field.kind == "numeric":
        aggs[f"s{i}"] = {"extended_stats": {"field": field.path}}
    else:
        aggs[f"t{i}"] = {"terms": {"field": field.path, "size": limits.PROFILE_TERMS}}
    return aggs


def facts_aggs(model: str, query: Query) -> dict[str, Any]:
    """Aggregations for :class:`WindowFacts`, to add to a search over both the predictions and the feedback."""
    top = {"size": 1, "_source": False}
    return {
        "window": {
            "filter": bool_filter(window_filter(model, query.window)),
            "aggregations": {
                "lo": {"top_hits": {**top, "sort": [{PREDICTION_ID: {"order": "asc"}}]}},
                "hi": {"top_hits": {**top, "sort": [{PREDICTION_ID: {"order": "desc"}}]}},
            },
        },
        "feedback": {"filter": bool_filter(feedback_filter(model, query.window))},
    }


def facts_query(query: Query) -> list[dict[str, Any]]:
    """The documents :func:`facts_aggs` looks at (a ``should`` list)."""
    return [
        bool_filter(window_filter(query.model, query.window)),
        bool_filter(feedback_filter(query.model, query.window)),
    ]


def read_facts(aggregations: dict[str, Any]) -> WindowFacts:
    window = aggregations.get("window") or {}

    def edge(name: str) -> str | None:
        hits = ((window.get(name) or {}).get("hits") or {}).get("hits") or []
        return str(hits[0]["sort"][0]) if hits and hits[0].get("sort") else None

    lo, hi = edge("lo"), edge("hi")
    return WindowFacts(
        (lo, hi) if lo is not None and hi is not None else None,
        int((aggregations.get("feedback") or {}).get("doc_count") or 0),
    )


def window_facts(conn: Connection, query: Query) -> WindowFacts:
    """:class:`WindowFacts` on their own (when no profile of the window was needed)."""
    index = both_patterns(query.model)
    answer = conn.call(
        f"finding the prediction ids and feedback of {index}",
        lambda es: es.search(
            index=index,
            **SEARCH_OPTIONS,
            query={"bool": {"should": facts_query(query), "minimum_should_match": 1}},
            aggregations=facts_aggs(query.model, query),
            size=0,
            track_total_hits=False,
        ),
    )
    return read_facts(answer.get("aggregations") or {})


def profile(conn: Connection, query: Query, fields: dict[str, Field]) -> Profile:
    """Every column's profile and the window's facts, in one search over predictions and feedback."""
    names = sorted(fields)
    per_stratum: dict[str, Any] = {}
    outside: dict[str, Any] = {}
    for i, name in enumerate(names):
        field = fields[name]
        per_stratum.update(_column_aggs(i, field))
        if field.exact:
            outside[f"v{i}"] = {"value_count": {"field": field.path}}
            outside[f"x{i}"] = {"filter": term("_ignored", field.path)}
    selected = bool_filter(prediction_filter(query))
    aggs = {
        "query": {"filter": selected, "aggregations": {**strata(per_stratum), **outside}},
        **facts_aggs(query.model, query),
    }
    index = both_patterns(query.model)
    answer = conn.call(
        f"profiling the columns of {index}",
        lambda es: es.search(
            index=index,
            **SEARCH_OPTIONS,
            query={"bool": {"should": [selected, *facts_query(query)], "minimum_should_match": 1}},
            aggregations=aggs,
            size=0,
            track_total_hits=False,
        ),
    )
    aggregations = answer.get("aggregations") or {}
    part = aggregations.get("query") or {}
    where = f"profiling {index}"
    layers = list(strata_of(part, where))
    total = sum(s.weight * s.docs for s in layers)
    columns: dict[str, ColumnProfile] = {}
    for i, name in enumerate(names):
        field = fields[name]
        present = sum(s.weight * float((s.bucket.get(f"e{i}") or {}).get("doc_count") or 0) for s in layers)
        docs = sum(float((s.bucket.get(f"e{i}") or {}).get("doc_count") or 0) for s in layers)
        values = float((part.get(f"v{i}") or {}).get("value") or 0)
        ignored = float((part.get(f"x{i}") or {}).get("doc_count") or 0)
        scanned = not field.exact or ignored > 0 or values > docs
        if scanned:
            columns[name] = ColumnProfile(present, True)
        elif field.kind == "numeric":
            columns[name] = ColumnProfile(present, False, summary=_summary(layers, i, total, present))
        else:
            columns[name] = ColumnProfile(present, False, categories=_categories(layers, i, field, total, present))
    return Profile(total, columns, read_facts(aggregations))


def _summary(layers: list[Any], i: int, total: float, present: float) -> NumericSummary:
    if not present:
        return NumericSummary(0.0, total, None, None, None, None)
    wx = wxx = 0.0
    lows: list[float] = []
    highs: list[float] = []
    for s in layers:
        stats = s.bucket.get(f"s{i}") or {}
        if not stats.get("count"):
            continue
        wx += s.weight * float(stats["sum"])
        wxx += s.weight * float(stats["sum_of_squares"])
        lows.append(float(stats["min"]))
        highs.append(float(stats["max"]))
    mean = wx / present
    std = max(wxx / present - mean * mean, 0.0) ** 0.5
    return NumericSummary(present, max(total - present, 0.0), mean, std, min(lows), max(highs))


def _categories(layers: list[Any], i: int, field: Field, total: float, present: float) -> dict[Any, float] | None:
    counts: dict[Any, float] = {}
    for s in layers:
        terms = s.bucket.get(f"t{i}") or {}
        if terms.get("sum_other_doc_count") or terms.get("doc_count_error_upper_bound"):
            return None
        for bucket in terms.get("buckets") or []:
            key = key_value(bucket.get("key"), field.es_type)
            counts[key] = counts.get(key, 0.0) + s.weight * float(bucket.get("doc_count") or 0)
    missing = max(total - present, 0.0)
    if missing:
        counts[None] = missing
    return counts
