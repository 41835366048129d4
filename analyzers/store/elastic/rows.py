"""Rows: hits of a query flattened into frames of logical columns, and the random sample.

Values keep their logged types (:func:`rowset.plain`): a numeric column is floats (NaN when missing), any
other holds the strings, integers, floats and booleans as logged, ``None`` when missing, and arrays or
objects as their compact JSON text.  Labels are not in these indices; ``labels`` gives them per prediction id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pandas as pd

from analyzers.store.base import ROW_COLUMNS, ColumnKind, Query, StoreError
from analyzers.store.elastic import limits
from analyzers.store.elastic.connection import Connection, error_reason
from analyzers.store.elastic.hits import scan, source_value
from analyzers.store.elastic.indices import predictions_pattern
from analyzers.store.elastic.mapping import Field
from analyzers.store.elastic.queries import SEARCH_OPTIONS, bool_filter, prediction_filter
from analyzers.store.elastic.rowset import RowSet, plain
from elasticsearch import ApiError
from logshipper.schema import FEATURE_PREFIX, GROUP_PREFIX, GROUPS, PREDICTION_ID, TIMESTAMP, column_path

_FLOAT_COLUMNS = frozenset({"score", "latency_ms", "sample_rate"})
ROW_ORDER = [
    {TIMESTAMP: {"order": "asc"}},
    {PREDICTION_ID: {"order": "asc", "unmapped_type": "keyword"}},
    {"_shard_doc": "asc"},
]
LabelLookup = Callable[[list[Any]], list[Any]]


def row_names(mapped: dict[str, Field], columns: Sequence[str] | None) -> list[str]:
    """The columns asked for (unknown names fail), or the fixed ones and every mapped feature and group."""
    if columns is None:
        dynamic = sorted(c for c in mapped if c.startswith((FEATURE_PREFIX, GROUP_PREFIX)))
        return [*ROW_COLUMNS, *dynamic]
    names = list(columns)
    for name in names:
        column_path(name)
    return names


def source_paths(names: Sequence[str]) -> list[str]:
    """The ``_source`` paths that hold these columns (the prediction id always)."""
    return sorted({column_path(n) for n in names if n != "label"} | {PREDICTION_ID})


def cells(source: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The columns of one hit's ``_source`` as logged values (``label`` excluded)."""
    return {n: plain(source_value(source, column_path(n))) for n in names if n != "label"}


def group_cells(source: dict[str, Any]) -> dict[str, Any]:
    """Every ``groups.<name>`` of one hit."""
    groups = source_value(source, GROUPS)
    if not isinstance(groups, dict):
        return {}
    return {f"{GROUP_PREFIX}{k}": plain(v) for k, v in _flat(groups).items()}


def _flat(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def frame(records: list[dict[str, Any]], names: list[str], kinds: dict[str, ColumnKind]) -> pd.DataFrame:
    """Records of logged values as a frame of these columns: UTC timestamps, floats for numeric columns."""
    out = pd.DataFrame({n: pd.Series([r.get(n) for r in records], dtype=object) for n in names}, columns=names)
    for name in names:
        if name == "timestamp":
            out[name] = pd.to_datetime(out[name], utc=True, format="ISO8601")
        elif name in _FLOAT_COLUMNS or kinds.get(name) == "numeric":
            out[name] = pd.to_numeric(
                out[name].map(lambda v: v if isinstance(v, (int, float)) and not isinstance(v, bool) else None),
                errors="coerce",
            ).astype(float)
    return out


def _records(hits: list[dict[str, Any]], names: list[str], labels: LabelLookup | None) -> list[dict[str, Any]]:
    records = [cells(h.get("_source") or {}, names) for h in hits]
    if "label" in names:
        pids = [source_value(h.get("_source") or {}, PREDICTION_ID) for h in hits]
        found = labels(pids) if labels is not None else [None] * len(pids)
        for record, label in zip(records, found, strict=True):
            record["label"] = label
    return records


def frames(
    conn: Connection,
    query: Query,
    names: list[str],
    kinds: dict[str, ColumnKind],
    chunk_size: int,
    labels: LabelLookup | None = None,
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> Iterator[pd.DataFrame]:
    """The query's predictions in time order as frames of ``chunk_size`` rows (``keep`` drops records)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    index = predictions_pattern(query.model)
    pending: list[dict[str, Any]] = []
    for hit in scan(conn, index, bool_filter(prediction_filter(query)), {"includes": source_paths(names)}, ROW_ORDER):
        pending.append(hit)
        if len(pending) >= chunk_size:
            yield from _chunks(pending, names, kinds, chunk_size, labels, keep)
            pending = []
    if pending:
        yield from _chunks(pending, names, kinds, chunk_size, labels, keep)


def _chunks(
    hits: list[dict[str, Any]],
    names: list[str],
    kinds: dict[str, ColumnKind],
    chunk_size: int,
    labels: LabelLookup | None,
    keep: Callable[[dict[str, Any]], bool] | None,
) -> Iterator[pd.DataFrame]:
    records = _records(hits, names, labels)
    if keep is not None:
        records = [r for r in records if keep(r)]
    for start in range(0, len(records), chunk_size):
        yield frame(records[start : start + chunk_size], names, kinds)


def _too_large(exc: ApiError) -> bool:
    return "Result window is too large" in str(exc.body)


def sample_hits(conn: Connection, query: Query, n: int, seed: int, names: list[str]) -> list[dict[str, Any]]:
    """At most ``n`` hits of the query in an order set by a seeded hash of the prediction id: one search up to
    ``SAMPLE_MAX`` (the templates allow it), else pages through a point in time."""
    index = predictions_pattern(query.model)
    scored = {
        "function_score": {
            "query": bool_filter(prediction_filter(query)),
            "functions": [{"random_score": {"seed": int(seed), "field": PREDICTION_ID}}],
            "boost_mode": "replace",
        }
    }
    order = [{"_score": {"order": "desc"}}, {PREDICTION_ID: {"order": "asc", "unmapped_type": "keyword"}}]
    if n <= limits.SAMPLE_MAX:
        try:
            answer = conn.call(
                f"sampling {index}",
                lambda es: es.search(
                    index=index,
                    **SEARCH_OPTIONS,
                    query=scored,
                    sort=order,
                    source={"includes": source_paths(names)},
                    size=n,
                    track_total_hits=False,
                ),
                keep=(ApiError,),
            )
            return list(answer["hits"]["hits"])
        except ApiError as exc:
            if not _too_large(exc):
                raise StoreError(
                    f"Elasticsearch at {conn.where} answered HTTP {exc.meta.status} while sampling {index}: "
                    f"{error_reason(exc.body)}"
                ) from None
    return list(scan(conn, index, scored, {"includes": source_paths(names)}, [*order, {"_shard_doc": "asc"}], n))


def sample(
    conn: Connection,
    query: Query,
    n: int,
    seed: int,
    names: list[str],
    kinds: dict[str, ColumnKind],
    labels: LabelLookup | None = None,
) -> pd.DataFrame:
    """A uniform sample of at most ``n`` predictions, the same for the same data and seed."""
    hits = sample_hits(conn, query, n, seed, names) if n > 0 else []
    return frame(_records(hits, names, labels), names, kinds)


def rowset(conn: Connection, query: Query, names: list[str]) -> RowSet:
    """Every prediction of the query with these columns (and the sample rate), as logged, for aggregating here."""
    wanted = sorted({*names, "sample_rate", "prediction_id"})
    records: list[dict[str, Any]] = []
    index = predictions_pattern(query.model)
    for hit in scan(conn, index, bool_filter(prediction_filter(query)), {"includes": source_paths(wanted)}, ROW_ORDER):
        records.append(cells(hit.get("_source") or {}, wanted))
    return RowSet(pd.DataFrame({n: pd.Series([r.get(n) for r in records], dtype=object) for n in wanted}))
