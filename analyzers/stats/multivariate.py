"""Multivariate drift: a change in how features move together, which no per-column test can see.

Two methods compare a sample of reference rows with a sample of current rows:

PCA reconstruction error
    Features are encoded (numerics standardised on the reference, missing values at the reference
    mean; categoricals one-hot over their frequent reference categories plus "other", each column
    standardised), and a PCA keeping the given share of the variance is fitted on a random half of
    the reference.  A row's error is the Euclidean distance between it and its reconstruction from
    the kept components.  The statistic is the current rows' mean error.  The held-out half of the
    reference, in time order, is cut into consecutive chunks; the spread of the chunk means, scaled to
    the current sample's size (by the square root of the size ratio when the chunks must be smaller),
    and the uncertainty of the reference mean set the band ``mean ± sigmas · spread`` outside which the
    window has drifted (NannyML's data reconstruction drift, "How it works", uses the reference's
    chunked mean ± 3 standard deviations).  Fitting on one half and measuring on the other keeps the
    fit's optimism out of the threshold.  A correlation that flips leaves every marginal unchanged but
    puts the rows off the reference's principal plane, so their error grows.
Domain classifier
    A gradient-boosting classifier learns to tell current rows from reference rows (stratified
    k-fold).  Its cross-validated ROC AUC is the statistic: 0.5 when the windows cannot be told apart.
    Each fold's AUC is a Mann–Whitney statistic of held-out rows whose domain labels, when nothing
    drifted, are exchangeable given everything the fold's model saw, so each fold's one-sided p-value
    is valid; the folds share training data, so they are combined by twice their mean, a valid p-value
    under any dependence (Vovk and Wang, "Combining p-values via averaging", Biometrika 107, 2020).
    The window drifted when that p-value is below ``alpha`` and the AUC above its threshold.

References: I. T. Jolliffe, *Principal Component Analysis*, 2002; NannyML, "Data Reconstruction
with PCA", docs.nannyml.com; D. Lopez-Paz and M. Oquab, "Revisiting classifier two-sample tests",
ICLR 2017.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold

from analyzers.stats.threads import one_thread

MAX_CATEGORIES = 20  # one-hot columns per categorical feature (the most frequent), the rest pooled as "other"
MIN_SHARE = 0.01  # a category below this share of the reference is pooled as "other"
MIN_STD = 0.1  # floor on a column's reference standard deviation, so a rare or absent category cannot explode
MIN_CHUNKS = 10  # the held-out reference is cut into at least this many chunks
MAX_TREE_CATEGORIES = 250  # categories coded per feature for the classifier (its bins hold 255)
MISSING = "(missing)"
OTHER = "(other)"


@dataclass(frozen=True)
class Encoder:
    """Rows of mixed features as a standardised numeric matrix (see the module docstring)."""

    numeric: tuple[str, ...]
    categorical: dict[str, tuple[Any, ...]]
    center: np.ndarray
    scale: np.ndarray

    @property
    def width(self) -> int:
        return len(self.center)

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        """The unstandardised matrix: numerics (missing as NaN) then each categorical's indicators."""
        parts = [_floats(frame, c)[:, None] for c in self.numeric]
        rows = np.arange(len(frame))
        for column, kept in self.categorical.items():
            codes, labels = _coded(frame, column)
            position = {k: i for i, k in enumerate(kept)}
            slot = np.array([position.get(label, len(kept)) for label in labels], dtype=np.intp)
            indicators = np.zeros((len(frame), len(kept) + 1))  # each kept category, then "other"
            indicators[rows, slot[codes]] = 1.0
            parts.append(indicators)
        return np.hstack(parts) if parts else np.empty((len(frame), 0))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Standardised rows; a missing numeric sits at the reference mean (zero)."""
        x = (self.raw(frame) - self.center) / self.scale
        return np.where(np.isfinite(x), x, 0.0)


def fit_encoder(frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> Encoder:
    """Means, spreads and kept categories from reference rows."""
    kept: dict[str, tuple[Any, ...]] = {}
    for column in categorical:
        shares = pd.Series(_categories(frame, column)).value_counts(normalize=True)
        kept[column] = tuple(shares[shares >= MIN_SHARE].index[:MAX_CATEGORIES])
    encoder = Encoder(tuple(numeric), kept, np.zeros(0), np.zeros(0))
    raw = encoder.raw(frame)
    with warnings.catch_warnings():  # a column without any value is centred at 0 with scale 1
        warnings.simplefilter("ignore", RuntimeWarning)
        center = np.nan_to_num(np.nanmean(raw, axis=0)) if len(raw) else np.zeros(raw.shape[1])
        scale = np.nan_to_num(np.nanstd(raw, axis=0)) if len(raw) else np.ones(raw.shape[1])
    numeric_part = np.arange(raw.shape[1]) < len(numeric)
    scale = np.where(numeric_part & (scale <= 0), 1.0, np.maximum(scale, np.where(numeric_part, 0.0, MIN_STD)))
    return Encoder(tuple(numeric), kept, center, scale)


@dataclass(frozen=True)
class ReconstructionModel:
    """A PCA fitted on half the reference, and the errors of the other half in time order."""

    encoder: Encoder
    pca: PCA
    held_errors: np.ndarray = field(repr=False)
    n_reference: int
    n_features: int

    def errors(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's distance from its reconstruction."""
        return _errors(self.pca, self.encoder.transform(frame))


def fit_reconstruction(
    reference: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    variance: float = 0.65,
    reference_order: np.ndarray | None = None,
    seed: int = 0,
) -> ReconstructionModel:
    """Fit the encoder and PCA on a random half of the reference; keep the other half's errors.

    ``reference_order`` sorts the reference rows in time (e.g. their timestamps); without it, rows are
    taken in the order given.
    """
    if not 0 < variance < 1:
        raise ValueError(f"variance must be a share between 0 and 1, got {variance}")
    n_ref = len(reference)
    if n_ref < 2 * MIN_CHUNKS:
        raise ValueError(f"PCA drift needs at least {2 * MIN_CHUNKS} reference rows, got {n_ref}")
    rng = np.random.default_rng(seed)
    fit_rows = np.zeros(n_ref, dtype=bool)
    fit_rows[rng.permutation(n_ref)[: n_ref // 2]] = True
    fitted = reference.iloc[np.flatnonzero(fit_rows)]
    encoder = fit_encoder(fitted, numeric, categorical)
    if encoder.width < 2:
        raise ValueError("multivariate drift needs at least two encoded columns (features or categories)")
    with one_thread():  # a small decomposition: threads would mostly wait on each other
        pca = PCA(n_components=variance, svd_solver="full").fit(encoder.transform(fitted))
    held = np.flatnonzero(~fit_rows)
    if reference_order is not None:
        held = held[np.argsort(np.asarray(reference_order)[held], kind="stable")]
    held_errors = _errors(pca, encoder.transform(reference.iloc[held]))
    return ReconstructionModel(encoder, pca, held_errors, n_ref, len(numeric) + len(categorical))


@dataclass(frozen=True)
class ReconstructionDrift:
    """The PCA method's verdict and what it rests on."""

    statistic: float
    threshold: float
    lower_threshold: float
    reference_mean: float
    spread: float
    drifted: bool
    n_components: int
    explained_variance: float
    n_features: int
    n_reference: int
    n_current: int
    chunk_size: int
    n_chunks: int

    def to_dict(self) -> dict[str, Any]:
        return {"method": "pca", **self.__dict__}


def reconstruction_drift(
    model: ReconstructionModel, current: pd.DataFrame, *, sigmas: float = 3.0
) -> ReconstructionDrift:
    """The current rows' mean reconstruction error against the reference's chunked band (module docstring)."""
    if len(current) < 1:
        raise ValueError("PCA drift needs at least one current row")
    return error_drift(model, model.errors(current), sigmas=sigmas)


def error_drift(model: ReconstructionModel, cur_errors: np.ndarray, *, sigmas: float = 3.0) -> ReconstructionDrift:
    """:func:`reconstruction_drift` from the current rows' errors (``model.errors``), however they were gathered."""
    if len(cur_errors) < 1:
        raise ValueError("PCA drift needs at least one current row")
    held = model.held_errors
    m = len(cur_errors)
    chunk = max(1, min(m, len(held) // MIN_CHUNKS))
    n_chunks = len(held) // chunk
    means = held[: n_chunks * chunk].reshape(n_chunks, chunk).mean(axis=1)
    per_window = float(np.std(means, ddof=1)) * math.sqrt(chunk / m)
    of_mean = float(np.std(held, ddof=1)) / math.sqrt(len(held))
    spread = math.hypot(per_window, of_mean)
    mean = float(held.mean())
    statistic = float(cur_errors.mean())
    upper, lower = mean + sigmas * spread, mean - sigmas * spread
    return ReconstructionDrift(
        statistic=statistic,
        threshold=upper,
        lower_threshold=lower,
        reference_mean=mean,
        spread=spread,
        drifted=bool(statistic > upper or statistic < lower),
        n_components=int(model.pca.n_components_),
        explained_variance=float(model.pca.explained_variance_ratio_.sum()),
        n_features=model.n_features,
        n_reference=model.n_reference,
        n_current=m,
        chunk_size=chunk,
        n_chunks=n_chunks,
    )


def _errors(pca: PCA, x: np.ndarray) -> np.ndarray:
    """Each row's distance from its projection on the kept components (PCA's reconstruction, without whitening)."""
    centred = x - pca.mean_
    components = pca.components_
    with one_thread():  # thin matrices: BLAS threads would mostly wait on each other
        return np.linalg.norm(centred - (centred @ components.T) @ components, axis=1)


@dataclass(frozen=True)
class ClassifierDrift:
    """The domain classifier's verdict: cross-validated AUC, its p-value, and per-fold detail."""

    statistic: float
    p_value: float
    threshold: float
    alpha: float
    drifted: bool
    fold_auc: list[float] = field(default_factory=list)
    n_features: int = 0
    n_reference: int = 0
    n_current: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"method": "classifier", **self.__dict__}


def classifier_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    threshold: float = 0.55,
    alpha: float = 0.05,
    folds: int = 5,
    max_iter: int = 50,
    seed: int = 0,
) -> ClassifierDrift:
    """Tell current rows from reference rows with gradient boosting; drifted when they can be, significantly."""
    if min(len(reference), len(current)) < folds:
        raise ValueError(f"the domain classifier needs at least {folds} rows on each side")
    both = pd.concat([reference, current], ignore_index=True)
    domain = np.concatenate([np.zeros(len(reference), dtype=int), np.ones(len(current), dtype=int)])
    matrix, is_categorical = _tree_matrix(both, numeric, categorical)
    if matrix.shape[1] == 0:
        raise ValueError("the domain classifier needs at least one feature")
    aucs, p_values = [], []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(matrix, domain):
        model = HistGradientBoostingClassifier(
            max_iter=max_iter,
            categorical_features=is_categorical if is_categorical.any() else None,
            early_stopping=False,
            random_state=seed,
        )
        # One thread: at these sizes OpenMP's threads mostly wait on each other, and on a busy machine
        # they spin (ten times slower on two shared cores).
        with one_thread("openmp"):
            score = model.fit(matrix[train], domain[train]).predict_proba(matrix[test])[:, 1]
        held = domain[test] == 1
        test_result = mannwhitneyu(score[held], score[~held], alternative="greater", method="asymptotic")
        aucs.append(float(test_result.statistic) / float(held.sum() * (~held).sum()))
        p_values.append(float(test_result.pvalue))
    auc = float(np.mean(aucs))
    p_value = min(1.0, 2.0 * float(np.mean(p_values)))
    return ClassifierDrift(
        statistic=auc,
        p_value=p_value,
        threshold=threshold,
        alpha=alpha,
        drifted=bool(p_value < alpha and auc > threshold),
        fold_auc=aucs,
        n_features=len(numeric) + len(categorical),
        n_reference=len(reference),
        n_current=len(current),
    )


def _tree_matrix(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Numerics as they are (NaN for missing) and categoricals as codes of their most frequent values."""
    columns = [_floats(frame, c) for c in numeric]
    for column in categorical:
        values = pd.Series(_categories(frame, column))
        top = values.value_counts().index[:MAX_TREE_CATEGORIES]
        codes: Mapping[Any, int] = {v: i for i, v in enumerate(top)}
        columns.append(values.map(codes).to_numpy(dtype=float, na_value=np.nan))
    mask = np.array([False] * len(numeric) + [True] * len(categorical), dtype=bool)
    matrix = np.column_stack(columns) if columns else np.empty((len(frame), 0))
    return matrix, mask


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isfinite(values), values, np.nan)


def _categories(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A categorical column as text, missing values as one category of their own."""
    codes, labels = _coded(frame, column)
    return np.asarray(labels, dtype=object)[codes]


def _coded(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, list[str]]:
    """Each row's index into the column's distinct values as text (missing values are ``MISSING``, the last)."""
    if column not in frame:
        return np.zeros(len(frame), dtype=np.intp), [MISSING]
    codes, uniques = pd.factorize(frame[column], use_na_sentinel=True)
    labels = [str(u) for u in uniques] + [MISSING]
    return np.where(codes < 0, len(labels) - 1, codes), labels
