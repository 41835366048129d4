"""Aggregates as Elasticsearch aggregations over a query's context: the request bodies and the reading of answers.

Every count is the sum of the sample-rate weight; percentiles are TDigest estimates, so quantiles are approximate.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from analyzers.store.base import BucketedHistograms, ColumnInfo, Histogram, NumericSummary
from analyzers.store.elastic import limits
from analyzers.store.elastic.connection import Connection
from analyzers.store.elastic.mapping import Field
from analyzers.store.elastic.queries import Context, weight_agg, weight_sq_agg, weighted_value_agg
from analyzers.timeutil import Window
from logshipper.schema import (
    EVENT_OUTCOME,
    FEATURE_PREFIX,
    GROUP_PREFIX,
    OUTCOME_FAILURE,
    SAMPLE_RATE,
    TIMESTAMP,
    column_path,
)


def _aggregate(conn: Connection, ctx: Context, aggs: dict[str, Any], what: str) -> dict[str, Any]:
    answer = conn.call(
        f"{what} over {ctx.indices}",
        lambda: conn.es.search(**ctx.search_args(), aggs=aggs, size=0, track_total_hits=False),
    )
    return answer.get("aggregations") or {}


def _plain(value: Any, es_type: str | None) -> Any:
    """An aggregation key as the Python value the logs held: integral doubles as ints, booleans as bools."""
    if es_type == "boolean" and value in (0, 1, "true", "false"):
        return value in (1, "true")
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def count(conn: Connection, ctx: Context) -> float:
    """Weighted number of the context's predictions."""
    aggs = _aggregate(conn, ctx, {"w": weight_agg()}, "counting")
    return float((aggs.get("w") or {}).get("value") or 0.0)


def columns(conn: Connection, ctx: Context) -> list[ColumnInfo]:
    """The prediction, score, label, feature and group columns present, with their weighted counts."""
    wanted = {
        name: field
        for name, field in ctx.fields.items()
        if name in ("prediction", "score", "label") or name.startswith((FEATURE_PREFIX, GROUP_PREFIX))
    }
    if not wanted:
        return []
    names = sorted(wanted, key=lambda n: (n.startswith((FEATURE_PREFIX, GROUP_PREFIX)), n))
    aggs = {
        f"c{i}": {"filter": {"exists": {"field": wanted[n].path}}, "aggs": {"w": weight_agg()}}
        for i, n in enumerate(names)
    }
    answer = _aggregate(conn, ctx, aggs, "discovering columns")
    out = []
    for i, name in enumerate(names):
        bucket = answer.get(f"c{i}") or {}
        if bucket.get("doc_count"):
            out.append(ColumnInfo(name, wanted[name].kind, float((bucket.get("w") or {}).get("value") or 0.0)))
    return out


def numeric_summary(conn: Connection, ctx: Context, column: str) -> NumericSummary:
    """Weighted count, missing, mean, standard deviation, min and max of a numeric column."""
    field = ctx.fields.get(column)
    aggs: dict[str, Any] = {"w": weight_agg()}
    if field is not None and field.kind == "numeric":
        aggs["has"] = {
            "filter": {"exists": {"field": field.path}},
            "aggs": {
                "w": weight_agg(),
                "wx": weighted_value_agg(field.path, 1),
                "wxx": weighted_value_agg(field.path, 2),
                "min": {"min": {"field": field.path}},
                "max": {"max": {"field": field.path}},
            },
        }
    answer = _aggregate(conn, ctx, aggs, f"summarising {column}")
    total = float((answer.get("w") or {}).get("value") or 0.0)
    has = answer.get("has") or {}
    n = float((has.get("w") or {}).get("value") or 0.0) if has.get("doc_count") else 0.0
    if not n:
        return NumericSummary(0.0, total, None, None, None, None)
    mean = float(has["wx"]["value"]) / n
    std = float(np.sqrt(max(float(has["wxx"]["value"]) / n - mean * mean, 0.0)))
    return NumericSummary(n, max(total - n, 0.0), mean, std, has["min"]["value"], has["max"]["value"])


def histogram_edges(edges: Sequence[float]) -> np.ndarray:
    """The edges as an array, checked to be at least two ascending numbers."""
    edges_arr = np.asarray(edges, dtype=float)
    if edges_arr.ndim != 1 or len(edges_arr) < 2 or np.any(np.diff(edges_arr) < 0):
        raise ValueError("histogram edges must be at least two ascending numbers")
    return edges_arr


def histogram(conn: Connection, ctx: Context, column: str, edges_arr: np.ndarray) -> Histogram:
    """Weighted counts between the edges (checked by ``histogram_edges``), below, above and missing."""
    field = ctx.fields.get(column)
    aggs: dict[str, Any] = {"w": weight_agg()}
    if field is not None and field.kind == "numeric":
        ranges = [{"key": "under", "to": float(edges_arr[0])}]
        ranges += [
            {"key": f"b{i}", "from": float(lo), "to": float(hi)}
            for i, (lo, hi) in enumerate(itertools.pairwise(edges_arr))
        ]
        ranges.append({"key": "over", "from": float(edges_arr[-1])})
        aggs["bins"] = {
            "range": {"field": field.path, "ranges": ranges, "keyed": True},
            "aggs": {"w": weight_agg()},
        }
    answer = _aggregate(conn, ctx, aggs, f"binning {column}")
    total = float((answer.get("w") or {}).get("value") or 0.0)
    buckets = (answer.get("bins") or {}).get("buckets") or {}

    def weight(key: str) -> float:
        bucket = buckets.get(key) or {}
        return float((bucket.get("w") or {}).get("value") or 0.0) if bucket.get("doc_count") else 0.0

    counts = np.array([weight(f"b{i}") for i in range(len(edges_arr) - 1)], dtype=float)
    under, over = weight("under"), weight("over")
    missing = max(total - under - over - float(counts.sum()), 0.0)
    return Histogram(edges_arr, counts, under, over, missing)


def quantiles(conn: Connection, ctx: Context, column: str, qs: Sequence[float]) -> list[float | None]:
    """TDigest percentiles per sample-rate stratum, mixed by weight: approximate, as Elasticsearch's are."""
    field = ctx.fields.get(column)
    if field is None or field.kind != "numeric":
        return [None] * len(qs)
    grid = sorted({*(float(q) * 100 for q in qs), *np.linspace(0.0, 100.0, 201).tolist()})
    inner = {
        "n": {"value_count": {"field": field.path}},
        "p": {"percentiles": {"field": field.path, "percents": grid, "keyed": False}},
    }
    aggs = {
        "rates": {"terms": {"field": SAMPLE_RATE, "size": 100}, "aggs": inner},
        "unsampled": {"missing": {"field": SAMPLE_RATE}, "aggs": inner},
    }
    answer = _aggregate(conn, ctx, aggs, f"percentiles of {column}")
    strata = [(float(b["key"]), b) for b in (answer.get("rates") or {}).get("buckets") or []]
    strata.append((1.0, answer.get("unsampled") or {}))
    mixture = []
    for rate, bucket in strata:
        n = float((bucket.get("n") or {}).get("value") or 0.0)
        points = [
            (p["key"], p["value"]) for p in (bucket.get("p") or {}).get("values") or [] if p.get("value") is not None
        ]
        if n and points:
            mixture.append((n / (rate if rate > 0 else 1.0), points))
    if not mixture:
        return [None] * len(qs)
    if len(mixture) == 1:
        points = mixture[0][1]
        return [float(_nearest(points, q * 100)[1]) for q in qs]
    return _mixed_quantiles(mixture, qs)


def _nearest(points: Sequence[tuple[float, float]], percent: float) -> tuple[float, float]:
    """The (percent, value) point whose percent is closest to ``percent``."""
    return min(points, key=lambda p: abs(p[0] - percent))


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


def crosstab(conn: Connection, ctx: Context, columns: Sequence[str], total: Callable[[], float]) -> pd.DataFrame:
    """Weighted count per combination of values (missing as None), paging a composite aggregation.

    ``total`` counts the query when none of the columns is mapped (one row of Nones, or none).
    """
    for column in columns:
        column_path(column)  # unknown names fail with the list of known ones
    mapped = [c for c in columns if c in ctx.fields]
    sources = [
        {f"k{i}": {"terms": {"field": ctx.fields[c].path, "missing_bucket": True}}} for i, c in enumerate(mapped)
    ]
    rows: list[list[Any]] = []
    if not sources:
        everything = total()
        rows = [[None] * len(columns) + [everything]] if everything else []
    else:
        after: dict[str, Any] | None = None
        while True:
            composite: dict[str, Any] = {"size": limits.COMPOSITE_PAGE, "sources": sources}
            if after is not None:
                composite["after"] = after
            answer = _aggregate(
                conn, ctx, {"t": {"composite": composite, "aggs": {"w": weight_agg()}}}, "counting combinations"
            )
            part = answer.get("t") or {}
            buckets = part.get("buckets") or []
            for bucket in buckets:
                key = bucket["key"]
                values = {c: _plain(key.get(f"k{i}"), ctx.fields[c].es_type) for i, c in enumerate(mapped)}
                rows.append([values.get(c) for c in columns] + [float(bucket["w"]["value"] or 0.0)])
            after = part.get("after_key")
            if not buckets or after is None or len(buckets) < limits.COMPOSITE_PAGE:
                break
    data = {c: pd.Series([r[i] for r in rows], dtype=object) for i, c in enumerate(columns)}
    return pd.DataFrame({**data, "count": pd.Series([r[-1] for r in rows], dtype=float)})


def volume(conn: Connection, ctx: Context, window: Window, bucket: timedelta) -> pd.DataFrame:
    """Weighted predictions and failures per time bucket (a positive length) from the window's start."""
    seconds = bucket.total_seconds()
    interval_ms = max(round(seconds * 1000), 1)
    start = window.start
    start_ms = int(start.timestamp() * 1000)
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
            "aggs": {
                "w": weight_agg(),
                "failures": {"filter": {"term": {EVENT_OUTCOME: OUTCOME_FAILURE}}, "aggs": {"w": weight_agg()}},
            },
        }
    }
    answer = _aggregate(conn, ctx, aggs, "counting volume")
    counts = np.zeros(n_buckets)
    failures = np.zeros(n_buckets)
    for b in (answer.get("v") or {}).get("buckets") or []:
        index = (int(b["key"]) - start_ms) // interval_ms
        if 0 <= index < n_buckets and b.get("doc_count"):
            counts[index] += float(b["w"]["value"] or 0.0)
            failures[index] += float(b["failures"]["w"]["value"] or 0.0) if b["failures"].get("doc_count") else 0.0
    starts = pd.date_range(start=start, periods=n_buckets, freq=pd.Timedelta(milliseconds=interval_ms), tz="UTC")
    return pd.DataFrame({"start": starts, "count": counts, "failures": failures})


def bucketed_histograms(
    conn: Connection,
    ctx: Context,
    column: str,
    edges_arr: np.ndarray,
    *,
    window: Window,
    bucket: timedelta,
    by: str | None,
) -> BucketedHistograms:
    """Per time bucket (from the window's start) and value of ``by``: a composite aggregation of a date histogram
    and the ``by`` terms, each composite bucket holding a range aggregation over the edges, paged so that one
    response stays within ``search.max_buckets``."""
    interval_ms = max(round(bucket.total_seconds() * 1000), 1)
    start_ms = int(window.start.timestamp() * 1000)
    n_buckets = max(int(np.ceil(window.length.total_seconds() * 1000 / interval_ms)), 1)
    time_source = {"date_histogram": {"field": TIMESTAMP, "fixed_interval": f"{interval_ms}ms"}}
    time_source["date_histogram"]["offset"] = f"+{start_ms % interval_ms}ms"
    sources: list[dict[str, Any]] = [{"t": time_source}]
    by_field = ctx.fields.get(by) if by is not None else None
    if by_field is not None:
        sources.append({"k": {"terms": {"field": by_field.path, "missing_bucket": True}}})
    inner: dict[str, Any] = {"w": weight_agg()}
    field = ctx.fields.get(column)
    if field is not None and field.kind == "numeric":
        ranges = [{"key": "under", "to": float(edges_arr[0])}]
        ranges += [
            {"key": f"b{i}", "from": float(lo), "to": float(hi)}
            for i, (lo, hi) in enumerate(itertools.pairwise(edges_arr))
        ]
        ranges.append({"key": "over", "from": float(edges_arr[-1])})
        sums = {"w": weight_agg(), "w2": weight_sq_agg()}
        inner["bins"] = {"range": {"field": field.path, "ranges": ranges, "keyed": True}, "aggs": sums}
    page = max(1, min(limits.COMPOSITE_PAGE, limits.MAX_BUCKETS // (len(edges_arr) + 3)))
    cells = len(edges_arr) + 1
    found: dict[Any, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # key: counts, squared weights, missing
    after: dict[str, Any] | None = None
    while True:
        composite: dict[str, Any] = {"size": page, "sources": sources}
        if after is not None:
            composite["after"] = after
        answer = _aggregate(conn, ctx, {"h": {"composite": composite, "aggs": inner}}, f"binning {column} over time")
        part = answer.get("h") or {}
        buckets = part.get("buckets") or []
        for composite_bucket in buckets:
            _add_bucket(composite_bucket, found, start_ms, interval_ms, n_buckets, cells, by_field)
        after = part.get("after_key")
        if not buckets or after is None or len(buckets) < page:
            break
    keys = sorted(found, key=BucketedHistograms.key_order)
    counts = np.zeros((n_buckets, len(keys), cells))
    squares = np.zeros((n_buckets, len(keys), cells))
    missing = np.zeros((n_buckets, len(keys)))
    for position, key in enumerate(keys):
        counts[:, position, :], squares[:, position, :], missing[:, position] = found[key]
    starts = pd.date_range(start=window.start, periods=n_buckets, freq=pd.Timedelta(milliseconds=interval_ms), tz="UTC")
    return BucketedHistograms(starts, edges_arr, keys, counts, squares, missing)


def _add_bucket(
    composite_bucket: dict[str, Any],
    found: dict[Any, tuple[np.ndarray, np.ndarray, np.ndarray]],
    start_ms: int,
    interval_ms: int,
    n_buckets: int,
    cells: int,
    by_field: Field | None,
) -> None:
    """One composite bucket's weighted counts per cell and missing count into ``found``."""
    index = (int(composite_bucket["key"]["t"]) - start_ms) // interval_ms
    if not 0 <= index < n_buckets or not composite_bucket.get("doc_count"):
        return
    key = _plain(composite_bucket["key"].get("k"), by_field.es_type) if by_field is not None else None
    empty = (np.zeros((n_buckets, cells)), np.zeros((n_buckets, cells)), np.zeros(n_buckets))
    counts, squares, missing = found.setdefault(key, empty)
    ranges = (composite_bucket.get("bins") or {}).get("buckets") or {}

    def weight(name: str, sum_of: str) -> float:
        one = ranges.get(name) or {}
        return float((one.get(sum_of) or {}).get("value") or 0.0) if one.get("doc_count") else 0.0

    names = ["under", *(f"b{i}" for i in range(cells - 2)), "over"]
    row = np.array([weight(name, "w") for name in names])
    counts[index] += row
    squares[index] += [weight(name, "w2") for name in names]
    total = float((composite_bucket.get("w") or {}).get("value") or 0.0)
    missing[index] += max(total - float(row.sum()), 0.0)
