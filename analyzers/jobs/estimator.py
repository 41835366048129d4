"""What the estimation job asks of a method (CBPE, DLE): a fit on the reference that reads windows.

A method's :class:`Estimator` says what it learned from the reference (its metrics' reference values and
intervals, its calibration check) and reads windows: windows on one grid by aggregates when it can
(:meth:`Estimator.read_grid`), any number of windows from one pass over their rows otherwise
(:func:`read_windows`), each row going to the window its timestamp falls in.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from analyzers.config.models import EstimationConfig
from analyzers.findings.estimation import CalibrationCheck
from analyzers.stats.estimation import MetricEstimate
from analyzers.store.base import PredictionReader, Query
from analyzers.timeutil import Window

Rows = Mapping[str, np.ndarray]  # a chunk of rows as arrays of one length, prepared by the method
STREAM_ROWS = 20_000  # windows this small on average are read in one pass: a store query costs about as much


class TooFewLabels(ValueError):
    """The reference's labels cannot support a fit (too few of one class, too few rows)."""


@dataclass(frozen=True)
class WindowEstimate:
    """One window read by a method: labelled predictions, how many were estimated, each metric's estimate, the
    realized values (when ``min_labels`` labels arrived), and how the window was read."""

    n_labeled: float
    n_scored: float
    outside: float | None  # share of the estimated predictions outside the reference's range
    estimates: dict[str, MetricEstimate]
    realized: dict[str, float | None]
    source: str  # "aggregates" or "rows"


class Accumulator(ABC):
    """One window's running sums over the chunks of its rows."""

    @abstractmethod
    def add(self, rows: Rows) -> None:
        """Rows of the window (a slice of a prepared chunk)."""

    @abstractmethod
    def result(self, config: EstimationConfig) -> WindowEstimate:
        """The window's estimate once all its rows were added."""


class Estimator(ABC):
    """A method fitted on the reference's labelled predictions."""

    task: str
    n_sample: int  # labelled reference predictions fitted on
    decision_threshold: float | None = None
    columns: tuple[str, ...]  # the row columns :meth:`prepare` reads

    @abstractmethod
    def metrics(self, config: EstimationConfig) -> list[str]:
        """The metrics estimated, in order."""

    @abstractmethod
    def reference(self, name: str) -> tuple[float | None, float | None, float | None, float | None]:
        """The reference's realized value of a metric, its standard error and interval."""

    @abstractmethod
    def higher_is_better(self, name: str) -> bool:
        """Whether a larger value of the metric is better."""

    @abstractmethod
    def calibration(self, config: EstimationConfig) -> CalibrationCheck:
        """How the method was fitted and checked on the reference."""

    def unusable(self, config: EstimationConfig) -> str | None:
        """Why the fit is too poor to estimate anything, ``None`` when it is good enough."""
        return None

    def read_grid(
        self, store: PredictionReader, span: Query, bucket: timedelta, config: EstimationConfig
    ) -> list[WindowEstimate] | None:
        """Every ``bucket`` of the span's window (from its start) from aggregates, ``None`` when rows must be read."""
        return None

    @abstractmethod
    def prepare(self, chunk: pd.DataFrame) -> Rows:
        """A chunk of rows as the arrays the accumulators add."""

    @abstractmethod
    def accumulator(self) -> Accumulator:
        """Empty sums for one window."""


def read_windows(
    store: PredictionReader,
    queries: list[Query],
    estimator: Estimator,
    config: EstimationConfig,
    *,
    rows: float,
) -> dict[Window, WindowEstimate]:
    """Each query's window read by the estimator.

    Windows of one length on one grid (back-to-back hours, days; a single window) are read by aggregates per
    grid bucket where the method can: a few queries in all, work that grows with the windows and the cells,
    not the rows.  Otherwise, windows of at most ``STREAM_ROWS`` predictions on average are read in one pass
    over their rows (time-ordered by the store, so each window is a run of rows), and larger ones one by one.
    ``rows`` is how many predictions the windows hold together.
    """
    if not queries:
        return {}
    grid = _grid(queries)
    if grid is not None:
        span, bucket = grid
        read = estimator.read_grid(store, span, bucket, config)
        if read is not None:
            return {q.window: read[(q.window.start - span.window.start) // bucket] for q in queries}
    ordered = sorted(queries, key=lambda q: q.window.start)
    apart = all(a.window.end <= b.window.start for a, b in itertools.pairwise(ordered))
    same = all(q.with_(window=ordered[0].window) == ordered[0] for q in ordered)
    if rows / len(queries) > STREAM_ROWS or not (apart and same):
        return {q.window: _one(store, q, estimator, config) for q in ordered}
    return {q.window: read for q, read in zip(ordered, _stream(store, ordered, estimator, config), strict=True)}


def _grid(queries: list[Query]) -> tuple[Query, timedelta] | None:
    """The span and bucket of windows that differ only in their window, all of one length ``L``, starting at
    multiples of ``L`` from the first and filling at least half the span (else ``None``)."""
    first = min(queries, key=lambda q: q.window.start)
    length = first.window.length
    if length <= timedelta(0) or any(q.with_(window=first.window) != first for q in queries):
        return None
    if any(q.window.length != length or (q.window.start - first.window.start) % length for q in queries):
        return None
    end = max(q.window.end for q in queries)
    if (end - first.window.start) // length > 2 * len({q.window for q in queries}):
        return None
    return first.with_(window=Window(first.window.start, end)), length


def _one(store: PredictionReader, query: Query, estimator: Estimator, config: EstimationConfig) -> WindowEstimate:
    """One window, by aggregates where the method can, else by its rows."""
    read = estimator.read_grid(store, query, query.window.length, config)
    return read[0] if read is not None else _stream(store, [query], estimator, config)[0]


def routed(
    store: PredictionReader, span: Query, windows: Sequence[Window], estimator: Estimator
) -> Iterator[tuple[int, Rows]]:
    """The span's rows, prepared by the estimator, as (index of the window, its rows) for ``windows`` (in time
    order, not overlapping); one pass, rows outside every window dropped."""
    first = np.array([_ns(w.start) for w in windows], dtype=np.int64)
    last = np.array([_ns(w.end) for w in windows], dtype=np.int64)
    for chunk in store.rows(span, columns=[*estimator.columns, "timestamp"]):
        times = _times_ns(chunk["timestamp"])
        low = np.searchsorted(times, first, side="left")
        high = np.searchsorted(times, last, side="left")
        touched = np.flatnonzero(high > low)
        if touched.size == 0:
            continue
        rows = estimator.prepare(chunk)
        for i in touched:
            a, b = int(low[i]), int(high[i])
            yield int(i), {name: values[a:b] for name, values in rows.items()}


def _stream(
    store: PredictionReader, ordered: list[Query], estimator: Estimator, config: EstimationConfig
) -> list[WindowEstimate]:
    """Windows that do not overlap, in time order, read in one pass over their span."""
    span = ordered[0].with_(window=Window(ordered[0].window.start, ordered[-1].window.end))
    sums = [estimator.accumulator() for _ in ordered]
    for i, rows in routed(store, span, [q.window for q in ordered], estimator):
        sums[i].add(rows)
    return [s.result(config) for s in sums]


def _ns(moment: Any) -> int:
    return int(pd.Timestamp(moment).value)


def _times_ns(series: pd.Series) -> np.ndarray:
    """UTC times as nanoseconds since the epoch, whatever the column's unit."""
    utc = pd.to_datetime(series, utc=True).dt.tz_convert(None)
    return utc.to_numpy().astype("datetime64[ns]").astype(np.int64)


# ---- helpers the methods share -----------------------------------------------------------------
def numeric(series: pd.Series) -> np.ndarray:
    """A column as floats, NaN where missing or not a number."""
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def finite(value: Any) -> float | None:
    """A number, or ``None`` for NaN and infinities."""
    v = float(value)
    return v if math.isfinite(v) else None
