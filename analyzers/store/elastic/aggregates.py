"""Aggregates as Elasticsearch aggregations over a query's context: the request bodies and the reading of answers.

Every count is the sum of the sample-rate weight (with the sum of its square where tests need the effective
size); percentiles are TDigest estimates, so quantiles are approximate.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from analyzers.stats.sampling import SampleSize
from analyzers.store.base import ColumnInfo, Histogram, NumericSummary
from analyzers.store.elastic import limits
from analyzers.store.elastic.connection import Connection
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


def sample_size(conn: Connection, ctx: Context) -> SampleSize:
    """Weighted count, sum of squared weights and number of documents of the context's predictions."""
    aggs = {"w": weight_agg(), "w2": weight_sq_agg(), "all": {"filter": {"match_all": {}}}}
    answer = _aggregate(conn, ctx, aggs, "sizing")
    return SampleSize(
        float((answer.get("w") or {}).get("value") or 0.0),
        float((answer.get("w2") or {}).get("value") or 0.0),
        float((answer.get("all") or {}).get("doc_count") or 0),
    )


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


def crosstab(conn: Connection, ctx: Context, columns: Sequence[str], total: Callable[[], SampleSize]) -> pd.DataFrame:
    """Weighted count and sum of squared weights per combination of values (missing as None), paging a
    composite aggregation.

    ``total`` sizes the query when none of the columns is mapped (one row of Nones, or none).
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
        rows = [[None] * len(columns) + [everything.weighted, everything.squares]] if everything.weighted else []
    else:
        after: dict[str, Any] | None = None
        while True:
            composite: dict[str, Any] = {"size": limits.COMPOSITE_PAGE, "sources": sources}
            if after is not None:
                composite["after"] = after
            answer = _aggregate(
                conn,
                ctx,
                {"t": {"composite": composite, "aggs": {"w": weight_agg(), "w2": weight_sq_agg()}}},
                "counting combinations",
            )
            part = answer.get("t") or {}
            buckets = part.get("buckets") or []
            for bucket in buckets:
                key = bucket["key"]
                values = {c: _plain(key.get(f"k{i}"), ctx.fields[c].es_type) for i, c in enumerate(mapped)}
                weighted = float(bucket["w"]["value"] or 0.0)
                rows.append([values.get(c) for c in columns] + [weighted, float(bucket["w2"]["value"] or 0.0)])
            after = part.get("after_key")
            if not buckets or after is None or len(buckets) < limits.COMPOSITE_PAGE:
                break
    data = {c: pd.Series([r[i] for r in rows], dtype=object) for i, c in enumerate(columns)}
    return pd.DataFrame(
        {
            **data,
            "count": pd.Series([r[-2] for r in rows], dtype=float),
            "weight_sq": pd.Series([r[-1] for r in rows], dtype=float),
        }
    )


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
