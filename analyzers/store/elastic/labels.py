"""Feedback labels, which may land in later days' indices: per window for aggregates, per chunk for rows."""

from __future__ import annotations

import functools
import time
from typing import Any

from analyzers.store.base import Query
from analyzers.store.elastic import limits
from analyzers.store.elastic.connection import Connection
from analyzers.store.elastic.hits import scan, source_value
from analyzers.store.elastic.indices import feedback_indices
from analyzers.store.elastic.queries import Labels, feedback_filter
from analyzers.timeutil import Window
from logshipper.schema import LABEL, PREDICTION_ID, TIMESTAMP


class Feedback:
    """The model's feedback since a window's first day; a window's label map is reused for ``LABELS_TTL`` seconds."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._labels: dict[tuple[str, Window], tuple[float, Labels]] = {}

    def window_labels(self, query: Query) -> Labels:
        """Latest label per prediction id among the feedback since the window's first day (cached briefly)."""
        key = (query.model, query.window)
        cached = self._labels.get(key)
        if cached and time.monotonic() - cached[0] < limits.LABELS_TTL:
            return cached[1]
        values: dict[str, Any] = {}
        indices = feedback_indices(query.model)
        body_query = {"bool": {"filter": feedback_filter(query.model, query.window)}}
        for hit in scan(self._conn, indices, body_query, [PREDICTION_ID, LABEL], None, None):
            pid, label = source_value(hit["_source"], PREDICTION_ID), source_value(hit["_source"], LABEL)
            if pid is not None and label is not None:
                values[str(pid)] = label
        labels = Labels(values)
        self._labels[key] = (time.monotonic(), labels)
        return labels

    def lookup(self, query: Query, pids: list[str]) -> dict[str, Any]:
        """Latest label of each of these prediction ids (one collapsed search per 10,000 ids)."""
        out: dict[str, Any] = {}
        indices = feedback_indices(query.model)
        for start in range(0, len(pids), limits.PAGE):
            batch = pids[start : start + limits.PAGE]
            filters = [*feedback_filter(query.model, query.window), {"terms": {PREDICTION_ID: batch}}]
            answer = self._conn.call(
                f"reading feedback from {indices}",
                functools.partial(
                    self._conn.es.search,
                    index=indices,
                    ignore_unavailable=True,
                    allow_no_indices=True,
                    query={"bool": {"filter": filters}},
                    collapse={"field": PREDICTION_ID},
                    sort=[{TIMESTAMP: {"order": "desc"}}],
                    source=[PREDICTION_ID, LABEL],  # type: ignore[arg-type]  # the API takes a field list too
                    size=len(batch),
                    track_total_hits=False,
                ),
            )
            for hit in answer["hits"]["hits"]:
                pid, label = source_value(hit["_source"], PREDICTION_ID), source_value(hit["_source"], LABEL)
                if pid is not None and label is not None:
                    out[str(pid)] = label
        return out
