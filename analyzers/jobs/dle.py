"""The estimation job for regression models: direct loss estimation (DLE) on the store's windows.

Reference: a uniform sample of at most ``sample_size`` labelled predictions with every feature cross-fits
the loss models of :mod:`analyzers.stats.loss_estimation` (absolute and squared error from the features and
the prediction; one pair per fold, each checked on the fold it did not see); the reference's realized MAE and
RMSE have an interval from the sample variance of its losses.

Window: the loss models need each row's features, so a window's rows are read once (in chunks, memory
bounded by the chunk) and every row with a numeric prediction is estimated; labelled rows, once
``min_labels`` have arrived, give the realized MAE and RMSE in the same pass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyzers.config.models import EstimationConfig
from analyzers.findings.estimation import CalibrationCheck
from analyzers.jobs.estimator import Accumulator, Estimator, Rows, TooFewLabels, WindowEstimate, numeric
from analyzers.stats.loss_estimation import LossFit, LossSums, fit_loss_models
from analyzers.stats.sampling import row_weights
from analyzers.store.base import PredictionReader, Query
from logshipper.schema import FEATURE_PREFIX

SEED = 0


def fit_regression(store: PredictionReader, query: Query, config: EstimationConfig) -> RegressionEstimator:
    """Sample the reference's labelled predictions with their features and fit the loss models on them."""
    kinds = {c.name: c.kind for c in store.columns(query) if c.name.startswith(FEATURE_PREFIX)}
    features = sorted(kinds)
    sample = store.sample(
        query, config.sample_size, seed=SEED, columns=[*features, "prediction", "label", "sample_rate"]
    )
    prediction, label = numeric(sample["prediction"]), numeric(sample["label"])
    # The store returns a sample in no set order; the folds must not depend on it.
    keys = [numeric(sample[c]) for c in features if kinds[c] == "numeric"][::-1]
    order = np.lexsort([*keys, label, prediction])
    sample, prediction, label = sample.iloc[order], prediction[order], label[order]
    keep = np.isfinite(prediction) & np.isfinite(label)
    if int(keep.sum()) < 2 * config.folds:
        raise TooFewLabels(
            f"the reference has {int(keep.sum())} labelled predictions with numeric values:"
            f" estimating losses needs at least {2 * config.folds}"
        )
    fit = fit_loss_models(
        sample[keep].reset_index(drop=True),
        prediction[keep],
        label[keep],
        row_weights(sample)[keep],
        numeric=[c for c in features if kinds[c] == "numeric"],
        categorical=[c for c in features if kinds[c] != "numeric"],
        folds=config.folds,
        confidence=config.confidence,
        seed=SEED,
    )
    return RegressionEstimator(fit, features)


class RegressionEstimator(Estimator):
    """The loss models fitted on the reference, and its realized MAE and RMSE."""

    task = "regression"

    def __init__(self, fit: LossFit, features: list[str]) -> None:
        self.fit = fit
        self.n_sample = fit.n
        self.columns = (*features, "prediction", "label", "sample_rate")

    def metrics(self, config: EstimationConfig) -> list[str]:
        return config.metrics_of(self.task)

    def reference(self, name: str) -> tuple[float | None, float | None, float | None, float | None]:
        se, low, high = self.fit.interval[name]
        return self.fit.realized[name], se, low, high

    def higher_is_better(self, name: str) -> bool:
        return False

    def calibration(self, config: EstimationConfig) -> CalibrationCheck:
        return CalibrationCheck(
            method="direct loss estimation", ece=None, n=self.fit.n, folds=self.fit.folds, held_out=self.fit.held_out
        )

    def prepare(self, chunk: pd.DataFrame) -> Rows:
        prediction, label = numeric(chunk["prediction"]), numeric(chunk["label"])
        w = row_weights(chunk)
        scored = np.isfinite(prediction)
        folds = len(self.fit.nannies.absolute)
        absolute = np.zeros((len(chunk), folds))
        squared = np.zeros((len(chunk), folds))
        if scored.any():
            matrix = self.fit.encoder.transform(chunk[scored], prediction[scored])
            absolute[scored], squared[scored] = self.fit.nannies.predict(matrix)
        return {
            "scored": scored,
            "absolute": absolute,
            "squared": squared,
            "prediction": prediction,
            "label": label,
            "labelled": chunk["label"].notna().to_numpy(),
            "weight": w,
        }

    def accumulator(self) -> Accumulator:
        return _Losses(self)


class _Losses(Accumulator):
    def __init__(self, estimator: RegressionEstimator) -> None:
        self.estimator = estimator
        self.sums = LossSums()
        self.n_labeled = 0.0
        self.outside = 0.0

    def add(self, rows: Rows) -> None:
        scored, w = rows["scored"], rows["weight"]
        self.sums.add_predicted(
            rows["absolute"][scored],
            rows["squared"][scored],
            w[scored],
            squared_variance=self.estimator.fit.nannies.squared_variance,
            scale_variance=self.estimator.fit.nannies.scale_variance,
        )
        self.n_labeled += float(w[rows["labelled"]].sum())
        low, high = self.estimator.fit.prediction_range
        prediction = rows["prediction"][scored]
        self.outside += float(w[scored][(prediction < low) | (prediction > high)].sum())
        real = scored & np.isfinite(rows["label"])
        self.sums.add_realized(rows["prediction"][real], rows["label"][real], w[real])

    def result(self, config: EstimationConfig) -> WindowEstimate:
        names = self.estimator.metrics(config)
        labelled = self.n_labeled >= config.min_labels and self.sums.labelled > 0
        return WindowEstimate(
            n_labeled=self.n_labeled,
            n_scored=self.sums.weight,
            outside=self.outside / self.sums.weight if self.sums.weight > 0 else None,
            estimates=self.sums.estimates(metrics=names, confidence=config.confidence),
            realized=self.sums.realized(metrics=names) if labelled else {},
            source="rows",
        )
