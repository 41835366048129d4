"""Aggregates as Elasticsearch aggregations over a query's predictions: the request bodies and the reading of
answers.  Every aggregation runs inside the sample-rate strata (:func:`queries.strata`), so counts are
weighted without scripts; percentiles are TDigest estimates, so quantiles are approximate.

Batched forms answer many columns in one search: :func:`histograms` (a ``range`` aggregation per column side
by side), :func:`crosstab` (one ``composite`` aggregation over all the columns and the rate, paged), and
many windows in one: :func:`bucketed_histograms` (a ``composite`` of time buckets, values and the rate, each
holding a ``range`` aggregation, paged).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from analyzers.stats.sampling import SampleSize
from analyzers.store.base import BucketedHistograms, Histogram, Query
from analyzers.store.elastic import limits
from analyzers.store.elastic.connection import Connection
from analyzers.store.elastic.indices import predictions_pattern
from analyzers.store.elastic.keys import key_value
from analyzers.store.elastic.mapping import Field
from analyzers.store.elastic.queries import (
    SEARCH_OPTIONS,
    bool_filter,
    prediction_filter,
    strata,
    strata_of,
    term,
    weight,
)
from analyzers.store.elastic.rowset import Counts, table
from analyzers.timeutil import Window
from logshipper.schema import EVENT_OUTCOME, OUTCOME_FAILURE, SAMPLE_RATE, TIMESTAMP


def search_aggs(conn: Connection, query: Query, aggs: dict[str, Any], what: str) -> dict[str, Any]:
    """The ``aggregations`` of a size-0 search over the query's predictions."""
    index = predictions_pattern(query.model)
    answer = conn.call(
        f"{what} over {index}",
        lambda es: es.search(
            index=index,
            **SEARCH_OPTIONS,
            query=bool_filter(prediction_filter(query)),
            aggregations=aggs,
            size=0,
            track_total_hits=False,
        ),
    )
    return answer.get("aggregations") or {}


def sample_size(conn: Connection, query: Query) -> SampleSize:
    """Weighted number of the query's predictions, their sum of squared weights and their number (one search:
    the documents of each sample rate weigh the same)."""
    layers = list(strata_of(search_aggs(conn, query, strata({}), "counting"), "counting"))
    return SampleSize(
        sum(s.weight * s.docs for s in layers),
        sum(s.weight * s.weight * s.docs for s in layers),
        sum(s.docs for s in layers),
    )


def histogram_edges(edges: Sequence[float]) -> np.ndarray:
    """The edges as an array, checked to be at least two ascending numbers."""
    edges_arr = np.asarray(edges, dtype=float)
    if edges_arr.ndim != 1 or len(edges_arr) < 2 or np.any(np.diff(edges_arr) < 0):
        raise ValueError("histogram edges must be at least two ascending numbers")
    return edges_arr


def _ranges(edges: np.ndarray) -> list[dict[str, Any]]:
    ranges: list[dict[str, Any]] = [{"key": "under", "to": float(edges[0])}]
    ranges += [
        {"key": f"b{i}", "from": float(lo), "to": float(hi)} for i, (lo, hi) in enumerate(itertools.pairwise(edges))
    ]
    ranges.append({"key": "over", "from": float(edges[-1])})
    return ranges


def histograms(
    conn: Connection, query: Query, edges: Mapping[str, np.ndarray], fields: Mapping[str, Field]
) -> dict[str, Histogram]:
    """Weighted counts between each column's edges, below, above and missing: every column in one search."""
    names = list(edges)
    numeric = {i: fields[n] for i, n in enumerate(names) if n in fields and fields[n].kind == "numeric"}
    aggs = {
        f"h{i}": {"range": {"field": f.path, "ranges": _ranges(edges[names[i]]), "keyed": True}}
        for i, f in numeric.items()
    }
    answer = search_aggs(conn, query, strata(aggs), f"binning {len(names)} column(s)")
    layers = list(strata_of(answer, "binning"))
    total = sum(s.weight * s.docs for s in layers)
    out: dict[str, Histogram] = {}
    for i, name in enumerate(names):
        edges_arr = edges[name]
        full = np.zeros(len(edges_arr) + 1)
        if i in numeric:
            keys = ["under", *(f"b{j}" for j in range(len(edges_arr) - 1)), "over"]
            for s in layers:
                buckets = (s.bucket.get(f"h{i}") or {}).get("buckets") or {}
                full += s.weight * np.array([float((buckets.get(k) or {}).get("doc_count") or 0) for k in keys])
        missing = max(total - float(full.sum()), 0.0)
        out[name] = Histogram(edges_arr, full[1:-1], float(full[0]), float(full[-1]), missing)
    return out


def quantiles(conn: Connection, query: Query, field: Field, qs: Sequence[float]) -> list[float | None]:
    """TDigest percentiles per sample-rate stratum, mixed by weight: approximate, as Elasticsearch's are."""
    grid = sorted({*(float(q) * 100 for q in qs), *np.linspace(0.0, 100.0, 201).tolist()})
    inner = {
        "n": {"value_count": {"field": field.path}},
        "p": {"percentiles": {"field": field.path, "percents": grid, "keyed": False}},
    }
    answer = search_aggs(conn, query, strata(inner), f"percentiles of {field.path}")
    mixture = []
    for s in strata_of(answer, "percentiles"):
        n = float((s.bucket.get("n") or {}).get("value") or 0.0)
        points = [
            (p["key"], p["value"]) for p in (s.bucket.get("p") or {}).get("values") or [] if p.get("value") is not None
        ]
        if n and points:
            mixture.append((n * s.weight, points))
    if not mixture:
        return [None] * len(qs)
    if len(mixture) == 1:
        points = mixture[0][1]
        return [_nearest(points, float(q) * 100) for q in qs]
    return _mixed_quantiles(mixture, qs)


def _nearest(points: list[tuple[float, float]], percent: float) -> float:
    """The value at the percentile nearest ``percent``."""
    return float(min(points, key=lambda p: abs(p[0] - percent))[1])


def _mixed_quantiles(mixture: list[tuple[float, list[tuple[float, float]]]], qs: Sequence[float]) -> list[float | None]:
    """Quantiles of a weighted mixture of strata, each known by its percentile curve."""
    total = sum(w for w, _ in mixture)
    xs = np.unique(np.concatenate([[x for _, x in points] for _, points in mixture]))
    cdf = np.zeros(len(xs))
    for w, points in mixture:
        ps = np.array([p for p, _ in points]) / 100.0
        vs = np.maximum.accumulate(np.array([x for _, x in points], dtype=float))
        cdf += w * np.interp(xs, vs, ps, left=0.0, right=1.0)
    cdf /= total
    out: list[float | None] = []
    for q in qs:
        i = int(np.searchsorted(cdf, float(q) - 1e-9, side="left"))
        out.append(float(xs[min(i, len(xs) - 1)]))
    return out


def composite_counts(
    conn: Connection, query: Query, columns: Sequence[str], fields: Mapping[str, Field], what: str
) -> Counts:
    """Weighted count per combination of the columns' values (missing as None; an unmapped column is all
    None), from one composite aggregation over the columns and the sample rate, a page at a time."""
    return composite_tallies(conn, query, columns, fields, what)[0]


def composite_tallies(
    conn: Connection, query: Query, columns: Sequence[str], fields: Mapping[str, Field], what: str
) -> tuple[Counts, Counts]:
    """Weighted count and sum of squared weights per combination of the columns' values, as
    :func:`composite_counts` reads them (a combination's documents all have their rate's weight)."""
    mapped = [c for c in columns if c in fields]
    sources: list[dict[str, Any]] = [
        {f"k{i}": {"terms": {"field": fields[c].path, "missing_bucket": True}}} for i, c in enumerate(mapped)
    ]
    sources.append({"rate": {"terms": {"field": SAMPLE_RATE, "missing_bucket": True}}})
    counts: Counts = {}
    squares: Counts = {}
    after: dict[str, Any] | None = None
    while True:
        composite: dict[str, Any] = {"size": limits.COMPOSITE_PAGE, "sources": sources}
        if after is not None:
            composite["after"] = after
        part = search_aggs(conn, query, {"t": {"composite": composite}}, what).get("t") or {}
        buckets = part.get("buckets") or []
        for bucket in buckets:
            key = bucket["key"]
            values = {c: key_value(key.get(f"k{i}"), fields[c].es_type) for i, c in enumerate(mapped)}
            combination = tuple(values.get(c) for c in columns)
            w, docs = weight(key.get("rate")), float(bucket["doc_count"])
            counts[combination] = counts.get(combination, 0.0) + w * docs
            squares[combination] = squares.get(combination, 0.0) + w * w * docs
        after = part.get("after_key")
        if not buckets or after is None or len(buckets) < limits.COMPOSITE_PAGE:
            return counts, squares


def crosstab(conn: Connection, query: Query, columns: Sequence[str], fields: Mapping[str, Field]) -> pd.DataFrame:
    """Weighted count and sum of squared weights per combination of values (missing as None): one composite
    aggregation, paged."""
    return table(columns, *composite_tallies(conn, query, columns, fields, "counting combinations"))


def category_counts(conn: Connection, query: Query, column: str, fields: Mapping[str, Field]) -> dict[Any, float]:
    """Weighted count per value of one column, missing under ``None``."""
    counts = composite_counts(conn, query, [column], fields, f"counting the values of {column}")
    return {k[0]: v for k, v in counts.items()}


def volume(conn: Connection, query: Query, window: Window, bucket: timedelta) -> tuple[pd.DataFrame, SampleSize]:
    """Weighted predictions and failures per time bucket (a positive length) from the window's start, and the
    size of the whole (which the same answer gives)."""
    seconds = bucket.total_seconds()
    interval_ms = max(round(seconds * 1000), 1)
    start_ms = int(window.start.timestamp() * 1000)
    end_ms = int(window.end.timestamp() * 1000)
    n_buckets = int(np.ceil(window.length.total_seconds() / seconds))
    aggs = {
        "v": {
            "date_histogram": {
                "field": TIMESTAMP,
                "fixed_interval": f"{interval_ms}ms",
                "offset": f"+{start_ms % interval_ms}ms",
                "min_doc_count": 0,
                "extended_bounds": {"min": start_ms, "max": end_ms - 1},
            },
            "aggregations": strata({"failures": {"filter": term(EVENT_OUTCOME, OUTCOME_FAILURE)}}),
        }
    }
    answer = search_aggs(conn, query, aggs, "counting volume")
    counts = np.zeros(n_buckets)
    failures = np.zeros(n_buckets)
    squares = docs = 0.0
    for b in (answer.get("v") or {}).get("buckets") or []:
        index = (int(b["key"]) - start_ms) // interval_ms
        if not 0 <= index < n_buckets or not b.get("doc_count"):
            continue
        for s in strata_of(b, "counting volume"):
            counts[index] += s.weight * s.docs
            failures[index] += s.weight * float((s.bucket.get("failures") or {}).get("doc_count") or 0)
            squares += s.weight * s.weight * s.docs
            docs += s.docs
    starts = pd.date_range(start=window.start, periods=n_buckets, freq=pd.Timedelta(milliseconds=interval_ms), tz="UTC")
    frame = pd.DataFrame({"start": starts, "count": counts, "failures": failures})
    return frame, SampleSize(float(counts.sum()), squares, docs)


def bucket_grid(window: Window, bucket: timedelta) -> pd.DatetimeIndex:
    """The starts of the buckets of length ``bucket`` (positive) that cover the window from its start."""
    interval_ms = max(round(bucket.total_seconds() * 1000), 1)
    n_buckets = max(int(np.ceil(window.length.total_seconds() * 1000 / interval_ms)), 1)
    return pd.date_range(start=window.start, periods=n_buckets, freq=pd.Timedelta(milliseconds=interval_ms), tz="UTC")


def bucketed_histograms(
    conn: Connection,
    query: Query,
    column: str,
    edges: np.ndarray,
    *,
    fields: Mapping[str, Field],
    bucket: timedelta,
    by: str | None,
) -> BucketedHistograms:
    """Weighted counts (and squared weights) of a column between the edges per time bucket from the window's
    start and value of ``by``: one composite aggregation of a date histogram, the ``by`` terms and the sample
    rate, each composite bucket holding a range aggregation over the edges, paged so that one answer stays
    within ``search.max_buckets``.  An unmapped ``by`` is all ``None``; an unmapped column is all missing."""
    starts = bucket_grid(query.window, bucket)
    interval_ms = max(round(bucket.total_seconds() * 1000), 1)
    start_ms = int(query.window.start.timestamp() * 1000)
    time_source = {"field": TIMESTAMP, "fixed_interval": f"{interval_ms}ms", "offset": f"+{start_ms % interval_ms}ms"}
    sources: list[dict[str, Any]] = [{"t": {"date_histogram": time_source}}]
    by_field = fields.get(by) if by is not None else None
    if by_field is not None:
        sources.append({"k": {"terms": {"field": by_field.path, "missing_bucket": True}}})
    sources.append({"rate": {"terms": {"field": SAMPLE_RATE, "missing_bucket": True}}})
    field = fields.get(column)
    inner: dict[str, Any] = {}
    if field is not None and field.kind == "numeric":
        inner["bins"] = {"range": {"field": field.path, "ranges": _ranges(edges), "keyed": True}}
    cells = len(edges) + 1
    names = ["under", *(f"b{i}" for i in range(cells - 2)), "over"]
    page = max(1, min(limits.COMPOSITE_PAGE, limits.MAX_BUCKETS // (cells + 2)))
    found: dict[Any, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # key: counts, squared weights, missing
    after: dict[str, Any] | None = None
    while True:
        composite: dict[str, Any] = {"size": page, "sources": sources}
        if after is not None:
            composite["after"] = after
        spec: dict[str, Any] = {"composite": composite}
        if inner:
            spec["aggregations"] = inner
        part = search_aggs(conn, query, {"h": spec}, f"binning {column} over time").get("h") or {}
        buckets = part.get("buckets") or []
        for one in buckets:
            index = (int(one["key"]["t"]) - start_ms) // interval_ms
            docs = float(one.get("doc_count") or 0)
            if not 0 <= index < len(starts) or not docs:
                continue
            key = key_value(one["key"].get("k"), by_field.es_type) if by_field is not None else None
            empty = (np.zeros((len(starts), cells)), np.zeros((len(starts), cells)), np.zeros(len(starts)))
            counts, squares, missing = found.setdefault(key, empty)
            ranges = (one.get("bins") or {}).get("buckets") or {}
            row = np.array([float((ranges.get(name) or {}).get("doc_count") or 0) for name in names])
            w = weight(one["key"].get("rate"))
            counts[index] += w * row
            squares[index] += w * w * row
            missing[index] += w * max(docs - float(row.sum()), 0.0)
        after = part.get("after_key")
        if not buckets or after is None or len(buckets) < page:
            break
    keys = sorted(found, key=BucketedHistograms.key_order)
    out_counts = np.zeros((len(starts), len(keys), cells))
    out_squares = np.zeros((len(starts), len(keys), cells))
    out_missing = np.zeros((len(starts), len(keys)))
    for position, key in enumerate(keys):
        out_counts[:, position, :], out_squares[:, position, :], out_missing[:, position] = found[key]
    return BucketedHistograms(starts, edges, keys, out_counts, out_squares, out_missing)
