"""Operational statistics on per-bucket counts: the longest silence and the percentile names of latency."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")


@dataclass(frozen=True)
class Silence:
    """The longest run of empty buckets: where it starts (bucket index), how many buckets, and whether it
    reaches the end of the window (the service is silent right now)."""

    start: int | None
    buckets: int
    ongoing: bool


def longest_silence(counts: np.ndarray | list[float]) -> Silence:
    """Longest run of zero counts; the latest run wins a tie, so an ongoing silence is reported."""
    c = np.asarray(counts, dtype=float)
    best = Silence(None, 0, False)
    run_start = None
    for i, value in enumerate(c):
        if value <= 0:
            run_start = i if run_start is None else run_start
            length = i - run_start + 1
            if length >= best.buckets:
                best = Silence(run_start, length, i == len(c) - 1)
        else:
            run_start = None
    return best


def percentile_level(name: str) -> float:
    """``p95`` -> 0.95, ``p99.9`` -> 0.999; a clear error for anything else."""
    match = _PERCENTILE.match(name.strip().lower())
    if not match or not 0 <= float(match.group(1)) <= 100:
        raise ValueError(f"latency threshold key {name!r} is not a percentile like p50, p95, p99 or p99.9")
    return float(match.group(1)) / 100
