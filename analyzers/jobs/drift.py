"""Drift job: every feature, the prediction, the score and the label of a window against a reference.

The reference is a fixed window (``start``/``end``), the ``last`` long window that ended ``ending``
(default 0) before this window's start, or a training-data ``file``.  Only successful predictions
count; the label column compares labelled predictions only (feedback coverage is not drift).

Numeric columns are binned on the reference's percentiles (see :mod:`analyzers.stats.binning`),
estimated from one uniform sample of ``config.sample_size`` reference rows for all columns (exact
when the reference is smaller; the bins only need to be fixed before counting, not to be exact
percentiles), and both windows are counted exactly with ``store.histograms`` (summaries with
``store.numeric_summaries``): one call per side for all numeric columns, which a store can answer in
one pass, so memory grows with the bins and the bounded sample, not the rows.  When both windows
hold at most ``config.sample_size`` unweighted rows, their values are read whole and KS and
Wasserstein are computed exactly.  Categorical columns use ``store.category_counts``.
Every p-value of the run (distribution and missing-rate tests) is corrected together; a column
drifts when its adjusted p-value is below ``alpha`` and its effect size exceeds its threshold (see
:mod:`analyzers.stats.drift`).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from analyzers.config.models import DriftConfig, FeatureOverride, ReferenceConfig
from analyzers.findings import Finding, Signal
from analyzers.jobs.base import error_finding
from analyzers.jobs.multivariate import multivariate_drift
from analyzers.stats.binning import bin_counts, fine_edges, merge_bins, quantile_edges, quantile_levels
from analyzers.stats.drift import (
    ColumnDrift,
    categorical_drift,
    decide,
    is_discrete,
    missing_rate_test,
    numeric_drift,
    resolve_method,
    spread,
)
from analyzers.store import open_reference_file
from analyzers.store.base import ColumnInfo, Histogram, NumericSummary, Query, Store
from analyzers.timeutil import Window
from logshipper.schema import FEATURE_PREFIX

JOB = "drift"
N_BINS = 100  # fine bins: reference percentiles
N_COARSE = 10  # PSI bins: reference deciles
OUTPUTS = ("prediction", "score", "label")


def run(store: Store, model: str, config: DriftConfig, window: Window) -> Finding:
    """Compare the window with the reference; never raises (a failure is an ``error`` finding)."""
    try:
        return _run(store, model, config, window)
    except Exception as exc:  # a job reports its failure instead of raising
        return error_finding(model, JOB, window, exc)


def reference_window(window: Window, reference: ReferenceConfig) -> Window:
    """The reference window of a fixed or relative reference (see the module docstring)."""
    if reference.start is not None and reference.end is not None:
        return Window(reference.start, reference.end)
    if reference.last is None:
        raise ValueError("the drift reference is a file, not a window")
    end = window.start - (reference.ending or timedelta(0))
    return Window(end - reference.last, end)


class _Side:
    """One side of the comparison: a store, its query, its row count and a bounded sample of its values."""

    def __init__(self, store: Store, query: Query) -> None:
        self.store = store
        self.query = query
        self.n = store.count(query)
        self.values: pd.DataFrame | None = None
        self.complete = False

    def load_values(self, columns: list[str], limit: int) -> None:
        """A uniform sample of at most ``limit`` rows; ``complete`` when it holds every (unweighted) row."""
        if not columns or limit < 1:
            return
        self.values = self.store.sample(self.query, limit, columns=columns)
        self.complete = len(self.values) == round(self.n)

    def sample_quantiles(self, column: str, levels: list[float]) -> list[float | None] | None:
        """Quantiles of the sampled values (linear interpolation, as the stores' own), ``None`` without any."""
        if self.values is None or column not in self.values:
            return None
        x = _floats(self.values[column])
        x = x[np.isfinite(x)]
        return [float(v) for v in np.quantile(x, levels)] if x.size else None


def _run(store: Store, model: str, config: DriftConfig, window: Window) -> Finding:
    reference = config.reference
    ref_store = open_reference_file(reference.file, model) if reference.file is not None else store
    try:
        ref_window = window if reference.file is not None else reference_window(window, reference)
        cur = _Side(store, Query(model=model, window=window, outcome="success"))
        ref = _Side(ref_store, Query(model=model, window=ref_window, outcome="success"))
        described: dict[str, Any] = (
            {"file": reference.file} if reference.file is not None else {"window": ref_window.to_dict()}
        )
        described["n"] = ref.n
        if min(ref.n, cur.n) < max(config.min_rows, 1):
            reason = f"{min(ref.n, cur.n):g} rows < min_rows {config.min_rows} (reference {ref.n:g}, current {cur.n:g})"
            metrics = {"n_cur": cur.n, "n_ref": ref.n, "reason": reason}
            return Finding(model, JOB, window, "insufficient_data", metrics, described)
        return _compare(model, config, window, ref, cur, described)
    finally:
        if ref_store is not store:
            ref_store.close()


def _compare(
    model: str, config: DriftConfig, window: Window, ref: _Side, cur: _Side, described: dict[str, Any]
) -> Finding:
    columns = _columns(ref, cur, config)
    numeric = [c for c, kind in columns.items() if kind == "numeric" and c != "label"]
    ref.load_values(numeric, config.sample_size)
    if cur.n <= config.sample_size:
        cur.load_values(numeric, config.sample_size)
    exact = ref.complete and cur.complete
    numeric_results = _numeric_columns(numeric, ref, cur, config, exact)
    results: list[ColumnDrift] = []
    for column, kind in columns.items():
        if column == "label":
            result = _compare_label(ref, cur, kind, config)
            if result is not None:
                results.append(result)
        elif kind == "numeric":
            results.append(numeric_results[column])
        else:
            results.append(_categorical(column, ref, cur, _override(config, column)))
    verdict = decide(results, config.alpha, config.correction, config.drift_share, config.missing_threshold)
    signals = [_signal(r, config) for r in results if r.drifted]
    metrics = {
        "features": [r.to_dict() for r in results],
        "share_drifted": verdict.share_drifted,
        "dataset_drift": verdict.dataset_drift,
        "n_drifted": verdict.n_drifted,
        "n_columns": verdict.n_columns,
        "n_cur": cur.n,
        "alpha": config.alpha,
        "correction": config.correction,
        "drift_share": config.drift_share,
    }
    if config.multivariate is not None:
        sides = (ref.store, ref.query), (cur.store, cur.query)
        joint, signal = multivariate_drift(*sides, columns, config, reference=described)
        metrics["multivariate"] = joint
        signals.extend([signal] if signal is not None else [])
    status = "alert" if signals else "ok"
    return Finding(model, JOB, window, status, metrics, described, signals)


def _columns(ref: _Side, cur: _Side, config: DriftConfig) -> dict[str, str]:
    """Store column -> kind for every feature present on either side (a feature gone from one side shows
    as a changed missing rate) and every output present on both, overrides applied."""
    infos: dict[str, list[ColumnInfo]] = {}
    for side in (ref, cur):
        for info in side.store.columns(side.query):
            if info.name.startswith(FEATURE_PREFIX) or info.name in OUTPUTS:
                infos.setdefault(info.name, []).append(info)
    for output in OUTPUTS:  # e.g. a training file without predictions: nothing to compare them with
        if len(infos.get(output, [])) < 2:
            infos.pop(output, None)
    out: dict[str, str] = {}
    for column in sorted(infos, key=lambda c: (c in OUTPUTS, OUTPUTS.index(c) if c in OUTPUTS else 0, c)):
        override = _override(config, column)
        if override is not None and override.ignore:
            continue
        kinds = {i.kind for i in infos[column]}
        kind = "numeric" if kinds == {"numeric"} else "categorical"
        out[column] = override.kind if override is not None and override.kind is not None else kind
    return out


def display_name(column: str) -> str:
    """The name a column has in the finding: the feature's own name, or ``prediction``/``score``/``label``."""
    return column[len(FEATURE_PREFIX) :] if column.startswith(FEATURE_PREFIX) else column


def _override(config: DriftConfig, column: str) -> FeatureOverride | None:
    return config.features.get(display_name(column)) or config.features.get(column)


class _Bins:
    """A numeric column's bins, fixed from the reference before either side is counted."""

    def __init__(self, quantiles: list[float], discrete: bool) -> None:
        self.discrete = discrete
        self.fine = fine_edges(quantiles)
        self.coarse = quantile_edges(quantiles[:: N_BINS // N_COARSE], outer=False)


def _numeric_columns(
    columns: list[str], ref: _Side, cur: _Side, config: DriftConfig, exact: bool, missing: bool = True
) -> dict[str, ColumnDrift]:
    """Every numeric column compared, with one batched summary and one batched histogram call per side.

    The bins of all columns are fixed first (from the reference sample and summaries), so each side's
    counts come from a single :meth:`Store.histograms` call instead of one scan per column.
    """
    if not columns:
        return {}
    ref_summaries = ref.store.numeric_summaries(ref.query, columns)
    cur_summaries = cur.store.numeric_summaries(cur.query, columns)
    bins = {c: _bins(c, ref, ref_summaries[c], cur_summaries[c]) for c in columns}
    samples = {
        c: (_floats(ref.values[c]), _floats(cur.values[c]))
        for c, b in bins.items()
        if b is not None and exact and ref.values is not None and cur.values is not None
    }
    counted = {c: b.fine for c, b in bins.items() if b is not None and c not in samples}
    ref_hists = ref.store.histograms(ref.query, counted) if counted else {}
    cur_hists = cur.store.histograms(cur.query, counted) if counted else {}
    out: dict[str, ColumnDrift] = {}
    for column in columns:
        ref_summary, cur_summary, column_bins = ref_summaries[column], cur_summaries[column], bins[column]
        name = display_name(column)
        missing_test = (
            missing_rate_test(
                ref_summary.missing,
                ref_summary.count + ref_summary.missing,
                cur_summary.missing,
                cur_summary.count + cur_summary.missing,
            )
            if missing
            else None
        )
        if column_bins is None:
            out[column] = _untestable(name, "numeric", ref_summary.count, cur_summary.count, missing_test)
            continue
        pair = samples.get(column)
        if pair is not None:
            ref_fine, cur_fine = bin_counts(pair[0], column_bins.fine), bin_counts(pair[1], column_bins.fine)
        else:
            ref_fine, cur_fine = _full(ref_hists[column]), _full(cur_hists[column])
        override = _override(config, column)
        result = numeric_drift(
            name,
            ref_fine,
            cur_fine,
            column_bins.fine,
            merge_bins(column_bins.fine, ref_fine, column_bins.coarse),
            merge_bins(column_bins.fine, cur_fine, column_bins.coarse),
            min(ref_summary.min, cur_summary.min),
            max(ref_summary.max, cur_summary.max),
            spread(ref_summary.std, cur_summary.std, ref_summary.mean),
            resolve_method("numeric", column_bins.discrete, override.method if override else None),
            override.threshold if override else None,
            discrete=column_bins.discrete,
            samples=pair,
        )
        result.missing = missing_test
        result.extra.update(mean_ref=ref_summary.mean, mean_cur=cur_summary.mean, std_ref=ref_summary.std)
        result.extra["std_cur"] = cur_summary.std
        out[column] = result
    return out


def _bins(column: str, ref: _Side, ref_summary: NumericSummary, cur_summary: NumericSummary) -> _Bins | None:
    """The column's bins from the reference's percentiles, ``None`` when either side has no values."""
    levels = quantile_levels(N_BINS)
    quantiles = ref.sample_quantiles(column, levels) or ref.store.quantiles(ref.query, column, levels)
    if quantiles[0] is None or cur_summary.count <= 0:
        return None
    # The sample's extremes widened to the reference's own.
    quantiles[0], quantiles[-1] = min(quantiles[0], ref_summary.min), max(quantiles[-1], ref_summary.max)
    return _Bins(quantiles, is_discrete(quantiles))


def _categorical(
    column: str, ref: _Side, cur: _Side, override: FeatureOverride | None, missing: bool = True
) -> ColumnDrift:
    name = display_name(column)
    ref_counts = ref.store.category_counts(ref.query, column)
    cur_counts = cur.store.category_counts(cur.query, column)
    missing_test = (
        missing_rate_test(
            ref_counts.get(None, 0.0), sum(ref_counts.values()), cur_counts.get(None, 0.0), sum(cur_counts.values())
        )
        if missing
        else None
    )
    present_ref = sum(v for k, v in ref_counts.items() if k is not None)
    present_cur = sum(v for k, v in cur_counts.items() if k is not None)
    if present_ref <= 0 or present_cur <= 0:
        return _untestable(name, "categorical", present_ref, present_cur, missing_test)
    method = resolve_method("categorical", False, override.method if override else None)
    result = categorical_drift(name, ref_counts, cur_counts, method, override.threshold if override else None)
    result.missing = missing_test
    return result


def _compare_label(ref: _Side, cur: _Side, kind: str, config: DriftConfig) -> ColumnDrift | None:
    """The label over labelled predictions only, when both windows have ``min_rows`` of them."""
    labelled_ref = _Side(ref.store, ref.query.with_(has_label=True))
    labelled_cur = _Side(cur.store, cur.query.with_(has_label=True))
    if min(labelled_ref.n, labelled_cur.n) < max(config.min_rows, 1):
        return None
    if kind == "numeric":
        return _numeric_columns(["label"], labelled_ref, labelled_cur, config, False, missing=False)["label"]
    return _categorical("label", labelled_ref, labelled_cur, _override(config, "label"), missing=False)


def _full(hist: Histogram) -> np.ndarray:
    """A store histogram as the full count vector ``[underflow, counts..., overflow]``."""
    return np.concatenate([[hist.underflow], hist.counts, [hist.overflow]])


def _floats(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _untestable(name: str, kind: Any, n_ref: float, n_cur: float, missing: Any) -> ColumnDrift:
    """A column with no values on one side: only its missing rate can be compared."""
    return ColumnDrift(name, kind, "none", math.nan, math.nan, "none", math.nan, math.nan, n_ref, n_cur, missing)


def _signal(result: ColumnDrift, config: DriftConfig) -> Signal:
    parts = []
    if result.distribution_drifted:
        parts.append(
            f"{result.effect_size_method} {result.effect_size:.3g} > {result.threshold:g}"
            f" ({result.method} adjusted p={result.p_value_adjusted:.2g})"
        )
    if result.missing_drifted and result.missing is not None:
        parts.append(
            f"missing rate {result.missing.rate_ref:.2%} -> {result.missing.rate_cur:.2%}"
            f" (adjusted p={result.missing_p_value_adjusted:.2g})"
        )
    missing_only = not result.distribution_drifted and result.missing is not None
    return Signal(
        subject=f"feature:{result.name}",
        message=f"{result.name} drifted: " + "; ".join(parts),
        severity=config.severity,
        value=abs(result.missing.effect_size) if missing_only else result.effect_size,
        threshold=config.missing_threshold if missing_only else result.threshold,
    )
