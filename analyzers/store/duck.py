"""Aggregates in DuckDB SQL over a "window table": one row per prediction, logical column names.

A window table has the columns ``prediction_id``, ``timestamp`` (TIMESTAMPTZ), ``model_version``,
``entity_id``, ``outcome``, ``error_type``, ``error_message``, ``score``, ``latency_ms``,
``sample_rate`` (DOUBLE), ``_w`` (the weight ``1 / sample_rate``), and JSON-text columns (a value as
JSON writes it, NULL when missing) for ``prediction``, ``label``, every ``features.<name>`` and
``groups.<name>``.  JSON text keeps ``1``, ``"1"`` and ``true`` apart; numeric reads cast it.
Both the local log-file store and the reference-file store produce such tables, so the SQL is
written once, here.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analyzers.config.models import DEFAULT_MEMORY_LIMIT
from analyzers.stats.binning import bin_counts
from analyzers.store.base import ROW_COLUMNS, ColumnInfo, ColumnKind, Histogram, NumericSummary, Query, StoreError
from logshipper.schema import FEATURE_PREFIX, GROUP_PREFIX

NUMERIC_COLUMNS = ("score", "latency_ms", "sample_rate")
_BATCH_ROWS = 131_072  # rows per Arrow batch when a pass over the window is binned in Python
_SLICE_ROWS = 100_000  # rows() sorts at most about this many rows at a time (or one hour, when it holds more)
JSON_COLUMNS = ("prediction", "label")


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
        self._lock = threading.RLock()
        # Window tables never change once built (a changed file makes a new one), so what they hold is kept.
        self._columns_seen: dict[tuple[str, tuple[Any, ...]], list[ColumnInfo]] = {}
        self._described: dict[str, list[str]] = {}

    # ---- what subclasses provide --------------------------------------------------------
    def _table(self, query: Query) -> str:
        """Name of the window table that holds the query's window (filters not yet applied)."""
        raise NotImplementedError

    def _table_columns(self, table: str) -> list[str]:
        with self._lock:
            if table not in self._described:
                self._described[table] = [r[0] for r in self._con.execute(f"DESCRIBE {table}").fetchall()]
            return self._described[table]

    # ---- filters ------------------------------------------------------------------------
    def _where(self, query: Query, table: str) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        cols = set(self._table_columns(table))

        def any_of(column: str, values: Sequence[Any]) -> None:
            if column not in cols:
                clauses.append("FALSE")
                return
            clauses.append(f"{quote(column)} IN ({', '.join('?' for _ in values)})")
            params.extend(values)

        if query.model_versions is not None:
            any_of("model_version", query.model_versions)
        if query.entity_ids is not None:
            any_of("entity_id", query.entity_ids)
        if query.prediction_ids is not None:
            any_of("prediction_id", query.prediction_ids)
        for attribute, values in (query.groups or {}).items():
            any_of(GROUP_PREFIX + attribute, [orjson.dumps(v).decode() for v in values])
        if query.outcome is not None:
            clauses.append("outcome = ?")
            params.append(query.outcome)
        if query.has_label is not None:
            if "label" in cols:
                clauses.append("label IS NOT NULL" if query.has_label else "label IS NULL")
            elif query.has_label:
                clauses.append("FALSE")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _source(self, query: Query) -> tuple[str, list[Any], set[str]]:
        """``FROM ... WHERE ...`` for the query, its parameters and the table's columns."""
        table = self._table(query)
        where, params = self._where(query, table)
        return f"FROM {table}{where}", params, set(self._table_columns(table))

    def _num(self, column: str, cols: set[str]) -> str:
        if column not in cols:
            return "CAST(NULL AS DOUBLE)"
        if column in NUMERIC_COLUMNS:
            return f"CASE WHEN isfinite({quote(column)}) THEN {quote(column)} END"
        return f"TRY_CAST({quote(column)} AS DOUBLE)"

    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._con.execute(sql, params).fetchall()
            except duckdb.Error as exc:
                raise StoreError(f"query failed: {exc}") from exc

    # ---- Store methods ----------------------------------------------------------------------
    def columns(self, query: Query) -> list[ColumnInfo]:
        source, params, cols = self._source(query)
        key = (source, tuple(params))
        if key not in self._columns_seen:
            if len(self._columns_seen) > 256:
                self._columns_seen.clear()
            self._columns_seen[key] = self._columns(query, source, params, cols)
        return list(self._columns_seen[key])

    def _columns(self, query: Query, source: str, params: list[Any], cols: set[str]) -> list[ColumnInfo]:
        wanted = [
            c
            for c in self._table_columns(self._table(query))
            if c.startswith((FEATURE_PREFIX, GROUP_PREFIX)) or c in ("prediction", "score", "label")
        ]
        if not wanted:
            return []
        parts = []
        for c in wanted:
            parts.append(f"sum(CASE WHEN {quote(c)} IS NOT NULL THEN _w ELSE 0 END)")
            parts.append(f"count({quote(c)})")
            parts.append(f"count({self._num(c, cols)})")
        row = self._fetch(f"SELECT {', '.join(parts)} {source}", params)[0]
        out = []
        for i, c in enumerate(wanted):
            weighted, present, numeric = row[3 * i], row[3 * i + 1], row[3 * i + 2]
            if not present:
                continue
            kind: ColumnKind = "numeric" if (present == numeric and not c.startswith(GROUP_PREFIX)) else "categorical"
            out.append(ColumnInfo(c, kind, float(weighted or 0.0)))
        return out

    def count(self, query: Query) -> float:
        source, params, _ = self._source(query)
        return float(self._fetch(f"SELECT coalesce(sum(_w), 0) {source}", params)[0][0])

    def numeric_summary(self, query: Query, column: str) -> NumericSummary:
        return self.numeric_summaries(query, [column])[column]

    def numeric_summaries(self, query: Query, columns: Sequence[str]) -> dict[str, NumericSummary]:
        """Every column's summary in one pass over the window."""
        if not columns:
            return {}
        source, params, cols = self._source(query)
        parts = []
        for i in range(len(columns)):
            v, present = f"v{i}", f"CASE WHEN v{i} IS NOT NULL THEN _w END"
            parts += [
                f"coalesce(sum({present}), 0)",
                f"coalesce(sum(CASE WHEN {v} IS NULL THEN _w END), 0)",
                f"sum(_w * {v}) / nullif(sum({present}), 0)",
                f"sum(_w * {v} * {v}) / nullif(sum({present}), 0)",
                f"min({v})",
                f"max({v})",
            ]
        inner = ", ".join(f"{self._num(c, cols)} AS v{i}" for i, c in enumerate(columns))
        row = self._fetch(f"SELECT {', '.join(parts)} FROM (SELECT {inner}, _w {source})", params)[0]
        out = {}
        for i, column in enumerate(columns):
            n, missing, mean, mean_sq, lo, hi = row[6 * i : 6 * i + 6]
            std = None if mean is None else float(np.sqrt(max(mean_sq - mean * mean, 0.0)))
            out[column] = NumericSummary(float(n), float(missing), mean, std, lo, hi)
        return out

    def category_counts(self, query: Query, column: str) -> dict[Any, float]:
        source, params, cols = self._source(query)
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

    def histogram(self, query: Query, column: str, edges: Sequence[float]) -> Histogram:
        return self.histograms(query, {column: edges})[column]

    def histograms(self, query: Query, edges: Mapping[str, Sequence[float]]) -> dict[str, Histogram]:
        """Every column's histogram in one streamed pass: values arrive in Arrow batches and are binned
        with numpy (``bin_counts``), so memory holds one batch whatever the window's size."""
        bins = {column: _edges(e) for column, e in edges.items()}
        if not bins:
            return {}
        source, params, cols = self._source(query)
        names = list(bins)
        full = {c: np.zeros(len(bins[c]) + 1) for c in names}  # [underflow, counts..., overflow]
        missing = dict.fromkeys(names, 0.0)
        inner = ", ".join(f"{self._num(c, cols)} AS v{i}" for i, c in enumerate(names))
        with self._lock:
            cursor = self._con.cursor()
        try:
            reader = cursor.sql(f"SELECT {inner}, _w {source}", params=params).to_arrow_reader(_BATCH_ROWS)
            for batch in reader:
                weight = batch.column(len(names)).to_numpy(zero_copy_only=False)
                unweighted = bool(np.all(weight == 1.0))
                for i, column in enumerate(names):
                    x = batch.column(i).to_numpy(zero_copy_only=False).astype(float)
                    absent = np.isnan(x)
                    missing[column] += float(weight[absent].sum())
                    full[column] += bin_counts(x, bins[column], None if unweighted else weight)
        except duckdb.Error as exc:
            raise StoreError(f"histogram failed: {exc}") from exc
        finally:
            cursor.close()
        return {c: Histogram(bins[c], full[c][1:-1], full[c][0], full[c][-1], missing[c]) for c in names}

    def quantiles(self, query: Query, column: str, qs: Sequence[float]) -> list[float | None]:
        if any(not 0.0 <= q <= 1.0 for q in qs):
            raise ValueError("quantiles must lie in [0, 1]")
        if not qs:
            return []
        source, params, cols = self._source(query)
        x = self._num(column, cols)
        inner = f"(SELECT {x} AS v, _w {source}) WHERE v IS NOT NULL"
        uniform = self._fetch(f"SELECT count(DISTINCT _w) <= 1 FROM {inner}", params)[0][0]
        if uniform:
            q_list = "[" + ", ".join(repr(float(q)) for q in qs) + "]"
            (values,) = self._fetch(f"SELECT quantile_cont(v, {q_list}) FROM {inner}", params)[0]
            return [None] * len(qs) if values is None else [float(v) for v in values]
        # Weighted: the smallest value whose cumulative weight share reaches q.
        rows = self._fetch(
            f"SELECT v, sum(_w) OVER (ORDER BY v ROWS UNBOUNDED PRECEDING) / sum(_w) OVER () FROM {inner} ORDER BY v",
            params,
        )
        if not rows:
            return [None] * len(qs)
        values = np.array([r[0] for r in rows])
        shares = np.array([r[1] for r in rows])
        idx = np.searchsorted(shares, np.asarray(qs, dtype=float) - 1e-12, side="left")
        return [float(values[min(i, len(values) - 1)]) for i in idx]

    def crosstab(self, query: Query, columns: Sequence[str]) -> pd.DataFrame:
        if not columns:
            raise ValueError("crosstab needs at least one column")
        source, params, cols = self._source(query)
        exprs = [quote(c) if c in cols else f"CAST(NULL AS VARCHAR) AS {quote(c)}" for c in columns]
        sql = f"SELECT {', '.join(exprs)}, sum(_w) AS count {source} GROUP BY ALL"
        rows = self._fetch(sql, params)
        json_cols = [c in JSON_COLUMNS or c.startswith((FEATURE_PREFIX, GROUP_PREFIX)) for c in columns]
        data = [
            [decode(v) if js else v for v, js in zip(row[:-1], json_cols, strict=True)] + [float(row[-1])]
            for row in rows
        ]
        frame = pd.DataFrame(data, columns=[*columns, "count"])
        return frame.astype({c: object for c in columns}) if len(frame) else frame

    def volume(self, query: Query, bucket: timedelta) -> pd.DataFrame:
        seconds = bucket.total_seconds()
        if seconds <= 0:
            raise ValueError("volume bucket must be positive")
        source, params, _ = self._source(query)
        start = query.window.start
        n_buckets = int(np.ceil(query.window.length.total_seconds() / seconds))
        rows = self._fetch(
            f"SELECT CAST(floor((epoch(timestamp) - ?) / ?) AS BIGINT) AS b, sum(_w),"
            f" sum(CASE WHEN outcome = 'failure' THEN _w ELSE 0 END) {source} GROUP BY 1",
            [start.timestamp(), seconds, *params],
        )
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
    def _frame(table: pa.Table, kinds: Mapping[str, str]) -> pd.DataFrame:
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
        source, params, cols = self._source(query)
        names = self._select_list(columns, cols)
        kinds = {c.name: c.kind for c in self.columns(query)}
        select = self._select_sql(names, cols)
        with self._lock:
            cursor = self._con.cursor()
        pending: list[pa.Table] = []
        held = 0
        keys = [("_pw_ts", "ascending"), ("_pw_id", "ascending")]
        try:
            # Sorting a whole window would hold it in memory: each slice of time is read and sorted on its
            # own, by Arrow, so DuckDB only streams and its working memory stays within its limit.
            for clause, slice_params in self._time_slices(cursor, source, params, max(chunk_size, _SLICE_ROWS)):
                sql = (
                    f"SELECT {select}, timestamp AS _pw_ts, prediction_id AS _pw_id"
                    f" FROM (SELECT * {source}) WHERE {clause}"
                )
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
        except duckdb.Error as exc:
            raise StoreError(f"reading rows failed: {exc}") from exc
        finally:
            cursor.close()

    @staticmethod
    def _time_slices(
        cursor: duckdb.DuckDBPyConnection, source: str, params: list[Any], rows: int
    ) -> Iterator[tuple[str, list[Any]]]:
        """Consecutive ranges of whole hours holding about ``rows`` rows each (filter and parameters)."""
        hours = cursor.execute(
            f"SELECT date_trunc('hour', timestamp) AS h, count(*) {source} GROUP BY 1 ORDER BY 1 NULLS LAST", params
        ).fetchall()
        start, held = None, 0
        for i, (hour, n) in enumerate(hours):
            if hour is None:
                yield "timestamp IS NULL", []
                continue
            start = hour if start is None else start
            held += n
            following = hours[i + 1][0] if i + 1 < len(hours) else None
            if held >= rows or following is None:
                end = hour + timedelta(hours=1)
                yield "timestamp >= ? AND timestamp < ?", [start, end]
                start, held = None, 0

    def sample(self, query: Query, n: int, seed: int = 0, columns: Sequence[str] | None = None) -> pd.DataFrame:
        source, params, cols = self._source(query)
        names = self._select_list(columns, cols)
        kinds = {c.name: c.kind for c in self.columns(query)}
        salt = f"#{int(seed)}"
        picking = f"SELECT prediction_id AS _pw_id {source} ORDER BY hash(prediction_id || ?), prediction_id LIMIT ?"
        with self._lock:
            try:
                # The ids are picked on one narrow column, then only the picked rows are read in full and
                # put in the picked order by Arrow: DuckDB never holds a wide top-n within its memory budget.
                picked = self._con.sql(picking, params=[*params, salt, int(n)]).to_arrow_table()
                picked = picked.append_column("_pw_rank", pa.array(np.arange(picked.num_rows)))
                self._con.register("_pw_picked", picked)
                try:
                    table = self._con.sql(
                        f"SELECT {self._select_sql(names, cols)}, p._pw_rank FROM (SELECT * {source}) s"
                        " JOIN _pw_picked p ON s.prediction_id = p._pw_id",
                        params=params,
                    ).to_arrow_table()
                finally:
                    self._con.unregister("_pw_picked")
            except duckdb.Error as exc:
                raise StoreError(f"sample failed: {exc}") from exc
        order = pc.sort_indices(table, sort_keys=[("_pw_rank", "ascending")])
        table = table.take(order).drop_columns(["_pw_rank"]).slice(0, int(n))
        return self._frame(table, kinds)

    def close(self) -> None:
        with self._lock:
            self._con.close()
