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

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from analyzers.config.models import DriftConfig, MultivariateConfig
from analyzers.findings import MultivariateDrift, Signal
from analyzers.stats.multivariate import (
    ReconstructionModel,
    classifier_drift,
    fit_reconstruction,
    reconstruction_drift,
)
from analyzers.store.base import PredictionReader, Query
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
    settings = config.multivariate
    if settings is None:
        raise ValueError("multivariate drift is not configured")
    features = {c: kind for c, kind in columns.items() if c.startswith(FEATURE_PREFIX)}
    numeric = [c for c, kind in features.items() if kind == "numeric"]
    categorical = [c for c, kind in features.items() if kind != "numeric"]
    wanted = [*features, "timestamp"]
    cur_rows = cur[0].sample(cur[1], settings.rows, seed=settings.seed, columns=wanted)
    names = [c[len(FEATURE_PREFIX) :] for c in features]
    try:
        if settings.method == "pca":
            model = _reference_model(ref, features, settings, reference)
            numbers = reconstruction_drift(model, cur_rows, sigmas=settings.sigmas).to_dict()
        else:
            ref_rows = ref[0].sample(ref[1], settings.rows, seed=settings.seed, columns=wanted)
            numbers = _classify(ref_rows, cur_rows, numeric, categorical, settings, config.alpha)
    except ValueError as exc:
        unjudged = MultivariateDrift(
            method=settings.method,
            statistic=None,
            threshold=None,
            drifted=False,
            n_reference=reference.get("n"),
            n_current=len(cur_rows),
            features=names,
            reason=str(exc),
        )
        return unjudged, None
    result = MultivariateDrift.from_dict({**numbers, "features": names})
    if not result.drifted:
        return result, None
    return result, Signal(
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
