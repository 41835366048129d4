"""Model versions in a window: which are live, when each was first seen, and a job's finding split per version.

Everything here goes through the store's aggregates with ``Query.model_versions``: the versions live in a
window are one ``category_counts``; a version's first event is found with ``volume`` over a look-back span
(200 buckets, then 200 inside the first bucket that holds one), so the cost grows with buckets and
versions, not with predictions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from analyzers.config.jobs import JobConfig
from analyzers.findings import Finding, Signal, Status, VersionFinding, VersionSplit, version_subject
from analyzers.jobs.base import Job
from analyzers.stats.sampling import SampleSize
from analyzers.store.base import (
    BucketedHistograms,
    ColumnInfo,
    DeadLetterPile,
    Histogram,
    NumericSummary,
    PredictionReader,
    QualityReport,
    Query,
)
from analyzers.timeutil import Window

VERSION_COLUMN = "model_version"
MAX_VERSIONS = 10  # versions analysed alone by a ``by_version`` job (most traffic first); the rest are counted
FIRST_SEEN_BUCKETS = 200  # buckets over the look-back span, and again inside the first bucket when refining


def live_versions(store: PredictionReader, query: Query) -> dict[str, float]:
    """Events per model version in the query's window (failures included), most first; events without a
    version are left out."""
    counts = store.category_counts(query.with_(model_versions=None), VERSION_COLUMN)
    live = {str(v): float(n) for v, n in counts.items() if v is not None and n > 0}
    return dict(sorted(live.items(), key=lambda kv: (-kv[1], kv[0])))


def _first_bucket(store: PredictionReader, query: Query, buckets: int) -> tuple[datetime, timedelta] | None:
    """The start and length of the first bucket of the query's window holding an event, ``None`` when empty."""
    bucket = timedelta(seconds=max(math.ceil(query.window.length.total_seconds() / buckets), 1))
    volume = store.volume(query, bucket)
    hit = volume.index[volume["count"].to_numpy(dtype=float) > 0]
    if len(hit) == 0:
        return None
    return pd.Timestamp(volume["start"].iloc[hit[0]]).to_pydatetime(), bucket


def first_seen(
    store: PredictionReader, model: str, versions: Sequence[str], *, end: datetime, lookback: timedelta
) -> dict[str, datetime | None]:
    """When each version's first event arrived within ``lookback`` before ``end``, to ``lookback / 40,000``
    (15 s for 7 days), ``None`` when it has none there; a version already live when the look-back starts is
    reported at its start.  Two passes of ``volume``: over the look-back, then inside the first bucket."""
    span = Window(end - lookback, end)
    out: dict[str, datetime | None] = {}
    for version in versions:
        hit = _first_bucket(store, Query(model, span, model_versions=(version,)), FIRST_SEEN_BUCKETS)
        if hit is None or hit[0] == span.start:
            out[version] = hit[0] if hit is not None else None
            continue
        start, bucket = hit
        inside = Query(model, Window(start, min(start + bucket, end)), model_versions=(version,))
        fine = _first_bucket(store, inside, FIRST_SEEN_BUCKETS)
        out[version] = fine[0] if fine is not None else start
    return out


def by_first_seen(traffic: Mapping[str, float], seen: Mapping[str, datetime | None]) -> list[str]:
    """Versions oldest first: by first event, then (a tie, e.g. both live before the look-back) the one serving
    more traffic first, since a canary serves the smaller share."""

    def key(version: str) -> tuple[bool, float, float, str]:
        when = seen.get(version)
        return (when is None, when.timestamp() if when is not None else 0.0, -traffic.get(version, 0.0), version)

    return sorted(traffic, key=key)


class VersionSlice(PredictionReader):
    """A reader of one version's predictions in one window: queries over ``window`` are narrowed to
    ``version``; queries over any other window (a reference) pass through with every version, so each
    version is compared with what the whole model did before.  A job judging many windows at once reads
    spans that are none of them, so it narrows its own queries instead (``estimation.run_windows(version=)``)."""

    def __init__(self, store: PredictionReader, window: Window, version: str) -> None:
        self.store = store
        self.window = window
        self.version = version

    def _narrow(self, query: Query) -> Query:
        if query.window != self.window or query.model_versions is not None:
            return query
        return query.with_(model_versions=(self.version,))

    def columns(self, query: Query) -> list[ColumnInfo]:
        return self.store.columns(self._narrow(query))

    def rows(
        self, query: Query, columns: Sequence[str] | None = None, chunk_size: int = 50_000
    ) -> Iterator[pd.DataFrame]:
        return self.store.rows(self._narrow(query), columns, chunk_size)

    def sample(self, query: Query, n: int, seed: int = 0, columns: Sequence[str] | None = None) -> pd.DataFrame:
        return self.store.sample(self._narrow(query), n, seed, columns)

    def count(self, query: Query) -> float:
        return self.store.count(self._narrow(query))

    def sample_size(self, query: Query) -> SampleSize:
        return self.store.sample_size(self._narrow(query))

    def numeric_summary(self, query: Query, column: str) -> NumericSummary:
        return self.store.numeric_summary(self._narrow(query), column)

    def numeric_summaries(self, query: Query, columns: Sequence[str]) -> dict[str, NumericSummary]:
        return self.store.numeric_summaries(self._narrow(query), columns)

    def category_counts(self, query: Query, column: str) -> dict[Any, float]:
        return self.store.category_counts(self._narrow(query), column)

    def histogram(self, query: Query, column: str, edges: Sequence[float]) -> Histogram:
        return self.store.histogram(self._narrow(query), column, edges)

    def histograms(self, query: Query, edges: Mapping[str, Sequence[float]]) -> dict[str, Histogram]:
        return self.store.histograms(self._narrow(query), edges)

    def bucketed_histograms(
        self, query: Query, column: str, edges: Sequence[float], *, bucket: timedelta, by: str | None = None
    ) -> BucketedHistograms:
        return self.store.bucketed_histograms(self._narrow(query), column, edges, bucket=bucket, by=by)

    def quantiles(self, query: Query, column: str, qs: Sequence[float]) -> list[float | None]:
        return self.store.quantiles(self._narrow(query), column, qs)

    def crosstab(self, query: Query, columns: Sequence[str]) -> pd.DataFrame:
        return self.store.crosstab(self._narrow(query), columns)

    def volume(self, query: Query, bucket: timedelta) -> pd.DataFrame:
        return self.store.volume(self._narrow(query), bucket)

    def quality(self, query: Query) -> QualityReport:
        return self.store.quality(self._narrow(query))

    def dead_letter_pile(self) -> DeadLetterPile | None:
        return self.store.dead_letter_pile()


def _combined_status(whole: Finding, parts: Sequence[VersionFinding], signals: Sequence[Signal]) -> Status:
    if signals:
        return "alert"
    if whole.status == "ok" or any(p.status == "ok" for p in parts):
        return "ok"
    return whole.status


def run_by_version(run: Job, store: PredictionReader, model: str, config: JobConfig, window: Window) -> Finding:
    """The job over the whole window, then over each live version alone (at most ``MAX_VERSIONS``, most
    traffic first): the whole window's numbers stay the finding's own, each version's result is listed in
    ``by_version``, and the alerts are the versions' signals, each under a subject naming its version.

    A version whose run fails makes the finding an ``error`` naming the version (a silent gap would look
    like good news).
    """
    whole = run(store, model, config, window)
    if whole.status == "error":
        return whole
    everything = Query(model, window)
    traffic = live_versions(store, everything)
    total = store.count(everything)  # events without a version count in the whole, not in any share
    parts: list[VersionFinding] = []
    signals: list[Signal] = []
    for version in list(traffic)[:MAX_VERSIONS]:
        part = run(VersionSlice(store, window, version), model, config, window)
        parts.append(
            VersionFinding(
                version=version,
                events=traffic[version],
                share=traffic[version] / total if total > 0 else None,
                status=part.status,
                metrics=part.metrics,
                signals=part.signals,
                error=part.error,
            )
        )
        for s in part.signals:
            subject = version_subject(version, s.subject)
            signals.append(Signal(subject, f"[{version}] {s.message}", s.severity, s.value, s.threshold))
    split = VersionSplit(parts, left_out=max(len(traffic) - MAX_VERSIONS, 0))
    failed = [p for p in parts if p.status == "error"]
    if failed:
        error = "; ".join(f"version {p.version}: {p.error or 'failed'}" for p in failed)
        return Finding(model, whole.job, window, "error", whole.metrics, whole.reference, error=error, by_version=split)
    status = _combined_status(whole, parts, signals)
    return Finding(model, whole.job, window, status, whole.metrics, whole.reference, signals, by_version=split)
