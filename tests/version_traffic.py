"""Simulated traffic of a model with several versions live at once, written as the logger writes it.

A binary classifier: the true label is 1 for 30% of predictions, and each version predicts it right with
its own ``accuracy``; 80% of successful predictions get feedback five minutes later.  Every version has
its own latency (log-normal around ``latency_ms``) and error rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from tests.log_events import event, write_events


@dataclass(frozen=True)
class Version:
    """One version's traffic: ``n`` events spread uniformly over ``[start, end)``."""

    name: str
    n: int
    start: datetime
    end: datetime
    accuracy: float = 0.9
    latency_ms: float = 20.0
    error_rate: float = 0.01
    label_share: float = 0.8
    sample_rate: float | None = None  # written as ml.sample_rate of every event when given


def write_traffic(log_dir: Path, versions: list[Version], *, model: str = "m", seed: int = 0) -> dict[str, Any]:
    """Log every version's events; returns each version's first event time and its labelled outcomes."""
    rng = np.random.default_rng(seed)
    events = []
    truth: dict[str, Any] = {}
    for v in versions:
        seconds = np.sort(rng.uniform(0, (v.end - v.start).total_seconds(), v.n))
        truth[v.name] = {"first": v.start + timedelta(seconds=float(seconds[0])), "correct": [], "failures": 0}
        for i, offset in enumerate(seconds):
            ts = v.start + timedelta(seconds=float(offset))
            pid = f"{model}-{v.name}-{i}"
            y = int(rng.random() < 0.3)
            right = rng.random() < v.accuracy
            p = y if right else 1 - y
            ml = {
                "model": {"name": model, "version": v.name},
                "prediction": {"label": p, "score": float(np.clip(0.2 + 0.6 * p + rng.normal(0, 0.1), 0, 1))},
                "latency_ms": float(rng.lognormal(np.log(v.latency_ms), 0.3)),
            }
            if v.sample_rate is not None:
                ml["sample_rate"] = v.sample_rate
            if rng.random() < v.error_rate:
                events.append(event(ts, pid, ml, outcome="failure", model=model))
                truth[v.name]["failures"] += 1
                continue
            events.append(event(ts, pid, ml, model=model))
            if rng.random() < v.label_share:
                events.append(event(ts + timedelta(minutes=5), pid, {"label": y}, "ml.feedback", model=model))
                truth[v.name]["correct"].append(right)
    write_events(log_dir, events)
    return truth
