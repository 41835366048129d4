"""Confidence intervals for proportions and their differences and ratios.

The counts are observations: under sampled logging, callers pass a weighted proportion over its effective
number of observations (:func:`analyzers.stats.sampling.effective_pair`), never the weighted counts
themselves, which would narrow every interval by the square root of ``1 / sample_rate``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from scipy.stats import norm


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval; any part is ``None`` when it cannot be computed."""

    value: float | None
    low: float | None
    high: float | None

    @property
    def excludes_zero(self) -> bool:
        """True when the interval is known and does not contain 0 (a significant difference)."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    @property
    def excludes_one(self) -> bool:
        """True when the interval is known and does not contain 1 (a significant ratio)."""
        return self.low is not None and self.high is not None and (self.low > 1 or self.high < 1)


NONE = Estimate(None, None, None)


@functools.lru_cache(maxsize=256)
def z_value(confidence: float) -> float:
    """Two-sided normal quantile for a confidence level in (0, 1) (remembered: jobs ask for a few levels often)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    return float(norm.ppf(1 - (1 - confidence) / 2))


def proportion(successes: float, n: float) -> float | None:
    """``successes / n``, or ``None`` when ``n`` is 0 (never a made-up 0)."""
    return successes / n if n > 0 else None


def wilson(successes: float, n: float, *, confidence: float = 0.95) -> Estimate:
    """Proportion with the Wilson score interval (good coverage for small n and rates near 0 or 1)."""
    if n <= 0:
        return NONE
    if successes < 0 or successes > n * (1 + 1e-12):
        raise ValueError(f"successes {successes} must lie between 0 and n={n}")
    p = min(successes / n, 1.0)
    z = z_value(confidence)
    z2 = z * z
    denom = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return Estimate(p, max(0.0, center - half), min(1.0, center + half))


def newcombe_difference(x1: float, n1: float, x2: float, n2: float, *, confidence: float = 0.95) -> Estimate:
    """``p1 - p2`` with Newcombe's hybrid score interval (method 10, built from two Wilson intervals).

    Unlike the Wald interval it stays inside [-1, 1] and keeps its coverage for small or extreme counts.
    """
    a, b = wilson(x1, n1, confidence=confidence), wilson(x2, n2, confidence=confidence)
    if a.value is None or b.value is None or a.low is None or a.high is None or b.low is None or b.high is None:
        return NONE
    p1, p2 = a.value, b.value
    diff = p1 - p2
    low = diff - math.sqrt((p1 - a.low) ** 2 + (b.high - p2) ** 2)
    high = diff + math.sqrt((a.high - p1) ** 2 + (p2 - b.low) ** 2)
    return Estimate(diff, max(-1.0, low), min(1.0, high))


def ratio_interval(x1: float, n1: float, x2: float, n2: float, *, confidence: float = 0.95) -> Estimate:
    """``p1 / p2`` with the Katz log interval; the interval is ``None`` when either count of successes is 0."""
    p1, p2 = proportion(x1, n1), proportion(x2, n2)
    if p1 is None or p2 is None or p2 == 0:
        return NONE
    ratio = p1 / p2
    if x1 <= 0 or x2 <= 0:
        return Estimate(ratio, None, None)
    se = math.sqrt(max(0.0, 1 / x1 - 1 / n1 + 1 / x2 - 1 / n2))
    z = z_value(confidence)
    return Estimate(ratio, ratio * math.exp(-z * se), ratio * math.exp(z * se))
