"""Local store speed and memory on 1,000,000 prediction lines (20 features) over 7 daily files.

``cold_parse`` parses the JSON lines with no parsed state (the files look still written: nothing is
compacted), and is set beside other readers of the same files in the same run, each reading every line's
fields into memory: DuckDB's JSON reader with every column declared (features as a struct of the 20 keys
it knows: a key first seen late would be dropped), pyarrow's and polars' JSON readers (types inferred) and
orjson line by line.  The page cache is warmed and each tool's modules imported before its clock starts
(importing ``analyzers.store`` takes about 1.7 s, scipy and pandas included, which is not parsing).
``full_scan`` then reads every row of the
window through ``rows()`` over that state, the files now backdated (settled, compacted before timing);
the aggregates follow over the same state; ``pandas_read_json`` is the full-scan baseline.

Run: ``python benchmarks/bench_store.py [--rows 1000000]``.  Each measurement runs in a fresh
process so that peak memory is its own.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
from peak_memory import peak_rss_mib  # benchmarks/, on the path when run as a script

DATA = Path(__file__).parent / "data" / "store"
SETTLED = 1_700_000_000  # an mtime long past: a day no longer written
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


READERS = ("duckdb_explicit", "pyarrow_json", "polars", "orjson")
MODULES = {  # what each measurement imports before its clock starts
    "duckdb_explicit": "duckdb",
    "pyarrow_json": "pyarrow.json",
    "polars": "polars",
    "orjson": "orjson",
    "pandas_read_json": "pandas",
}


def declared_columns(numbers: str = "DOUBLE") -> str:
    """DuckDB's ``columns`` for the generated lines, every field declared (the 15 numeric features as
    ``numbers``): the declared reader the cold parse is set beside."""
    features = ", ".join([f"n{j} {numbers}" for j in range(15)] + [f"c{j} VARCHAR" for j in range(5)])
    ml = (
        "STRUCT(prediction_id VARCHAR, model STRUCT(name VARCHAR, version VARCHAR), "
        f"features STRUCT({features}), prediction STRUCT(label BIGINT, score DOUBLE), "
        "groups STRUCT(region VARCHAR), latency_ms DOUBLE)"
    )
    columns = {
        "@timestamp": "VARCHAR",
        "log.level": "VARCHAR",
        "message": "VARCHAR",
        "ecs.version": "VARCHAR",
        "event": "STRUCT(dataset VARCHAR, kind VARCHAR, outcome VARCHAR)",
        "service": "STRUCT(name VARCHAR)",
        "ml": ml,
    }
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"


def read_with(kind: str, files: list[Path]) -> int:
    """Every line of the files into memory with one of the other readers; the number of rows."""
    if kind == "duckdb_explicit":
        import duckdb

        spec = declared_columns()
        listing = "[" + ", ".join(f"'{f}'" for f in files) + "]"
        con = duckdb.connect(config={"threads": os.cpu_count() or 1})
        return (
            con.sql(f"SELECT * FROM read_json({listing}, format='newline_delimited', columns={spec})")
            .to_arrow_table()
            .num_rows
        )
    if kind == "pyarrow_json":
        import pyarrow.json

        return sum(pyarrow.json.read_json(f).num_rows for f in files)
    if kind == "polars":
        import polars

        return sum(polars.read_ndjson(f).height for f in files)
    rows = 0
    for path in files:
        with open(path, "rb") as handle:
            rows += len([orjson.loads(line) for line in handle])
    return rows


def measure(kind: str, logs: str) -> dict:
    """One measurement in this process: seconds and peak memory."""
    files = sorted(Path(logs).glob("*/*.ndjson"))
    for path in files:  # the page cache holds the files for every reader alike
        path.read_bytes()
    importlib.import_module(MODULES.get(kind, "analyzers.store"))
    start, cpu = time.perf_counter(), time.process_time()
    if kind == "pandas_read_json":
        import pandas as pd

        n = sum(len(pd.read_json(p, lines=True)) for p in files)
        return {"seconds": time.perf_counter() - start, "rows": n, "peak_mib": peak_rss_mib()}
    if kind in READERS:
        n = read_with(kind, files)
        return {
            "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu,
            "rows": n,
            "peak_mib": peak_rss_mib(),
        }
    from analyzers.store import LocalStore, Query
    from analyzers.timeutil import Window

    state = Path(logs).parent / "state-scan"  # after the first (cold) parse, every measurement is warm
    query = Query("fraud", Window(*WINDOW))
    if kind == "cold_parse":
        with LocalStore(logs, state) as store:
            n = store.count(query)
        return {
            "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu,
            "rows": n,
            "peak_mib": peak_rss_mib(),
        }
    store = LocalStore(logs, state)
    if kind == "full_scan":
        n = sum(len(chunk) for chunk in store.rows(query))
        return {"seconds": time.perf_counter() - start, "rows": n, "peak_mib": peak_rss_mib()}
    store.count(query)  # the window's tables, so that what follows times the aggregate alone
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
    files = sorted(logs.glob("*/*.ndjson"))
    size_mib = sum(p.stat().st_size for p in files) / 2**20
    load = os.getloadavg()
    print(f"{args.rows:,} lines in 7 files, {size_mib:.0f} MiB; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results = {}
    for state in logs.parent.glob("state-*"):
        shutil.rmtree(state)

    def run(kind: str) -> dict:
        out = subprocess.run(
            [sys.executable, __file__, "--measure", kind, "--logs", str(logs)],
            check=True,
            capture_output=True,
            text=True,
        )
        results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
        print(kind, results[kind], flush=True)
        return results[kind]

    now = time.time()
    for path in files:  # as if still written: the cold parse is the parse alone, nothing compacted
        os.utime(path, (now, now))
    run("cold_parse")
    for kind in READERS:
        run(kind)
    print("cold parse (no parsed state, JSON to Parquet) against readers (JSON to memory), same files, same run:")
    for kind in ("cold_parse", *READERS):
        r = results[kind]
        print(
            f"  {kind:<16} {size_mib / r['seconds']:7.0f} MiB/s  {r['seconds']:6.2f} s  cpu {r['cpu_seconds']:6.2f} s"
            f"  peak {r['peak_mib']:5.0f} MiB"
        )
    fastest = min(READERS, key=lambda k: results[k]["seconds"])
    ratio = results[fastest]["seconds"] / results["cold_parse"]["seconds"]
    print(f"  cold parse = {ratio:.2f} of the fastest reader ({fastest})")
    cpu_ratio = results[fastest]["cpu_seconds"] / results["cold_parse"]["cpu_seconds"]
    print(f"  in CPU seconds (every thread; less sensitive to other load): {cpu_ratio:.2f} of {fastest}")
    for path in files:  # settled days: the first read compacts them, then every measurement is warm
        os.utime(path, (SETTLED, SETTLED))
    subprocess.run(
        [sys.executable, __file__, "--measure", "count", "--logs", str(logs)], check=True, capture_output=True
    )
    print("state measured from here: warm (settled days, parsed and compacted by an earlier process)")
    for kind in ("full_scan", "histogram", "group_counts", "sample_50k", "pandas_read_json"):
        run(kind)
    base, full = results["pandas_read_json"], results["full_scan"]
    ours, theirs = full["rows"] / full["seconds"], base["rows"] / base["seconds"]
    print(
        f"full_scan (warm): {ours:,.0f} rows/s vs pandas {theirs:,.0f} rows/s"
        f" = {base['seconds'] / full['seconds']:.1f}x faster; peak {full['peak_mib']:.0f} MiB"
        f" vs pandas {base['peak_mib']:.0f} MiB (files {size_mib:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
