"""Drift statistics checked against scipy on the same numbers, and their false-alarm rate without drift."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats
from scipy.spatial import distance

from analyzers.config.jobs import FeatureOverride
from analyzers.config.loader import ConfigError, parse_config
from analyzers.stats import drift, drift_methods
from analyzers.stats.binning import bin_counts, fine_edges, merge_bins, quantile_edges, quantile_levels
from analyzers.stats.drift import (
    ColumnDrift,
    MissingRate,
    chi_square,
    decide,
    is_discrete,
    js_distance,
    ks_from_counts,
    ks_from_samples,
    missing_rate_test,
    psi,
    spread,
    wasserstein_from_counts,
)
from analyzers.stats.drift_methods import (
    NumericColumn,
    categorical_drift,
    default_effect_size,
    default_test,
    drift_test,
    effect_size,
    numeric_drift,
)
from analyzers.stats.multitest import adjust, benjamini_hochberg, bonferroni


def _edges(ref: np.ndarray, n_bins: int, outer: bool = True) -> np.ndarray:
    return quantile_edges(list(np.quantile(ref, quantile_levels(n_bins))), outer=outer)


def _numeric(ref: np.ndarray, cur: np.ndarray, method: str = "wasserstein", exact: bool = False) -> ColumnDrift:
    return numeric_drift("x", _numeric_column(ref, cur, exact=exact), effect=method)


def _numeric_column(ref: np.ndarray, cur: np.ndarray, exact: bool = False) -> NumericColumn:
    levels = quantile_levels(100)
    quantiles = list(np.quantile(ref, levels))
    fine, coarse = fine_edges(quantiles), quantile_edges(quantiles[::10], outer=False)
    rf, cf = bin_counts(ref, fine), bin_counts(cur, fine)
    low, high = min(ref.min(), cur.min()), max(ref.max(), cur.max())
    return NumericColumn(
        ref_fine=rf,
        cur_fine=cf,
        fine_edges=fine,
        coarse_edges=coarse,
        low=low,
        high=high,
        scale=spread(ref_std=float(ref.std()), cur_std=float(cur.std()), ref_mean=float(ref.mean())),
        discrete=is_discrete(quantiles),
        samples=(ref, cur) if exact else None,
    )


# ---- multiple testing ----------------------------------------------------------------------


def test_benjamini_hochberg_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.uniform(size=30), rng.uniform(0, 0.01, size=5), [0.0, 1.0, 0.5, 0.5]])
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p), rtol=1e-12)


def test_nan_p_values_are_left_out_of_the_family() -> None:
    p = np.array([0.01, np.nan, 0.04, 0.03])
    bh = benjamini_hochberg(p)
    assert math.isnan(bh[1])
    np.testing.assert_allclose(bh[[0, 2, 3]], stats.false_discovery_control(p[[0, 2, 3]]))
    np.testing.assert_allclose(bonferroni(p)[[0, 2, 3]], [0.03, 0.12, 0.09])


def test_bonferroni_caps_at_one_and_none_is_unchanged() -> None:
    p = [0.2, 0.5, 0.001]
    np.testing.assert_allclose(adjust(p, method="bonferroni"), [0.6, 1.0, 0.003])
    np.testing.assert_allclose(adjust(p, method="none"), p)
    with pytest.raises(ValueError, match="unknown correction"):
        adjust(p, method="holm")  # type: ignore[arg-type]


# ---- binning -------------------------------------------------------------------------------


def test_tied_quantiles_get_a_bin_of_their_own() -> None:
    values = np.concatenate([np.zeros(600), np.arange(1, 401, dtype=float)])
    edges = _edges(values, 10)
    counts = bin_counts(values, edges)
    zero_bin = int(np.searchsorted(edges, 0.0, side="right"))
    assert counts[zero_bin] == 600  # the atom at 0 alone in [0, nextafter(0))
    assert counts[0] == 0
    assert counts[-1] == 0  # the reference's own range is inside the edges
    assert counts.sum() == values.size


def test_merging_fine_bins_equals_counting_over_coarse_edges() -> None:
    rng = np.random.default_rng(2)
    ref = np.round(rng.exponential(size=5000), 1)
    cur = np.round(rng.exponential(1.2, size=3000), 1)
    levels = quantile_levels(100)
    q = list(np.quantile(ref, levels))
    fine, coarse = quantile_edges(q), quantile_edges(q[::10], outer=False)
    for x in (ref, cur):
        np.testing.assert_allclose(
            merge_bins(bin_counts(x, fine), fine_edges=fine, coarse_edges=coarse), bin_counts(x, coarse)
        )


def test_weights_and_non_finite_values_in_bins() -> None:
    counts = bin_counts(np.array([0.5, 1.5, np.nan, np.inf, 3.0]), np.array([1.0, 2.0]), np.array([1, 2, 9, 9, 4]))
    np.testing.assert_allclose(counts, [1, 2, 4])


# ---- numeric -------------------------------------------------------------------------------


def test_binned_ks_is_exact_when_every_value_has_its_edge() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.integers(0, 50, 4000).astype(float), rng.integers(2, 52, 3000).astype(float)
    edges = np.unique(np.concatenate([ref, cur]))
    binned = ks_from_counts(bin_counts(ref, edges), bin_counts(cur, edges))
    exact = stats.ks_2samp(ref, cur, method="asymp")
    assert binned.statistic == pytest.approx(exact.statistic, abs=1e-12)
    assert binned.p_value == pytest.approx(exact.pvalue, rel=1e-9)


def test_binned_ks_p_value_for_large_samples_is_kolmogorovs_limit() -> None:
    rng = np.random.default_rng(8)
    ref, cur = rng.integers(0, 500, 60000).astype(float), rng.integers(1, 501, 50000).astype(float)
    edges = np.unique(np.concatenate([ref, cur]))
    binned = ks_from_counts(bin_counts(ref, edges), bin_counts(cur, edges))
    exact = stats.ks_2samp(ref, cur, method="asymp")
    assert binned.statistic == pytest.approx(exact.statistic, abs=1e-12)
    assert binned.p_value == pytest.approx(exact.pvalue, rel=0.02)
    assert binned.p_value >= exact.pvalue


def test_binned_ks_is_close_to_and_never_above_exact() -> None:
    rng = np.random.default_rng(4)
    ref, cur = rng.normal(size=20000), rng.normal(0.1, 1.1, size=20000)
    edges = _edges(ref, 100)
    binned = ks_from_counts(bin_counts(ref, edges), bin_counts(cur, edges))
    exact = stats.ks_2samp(ref, cur)
    assert binned.statistic <= exact.statistic + 1e-12
    assert binned.statistic == pytest.approx(exact.statistic, abs=0.01)
    assert binned.p_value >= exact.pvalue
    sampled = ks_from_samples(ref[:300], cur[:300])
    assert sampled.p_value == pytest.approx(stats.ks_2samp(ref[:300], cur[:300]).pvalue)


def test_binned_wasserstein_is_close_to_scipy() -> None:
    rng = np.random.default_rng(5)
    for ref, cur in [
        (rng.normal(size=50000), rng.normal(0.3, 1.5, size=40000)),
        (rng.lognormal(size=50000), rng.lognormal(0.05, 1.0, size=40000)),
        (rng.exponential(size=50000), rng.exponential(2.0, size=40000)),
    ]:
        edges = fine_edges(list(np.quantile(ref, quantile_levels(100))))
        low, high = min(ref.min(), cur.min()), max(ref.max(), cur.max())
        binned = wasserstein_from_counts(
            bin_counts(ref, edges), bin_counts(cur, edges), edges=edges, low=low, high=high
        )
        assert binned == pytest.approx(stats.wasserstein_distance(ref, cur), rel=0.02)


def test_normalised_wasserstein_measures_a_mean_shift_in_standard_deviations() -> None:
    rng = np.random.default_rng(6)
    ref = rng.normal(10, 4, size=100000)
    result = _numeric(ref, rng.normal(10 + 0.05 * 4, 4, size=100000))
    assert result.method == "ks"
    assert result.effect_size_method == "wasserstein"
    assert result.effect_size == pytest.approx(0.05, abs=0.01)
    assert result.p_value < 1e-6


def test_psi_and_js_match_their_formulas() -> None:
    ref, cur = np.array([10.0, 20.0, 30.0, 0.0]), np.array([15.0, 15.0, 25.0, 5.0])
    r, c = np.maximum(ref / ref.sum(), 1e-4), np.maximum(cur / cur.sum(), 1e-4)
    assert psi(ref, cur) == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    assert js_distance(ref, cur) == pytest.approx(distance.jensenshannon(ref, cur, base=2))
    assert js_distance(ref, ref * 3) == pytest.approx(0.0, abs=1e-7)


def test_chi_square_pools_sparse_cells() -> None:
    ref, cur = np.array([60.0, 50.0, 2.0, 1.0]), np.array([55.0, 45.0, 0.0, 3.0])
    test, _ = chi_square(ref, cur)
    # The pooled cell (3 + 3) is still sparse, so it joins the smallest remaining column.
    expected = stats.chi2_contingency(np.array([[60, 53], [55, 48]]))
    assert test.statistic == pytest.approx(expected.statistic)
    assert test.p_value == pytest.approx(expected.pvalue)


def test_chi_square_matches_scipy_and_drops_empty_bins() -> None:
    ref, cur = np.array([100.0, 50.0, 0.0, 30.0]), np.array([80.0, 70.0, 0.0, 10.0])
    test, v = chi_square(ref, cur)
    expected = stats.chi2_contingency(np.array([[100, 50, 30], [80, 70, 10]]))
    assert test.statistic == pytest.approx(expected.statistic)
    assert test.p_value == pytest.approx(expected.pvalue)
    assert v == pytest.approx(math.sqrt(expected.statistic / 340))


def test_missing_rate_z_test_matches_chi_square_without_correction() -> None:
    result = missing_rate_test(missing_ref=50, n_ref=1000, missing_cur=90, n_cur=1200)
    table = np.array([[50, 950], [90, 1110]])
    expected = stats.chi2_contingency(table, correction=False)
    assert result.statistic**2 == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.rate_ref == 0.05
    assert result.rate_cur == 0.075
    assert missing_rate_test(missing_ref=0, n_ref=100, missing_cur=0, n_cur=100).p_value == 1.0


def test_new_categories_are_counted_not_dropped() -> None:
    ref = {"DE": 500.0, "FR": 300.0, "IT": 200.0, None: 10.0}
    cur = {"DE": 450.0, "FR": 280.0, "IT": 170.0, "ES": 100.0}
    result = categorical_drift("country", ref, cur)
    assert result.extra["new_categories"] == [{"value": "ES", "count": 100.0, "share": 0.1}]
    assert result.extra["new_categories_share"] == pytest.approx(0.1)
    expected = stats.chi2_contingency(np.array([[500, 0, 300, 200], [450, 100, 280, 170]]))
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.effect_size == pytest.approx(distance.jensenshannon([500, 0, 300, 200], [450, 100, 280, 170], base=2))


def test_discrete_numeric_columns_are_tested_as_categories() -> None:
    rng = np.random.default_rng(7)
    ref, cur = (rng.uniform(size=5000) < 0.2).astype(float), (rng.uniform(size=5000) < 0.3).astype(float)
    result = _numeric(ref, cur, method=default_effect_size("numeric", discrete=True))
    assert result.method == "chisquare"
    assert result.effect_size_method == "jensenshannon"
    expected = stats.chi2_contingency(
        np.array([[np.sum(ref == 0), np.sum(ref == 1)], [np.sum(cur == 0), np.sum(cur == 1)]])
    )
    assert result.statistic == pytest.approx(expected.statistic)


def test_method_overrides_are_validated() -> None:
    assert default_effect_size("numeric") == "wasserstein"
    assert default_effect_size("categorical") == "jensenshannon"
    assert effect_size("PSI", "numeric").name == "psi"
    assert effect_size("chi2", "categorical").name == "chisquare"
    with pytest.raises(ValueError, match="does not apply to a categorical column"):
        effect_size("wasserstein", "categorical")


def test_the_test_and_the_effect_size_are_separate_choices() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(0, 1, 3000), rng.normal(0.3, 1, 3000)
    default = _numeric(ref, cur)
    assert default.method == "ks"
    assert default.effect_size_method == "wasserstein"
    counts = _numeric(ref, cur, method="psi")
    chosen = numeric_drift("x", _numeric_column(ref, cur), effect="psi", test="chisquare")
    assert chosen.method == "chisquare"
    assert chosen.effect_size == pytest.approx(counts.effect_size)
    assert chosen.p_value < 1e-6


def test_default_tests_follow_the_column_and_the_effect_size() -> None:
    assert default_test("numeric") == "ks"
    assert default_test("numeric", discrete=True) == "chisquare"
    assert default_test("numeric", effect="chisquare") == "chisquare"  # Cramér's V goes with its own test
    assert default_test("categorical") == "chisquare"
    with pytest.raises(ValueError, match="does not apply to a categorical column: use one of chisquare"):
        drift_test("ks", "categorical")
    with pytest.raises(ValueError, match="unknown drift test 'anderson': use one of ks, chisquare"):
        drift_test("anderson")


def test_a_registered_method_is_one_class_and_a_configuration_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drift_methods, "TESTS", dict(drift_methods.TESTS))

    @drift_methods.register_test
    class CramerVonMises(drift_methods.DriftTest):
        name = "cramervonmises"
        aliases = ("cvm",)

        def numeric(self, column: NumericColumn) -> drift.TestResult:
            assert column.samples is not None
            result = stats.cramervonmises_2samp(*column.samples)
            return drift.TestResult(self.name, float(result.statistic), float(result.pvalue))

    override = FeatureOverride.model_validate({"test": "CVM", "method": "KS"})
    assert (override.test, override.method) == ("cramervonmises", "ks")
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(0, 1, 300), rng.normal(0.2, 1, 300)
    result = numeric_drift("x", _numeric_column(ref, cur, exact=True), effect="ks", test=override.test)
    assert result.method == "cramervonmises"
    assert result.p_value == pytest.approx(stats.cramervonmises_2samp(ref, cur).pvalue)
    with pytest.raises(ValidationError, match="does not apply to a categorical column"):
        FeatureOverride.model_validate({"test": "cvm", "kind": "categorical"})


def test_unknown_methods_are_configuration_errors(tmp_path: Path) -> None:
    text = "models:\n  m:\n    drift:\n      features:\n        amount: {method: nope}\n"
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "p.yml")
    (problem,) = raised.value.problems
    assert problem.key == "models.m.drift.features.amount.method"
    assert problem.line == 5
    assert (
        "unknown drift effect size 'nope': use one of wasserstein, ks, psi, jensenshannon, chisquare" in problem.message
    )


# ---- verdicts ------------------------------------------------------------------------------


def _column(name: str, p: float, effect: float, missing: MissingRate | None = None) -> ColumnDrift:
    return ColumnDrift(
        name=name,
        kind="numeric",
        method="ks",
        statistic=0.1,
        p_value=p,
        effect_size_method="wasserstein",
        effect_size=effect,
        threshold=0.03,
        n_ref=100.0,
        n_cur=100.0,
        missing=missing,
    )


def test_drift_needs_significance_and_effect_size() -> None:
    cols = [
        _column("significant_but_tiny", 1e-12, 0.01),
        _column("large_but_noise", 0.4, 0.5),
        _column("drifted", 1e-9, 0.2),
        _column("missing_changed", 0.9, 0.0, MissingRate(0.0, 0.08, 5.9, 1e-8, 0.57)),
    ]
    verdict = decide(cols, alpha=0.05, correction="bh", drift_share=0.5)
    assert [c.drifted for c in cols] == [False, False, True, True]
    assert cols[3].missing_drifted
    assert not cols[3].distribution_drifted
    assert verdict.n_drifted == 2
    assert verdict.share_drifted == 0.5
    assert verdict.dataset_drift
    assert cols[0].p_value_adjusted >= cols[0].p_value


def test_bonferroni_is_stricter_than_bh() -> None:
    cols = [_column(f"c{i}", p, 0.5) for i, p in enumerate([0.015, 0.02, 0.03, 0.04])]
    assert decide(cols, correction="bh").n_drifted == 4
    assert decide(cols, correction="bonferroni").n_drifted == 0


# ---- no drift: false alarms stay near alpha ------------------------------------------------


def test_false_alarm_rate_without_drift_stays_near_alpha() -> None:
    alpha, seeds = 0.05, 200
    rejections = {"exact": 0, "binned": 0, "categorical": 0, "drifted": 0}
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        ref, cur = rng.lognormal(size=120), rng.lognormal(size=150)
        rejections["exact"] += _numeric(ref, cur, exact=True).p_value < alpha
        binned = _numeric(ref, cur)
        rejections["binned"] += binned.p_value < alpha
        levels = np.array(list("abcdefgh"))
        probs = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03])
        r, c = rng.choice(levels, 120, p=probs), rng.choice(levels, 150, p=probs)
        cat = categorical_drift("c", Counter(r.tolist()), Counter(c.tolist()))
        rejections["categorical"] += cat.p_value < alpha
        rejections["drifted"] += decide([binned, cat], alpha=alpha).n_drifted > 0
    rates = {k: v / seeds for k, v in rejections.items()}
    # With 200 seeds the standard error at 0.05 is about 0.015.
    assert 0.01 <= rates["exact"] <= 0.09, rates
    assert rates["binned"] <= 0.09, rates  # conservative by construction
    assert 0.01 <= rates["categorical"] <= 0.10, rates
    assert rates["drifted"] <= 0.09, rates


# ---- effect sizes beyond sampling noise ------------------------------------------------------------


def test_a_borderline_column_within_sampling_noise_is_not_drifted() -> None:
    """The issue's column: Wasserstein 0.045 and adjusted p 0.043 on a day, where sampling alone gives 0.03."""
    borderline = replace(_column("amount", 0.043, 0.045), effect_size_noise=0.030)
    decide([borderline], alpha=0.05)
    assert borderline.p_value_adjusted < 0.05
    assert borderline.effect_size > borderline.threshold
    assert not borderline.drifted  # 0.015 beyond noise is below the threshold 0.03
    shifted = replace(_column("amount", 0.043, 0.075), effect_size_noise=0.030)
    decide([shifted], alpha=0.05)
    assert shifted.drifted


def test_effect_size_noise_is_the_mean_effect_between_samples_of_one_distribution() -> None:
    rng = np.random.default_rng(7)
    effects, noises = [], []
    for _ in range(20):
        ref, cur = rng.normal(size=3500), rng.normal(size=500)
        column = _numeric(ref, cur, exact=True)
        effects.append(column.effect_size)
        noises.append(column.effect_size_noise)
    assert np.mean(noises) == pytest.approx(np.mean(effects), rel=0.2)
    ref, cur = rng.normal(size=56_000), rng.normal(size=8_000)
    bigger = _numeric(ref, cur)
    assert bigger.effect_size_noise == pytest.approx(np.mean(noises) / 4, rel=0.3)  # about 1 / sqrt(n)
    assert _numeric(ref, cur).to_dict()["effect_size_noise"] == bigger.effect_size_noise  # the same every time


def test_false_columns_per_run_without_drift_stay_below_alpha() -> None:
    """Runs of six unchanged columns, a day of 2,000 rows against a week of 14,000 as the drift job compares
    them: the job's rule calls at most alpha columns drifted per run, fewer than significance and the bare
    threshold did (at this size a threshold of 0.03 sd is what sampling alone gives)."""
    alpha, runs, n_ref, n_cur = 0.05, 100, 14_000, 2_000
    levels = np.array(list("abcdef"))
    probs = np.array([0.35, 0.25, 0.15, 0.1, 0.1, 0.05])
    false_columns = {"job": 0, "significance and threshold": 0}
    for seed in range(runs):
        rng = np.random.default_rng(5000 + seed)
        columns = [
            _numeric(rng.normal(size=n_ref), rng.normal(size=n_cur)),
            _numeric(rng.lognormal(3.4, 0.7, size=n_ref), rng.lognormal(3.4, 0.7, size=n_cur)),
            _numeric(rng.exponential(400.0, size=n_ref), rng.exponential(400.0, size=n_cur)),
            _numeric(rng.poisson(2.0, size=n_ref) + 1.0, rng.poisson(2.0, size=n_cur) + 1.0),
            categorical_drift(
                "c", Counter(rng.choice(levels, n_ref, p=probs)), Counter(rng.choice(levels, n_cur, p=probs))
            ),
            categorical_drift("d", Counter(rng.choice(levels[:3], n_ref)), Counter(rng.choice(levels[:3], n_cur))),
        ]
        decide(columns, alpha=alpha)
        false_columns["job"] += sum(c.drifted for c in columns)
        false_columns["significance and threshold"] += sum(
            c.p_value_adjusted < alpha and c.effect_size > c.threshold for c in columns
        )
    assert false_columns["job"] / runs <= alpha, false_columns
    assert false_columns["job"] < false_columns["significance and threshold"], false_columns
