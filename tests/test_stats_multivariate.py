"""Multivariate drift: a correlation that flips with unchanged marginals drifts jointly, never per column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from analyzers.stats.multivariate import classifier_drift, fit_encoder, fit_reconstruction, reconstruction_drift

NUMERIC = ["a", "b", "c"]
CATEGORICAL = ["k"]


def rows(n: int, correlation: float, seed: int) -> pd.DataFrame:
    """Standard normal ``a`` and ``b`` with the given correlation, an independent ``c`` and category ``k``."""
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal([0, 0], [[1, correlation], [correlation, 1]], n)
    return pd.DataFrame({"a": z[:, 0], "b": z[:, 1], "c": rng.normal(size=n), "k": rng.choice(["x", "y", "z"], n)})


REFERENCE = rows(6000, 0.8, seed=0)
SAME = rows(2000, 0.8, seed=1)
FLIPPED = rows(2000, -0.8, seed=2)
MODEL = fit_reconstruction(REFERENCE, numeric=NUMERIC, categorical=CATEGORICAL)


def test_the_flip_leaves_every_marginal_unchanged() -> None:
    for column in NUMERIC:
        assert ks_2samp(REFERENCE[column], FLIPPED[column]).pvalue > 0.01, column


@pytest.mark.parametrize(("current", "drifted"), [(SAME, False), (FLIPPED, True)])
def test_pca_reconstruction_error_sees_the_flip(current: pd.DataFrame, drifted: bool) -> None:
    result = reconstruction_drift(MODEL, current)
    assert result.drifted is drifted
    assert result.lower_threshold < result.reference_mean < result.threshold
    assert (result.statistic > result.threshold) is drifted
    assert result.n_reference == 6000
    assert result.n_current == 2000
    assert result.n_chunks >= 10


def test_pca_band_is_computed_at_the_current_sample_size() -> None:
    wide = reconstruction_drift(MODEL, SAME.iloc[:200])
    narrow = reconstruction_drift(MODEL, SAME)
    assert wide.spread > narrow.spread  # a smaller sample gets a wider band, not more false alarms


@pytest.mark.parametrize(("current", "drifted"), [(SAME, False), (FLIPPED, True)])
def test_domain_classifier_sees_the_flip(current: pd.DataFrame, drifted: bool) -> None:
    result = classifier_drift(REFERENCE.iloc[:2000], current, numeric=NUMERIC, categorical=CATEGORICAL)
    assert result.drifted is drifted
    assert len(result.fold_auc) == 5
    if drifted:
        assert result.statistic > 0.8
        assert result.p_value < 1e-10
    else:
        assert abs(result.statistic - 0.5) < 0.05
        assert result.p_value > 0.05


def test_encoder_pools_rare_and_unseen_categories_and_centres_missing_numbers() -> None:
    reference = pd.DataFrame({"n": [1.0, 2.0, 3.0, None] * 50, "k": ["x"] * 199 + ["rare"]})
    encoder = fit_encoder(reference, ["n"], ["k"])
    assert encoder.categorical == {"k": ("x",)}  # "rare" is 0.5% of the reference: pooled
    current = pd.DataFrame({"n": [None, 2.0], "k": ["new", None]})
    raw = encoder.raw(current)
    assert raw[:, 2].tolist() == [1.0, 1.0]  # "new" and a missing value both fall in the pool
    assert encoder.transform(current)[:, 0].tolist() == [0.0, 0.0]  # missing and the mean sit at zero


def test_too_little_to_judge_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least two encoded columns"):
        fit_reconstruction(REFERENCE[["a"]], numeric=["a"], categorical=[])
    with pytest.raises(ValueError, match="reference rows"):
        fit_reconstruction(REFERENCE.iloc[:5], numeric=NUMERIC, categorical=CATEGORICAL)
    with pytest.raises(ValueError, match="one current row"):
        reconstruction_drift(MODEL, SAME.iloc[:0])
    with pytest.raises(ValueError, match="rows on each side"):
        classifier_drift(REFERENCE.iloc[:3], SAME, numeric=NUMERIC, categorical=CATEGORICAL)
