"""The canary job's cost as the window grows: store calls and time, against the ops job on the same window.

A classifier's day with two versions (90% / 10%), 80% of predictions labelled, at several sizes.  The
canary reads aggregates with ``Query.model_versions`` (counts, crosstabs, histograms, quantiles,
volume), so its number of store calls stays the same whatever the rows, and its time follows the
store's scans like the ops job's (the baseline, measured in the same run on the same files).  Each
size is parsed once first (both jobs then read the cached Parquet), so the times compare the jobs,
not the JSON parsing; each time is the best of three runs.

Run: ``python benchmarks/bench_canary.py [--rows 50000 500000]``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from analyzers.config.models import CanaryConfig, OpsConfig
from analyzers.jobs import canary, ops
from analyzers.jobs.versions import VersionSlice
from analyzers.store.local import LocalStore
from analyzers.timeutil import Window, format_time, parse_time

DATA = Path(__file__).parent / "data" / "canary"
DAY = Window(parse_time("2026-11-20T00:00:00Z"), parse_time("2026-11-21T00:00:00Z"))


def generate(rows: int) -> Path:
    """Write ``rows`` predictions (and their feedback) over one day (skipped when already there)."""
    logs = DATA / f"logs-{rows}"
    marker = logs / ".complete"
    if marker.exists():
        return logs
    shutil.rmtree(logs, ignore_errors=True)
    folder = logs / "fraud-api"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    seconds = np.sort(rng.uniform(0, 86_000, rows))
    candidate = rng.random(rows) < 0.1
    truth = rng.random(rows) < 0.3
    right = rng.random(rows) < np.where(candidate, 0.85, 0.9)
    labelled = rng.random(rows) < 0.8
    latency = rng.lognormal(np.log(20.0), 0.3, rows)
    with open(folder / "predictions-2026-11-20.ndjson", "wb") as out:
        for i in range(rows):
            ts = format_time(DAY.start + timedelta(seconds=float(seconds[i])))
            pid = f"p{i}"
            prediction = int(truth[i] if right[i] else not truth[i])
            ml = {
                "prediction_id": pid,
                "model": {"name": "fraud", "version": "v2" if candidate[i] else "v1"},
                "prediction": {"label": prediction, "score": float(0.2 + 0.6 * prediction)},
                "latency_ms": float(latency[i]),
            }
            event = {"@timestamp": ts, "event": {"dataset": "ml.prediction", "outcome": "success"}, "ml": ml}
            out.write(orjson.dumps(event) + b"\n")
            if labelled[i]:
                feedback = {"prediction_id": pid, "model": {"name": "fraud"}, "label": int(truth[i])}
                line = {"@timestamp": ts, "event": {"dataset": "ml.feedback", "outcome": "success"}, "ml": feedback}
                out.write(orjson.dumps(line) + b"\n")
    marker.touch()
    return logs


class Counting(VersionSlice):
    """The store with every call counted (a slice over another window narrows nothing)."""

    def __init__(self, store: LocalStore) -> None:
        super().__init__(store, Window(DAY.start, DAY.start + timedelta(seconds=1)), "none")
        self.calls: Counter[str] = Counter()

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if callable(attribute) and not name.startswith("_") and name not in ("quality", "close"):
            super().__getattribute__("calls")[name] += 1
        return attribute


def timed(run: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """The best of ``repeat`` runs (the machine is shared: the minimum is the least disturbed) and a result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def measure(logs: Path, state: Path) -> tuple[float, float, int, Any]:
    """Ops and canary times over one parsed window, the canary's store calls and its verdict."""
    shutil.rmtree(state, ignore_errors=True)
    with LocalStore(logs, state) as store:
        store.count(canary.Query("fraud", DAY))  # parse once: both jobs read the same cached window
        ops_s, _ = timed(lambda: ops.run(store, "fraud", OpsConfig(window="1d"), DAY))
        config = CanaryConfig(window="1d", min_detectable=0.02)
        canary_s, _ = timed(lambda: canary.run(store, "fraud", config, DAY))
        counting = Counting(store)
        finding = canary.run(counting, "fraud", config, DAY)
    return ops_s, canary_s, sum(counting.calls.values()), finding.to_dict().get("verdict")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[50_000, 500_000])
    args = parser.parse_args()
    print(f"{'rows':>9} {'ops s':>7} {'canary s':>9} {'canary/ops':>10} {'store calls':>11}  verdict")
    for rows in args.rows:
        logs = generate(rows)
        ops_s, canary_s, calls, verdict = measure(logs, logs.parent / f"state-{rows}")
        print(f"{rows:>9} {ops_s:>7.2f} {canary_s:>9.2f} {canary_s / ops_s:>10.1f} {calls:>11}  {verdict}")


if __name__ == "__main__":
    main()
