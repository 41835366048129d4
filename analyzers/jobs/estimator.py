"""What the estimation job asks of a method (CBPE, DLE): a fit on the reference that reads windows.

A method's :class:`Estimator` says what it learned from the reference (its metrics' reference values and
intervals, its calibration check) and reads windows: one window by aggregates when it can
(:meth:`Estimator.read_one`), any number of windows from one pass over their rows otherwise
(:func:`read_windows`), each row going to the window its timestamp falls in.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
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

    def read_one(self, store: PredictionReader, query: Query, config: EstimationConfig) -> WindowEstimate | None:
        """One window from aggregates, ``None`` when its rows must be read."""
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

    ``rows`` is how many predictions the windows hold together.  Windows of at most ``STREAM_ROWS`` predictions
    on average are read in one pass over their rows (time-ordered by the store, so each window is a run of
    rows): a few queries in all, work that grows with the rows.  Larger windows are read one by one by
    aggregates where the method can (work that grows with the windows and the cells, not the rows), else by
    their rows.
    """
    if not queries:
        return {}
    if len(queries) == 1 or rows / len(queries) > STREAM_ROWS:
        out: dict[Window, WindowEstimate] = {}
        for query in queries:
            alone = estimator.read_one(store, query, config)
            out[query.window] = alone if alone is not None else _stream(store, [query], estimator, config)[0]
        return out
    ordered = sorted(queries, key=lambda q: q.window.start)
    apart = all(a.window.end <= b.window.start for a, b in itertools.pairwise(ordered))
    same = all(q.with_(window=ordered[0].window) == ordered[0] for q in ordered)
    if not (apart and same):
        return {q.window: _stream(store, [q], estimator, config)[0] for q in ordered}
    return {q.window: read for q, read in zip(ordered, _stream(store, ordered, estimator, config), strict=True)}


def _stream(
    store: PredictionReader, ordered: list[Query], estimator: Estimator, config: EstimationConfig
) -> list[WindowEstimate]:
    """Windows that do not overlap, in time order, read in one pass over their span."""
    span = ordered[0].with_(window=Window(ordered[0].window.start, ordered[-1].window.end))
    starts = np.array([_ns(q.window.start) for q in ordered], dtype=np.int64)
    ends = np.array([_ns(q.window.end) for q in ordered], dtype=np.int64)
    sums = [estimator.accumulator() for _ in ordered]
    for chunk in store.rows(span, columns=[*estimator.columns, "timestamp"]):
        times = _times_ns(chunk["timestamp"])
        first = np.searchsorted(times, starts, side="left")
        last = np.searchsorted(times, ends, side="left")
        touched = np.flatnonzero(last > first)
        if touched.size == 0:
            continue
        rows = estimator.prepare(chunk)
        for i in touched:
            a, b = int(first[i]), int(last[i])
            sums[i].add({name: values[a:b] for name, values in rows.items()})
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
