"""The drift job's multivariate step: every feature of both windows taken together (``drift.multivariate``).

Both methods need rows, not aggregates, so each window gives a uniform sample of at most
``multivariate.rows`` predictions (its features and timestamps) through the store.  The sample size
sets the test's resolution: the PCA band's half-width shrinks as ``1/sqrt(rows)`` (it is computed at
the current sample's size, so a smaller sample widens it rather than raising false alarms), and the
domain classifier's p-value weakens likewise.  Both sizes are in the finding (``n_reference``,
``n_current``).  Sampled predictions count once each (their logging ``sample_rate`` is not applied).

The PCA method's reference side (the sample, the encoder, the fitted PCA and the held-out errors) is
kept in memory while the reference keeps its row count and columns, so a scheduler running every hour
against a fixed reference reads and fits it once.

The result goes into the drift finding as ``multivariate`` and, when the window drifted, raises one
signal with subject ``multivariate``.  A window the method cannot judge (too few rows, fewer than
two encoded columns) gives ``drifted: false`` with a ``reason`` and null numbers, never a made-up value.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from analyzers.config.models import DriftConfig, MultivariateConfig
from analyzers.findings import MultivariateDrift, Signal
from analyzers.stats.multivariate import (
    ReconstructionModel,
    classifier_drift,
    error_drift,
    fit_reconstruction,
)
from analyzers.store.base import PredictionReader, Query
from analyzers.timeutil import Window
from logshipper.schema import FEATURE_PREFIX

SUBJECT = "multivariate"
FITS_KEPT = 16  # reference fits kept in memory

_fits: OrderedDict[tuple[Any, ...], ReconstructionModel] = OrderedDict()
_fits_lock = threading.Lock()


def multivariate_drift(
    ref: tuple[PredictionReader, Query],
    cur: tuple[PredictionReader, Query],
    columns: dict[str, str],
    config: DriftConfig,
    *,
    reference: Mapping[str, Any],
) -> tuple[MultivariateDrift, Signal | None]:
    """The finding's ``multivariate`` field and its signal (``None`` when nothing drifted).

    ``columns`` maps the drift job's store columns to their kinds; only features take part.
    ``reference`` describes the reference (its window or file, and its row count ``n``), which
    identifies a fit kept in memory.
    """
    settings = _settings(config)
    features = _features(columns)
    cur_rows = cur[0].sample(cur[1], settings.rows, seed=settings.seed, columns=[*features, "timestamp"])
    judge = _Judge(ref, features, config, reference)
    result = judge.verdict(judge.current(cur_rows), len(cur_rows))
    return result, _signal(result, config)


def multivariate_windows(
    ref: tuple[PredictionReader, Query],
    store: PredictionReader,
    queries: Sequence[Query],
    columns: dict[str, str],
    config: DriftConfig,
    *,
    reference: Mapping[str, Any],
) -> list[MultivariateDrift]:
    """The ``multivariate`` verdict of each window, from one pass over the windows' rows.

    The windows must not overlap and must differ only in their window (else each is sampled apart).  A window
    with more than ``multivariate.rows`` rows is judged on a uniform sample of that many (the rows with the
    smallest of a seeded random key), as :func:`multivariate_drift` judges the store's sample.
    """
    settings = _settings(config)
    features = _features(columns)
    judge = _Judge(ref, features, config, reference)
    ordered = sorted(range(len(queries)), key=lambda k: queries[k].window.start)
    first = queries[ordered[0]] if queries else None
    apart = all(queries[a].window.end <= queries[b].window.start for a, b in itertools.pairwise(ordered))
    if first is None or not apart or any(q.with_(window=first.window) != first for q in queries):
        return [multivariate_drift(ref, (store, q), columns, config, reference=reference)[0] for q in queries]
    span = first.with_(window=Window(queries[ordered[0]].window.start, queries[ordered[-1]].window.end))
    starts = np.array([pd.Timestamp(queries[k].window.start).value for k in ordered], dtype=np.int64)
    ends = np.array([pd.Timestamp(queries[k].window.end).value for k in ordered], dtype=np.int64)
    kept = [_BottomK(settings.rows) for _ in ordered]
    rng = np.random.default_rng(settings.seed)
    for chunk in store.rows(span, columns=[*features, "timestamp"]):
        times = pd.to_datetime(chunk["timestamp"], utc=True).dt.tz_convert(None).to_numpy()
        stamps = times.astype("datetime64[ns]").astype(np.int64)
        keys = rng.random(len(chunk))
        low, high = np.searchsorted(stamps, starts, side="left"), np.searchsorted(stamps, ends, side="left")
        touched = np.flatnonzero(high > low)
        if touched.size == 0:
            continue
        current = judge.current(chunk)  # a whole chunk at a time: errors cost far less per row in bulk
        for i in touched:
            a, b = int(low[i]), int(high[i])
            kept[i].add(keys[a:b], current.iloc[a:b])
    out: list[MultivariateDrift | None] = [None] * len(queries)
    for position, k in enumerate(ordered):
        out[k] = judge.verdict(kept[position].rows(), kept[position].size)
    return [r for r in out if r is not None]


class _BottomK:
    """A uniform sample of at most ``k`` rows of a stream: the rows with the ``k`` smallest random keys."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.keys = np.zeros(0)
        self.frame: pd.DataFrame | None = None

    def add(self, keys: np.ndarray, frame: pd.DataFrame) -> None:
        frame = frame.reset_index(drop=True)
        merged_keys = np.concatenate([self.keys, keys])
        merged = frame if self.frame is None else pd.concat([self.frame, frame], ignore_index=True)
        if len(merged_keys) > self.k:
            keep = np.sort(np.argpartition(merged_keys, self.k - 1)[: self.k])
            merged_keys, merged = merged_keys[keep], merged.iloc[keep].reset_index(drop=True)
        self.keys, self.frame = merged_keys, merged

    @property
    def size(self) -> int:
        return len(self.keys)

    def rows(self) -> pd.DataFrame:
        return self.frame if self.frame is not None else pd.DataFrame()


class _Judge:
    """One reference's side of the comparison (the PCA fit, or the classifier's reference sample), judging windows."""

    def __init__(
        self,
        ref: tuple[PredictionReader, Query],
        features: dict[str, str],
        config: DriftConfig,
        reference: Mapping[str, Any],
    ) -> None:
        self.ref, self.features, self.config, self.reference = ref, features, config, reference
        self.settings = _settings(config)
        self.names = [c[len(FEATURE_PREFIX) :] for c in features]
        self._model: ReconstructionModel | None = None
        self._ref_rows: pd.DataFrame | None = None
        self.failure: str | None = None

    def current(self, rows: pd.DataFrame) -> pd.DataFrame:
        """What is kept of current rows: their reconstruction errors (PCA), or the rows (classifier)."""
        model = self.model() if self.settings.method == "pca" else None
        return rows if model is None else pd.DataFrame({"error": model.errors(rows)})

    def model(self) -> ReconstructionModel | None:
        """The reference's PCA (``None`` when it cannot be fitted; ``failure`` says why)."""
        if self._model is None and self.failure is None:
            try:
                self._model = _reference_model(self.ref, self.features, self.settings, self.reference)
            except ValueError as exc:
                self.failure = str(exc)
        return self._model

    def verdict(self, kept: pd.DataFrame, n_current: int) -> MultivariateDrift:
        try:
            if self.settings.method == "pca":
                model = self.model()
                if model is None:
                    raise ValueError(self.failure or "no PCA")
                if len(kept) < 1:
                    raise ValueError("PCA drift needs at least one current row")
                numbers = error_drift(model, kept["error"].to_numpy(dtype=float), sigmas=self.settings.sigmas).to_dict()
            else:
                if self._ref_rows is None:
                    store, query = self.ref
                    wanted = [*self.features, "timestamp"]
                    self._ref_rows = store.sample(query, self.settings.rows, seed=self.settings.seed, columns=wanted)
                numeric = [c for c, kind in self.features.items() if kind == "numeric"]
                categorical = [c for c, kind in self.features.items() if kind != "numeric"]
                numbers = _classify(self._ref_rows, kept, numeric, categorical, self.settings, self.config.alpha)
        except ValueError as exc:
            return MultivariateDrift(
                method=self.settings.method,
                statistic=None,
                threshold=None,
                drifted=False,
                n_reference=self.reference.get("n"),
                n_current=n_current,
                features=self.names,
                reason=str(exc),
            )
        return MultivariateDrift.from_dict({**numbers, "features": self.names})


def _settings(config: DriftConfig) -> MultivariateConfig:
    if config.multivariate is None:
        raise ValueError("multivariate drift is not configured")
    return config.multivariate


def _features(columns: dict[str, str]) -> dict[str, str]:
    return {c: kind for c, kind in columns.items() if c.startswith(FEATURE_PREFIX)}


def _signal(result: MultivariateDrift, config: DriftConfig) -> Signal | None:
    if not result.drifted:
        return None
    return Signal(
        subject=SUBJECT,
        message=_message(result),
        severity=config.severity,
        value=result.statistic,
        threshold=result.threshold,
    )


def _reference_model(
    ref: tuple[PredictionReader, Query],
    features: dict[str, str],
    settings: MultivariateConfig,
    reference: Mapping[str, Any],
) -> ReconstructionModel:
    """The PCA fitted on the reference's sample, from memory while the reference has not changed."""
    store, query = ref
    key = (
        query.model,
        str(reference.get("file") or reference.get("window")),
        reference.get("n"),
        tuple(features.items()),
        settings.rows,
        settings.variance,
        settings.seed,
    )
    with _fits_lock:
        if key in _fits:
            _fits.move_to_end(key)
            return _fits[key]
    rows = store.sample(query, settings.rows, seed=settings.seed, columns=[*features, "timestamp"])
    model = fit_reconstruction(
        rows,
        numeric=[c for c, kind in features.items() if kind == "numeric"],
        categorical=[c for c, kind in features.items() if kind != "numeric"],
        variance=settings.variance,
        reference_order=_times(rows),
        seed=settings.seed,
    )
    with _fits_lock:
        _fits[key] = model
        while len(_fits) > FITS_KEPT:
            _fits.popitem(last=False)
    return model


def _classify(
    ref_rows: pd.DataFrame,
    cur_rows: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    settings: MultivariateConfig,
    alpha: float,
) -> dict[str, Any]:
    n = min(len(ref_rows), len(cur_rows))  # equal sides: the AUC's null is then the plain 0.5
    return classifier_drift(
        ref_rows.iloc[:n],
        cur_rows.iloc[:n],
        numeric=numeric,
        categorical=categorical,
        threshold=settings.auc_threshold,
        alpha=alpha,
        folds=settings.folds,
        seed=settings.seed,
    ).to_dict()


def _times(frame: pd.DataFrame) -> np.ndarray | None:
    """Row times as sortable numbers (a reference file without times keeps its order)."""
    if "timestamp" not in frame or frame["timestamp"].isna().all():
        return None
    return pd.to_datetime(frame["timestamp"], utc=True).astype("int64").to_numpy()


def _message(result: MultivariateDrift) -> str:
    if result.method == "pca":
        return (
            f"features drifted together: mean PCA reconstruction error {result.statistic:.4g} outside the"
            f" reference band [{result.lower_threshold:.4g}, {result.threshold:.4g}]"
        )
    return (
        f"features drifted together: a classifier tells the window from the reference with ROC AUC"
        f" {result.statistic:.3f} > {result.threshold:g} (p={result.details['p_value']:.2g})"
    )
