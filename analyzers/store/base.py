"""The store's ports: reading predictions, keeping findings, keeping alert state; ``Store`` is all three.

``PredictionReader`` is what jobs and reports read through, ``FindingStore`` where findings are
written and read back, ``StateStore`` where alert state, the outbox and heartbeats live.  Each part of
predwatch asks for the narrowest port it uses, so an adapter may implement one port alone (a reference
file is only a ``PredictionReader``) or reuse another's (the local store keeps findings and state in
``SqliteState``, which any new store can hold too).  ``analyzers.store.factory`` is the one place that
picks the adapter a configuration names.

Jobs speak in queries (model, time window, filters) and logical column names
(``features.amount``, ``groups.region``, ``prediction``, ``score``, ``label``, ``latency_ms``,
``model_version``, ``entity_id``, ``outcome``, ``error_type``, ``timestamp``, ``prediction_id``;
see ``logshipper.schema.COLUMNS``).  Aggregates are computed where the data is, so a job's work
grows with its bins and groups, not with the number of predictions.  Every count is weighted by
``1 / sample_rate`` of the events it counts (a missing rate is 1), so sampled logging reweights.
Tests and intervals need what was observed instead: :meth:`PredictionReader.sample_size` gives a
window's weighted count beside its rows and the sum of squared weights, and ``crosstab`` gives each
combination's ``weight_sq`` beside its ``count`` (see :mod:`analyzers.stats.sampling`).

``label`` is the ground truth joined by ``prediction_id`` from ``ml.feedback`` events, which may
arrive days after the prediction (in a later day's file or index); the latest feedback wins.
A prediction id seen twice counts once.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd

from analyzers.findings import Finding
from analyzers.findings.ops import DeadLetterPile as DeadLetterPile
from analyzers.findings.quality import QualityReport as QualityReport  # defined with findings, which carry it
from analyzers.findings.quality import ReasonCount as ReasonCount
from analyzers.stats.sampling import SampleSize
from analyzers.timeutil import Window

Outcome = Literal["success", "failure"]
ColumnKind = Literal["numeric", "categorical"]

# The fixed columns of ``rows()`` when none are named, in this order; every ``features.*`` and
# ``groups.*`` column follows, sorted by name.
ROW_COLUMNS = (
    "prediction_id",
    "timestamp",
    "model_version",
    "entity_id",
    "outcome",
    "error_type",
    "error_message",
    "prediction",
    "score",
    "label",
    "latency_ms",
    "sample_rate",
)


class StoreError(RuntimeError):
    """The store cannot answer: unreachable, bad credentials, bad input.  The message names the place."""


class StoreUnavailable(StoreError):
    """The store cannot serve anyone now: unreachable, not answering in time, overloaded, or refusing the
    credentials.  What a daemon waits out (one monitoring problem), unlike a request the store rejects."""


class ConflictError(StoreError):
    """An optimistic-concurrency write lost: someone else changed the document first."""


@dataclass(frozen=True)
class Query:
    """Which predictions: one model, a window on ``@timestamp``, and optional filters.

    Filters combine with AND; a tuple means "any of".  ``outcome=None`` means both successes and
    failures.  ``has_label=True`` keeps only predictions whose feedback has arrived.
    """

    model: str
    window: Window
    model_versions: tuple[str, ...] | None = None
    entity_ids: tuple[str, ...] | None = None
    prediction_ids: tuple[str, ...] | None = None
    groups: Mapping[str, tuple[str, ...]] | None = None
    outcome: Outcome | None = None
    has_label: bool | None = None

    def with_(self, **changes: Any) -> Query:
        """A copy with some fields changed."""
        return Query(**{**self.__dict__, **changes})


@dataclass(frozen=True)
class ColumnInfo:
    """A column seen in a window: its logical name, kind and how many rows carry a value."""

    name: str
    kind: ColumnKind
    count: float


@dataclass(frozen=True)
class NumericSummary:
    """Weighted count, missing count (null or absent), mean, std, min and max of a numeric column."""

    count: float
    missing: float
    mean: float | None
    std: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True)
class Histogram:
    """Weighted counts over bin edges: ``counts[i]`` is ``edges[i] <= x < edges[i+1]``.

    Values below the first edge go to ``underflow``, at or above the last to ``overflow``
    (so nothing is silently lost); ``missing`` counts nulls and absent values.
    """

    edges: np.ndarray
    counts: np.ndarray
    underflow: float = 0.0
    overflow: float = 0.0
    missing: float = 0.0


@dataclass(frozen=True)
class BucketedHistograms:
    """Weighted histograms of one numeric column per time bucket and per value of a ``by`` column.

    ``counts[b, k]`` is ``[underflow, counts over the edges..., overflow]`` (``len(edges) + 1`` cells, as
    :class:`Histogram` splits them) of the rows in the bucket starting at ``starts[b]`` whose ``by`` value is
    ``keys[k]`` (``None``: missing; without ``by``, ``keys == [None]`` holds every row); ``missing[b, k]``
    counts those rows with no value in the column.  Empty buckets are included.
    """

    starts: pd.DatetimeIndex
    edges: np.ndarray
    keys: list[Any]
    counts: np.ndarray
    weight_sq: np.ndarray
    missing: np.ndarray

    @staticmethod
    def key_order(value: Any) -> tuple[bool, str, str]:
        """The order of ``keys`` in every adapter: by type, then text, ``None`` last."""
        return (value is None, type(value).__name__, str(value))


_Reader = TypeVar("_Reader", bound="PredictionReader")


class PredictionReader(ABC):
    """Where predictions are read: windows in, rows, samples and aggregates out.

    The value contract, for ``prediction``, ``label``, ``features.*`` and ``groups.*`` cells, the same in every
    adapter: a JSON string comes back as ``str`` (even ``"1"`` stays ``"1"``); a JSON integer as ``int``; a
    JSON float as ``float`` (so ``1`` and ``1.0`` are equal keys and never split a confusion matrix);
    ``true``/``false`` as ``bool``; null or absent as ``None``; an array or object as its compact JSON text (a
    categorical string), counted in :meth:`quality` under ``nested value in <column>``.  A column is numeric
    when most of its non-null values are numbers (booleans are not numbers); its values that are not numbers
    are set aside (neither values nor missing in numeric reads) and counted in :meth:`quality` as ``type
    mismatch in <column>``.  The same file gives the same values whether or not it also holds bad lines.
    """

    # ---- schema discovery -------------------------------------------------------------
    @abstractmethod
    def columns(self, query: Query) -> list[ColumnInfo]:
        """Features (``features.*``), groups (``groups.*``) and ``prediction``, ``score``, ``label``
        present in the window, with their kind: numeric when most non-null values are numbers
        (booleans count as categorical; groups are always categorical), categorical otherwise."""

    # ---- rows -------------------------------------------------------------------------
    @abstractmethod
    def rows(
        self, query: Query, columns: Sequence[str] | None = None, chunk_size: int = 50_000
    ) -> Iterator[pd.DataFrame]:
        """The window's predictions as DataFrames of at most ``chunk_size`` rows, ordered by time.

        Columns are logical names (all known columns when ``None``, including every
        ``features.*`` and ``groups.*``); a missing value is null.  ``timestamp`` is a tz-aware
        UTC datetime.  Memory stays bounded by the chunk size.
        """

    @abstractmethod
    def sample(self, query: Query, n: int, seed: int = 0, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """A uniform random sample of at most ``n`` predictions (all of them when fewer),
        the same for the same data and seed."""

    # ---- aggregates -------------------------------------------------------------------
    @abstractmethod
    def count(self, query: Query) -> float:
        """Weighted number of predictions in the window."""

    @abstractmethod
    def sample_size(self, query: Query) -> SampleSize:
        """The window's weighted number of predictions, the rows logged and their sum of squared weights:
        what estimates stand for and what tests may count on."""

    @abstractmethod
    def numeric_summary(self, query: Query, column: str) -> NumericSummary:
        """Count, missing, mean, std, min, max of a numeric column (non-finite values are missing)."""

    @abstractmethod
    def category_counts(self, query: Query, column: str) -> dict[Any, float]:
        """Weighted count per distinct value; nulls and absent values under the key ``None``.
        Numbers come back as numbers, strings as strings."""

    @abstractmethod
    def histogram(self, query: Query, column: str, edges: Sequence[float]) -> Histogram:
        """Weighted counts of a numeric column over the given bin edges (ascending)."""

    def numeric_summaries(self, query: Query, columns: Sequence[str]) -> dict[str, NumericSummary]:
        """:meth:`numeric_summary` of each column, for jobs that need many; an adapter may answer in one pass.

        This default asks once per column.
        """
        return {column: self.numeric_summary(query, column) for column in columns}

    def histograms(self, query: Query, edges: Mapping[str, Sequence[float]]) -> dict[str, Histogram]:
        """:meth:`histogram` of each column over its own edges; an adapter may answer in one pass.

        This default asks once per column.
        """
        return {column: self.histogram(query, column, column_edges) for column, column_edges in edges.items()}

    @abstractmethod
    def bucketed_histograms(
        self, query: Query, column: str, edges: Sequence[float], *, bucket: timedelta, by: str | None = None
    ) -> BucketedHistograms:
        """Weighted histograms of a numeric column over ``edges`` per time bucket of length ``bucket`` from the
        window's start and per value of ``by`` (a column of few values, such as ``prediction``), in one query:
        many windows' histograms for the price of one, so that a job judging every hour of a week asks once."""

    @abstractmethod
    def quantiles(self, query: Query, column: str, qs: Sequence[float]) -> list[float | None]:
        """Quantiles (each in [0, 1]) of a numeric column, ``None`` when it has no values.
        Exact for the local store; Elasticsearch's percentiles are approximate (TDigest)."""

    @abstractmethod
    def crosstab(self, query: Query, columns: Sequence[str]) -> pd.DataFrame:
        """Weighted counts per combination of the columns' values: one row per combination,
        the given columns plus ``count`` and ``weight_sq`` (the sum of the squared weights, equal to
        ``count`` without sampling, for the combination's effective size).  E.g.
        ``["groups.region", "prediction", "label"]`` gives per-group confusion counts; nulls are kept
        as their own value."""

    @abstractmethod
    def volume(self, query: Query, bucket: timedelta) -> pd.DataFrame:
        """Counts per time bucket over the whole window, empty buckets included: columns
        ``start`` (tz-aware UTC), ``count`` (all events) and ``failures`` (``outcome == failure``)."""

    # ---- data quality -----------------------------------------------------------------
    @abstractmethod
    def quality(self, query: Query) -> QualityReport:
        """The lines of the query's window (model and time range; other filters ignored) that were considered,
        and those quarantined or set aside, counted by reason with the first place each was seen."""

    def dead_letter_pile(self) -> DeadLetterPile | None:
        """The size of what the store keeps apart of lines it could not index, every model's (``None`` for a store
        that keeps them in place, where :meth:`quality` counts them)."""
        return None

    # ---- housekeeping -----------------------------------------------------------------
    def budget(self, seconds: float) -> contextlib.AbstractContextManager[None]:
        """Bound the reads made by this thread inside the block to ``seconds`` in total (a job's timeout),
        for stores that wait on a server; this default sets no bound."""
        return contextlib.nullcontext()

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """Let the reads made by this thread inside the block see the data as the first of them found it (one
        job's reads agree with each other, and the store need not look for changes before each); this default,
        for stores that cannot hold a version, reads the newest data each time."""
        return contextlib.nullcontext()

    def close(self) -> None:
        """Release connections and files."""

    def __enter__(self: _Reader) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FindingStore(ABC):
    """Where findings are kept: written once per id (idempotent), read back by model, job and time."""

    @abstractmethod
    def write_findings(self, findings: Sequence[Finding]) -> None:
        """Store findings; writing the same finding id again replaces it (idempotent)."""

    @abstractmethod
    def read_findings(
        self, model: str | None = None, job: str | None = None, since: Any = None, until: Any = None
    ) -> list[Finding]:
        """Stored findings, oldest window first, filtered by model, job and window end time."""


class StateStore(ABC):
    """Where alert state, the outbox and heartbeats live: documents by key with optimistic concurrency."""

    @abstractmethod
    def get_state(self, key: str) -> tuple[dict[str, Any], Any] | None:
        """An alert-state document and its version token, or ``None`` when absent."""

    @abstractmethod
    def put_state(self, key: str, doc: dict[str, Any], version: Any = None) -> Any:
        """Write a state document.  With ``version`` (from :meth:`get_state`) the write succeeds only
        if nobody changed it since, else :class:`ConflictError`; ``version=None`` creates it and
        raises :class:`ConflictError` if it already exists.  Returns the new version token."""

    @abstractmethod
    def delete_state(self, key: str, version: Any = None) -> None:
        """Remove a state document (optionally only at that version)."""

    @abstractmethod
    def list_state(self, prefix: str = "") -> dict[str, tuple[dict[str, Any], Any]]:
        """Every state document whose key starts with ``prefix``, with its version token."""


class Store(PredictionReader, FindingStore, StateStore):
    """Everything a configured store provides: predictions to read, findings and alert state to keep."""
