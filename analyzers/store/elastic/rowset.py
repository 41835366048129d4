"""Rows read back from Elasticsearch and aggregated here, with the same answers the aggregations give.

Two kinds of rows end up here, both bounded by something other than the window's size: the labelled
predictions of a window (the label lives in other indices, see :mod:`analyzers.store.elastic.labels`), and
the values of a column Elasticsearch cannot aggregate as one type (see :mod:`analyzers.store.elastic.mapping`).
Values follow the store's contract (:func:`plain`): strings, integers, floats, booleans as logged, missing as
``None``, arrays and objects as their compact JSON text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd

from analyzers.stats.sampling import SampleSize
from analyzers.store.base import BucketedHistograms, ColumnKind, Histogram, NumericSummary, Query

Counts = dict[tuple[Any, ...], float]  # a value per combination of columns' values


def plain(value: Any) -> Any:
    """A value out of ``_source`` as the store gives it: arrays and objects become their compact JSON text."""
    if isinstance(value, (list, dict)):
        return orjson.dumps(value).decode()
    return value


def is_number(value: Any) -> bool:
    """A JSON number (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def kind_of(values: Sequence[Any]) -> ColumnKind:
    """Numeric when every value present is a number, else categorical (an empty column is numeric)."""
    return "numeric" if all(is_number(v) for v in values if v is not None) else "categorical"


def _numbers(values: pd.Series) -> np.ndarray:
    """The numbers of a column as floats (anything else, booleans included, and NaN, as NaN)."""
    if values.dtype.kind in "if":
        return values.to_numpy(dtype=float)
    numbers = values.map(lambda v: float(v) if is_number(v) else np.nan)
    return numbers.to_numpy(dtype=float, na_value=np.nan)


def _accepted(values: tuple[Any, ...]) -> list[Any]:
    """Cell values a filter's values match: themselves, and ``True`` for ``"true"`` (as a terms query does)."""
    out: list[Any] = []
    for value in values:
        out.append(value)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            out.append(value.lower() == "true")
        elif isinstance(value, bool):
            out.append(str(value).lower())
    return out


class RowSet:
    """A frame of logical columns (plus ``sample_rate``) with the store's aggregates computed over it."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.frame)

    def weights(self) -> np.ndarray:
        if "sample_rate" not in self.frame:
            return np.ones(len(self.frame))
        rate = _numbers(self.frame["sample_rate"])
        return np.where(np.isfinite(rate) & (rate > 0), 1.0 / np.where(rate > 0, rate, 1.0), 1.0)

    def select(self, query: Query) -> RowSet:
        """The rows that pass the query's filters (the window and ``has_label`` are the caller's)."""
        keep = np.ones(len(self.frame), dtype=bool)
        for column, values in (
            ("model_version", query.model_versions),
            ("entity_id", query.entity_ids),
            ("prediction_id", query.prediction_ids),
        ):
            if values is not None:
                keep &= self._isin(column, tuple(values))
        for attribute, values in (query.groups or {}).items():
            keep &= self._isin(f"groups.{attribute}", tuple(values))
        if query.outcome is not None:
            keep &= self._isin("outcome", (query.outcome,))
        return self if keep.all() else RowSet(self.frame[keep])

    def _isin(self, column: str, values: tuple[Any, ...]) -> np.ndarray:
        if column not in self.frame:
            return np.zeros(len(self.frame), dtype=bool)
        return self.frame[column].isin(_accepted(values)).to_numpy(dtype=bool)

    def without(self, prediction_ids: set[str]) -> RowSet:
        """The rows whose prediction id is not among these."""
        keep = ~self.frame["prediction_id"].astype(str).isin(prediction_ids).to_numpy(dtype=bool)
        return RowSet(self.frame[keep])

    def values(self, column: str) -> pd.Series:
        if column not in self.frame:
            return pd.Series([None] * len(self.frame), dtype=object)
        return self.frame[column]

    # ---- aggregates -------------------------------------------------------------------------------
    def count(self) -> float:
        return float(self.weights().sum())

    def present(self, column: str) -> float:
        """Weighted number of rows holding a value in the column."""
        has = self.values(column).notna().to_numpy(dtype=bool)
        return float(self.weights()[has].sum())

    def kind(self, column: str) -> ColumnKind:
        return kind_of(list(self.values(column).dropna()))

    def numeric_summary(self, column: str) -> NumericSummary:
        w = self.weights()
        x = _numbers(self.values(column))
        ok = np.isfinite(x)
        total = float(w.sum())
        n = float(w[ok].sum())
        if not n:
            return NumericSummary(0.0, total, None, None, None, None)
        mean = float(np.sum(w[ok] * x[ok]) / n)
        std = float(np.sqrt(max(float(np.sum(w[ok] * x[ok] ** 2) / n) - mean * mean, 0.0)))
        return NumericSummary(n, max(total - n, 0.0), mean, std, float(x[ok].min()), float(x[ok].max()))

    def category_counts(self, column: str) -> dict[Any, float]:
        values = self.values(column).astype(object)
        values = values.where(values.notna(), None)
        sums = pd.Series(self.weights()).groupby(values.to_numpy(), dropna=False, sort=False).sum()
        return {(None if _missing(k) else k): float(v) for k, v in sums.items()}

    def histogram(self, column: str, edges: np.ndarray) -> Histogram:
        w = self.weights()
        x = _numbers(self.values(column))
        ok = np.isfinite(x)
        xs, ws = x[ok], w[ok]
        under = float(ws[xs < edges[0]].sum())
        over = float(ws[xs >= edges[-1]].sum())
        inside = (xs >= edges[0]) & (xs < edges[-1])
        idx = np.searchsorted(edges, xs[inside], side="right") - 1
        counts = np.bincount(idx, weights=ws[inside], minlength=len(edges) - 1)[: len(edges) - 1]
        return Histogram(edges, counts.astype(float), under, over, float(w[~ok].sum()))

    def bucketed(
        self, column: str, edges: np.ndarray, *, by: str | None, starts: pd.DatetimeIndex, bucket: timedelta
    ) -> BucketedHistograms:
        """The column's histograms per time bucket (the buckets ``starts`` gives) and value of ``by``, as
        :func:`aggregates.bucketed_histograms` gives them (needs the ``timestamp`` column)."""
        w = self.weights()
        x = _numbers(self.values(column))
        ok = np.isfinite(x)
        times = pd.to_datetime(self.values("timestamp"), utc=True, format="ISO8601")
        slot = ((times - starts[0]) // bucket).to_numpy(dtype=float, na_value=-1.0)
        inside = (slot >= 0) & (slot < len(starts))
        raw = self.values(by) if by is not None else pd.Series([None] * len(self.frame), dtype=object)
        values = [None if _missing(v) else v for v in raw]
        keys = sorted({v for v, keep in zip(values, inside, strict=True) if keep}, key=BucketedHistograms.key_order)
        position = {k: i for i, k in enumerate(keys)}
        cells = len(edges) + 1
        counts = np.zeros((len(starts), len(keys), cells))
        squares = np.zeros((len(starts), len(keys), cells))
        missing = np.zeros((len(starts), len(keys)))
        b = slot[inside].astype(int)
        k = np.array([position[v] for v, keep in zip(values, inside, strict=True) if keep], dtype=int)
        cell = np.searchsorted(edges, np.where(ok, x, 0.0), side="right")[inside]
        has, wi = ok[inside], w[inside]
        np.add.at(counts, (b[has], k[has], cell[has]), wi[has])
        np.add.at(squares, (b[has], k[has], cell[has]), wi[has] ** 2)
        np.add.at(missing, (b[~has], k[~has]), wi[~has])
        return BucketedHistograms(starts, edges, keys, counts, squares, missing)

    def quantiles(self, column: str, qs: Sequence[float]) -> list[float | None]:
        """Exact quantiles: linear interpolation when every row weighs the same, else the smallest value whose
        cumulative weight share reaches q (as the local store computes them)."""
        w = self.weights()
        x = _numbers(self.values(column))
        ok = np.isfinite(x)
        if not ok.any():
            return [None] * len(qs)
        xs, ws = x[ok], w[ok]
        if np.all(ws == ws[0]):
            return [float(v) for v in np.quantile(xs, np.asarray(qs, dtype=float))]
        order = np.argsort(xs, kind="stable")
        xs, ws = xs[order], ws[order]
        shares = np.cumsum(ws) / ws.sum()
        idx = np.searchsorted(shares, np.asarray(qs, dtype=float) - 1e-12, side="left")
        return [float(xs[min(i, len(xs) - 1)]) for i in idx]

    def sample_size(self) -> SampleSize:
        return SampleSize.of(self.weights())

    def counts(self, columns: Sequence[str]) -> dict[tuple[Any, ...], float]:
        """Weighted count per combination of the columns' values (missing as None)."""
        return self.tallies(columns)[0]

    def tallies(self, columns: Sequence[str]) -> tuple[Counts, Counts]:
        """Weighted count and sum of squared weights per combination of the columns' values (missing as None)."""
        if not columns:
            size = self.sample_size()
            return ({(): size.weighted}, {(): size.squares}) if len(self) else ({}, {})
        counts: Counts = {}
        squares: Counts = {}
        keys = zip(*(self.values(c).tolist() for c in columns), strict=True)
        for key, w in zip(keys, self.weights(), strict=True):
            clean = tuple(None if _missing(v) else v for v in key)
            counts[clean] = counts.get(clean, 0.0) + float(w)
            squares[clean] = squares.get(clean, 0.0) + float(w) * float(w)
        return counts, squares

    def crosstab(self, columns: Sequence[str]) -> pd.DataFrame:
        return table(columns, *self.tallies(columns))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def table(
    columns: Sequence[str], counts: Mapping[tuple[Any, ...], float], squares: Mapping[tuple[Any, ...], float]
) -> pd.DataFrame:
    """A crosstab frame: the columns (object dtype, missing as None), ``count`` and ``weight_sq``."""
    keys = list(counts)
    data = {c: pd.Series([k[i] for k in keys], dtype=object) for i, c in enumerate(columns)}
    return pd.DataFrame(
        {
            **data,
            "count": pd.Series([counts[k] for k in keys], dtype=float),
            "weight_sq": pd.Series([squares.get(k, 0.0) for k in keys], dtype=float),
        }
    )
