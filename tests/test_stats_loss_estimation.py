"""Direct loss estimation against hand-computed sums and a simulation whose errors depend on the inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analyzers.stats.loss_estimation import LossSums, fit_loss_models


def test_the_sums_give_the_hand_computed_estimates_and_standard_errors() -> None:
    sums = LossSums()
    absolute, squared, w = np.array([1.0, 2.0]), np.array([2.0, 5.0]), np.array([1.0, 3.0])
    sums.add_predicted(absolute, squared, w, kurtosis=3.0)
    est = sums.estimates(confidence=0.95)
    assert est["mae"].value == pytest.approx((1 * 1 + 3 * 2) / 4)
    # Var|e| = E[e²] - E[|e|]² per row: 2 - 1 and 5 - 4; weights enter squared.
    assert est["mae"].se == pytest.approx(math.sqrt(1 * 1 + 9 * 1) / 4)
    mse = (1 * 2 + 3 * 5) / 4
    assert est["rmse"].value == pytest.approx(math.sqrt(mse))
    # Var e² = (κ - 1) E[e²]² with κ = 3 (normal errors); RMSE's error by the delta method.
    se_mse = math.sqrt(1 * 2 * 4 + 9 * 2 * 25) / 4
    assert est["rmse"].se == pytest.approx(se_mse / (2 * math.sqrt(mse)))
    assert est["mae"].lower == pytest.approx(est["mae"].value - 1.959964 * est["mae"].se, rel=1e-6)


def test_realized_losses_need_labels_and_are_null_without() -> None:
    sums = LossSums()
    assert sums.realized() == {"mae": None, "rmse": None}
    sums.add_realized(np.array([1.0, 2.0]), np.array([2.0, 0.0]), np.ones(2))
    assert sums.realized() == {"mae": pytest.approx(1.5), "rmse": pytest.approx(math.sqrt(2.5))}


def _simulate(n: int, rng: np.random.Generator, *, high: float = 1.0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A model that is exact on average but whose noise grows with ``x`` and is larger in segment ``c``."""
    x = rng.uniform(0.0, high, n)
    segment = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    noise = rng.normal(0.0, 0.1 + x + 0.5 * (segment == "c"))
    prediction = 3 * x
    return pd.DataFrame({"features.x": x, "features.segment": segment}), prediction, prediction + noise


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    frame, prediction, label = _simulate(4000, rng)
    fit = fit_loss_models(
        frame, prediction, label, numeric=["features.x"], categorical=["features.segment"], folds=3, seed=0
    )
    return fit, rng


def test_the_nannies_estimate_held_out_reference_losses(fitted) -> None:
    fit, _ = fitted
    for name in ("mae", "rmse"):
        held = fit.held_out[name]
        # one fold of 1,333 rows: its realized RMSE alone varies by about 2% (heavy-tailed errors)
        assert held["estimated"] == pytest.approx(held["realized"], rel=0.06), name
    lower, upper = fit.interval["mae"][1], fit.interval["mae"][2]
    assert lower < fit.realized["mae"] < upper


def test_a_window_of_harder_inputs_is_estimated_worse_within_its_interval(fitted) -> None:
    fit, rng = fitted
    frame, prediction, label = _simulate(20_000, rng)
    hard = (frame["features.x"] > 0.6).to_numpy()  # the inputs move where the model errs most, inside the reference
    sums = LossSums()
    sums.add(fit.nannies, fit.encoder.transform(frame[hard], prediction[hard]), np.ones(int(hard.sum())))
    sums.add_realized(prediction[hard], label[hard], np.ones(int(hard.sum())))
    estimated, realized = sums.estimates(), sums.realized()
    for name in ("mae", "rmse"):
        assert estimated[name].value > fit.realized[name] * 1.2, name  # clearly worse than the reference
        assert realized[name] is not None
        # within four standard errors of the realized value plus 3% for the nanny's own error
        allowed = 4 * estimated[name].se + 0.03 * realized[name]
        assert abs(estimated[name].value - realized[name]) < allowed, name


def test_too_few_rows_or_non_finite_values_are_refused() -> None:
    frame = pd.DataFrame({"features.x": np.arange(6.0)})
    with pytest.raises(ValueError, match="at least 10 labelled"):
        fit_loss_models(frame, np.zeros(6), np.ones(6), numeric=["features.x"], categorical=[], folds=5)
    frame = pd.DataFrame({"features.x": np.arange(20.0)})
    label = np.ones(20)
    label[3] = np.nan
    with pytest.raises(ValueError, match="must be finite"):
        fit_loss_models(frame, np.zeros(20), label, numeric=["features.x"], categorical=[], folds=5)
