"""Aggregates in DuckDB SQL over a "window table": one row per prediction, logical column names.

A window table has the columns ``prediction_id``, ``timestamp`` (TIMESTAMPTZ), ``model_version``,
``entity_id``, ``outcome``, ``error_type``, ``error_message``, ``score``, ``latency_ms``,
``sample_rate`` (DOUBLE), ``_w`` (the weight ``1 / sample_rate``), and value columns for ``prediction``,
``label``, every ``features.<name>`` and ``groups.<name>``: numbers (BIGINT or DOUBLE), or the JSON text of
the value (NULL when missing).  JSON text keeps ``1``, ``"1"`` and ``true`` apart; numeric reads cast it.
Both the local log-file store and the reference-file store produce such tables, so the SQL is
written once, here.

A column is numeric when most of its values are numbers (booleans are not); its values that are not
numbers are set aside (read as neither a number nor missing) and counted in quality as a type mismatch.
A failed read is retried once over freshly built tables; a second failure is a ``StoreError`` in words.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analyzers.stats.binning import bin_counts
from analyzers.stats.sampling import SampleSize
from analyzers.store.base import (
    ROW_COLUMNS,
    BucketedHistograms,
    ColumnInfo,
    Histogram,
    NumericSummary,
    Query,
    ReasonCount,
    StoreError,
)
from analyzers.store.errors import describe
from analyzers.store.settings import DEFAULT_MEMORY_LIMIT
from logshipper.schema import FEATURE_PREFIX, GROUP_PREFIX

T = TypeVar("T")
NUMERIC_COLUMNS = ("score", "latency_ms", "sample_rate")
_NUMBER_TYPES = ("BIGINT", "DOUBLE", "INTEGER", "HUGEINT", "UBIGINT", "FLOAT", "DECIMAL", "SMALLINT", "TINYINT")
_BATCH_ROWS = 131_072  # rows per Arrow batch when a pass over the window is binned in Python
_SLICE_ROWS = 100_000  # rows() sorts at most about this many rows at a time (or one hour, when it holds more)
JSON_COLUMNS = ("prediction", "label")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_KEPT_ROWS = 10_000  # an aggregate's answer of at most this many rows is kept for the same question asked again
_KEPT_ANSWERS = 512
_HOUR_US = 3_600_000_000  # microseconds in an hour


def quote(name: str) -> str:
    """A SQL identifier for a column name (names may hold dots and quotes)."""
    return '"' + name.replace('"', '""') + '"'


def _numeric(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric column as float64 (nulls and text that is not a number as NaN)."""
    if pa.types.is_null(column.type):
        return np.full(len(column), np.nan)
    try:
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(column.to_pandas(), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _categorical(column: pa.ChunkedArray) -> pd.Series:
    """JSON-text cells to Python values (object dtype, nulls as None), each distinct value decoded once."""
    if pa.types.is_null(column.type):
        return pd.Series(np.full(len(column), None, dtype=object), dtype=object)
    encoded = pc.dictionary_encode(column.combine_chunks())
    values = np.empty(len(encoded.dictionary) + 1, dtype=object)
    values[:-1] = [decode(v) for v in encoded.dictionary.to_pylist()]
    values[-1] = None
    codes = pc.fill_null(encoded.indices, len(encoded.dictionary)).to_numpy(zero_copy_only=False)
    return pd.Series(values[codes], dtype=object)


def _edges(edges: Sequence[float]) -> np.ndarray:
    out = np.asarray(edges, dtype=float)
    if out.ndim != 1 or len(out) < 2 or np.any(np.diff(out) < 0):
        raise ValueError("histogram edges must be at least two ascending numbers")
    return out


def _key_index(column: pa.Array, keys: dict[Any, int], json_text: bool) -> np.ndarray:
    """Each row's index in ``keys`` (value to index, grown as new values appear; null is ``None``)."""
    if pa.types.is_null(column.type):
        return np.full(len(column), keys.setdefault(None, len(keys)))
    encoded = pc.dictionary_encode(column)
    values = [decode(v) if json_text else v for v in encoded.dictionary.to_pylist()]
    index = np.array([keys.setdefault(v, len(keys)) for v in values] + [keys.setdefault(None, len(keys))])
    return index[pc.fill_null(encoded.indices, len(values)).to_numpy(zero_copy_only=False)]


def _grown(flat: np.ndarray, size: int) -> np.ndarray:
    """``flat`` padded with zeros to ``size`` (counts of keys first seen in a later batch)."""
    return np.concatenate([flat, np.zeros(size - len(flat))]) if len(flat) < size else flat


def _bucketed_result(
    query: Query,
    seconds: float,
    n_buckets: int,
    bins: np.ndarray,
    keys: dict[Any, int],
    counted: tuple[np.ndarray, np.ndarray],
    missing: np.ndarray,
) -> BucketedHistograms:
    """Flat (key, bucket, cell) counts and squared weights as ``BucketedHistograms``: the keys that occurred,
    sorted (``None`` last)."""
    cells = len(bins) + 1
    by_key, squares = (_grown(c, len(keys) * n_buckets * cells).reshape(len(keys), n_buckets, cells) for c in counted)
    lost = _grown(missing, len(keys) * n_buckets).reshape(len(keys), n_buckets)
    occurred = by_key.sum(axis=(1, 2)) + lost.sum(axis=1) > 0
    seen = sorted((v for v, i in keys.items() if occurred[i]), key=BucketedHistograms.key_order)
    order = [keys[v] for v in seen]
    starts = pd.date_range(start=query.window.start, periods=n_buckets, freq=pd.Timedelta(seconds=seconds), tz="UTC")
    return BucketedHistograms(
        starts,
        bins,
        seen,
        by_key[order].transpose(1, 0, 2).copy(),
        squares[order].transpose(1, 0, 2).copy(),
        lost[order].transpose(1, 0).copy(),
    )


@dataclass(frozen=True)
class ColumnCounts:
    """How many rows of a window carry a value in a column, and how many of those are numbers."""

    name: str
    weighted: float
    present: int
    numbers: int

    @property
    def kind(self) -> str:
        majority = self.numbers * 2 > self.present
        return "numeric" if majority and not self.name.startswith(GROUP_PREFIX) else "categorical"


def _may_hold_text(column: str, sql_type: str) -> bool:
    """Whether a column can hold values that are not numbers where most are (a group is never numeric)."""
    return not column.startswith(GROUP_PREFIX) and not sql_type.upper().startswith(_NUMBER_TYPES)


def decode(text: Any) -> Any:
    """A JSON-text cell back to its Python value (None for NULL)."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    return orjson.loads(text) if isinstance(text, str) else text


class DuckAggregates:
    """Store reads over window tables; subclasses say which table answers a query."""

    def __init__(self, memory_limit: str = DEFAULT_MEMORY_LIMIT, spill_dir: Path | None = None) -> None:
        """``memory_limit`` is DuckDB's working memory; sorts, joins and aggregates beyond it spill to ``spill_dir``."""
        self._con = duckdb.connect(
            config={
                "threads": min(os.cpu_count() or 1, 4),
                "memory_limit": memory_limit,
                "temp_directory": str(spill_dir or Path(tempfile.gettempdir()) / "predwatch-spill"),
            }
        )
        self._con.execute("SET parquet_metadata_cache = true")  # parsed files never change in place
        self._lock = threading.RLock()
        self.memory_limit = memory_limit
        # Window tables never change once built (a changed file makes a new one), so what they hold is kept.
        self._columns_seen: dict[tuple[str, tuple[Any, ...], bool], list[ColumnCounts]] = {}
        self._described: dict[str, dict[str, str]] = {}
        self._answers: dict[tuple[str, tuple[Any, ...]], list[tuple[Any, ...]]] = {}

    # ---- what subclasses provide --------------------------------------------------------
    def _table(self, query: Query, label: bool = True) -> str:
        """Name of the window table that holds the query's window (filters not yet applied); ``label`` says
        whether the ``label`` column is needed (joining feedback costs, so a table may leave it out)."""
        raise NotImplementedError

    def _invalidate(self) -> None:
        """Forget the tables built so far, so that the next read builds them again (after a failure)."""
        self._forget_described()

    def _forget_described(self) -> None:
        with self._lock:
            self._described.clear()
            self._columns_seen.clear()
            self._answers.clear()

    def _table_types(self, table: str) -> dict[str, str]:
        with self._lock:
            if table not in self._described:
                rows = self._con.execute(f"DESCRIBE {table}").fetchall()
                self._described[table] = {r[0]: str(r[1]) for r in rows}
            return self._described[table]

    def _table_columns(self, table: str) -> list[str]:
        return list(self._table_types(table))

    def _retrying(self, action: str, query: Query, work: Callable[[], T]) -> T:
        """``work`` once more over tables built again when it fails (a parsed file another process replaced);
        a second failure is a ``StoreError`` saying what was done, on which window, and what to do."""
        doing = f"{action} ({query.model}, {query.window.to_dict()['start']} to {query.window.to_dict()['end']})"
        for attempt in (1, 2):
            try:
                return work()
            except duckdb.Error as exc:
                self._invalidate()
                if attempt == 2:
                    raise StoreError(describe(doing, exc, self.memory_limit)) from exc
            except StoreError as exc:
                self._invalidate()
                if attempt == 2:
                    raise StoreError(f"{doing} failed: {exc}") from exc
        raise AssertionError("unreachable")

    # ---- filters ------------------------------------------------------------------------
    def _where(self, query: Query, table: str) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        types = self._table_types(table)
        cols = set(types)

        def any_of(column: str, values: Sequence[Any]) -> None:
            if column not in cols:
                clauses.append("FALSE")
                return
            clauses.append(f"{quote(column)} IN ({', '.join('?' for _ in values)})")
            params.extend(values)

        def any_value(column: str, values: Sequence[Any]) -> None:
            """A value column holds numbers or JSON text: numbers compare as numbers, anything else as JSON."""
            if column not in cols:
                clauses.append("FALSE")
                return
            numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            others = [orjson.dumps(v).decode() for v in values if v not in numbers]
            typed = types[column].upper().startswith(_NUMBER_TYPES)
            parts = []
            if numbers:
                parts.append(f"TRY_CAST({quote(column)} AS DOUBLE) IN ({', '.join('?' for _ in numbers)})")
                params.extend(float(v) for v in numbers)
            if others and not typed:
                parts.append(f"{quote(column)} IN ({', '.join('?' for _ in others)})")
                params.extend(others)
            clauses.append("(" + " OR ".join(parts) + ")" if parts else "FALSE")

        if query.model_versions is not None:
            any_of("model_version", query.model_versions)
        if query.entity_ids is not None:
            any_of("entity_id", query.entity_ids)
        if query.prediction_ids is not None:
            any_of("prediction_id", query.prediction_ids)
        for attribute, values in (query.groups or {}).items():
            any_value(GROUP_PREFIX + attribute, values)
        if query.outcome is not None:
            clauses.append("outcome = ?")
            params.append(query.outcome)
        if query.has_label is not None:
            if "label" in cols:
                clauses.append("label IS NOT NULL" if query.has_label else "label IS NULL")
            elif query.has_label:
                clauses.append("FALSE")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _source(self, query: Query, columns: Sequence[str] | None = None) -> tuple[str, list[Any], set[str]]:
        """``FROM ... WHERE ...`` for the query, its parameters and the table's columns; ``columns`` are those the
        caller reads (all when None), so that a read without ``label`` is spared the feedback join."""
        table = self._table(query, self._wants_label(query, columns))
        where, params = self._where(query, table)
        return f"FROM {table}{where}", params, set(self._table_columns(table))

    @staticmethod
    def _wants_label(query: Query, columns: Sequence[str] | None) -> bool:
        """Whether reading ``columns`` of the query's rows needs ``label`` (all columns when None)."""
        return columns is None or "label" in columns or query.has_label is not None

    def _num(self, column: str, cols: set[str]) -> str:
        if column not in cols:
            return "CAST(NULL AS DOUBLE)"
        if column in NUMERIC_COLUMNS:
            return f"CASE WHEN isfinite({quote(column)}) THEN {quote(column)} END"
        return f"TRY_CAST({quote(column)} AS DOUBLE)"

    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """The rows of an aggregate; short answers are kept while the tables live (the jobs of one run ask the
        same windows the same questions: sizes, volumes, counts)."""
        key = (sql, tuple(params))
        with self._lock:
            if key in self._answers:
                return list(self._answers[key])
            rows = self._con.execute(sql, params).fetchall()
            if len(rows) <= _KEPT_ROWS:
                if len(self._answers) >= _KEPT_ANSWERS:
                    self._answers.clear()
                self._answers[key] = rows
            return list(rows)

    def _raw(self, column: str, cols: set[str]) -> str:
        return quote(column) if column in cols else "NULL"

    def _value(self, column: str, cols: set[str]) -> str:
        """A numeric read that tells apart missing (NULL) from set aside (NaN: a value that is not a number)."""
        if column not in cols or column in NUMERIC_COLUMNS:
            return self._num(column, cols)
        number = self._num(column, cols)
        return f"CASE WHEN {quote(column)} IS NULL THEN NULL ELSE coalesce({number}, CAST('NaN' AS DOUBLE)) END"

    # ---- Store methods ----------------------------------------------------------------------
    def _column_counts(self, query: Query, *, text_only: bool = False) -> list[ColumnCounts]:
        """Every value column present in the query's rows, with its counts (kept while the tables live); with
        ``text_only``, only the feature and output columns stored as JSON text (only those can hold values that
        are not numbers).

        A column stored as numbers needs no count of its numbers; ``label`` is counted apart over the table with
        feedback joined (stored as numbers, from the labelled rows' size), so that the other columns are counted
        without the join, unless the query's rows need it anyway (then one pass counts them all).
        """
        source, params, cols = self._source(query, ())
        key = (source, tuple(params), text_only)
        if key not in self._columns_seen:
            if len(self._columns_seen) > 256:
                self._columns_seen.clear()
            types = self._table_types(self._table(query, False))
            label_types = self._table_types(self._table(query, True))
            wanted = [c for c in types if c.startswith((FEATURE_PREFIX, GROUP_PREFIX)) or c in ("prediction", "score")]
            label = ["label"] if "label" in label_types else []
            if text_only:
                wanted = [c for c in wanted if _may_hold_text(c, types[c])]
                label = [c for c in label if _may_hold_text(c, label_types[c])]
            labelled, label_params, label_cols = self._source(query, ("label",))
            if labelled == source:  # the query's rows have their labels joined anyway: one pass counts every column
                counted = self._count_columns(wanted + label, label_types, source, params, cols)
            elif label and label_types["label"].upper().startswith(_NUMBER_TYPES):
                # Labels stored as numbers are all numbers: the size of the labelled rows (which the jobs ask for
                # anyway, and which is kept) is all there is to count.
                counted = self._count_columns(wanted, types, source, params, cols)
                weighted, _, present = self._size(query.with_(has_label=True))
                if present:
                    counted.append(ColumnCounts("label", float(weighted), int(present), int(present)))
            else:
                counted = self._count_columns(wanted, types, source, params, cols)
                counted += self._count_columns(label, label_types, labelled, label_params, label_cols)
            self._columns_seen[key] = counted
        return list(self._columns_seen[key])

    def _count_columns(
        self, wanted: list[str], types: dict[str, str], source: str, params: list[Any], cols: set[str]
    ) -> list[ColumnCounts]:
        if not wanted:
            return []
        parts = []
        for c in wanted:
            parts.append(f"sum(CASE WHEN {quote(c)} IS NOT NULL THEN _w ELSE 0 END)")
            parts.append(f"count({quote(c)})")
            typed = types.get(c, "").upper().startswith(_NUMBER_TYPES)
            parts.append(f"count({quote(c)})" if typed else f"count({self._num(c, cols)})")
        row = self._fetch(f"SELECT {', '.join(parts)} {source}", params)[0]
        counted = []
        for i, c in enumerate(wanted):
            weighted, present, numbers = row[3 * i], row[3 * i + 1], row[3 * i + 2]
            if present:
                counted.append(ColumnCounts(c, float(weighted or 0.0), int(present), int(numbers)))
        return counted

    def columns(self, query: Query) -> list[ColumnInfo]:
        return self._retrying(
            "listing columns",
            query,
            lambda: [ColumnInfo(c.name, c.kind, c.weighted) for c in self._column_counts(query)],  # type: ignore[arg-type]
        )

    def _mismatches(self, query: Query) -> dict[str, ReasonCount]:
        """``type mismatch in <column>``: values of a numeric column that are not numbers, and where the first is."""
        out: dict[str, ReasonCount] = {}
        for counts in self._column_counts(query, text_only=True):
            if counts.kind != "numeric" or counts.present == counts.numbers:
                continue
            source, params, cols = self._source(query)
            if "_file" not in cols:
                continue
            file, line = self._fetch(
                f"SELECT _file, _line {source}{' AND' if 'WHERE' in source else ' WHERE'}"
                f" {quote(counts.name)} IS NOT NULL AND {self._num(counts.name, cols)} IS NULL"
                " ORDER BY _file, _line LIMIT 1",
                params,
            )[0]
            out[f"type mismatch in {counts.name}"] = ReasonCount(counts.present - counts.numbers, f"{file}:{line}")
        return out

    def count(self, query: Query) -> float:
        def work() -> float:
            source, params, _ = self._source(query, ())
            return float(self._fetch(f"SELECT coalesce(sum(_w), 0) {source}", params)[0][0])

        return self._retrying("counting predictions", query, work)

    def _size(self, query: Query) -> tuple[Any, ...]:
        """Σw, Σw² and the number of the query's rows."""
        source, params, _ = self._source(query, ())
        return self._fetch(f"SELECT coalesce(sum(_w), 0), coalesce(sum(_w * _w), 0), count(*) {source}", params)[0]

    def sample_size(self, query: Query) -> SampleSize:
        def work() -> SampleSize:
            weighted, squares, rows = self._size(query)
            return SampleSize(float(weighted), float(squares), float(rows))

        return self._retrying("counting predictions", query, work)

    def numeric_summary(self, query: Query, column: str) -> NumericSummary:
        return self.numeric_summaries(query, [column])[column]

    def numeric_summaries(self, query: Query, columns: Sequence[str]) -> dict[str, NumericSummary]:
        """Every column's summary in one pass over the window; values set aside count as neither present nor missing."""
        if not columns:
            return {}

        def work() -> dict[str, NumericSummary]:
            source, params, cols = self._source(query, columns)
            parts = []
            for i, column in enumerate(columns):
                v, present = f"v{i}", f"CASE WHEN v{i} IS NOT NULL THEN _w END"
                parts += [
                    f"coalesce(sum({present}), 0)",
                    f"coalesce(sum(CASE WHEN {self._raw(column, cols)} IS NULL THEN _w END), 0)",
                    f"sum(_w * {v}) / nullif(sum({present}), 0)",
                    f"sum(_w * {v} * {v}) / nullif(sum({present}), 0)",
                    f"min({v})",
                    f"max({v})",
                ]
            inner = ", ".join(f"{self._num(c, cols)} AS v{i}" for i, c in enumerate(columns))
            raws = ", ".join(quote(c) for c in dict.fromkeys(columns) if c in cols)
            raws = f", {raws}" if raws else ""
            row = self._fetch(f"SELECT {', '.join(parts)} FROM (SELECT {inner}, _w{raws} {source})", params)[0]
            out = {}
            for i, column in enumerate(columns):
                n, missing, mean, mean_sq, lo, hi = row[6 * i : 6 * i + 6]
                std = None if mean is None else float(np.sqrt(max(mean_sq - mean * mean, 0.0)))
                out[column] = NumericSummary(float(n), float(missing), mean, std, lo, hi)
            return out

        return self._retrying("summarising numeric columns", query, work)

    def category_counts(self, query: Query, column: str) -> dict[Any, float]:
        def work() -> dict[Any, float]:
            source, params, cols = self._source(query, (column,))
            if column not in cols:
                total = self._fetch(f"SELECT coalesce(sum(_w), 0) {source}", params)[0][0]
                return {None: float(total)} if total else {}
            sql = f"SELECT {quote(column)}, sum(_w) {source} GROUP BY 1"
            json_text = column in JSON_COLUMNS or column.startswith((FEATURE_PREFIX, GROUP_PREFIX))
            out: dict[Any, float] = {}
            for value, weight in self._fetch(sql, params):
                key = decode(value) if json_text else value
                out[key] = out.get(key, 0.0) + float(weight)
            return out

        return self._retrying(f"counting the values of {column}", query, work)

    def histogram(self, query: Query, column: str, edges: Sequence[float]) -> Histogram:
        return self.histograms(query, {column: edges})[column]

    def histograms(self, query: Query, edges: Mapping[str, Sequence[float]]) -> dict[str, Histogram]:
        """Every column's histogram in one streamed pass: values arrive in Arrow batches and are binned
        with numpy (``bin_counts``), so memory holds one batch whatever the window's size.  A value set aside
        (not a number) is neither counted nor missing."""
        bins = {column: _edges(e) for column, e in edges.items()}
        if not bins:
            return {}
        return self._retrying("binning numeric columns", query, lambda: self._histograms(query, bins))

    def _histograms(self, query: Query, bins: dict[str, np.ndarray]) -> dict[str, Histogram]:
        source, params, cols = self._source(query, list(bins))
        names = list(bins)
        full = {c: np.zeros(len(bins[c]) + 1) for c in names}  # [underflow, counts..., overflow]
        missing = dict.fromkeys(names, 0.0)
        inner = ", ".join(f"{self._value(c, cols)} AS v{i}" for i, c in enumerate(names))
        with self._lock:
            cursor = self._con.cursor()
        try:
            reader = cursor.sql(f"SELECT {inner}, _w {source}", params=params).to_arrow_reader(_BATCH_ROWS)
            for batch in reader:
                weight = batch.column(len(names)).to_numpy(zero_copy_only=False)
                unweighted = bool(np.all(weight == 1.0))
                for i, column in enumerate(names):
                    values = batch.column(i)
                    x = values.to_numpy(zero_copy_only=False).astype(float)
                    absent = values.is_null().to_numpy(zero_copy_only=False)
                    missing[column] += float(weight[absent].sum())
                    full[column] += bin_counts(x, bins[column], None if unweighted else weight)
        finally:
            cursor.close()
        return {c: Histogram(bins[c], full[c][1:-1], full[c][0], full[c][-1], missing[c]) for c in names}

    def bucketed_histograms(
        self, query: Query, column: str, edges: Sequence[float], *, bucket: timedelta, by: str | None = None
    ) -> BucketedHistograms:
        """One streamed pass: each row's bucket (SQL), ``by`` value and value (Arrow batches) go into one
        ``bincount`` over (bucket, key, cell), so memory holds one batch and the counts, whatever the window."""
        bins = _edges(edges)
        seconds = bucket.total_seconds()
        if seconds <= 0:
            raise ValueError("histogram bucket must be positive")
        n_buckets = max(int(np.ceil(query.window.length.total_seconds() / seconds)), 1)
        return self._retrying(
            f"binning {column} per {bucket}", query, lambda: self._bucketed(query, column, bins, seconds, n_buckets, by)
        )

    def _bucketed(
        self, query: Query, column: str, bins: np.ndarray, seconds: float, n_buckets: int, by: str | None
    ) -> BucketedHistograms:
        source, params, cols = self._source(query, [column] + ([by] if by else []))
        key_sql = "NULL" if by is None else self._raw(by, cols)
        sql = (
            f"SELECT CAST(floor((epoch(timestamp) - ?) / ?) AS BIGINT), {key_sql}, {self._value(column, cols)}, _w"
            f" {source}"
        )
        json_key = by is not None and (by in JSON_COLUMNS or by.startswith((FEATURE_PREFIX, GROUP_PREFIX)))
        cells = len(bins) + 1
        keys: dict[Any, int] = {}
        counts = np.zeros(0)  # flat (key, bucket, cell) counts, grown as keys appear
        squares = np.zeros(0)  # the same cells' sums of squared weights
        missing = np.zeros(0)  # flat (key, bucket)
        with self._lock:
            cursor = self._con.cursor()
        try:
            reader = cursor.sql(sql, params=[query.window.start.timestamp(), seconds, *params]).to_arrow_reader(
                _BATCH_ROWS
            )
            for batch in reader:
                b = batch.column(0).to_numpy(zero_copy_only=False)
                key = _key_index(batch.column(1), keys, json_key)
                x = batch.column(2).to_numpy(zero_copy_only=False).astype(float)
                absent = batch.column(2).is_null().to_numpy(zero_copy_only=False)
                weight = batch.column(3).to_numpy(zero_copy_only=False).astype(float)
                inside = (b >= 0) & (b < n_buckets)
                use = inside & ~np.isnan(x)  # NaN: missing, or set aside (not a number)
                lost = inside & absent
                slot = key * n_buckets + b
                cell = np.searchsorted(bins, x[use], side="right")
                size = len(keys) * n_buckets
                flat = slot[use] * cells + cell
                counts = _grown(counts, size * cells) + np.bincount(flat, weight[use], minlength=size * cells)
                squares = _grown(squares, size * cells) + np.bincount(flat, weight[use] ** 2, minlength=size * cells)
                missing = _grown(missing, size) + np.bincount(slot[lost], weight[lost], minlength=size)
        finally:
            cursor.close()
        return _bucketed_result(query, seconds, n_buckets, bins, keys, (counts, squares), missing)

    def quantiles(self, query: Query, column: str, qs: Sequence[float]) -> list[float | None]:
        if any(not 0.0 <= q <= 1.0 for q in qs):
            raise ValueError("quantiles must lie in [0, 1]")
        if not qs:
            return []

        def work() -> list[float | None]:
            source, params, cols = self._source(query, (column,))
            x = self._num(column, cols)
            inner = f"(SELECT {x} AS v, _w {source}) WHERE v IS NOT NULL"
            uniform = self._fetch(f"SELECT count(DISTINCT _w) <= 1 FROM {inner}", params)[0][0]
            if uniform:
                q_list = "[" + ", ".join(repr(float(q)) for q in qs) + "]"
                (values,) = self._fetch(f"SELECT quantile_cont(v, {q_list}) FROM {inner}", params)[0]
                return [None] * len(qs) if values is None else [float(v) for v in values]
            # Weighted: the smallest value whose cumulative weight share reaches q.
            rows = self._fetch(
                f"SELECT v, sum(_w) OVER (ORDER BY v ROWS UNBOUNDED PRECEDING) / sum(_w) OVER () FROM {inner}"
                " ORDER BY v",
                params,
            )
            if not rows:
                return [None] * len(qs)
            values = np.array([r[0] for r in rows])
            shares = np.array([r[1] for r in rows])
            idx = np.searchsorted(shares, np.asarray(qs, dtype=float) - 1e-12, side="left")
            return [float(values[min(i, len(values) - 1)]) for i in idx]

        return self._retrying(f"computing quantiles of {column}", query, work)

    def crosstab(self, query: Query, columns: Sequence[str]) -> pd.DataFrame:
        if not columns:
            raise ValueError("crosstab needs at least one column")

        def work() -> pd.DataFrame:
            source, params, cols = self._source(query, columns)
            exprs = [quote(c) if c in cols else f"CAST(NULL AS VARCHAR) AS {quote(c)}" for c in columns]
            # In order, so that what is built from the rows (groups in a finding) comes out the same every run.
            select = f"SELECT {', '.join(exprs)}, sum(_w) AS count, sum(_w * _w) AS weight_sq"
            sql = f"{select} {source} GROUP BY ALL ORDER BY ALL"
            rows = self._fetch(sql, params)
            json_cols = [c in JSON_COLUMNS or c.startswith((FEATURE_PREFIX, GROUP_PREFIX)) for c in columns]
            merged: dict[tuple[Any, ...], tuple[float, float]] = {}
            for row in rows:
                key = tuple(decode(v) if js else v for v, js in zip(row[:-2], json_cols, strict=True))
                count, squares = merged.get(key, (0.0, 0.0))
                merged[key] = (count + float(row[-2]), squares + float(row[-1]))
            frame = pd.DataFrame([[*k, c, q] for k, (c, q) in merged.items()], columns=[*columns, "count", "weight_sq"])
            return frame.astype({c: object for c in columns}) if len(frame) else frame

        return self._retrying("counting combinations of " + ", ".join(columns), query, work)

    def volume(self, query: Query, bucket: timedelta) -> pd.DataFrame:
        seconds = bucket.total_seconds()
        if seconds <= 0:
            raise ValueError("volume bucket must be positive")
        start = query.window.start
        n_buckets = int(np.ceil(query.window.length.total_seconds() / seconds))

        def work() -> list[tuple[Any, ...]]:
            source, params, _ = self._source(query, ())
            return self._fetch(
                f"SELECT CAST(floor((epoch(timestamp) - ?) / ?) AS BIGINT) AS b, sum(_w),"
                f" sum(CASE WHEN outcome = 'failure' THEN _w ELSE 0 END) {source} GROUP BY 1",
                [start.timestamp(), seconds, *params],
            )

        rows = self._retrying("counting predictions over time", query, work)
        counts = np.zeros(n_buckets)
        failures = np.zeros(n_buckets)
        for b, n, f in rows:
            if 0 <= b < n_buckets:
                counts[b] += n
                failures[b] += f
        starts = pd.date_range(start=start, periods=n_buckets, freq=pd.Timedelta(seconds=seconds), tz="UTC")
        return pd.DataFrame({"start": starts, "count": counts, "failures": failures})

    # ---- rows ---------------------------------------------------------------------------
    def _select_list(self, columns: Sequence[str] | None, cols: set[str]) -> list[str]:
        if columns is None:
            return [c for c in self._ordered(cols)]
        return list(columns)

    @staticmethod
    def _ordered(cols: set[str]) -> list[str]:
        fixed = [c for c in ROW_COLUMNS if c in cols]
        dynamic = sorted(c for c in cols if c.startswith((FEATURE_PREFIX, GROUP_PREFIX)))
        return fixed + dynamic

    @staticmethod
    def _frame(table: pa.Table, kinds: dict[str, str]) -> pd.DataFrame:
        """An Arrow result as rows() and sample() promise it: JSON-text cells decoded, times in UTC."""
        columns: dict[str, Any] = {}
        for name, column in zip(table.column_names, table.columns, strict=True):
            if name in JSON_COLUMNS or name.startswith((FEATURE_PREFIX, GROUP_PREFIX)):
                columns[name] = _numeric(column) if kinds.get(name) == "numeric" else _categorical(column)
            else:
                columns[name] = column.to_pandas()
        frame = pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))
        if "timestamp" in frame.columns and isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype):
            frame["timestamp"] = frame["timestamp"].dt.tz_convert("UTC")
        return frame

    def _select_sql(self, columns: list[str], cols: set[str]) -> str:
        return ", ".join(quote(c) if c in cols else f"NULL AS {quote(c)}" for c in columns)

    def rows(
        self, query: Query, columns: Sequence[str] | None = None, chunk_size: int = 50_000
    ) -> Iterator[pd.DataFrame]:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        action = "reading rows"
        doing = f"{action} ({query.model}, {query.window.to_dict()['start']} to {query.window.to_dict()['end']})"
        yielded = False
        for attempt in (1, 2):
            try:
                for frame in self._rows(query, columns, chunk_size):
                    yielded = True
                    yield frame
                return
            except (duckdb.Error, StoreError) as exc:
                self._invalidate()
                if yielded or attempt == 2:  # rows already handed out cannot be taken back: no second try
                    if isinstance(exc, StoreError):
                        raise
                    raise StoreError(describe(doing, exc, self.memory_limit)) from exc

    def _joined(self, query: Query, columns: Sequence[str] | None) -> bool:
        """Whether reading ``columns`` joins the window to other tables (then ``rows`` joins once, not per slice)."""
        return False

    def _rows(self, query: Query, columns: Sequence[str] | None, chunk_size: int) -> Iterator[pd.DataFrame]:
        source, params, cols = self._source(query, columns)
        names = self._select_list(columns, cols)
        kinds = {c.name: c.kind for c in self._column_counts(query)}
        select = f"{self._select_sql(names, cols)}, timestamp AS _pw_ts, prediction_id AS _pw_id"
        with self._lock:
            cursor = self._con.cursor()
        pending: list[pa.Table] = []
        held = 0
        keys = [("_pw_ts", "ascending"), ("_pw_id", "ascending")]
        try:
            if self._joined(query, columns):
                # A join (the feedback labels) would be made again for every slice: the rows are joined once,
                # into a temporary table of the cursor's own (kept by DuckDB within its memory limit, spilled
                # beyond it), and sliced from there.
                cursor.execute(f"CREATE TEMP TABLE _pw_joined AS SELECT {select} FROM (SELECT * {source})", params)
                reading, select, time, params = "FROM _pw_joined", "*", "_pw_ts", []
            else:
                reading, time = f"FROM (SELECT * {source})", "timestamp"
            # Sorting a whole window would hold it in memory: each slice of time is read and sorted on its
            # own, by Arrow, so DuckDB only streams and its working memory stays within its limit.
            slices = self._time_slices(cursor, reading, params, max(chunk_size, _SLICE_ROWS), time=time)
            for clause, slice_params in slices:
                sql = f"SELECT {select} {reading} WHERE {clause}"
                part = cursor.sql(sql, params=[*params, *slice_params]).to_arrow_table()
                order = pc.sort_indices(part, sort_keys=keys)  # nulls last, as SQL orders them
                pending.append(part.take(order).drop_columns(["_pw_ts", "_pw_id"]))
                held += part.num_rows
                while held >= chunk_size:
                    table = pa.concat_tables(pending)
                    yield self._frame(table.slice(0, chunk_size), kinds)
                    rest = table.slice(chunk_size)
                    pending, held = [rest], rest.num_rows
            if held:
                yield self._frame(pa.concat_tables(pending), kinds)
        finally:
            cursor.close()

    @staticmethod
    def _time_slices(
        cursor: duckdb.DuckDBPyConnection, source: str, params: list[Any], rows: int, *, time: str
    ) -> Iterator[tuple[str, list[Any]]]:
        """Consecutive ranges of whole hours of the ``time`` column holding about ``rows`` rows each (filter and
        parameters).  Hours are counted as whole numbers since the epoch (floored): several times cheaper than
        truncating timestamps, and no timestamp is made in Python but the ranges' ends."""
        micros = f"epoch_us({time})"
        hour = f"{micros} // {_HOUR_US} - CAST({micros} % {_HOUR_US} < 0 AS BIGINT)"
        hours = cursor.execute(
            f"SELECT {hour} AS h, count(*) {source} GROUP BY 1 ORDER BY 1 NULLS LAST", params
        ).fetchall()
        start, held = None, 0
        for i, (number, n) in enumerate(hours):
            if number is None:
                yield f"{time} IS NULL", []
                continue
            start = number if start is None else start
            held += n
            following = hours[i + 1][0] if i + 1 < len(hours) else None
            if held >= rows or following is None:
                yield (
                    f"{time} >= ? AND {time} < ?",
                    [_EPOCH + timedelta(hours=start), _EPOCH + timedelta(hours=number + 1)],
                )
                start, held = None, 0

    def sample(self, query: Query, n: int, seed: int = 0, columns: Sequence[str] | None = None) -> pd.DataFrame:
        return self._retrying("sampling predictions", query, lambda: self._sample(query, n, seed, columns))

    def _sample(self, query: Query, n: int, seed: int, columns: Sequence[str] | None) -> pd.DataFrame:
        source, params, cols = self._source(query, columns)
        names = self._select_list(columns, cols)
        kinds = {c.name: c.kind for c in self._column_counts(query)}
        salt = f"#{int(seed)}"
        select = self._select_sql(names, cols)
        with self._lock:
            (total,) = self._con.execute(f"SELECT count(*) {source}", params).fetchall()[0]
            if total <= n:  # every row: one read, put in the order the picking below would give
                table = self._con.sql(
                    f"SELECT {select}, hash(prediction_id || ?) AS _pw_key, prediction_id AS _pw_id {source}",
                    params=[salt, *params],
                ).to_arrow_table()
                order = pc.sort_indices(table, sort_keys=[("_pw_key", "ascending"), ("_pw_id", "ascending")])
                return self._frame(table.take(order).drop_columns(["_pw_key", "_pw_id"]), kinds)
        picking = f"SELECT prediction_id AS _pw_id {source} ORDER BY hash(prediction_id || ?), prediction_id LIMIT ?"
        with self._lock:
            # The ids are picked on one narrow column, then only the picked rows are read in full and
            # put in the picked order by Arrow: DuckDB never holds a wide top-n within its memory budget.
            picked = self._con.sql(picking, params=[*params, salt, int(n)]).to_arrow_table()
            picked = picked.append_column("_pw_rank", pa.array(np.arange(picked.num_rows)))
            self._con.register("_pw_picked", picked)
            try:
                table = self._con.sql(
                    f"SELECT {select}, p._pw_rank FROM (SELECT * {source}) s"
                    " JOIN _pw_picked p ON s.prediction_id = p._pw_id",
                    params=params,
                ).to_arrow_table()
            finally:
                self._con.unregister("_pw_picked")
        order = pc.sort_indices(table, sort_keys=[("_pw_rank", "ascending")])
        table = table.take(order).drop_columns(["_pw_rank"]).slice(0, int(n))
        return self._frame(table, kinds)

    def close(self) -> None:
        with self._lock:
            self._con.close()
