"""Rows: hits of a query paged through a point in time and flattened into frames of logical columns.

Labels are looked up chunk by chunk, for the prediction ids of each frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pandas as pd

from analyzers.store.base import ROW_COLUMNS, ColumnKind
from analyzers.store.elastic.connection import Connection
from analyzers.store.elastic.hits import scan, source_value
from analyzers.store.elastic.mapping import Field
from analyzers.store.elastic.queries import Context
from logshipper.schema import FEATURE_PREFIX, GROUP_PREFIX, PREDICTION_ID, column_path

_FLOAT_COLUMNS = frozenset({"score", "latency_ms", "sample_rate"})

LabelLookup = Callable[[list[str]], dict[str, Any]]


def row_names(mapped: dict[str, Field], columns: Sequence[str] | None) -> list[str]:
    """The columns asked for (unknown names fail), or the fixed ones and every mapped feature and group."""
    if columns is None:
        dynamic = sorted(c for c in mapped if c.startswith((FEATURE_PREFIX, GROUP_PREFIX)))
        return [*ROW_COLUMNS, *dynamic]
    names = list(columns)
    for name in names:
        column_path(name)
    return names


def frame(
    hits: list[dict[str, Any]], names: list[str], kinds: dict[str, ColumnKind], labels: LabelLookup
) -> pd.DataFrame:
    """Hits as a frame of these columns: UTC timestamps, floats for numbers, None for missing categories."""
    sources = [h.get("_source") or {} for h in hits]
    data: dict[str, list[Any]] = {}
    for name in names:
        if name == "label":
            continue
        path = column_path(name)
        data[name] = [source_value(s, path) for s in sources]
    if "label" in names:
        pids = [source_value(s, PREDICTION_ID) for s in sources]
        found = labels(sorted({str(p) for p in pids if p is not None}))
        data["label"] = [found.get(str(p)) if p is not None else None for p in pids]
    out = pd.DataFrame({n: data[n] for n in names}, columns=names)
    for name in names:
        if name == "timestamp":
            out[name] = pd.to_datetime(out[name], utc=True, format="ISO8601")
        elif name in _FLOAT_COLUMNS or kinds.get(name) == "numeric":
            out[name] = pd.to_numeric(out[name], errors="coerce").astype(float)
        else:
            column = out[name].astype(object)
            out[name] = column.where(column.notna(), None)
    return out


def frames(
    conn: Connection,
    ctx: Context,
    names: list[str],
    kinds: dict[str, ColumnKind],
    labels: LabelLookup,
    chunk_size: int,
    sort: list[Any],
    limit: int | None,
    random_score: dict[str, Any] | None = None,
) -> Iterator[pd.DataFrame]:
    """Hits of the context as frames of ``chunk_size`` rows; ``random_score`` orders them by a seeded hash."""
    source = sorted({column_path(n) for n in names if n != "label"} | {PREDICTION_ID})
    body = ctx.filter
    if random_score is not None:
        body = {"function_score": {"query": ctx.filter, "random_score": random_score, "boost_mode": "replace"}}
    pending: list[dict[str, Any]] = []
    for hit in scan(conn, ctx.indices, body, source, sort, limit, ctx.runtime):
        pending.append(hit)
        if len(pending) >= chunk_size:
            yield frame(pending, names, kinds, labels)
            pending = []
    if pending:
        yield frame(pending, names, kinds, labels)
