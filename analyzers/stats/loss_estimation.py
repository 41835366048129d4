"""Performance of a regression model without labels: Direct Loss Estimation (DLE).

A regression model gives no confidence with its prediction, but its error is not equally likely
everywhere: a second model (the *nanny*) can learn, on labelled reference predictions, how large the
error is given the inputs and the prediction.  Two nannies are fitted by gradient boosting on the
reference's features and prediction ``(x, ŷ)``: one on the absolute error ``|y - ŷ|``, whose mean over a
window estimates its MAE, and one on the squared error ``(y - ŷ)²``, whose mean estimates its MSE (the
RMSE is its square root).  Predicting a directionless loss is easier than predicting the signed
residual, so the nanny need not be a better model than the one it watches.

Each estimate comes with the standard error of the *realized* metric around it, as for CBPE: each row's
loss varies around the nanny's prediction, with variance ``ŝ - â²`` for the absolute error (``ŝ`` the
predicted squared error, ``â`` the predicted absolute error: ``Var|e| = E[e²] - E[|e|]²``) and
``(κ - 1) ŝ²`` for the squared error, with ``κ`` the errors' kurtosis given the inputs (``E[e⁴ | x] = κ ŝ²``;
3 for normal errors), measured on the reference as ``E[e⁴] / E[ŝ²]`` and assumed the same everywhere.  The RMSE's error
follows from the MSE's by the delta method, ``se(√M) = se(M) / (2√M)``.  The nannies' own error is
measured apart: nannies fitted without one fold of the reference (a ``1/folds`` share of its rows, at random)
estimate that fold's MAE and RMSE, which are compared with its realized values.

A window is summarised by a few weighted sums (:class:`LossSums`), so rows can be streamed in chunks and
windows estimated together.

References: NannyML, "Direct Loss Estimation (DLE)", docs.nannyml.com (how it works: performance
estimation), whose nanny model is LightGBM; here scikit-learn's histogram gradient boosting (Ke et al.,
"LightGBM", NeurIPS 2017, the same algorithm family).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import KFold

from analyzers.stats.estimation import MetricEstimate
from analyzers.stats.intervals import z_value
from analyzers.stats.threads import one_thread

LOSS_METRICS = ("mae", "rmse")
MAX_CATEGORIES = 250  # categories coded per column for the trees (the rest share one code)
MAX_ITER = 100  # boosting rounds of each nanny
MISSING = "\x00missing"


@dataclass(frozen=True)
class TreeEncoder:
    """Features for the nannies: numerics as they are (NaN when missing), categoricals as codes of the
    reference's most frequent values (missing and unseen values share one code), then the prediction."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    codes: Mapping[str, Mapping[str, int]]

    @property
    def categorical_mask(self) -> np.ndarray:
        """Which matrix columns are categorical (the prediction, last, is numeric)."""
        return np.array([False] * len(self.numeric) + [True] * len(self.categorical) + [False], dtype=bool)

    def transform(self, frame: pd.DataFrame, prediction: np.ndarray) -> np.ndarray:
        columns = [_floats(frame, c) for c in self.numeric]
        for column in self.categorical:
            codes = self.codes[column]
            coded = _categories(frame, column).map(codes).astype(float)
            columns.append(coded.fillna(float(len(codes))).to_numpy(dtype=float))
        columns.append(np.asarray(prediction, dtype=float))
        return np.column_stack(columns)


def fit_encoder(frame: pd.DataFrame, *, numeric: Sequence[str], categorical: Sequence[str]) -> TreeEncoder:
    """Codes for each categorical column's most frequent reference values."""
    codes = {}
    for column in categorical:
        top = _categories(frame, column).value_counts().index[:MAX_CATEGORIES]
        codes[column] = {str(v): i for i, v in enumerate(top)}
    return TreeEncoder(tuple(numeric), tuple(categorical), codes)


@dataclass(frozen=True)
class Nannies:
    """The two fitted loss models and the errors' kurtosis."""

    absolute: HistGradientBoostingRegressor
    squared: HistGradientBoostingRegressor
    kurtosis: float

    def predict(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's predicted absolute and squared error (never negative)."""
        with one_thread("openmp"):
            absolute = np.maximum(self.absolute.predict(matrix), 0.0)
            squared = np.maximum(self.squared.predict(matrix), 0.0)
        return absolute, np.maximum(squared, absolute * absolute)


@dataclass
class LossSums:
    """A window's weighted sums: of the predicted losses and their variances (every row with a prediction), and
    of the realized losses (labelled rows)."""

    weight: float = 0.0
    absolute: float = 0.0
    squared: float = 0.0
    var_absolute: float = 0.0
    var_squared: float = 0.0
    labelled: float = 0.0
    realized_absolute: float = 0.0
    realized_squared: float = 0.0

    def add(self, nannies: Nannies, matrix: np.ndarray, weights: np.ndarray) -> None:
        """Rows whose losses are to be estimated."""
        if len(weights) == 0:
            return
        absolute, squared = nannies.predict(matrix)
        self.add_predicted(absolute, squared, weights, kurtosis=nannies.kurtosis)

    def add_predicted(self, absolute: np.ndarray, squared: np.ndarray, weights: np.ndarray, *, kurtosis: float) -> None:
        """Rows whose predicted absolute and squared errors are known."""
        w = np.asarray(weights, dtype=float)
        self.weight += float(w.sum())
        self.absolute += float(w @ absolute)
        self.squared += float(w @ squared)
        self.var_absolute += float((w * w) @ np.maximum(squared - absolute * absolute, 0.0))
        self.var_squared += float((w * w) @ ((kurtosis - 1.0) * squared * squared))

    def add_realized(self, prediction: np.ndarray, label: np.ndarray, weights: np.ndarray) -> None:
        """Labelled rows: their actual losses."""
        error = np.asarray(label, dtype=float) - np.asarray(prediction, dtype=float)
        w = np.asarray(weights, dtype=float)
        self.labelled += float(w.sum())
        self.realized_absolute += float(w @ np.abs(error))
        self.realized_squared += float(w @ (error * error))

    def estimates(
        self, *, metrics: Sequence[str] = LOSS_METRICS, confidence: float = 0.95
    ) -> dict[str, MetricEstimate]:
        """The estimated MAE and RMSE with their standard errors and intervals (see the module docstring)."""
        z = z_value(confidence)
        out: dict[str, MetricEstimate] = {}
        for name in metrics:
            if self.weight <= 0:
                out[name] = MetricEstimate(None, None, None, None)
            elif name == "mae":
                mae = self.absolute / self.weight
                out[name] = _interval(mae, math.sqrt(self.var_absolute) / self.weight, z)
            elif name == "rmse":
                mse = self.squared / self.weight
                rmse = math.sqrt(mse)
                se_mse = math.sqrt(self.var_squared) / self.weight
                out[name] = _interval(rmse, se_mse / (2 * rmse) if rmse > 0 else 0.0, z)
            else:
                raise ValueError(f"unknown metric {name!r}: expected one of {', '.join(LOSS_METRICS)}")
        return out

    def realized(self, *, metrics: Sequence[str] = LOSS_METRICS) -> dict[str, float | None]:
        """The realized MAE and RMSE of the labelled rows (``None`` without any)."""
        if self.labelled <= 0:
            return {name: None for name in metrics}
        values = {
            "mae": self.realized_absolute / self.labelled,
            "rmse": math.sqrt(self.realized_squared / self.labelled),
        }
        return {name: values[name] for name in metrics}


@dataclass(frozen=True)
class LossFit:
    """The nannies, the reference's realized metrics with their intervals, and the out-of-fold check."""

    encoder: TreeEncoder
    nannies: Nannies
    realized: dict[str, float]
    interval: dict[str, tuple[float, float, float]]  # (se, lower, upper)
    held_out: dict[str, dict[str, float | None]] = field(default_factory=dict)
    n: int = 0
    folds: int = 0
    prediction_range: tuple[float, float] = (-math.inf, math.inf)  # the reference's smallest and largest prediction


def fit_loss_models(
    frame: pd.DataFrame,
    prediction: np.ndarray,
    label: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    folds: int = 5,
    confidence: float = 0.95,
    max_iter: int = MAX_ITER,
    seed: int = 0,
) -> LossFit:
    """Fit both nannies on labelled reference rows (features in ``frame``); check them on a held-out fold."""
    y_hat = np.asarray(prediction, dtype=float)
    y = np.asarray(label, dtype=float)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    if not (len(frame) == len(y_hat) == len(y) == len(w)):
        raise ValueError("frame, prediction, label and weights must have the same length")
    if len(y) < 2 * folds:
        raise ValueError(f"direct loss estimation needs at least {2 * folds} labelled reference predictions")
    if not (np.all(np.isfinite(y_hat)) and np.all(np.isfinite(y))):
        raise ValueError("predictions and labels must be finite (drop the other rows first)")
    encoder = fit_encoder(frame, numeric=numeric, categorical=categorical)
    matrix = encoder.transform(frame, y_hat)
    error = y - y_hat
    absolute, squared = np.abs(error), error * error
    # The check: nannies fitted without one fold (a 1/folds share of the rows, at random) predict it.
    train, test = next(KFold(n_splits=folds, shuffle=True, random_state=seed).split(matrix))
    held = _nannies(matrix[train], absolute[train], squared[train], w[train], encoder, 3.0, max_iter, seed)
    held_absolute, held_squared = held.predict(matrix[test])
    kurtosis = _kurtosis(error[test], held_squared, w[test])
    nannies = _nannies(matrix, absolute, squared, w, encoder, kurtosis, max_iter, seed)
    total = float(w.sum())
    realized = {"mae": float(w @ absolute) / total, "rmse": math.sqrt(float(w @ squared) / total)}
    checked = LossSums()
    checked.add_predicted(held_absolute, held_squared, w[test], kurtosis=kurtosis)
    checked.add_realized(y_hat[test], y[test], w[test])
    held_out = {
        name: {"estimated": estimate.value, "realized": checked.realized()[name]}
        for name, estimate in checked.estimates(confidence=confidence).items()
    }
    return LossFit(
        encoder=encoder,
        nannies=nannies,
        realized=realized,
        interval=_reference_intervals(absolute, squared, w, confidence),
        held_out=held_out,
        n=len(y),
        folds=folds,
        prediction_range=(float(y_hat.min()), float(y_hat.max())),
    )


def _nannies(
    matrix: np.ndarray,
    absolute: np.ndarray,
    squared: np.ndarray,
    weights: np.ndarray,
    encoder: TreeEncoder,
    kurtosis: float,
    max_iter: int,
    seed: int,
) -> Nannies:
    mask = encoder.categorical_mask

    def model() -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            max_iter=max_iter,
            categorical_features=mask if mask.any() else None,
            early_stopping=False,
            random_state=seed,
        )

    # Equal weights are left out: with weights, the trees' bins come from weighted percentiles, many times slower.
    sample_weight = None if np.all(weights == weights[0]) else weights
    # One thread: at these sizes OpenMP's threads mostly wait on each other, and on a busy machine they spin.
    with one_thread("openmp"):
        fitted_absolute = model().fit(matrix, absolute, sample_weight=sample_weight)
        fitted_squared = model().fit(matrix, squared, sample_weight=sample_weight)
    return Nannies(fitted_absolute, fitted_squared, kurtosis)


def _kurtosis(error: np.ndarray, predicted_squared: np.ndarray, weights: np.ndarray) -> float:
    """The errors' kurtosis given the inputs, ``κ`` in ``E[e⁴ | x] = κ ŝ(x)²``: ``E[e⁴] / E[ŝ²]`` over the reference,
    with ``ŝ`` the squared error predicted by nannies that did not see the rows (3, the normal's, when every error
    is zero)."""
    fourth = float(weights @ (error**4))
    scale = float(weights @ (predicted_squared**2))
    return max(fourth / scale, 1.0) if scale > 0 and fourth > 0 else 3.0


def _reference_intervals(
    absolute: np.ndarray, squared: np.ndarray, weights: np.ndarray, confidence: float
) -> dict[str, tuple[float, float, float]]:
    """Standard error and interval of the reference's realized MAE and RMSE (sample variance of the losses)."""
    z = z_value(confidence)
    total = float(weights.sum())
    n_eff = total * total / float(weights @ weights)
    out = {}
    mae = float(weights @ absolute) / total
    se_mae = math.sqrt(float(weights @ (absolute - mae) ** 2) / total / n_eff)
    out["mae"] = (se_mae, max(0.0, mae - z * se_mae), mae + z * se_mae)
    mse = float(weights @ squared) / total
    se_mse = math.sqrt(float(weights @ (squared - mse) ** 2) / total / n_eff)
    rmse = math.sqrt(mse)
    se_rmse = se_mse / (2 * rmse) if rmse > 0 else 0.0
    out["rmse"] = (se_rmse, max(0.0, rmse - z * se_rmse), rmse + z * se_rmse)
    return out


def _interval(value: float, se: float, z: float) -> MetricEstimate:
    return MetricEstimate(value, se, max(0.0, value - z * se), value + z * se)


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isfinite(values), values, np.nan)


def _categories(frame: pd.DataFrame, column: str) -> pd.Series:
    """A categorical column as text, missing values as one category of their own."""
    if column not in frame:
        return pd.Series([MISSING] * len(frame), index=frame.index, dtype=object)
    series = frame[column]
    return series.astype(str).where(series.notna(), MISSING)
