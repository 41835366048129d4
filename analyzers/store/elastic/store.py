"""``ElasticsearchStore``: the ``Store`` interface wired onto the connection, mapping, feedback and result modules."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from analyzers.config.models import ElasticsearchStoreConfig
from analyzers.findings import Finding
from analyzers.stats.sampling import SampleSize
from analyzers.store.base import ColumnInfo, ColumnKind, Histogram, NumericSummary, QualityReport, Query, Store
from analyzers.store.elastic import aggregates, alert_state, limits, queries, rows, templates
from analyzers.store.elastic import findings as monitor_findings
from analyzers.store.elastic.connection import Connection, client_from_config
from analyzers.store.elastic.indices import window_indices
from analyzers.store.elastic.labels import Feedback
from analyzers.store.elastic.mapping import Mappings
from elasticsearch import Elasticsearch
from logshipper.schema import PREDICTION_ID, TIMESTAMP


class ElasticsearchStore(Store):
    """Predictions from Elasticsearch daily indices; findings and alert state written back to it."""

    def __init__(self, client: Elasticsearch, hosts: Sequence[str] | None = None, *, owns_client: bool = False) -> None:
        self._conn = Connection(client, hosts)
        self._owns = owns_client
        self.where = self._conn.where
        self._mappings = Mappings(self._conn)
        self._feedback = Feedback(self._conn)
        self._state_index_ready = False

    @classmethod
    def from_config(cls, cfg: ElasticsearchStoreConfig, config_dir: Path | None = None) -> ElasticsearchStore:
        """A client with the configured auth, TLS (CA file relative to the config file) and retries."""
        return cls(client_from_config(cfg, config_dir), cfg.hosts, owns_client=True)

    def _context(self, query: Query, needs_label: bool = False) -> queries.Context:
        fields = self._mappings.columns(query)
        labels = self._feedback.window_labels(query) if needs_label or query.has_label is not None else None
        return queries.context(query, window_indices(query.model, query.window), fields, labels)

    def quality(self, query: Query) -> QualityReport:
        """The window's documents, none set aside yet: a line shipped twice is stored once (its id is the ``_id``),
        and the documents the cluster refused (the dead-letter index) are not read here yet."""
        ctx = self._context(Query(query.model, query.window))
        answer = self._conn.call(
            f"counting lines over {ctx.indices}",
            lambda: self._conn.es.search(**ctx.search_args(), size=0, track_total_hits=True),
        )
        return QualityReport(int(((answer.get("hits") or {}).get("total") or {}).get("value") or 0))

    # ---- aggregates ---------------------------------------------------------------------------
    def count(self, query: Query) -> float:
        return aggregates.count(self._conn, self._context(query))

    def sample_size(self, query: Query) -> SampleSize:
        return aggregates.sample_size(self._conn, self._context(query))

    def columns(self, query: Query) -> list[ColumnInfo]:
        return aggregates.columns(self._conn, self._context(query, needs_label=True))

    def numeric_summary(self, query: Query, column: str) -> NumericSummary:
        return aggregates.numeric_summary(self._conn, self._context(query, needs_label=column == "label"), column)

    def category_counts(self, query: Query, column: str) -> dict[Any, float]:
        table = self.crosstab(query, [column])
        return {(None if v is None else v): float(c) for v, c in zip(table[column], table["count"], strict=True)}

    def histogram(self, query: Query, column: str, edges: Sequence[float]) -> Histogram:
        edges_arr = aggregates.histogram_edges(edges)
        ctx = self._context(query, needs_label=column == "label")
        return aggregates.histogram(self._conn, ctx, column, edges_arr)

    def quantiles(self, query: Query, column: str, qs: Sequence[float]) -> list[float | None]:
        """TDigest percentiles per sample-rate stratum, mixed by weight: approximate, as Elasticsearch's are."""
        if any(not 0.0 <= q <= 1.0 for q in qs):
            raise ValueError("quantiles must lie in [0, 1]")
        if not qs:
            return []
        return aggregates.quantiles(self._conn, self._context(query, needs_label=column == "label"), column, qs)

    def crosstab(self, query: Query, columns: Sequence[str]) -> pd.DataFrame:
        if not columns:
            raise ValueError("crosstab needs at least one column")
        ctx = self._context(query, needs_label="label" in columns)
        return aggregates.crosstab(self._conn, ctx, columns, lambda: self.sample_size(query))

    def volume(self, query: Query, bucket: timedelta) -> pd.DataFrame:
        if bucket.total_seconds() <= 0:
            raise ValueError("volume bucket must be positive")
        return aggregates.volume(self._conn, self._context(query), query.window, bucket)

    # ---- rows -----------------------------------------------------------------------------------
    def _row_plan(self, query: Query, columns: Sequence[str] | None) -> tuple[list[str], dict[str, ColumnKind]]:
        mapped = self._mappings.columns(query)
        names = rows.row_names(mapped, columns)
        kinds: dict[str, ColumnKind] = {n: f.kind for n, f in mapped.items()}
        if "label" in names:
            kinds["label"] = self._mappings.label_kind(query)
        return names, kinds

    def _hits_frames(
        self,
        query: Query,
        columns: Sequence[str] | None,
        chunk_size: int,
        sort: list[Any],
        limit: int | None,
        random_score: dict[str, Any] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Hits of the query as frames of ``chunk_size`` rows; ``random_score`` orders them by a seeded hash."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        ctx = self._context(query)
        names, kinds = self._row_plan(query, columns)
        labels = functools.partial(self._feedback.lookup, query)
        yield from rows.frames(self._conn, ctx, names, kinds, labels, chunk_size, sort, limit, random_score)

    def rows(
        self, query: Query, columns: Sequence[str] | None = None, chunk_size: int = 50_000
    ) -> Iterator[pd.DataFrame]:
        sort = [
            {TIMESTAMP: {"order": "asc"}},
            {PREDICTION_ID: {"order": "asc", "unmapped_type": "keyword"}},
            {"_shard_doc": "asc"},
        ]
        return self._hits_frames(query, columns, chunk_size, sort, None)

    def sample(self, query: Query, n: int, seed: int = 0, columns: Sequence[str] | None = None) -> pd.DataFrame:
        if n <= 0:
            names, _ = self._row_plan(query, columns)
            return pd.DataFrame(columns=names)
        sort = [{"_score": {"order": "desc"}}, {PREDICTION_ID: {"order": "asc", "unmapped_type": "keyword"}}]
        random_score = {"seed": int(seed), "field": PREDICTION_ID}
        frames = list(self._hits_frames(query, columns, limits.PAGE, sort, int(n), random_score))
        if not frames:
            names, _ = self._row_plan(query, columns)
            return pd.DataFrame(columns=names)
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

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

    # ---- housekeeping -----------------------------------------------------------------------------
    def install_templates(self, delete_after_days: int = 30) -> None:
        """Put the lifecycle policy and the composable index templates generated from the schema."""
        templates.install(self._conn, delete_after_days)

    def close(self) -> None:
        if self._owns:
            self._conn.es.close()
