"""Performance of a regression model without labels: Direct Loss Estimation (DLE).

A regression model gives no confidence with its prediction, but its error is not equally likely
everywhere: a second model (the *nanny*) can learn, on labelled reference predictions, how large the
error is given the inputs and the prediction.  Nannies are fitted by gradient boosting on the
reference's features and prediction ``(x, ŷ)``: on the absolute error ``|y - ŷ|``, whose mean over a
window estimates its MAE, and on the squared error ``(y - ŷ)²``, whose mean estimates its MSE (the
RMSE is its square root).  Predicting a directionless loss is easier than predicting the signed
residual, so the nanny need not be a better model than the one it watches.

The nannies have a log link (they minimise the Poisson deviance, which, like the squared error, is
minimised by the conditional mean of a non-negative target): errors usually scale with the inputs'
effects multiplied (a price's errors with the price), so the trees add up those effects in the log of the
loss, and where the inputs move together into a region the reference holds few rows of, their effects
compound there as in the errors.  Nannies additive in the squared error itself overshot the RMSE there
(on NannyML's used-car sample, by 14 to 40 in the chunks whose inputs moved together; now -3 to 24).  Each
loss is learnt over its reference mean (the trees' splits weigh the log link's hessians, the predicted loss
itself, so its units would matter), and each fold's nanny is then rescaled so that the reference's out-of-fold
predicted loss equals its realized one: the log link alone underestimates heavy-tailed losses out of sample.

The nannies are *cross-fitted*: the reference is split into ``K`` folds and each pair of nannies learns
from all folds but one, so every reference row has out-of-fold predicted losses, and a window's estimate
is the mean of the ``K`` pairs' estimates.  Its interval covers the window's realized metric at the
stated confidence, over the window's labels and the reference the nannies learnt from, with three parts:

- *sampling*: the window's realized losses vary around the predicted ones, row by row.  A row's absolute
  error varies by ``ŝ - â²`` (``ŝ`` the predicted squared error, ``â`` the predicted absolute error:
  ``Var|e| = E[e²] - E[|e|]²``), its squared error by ``c ŝ²``, since ``Var e² = E[e⁴] - E[e²]²`` needs the
  fourth moment, which no nanny predicts: ``c = κ - 1`` for errors of kurtosis ``κ`` given the inputs (2 for
  normal errors), measured out of fold as the reference's squared differences between its squared errors
  and their out-of-fold predictions over ``Σ ŝ²``.  This part shrinks as ``1/n`` with the window's size
  ``n``.
- *the nannies' own error*: they learnt from a finite reference, so their mean over a window would differ
  with another reference; this part does not shrink with ``n`` and grows where the window's inputs are
  thin in the reference.  It is the group jackknife over the folds, ``(K-1)/K Σ (θ_k - θ̄)²`` with ``θ_k``
  the window's estimate by the nannies without fold ``k``, computed on the window's own rows.
- *the rescaling's error*: the factor that makes the nannies unbiased on the reference is one for every fold,
  so the jackknife does not see it vary, but it is a ratio of two reference means and would differ with another
  reference.  Its relative variance, by the delta method ``Σ w² (e - r f)² / (Σ w e)²`` (``e`` the reference's
  losses, ``r f`` their rescaled out-of-fold predictions), times the estimate squared, is added; like the
  jackknife's, this part does not shrink with ``n``.  Without it the RMSE's interval held 88% to 92% of the realized
  RMSEs in four of the six cells of the coverage simulation (nominal 95%; with it, 91% to 99%).

The interval is ``θ̄ ± t·se`` with ``se²`` the sum of the three parts and ``t`` Student's quantile with the
Welch–Satterthwaite degrees of freedom (the jackknife has ``K - 1``; the other parts, from every row, are
taken as exact), which is the normal quantile when the sampling part dominates.  The RMSE's interval is the
square root of the MSE's (its standard error by the delta method, ``se(√M) = se(M) / (2√M)``).

What no variance measured on the reference can cover is a change in how the inputs relate to the error
(concept shift), inputs beyond the reference's range, where the trees extrapolate flat, and the nannies'
bias where the inputs crowd into a region the reference barely holds (the jackknife measures how much they
vary there, not how far off they all are).

A window is summarised by a few weighted sums (:class:`LossSums`), so rows can be streamed in chunks and
windows estimated together.

References: NannyML, "Direct Loss Estimation (DLE)", docs.nannyml.com (how it works: performance estimation),
whose nanny model is LightGBM (on the squared error); here scikit-learn's histogram gradient boosting (Ke et
al., "LightGBM", NeurIPS 2017, the same algorithm family). The Poisson deviance as a consistent loss for a
mean: Gneiting, "Making and evaluating point forecasts", JASA 2011. Cross-fitting: Chernozhukov et al.,
"Double/debiased machine learning", Econometrics Journal 2018. Group jackknife: Efron & Tibshirani, "An
Introduction to the Bootstrap", 1993, ch. 11. Welch–Satterthwaite: Satterthwaite, Biometrics Bulletin 1946.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import t as student_t
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import KFold

from analyzers.stats.estimation import MetricEstimate
from analyzers.stats.intervals import z_value
from analyzers.stats.threads import one_thread

LOSS_METRICS = ("mae", "rmse")
MAX_CATEGORIES = 250  # categories coded per column for the trees (the rest share one code)
MAX_ITER = 100  # boosting rounds of each nanny
MISSING = "\x00missing"
NORMAL_SQUARED_VARIANCE = 2.0  # Var e² / E[e²]² for normal errors (kurtosis 3, less 1)


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
class LossModel:
    """One nanny: gradient boosting with a log link (Poisson deviance) fitted on a loss over its reference mean,
    ``scale``, so that the trees' split thresholds (on the sum of the loss's hessians) do not depend on the loss's
    units; ``None`` when the loss was 0 on every row it learnt from (then it predicts 0)."""

    model: HistGradientBoostingRegressor | None
    scale: float

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Each row's predicted loss (never negative: the log link's mean is positive)."""
        if self.model is None:
            return np.zeros(len(matrix))
        return self.model.predict(matrix) * self.scale


@dataclass(frozen=True)
class Nannies:
    """The loss models cross-fitted on the reference's folds (pair ``k`` learnt without fold ``k``), ``c`` in
    ``Var(e² | x) = c ŝ²`` (``κ - 1``), and the relative variances of the factors that rescaled the absolute and
    the squared nannies to the reference's realized losses (shared by every fold, so outside the jackknife)."""

    absolute: tuple[LossModel, ...]
    squared: tuple[LossModel, ...]
    squared_variance: float = NORMAL_SQUARED_VARIANCE
    scale_variance: tuple[float, float] = (0.0, 0.0)

    def predict(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's predicted absolute and squared error by each fold's pair (rows × folds; the squared error never
        below the square of the absolute)."""
        with one_thread("openmp"):
            absolute = np.column_stack([m.predict(matrix) for m in self.absolute])
            squared = np.column_stack([m.predict(matrix) for m in self.squared])
        return absolute, np.maximum(squared, absolute * absolute)


@dataclass
class LossSums:
    """A window's weighted sums: of the predicted losses per fold's nannies and of their sampling variances (every
    row with a prediction), and of the realized losses (labelled rows)."""

    weight: float = 0.0
    absolute: np.ndarray = field(default_factory=lambda: np.zeros(0))  # Σ w â_k, one per fold
    squared: np.ndarray = field(default_factory=lambda: np.zeros(0))  # Σ w ŝ_k, one per fold
    var_absolute: float = 0.0
    var_squared: float = 0.0
    scale_variance: tuple[float, float] = (0.0, 0.0)  # the rescaling's relative variance (absolute, squared)
    labelled: float = 0.0
    realized_absolute: float = 0.0
    realized_squared: float = 0.0

    def add(self, nannies: Nannies, matrix: np.ndarray, weights: np.ndarray) -> None:
        """Rows whose losses are to be estimated."""
        if len(weights) == 0:
            return
        absolute, squared = nannies.predict(matrix)
        self.add_predicted(
            absolute,
            squared,
            weights,
            squared_variance=nannies.squared_variance,
            scale_variance=nannies.scale_variance,
        )

    def add_predicted(
        self,
        absolute: np.ndarray,
        squared: np.ndarray,
        weights: np.ndarray,
        *,
        squared_variance: float,
        scale_variance: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        """Rows whose predicted absolute and squared errors are known (rows × folds, or one column per row), by
        nannies of the given ``c`` and rescaling variances (:class:`Nannies`)."""
        w = np.asarray(weights, dtype=float)
        if len(w) == 0:
            return
        a = np.asarray(absolute, dtype=float).reshape(len(w), -1)
        s = np.asarray(squared, dtype=float).reshape(len(w), -1)
        if self.absolute.size == 0:
            self.absolute, self.squared = np.zeros(a.shape[1]), np.zeros(a.shape[1])
        elif a.shape[1] != self.absolute.size:
            raise ValueError(f"predicted losses of {a.shape[1]} folds added to sums of {self.absolute.size}")
        self.scale_variance = scale_variance
        self.weight += float(w.sum())
        self.absolute = self.absolute + w @ a
        self.squared = self.squared + w @ s
        mean_a, mean_s = a.mean(axis=1), s.mean(axis=1)
        self.var_absolute += float((w * w) @ np.maximum(mean_s - mean_a * mean_a, 0.0))
        self.var_squared += squared_variance * float((w * w) @ (mean_s * mean_s))

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
        out: dict[str, MetricEstimate] = {}
        for name in metrics:
            if name not in LOSS_METRICS:
                raise ValueError(f"unknown metric {name!r}: expected one of {', '.join(LOSS_METRICS)}")
            if self.weight <= 0:
                out[name] = MetricEstimate(None, None, None, None)
                continue
            per_fold = (self.absolute if name == "mae" else self.squared) / self.weight
            sampling = (self.var_absolute if name == "mae" else self.var_squared) / (self.weight * self.weight)
            value = float(per_fold.mean())
            relative = self.scale_variance[0 if name == "mae" else 1]
            mean = LossMean(value, sampling, jackknife(per_fold), per_fold.size, value * value * relative)
            out[name] = mean.interval(confidence) if name == "mae" else mean.root_interval(confidence)
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
class LossMean:
    """A window's estimated mean loss (MAE or MSE) with the parts of its variance: the sampling variance of the
    realized mean around it, the nannies' own (the jackknife over ``folds`` folds), and their rescaling's."""

    value: float
    sampling: float
    nannies: float
    folds: int
    scale: float = 0.0

    @property
    def se(self) -> float:
        """Standard error of the realized mean loss around the estimate."""
        return math.sqrt(self.sampling + self.nannies + self.scale)

    @property
    def degrees_of_freedom(self) -> float:
        """Welch–Satterthwaite's: the jackknife's ``folds - 1`` weighed by its share of the variance (infinite
        when the nannies agree or there is one fold; the other parts, from every row, are taken as exact)."""
        if self.nannies <= 0 or self.folds < 2:
            return math.inf
        total = self.sampling + self.nannies + self.scale
        return total * total * (self.folds - 1) / (self.nannies * self.nannies)

    def quantile(self, confidence: float) -> float:
        """The two-sided quantile of the interval: Student's at :attr:`degrees_of_freedom`, the normal's at
        infinity."""
        df = self.degrees_of_freedom
        z = z_value(confidence)
        return z if math.isinf(df) else float(student_t.ppf(1 - (1 - confidence) / 2, df))

    def interval(self, confidence: float) -> MetricEstimate:
        """The mean loss's interval (never below 0)."""
        q = self.quantile(confidence)
        return MetricEstimate(self.value, self.se, max(0.0, self.value - q * self.se), self.value + q * self.se)

    def root_interval(self, confidence: float) -> MetricEstimate:
        """The square root's (RMSE from MSE): the MSE's interval mapped through the root, the standard error by the
        delta method."""
        q = self.quantile(confidence)
        rmse = math.sqrt(max(self.value, 0.0))
        lower = math.sqrt(max(0.0, self.value - q * self.se))
        upper = math.sqrt(max(0.0, self.value + q * self.se))
        return MetricEstimate(rmse, self.se / (2 * rmse) if rmse > 0 else 0.0, lower, upper)


def jackknife(estimates: np.ndarray) -> float:
    """Group-jackknife variance of an estimate from its leave-one-fold-out values, ``(K-1)/K Σ (θ_k - θ̄)²``
    (0 for a single value)."""
    k = len(estimates)
    if k < 2:
        return 0.0
    return float((k - 1) / k * np.sum((estimates - estimates.mean()) ** 2))


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
    """Cross-fit the nannies on labelled reference rows (features in ``frame``): one pair per fold, each without
    its fold, which it predicts; the out-of-fold predictions give the squared error's variance and the check."""
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
    split = list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(matrix))
    raw_absolute, raw_squared = np.zeros(len(y)), np.zeros(len(y))
    pairs = []
    for train, test in split:
        pair = _nannies(matrix[train], absolute[train], squared[train], w[train], encoder, max_iter, seed)
        with one_thread("openmp"):
            raw_absolute[test] = pair.absolute[0].predict(matrix[test])
            raw_squared[test] = pair.squared[0].predict(matrix[test])
        pairs.append(pair)
    # The check: each row predicted by the pair that did not see it, rescaled by the rows that pair learnt from.
    out_absolute, out_squared = np.zeros(len(y)), np.zeros(len(y))
    for _, test in split:
        others = np.ones(len(y), dtype=bool)
        others[test] = False
        out_absolute[test] = raw_absolute[test] * _ratio(absolute, raw_absolute, w, others)
        out_squared[test] = np.maximum(
            raw_squared[test] * _ratio(squared, raw_squared, w, others), out_absolute[test] ** 2
        )
    every = np.ones(len(y), dtype=bool)
    to_absolute, to_squared = _ratio(absolute, raw_absolute, w, every), _ratio(squared, raw_squared, w, every)
    nannies = Nannies(
        tuple(LossModel(p.absolute[0].model, p.absolute[0].scale * to_absolute) for p in pairs),
        tuple(LossModel(p.squared[0].model, p.squared[0].scale * to_squared) for p in pairs),
        _squared_variance(squared, out_squared, w),
        (
            _ratio_variance(absolute, raw_absolute * to_absolute, w),
            _ratio_variance(squared, raw_squared * to_squared, w),
        ),
    )
    total = float(w.sum())
    realized = {"mae": float(w @ absolute) / total, "rmse": math.sqrt(float(w @ squared) / total)}
    held_out: dict[str, dict[str, float | None]] = {
        "mae": {"estimated": float(w @ out_absolute) / total, "realized": realized["mae"]},
        "rmse": {"estimated": math.sqrt(float(w @ out_squared) / total), "realized": realized["rmse"]},
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
    max_iter: int,
    seed: int,
) -> Nannies:
    """One pair of nannies fitted on the given rows."""
    mask = encoder.categorical_mask
    # Equal weights are left out: with weights, the trees' bins come from weighted percentiles, many times slower.
    sample_weight = None if np.all(weights == weights[0]) else weights

    def fitted(loss: np.ndarray) -> LossModel:
        scale = float(weights @ loss) / float(weights.sum())
        if scale <= 0:
            return LossModel(None, 0.0)
        model = HistGradientBoostingRegressor(
            loss="poisson",
            max_iter=max_iter,
            categorical_features=mask if mask.any() else None,
            early_stopping=False,
            random_state=seed,
        )
        return LossModel(model.fit(matrix, loss / scale, sample_weight=sample_weight), scale)

    # One thread: at these sizes OpenMP's threads mostly wait on each other, and on a busy machine they spin.
    with one_thread("openmp"):
        return Nannies((fitted(absolute),), (fitted(squared),))


def _ratio(loss: np.ndarray, out_of_fold: np.ndarray, weights: np.ndarray, rows: np.ndarray) -> float:
    """The given reference rows' realized loss over their out-of-fold predicted loss: the factor that makes the
    nannies unbiased on the reference, since their log link otherwise underestimates heavy-tailed losses out of
    sample (the trees' fit to a few large losses, exponentiated, does not carry to new rows); 1 when nothing is
    predicted."""
    predicted = float(weights[rows] @ out_of_fold[rows])
    return float(weights[rows] @ loss[rows]) / predicted if predicted > 0 else 1.0


def _ratio_variance(loss: np.ndarray, rescaled: np.ndarray, weights: np.ndarray) -> float:
    """The relative variance of :func:`_ratio` over every reference row (the delta method's for a ratio of means),
    ``Σ w² (e - r f)² / (Σ w e)²`` with ``r f`` the rescaled out-of-fold prediction: the reference's realized mean
    loss is itself a sample, so the factor would differ with another reference (0 without any loss)."""
    total = float(weights @ loss)
    return float((weights * weights) @ (loss - rescaled) ** 2) / (total * total) if total > 0 else 0.0


def _squared_variance(squared: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> float:
    """``c`` in ``Var(e² | x) = c ŝ²``: the reference's squared differences between its squared errors and their
    out-of-fold predictions, over ``Σ ŝ²`` (a normal's 2 when every prediction is 0)."""
    scale = float(weights @ (predicted**2))
    return float(weights @ (squared - predicted) ** 2) / scale if scale > 0 else NORMAL_SQUARED_VARIANCE


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
