"""The label join: a window's predictions that have feedback, with their latest label, read once per job.

Feedback lives in ``ml-feedback-<model>-<day it arrived>`` with ``_id`` = the prediction id (so a day holds
one label per prediction, the last one shipped).  A window's labels are found by one scan of the model's
feedback since shortly before the window's first day, narrowed to the window's prediction ids (between its
smallest and largest: ids are UUIDv7, ordered by time, so this keeps the scan to the window's own labels),
sorted by prediction id then time so the latest label of each id comes last.  Each batch of
``LOOKUP_BATCH`` labelled ids is then looked up among the window's predictions (one ``terms`` search, about
0.4 MB of request body), which gives the columns the label is counted with (prediction, score, groups,
sample rate, the filters' fields).  The cost grows with the window's labelled predictions, never with all
its predictions, and request bodies stay bounded whatever the window.  A label that arrives 30 days late
sits in that day's feedback index and is found by any later job over its prediction's window, as long as
retention keeps the prediction.
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
FEEDBACK_ORDER = [
    {PREDICTION_ID: {"order": "asc"}},
    {TIMESTAMP: {"order": "asc"}},
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


def _latest_labels(conn: Connection, query: Query, facts: WindowFacts) -> Iterator[dict[str, Any]]:
    """Prediction id -> latest label, in batches of ``LOOKUP_BATCH`` ids, from one sorted scan of the feedback."""
    assert facts.pid_range is not None
    index = feedback_pattern(query.model)
    filters = feedback_filter(query.model, query.window, facts.pid_range)
    batch: dict[str, Any] = {}
    last: str | None = None
    for hit in scan(conn, index, bool_filter(filters), {"includes": [PREDICTION_ID, LABEL, TIMESTAMP]}, FEEDBACK_ORDER):
        source = hit.get("_source") or {}
        pid, label = source_value(source, PREDICTION_ID), source_value(source, LABEL)
        if pid is None or label is None:
            continue
        pid = str(pid)
        if pid != last and len(batch) >= limits.LOOKUP_BATCH:
            yield batch
            batch = {}
        batch[pid] = plain(label)  # later feedback of the same id comes later: the latest wins
        last = pid
    if batch:
        yield batch


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
    """The labelled predictions of the query's (model, window), with the base columns and every group."""
    if facts.feedback == 0 or facts.pid_range is None:
        return LabelledWindow(
            RowSet(pd.DataFrame({c: pd.Series([], dtype=object) for c in (*BASE_COLUMNS, "label")})), "numeric"
        )
    columns: dict[str, list[Any]] = {name: [] for name in (*BASE_COLUMNS, "label")}
    count = 0
    for batch in _latest_labels(conn, query, facts):
        for record in lookup(conn, query, list(batch), BASE_COLUMNS, groups=True):
            record["label"] = batch.get(str(record.get("prediction_id")))
            for name in record.keys() - columns.keys():
                columns[name] = [None] * count
            for name, values in columns.items():
                values.append(record.get(name))
            count += 1
    frame = pd.DataFrame({n: pd.Series(v, dtype=object) for n, v in columns.items()})
    frame = frame.sort_values(["timestamp", "prediction_id"], kind="stable", key=lambda c: c.astype(str))
    return LabelledWindow(RowSet(frame), kind_of(list(frame["label"].dropna())), set(columns))


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
