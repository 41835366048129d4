"""Drift statistics: the tests and distances comparing a reference distribution with a current one.

The named methods a configuration chooses between are classes in :mod:`analyzers.stats.drift_methods`
(one per test and per effect size); this module holds the computations they share, the per-column
result and the verdict.

Everything works on binned counts (full vectors ``[underflow, counts..., overflow]``, see
:mod:`analyzers.stats.binning`) or category counts, so a window of millions costs only its bins;
small windows may pass their raw values for the exact tests.  Counts weighted by ``1 / sample_rate``
give the effect sizes (shares of the traffic); the tests, the missing-rate test and the effect sizes'
noise take each side's effective number of observations (see :mod:`analyzers.stats.sampling`).

Numeric columns
    *Kolmogorov–Smirnov* from binned CDFs: ``D`` is the largest gap between the two CDFs at the bin
    edges.  The true ``D`` is a supremum over all points, so the binned ``D`` is never larger: its
    p-value (Smirnov's distribution with ``n_eff = n·m/(n+m)``, as ``scipy.stats.ks_2samp``'s
    asymptotic mode; Kolmogorov's limit above ``KS_EXACT_MAX_N``) is conservative, and with 100
    reference-percentile bins it misses at most one percent of reference mass per bin.  With raw
    values the exact ``ks_2samp`` is used.
    *Wasserstein-1*, ``∫|F_ref - F_cur| dx``, with each CDF linear inside a bin (exact at the edges),
    divided by the reference's standard deviation: a mean shift of ``d`` standard deviations scores
    ``d``.  A constant reference falls back to the current standard deviation, then to ``|mean|``.
    *PSI* ``Σ (c - r) ln(c / r)`` over reference-decile bins, shares below ``EPSILON`` raised to it.
Categorical columns
    *Chi-square* on the 2×k contingency table (``scipy.stats.chi2_contingency``), *Jensen–Shannon
    distance* (base 2, in [0, 1]) and *PSI* on the category shares.  Categories unseen in the
    reference stay in the table and are reported as ``new_categories`` with their share.
Missing values
    The missing rate is compared with a two-proportion z-test; its effect size is Cohen's ``h``.

Verdict: with many rows every tiny shift is "significant", with few rows a large effect may be
noise, so a column drifts only when its adjusted p-value is below ``alpha`` *and* its effect size
exceeds its threshold by more than sampling alone would give.  Every effect size is positive on two
samples of one distribution, and by about ``1/sqrt(n)``: Wasserstein averages 0.03 sd between a day
of 2,000 rows and a week of 14,000 drawn alike, exactly the default threshold.  A threshold met by
noise is no second gate, so each column also reports ``effect_size_noise``, the mean effect size of
its method between samples of the same sizes drawn from both sides pooled (computed by
:mod:`analyzers.stats.drift_methods`), and the effect beyond it (``effect_size - effect_size_noise``)
is what must exceed the threshold.  With a million rows the noise is a thousandth of a standard
deviation and a shift of 0.05 sd still counts; on a day of 2,000 rows a column needs about 0.06 sd.
Default thresholds (each effect size's ``threshold``) flag shifts of about 0.03 standard deviations
beyond the noise, well below Evidently's 0.1 (which misses a mean shift of 0.05 sd).  PSI keeps its
customary 0.1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import special, stats
from scipy.spatial import distance

from analyzers.stats.binning import bin_boundaries
from analyzers.stats.multitest import Correction, adjust

Kind = Literal["numeric", "categorical"]

EPSILON = 1e-4  # floor on a bin's share in PSI, so empty bins give a finite value
MAX_DISCRETE_LEVELS = 10  # a numeric column with at most this many distinct reference quantiles is discrete
MIN_EXPECTED = 5.0  # chi-square cells expected below this are pooled (Cochran's rule)
KS_EXACT_MAX_N = 10_000  # above this effective size the binned KS p-value uses the asymptotic distribution
MAX_NEW_CATEGORIES = 20  # new categories listed by name (their total share is always reported)
MISSING_THRESHOLD = 0.05  # Cohen's h of the missing rates; 0% -> 0.1% missing is h = 0.063


@dataclass(frozen=True)
class TestResult:
    """A hypothesis test's name, statistic and p-value."""

    method: str
    statistic: float
    p_value: float


@dataclass(frozen=True)
class MissingRate:
    """Missing rates of both sides, the two-proportion z-test and Cohen's h (current minus reference)."""

    rate_ref: float
    rate_cur: float
    statistic: float
    p_value: float
    effect_size: float


@dataclass(kw_only=True)
class ColumnDrift:
    """One column's comparison; ``p_value_adjusted`` and the verdicts are filled by :func:`decide`.

    ``extra`` holds the numbers behind the result that are reported as they are (test mode, raw
    Wasserstein and its scale, means, new categories, ...).
    """

    name: str
    kind: Kind
    method: str
    statistic: float
    p_value: float
    effect_size_method: str
    effect_size: float
    threshold: float
    n_ref: float
    n_cur: float
    effect_size_noise: float = 0.0  # the effect size sampling alone gives at these sizes (see the module docstring)
    n_ref_effective: float = math.nan  # observations behind n_ref / n_cur (they differ under sampled logging)
    n_cur_effective: float = math.nan
    missing: MissingRate | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    p_value_adjusted: float = math.nan
    missing_p_value_adjusted: float = math.nan
    distribution_drifted: bool = False
    missing_drifted: bool = False

    @property
    def drifted(self) -> bool:
        return self.distribution_drifted or self.missing_drifted

    @property
    def effect_beyond_noise(self) -> float:
        """The effect size less what sampling alone gives: what the threshold is compared with."""
        return self.effect_size - self.effect_size_noise

    @property
    def discrete(self) -> bool:
        """A numeric column with few distinct values, tested as categories."""
        return bool(self.extra.get("discrete"))

    @property
    def new_categories(self) -> list[dict[str, Any]]:
        """Categories seen only in the current window (``value``, ``count``, ``share``), largest first."""
        return list(self.extra.get("new_categories") or [])

    def to_dict(self) -> dict[str, Any]:
        """The feature entry of a drift finding: test, effect size, verdicts, counts and the missing-rate test."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "p_value_adjusted": self.p_value_adjusted,
            "effect_size": self.effect_size,
            "drifted": self.drifted,
            "effect_size_method": self.effect_size_method,
            "effect_size_noise": self.effect_size_noise,
            "threshold": self.threshold,
            "distribution_drifted": self.distribution_drifted,
            "n_ref": self.n_ref,
            "n_cur": self.n_cur,
            "n_ref_effective": self.n_ref_effective,
            "n_cur_effective": self.n_cur_effective,
        }
        if self.missing is not None:
            out.update(
                missing_rate_ref=self.missing.rate_ref,
                missing_rate_cur=self.missing.rate_cur,
                missing_p_value=self.missing.p_value,
                missing_p_value_adjusted=self.missing_p_value_adjusted,
                missing_effect_size=self.missing.effect_size,
                missing_drifted=self.missing_drifted,
            )
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnDrift:
        """The column back from :meth:`to_dict`'s output (a null number reads as NaN)."""
        missing = None
        if "missing_rate_ref" in data:
            missing = MissingRate(
                rate_ref=_number(data["missing_rate_ref"]),
                rate_cur=_number(data.get("missing_rate_cur")),
                statistic=math.nan,
                p_value=_number(data.get("missing_p_value")),
                effect_size=_number(data.get("missing_effect_size")),
            )
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            method=str(data["method"]),
            statistic=_number(data.get("statistic")),
            p_value=_number(data.get("p_value")),
            effect_size_method=str(data.get("effect_size_method")),
            effect_size=_number(data.get("effect_size")),
            effect_size_noise=_number(data.get("effect_size_noise", 0.0)),
            threshold=_number(data.get("threshold")),
            n_ref=_number(data.get("n_ref")),
            n_cur=_number(data.get("n_cur")),
            n_ref_effective=_number(data.get("n_ref_effective", data.get("n_ref"))),
            n_cur_effective=_number(data.get("n_cur_effective", data.get("n_cur"))),
            missing=missing,
            extra={k: v for k, v in data.items() if k not in _COLUMN_KEYS},
            p_value_adjusted=_number(data.get("p_value_adjusted")),
            missing_p_value_adjusted=_number(data.get("missing_p_value_adjusted")),
            distribution_drifted=bool(data.get("distribution_drifted")),
            missing_drifted=bool(data.get("missing_drifted")),
        )


_COLUMN_KEYS = frozenset(
    (
        "name",
        "kind",
        "method",
        "statistic",
        "p_value",
        "p_value_adjusted",
        "effect_size",
        "drifted",
        "effect_size_method",
        "effect_size_noise",
        "threshold",
        "distribution_drifted",
        "n_ref",
        "n_cur",
        "n_ref_effective",
        "n_cur_effective",
        "missing_rate_ref",
        "missing_rate_cur",
        "missing_p_value",
        "missing_p_value_adjusted",
        "missing_effect_size",
        "missing_drifted",
    )
)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class DatasetDrift:
    """The dataset-level verdict: share of drifted columns against ``drift_share``."""

    n_columns: int
    n_drifted: int
    share_drifted: float
    dataset_drift: bool


# ---- numeric tests and distances -----------------------------------------------------------


def _shares(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype=float)
    total = c.sum()
    return c / total if total > 0 else np.full(c.shape, np.nan)


def ks_from_counts(ref: np.ndarray, cur: np.ndarray) -> TestResult:
    """Two-sample KS from counts over the same bins (conservative; see the module docstring)."""
    n, m = float(np.sum(ref)), float(np.sum(cur))
    if n <= 0 or m <= 0:
        return TestResult("ks", math.nan, math.nan)
    d = float(np.max(np.abs(np.cumsum(ref) / n - np.cumsum(cur) / m)))
    big, small = max(n, m), min(n, m)
    n_eff = max(round(big * small / (big + small)), 1)
    if n_eff > KS_EXACT_MAX_N:  # Kolmogorov's limit: within 1% of Smirnov's and slightly larger, far faster
        p_value = float(special.kolmogorov(math.sqrt(n_eff) * d))
    else:
        p_value = float(stats.kstwo.sf(d, n_eff))
    return TestResult("ks", d, float(np.clip(p_value, 0.0, 1.0)))


def ks_from_samples(ref: np.ndarray, cur: np.ndarray) -> TestResult:
    """Exact two-sample KS on raw values (``scipy.stats.ks_2samp``, exact p-value when small)."""
    a, b = _finite(ref), _finite(cur)
    if a.size == 0 or b.size == 0:
        return TestResult("ks", math.nan, math.nan)
    result = stats.ks_2samp(a, b)
    return TestResult("ks", float(result.statistic), float(result.pvalue))


def wasserstein_from_counts(ref: np.ndarray, cur: np.ndarray, *, edges: np.ndarray, low: float, high: float) -> float:
    """Wasserstein-1 distance of two binned distributions, linear CDFs inside each bin.

    ``low``/``high`` bound the values of both sides (they close the underflow and overflow bins).
    """
    n, m = float(np.sum(ref)), float(np.sum(cur))
    if n <= 0 or m <= 0:
        return math.nan
    x = bin_boundaries(edges, low=low, high=high)
    gap = np.concatenate([[0.0], np.cumsum(ref) / n - np.cumsum(cur) / m])  # CDF gap at each boundary
    width = np.diff(x)
    d0, d1 = gap[:-1], gap[1:]
    same_sign = d0 * d1 >= 0
    total = np.abs(d0) + np.abs(d1)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = np.where(total > 0, (d0**2 + d1**2) / (2 * total), 0.0)
    area = np.where(same_sign, total / 2, crossing) * width
    return float(np.sum(area))


def wasserstein_from_samples(ref: np.ndarray, cur: np.ndarray) -> float:
    """Exact Wasserstein-1 distance of raw values (``scipy.stats.wasserstein_distance``)."""
    a, b = _finite(ref), _finite(cur)
    if a.size == 0 or b.size == 0:
        return math.nan
    return float(stats.wasserstein_distance(a, b))


def spread(*, ref_std: float | None, cur_std: float | None, ref_mean: float | None) -> float:
    """What a Wasserstein distance is divided by: the reference's std, else the current's, else |mean|, else 1."""
    for value in (ref_std, cur_std, abs(ref_mean) if ref_mean is not None else None):
        if value is not None and math.isfinite(value) and value > 0:
            return float(value)
    return 1.0


# ---- distances on shares -------------------------------------------------------------------


def psi(ref: np.ndarray, cur: np.ndarray, *, epsilon: float = EPSILON) -> float:
    """Population stability index ``Σ (c - r) ln(c / r)``, shares below ``epsilon`` raised to it."""
    r, c = _shares(ref), _shares(cur)
    if np.isnan(r).any() or np.isnan(c).any():
        return math.nan
    r, c = np.maximum(r, epsilon), np.maximum(c, epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(ref: np.ndarray, cur: np.ndarray) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]) of two count vectors over the same bins."""
    r, c = np.asarray(ref, dtype=float), np.asarray(cur, dtype=float)
    if r.sum() <= 0 or c.sum() <= 0:
        return math.nan
    return float(distance.jensenshannon(r, c, base=2))


def chi_square(ref: np.ndarray, cur: np.ndarray) -> tuple[TestResult, float]:
    """Chi-square test of homogeneity on the 2×k table and its Cramér's V (``sqrt(chi2 / N)``).

    Bins empty on both sides are dropped.  Cells expected to hold fewer than ``MIN_EXPECTED`` rows
    (Cochran's rule) are pooled into one, since sparse cells make the chi-square p-value too small
    (false alarms in small windows); Yates' correction applies when one degree of freedom is left.
    """
    table = np.vstack([np.asarray(ref, dtype=float), np.asarray(cur, dtype=float)])
    table = table[:, table.sum(axis=0) > 0]
    if table[0].sum() <= 0 or table[1].sum() <= 0:
        return TestResult("chisquare", math.nan, math.nan), math.nan
    table = _pool_sparse(table)
    if table.shape[1] < 2:
        return TestResult("chisquare", 0.0, 1.0), 0.0
    result = stats.chi2_contingency(table)
    chi2 = float(result.statistic)
    return TestResult("chisquare", chi2, float(result.pvalue)), math.sqrt(chi2 / table.sum())


def _pool_sparse(table: np.ndarray) -> np.ndarray:
    """Merge the columns of a 2×k table whose smallest expected cell is below ``MIN_EXPECTED``."""
    expected_min = table.sum(axis=0) * table.sum(axis=1).min() / table.sum()
    sparse = expected_min < MIN_EXPECTED
    if sparse.sum() < 1 or (sparse.sum() == 1 and table.shape[1] == 1):
        return table
    kept = table[:, ~sparse]
    pooled = table[:, sparse].sum(axis=1, keepdims=True)
    pooled_expected = pooled.sum() * table.sum(axis=1).min() / table.sum()
    if pooled_expected < MIN_EXPECTED and kept.shape[1] > 0:
        smallest = int(np.argmin(kept.sum(axis=0)))
        kept = kept.copy()
        kept[:, smallest : smallest + 1] += pooled
        return kept
    return np.hstack([kept, pooled])


# ---- missing values ------------------------------------------------------------------------


def missing_rate_test(
    *,
    missing_ref: float,
    n_ref: float,
    missing_cur: float,
    n_cur: float,
    n_ref_effective: float | None = None,
    n_cur_effective: float | None = None,
) -> MissingRate:
    """Two-proportion z-test (pooled) of the missing rates, with Cohen's h as the effect size.

    ``n_*`` count all rows, missing ones included, and may be weighted (sampled logging): the rates come
    from them, the test's variance from the observations behind them, ``n_*_effective`` (``n_*`` when ``None``).
    """
    if n_ref <= 0 or n_cur <= 0:
        return MissingRate(math.nan, math.nan, math.nan, math.nan, math.nan)
    p1, p2 = missing_ref / n_ref, missing_cur / n_cur
    e1 = n_ref if n_ref_effective is None else n_ref_effective
    e2 = n_cur if n_cur_effective is None else n_cur_effective
    if e1 <= 0 or e2 <= 0:
        return MissingRate(p1, p2, math.nan, math.nan, math.nan)
    pooled = (p1 * e1 + p2 * e2) / (e1 + e2)
    h = 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))
    variance = pooled * (1 - pooled) * (1 / e1 + 1 / e2)
    if variance <= 0:
        return MissingRate(p1, p2, 0.0, 1.0, h)
    z = (p2 - p1) / math.sqrt(variance)
    return MissingRate(p1, p2, z, float(2 * stats.norm.sf(abs(z))), h)


# ---- columns -------------------------------------------------------------------------------


def is_discrete(quantiles: Sequence[float | None]) -> bool:
    """Whether a numeric column is better tested as categories: few distinct reference quantiles."""
    values = {q for q in quantiles if q is not None and math.isfinite(q)}
    return 0 < len(values) <= MAX_DISCRETE_LEVELS


def decide(
    columns: Sequence[ColumnDrift],
    *,
    alpha: float = 0.05,
    correction: Correction = "bh",
    drift_share: float = 0.5,
    missing_threshold: float = MISSING_THRESHOLD,
) -> DatasetDrift:
    """Adjust every p-value of the family (distribution and missing-rate tests together), set each
    column's verdicts, and give the dataset verdict (share of drifted columns >= ``drift_share``).

    A column's distribution drifted when its adjusted p-value is below ``alpha`` and its effect size
    beyond sampling noise (``effect_size - effect_size_noise``) exceeds its threshold; its missing rate
    when that test's adjusted p-value is below ``alpha`` and ``|Cohen's h|`` exceeds ``missing_threshold``.
    """
    p_values: list[float] = []
    for column in columns:
        p_values.append(column.p_value)
        p_values.append(column.missing.p_value if column.missing is not None else math.nan)
    adjusted = adjust(np.asarray(p_values, dtype=float), method=correction) if p_values else np.empty(0)
    for i, column in enumerate(columns):
        column.p_value_adjusted = float(adjusted[2 * i])
        column.missing_p_value_adjusted = float(adjusted[2 * i + 1])
        column.distribution_drifted = bool(
            column.p_value_adjusted < alpha
            and math.isfinite(column.effect_beyond_noise)
            and column.effect_beyond_noise > column.threshold
        )
        missing = column.missing
        column.missing_drifted = bool(
            missing is not None
            and column.missing_p_value_adjusted < alpha
            and abs(missing.effect_size) > missing_threshold
        )
    n_drifted = sum(c.drifted for c in columns)
    share = n_drifted / len(columns) if columns else 0.0
    return DatasetDrift(len(columns), n_drifted, share, bool(columns) and share >= drift_share)


def _finite(values: np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]
