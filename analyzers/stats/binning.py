"""Bins for numeric drift: edges from the reference's quantiles, counts over them, and merging bins.

A binned distribution here is a *full* count vector ``[underflow, counts..., overflow]`` over edges
``e_0 < ... < e_k``: ``underflow`` is ``x < e_0``, ``counts[i]`` is ``e_i <= x < e_{i+1}``, ``overflow`` is
``x >= e_k`` (the store's ``Histogram`` layout).  Memory is bounded by the bins, not by the rows.

Fine bins (reference percentiles plus an even grid and outer tail edges, :func:`fine_edges`) serve
KS and Wasserstein; coarse bins (reference deciles, :func:`quantile_edges` without ``outer``) serve
PSI, whose value grows with the number of bins under pure noise.  Coarse edges are fine edges, so
coarse counts come from merging fine ones (:func:`merge_bins`) without a second pass over the rows.

Ties: a value that holds two or more quantiles (a point mass of at least one quantile step, e.g. the
zeros of a count feature) gets a bin of its own, ``[v, nextafter(v))``, so discrete and mixed columns
keep their atoms instead of smearing them over neighbouring bins.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def quantile_levels(n_bins: int) -> list[float]:
    """The ``n_bins + 1`` evenly spaced quantile levels ``0, 1/n, ..., 1``."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    return [i / n_bins for i in range(n_bins + 1)]


def quantile_edges(quantiles: Sequence[float | None], *, outer: bool = True) -> np.ndarray:
    """Ascending, unique bin edges from reference quantiles at evenly spaced levels (``0`` .. ``1``).

    With ``outer`` the reference's minimum and (just above) its maximum are edges too, so the
    reference has nothing in underflow/overflow and anything the current window has beyond the
    reference's range is counted apart; without it only the inner quantiles are edges (the classic
    decile bins of PSI, open-ended at both sides).  Each tied value also gets ``nextafter(v)``.
    """
    values = np.asarray([q for q in quantiles if q is not None and np.isfinite(q)], dtype=float)
    if values.size == 0:
        return np.empty(0)
    values = np.sort(values)
    unique, counts = np.unique(values, return_counts=True)
    atoms = unique[counts >= 2]
    if outer:
        edges = np.concatenate([values, [np.nextafter(values[-1], np.inf)], np.nextafter(atoms, np.inf)])
    else:
        inner = values[1:-1] if values.size > 2 else values
        inner_atoms = atoms[(atoms >= inner[0]) & (atoms <= inner[-1])]
        edges = np.concatenate([inner, np.nextafter(inner_atoms, np.inf)])
    return np.unique(edges)


def fine_edges(quantiles: Sequence[float | None], *, grid: int = 50) -> np.ndarray:
    """Edges for KS and Wasserstein: the reference quantiles (with its range, see :func:`quantile_edges`),
    ``grid`` evenly spaced edges across that range, and edges beyond it at ``2**k`` range widths.

    Quantile bins alone are wide in the tails, where a wider or shifted current window puts much of
    its mass; the even grid and the growing outer edges keep the within-bin (linear CDF) assumption
    of the binned Wasserstein distance from overstating it there.
    """
    edges = quantile_edges(quantiles, outer=True)
    if edges.size < 2:
        return edges
    low, high = edges[0], edges[-1]
    width = high - low
    grid_edges = np.linspace(low, high, grid + 1)[1:-1]
    beyond = width * np.exp2(np.arange(-4, 11))
    return np.unique(np.concatenate([edges, grid_edges, high + beyond, low - beyond]))


def bin_counts(values: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Full count vector ``[underflow, counts..., overflow]`` of finite values over ``edges``.

    Unweighted values are sorted and each edge is located among them (``counts[i]`` is how many lie
    below ``e_{i+1}`` minus how many lie below ``e_i``), several times faster than locating each value
    among the edges; weighted values are located one by one and their weights summed.
    """
    x = np.asarray(values, dtype=float)
    e = np.asarray(edges, dtype=float)
    keep = np.isfinite(x)
    finite = x if keep.all() else x[keep]
    if weights is None:
        below = np.searchsorted(np.sort(finite), e, side="left")
        return np.diff(below, prepend=0, append=finite.size).astype(float)
    index = np.searchsorted(e, finite, side="right")
    return np.bincount(index, weights=np.asarray(weights, dtype=float)[keep], minlength=len(e) + 1).astype(float)


def merge_bins(fine_counts: np.ndarray, *, fine_edges: np.ndarray, coarse_edges: np.ndarray) -> np.ndarray:
    """Full counts over ``coarse_edges`` from full counts over ``fine_edges`` (coarse edges must be fine edges)."""
    fine = np.asarray(fine_edges, dtype=float)
    coarse = np.asarray(coarse_edges, dtype=float)
    if not np.isin(coarse, fine).all():
        raise ValueError("coarse bin edges must be a subset of the fine bin edges")
    # Fine bin j (j = 0 is underflow) starts at fine[j - 1]; it falls in the coarse bin of that start.
    starts = np.concatenate([[-np.inf], fine])
    target = np.searchsorted(coarse, starts, side="right")
    return np.bincount(target, weights=np.asarray(fine_counts, dtype=float), minlength=len(coarse) + 1)


def bin_boundaries(edges: np.ndarray, *, low: float, high: float) -> np.ndarray:
    """Positions ``[low, e_0, ..., e_k, high]`` of the full bins' ends, clipped into ``[low, high]``.

    ``low`` and ``high`` are the smallest and largest value seen on either side; with them the
    open-ended underflow and overflow bins get a finite width (for Wasserstein).
    """
    inner = np.clip(np.asarray(edges, dtype=float), low, high)
    return np.concatenate([[low], inner, [high]])
