"""Sampled logging: weights for estimates, effective sizes for tests and intervals.

A service may log a fraction of its predictions (``ml.sample_rate``).  Every logged row then stands
for ``1 / sample_rate`` predictions: counts, rates, shares and metrics weighted so (Horvitz–Thompson)
describe the whole traffic.  But a test or an interval must see how many rows were *observed*, not the
traffic they stand for: 1,000 rows logged at 10% are 1,000 observations, not 10,000, and a chi-square
fed the weighted counts would call noise significant.  Where the weights vary (several rates mixed),
the observations count as Kish's effective sample size ``(Σw)² / Σw²``, which equals the number of
rows when every weight is the same.  The statistics take weighted counts for their point estimates and
the effective size for their uncertainty; :class:`SampleSize` carries both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def weights_from_rates(rates: np.ndarray) -> np.ndarray:
    """``1 / sample_rate`` per row; 1 where the rate is missing or not in (0, 1] (the row was not sampled)."""
    rate = np.asarray(rates, dtype=float)
    valid = np.isfinite(rate) & (rate > 0) & (rate <= 1)
    return np.where(valid, 1.0 / np.where(valid, rate, 1.0), 1.0)


def row_weights(chunk: pd.DataFrame) -> np.ndarray:
    """The weight of each row of a frame read from a store, from its ``sample_rate`` column (1 without one)."""
    if "sample_rate" not in chunk:
        return np.ones(len(chunk))
    rates = pd.to_numeric(chunk["sample_rate"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return weights_from_rates(rates)


def effective_size(weighted: float, squares: float) -> float:
    """Kish's effective number of observations ``(Σw)² / Σw²`` (0 when nothing was observed)."""
    return weighted * weighted / squares if squares > 0 else 0.0


@dataclass(frozen=True)
class SampleSize:
    """What a set of logged rows stands for (``weighted``, Σw) and what was observed (``rows``; ``squares``, Σw²).

    Without sampling all three are equal.  ``effective`` is the number of observations a test or an
    interval may count on; ``scale`` turns a weighted count of these rows into its effective count.
    """

    weighted: float = 0.0
    squares: float = 0.0
    rows: float = 0.0

    @classmethod
    def of(cls, weights: np.ndarray) -> SampleSize:
        """The size of rows with these weights."""
        w = np.asarray(weights, dtype=float)
        return cls(float(w.sum()), float((w * w).sum()), float(len(w)))

    @classmethod
    def unweighted(cls, n: float) -> SampleSize:
        """``n`` rows logged unsampled (every weight 1)."""
        return cls(float(n), float(n), float(n))

    @property
    def effective(self) -> float:
        return effective_size(self.weighted, self.squares)

    @property
    def scale(self) -> float:
        """Effective observations per unit of weight (``Σw / Σw²``; 1 when empty): a weighted count times this
        is its effective count, assuming the weights spread alike over what is counted."""
        return self.weighted / self.squares if self.squares > 0 else 1.0

    def __add__(self, other: SampleSize) -> SampleSize:
        return SampleSize(self.weighted + other.weighted, self.squares + other.squares, self.rows + other.rows)


def effective_counts(counts: np.ndarray, effective: float | None) -> np.ndarray:
    """Weighted counts rescaled to sum to ``effective`` observations (shares unchanged); as given when ``None``."""
    c = np.asarray(counts, dtype=float)
    if effective is None:
        return c
    total = float(c.sum())
    return c * (effective / total) if total > 0 else c


def effective_pair(successes: float, n: float, effective_n: float | None) -> tuple[float, float]:
    """A weighted proportion ``successes / n`` as ``(x, n)`` counts over ``effective_n`` observations."""
    if effective_n is None or n <= 0:
        return successes, n
    return successes / n * effective_n, effective_n
