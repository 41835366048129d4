"""The label join: a window's predictions that have feedback, with their latest label, read once per job.

Feedback lives in ``ml-feedback-<model>-<day it arrived>`` with ``_id`` = the prediction id (so a day holds
one label per prediction, the last one shipped).  A window's labels are found by one scan of the model's
feedback since shortly before the window's first day, narrowed to the window's prediction ids (between its
smallest and largest: ids are UUIDv7, ordered by time, so this keeps the scan to the window's own labels),
oldest first so the latest label of each id comes last.  Each batch of ``LOOKUP_BATCH`` newly met ids is
looked up among the window's predictions (one ``terms`` search, about 0.4 MB of request body), which gives
the columns the label is counted with (prediction, score, groups, sample rate, the filters' fields).
The cost grows with the window's labelled predictions, never with all its predictions, and request bodies
stay bounded whatever the window; the labelled predictions are held in memory for the job (about 200 bytes
each).  A label that arrives 30 days late sits in that day's feedback index and is found by any later job
over its prediction's window, as long as retention keeps the prediction.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analyzers.store.base import ColumnKind, Query
from analyzers.store.elastic import limits
from analyzers.store.elastic.connection import Connection
from analyzers.store.elastic.hits import scan, source_value
from analyzers.store.elastic.indices import feedback_pattern, predictions_pattern
from analyzers.store.elastic.profile import WindowFacts
from analyzers.store.elastic.queries import SEARCH_OPTIONS, bool_filter, feedback_filter, window_filter
from analyzers.store.elastic.rows import cells, group_cells, source_paths
from analyzers.store.elastic.rowset import RowSet, kind_of, plain
from logshipper.schema import GROUPS, LABEL, PREDICTION_ID, TIMESTAMP

# The columns read for every labelled prediction: what the label is counted with, and the filters' fields.
BASE_COLUMNS = (
    "prediction_id",
    "timestamp",
    "sample_rate",
    "outcome",
    "model_version",
    "entity_id",
    "prediction",
    "score",
    "latency_ms",
    "error_type",
)
# Oldest first, so the latest label of an id comes last; a date sort lets Elasticsearch skip what a page
# cannot reach, so each page costs about its size (a keyword sort would read every candidate each page).
FEEDBACK_ORDER = [
    {TIMESTAMP: {"order": "asc"}},
    {PREDICTION_ID: {"order": "asc"}},
    {"_shard_doc": "asc"},
]


@dataclass
class LabelledWindow:
    """The labelled predictions of one (model, window): their columns and latest label, in time order."""

    rows: RowSet
    label_kind: ColumnKind
    columns: set[str] = field(default_factory=set)
    _by_id: dict[str, Any] | None = None

    @property
    def prediction_ids(self) -> list[str]:
        return self.rows.frame["prediction_id"].astype(str).tolist() if len(self.rows) else []

    def labels_of(self, pids: Sequence[Any]) -> list[Any]:
        """The label of each of these prediction ids (``None`` without one)."""
        if self._by_id is None:
            self._by_id = dict(zip(self.prediction_ids, self.rows.values("label").tolist(), strict=True))
        return [self._by_id.get(str(p)) if p is not None else None for p in pids]


def _feedback(conn: Connection, query: Query, facts: WindowFacts) -> Iterator[tuple[str, Any]]:
    """(prediction id, label) of every labelled feedback event that may belong to the window, oldest first."""
    assert facts.pid_range is not None
    index = feedback_pattern(query.model)
    filters = feedback_filter(query.model, query.window, facts.pid_range)
    source = {"includes": [PREDICTION_ID, LABEL, TIMESTAMP]}
    for hit in scan(conn, index, bool_filter(filters), source, FEEDBACK_ORDER):
        doc = hit.get("_source") or {}
        pid, label = source_value(doc, PREDICTION_ID), source_value(doc, LABEL)
        if pid is not None and label is not None:
            yield str(pid), plain(label)


def lookup(
    conn: Connection, query: Query, pids: list[str], names: Sequence[str], *, groups: bool = False
) -> list[dict[str, Any]]:
    """The window's predictions with these ids (the first copy of an id seen twice), their columns as logged
    (and every group, with ``groups``)."""
    index = predictions_pattern(query.model)
    paths = source_paths([*names, "prediction_id"])
    if groups:
        paths = sorted({*paths, GROUPS})
    answer = conn.call(
        f"looking up {len(pids)} labelled predictions in {index}",
        lambda es: es.search(
            index=index,
            **SEARCH_OPTIONS,
            query=bool_filter([*window_filter(query.model, query.window), {"terms": {PREDICTION_ID: pids}}]),
            collapse={"field": PREDICTION_ID},
            sort=[{TIMESTAMP: {"order": "asc"}}],
            source={"includes": paths},
            size=len(pids),
            track_total_hits=False,
        ),
    )
    out = []
    for hit in answer["hits"]["hits"]:
        source = hit.get("_source") or {}
        record = cells(source, [*names, "prediction_id"])
        if groups:
            record.update(group_cells(source))
        out.append(record)
    return out


def join(conn: Connection, query: Query, facts: WindowFacts) -> LabelledWindow:
    """The labelled predictions of the query's (model, window), with the base columns, every group and the
    latest label: each id is looked up once, in batches, as the feedback scan first meets it."""
    if facts.feedback == 0 or facts.pid_range is None:
        empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in (*BASE_COLUMNS, "label")})
        return LabelledWindow(RowSet(empty), "numeric")
    labels: dict[str, Any] = {}
    pending: list[str] = []
    columns: dict[str, list[Any]] = {name: [] for name in BASE_COLUMNS}
    count = 0

    def look_up() -> None:
        nonlocal count
        for record in lookup(conn, query, pending, BASE_COLUMNS, groups=True):
            for name in record.keys() - columns.keys():
                columns[name] = [None] * count
            for name, values in columns.items():
                values.append(record.get(name))
            count += 1
        pending.clear()

    for pid, label in _feedback(conn, query, facts):
        if pid not in labels:
            pending.append(pid)
        labels[pid] = label  # feedback comes oldest first: the latest label wins
        if len(pending) >= limits.LOOKUP_BATCH:
            look_up()
    if pending:
        look_up()
    frame = pd.DataFrame({n: pd.Series(v, dtype=object) for n, v in columns.items()})
    frame["label"] = pd.Series([labels.get(str(p)) for p in frame["prediction_id"]], dtype=object)
    frame = frame.sort_values(["timestamp", "prediction_id"], kind="stable", key=lambda c: c.astype(str))
    return LabelledWindow(RowSet(frame), kind_of(list(frame["label"].dropna())), set(frame.columns))


def add_columns(conn: Connection, query: Query, labelled: LabelledWindow, names: Sequence[str]) -> None:
    """Read more columns (features, say) of the labelled predictions, a batch of ids at a time."""
    missing = [n for n in names if n not in labelled.columns and n != "label"]
    if not missing or not len(labelled.rows):
        labelled.columns.update(missing)
        return
    pids = labelled.prediction_ids
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(pids), limits.LOOKUP_BATCH):
        for record in lookup(conn, query, pids[start : start + limits.LOOKUP_BATCH], missing):
            found[str(record.get("prediction_id"))] = record
    frame = labelled.rows.frame
    for name in missing:
        frame[name] = pd.Series([found.get(p, {}).get(name) for p in pids], dtype=object)
    labelled.rows = RowSet(frame)
    labelled.columns.update(missing)


class LabelJoins:
    """The label join of each (model, window), built once and reused by the calls of a job (``CACHE_TTL``)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._building: dict[tuple[str, Any, Any], threading.Lock] = {}
        self._cache: OrderedDict[tuple[str, Any, Any], tuple[float, LabelledWindow]] = OrderedDict()

    def get(self, query: Query, facts: Any) -> LabelledWindow:
        """The window's labelled predictions; ``facts`` is called for the window's :class:`WindowFacts` when the
        join has to be built."""
        key = (query.model, query.window.start, query.window.end)
        with self._lock:
            lock = self._building.setdefault(key, threading.Lock())
        with lock:
            cached = self._cache.get(key)
            if cached and time.monotonic() - cached[0] < limits.CACHE_TTL:
                return cached[1]
            built = join(self._conn, query, facts())
            with self._lock:
                self._cache[key] = (time.monotonic(), built)
                self._cache.move_to_end(key)
                while len(self._cache) > limits.CACHE_ENTRIES:
                    self._cache.popitem(last=False)
            return built
