"""Drift job: every feature, the prediction, the score and the label of a window against a reference.

The reference is a fixed window (``start``/``end``), the ``last`` long window that ended ``ending``
(default 0) before this window's start, or a training-data ``file`` (resolved by :mod:`analyzers.windows`).
When the window or a reference window holds data in less than ``min_coverage`` of its slots (see
:mod:`analyzers.jobs.coverage`), the finding is ``insufficient_data`` with the reason.  Only successful predictions
count; the label column compares labelled predictions only (feedback coverage is not drift).

Numeric columns are binned on the reference's percentiles (see :mod:`analyzers.stats.binning`),
estimated from one uniform sample of ``config.sample_size`` reference rows for all columns (exact
when the reference is smaller; the bins only need to be fixed before counting, not to be exact
percentiles), and both windows are counted exactly with ``store.histograms`` (summaries with
``store.numeric_summaries``): one call per side for all numeric columns, which a store can answer in
one pass, so memory grows with the bins and the bounded sample, not the rows.  When both windows
hold at most ``config.sample_size`` rows logged alike (one sample rate each), their values are read whole
and KS and Wasserstein are computed exactly.  Categorical columns use ``store.category_counts``.
Under sampled logging the counts are weighted by ``1 / sample_rate`` for the effect sizes, while every test,
the effect sizes' noise and ``min_rows`` count the rows observed (Kish's effective size, see
:mod:`analyzers.stats.sampling`), so logging 10% of the traffic gives no more false alarms than logging all.
Every p-value of the run (distribution and missing-rate tests) is corrected together; a column
drifts when its adjusted p-value is below ``alpha`` and its effect size, less the part sampling alone
gives at these sizes (``effect_size_noise``), exceeds its threshold (see :mod:`analyzers.stats.drift`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from analyzers.config.models import DriftConfig, FeatureOverride
from analyzers.findings import Coverage, DriftMetrics, Finding, Signal
from analyzers.jobs import coverage
from analyzers.jobs.base import error_finding
from analyzers.stats.binning import bin_counts, fine_edges, quantile_edges, quantile_levels
from analyzers.stats.drift import ColumnDrift, Kind, MissingRate, decide, is_discrete, missing_rate_test, spread
from analyzers.stats.drift_methods import NumericColumn, categorical_drift, default_effect_size, numeric_drift
from analyzers.store import open_reference_file
from analyzers.store.base import ColumnInfo, Histogram, NumericSummary, PredictionReader, Query
from analyzers.timeutil import Window
from analyzers.windows import reference_window
from logshipper.schema import FEATURE_PREFIX

JOB = "drift"
N_BINS = 100  # fine bins: reference percentiles
N_COARSE = 10  # PSI bins: reference deciles
OUTPUTS = ("prediction", "score", "label")


def run(store: PredictionReader, model: str, config: DriftConfig, window: Window) -> Finding:
    """Compare the window with the reference; never raises (a failure is an ``error`` finding)."""
    try:
        return _run(store, model, config, window)
    except Exception as exc:  # a job reports its failure instead of raising
        return error_finding(model, JOB, window, exc)


class _Side:
    """One side of the comparison: a store, its query, its size (weighted and observed) and a bounded sample
    of its values."""

    def __init__(self, store: PredictionReader, query: Query) -> None:
        self.store = store
        self.query = query
        self.size = store.sample_size(query)
        self.n = self.size.weighted
        self.values: pd.DataFrame | None = None
        self.complete = False

    @property
    def row_weight(self) -> float:
        """The mean weight of a row (the one weight of every row when they weigh alike)."""
        return self.size.weighted / self.size.rows if self.size.rows > 0 else 1.0

    def effective(self, weighted: float) -> float:
        """The observations behind a weighted count of this side's rows."""
        return weighted * self.size.scale

    def load_values(self, columns: list[str], limit: int) -> None:
        """A uniform sample of at most ``limit`` rows; ``complete`` when it holds every row and the rows weigh
        alike (raw values then stand for the side as they are)."""
        if not columns or limit < 1:
            return
        self.values = self.store.sample(self.query, limit, columns=columns)
        uniform = math.isclose(self.size.weighted * self.size.weighted, self.size.squares * self.size.rows)
        self.complete = len(self.values) == round(self.size.rows) and uniform

    def sample_quantiles(self, column: str, levels: list[float]) -> list[float | None] | None:
        """Quantiles of the sampled values (linear interpolation, as the stores' own), ``None`` without any."""
        if self.values is None or column not in self.values:
            return None
        x = _floats(self.values[column])
        x = x[np.isfinite(x)]
        return [float(v) for v in np.quantile(x, levels)] if x.size else None


def _run(store: PredictionReader, model: str, config: DriftConfig, window: Window) -> Finding:
    reference = config.reference
    resolved = reference_window(window, reference)
    described: dict[str, Any] = {"file": reference.file} if resolved is None else {"window": resolved.to_dict()}
    query = Query(model=model, window=window, outcome="success")
    covered = coverage.measure_spans(store, query, {"window": window, "reference": resolved})
    thin = coverage.shortfall(covered, config.min_coverage)
    if thin is not None:
        n_ref = covered["reference"].count if "reference" in covered else None
        if n_ref is not None:
            described["n"] = n_ref
        metrics = DriftMetrics(n_cur=covered["window"].count, n_ref=n_ref, coverage=covered, reason=thin)
        return Finding(model, JOB, window, "insufficient_data", metrics, described)
    ref_store = open_reference_file(reference.file, model) if reference.file is not None else store
    try:
        cur = _Side(store, query)
        ref = _Side(ref_store, query.with_(window=resolved or window))
        described["n"] = ref.n
        rows_ref, rows_cur = ref.size.rows, cur.size.rows
        if min(rows_ref, rows_cur) < max(config.min_rows, 1):
            reason = (
                f"{min(rows_ref, rows_cur):g} rows logged < min_rows {config.min_rows}"
                f" (reference {rows_ref:g}, current {rows_cur:g})"
            )
            metrics = DriftMetrics(
                n_cur=cur.n,
                n_ref=ref.n,
                n_cur_observed=rows_cur,
                n_ref_observed=rows_ref,
                coverage=covered,
                reason=reason,
            )
            return Finding(model, JOB, window, "insufficient_data", metrics, described)
        return _compare(model, config, window, ref=ref, cur=cur, described=described, covered=covered)
    finally:
        if ref_store is not store:
            ref_store.close()


def _compare(
    model: str,
    config: DriftConfig,
    window: Window,
    *,
    ref: _Side,
    cur: _Side,
    described: dict[str, Any],
    covered: dict[str, Coverage],
) -> Finding:
    columns = _columns(ref, cur, config)
    numeric = [c for c, kind in columns.items() if kind == "numeric" and c != "label"]
    ref.load_values(numeric, config.sample_size)
    if cur.size.rows <= config.sample_size:
        cur.load_values(numeric, config.sample_size)
    exact = ref.complete and cur.complete
    numeric_results = _numeric_columns(numeric, config, ref=ref, cur=cur, exact=exact)
    results: list[ColumnDrift] = []
    for column, kind in columns.items():
        if column == "label":
            result = _compare_label(ref, cur, kind, config)
            if result is not None:
                results.append(result)
        elif kind == "numeric":
            results.append(numeric_results[column])
        else:
            results.append(_categorical(column, feature_override(config, column), ref=ref, cur=cur))
    verdict = decide(
        results,
        alpha=config.alpha,
        correction=config.correction,
        drift_share=config.drift_share,
        missing_threshold=config.missing_threshold,
    )
    signals = [_signal(r, config) for r in results if r.drifted]
    metrics = DriftMetrics(
        features=results,
        share_drifted=verdict.share_drifted,
        dataset_drift=verdict.dataset_drift,
        n_drifted=verdict.n_drifted,
        n_columns=verdict.n_columns,
        n_cur=cur.n,
        n_ref=ref.n,
        n_cur_observed=cur.size.rows,
        n_ref_observed=ref.size.rows,
        alpha=config.alpha,
        correction=config.correction,
        drift_share=config.drift_share,
        coverage=covered,
    )
    if config.multivariate is not None:
        # Imported only when configured: it loads scikit-learn, most of a short job's start-up time.
        from analyzers.jobs.multivariate import multivariate_drift

        metrics.multivariate, signal = multivariate_drift(
            (ref.store, ref.query), (cur.store, cur.query), columns, config, reference=described
        )
        signals.extend([signal] if signal is not None else [])
    return Finding(model, JOB, window, "alert" if signals else "ok", metrics, described, signals)


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
        override = feature_override(config, column)
        if override is not None and override.ignore:
            continue
        kinds = {i.kind for i in infos[column]}
        kind = "numeric" if kinds == {"numeric"} else "categorical"
        out[column] = override.kind if override is not None and override.kind is not None else kind
    return out


def display_name(column: str) -> str:
    """The name a column has in the finding: the feature's own name, or ``prediction``/``score``/``label``."""
    return column[len(FEATURE_PREFIX) :] if column.startswith(FEATURE_PREFIX) else column


def feature_override(config: DriftConfig, column: str) -> FeatureOverride | None:
    """The ``features.<name>`` settings of a column, looked up by its display name or its store column."""
    return config.features.get(display_name(column)) or config.features.get(column)


class _Bins:
    """A numeric column's bins, fixed from the reference before either side is counted."""

    def __init__(self, quantiles: list[float], discrete: bool) -> None:
        self.discrete = discrete
        self.fine = fine_edges(quantiles)
        self.coarse = quantile_edges(quantiles[:: N_BINS // N_COARSE], outer=False)


def _numeric_columns(
    columns: list[str], config: DriftConfig, *, ref: _Side, cur: _Side, exact: bool, missing: bool = True
) -> dict[str, ColumnDrift]:
    """Every numeric column compared, with one batched summary and one batched histogram call per side.

    The bins of all columns are fixed first (from the reference sample and summaries), so each side's
    counts come from a single :meth:`PredictionReader.histograms` call instead of one scan per column.
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
    counted = {c: b.fine.tolist() for c, b in bins.items() if b is not None and c not in samples}
    ref_hists = ref.store.histograms(ref.query, counted) if counted else {}
    cur_hists = cur.store.histograms(cur.query, counted) if counted else {}
    out: dict[str, ColumnDrift] = {}
    for column in columns:
        ref_summary, cur_summary, column_bins = ref_summaries[column], cur_summaries[column], bins[column]
        name = display_name(column)
        missing_test = (
            missing_rate_test(
                missing_ref=ref_summary.missing,
                n_ref=ref_summary.count + ref_summary.missing,
                missing_cur=cur_summary.missing,
                n_cur=cur_summary.count + cur_summary.missing,
                n_ref_effective=ref.effective(ref_summary.count + ref_summary.missing),
                n_cur_effective=cur.effective(cur_summary.count + cur_summary.missing),
            )
            if missing
            else None
        )
        if column_bins is None:
            out[column] = _untestable(
                name, "numeric", n_ref=ref_summary.count, n_cur=cur_summary.count, missing=missing_test
            )
            continue
        pair = samples.get(column)
        if pair is not None:  # every row read, all of one weight: the counts are rows times that weight
            ref_rows, cur_rows = bin_counts(pair[0], column_bins.fine), bin_counts(pair[1], column_bins.fine)
            ref_fine, cur_fine = ref_rows * ref.row_weight, cur_rows * cur.row_weight
            effective: tuple[float, float] = (float(ref_rows.sum()), float(cur_rows.sum()))
        else:
            ref_fine, cur_fine = _full(ref_hists[column]), _full(cur_hists[column])
            effective = (ref.effective(float(ref_fine.sum())), cur.effective(float(cur_fine.sum())))
        override = feature_override(config, column)
        counts = NumericColumn(
            ref_fine=ref_fine,
            cur_fine=cur_fine,
            fine_edges=column_bins.fine,
            coarse_edges=column_bins.coarse,
            low=min(v for v in (ref_summary.min, cur_summary.min) if v is not None),
            high=max(v for v in (ref_summary.max, cur_summary.max) if v is not None),
            scale=spread(ref_std=ref_summary.std, cur_std=cur_summary.std, ref_mean=ref_summary.mean),
            discrete=column_bins.discrete,
            samples=pair,
            ref_effective=effective[0],
            cur_effective=effective[1],
        )
        result = compare_numeric(name, counts, override)
        result.missing = missing_test
        result.extra.update(mean_ref=ref_summary.mean, mean_cur=cur_summary.mean, std_ref=ref_summary.std)
        result.extra["std_cur"] = cur_summary.std
        out[column] = result
    return out


def _bins(column: str, ref: _Side, ref_summary: NumericSummary, cur_summary: NumericSummary) -> _Bins | None:
    """The column's bins from the reference's percentiles, ``None`` when either side has no values."""
    levels = quantile_levels(N_BINS)
    found = ref.sample_quantiles(column, levels) or ref.store.quantiles(ref.query, column, levels)
    quantiles = [q for q in found if q is not None]
    if len(quantiles) < len(found) or ref_summary.min is None or ref_summary.max is None or cur_summary.count <= 0:
        return None
    # The sample's extremes widened to the reference's own.
    quantiles[0], quantiles[-1] = min(quantiles[0], ref_summary.min), max(quantiles[-1], ref_summary.max)
    return _Bins(quantiles, is_discrete(quantiles))


def _categorical(
    column: str, override: FeatureOverride | None, *, ref: _Side, cur: _Side, missing: bool = True
) -> ColumnDrift:
    name = display_name(column)
    ref_counts = ref.store.category_counts(ref.query, column)
    cur_counts = cur.store.category_counts(cur.query, column)
    missing_test = (
        missing_rate_test(
            missing_ref=ref_counts.get(None, 0.0),
            n_ref=sum(ref_counts.values()),
            missing_cur=cur_counts.get(None, 0.0),
            n_cur=sum(cur_counts.values()),
            n_ref_effective=ref.effective(sum(ref_counts.values())),
            n_cur_effective=cur.effective(sum(cur_counts.values())),
        )
        if missing
        else None
    )
    present_ref = sum(v for k, v in ref_counts.items() if k is not None)
    present_cur = sum(v for k, v in cur_counts.items() if k is not None)
    if present_ref <= 0 or present_cur <= 0:
        return _untestable(name, "categorical", n_ref=present_ref, n_cur=present_cur, missing=missing_test)
    result = compare_categorical(
        name,
        ref_counts,
        cur_counts,
        override,
        ref_effective=ref.effective(present_ref),
        cur_effective=cur.effective(present_cur),
    )
    result.missing = missing_test
    return result


def _compare_label(ref: _Side, cur: _Side, kind: str, config: DriftConfig) -> ColumnDrift | None:
    """The label over labelled predictions only, when both windows have ``min_rows`` of them."""
    labelled_ref = _Side(ref.store, ref.query.with_(has_label=True))
    labelled_cur = _Side(cur.store, cur.query.with_(has_label=True))
    if min(labelled_ref.size.rows, labelled_cur.size.rows) < max(config.min_rows, 1):
        return None
    if kind == "numeric":
        return _numeric_columns(["label"], config, ref=labelled_ref, cur=labelled_cur, exact=False, missing=False)[
            "label"
        ]
    return _categorical("label", feature_override(config, "label"), ref=labelled_ref, cur=labelled_cur, missing=False)


def _full(hist: Histogram) -> np.ndarray:
    """A store histogram as the full count vector ``[underflow, counts..., overflow]``."""
    return np.concatenate([[hist.underflow], hist.counts, [hist.overflow]])


def _floats(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def compare_numeric(name: str, counts: NumericColumn, override: FeatureOverride | None) -> ColumnDrift:
    """One numeric column's comparison with its configured (or default) effect size, test and threshold; the
    drift job and the report's trends compare alike."""
    effect, test, threshold = _column_methods(override, "numeric", discrete=counts.discrete)
    return numeric_drift(name, counts, effect=effect, test=test, threshold=threshold)


def compare_categorical(
    name: str,
    ref_counts: Mapping[Hashable, float],
    cur_counts: Mapping[Hashable, float],
    override: FeatureOverride | None,
    *,
    ref_effective: float,
    cur_effective: float,
) -> ColumnDrift:
    """One categorical column's comparison with its configured (or default) effect size, test and threshold."""
    effect, test, threshold = _column_methods(override, "categorical")
    return categorical_drift(
        name,
        ref_counts,
        cur_counts,
        effect=effect,
        test=test,
        threshold=threshold,
        ref_effective=ref_effective,
        cur_effective=cur_effective,
    )


def _column_methods(
    override: FeatureOverride | None, kind: Kind, *, discrete: bool = False
) -> tuple[str, str | None, float | None]:
    """The effect size, test (``None``: its default) and threshold of a column, as configured or by default."""
    effect = override.method if override is not None and override.method else None
    return (
        effect or default_effect_size(kind, discrete=discrete),
        override.test if override is not None else None,
        override.threshold if override is not None else None,
    )


def _untestable(name: str, kind: Kind, *, n_ref: float, n_cur: float, missing: MissingRate | None) -> ColumnDrift:
    """A column with no values on one side: only its missing rate can be compared."""
    return ColumnDrift(
        name=name,
        kind=kind,
        method="none",
        statistic=math.nan,
        p_value=math.nan,
        effect_size_method="none",
        effect_size=math.nan,
        threshold=math.nan,
        n_ref=n_ref,
        n_cur=n_cur,
        missing=missing,
    )


def _signal(result: ColumnDrift, config: DriftConfig) -> Signal:
    parts = []
    if result.distribution_drifted:
        parts.append(
            f"{result.effect_size_method} {result.effect_size:.3g} (noise {result.effect_size_noise:.2g})"
            f" > {result.threshold:g} + noise ({result.method} adjusted p={result.p_value_adjusted:.2g})"
        )
    if result.missing_drifted and result.missing is not None:
        parts.append(
            f"missing rate {result.missing.rate_ref:.2%} -> {result.missing.rate_cur:.2%}"
            f" (adjusted p={result.missing_p_value_adjusted:.2g})"
        )
    missing_only = result.missing if not result.distribution_drifted else None
    return Signal(
        subject=f"feature:{result.name}",
        message=f"{result.name} drifted: " + "; ".join(parts),
        severity=config.severity,
        value=abs(missing_only.effect_size) if missing_only is not None else result.effect_size,
        threshold=config.missing_threshold if missing_only is not None else result.threshold,
    )
