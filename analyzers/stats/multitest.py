"""Multiple-testing correction: Benjamini–Hochberg (false discovery rate) and Bonferroni (family-wise).

Testing twenty features at level 0.05 flags one by chance on a quiet day; adjusting the p-values of the
whole family keeps the false-alarm rate at the configured level.  NaN p-values (tests that could not run)
stay NaN and do not count towards the family size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Correction = Literal["bh", "bonferroni", "none"]


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (step-up, monotone, capped at 1), as ``scipy.stats.false_discovery_control``."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = ~np.isnan(p)
    m = int(valid.sum())
    if m == 0:
        return out
    values = p[valid]
    order = np.argsort(values)
    scaled = values[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    out[valid] = result
    return out


def bonferroni(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Bonferroni-adjusted p-values: each multiplied by the number of tests, capped at 1."""
    p = np.asarray(p_values, dtype=float)
    m = int((~np.isnan(p)).sum())
    return np.minimum(p * max(m, 1), 1.0)


def adjust(p_values: Sequence[float] | np.ndarray, *, method: Correction = "bh") -> np.ndarray:
    """Adjusted p-values by ``bh`` (default), ``bonferroni`` or ``none`` (unchanged)."""
    if method == "bh":
        return benjamini_hochberg(p_values)
    if method == "bonferroni":
        return bonferroni(p_values)
    if method == "none":
        return np.asarray(p_values, dtype=float).copy()
    raise ValueError(f"unknown correction {method!r}: expected bh, bonferroni or none")
