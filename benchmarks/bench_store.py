"""Local store speed and memory on 1,000,000 prediction lines (20 features) over 7 daily files.

``full_scan`` is the first scan (JSON parsed); every later measurement is a new process over the same
settled files, which reads the parsed days the first one kept as Parquet under the state dir.

Run: ``python benchmarks/bench_store.py [--rows 1000000]``.  Each measurement runs in a fresh
process so that peak memory (ru_maxrss) is its own; the baseline, ``pandas.read_json(lines=True)``
on the same files, runs in the same way in the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
from peak_memory import peak_rss_mib  # benchmarks/, on the path when run as a script

DATA = Path(__file__).parent / "data" / "store"
WINDOW = ("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z")


def generate(rows: int) -> Path:
    """Write ``rows`` prediction lines over 7 days (skipped when already there)."""
    logs = DATA / f"logs-{rows}"
    marker = logs / ".complete"
    if marker.exists():
        return logs
    rng = np.random.default_rng(0)
    folder = logs / "fraud-api"
    folder.mkdir(parents=True, exist_ok=True)
    per_day = rows // 7
    levels = [f"L{i}" for i in range(10)]
    for day in range(7):
        numeric = rng.normal(size=(per_day, 15))
        categorical = rng.integers(0, 10, size=(per_day, 5))
        scores = rng.random(per_day)
        regions = rng.choice(["EU", "US", "APAC"], size=per_day)
        with open(folder / f"predictions-2026-11-{day + 1:02d}.ndjson", "wb") as out:
            for i in range(per_day):
                second = int(i * 86400 / per_day)
                features = {f"n{j}": float(numeric[i, j]) for j in range(15)}
                features.update({f"c{j}": levels[categorical[i, j]] for j in range(5)})
                clock = f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
                event = {
                    "@timestamp": f"2026-11-{day + 1:02d}T{clock}Z",
                    "log.level": "info",
                    "message": "prediction",
                    "ecs.version": "8.11.0",
                    "event": {"dataset": "ml.prediction", "kind": "event", "outcome": "success"},
                    "service": {"name": "fraud-api"},
                    "ml": {
                        "prediction_id": f"{day}-{i}",
                        "model": {"name": "fraud", "version": "v1"},
                        "features": features,
                        "prediction": {"label": int(scores[i] > 0.5), "score": float(scores[i])},
                        "groups": {"region": str(regions[i])},
                        "latency_ms": 5.0,
                    },
                }
                out.write(orjson.dumps(event) + b"\n")
    marker.touch()
    return logs


def measure(kind: str, logs: str) -> dict:
    """One measurement in this process: seconds and peak memory."""
    start = time.perf_counter()
    if kind == "pandas_read_json":
        import pandas as pd

        n = sum(len(pd.read_json(p, lines=True)) for p in sorted(Path(logs).glob("*/*.ndjson")))
        return {"seconds": time.perf_counter() - start, "rows": n, "peak_mib": peak_rss_mib()}
    from datetime import timedelta  # noqa: F401

    from analyzers.store import LocalStore, Query
    from analyzers.timeutil import Window

    state = Path(logs).parent / "state-scan"  # after the first (cold) scan, every measurement is warm
    store = LocalStore(logs, state)
    query = Query("fraud", Window(*WINDOW))
    if kind.startswith("full_scan"):
        n = sum(len(chunk) for chunk in store.rows(query))
        return {"seconds": time.perf_counter() - start, "rows": n, "peak_mib": peak_rss_mib()}
    store.count(query)  # the scan, so that what follows times the aggregate alone
    scanned = time.perf_counter() - start
    start = time.perf_counter()
    if kind == "histogram":
        store.histogram(query, "features.n0", list(np.linspace(-4, 4, 21)))
    elif kind == "group_counts":
        store.crosstab(query, ["groups.region", "prediction"])
    elif kind == "sample_50k":
        store.sample(query, 50_000, seed=1)
    return {"seconds": time.perf_counter() - start, "scan_seconds": scanned, "peak_mib": peak_rss_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--logs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.logs)))
        return
    logs = generate(args.rows)
    size_mib = sum(p.stat().st_size for p in logs.glob("*/*.ndjson")) / 2**20
    print(f"{args.rows:,} lines in 7 files, {size_mib:.0f} MiB")
    results = {}
    for state in logs.parent.glob("state-*"):
        shutil.rmtree(state)
    for kind in ("full_scan", "full_scan_warm", "histogram", "group_counts", "sample_50k", "pandas_read_json"):
        out = subprocess.run(
            [sys.executable, __file__, "--measure", kind, "--logs", str(logs)],
            check=True,
            capture_output=True,
            text=True,
        )
        results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
        print(kind, results[kind])
    base = results["pandas_read_json"]
    for kind in ("full_scan", "full_scan_warm"):
        full = results[kind]
        ours, theirs = full["rows"] / full["seconds"], base["rows"] / base["seconds"]
        print(
            f"{kind}: {ours:,.0f} rows/s vs pandas {theirs:,.0f} rows/s"
            f" = {base['seconds'] / full['seconds']:.1f}x faster; peak {full['peak_mib']:.0f} MiB"
            f" vs pandas {base['peak_mib']:.0f} MiB (files {size_mib:.0f} MiB)"
        )


if __name__ == "__main__":
    main()
