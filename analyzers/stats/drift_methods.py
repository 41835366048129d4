"""Drift methods by name: each test and each effect size is one registered class.

A column's verdict needs two things (see :func:`analyzers.stats.drift.decide`): a *test* whose adjusted
p-value says the change is not noise, and an *effect size* above its threshold that says it matters.
They are separate choices (``features.<name>.test`` and ``features.<name>.method`` in the drift
configuration), looked up here by name; the configuration validates both against this registry.

A method implements ``numeric`` and/or ``categorical``; the kinds it implements are the kinds it
applies to.  Adding one is one class::

    @register_test
    class AndersonDarling(DriftTest):
        name = "anderson"

        def numeric(self, column: NumericColumn) -> TestResult:
            ...

Defaults: a continuous numeric column is tested with KS, a discrete one (few distinct reference
quantiles) and a categorical one with chi-square; an effect size may name the test it goes with
(``pairs_with``: Cramér's V goes with chi-square).  The default effect size is normalised Wasserstein for
continuous columns and Jensen–Shannon distance for categorical and discrete ones.

Every comparison also measures its effect size's sampling noise (:func:`noise`): the mean effect size
between ``NOISE_DRAWS`` pairs of samples of the two sides' sizes drawn from both sides pooled (multinomial
over the fine bins or the categories, a fixed seed so that a window judged twice is judged alike).  It
needs nothing from a method but its own ``numeric``/``categorical``, so a new effect size gets it too;
the verdict compares the effect beyond it with the threshold (see :func:`analyzers.stats.drift.decide`).
"""

from __future__ import annotations

import math
from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from analyzers.stats.binning import merge_bins
from analyzers.stats.drift import (
    MAX_NEW_CATEGORIES,
    ColumnDrift,
    Kind,
    TestResult,
    chi_square,
    js_distance,
    ks_from_counts,
    ks_from_samples,
    psi,
    wasserstein_from_counts,
    wasserstein_from_samples,
)
from analyzers.stats.sampling import effective_counts

NOISE_DRAWS = 32  # resampled pairs behind an effect size's noise (its standard error is about 1/6 of its spread)
NOISE_SEED = 20261122  # fixed: the same counts always give the same noise, so a verdict is reproducible


@dataclass(frozen=True, kw_only=True)
class NumericColumn:
    """A numeric column's counts on both sides over bins fixed from the reference (see ``stats.binning``).

    ``*_fine`` count the fine (percentile) bins over ``fine_edges``; ``coarse_edges`` (a subset of them,
    the reference deciles) bound the coarse bins; ``low`` and ``high`` bound both sides' values; ``scale``
    divides Wasserstein (see ``stats.drift.spread``); ``samples`` are both sides' raw values when small
    enough for exact tests.  Counts may be weighted (sampled logging); ``*_effective`` is then the number
    of observations behind each side's counts (see :mod:`analyzers.stats.sampling`), which the tests and the
    noise count on while the effect sizes use the weighted shares (``None``: the counts are observations).
    """

    ref_fine: np.ndarray
    cur_fine: np.ndarray
    fine_edges: np.ndarray
    coarse_edges: np.ndarray
    low: float
    high: float
    scale: float
    discrete: bool = False
    samples: tuple[np.ndarray, np.ndarray] | None = None
    ref_effective: float | None = None
    cur_effective: float | None = None

    @property
    def ref_coarse(self) -> np.ndarray:
        return merge_bins(self.ref_fine, fine_edges=self.fine_edges, coarse_edges=self.coarse_edges)

    @property
    def cur_coarse(self) -> np.ndarray:
        return merge_bins(self.cur_fine, fine_edges=self.fine_edges, coarse_edges=self.coarse_edges)

    def with_counts(self, ref_fine: np.ndarray, cur_fine: np.ndarray) -> NumericColumn:
        """The same column with other (observed) fine counts over the same bins (and no raw values)."""
        return replace(self, ref_fine=ref_fine, cur_fine=cur_fine, samples=None, ref_effective=None, cur_effective=None)

    def observed(self) -> NumericColumn:
        """The column with each side's counts rescaled to its observations: what a test may count on."""
        if self.ref_effective is None and self.cur_effective is None:
            return self
        return replace(
            self,
            ref_fine=effective_counts(self.ref_fine, self.ref_effective),
            cur_fine=effective_counts(self.cur_fine, self.cur_effective),
            ref_effective=None,
            cur_effective=None,
        )

    def table(self) -> tuple[np.ndarray, np.ndarray]:
        """The counts compared as categories: a discrete column's fine bins (they hold its values), else the deciles."""
        return (self.ref_fine, self.cur_fine) if self.discrete else (self.ref_coarse, self.cur_coarse)


@dataclass(frozen=True)
class CategoricalColumn:
    """Category counts of both sides, aligned over the union of their categories; ``*_effective`` as in
    :class:`NumericColumn`."""

    ref: np.ndarray
    cur: np.ndarray
    ref_effective: float | None = None
    cur_effective: float | None = None

    def observed(self) -> CategoricalColumn:
        """The counts rescaled to each side's observations: what a test may count on."""
        if self.ref_effective is None and self.cur_effective is None:
            return self
        return CategoricalColumn(
            effective_counts(self.ref, self.ref_effective), effective_counts(self.cur, self.cur_effective)
        )


@dataclass(frozen=True)
class Effect:
    """An effect size and the numbers behind it that are worth reporting (they join the feature's entry)."""

    value: float
    details: dict[str, float] = field(default_factory=dict)


_R = TypeVar("_R")


class _Method(ABC, Generic[_R]):
    """What tests and effect sizes share: a name, its aliases, and the kinds of column it applies to."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def applies_to(cls, kind: Kind) -> bool:
        """Whether the method implements ``kind`` (``numeric`` or ``categorical``)."""
        return getattr(cls, kind) is not getattr(_Method, kind)

    def numeric(self, column: NumericColumn) -> _R:
        raise NotImplementedError(f"{self.name} does not apply to numeric columns")

    def categorical(self, column: CategoricalColumn) -> _R:
        raise NotImplementedError(f"{self.name} does not apply to categorical columns")


class DriftTest(_Method[TestResult]):
    """A two-sample test of "same distribution"; its p-value, adjusted over the run, gates the verdict."""


class EffectSize(_Method[Effect]):
    """How large a change is (0 for none); a column drifts only when it exceeds ``threshold``."""

    threshold: ClassVar[float]
    pairs_with: ClassVar[str | None] = None  # the test used with this effect size unless one is configured


TESTS: dict[str, type[DriftTest]] = {}
EFFECT_SIZES: dict[str, type[EffectSize]] = {}
_T = TypeVar("_T", bound=type[DriftTest])
_E = TypeVar("_E", bound=type[EffectSize])


def register_test(cls: _T) -> _T:
    """Class decorator: make a test available by its name and aliases."""
    _register(TESTS, cls)
    return cls


def register_effect_size(cls: _E) -> _E:
    """Class decorator: make an effect size available by its name and aliases."""
    _register(EFFECT_SIZES, cls)
    return cls


def _register(table: dict[str, Any], cls: type[_Method[Any]]) -> None:
    for key in (cls.name, *cls.aliases):
        if _key(key) in table:
            raise ValueError(f"drift method name {key!r} is registered twice")
        table[_key(key)] = cls


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def _lookup(table: Mapping[str, type[_Method[Any]]], what: str, name: str, kind: Kind | None) -> type[Any]:
    cls = table.get(_key(name))
    if cls is None:
        raise ValueError(f"unknown drift {what} {name!r}: use one of {', '.join(names(table))}")
    if kind is not None and not cls.applies_to(kind):
        raise ValueError(
            f"drift {what} {name!r} does not apply to a {kind} column: use one of {', '.join(names(table, kind))}"
        )
    return cls


def names(table: Mapping[str, type[_Method[Any]]], kind: Kind | None = None) -> list[str]:
    """The registered methods' names (not their aliases), those applying to ``kind`` when given."""
    unique = dict.fromkeys(cls.name for cls in table.values() if kind is None or cls.applies_to(kind))
    return list(unique)


def drift_test(name: str, kind: Kind | None = None) -> type[DriftTest]:
    """The test registered as ``name`` (case, ``-`` and ``_`` ignored); ``ValueError`` names the choices."""
    cls: type[DriftTest] = _lookup(TESTS, "test", name, kind)
    return cls


def effect_size(name: str, kind: Kind | None = None) -> type[EffectSize]:
    """The effect size registered as ``name`` (case, ``-`` and ``_`` ignored); ``ValueError`` names the choices."""
    cls: type[EffectSize] = _lookup(EFFECT_SIZES, "effect size", name, kind)
    return cls


def default_effect_size(kind: Kind, *, discrete: bool = False) -> str:
    """Normalised Wasserstein for continuous columns; Jensen–Shannon distance for categorical and discrete ones
    (Evidently's large-sample choices, with a p-value gate in front)."""
    return "jensenshannon" if kind == "categorical" or discrete else "wasserstein"


def default_test(kind: Kind, *, discrete: bool = False, effect: str | None = None) -> str:
    """Chi-square for categorical and discrete columns, else the effect size's own test, else KS."""
    if kind == "categorical" or discrete:
        return "chisquare"
    paired = effect_size(effect).pairs_with if effect is not None else None
    return paired or "ks"


# ---- tests ------------------------------------------------------------------------------------------------


@register_test
class KolmogorovSmirnov(DriftTest):
    """Two-sample KS: exact on raw values when given, else from the fine bins (conservative)."""

    name = "ks"
    aliases = ("kolmogorovsmirnov",)

    def numeric(self, column: NumericColumn) -> TestResult:
        if column.samples is not None:
            return ks_from_samples(*column.samples)
        observed = column.observed()
        return ks_from_counts(observed.ref_fine, observed.cur_fine)


@register_test
class ChiSquare(DriftTest):
    """Chi-square test of homogeneity on the 2×k table (sparse cells pooled; see ``stats.drift.chi_square``)."""

    name = "chisquare"
    aliases = ("chi2",)

    def numeric(self, column: NumericColumn) -> TestResult:
        return chi_square(*column.observed().table())[0]

    def categorical(self, column: CategoricalColumn) -> TestResult:
        observed = column.observed()
        return chi_square(observed.ref, observed.cur)[0]


# ---- effect sizes -----------------------------------------------------------------------------------------


@register_effect_size
class Wasserstein(EffectSize):
    """Wasserstein-1 distance in reference standard deviations: a mean shift of ``d`` sd scores ``d``."""

    name = "wasserstein"
    threshold = 0.03

    def numeric(self, column: NumericColumn) -> Effect:
        if column.samples is not None:
            raw = wasserstein_from_samples(*column.samples)
        else:
            raw = wasserstein_from_counts(
                column.ref_fine, column.cur_fine, edges=column.fine_edges, low=column.low, high=column.high
            )
        return Effect(raw / column.scale, {"wasserstein": raw, "scale": column.scale})


@register_effect_size
class KolmogorovSmirnovDistance(EffectSize):
    """The largest gap between the two CDFs; a normal mean shift of ``d`` sd gives about ``0.4 d``."""

    name = "ks"
    aliases = ("kolmogorovsmirnov",)
    threshold = 0.015

    def numeric(self, column: NumericColumn) -> Effect:
        if column.samples is not None and not column.discrete:
            return Effect(ks_from_samples(*column.samples).statistic)
        return Effect(ks_from_counts(column.ref_fine, column.cur_fine).statistic)


@register_effect_size
class PopulationStabilityIndex(EffectSize):
    """PSI over the reference deciles (numeric) or the categories; 0.1 is the customary "moderate shift"."""

    name = "psi"
    threshold = 0.1

    def numeric(self, column: NumericColumn) -> Effect:
        return Effect(psi(column.ref_coarse, column.cur_coarse))

    def categorical(self, column: CategoricalColumn) -> Effect:
        return Effect(psi(column.ref, column.cur))


@register_effect_size
class JensenShannon(EffectSize):
    """Jensen–Shannon distance (base 2, in [0, 1]); a normal mean shift of ``d`` sd gives about ``d / 2.4``."""

    name = "jensenshannon"
    aliases = ("js",)
    threshold = 0.02

    def numeric(self, column: NumericColumn) -> Effect:
        return Effect(js_distance(*column.table()))

    def categorical(self, column: CategoricalColumn) -> Effect:
        return Effect(js_distance(column.ref, column.cur))


@register_effect_size
class CramersV(EffectSize):
    """Cramér's V of the chi-square table, ``sqrt(chi2 / N)``; it goes with the chi-square test."""

    name = "chisquare"
    aliases = ("chi2",)
    threshold = 0.02
    pairs_with = "chisquare"

    def numeric(self, column: NumericColumn) -> Effect:
        return Effect(chi_square(*column.observed().table())[1])

    def categorical(self, column: CategoricalColumn) -> Effect:
        observed = column.observed()
        return Effect(chi_square(observed.ref, observed.cur)[1])


# ---- sampling noise ---------------------------------------------------------------------------------------


def noise(measure: EffectSize, column: NumericColumn | CategoricalColumn, *, draws: int = NOISE_DRAWS) -> float:
    """The mean effect size between samples of the two sides' sizes drawn alike from both sides pooled.

    Numeric columns are drawn over their fine bins, categorical ones over their categories (both
    multinomial, sizes the sides' observations rounded: weighted counts count as their effective size,
    since sampled logging gives the noise of the rows observed, not of the traffic they stand for).  NaN
    when a side is empty.
    """
    if isinstance(column, NumericColumn):
        observed = column.observed()
        ref, cur = np.asarray(observed.ref_fine, dtype=float), np.asarray(observed.cur_fine, dtype=float)
    else:
        seen = column.observed()
        ref, cur = np.asarray(seen.ref, dtype=float), np.asarray(seen.cur, dtype=float)
    n_ref, n_cur, pooled = round(float(ref.sum())), round(float(cur.sum())), ref + cur
    if n_ref < 1 or n_cur < 1:
        return math.nan
    rng = np.random.default_rng(NOISE_SEED)
    shares = pooled / pooled.sum()
    refs = rng.multinomial(n_ref, shares, size=draws).astype(float)
    curs = rng.multinomial(n_cur, shares, size=draws).astype(float)
    values = []
    for r, c in zip(refs, curs, strict=True):
        if isinstance(column, NumericColumn):
            effect = measure.numeric(column.with_counts(r, c))
        else:
            effect = measure.categorical(CategoricalColumn(r, c))
        if math.isfinite(effect.value):
            values.append(effect.value)
    return float(np.mean(values)) if values else math.nan


# ---- columns ----------------------------------------------------------------------------------------------


def numeric_drift(
    name: str,
    column: NumericColumn,
    *,
    effect: str,
    test: str | None = None,
    threshold: float | None = None,
) -> ColumnDrift:
    """Compare a numeric column with the named effect size and test (the default test when ``None``).

    ``threshold`` defaults to the effect size's own; the effect size's sampling noise is measured too.
    """
    measure = effect_size(effect, "numeric")
    test_name = test or default_test("numeric", discrete=column.discrete, effect=measure.name)
    result = drift_test(test_name, "numeric")().numeric(column)
    size = measure().numeric(column)
    chance = noise(measure(), column) if math.isfinite(size.value) else math.nan
    extra: dict[str, Any] = {"test_mode": "exact" if column.samples is not None else "binned", **size.details}
    if column.discrete:
        extra["discrete"] = True
    return ColumnDrift(
        name=name,
        kind="numeric",
        method=result.method,
        statistic=result.statistic,
        p_value=result.p_value,
        effect_size_method=measure.name,
        effect_size=size.value,
        effect_size_noise=chance,
        threshold=measure.threshold if threshold is None else threshold,
        n_ref=float(np.sum(column.ref_fine)),
        n_cur=float(np.sum(column.cur_fine)),
        n_ref_effective=float(np.sum(column.observed().ref_fine)),
        n_cur_effective=float(np.sum(column.observed().cur_fine)),
        extra=extra,
    )


def categorical_drift(
    name: str,
    ref_counts: Mapping[Any, float],
    cur_counts: Mapping[Any, float],
    *,
    effect: str = "jensenshannon",
    test: str | None = None,
    threshold: float | None = None,
    ref_effective: float | None = None,
    cur_effective: float | None = None,
) -> ColumnDrift:
    """Compare category counts (the key ``None``, missing, is left out: see ``stats.drift.missing_rate_test``).

    Categories seen only in the current window stay in the table (a new category is drift) and are
    listed in ``new_categories`` (largest first) with their share of the current window.  The effect
    size's sampling noise is measured too.  Weighted counts (sampled logging) give the effect size;
    ``*_effective``, the observations behind each side's non-missing counts, give the test and the noise.
    """
    measure = effect_size(effect, "categorical")
    ref = {k: float(v) for k, v in ref_counts.items() if k is not None and v > 0}
    cur = {k: float(v) for k, v in cur_counts.items() if k is not None and v > 0}
    keys = sorted(set(ref) | set(cur), key=lambda k: (type(k).__name__, str(k)))
    column = CategoricalColumn(
        np.array([ref.get(k, 0.0) for k in keys]),
        np.array([cur.get(k, 0.0) for k in keys]),
        ref_effective,
        cur_effective,
    )
    result = drift_test(test or default_test("categorical"), "categorical")().categorical(column)
    size = measure().categorical(column).value
    n_cur = float(column.cur.sum())
    new = sorted(((k, v) for k, v in cur.items() if k not in ref), key=lambda kv: -kv[1])
    extra = {
        "n_categories_ref": len(ref),
        "n_categories_cur": len(cur),
        "new_categories": [{"value": k, "count": v, "share": v / n_cur} for k, v in new[:MAX_NEW_CATEGORIES]],
        "new_categories_share": sum(v for _, v in new) / n_cur if n_cur > 0 else None,
    }
    return ColumnDrift(
        name=name,
        kind="categorical",
        method=result.method,
        statistic=result.statistic,
        p_value=result.p_value,
        effect_size_method=measure.name,
        effect_size=size,
        effect_size_noise=noise(measure(), column) if math.isfinite(size) else math.nan,
        threshold=measure.threshold if threshold is None else threshold,
        n_ref=float(column.ref.sum()),
        n_cur=n_cur,
        n_ref_effective=float(column.observed().ref.sum()),
        n_cur_effective=float(column.observed().cur.sum()),
        extra=extra,
    )
