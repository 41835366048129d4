"""``ElasticsearchStore``: the ``Store`` interface wired onto the connection, mapping, profile, label join and
result modules.

Where each answer comes from:

- Aggregates over predictions are Elasticsearch aggregations (:mod:`aggregates`, :mod:`profile`); a count is
  taken from the query's volume when that was read (the coverage check reads it first); the column
  profile of a query (presence, numeric summaries, categories) is one search, reused by ``columns``,
  ``numeric_summaries`` and ``category_counts`` of that query for ``CACHE_TTL`` seconds.
- Anything that involves the label (the ``label`` column, ``has_label``) is computed here over the window's
  labelled predictions (:mod:`labels`), read once per job; ``has_label=False`` is the whole minus the
  labelled part where that is exact (counts), and the predictions read back otherwise.
- A column Elasticsearch cannot aggregate as one type is aggregated here from its values (:mod:`rowset`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from analyzers.config.models import ElasticsearchStoreConfig
from analyzers.findings import Finding
from analyzers.stats.sampling import SampleSize
from analyzers.store.base import (
    BucketedHistograms,
    ColumnInfo,
    ColumnKind,
    DeadLetterPile,
    Histogram,
    NumericSummary,
    QualityReport,
    Query,
    Store,
)
from analyzers.store.elastic import aggregates, alert_state, deadletters, labels, limits, profile, rows
from analyzers.store.elastic import findings as monitor_findings
from analyzers.store.elastic import quality as data_quality
from analyzers.store.elastic.connection import Connection, client_from_config, deadline
from analyzers.store.elastic.mapping import Field, Mappings
from analyzers.store.elastic.rowset import Counts, RowSet, table
from analyzers.timeutil import Window
from elasticsearch import Elasticsearch
from logshipper.schema import FEATURE_PREFIX, GROUP_PREFIX, column_path

T = TypeVar("T")
_OUTPUTS = ("prediction", "score", "label")


def _key(query: Query) -> str:
    """The query's identity for the caches (``has_label`` aside: the caches hold the whole query's answers)."""
    groups = {k: list(v) for k, v in sorted((query.groups or {}).items())}
    return json.dumps(
        [
            query.model,
            query.window.to_dict(),
            query.model_versions,
            query.entity_ids,
            query.prediction_ids,
            groups,
            query.outcome,
        ],
        default=str,
    )


class _Cache:
    """Answers kept for ``CACHE_TTL`` seconds (the length of a job), at most ``CACHE_ENTRIES`` of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str, build: Callable[[], T]) -> T:
        with self._lock:
            found = self._items.get(key)
            if found and time.monotonic() - found[0] < limits.CACHE_TTL:
                return found[1]  # type: ignore[no-any-return]
        value = build()
        self.put(key, value)
        return value

    def peek(self, key: str) -> Any:
        with self._lock:
            found = self._items.get(key)
            return found[1] if found and time.monotonic() - found[0] < limits.CACHE_TTL else None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._items[key] = (time.monotonic(), value)
            self._items.move_to_end(key)
            while len(self._items) > limits.CACHE_ENTRIES:
                self._items.popitem(last=False)


def _order(name: str) -> tuple[bool, str]:
    return (name.startswith((FEATURE_PREFIX, GROUP_PREFIX)), name)


def _subtract(whole: Mapping[Any, float], part: Mapping[Any, float]) -> dict[Any, float]:
    out = {k: v - part.get(k, 0.0) for k, v in whole.items()}
    return {k: v for k, v in out.items() if v > 1e-9}


class ElasticsearchStore(Store):
    """Predictions and feedback from Elasticsearch daily indices; findings and alert state written back to it."""

    def __init__(
        self,
        client: Elasticsearch,
        hosts: Sequence[str] | None = None,
        *,
        owns_client: bool = False,
        request_timeout: float = 30.0,
        max_retries: int = 5,
    ) -> None:
        self._conn = Connection(client, hosts, request_timeout=request_timeout, max_retries=max_retries)
        self._owns = owns_client
        self.where = self._conn.where
        self._mappings = Mappings(self._conn)
        self._joins = labels.LabelJoins(self._conn)
        self._profiles = _Cache()
        self._facts = _Cache()
        self._scans = _Cache()
        self._sizes = _Cache()
        self._state_index_ready = False

    @classmethod
    def from_config(cls, cfg: ElasticsearchStoreConfig, config_dir: Path | None = None) -> ElasticsearchStore:
        """A client with the configured auth, TLS (CA file relative to the config file) and time budget."""
        return cls(
            client_from_config(cfg, config_dir),
            cfg.hosts,
            owns_client=True,
            request_timeout=cfg.request_timeout,
            max_retries=cfg.max_retries,
        )

    def budget(self, seconds: float) -> contextlib.AbstractContextManager[None]:
        """Every request made by this thread inside the block ends within ``seconds`` (a job's timeout)."""
        return deadline(seconds)

    # ---- what each answer is built from ---------------------------------------------------------------
    def _fields(self, query: Query) -> dict[str, Field]:
        return self._mappings.columns(query)

    def _profile(self, query: Query) -> profile.Profile:
        base = query.with_(has_label=None)

        def build() -> profile.Profile:
            found = profile.profile(self._conn, base, self._fields(base))
            self._facts.put(self._window_key(base), found.facts)
            return found

        return self._profiles.get(_key(base), build)

    @staticmethod
    def _window_key(query: Query) -> str:
        return json.dumps([query.model, query.window.to_dict()])

    def _window_facts(self, query: Query) -> profile.WindowFacts:
        return self._facts.get(self._window_key(query), lambda: profile.window_facts(self._conn, query))

    def _labelled(self, query: Query, columns: Sequence[str] = ()) -> RowSet:
        """The query's labelled predictions (with these columns read too)."""
        window = self._joins.get(query, lambda: self._window_facts(query))
        if columns:
            labels.add_columns(self._conn, query, window, [c for c in columns if c != "label"])
        return window.rows.select(query)

    def _label_kind(self, query: Query) -> ColumnKind:
        return self._joins.get(query, lambda: self._window_facts(query)).label_kind

    def _scanned(self, query: Query, column: str) -> RowSet:
        base = query.with_(has_label=None)
        return self._scans.get(_key(base) + column, lambda: rows.rowset(self._conn, base, [column]))

    def _unlabelled(self, query: Query, columns: Sequence[str]) -> RowSet:
        """The query's predictions without feedback, with these columns, read back (for what cannot be
        computed as the whole minus the labelled part)."""
        base = query.with_(has_label=None)
        labelled = {str(p) for p in self._labelled(base).values("prediction_id")}
        return rows.rowset(self._conn, base, [c for c in columns if c != "label"]).without(labelled)

    def _total(self, query: Query) -> float:
        """The query's weighted count: from its profile or its volume when either was read, else one search."""
        base = query.with_(has_label=None)
        cached = self._profiles.peek(_key(base))
        if cached is not None:
            return float(cached.total)
        return self._size(base).weighted

    # ---- aggregates ---------------------------------------------------------------------------------
    def count(self, query: Query) -> float:
        if query.has_label is None:
            return self._total(query)
        labelled = self._labelled(query).count()
        return labelled if query.has_label else max(self._total(query) - labelled, 0.0)

    def _size(self, query: Query) -> SampleSize:
        base = query.with_(has_label=None)
        return self._sizes.get(_key(base), lambda: aggregates.sample_size(self._conn, base))

    def sample_size(self, query: Query) -> SampleSize:
        if query.has_label is None:
            return self._size(query)
        labelled = self._labelled(query).sample_size()
        if query.has_label:
            return labelled
        whole = self._size(query)
        return SampleSize(
            max(whole.weighted - labelled.weighted, 0.0),
            max(whole.squares - labelled.squares, 0.0),
            max(whole.rows - labelled.rows, 0.0),
        )

    def columns(self, query: Query) -> list[ColumnInfo]:
        fields = {
            n: f
            for n, f in self._fields(query).items()
            if n in _OUTPUTS or n.startswith((FEATURE_PREFIX, GROUP_PREFIX))
        }
        if query.has_label is True:  # the labelled predictions' own values say each column's kind
            labelled = self._labelled(query, list(fields))
            found = [
                ColumnInfo(n, "categorical" if n.startswith(GROUP_PREFIX) else labelled.kind(n), labelled.present(n))
                for n in fields
            ]
            found.append(ColumnInfo("label", labelled.kind("label"), labelled.present("label")))
            return sorted((c for c in found if c.count > 0), key=lambda c: _order(c.name))
        prof = self._profile(query)
        labelled = self._labelled(query, list(fields) if query.has_label is False else [])
        out = []
        for name, field in fields.items():
            column = prof.columns[name]
            present = column.present
            if query.has_label is False:
                present -= labelled.present(name)
            kind = self._scanned(query, name).kind(name) if column.scanned else field.kind
            out.append(ColumnInfo(name, "categorical" if name.startswith(GROUP_PREFIX) else kind, present))
        if query.has_label is None:
            out.append(ColumnInfo("label", self._label_kind(query), labelled.present("label")))
        return sorted((c for c in out if c.count > 1e-9), key=lambda c: _order(c.name))

    def _numeric(self, query: Query, name: str, field: Field) -> bool:
        """Whether a mapped column is numeric (a column with values set aside is not)."""
        if field.kind != "numeric":
            return False
        column = self._profile(query).columns.get(name)
        return column is None or not column.scanned or self._scanned(query, name).kind(name) == "numeric"

    def numeric_summaries(self, query: Query, columns: Sequence[str]) -> dict[str, NumericSummary]:
        if query.has_label is True:
            labelled = self._labelled(query, columns)
            return {c: labelled.numeric_summary(c) for c in columns}
        if query.has_label is False:
            unlabelled = self._unlabelled(query, columns)
            return {c: unlabelled.numeric_summary(c) for c in columns}
        fields = self._fields(query)
        prof = self._profile(query)
        out: dict[str, NumericSummary] = {}
        for column in columns:
            column_path(column)
            if column == "label":
                s = self._labelled(query).numeric_summary("label")
                out[column] = NumericSummary(s.count, max(prof.total - s.count, 0.0), s.mean, s.std, s.min, s.max)
            elif column not in fields or column not in prof.columns:
                out[column] = NumericSummary(0.0, prof.total, None, None, None, None)
            elif prof.columns[column].scanned:
                out[column] = self._scanned(query, column).numeric_summary(column)
            else:
                summary = prof.columns[column].summary
                out[column] = (
                    summary if summary is not None else NumericSummary(0.0, prof.total, None, None, None, None)
                )
        return out

    def numeric_summary(self, query: Query, column: str) -> NumericSummary:
        return self.numeric_summaries(query, [column])[column]

    def category_counts(self, query: Query, column: str) -> dict[Any, float]:
        column_path(column)
        if query.has_label is True:
            return self._labelled(query, [column]).category_counts(column)
        whole = self._all_category_counts(query, column)
        if query.has_label is None:
            return whole
        return _subtract(whole, self._labelled(query, [column]).category_counts(column))

    def _all_category_counts(self, query: Query, column: str) -> dict[Any, float]:
        base = query.with_(has_label=None)
        if column == "label":
            counts = {k: v for k, v in self._labelled(base).category_counts("label").items() if k is not None}
            missing = self._total(base) - sum(counts.values())
            return {**counts, None: missing} if missing > 1e-9 else counts
        fields = self._fields(base)
        if column not in fields:
            total = self._total(base)
            return {None: total} if total else {}
        prof = self._profile(base)
        found = prof.columns.get(column)
        if found is not None and found.scanned:
            return self._scanned(base, column).category_counts(column)
        if found is not None and found.categories is not None:
            return dict(found.categories)
        return aggregates.category_counts(self._conn, base, column, fields)

    def histograms(self, query: Query, edges: Mapping[str, Sequence[float]]) -> dict[str, Histogram]:
        arrays = {c: aggregates.histogram_edges(e) for c, e in edges.items()}
        for column in arrays:
            column_path(column)
        if query.has_label is True:
            labelled = self._labelled(query, list(arrays))
            return {c: labelled.histogram(c, e) for c, e in arrays.items()}
        whole = self._all_histograms(query.with_(has_label=None), arrays)
        if query.has_label is None:
            return whole
        labelled = self._labelled(query, list(arrays))
        out = {}
        for column, hist in whole.items():
            part = labelled.histogram(column, arrays[column])
            out[column] = Histogram(
                hist.edges,
                np.maximum(hist.counts - part.counts, 0.0),
                max(hist.underflow - part.underflow, 0.0),
                max(hist.overflow - part.overflow, 0.0),
                max(hist.missing - part.missing, 0.0),
            )
        return out

    def _all_histograms(self, query: Query, arrays: dict[str, np.ndarray]) -> dict[str, Histogram]:
        fields = self._fields(query)
        prof = self._profiles.peek(_key(query))
        local: dict[str, Histogram] = {}
        for column, edges in arrays.items():
            if column == "label":
                labelled = self._labelled(query)
                hist = labelled.histogram("label", edges)
                local[column] = Histogram(
                    edges, hist.counts, hist.underflow, hist.overflow, self._total(query) - labelled.present("label")
                )
            elif (column in fields and not fields[column].exact) or (
                prof is not None and column in prof.columns and prof.columns[column].scanned
            ):
                local[column] = self._scanned(query, column).histogram(column, edges)
        searched = {c: e for c, e in arrays.items() if c not in local}
        found = aggregates.histograms(self._conn, query, searched, fields) if searched else {}
        return {c: local[c] if c in local else found[c] for c in arrays}

    def histogram(self, query: Query, column: str, edges: Sequence[float]) -> Histogram:
        return self.histograms(query, {column: edges})[column]

    def bucketed_histograms(
        self, query: Query, column: str, edges: Sequence[float], *, bucket: timedelta, by: str | None = None
    ) -> BucketedHistograms:
        """One composite aggregation over the whole query; the labelled part from the label join (subtracted for
        ``has_label=False``); the rows read back when the label or a column Elasticsearch cannot aggregate
        as one type is involved."""
        edges_arr = aggregates.histogram_edges(edges)
        if bucket.total_seconds() <= 0:
            raise ValueError("histogram bucket must be positive")
        named = [column] if by is None else [column, by]
        for name in named:
            column_path(name)
        starts = aggregates.bucket_grid(query.window, bucket)

        def over(found: RowSet) -> BucketedHistograms:
            return found.bucketed(column, edges_arr, by=by, starts=starts, bucket=bucket)

        if query.has_label is True:
            return over(self._labelled(query, [*named, "timestamp"]))
        base = query.with_(has_label=None)
        fields = self._fields(base)
        prof = self._profiles.peek(_key(base))
        scanned = {n for n in named if prof is not None and n in prof.columns and prof.columns[n].scanned}
        local = "label" in named or any(n in fields and (not fields[n].exact or n in scanned) for n in named)
        if local:
            frames = list(self.rows(query, columns=[*named, "timestamp", "sample_rate"]))
            return over(RowSet(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()))
        whole = aggregates.bucketed_histograms(self._conn, base, column, edges_arr, fields=fields, bucket=bucket, by=by)
        if query.has_label is None:
            return whole
        return _without(whole, over(self._labelled(query, [*named, "timestamp"])))

    def quantiles(self, query: Query, column: str, qs: Sequence[float]) -> list[float | None]:
        """Exact over labelled or read-back rows; Elasticsearch's TDigest percentiles (approximate) otherwise."""
        if any(not 0.0 <= q <= 1.0 for q in qs):
            raise ValueError("quantiles must lie in [0, 1]")
        if not qs:
            return []
        column_path(column)
        if query.has_label is True or column == "label":
            return self._labelled(query, [column]).quantiles(column, qs)
        if query.has_label is False:
            return self._unlabelled(query, [column]).quantiles(column, qs)
        field = self._fields(query).get(column)
        if field is None or field.kind != "numeric":
            return [None] * len(qs)
        column_profile = self._profiles.peek(_key(query))
        if not field.exact or (column_profile is not None and column_profile.columns[column].scanned):
            return self._scanned(query, column).quantiles(column, qs)
        return aggregates.quantiles(self._conn, query, field, qs)

    def crosstab(self, query: Query, columns: Sequence[str]) -> pd.DataFrame:
        if not columns:
            raise ValueError("crosstab needs at least one column")
        for column in columns:
            column_path(column)
        base = query.with_(has_label=None)
        if query.has_label is True:
            return self._labelled(query, columns).crosstab(columns)
        others = [c for c in columns if c != "label"]
        needs_join = "label" in columns or query.has_label is False
        whole, whole_sq = self._counts(base, others)
        if not needs_join:
            return table(columns, whole, whole_sq)
        labelled = self._labelled(query, others)
        part, part_sq = labelled.tallies(others)
        unlabelled = _subtract(whole, part)
        unlabelled_sq = {k: max(whole_sq.get(k, 0.0) - part_sq.get(k, 0.0), 0.0) for k in unlabelled}
        if "label" not in columns:
            return table(columns, unlabelled, unlabelled_sq)
        counts: Counts = {}
        squares: Counts = {}
        position = columns.index("label")
        for key, value in unlabelled.items():
            full = (*key[:position], None, *key[position:])
            counts[full] = counts.get(full, 0.0) + value
            squares[full] = squares.get(full, 0.0) + unlabelled_sq[key]
        if query.has_label is None:
            with_label, with_label_sq = labelled.tallies(columns)
            for key, value in with_label.items():
                counts[key] = counts.get(key, 0.0) + value
                squares[key] = squares.get(key, 0.0) + with_label_sq[key]
        return table(columns, counts, squares)

    def _counts(self, query: Query, columns: list[str]) -> tuple[Counts, Counts]:
        """Weighted count and sum of squared weights per combination of values of the query's predictions (no
        label among the columns)."""
        if not columns:
            size = self._size(query)
            return ({(): size.weighted}, {(): size.squares}) if size.weighted else ({}, {})
        fields = self._fields(query)
        prof = self._profiles.peek(_key(query))
        scanned = [
            c
            for c in columns
            if c in fields and (not fields[c].exact or (prof is not None and prof.columns[c].scanned))
        ]
        if scanned:
            return rows.rowset(self._conn, query, columns).tallies(columns)
        return aggregates.composite_tallies(self._conn, query, columns, fields, "counting combinations")

    def volume(self, query: Query, bucket: timedelta) -> pd.DataFrame:
        if bucket.total_seconds() <= 0:
            raise ValueError("volume bucket must be positive")
        whole, size = aggregates.volume(self._conn, query.with_(has_label=None), query.window, bucket)
        self._sizes.put(_key(query.with_(has_label=None)), size)  # a count comes free
        if query.has_label is None:
            return whole
        part = _local_volume(self._labelled(query, ["outcome", "timestamp"]), query.window, bucket, whole["start"])
        if query.has_label:
            return part
        return whole.assign(
            count=np.maximum(whole["count"] - part["count"], 0.0),
            failures=np.maximum(whole["failures"] - part["failures"], 0.0),
        )

    # ---- rows -----------------------------------------------------------------------------------------
    def _row_plan(self, query: Query, columns: Sequence[str] | None) -> tuple[list[str], dict[str, ColumnKind]]:
        mapped = self._fields(query)
        names = rows.row_names(mapped, columns)
        kinds: dict[str, ColumnKind] = {}
        for name in names:
            field = mapped.get(name)
            if name == "label":
                kinds[name] = self._label_kind(query)
            elif field is not None and field.kind == "numeric":
                kinds[name] = "numeric" if self._numeric(query, name, field) else "categorical"
        return names, kinds

    def rows(
        self, query: Query, columns: Sequence[str] | None = None, chunk_size: int = 50_000
    ) -> Iterator[pd.DataFrame]:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        names, kinds = self._row_plan(query, columns)
        if query.has_label is True:
            return self._labelled_frames(query, names, kinds, chunk_size)
        base = query.with_(has_label=None)
        lookup = (
            self._joins.get(base, lambda: self._window_facts(base)).labels_of
            if "label" in names or query.has_label is False
            else None
        )
        if query.has_label is None:
            return rows.frames(self._conn, base, names, kinds, chunk_size, lookup)
        labelled = {str(p) for p in self._labelled(base).values("prediction_id")}

        def unlabelled(record: dict[str, Any]) -> bool:
            return str(record.get("prediction_id")) not in labelled

        read = names if "prediction_id" in names else [*names, "prediction_id"]
        return (f[names] for f in rows.frames(self._conn, base, read, kinds, chunk_size, lookup, unlabelled))

    def _labelled_frames(
        self, query: Query, names: list[str], kinds: dict[str, ColumnKind], chunk_size: int
    ) -> Iterator[pd.DataFrame]:
        labelled = self._labelled(query, [*names, "timestamp", "prediction_id"])
        records = labelled.frame.to_dict("records")
        for start in range(0, len(records), chunk_size):
            yield rows.frame(records[start : start + chunk_size], names, kinds)

    def sample(self, query: Query, n: int, seed: int = 0, columns: Sequence[str] | None = None) -> pd.DataFrame:
        names, kinds = self._row_plan(query, columns)
        if n <= 0:
            return rows.frame([], names, kinds)
        if query.has_label is True:
            labelled = self._labelled(query, names)
            order = np.argsort([_seeded(seed, p) for p in labelled.values("prediction_id")], kind="stable")
            picked = labelled.frame.iloc[order[:n]].sort_index()
            return rows.frame(picked.to_dict("records"), names, kinds)
        base = query.with_(has_label=None)
        label_window = (
            self._joins.get(base, lambda: self._window_facts(base))
            if "label" in names or query.has_label is False
            else None
        )
        lookup = label_window.labels_of if label_window is not None else None
        if query.has_label is None:
            return rows.sample(self._conn, base, n, seed, names, kinds, lookup)
        assert label_window is not None
        labelled_ids = set(label_window.prediction_ids)
        read = [*names, "prediction_id"] if "prediction_id" not in names else names
        wide = rows.sample(self._conn, base, n + len(labelled_ids), seed, read, kinds, lookup)
        kept = wide[~wide["prediction_id"].astype(str).isin(labelled_ids)].head(n)
        return kept[names].reset_index(drop=True)

    # ---- findings and alert state -----------------------------------------------------------------
    def write_findings(self, findings: Sequence[Finding]) -> None:
        monitor_findings.write(self._conn, findings)

    def read_findings(
        self, model: str | None = None, job: str | None = None, since: Any = None, until: Any = None
    ) -> list[Finding]:
        return monitor_findings.read(self._conn, model, job, since, until)

    def get_state(self, key: str) -> tuple[dict[str, Any], Any] | None:
        return alert_state.get(self._conn, key)

    def put_state(self, key: str, doc: dict[str, Any], version: Any = None) -> Any:
        if not self._state_index_ready:  # created with its mapping on first write
            alert_state.create_index(self._conn)
            self._state_index_ready = True
        return alert_state.put(self._conn, key, doc, version)

    def delete_state(self, key: str, version: Any = None) -> None:
        alert_state.delete(self._conn, key, version)

    def list_state(self, prefix: str = "") -> dict[str, tuple[dict[str, Any], Any]]:
        return alert_state.list_all(self._conn, prefix)

    # ---- data quality -------------------------------------------------------------------------------
    def quality(self, query: Query) -> QualityReport:
        """The model's documents in the window, those with values the mapping set aside (per column), and the
        window's dead letters that name the model or no model, by reason (see :mod:`quality`)."""
        window = Query(query.model, query.window)
        lines = data_quality.model_lines(self._conn, window, self._fields(window))
        return data_quality.report(lines, deadletters.report(self._conn, query.window, query.model))

    # ---- housekeeping -------------------------------------------------------------------------------
    def dead_letters(self, window: Window) -> deadletters.DeadLetters:
        """What the dead-letter alias holds: its size, and the window's rejected lines by reason."""
        return deadletters.report(self._conn, window)

    def dead_letter_pile(self) -> DeadLetterPile:
        return deadletters.pile(self._conn)

    def close(self) -> None:
        if self._owns:
            self._conn.es.close()


def _seeded(seed: int, prediction_id: Any) -> int:
    """A prediction's place in a seeded shuffle, the same in every process."""
    return int.from_bytes(hashlib.blake2b(f"{seed}|{prediction_id}".encode(), digest_size=8).digest(), "big")


def _local_volume(labelled: RowSet, window: Window, bucket: timedelta, starts: pd.Series) -> pd.DataFrame:
    """Weighted labelled predictions and failures per bucket of the window (the buckets ``starts`` gives)."""
    counts = np.zeros(len(starts))
    failures = np.zeros(len(starts))
    seconds = bucket.total_seconds()
    times = pd.to_datetime(labelled.values("timestamp"), utc=True, format="ISO8601")
    for when, w, outcome in zip(times, labelled.weights(), labelled.values("outcome"), strict=True):
        i = int((when - window.start).total_seconds() // seconds)
        if 0 <= i < len(starts):
            counts[i] += w
            failures[i] += w if outcome == "failure" else 0.0
    return pd.DataFrame({"start": starts, "count": counts, "failures": failures})


def _without(whole: BucketedHistograms, part: BucketedHistograms) -> BucketedHistograms:
    """``whole`` minus ``part`` (both over the same buckets and edges), keys left empty dropped."""
    position = {k: i for i, k in enumerate(whole.keys)}
    counts, squares, missing = whole.counts.copy(), whole.weight_sq.copy(), whole.missing.copy()
    for j, key in enumerate(part.keys):
        i = position.get(key)
        if i is not None:
            counts[:, i] = np.maximum(counts[:, i] - part.counts[:, j], 0.0)
            squares[:, i] = np.maximum(squares[:, i] - part.weight_sq[:, j], 0.0)
            missing[:, i] = np.maximum(missing[:, i] - part.missing[:, j], 0.0)
    kept = [i for i in range(len(whole.keys)) if counts[:, i].sum() + missing[:, i].sum() > 1e-9]
    return BucketedHistograms(
        whole.starts, whole.edges, [whole.keys[i] for i in kept], counts[:, kept], squares[:, kept], missing[:, kept]
    )
