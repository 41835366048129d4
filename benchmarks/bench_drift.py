"""Drift benchmark: 1,000,000 current against 1,000,000 reference predictions, 20 features.

Setup (not timed): generate 15 numeric and 5 categorical (10 levels) features with a known set of
shifted columns, some of them small, and write them twice: as the logger's daily NDJSON files (the
reference day and the current day) and as Parquet for the baselines.  Then, each in its own process
so that peak memory is its own:

* predwatch: ``LocalStore`` over the log files and the drift job, timed end to end (scanning the
  files included);
* Evidently's DataDriftPreset and NannyML's UnivariateDriftCalculator on the same data in pandas,
  compute timed, run from ``benchmarks/.venv-baselines`` (see ``bench_drift_baselines.py``).

Run: ``python benchmarks/bench_drift.py`` (``--rows`` for a smaller try; ``--skip-baselines``).
Create the baselines' environment once with ``python -m venv benchmarks/.venv-baselines`` and
``benchmarks/.venv-baselines/bin/pip install evidently nannyml "pandas<3"``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from peak_memory import peak_rss_mib  # benchmarks/, on the path when run as a script

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "data" / "drift"
BASELINES_PYTHON = HERE / ".venv-baselines" / "bin" / "python"
DAY_REF, DAY_CUR = "2026-11-20", "2026-11-21"
SETTLED = 1_700_000_000  # an mtime long past: days no longer written
NUMERIC = [f"f{i:02d}" for i in range(15)]
CATEGORICAL = [f"c{i}" for i in range(5)]
LEVELS = np.array([f"L{i}" for i in range(10)])
LEVEL_P = np.array([0.2, 0.15, 0.12, 0.1, 0.1, 0.09, 0.08, 0.07, 0.05, 0.04])
# What changes in the current window, and how much: the answer key.
SHIFTS = {
    "f00": "mean +0.05 sd (small)",
    "f02": "lognormal scaled by 1.05 (small)",
    "f04": "sd x1.1 (small)",
    "f05": "Poisson rate 3 -> 3.3 (small, discrete)",
    "f07": "mean +0.5 sd",
    "c0": "3% of rows move from level L0 to L5 (small)",
    "c1": "new level NEW on 2% of rows",
}


def generate(rows: int, current: bool, seed: int) -> pd.DataFrame:
    """One window's features; ``current`` applies ``SHIFTS``."""
    rng = np.random.default_rng(seed)
    s = current
    data = {
        "f00": rng.normal(0.05 if s else 0.0, 1.0, rows),
        "f01": rng.normal(5, 2, rows),
        "f02": rng.lognormal(0, 0.5, rows) * (1.05 if s else 1.0),
        "f03": rng.uniform(0, 10, rows),
        "f04": rng.normal(100, 15 * (1.1 if s else 1.0), rows),
        "f05": rng.poisson(3.3 if s else 3.0, rows).astype(float),
        "f06": rng.exponential(2.0, rows),
        "f07": rng.normal(10 + (0.5 * 3 if s else 0.0), 3, rows),
        "f08": np.where(rng.random(rows) < 0.01, np.nan, rng.normal(0, 1, rows)),
        "f09": rng.gamma(2.0, 2.0, rows),
        "f10": rng.normal(0, 1, rows),
        "f11": rng.integers(0, 1000, rows).astype(float),
        "f12": rng.beta(2, 5, rows),
        "f13": rng.standard_t(5, rows),
        "f14": rng.lognormal(2, 1, rows),
    }
    for column in CATEGORICAL:
        data[column] = rng.choice(LEVELS, rows, p=LEVEL_P).astype(object)
    if s:
        c0 = data["c0"]
        c0[(c0 == "L0") & (rng.random(rows) < 0.03 / 0.2)] = "L5"
        c1 = data["c1"]
        c1[rng.random(rows) < 0.02] = "NEW"
    return pd.DataFrame(data)


def write_log(frame: pd.DataFrame, day: str, path: Path, prefix: str, seed: int) -> None:
    """The logger's lines for one day: ECS fields, features, prediction and score (from an unshifted feature)."""
    rng = np.random.default_rng(seed)
    rows = len(frame)
    start = np.datetime64(f"{day}T00:00:00", "ms")
    stamps = np.datetime_as_string(start + (np.arange(rows) * (86_400_000 // rows)).astype("timedelta64[ms]"))
    score = 1 / (1 + np.exp(-(frame["f10"].to_numpy() + rng.normal(0, 0.5, rows))))
    latency = rng.gamma(2, 5, rows)
    records = frame.to_dict("records")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for i, features in enumerate(records):
            features = {k: (None if isinstance(v, float) and v != v else v) for k, v in features.items()}
            event = {
                "@timestamp": stamps[i] + "Z",
                "log.level": "info",
                "message": "prediction",
                "ecs.version": "8.11.0",
                "event": {"dataset": "ml.prediction", "kind": "event", "outcome": "success"},
                "service": {"name": "bench-api", "version": "1.0.0", "environment": "bench"},
                "ml": {
                    "prediction_id": f"{prefix}-{i}",
                    "model": {"name": "bench", "version": "v1"},
                    "features": features,
                    "prediction": {"label": int(score[i] >= 0.5), "score": float(score[i])},
                    "latency_ms": float(latency[i]),
                },
            }
            fh.write(orjson.dumps(event) + b"\n")


def setup(data: Path, rows: int) -> None:
    """Write the log files and Parquet copies unless they exist for this size already."""
    meta = {"rows": rows, "numeric": NUMERIC, "categorical": CATEGORICAL, "shifted": sorted(SHIFTS), "version": 1}
    meta_path = data / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()) == meta:
        return
    started = time.perf_counter()
    for name, day, current, seed in (("reference", DAY_REF, False, 1), ("current", DAY_CUR, True, 2)):
        frame = generate(rows, current, seed)
        data.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(data / f"{name}.parquet")
        write_log(frame, day, data / "logs" / "bench-api" / f"predictions-{day}.ndjson", name[:3], seed + 10)
    meta_path.write_text(json.dumps(meta))
    print(
        f"setup: wrote {2 * rows:,} log lines and Parquet copies in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )


def run_ours(data: Path) -> dict:
    """Open the LocalStore over the log files and run the drift job; seconds, peak memory, flagged columns."""
    from analyzers.config.models import DriftConfig, ReferenceConfig
    from analyzers.jobs import drift
    from analyzers.store import LocalStore, Query
    from analyzers.timeutil import Window, parse_time

    before = peak_rss_mib()
    window = Window(parse_time(f"{DAY_CUR}T00:00:00Z"), parse_time(f"{DAY_CUR}T00:00:00Z") + timedelta(days=1))
    config = DriftConfig(reference=ReferenceConfig(last="1d"))
    start = time.perf_counter()
    with LocalStore(data / "logs", data / "state") as store:
        for day in (window.shift(-timedelta(days=1)), window):  # the store's scan of the files, timed apart
            store.count(Query(model="bench", window=day, outcome="success"))
        scanned = time.perf_counter()
        rss_scanned = peak_rss_mib()
        finding = drift.run(store, "bench", config, window)
    seconds = time.perf_counter() - start
    if finding.status == "error":
        raise RuntimeError(finding.error)
    columns = finding.to_dict()["features"]
    return {
        "tool": "predwatch",
        "seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_mib": before,
        "scan_seconds": scanned - start,
        "job_seconds": seconds - (scanned - start),
        "peak_rss_after_scan_mib": rss_scanned,
        "flagged": sorted(c["name"] for c in columns if c["drifted"]),
        "columns": {
            c["name"]: {k: c.get(k) for k in ("method", "effect_size_method", "effect_size", "p_value_adjusted")}
            for c in columns
        },
    }


def subprocess_json(command: list[str]) -> dict:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="predictions per window")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--part", choices=["ours"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part == "ours":
        sys.path.insert(0, str(HERE.parent))  # the repository, when run as a script from anywhere
        print(json.dumps(run_ours(args.data)))
        return
    data = args.data / str(args.rows)
    setup(data, args.rows)
    for path in (data / "logs").rglob("*.ndjson"):  # settled days, as yesterday's and today's files would be
        os.utime(path, (SETTLED, SETTLED))
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(
        "states measured: predwatch-cold = no parsed state (the JSON lines parsed, settled days); predwatch = a new"
        " process over the parsed state the cold run left (nothing parsed again)"
    )
    # First with no parsed days kept (the JSON is parsed), then again over the days the first run kept.
    shutil.rmtree(data / "state" / "parsed", ignore_errors=True)
    cold = subprocess_json([sys.executable, __file__, "--part", "ours", "--data", str(data)])
    warm = subprocess_json([sys.executable, __file__, "--part", "ours", "--data", str(data)])
    results = [warm, {**cold, "tool": "predwatch-cold"}]
    if not args.skip_baselines:
        if not BASELINES_PYTHON.exists():
            results.append({"error": f"{BASELINES_PYTHON} missing: create the baselines' virtualenv (see --help)"})
        for tool in ("evidently", "nannyml"):
            script = str(HERE / "bench_drift_baselines.py")
            results.append(
                {"tool": tool, **subprocess_json([str(BASELINES_PYTHON), script, tool, "--data", str(data)])}
            )
    report(results, args.rows)
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def report(results: list[dict], rows: int) -> None:
    shifted = set(SHIFTS)
    ours = results[0]
    print(
        f"drift of {rows:,} current vs {rows:,} reference predictions, {len(NUMERIC)} numeric + "
        f"{len(CATEGORICAL)} categorical features; shifted: {', '.join(sorted(shifted))}"
    )
    print(f"{'tool':<10} {'seconds':>8} {'peak MiB':>9} {'x time':>7} {'x mem':>6}  missed / false alarms")
    for r in results:
        if "error" in r:
            print(f"{r.get('tool', '?'):<10} error: {r['error']}")
            continue
        flagged = set(r["flagged"]) & (set(NUMERIC) | set(CATEGORICAL))
        missed, false = sorted(shifted - flagged), sorted(flagged - shifted)
        speed = r["seconds"] / ours["seconds"] if "seconds" in ours else float("nan")
        memory = r["peak_rss_mib"] / ours["peak_rss_mib"] if "peak_rss_mib" in ours else float("nan")
        print(
            f"{r['tool']:<10} {r['seconds']:8.1f} {r['peak_rss_mib']:9.0f} {speed:7.1f} {memory:6.1f}  "
            f"missed {missed or '-'} / false {false or '-'}"
        )
    for r in results[:2]:
        if "scan_seconds" in r:
            print(
                f"{r['tool']}: scan of the logs {r['scan_seconds']:.1f} s"
                f" (peak {r['peak_rss_after_scan_mib']:.0f} MiB), drift job {r['job_seconds']:.1f} s"
            )
    print(
        "(x time, x mem: the tool's seconds and peak memory over predwatch's; predwatch counts its scan of the logs;"
        " predwatch-cold parses the JSON lines, predwatch reads the days the cold run kept as Parquet)"
    )
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
