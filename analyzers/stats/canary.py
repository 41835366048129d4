"""Canary statistics: a candidate version against its baseline over the same window.

Every difference is *candidate minus baseline*, with a confidence interval: Newcombe's hybrid score
interval for proportions (accuracy, error rate, the share of predictions slower than a latency
percentile), a normal interval on standard errors for means (mean absolute error).  A metric is
significantly *worse* when its interval lies wholly on the worse side of zero.

How many observations a verdict needs is the classic two-sample power calculation for a two-sided
z-test at level ``confidence`` that detects a worsening of ``difference`` with probability ``power``,
the baseline holding ``ratio`` times as many observations as the candidate (the traffic split)::

    n_candidate = (z_{1 - alpha/2} + z_{power})**2 * (var_candidate + var_baseline / ratio) / difference**2

with ``alpha = 1 - confidence``; a proportion ``p`` has variance ``p (1 - p)``, the candidate's taken
at the baseline's rate moved by ``difference`` to the worse side (Fleiss, *Statistical Methods for
Rates and Proportions*, ch. 4, unpooled form).

The verdict (:func:`decide`): ``rollback`` when a gated metric is significantly worse, else ``hold``
until both versions have ``min_rows`` predictions and the candidate has the observations the power
calculation asks for, else ``promote``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from scipy.stats import norm

from analyzers.stats.intervals import newcombe_difference, wilson, z_value

Verdict = Literal["promote", "hold", "rollback"]
VERDICTS: tuple[str, ...] = ("promote", "hold", "rollback")


@dataclass(frozen=True, kw_only=True)
class Difference:
    """One metric on both versions and ``candidate - baseline`` with its interval (``None`` where unknown)."""

    baseline: float | None
    candidate: float | None
    value: float | None
    low: float | None
    high: float | None
    higher_is_better: bool

    @property
    def worse(self) -> bool:
        """The interval lies wholly on the worse side of zero: the candidate is significantly worse."""
        if self.low is None or self.high is None:
            return False
        return self.high < 0 if self.higher_is_better else self.low > 0

    @property
    def better(self) -> bool:
        """The interval lies wholly on the better side of zero."""
        if self.low is None or self.high is None:
            return False
        return self.low > 0 if self.higher_is_better else self.high < 0


def family_level(confidence: float, comparisons: int) -> float:
    """The level of each of ``comparisons`` intervals that keeps the family at ``confidence`` (Bonferroni)."""
    z_value(confidence)  # validates the level
    return 1 - (1 - confidence) / max(comparisons, 1)


def proportion_difference(
    x_candidate: float,
    n_candidate: float,
    x_baseline: float,
    n_baseline: float,
    *,
    higher_is_better: bool,
    confidence: float = 0.95,
) -> Difference:
    """``p_candidate - p_baseline`` of two proportions ``x / n`` with Newcombe's interval."""
    estimate = newcombe_difference(x_candidate, n_candidate, x_baseline, n_baseline, confidence=confidence)
    return Difference(
        baseline=wilson(x_baseline, n_baseline).value,
        candidate=wilson(x_candidate, n_candidate).value,
        value=estimate.value,
        low=estimate.low,
        high=estimate.high,
        higher_is_better=higher_is_better,
    )


def mean_difference(
    candidate: float | None,
    candidate_se: float | None,
    baseline: float | None,
    baseline_se: float | None,
    *,
    higher_is_better: bool,
    confidence: float = 0.95,
) -> Difference:
    """``candidate - baseline`` of two means with the normal interval ``± z sqrt(se_c² + se_b²)``."""
    if candidate is None or baseline is None:
        return Difference(
            baseline=baseline, candidate=candidate, value=None, low=None, high=None, higher_is_better=higher_is_better
        )
    value = candidate - baseline
    if candidate_se is None or baseline_se is None:
        return Difference(
            baseline=baseline, candidate=candidate, value=value, low=None, high=None, higher_is_better=higher_is_better
        )
    half = z_value(confidence) * math.hypot(candidate_se, baseline_se)
    return Difference(
        baseline=baseline,
        candidate=candidate,
        value=value,
        low=value - half,
        high=value + half,
        higher_is_better=higher_is_better,
    )


def sample_size(
    *,
    variance_candidate: float,
    variance_baseline: float,
    difference: float,
    ratio: float,
    confidence: float = 0.95,
    power: float = 0.8,
) -> float:
    """Candidate observations needed to detect ``difference`` (see the module docstring); ``ratio`` is
    baseline observations per candidate observation."""
    if difference <= 0:
        raise ValueError(f"the minimum detectable difference must be positive, got {difference!r}")
    if not 0 < power < 1:
        raise ValueError(f"power must be between 0 and 1, got {power!r}")
    if ratio <= 0:
        raise ValueError(f"the baseline-to-candidate ratio must be positive, got {ratio!r}")
    z = z_value(confidence) + float(norm.ppf(power))
    return z * z * (variance_candidate + variance_baseline / ratio) / (difference * difference)


def proportion_sample_size(
    baseline: float,
    *,
    difference: float,
    ratio: float,
    higher_is_better: bool,
    confidence: float = 0.95,
    power: float = 0.8,
) -> float:
    """Candidate observations needed to detect a proportion ``difference`` worse than ``baseline``."""
    if not 0 <= baseline <= 1:
        raise ValueError(f"a proportion lies in [0, 1], got {baseline!r}")
    worse = baseline - difference if higher_is_better else baseline + difference
    worse = min(max(worse, 0.0), 1.0)
    return sample_size(
        variance_candidate=worse * (1 - worse),
        variance_baseline=baseline * (1 - baseline),
        difference=difference,
        ratio=ratio,
        confidence=confidence,
        power=power,
    )


@dataclass(frozen=True)
class Decision:
    """The verdict, the metrics that made a rollback, and what a hold waits for (candidate predictions)."""

    verdict: Verdict
    worse: tuple[str, ...] = ()
    rows_short: float = 0.0
    observations_short: float | None = None


def decide(
    *,
    n_baseline: float,
    n_candidate: float,
    min_rows: int,
    worse: Sequence[str],
    required: float | None,
    observed: float,
) -> Decision:
    """The verdict from the rows each version has, the gated metrics found significantly worse, and the
    primary metric's required candidate observations (``None`` when it cannot be computed yet).

    Too few rows on either side holds whatever the metrics say (small samples give no verdict);
    a significantly worse gated metric rolls back; a power calculation not yet met holds; else promote.
    """
    rows_short = max(min_rows - n_baseline, min_rows - n_candidate, 0.0)
    if rows_short > 0:
        short = max(required - observed, 0.0) if required is not None else None
        return Decision("hold", rows_short=rows_short, observations_short=short)
    if worse:
        return Decision("rollback", worse=tuple(worse))
    if required is None:
        return Decision("hold", observations_short=None)
    short = max(required - observed, 0.0)
    if short > 0:
        return Decision("hold", observations_short=short)
    return Decision("promote")
