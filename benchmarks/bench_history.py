"""Local store over long histories: windows of 7 to 730 daily files at 200 to 20,000 predictions a day.

For each cell (days x predictions a day) the logger's daily files are generated once (a scored binary
classifier with five numeric and two categorical features, a group attribute, and each prediction's
feedback the same day), then backdated so that every day is settled (no file is still being written: a
warm run reads what the cold run kept and compacted, it does not parse again).  Each job (drift,
fairness, performance, over a window of all the cell's days) runs in a fresh process, first cold (no
parsed state: the JSON is parsed, then compacted) and then warm, under the default memory budget (256MB);
each prints seconds, peak resident memory and the finding's status; ``all`` runs the three jobs in one
process, as ``predwatch analyze`` does.

Run: ``python benchmarks/bench_history.py`` for the whole grid (long: cells over ``--max-gb`` of logs are
skipped), or pick cells: ``--days 7,365 --per-day 2000 --jobs drift,fairness,performance``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import orjson
from peak_memory import peak_rss_mib  # benchmarks/, on the path when run as a script

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "history"
FIRST_DAY = date(2024, 1, 1)
SETTLED = 1_700_000_000  # mtime given to every generated file: long untouched
BYTES_PER_LINE = 560  # about, prediction and feedback lines together per prediction (for skipping big cells)
JOBS = ("drift", "fairness", "performance")
ALL = "all"  # the three jobs in one process, as one `predwatch analyze` runs them (windows built once)


def cell_dir(days: int, per_day: int) -> Path:
    return DATA / f"{days}x{per_day}"


def generate(days: int, per_day: int) -> Path:
    """The cell's log files (written once; a marker says they are complete)."""
    logs = cell_dir(days, per_day) / "logs"
    marker = logs / ".complete"
    if marker.exists():
        return logs
    shutil.rmtree(logs, ignore_errors=True)
    folder = logs / "svc"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(days * 100_000 + per_day)
    regions = np.array(["EU", "US", "APAC"])
    levels = np.array([f"L{i}" for i in range(8)])
    for d in range(days):
        day = FIRST_DAY + timedelta(days=d)
        numeric = rng.normal(size=(per_day, 5))
        categorical = rng.integers(0, 8, size=(per_day, 2))
        score = 1 / (1 + np.exp(-(numeric[:, 0] + rng.normal(0, 0.7, per_day))))
        label = (rng.random(per_day) < score).astype(int)
        region = regions[rng.integers(0, 3, per_day)]
        seconds = np.sort(rng.integers(0, 86_000, per_day))
        lines = []
        for i in range(per_day):
            clock = f"{day}T{seconds[i] // 3600:02d}:{seconds[i] // 60 % 60:02d}:{seconds[i] % 60:02d}Z"
            pid = f"{d}-{i}"
            features = {f"n{j}": float(numeric[i, j]) for j in range(5)}
            features.update({f"c{j}": str(levels[categorical[i, j]]) for j in range(2)})
            lines.append(
                orjson.dumps(
                    {
                        "@timestamp": clock,
                        "log.level": "info",
                        "message": "prediction",
                        "event": {"dataset": "ml.prediction", "kind": "event", "outcome": "success"},
                        "service": {"name": "svc"},
                        "ml": {
                            "prediction_id": pid,
                            "model": {"name": "m", "version": "v1"},
                            "features": features,
                            "prediction": {"label": int(score[i] > 0.5), "score": float(score[i])},
                            "groups": {"region": str(region[i])},
                            "latency_ms": 5.0,
                        },
                    }
                )
            )
            lines.append(
                orjson.dumps(
                    {
                        "@timestamp": clock,
                        "event": {"dataset": "ml.feedback", "kind": "event"},
                        "ml": {"prediction_id": pid, "model": {"name": "m"}, "label": int(label[i])},
                    }
                )
            )
        path = folder / f"predictions-{day}.ndjson"
        path.write_bytes(b"\n".join(lines) + b"\n")
        os.utime(path, (SETTLED, SETTLED))
    marker.touch()
    return logs


def job_config(name: str, days: int) -> dict:
    window = f"{days}d"
    first, second = FIRST_DAY.isoformat(), (FIRST_DAY + timedelta(days=1)).isoformat()
    return {
        "drift": {"window": window, "reference": {"start": first, "end": second}},
        "fairness": {"window": window, "groups": ["region"], "min_group_size": 10},
        # the first day as reference: no history before it to compare with
        "performance": {"window": window, "min_labels": 10, "reference": {"start": first, "end": second}},
    }[name]


def measure(days: int, per_day: int, job: str, memory_limit: str) -> dict:
    """One job in this process over the cell's whole history: seconds, peak memory, status."""
    sys.path.insert(0, str(HERE.parent))
    from analyzers.config.models import Config
    from analyzers.runner import run_jobs
    from analyzers.store import LocalStore

    logs = cell_dir(days, per_day) / "logs"
    names = JOBS if job == ALL else (job,)
    config = Config.model_validate({"models": {"m": {name: job_config(name, days) for name in names}}})
    end = FIRST_DAY + timedelta(days=days)
    start, cpu = time.perf_counter(), time.process_time()
    with LocalStore(logs, cell_dir(days, per_day) / "state", memory_limit=memory_limit) as store:
        findings = run_jobs(store, config, at=f"{end}T00:00:00Z")
    seconds = time.perf_counter() - start
    worst = next((f for f in findings if f.status == "error"), findings[0])
    return {
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,  # every thread's: less sensitive to other load than seconds
        "peak_mib": peak_rss_mib(),
        "status": worst.status,
        "error": worst.error,
        "lines": worst.quality.report.lines if worst.quality and worst.quality.report else None,
    }


def run(days: int, per_day: int, job: str, memory_limit: str) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--measure",
            job,
            "--days",
            str(days),
            "--per-day",
            str(per_day),
            "--memory-limit",
            memory_limit,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {
            "seconds": float("nan"),
            "cpu_seconds": float("nan"),
            "peak_mib": float("nan"),
            "status": "crashed",
            "error": done.stderr[-300:],
        }
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", default="7,30,90,365,730", help="comma-separated window lengths in daily files")
    parser.add_argument("--per-day", default="200,2000,20000", help="comma-separated predictions a day")
    parser.add_argument("--jobs", default="drift,fairness,performance,all", help="'all': the three in one process")
    parser.add_argument("--states", default="cold,warm", help="cold (parse from nothing), warm (parsed state kept)")
    parser.add_argument("--max-gb", type=float, default=15.0, help="skip cells with more logs than this")
    parser.add_argument("--memory-limit", default="256MB")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(int(args.days), int(args.per_day), args.measure, args.memory_limit)))
        return
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print("state measured: cold = no parsed state (JSON parsed, settled days compacted); warm = the state the cold")
    print(f"run left, every file settled (backdated), nothing parsed again; memory budget {args.memory_limit}")
    jobs = args.jobs.split(",")
    states = args.states.split(",")
    header = f"{'days':>5} {'per day':>8} {'rows':>10} {'logs MiB':>9} {'job':<12}"
    for state in states:
        header += f" {state + ' s':>9} {'cpu s':>6} {state + ' MiB':>10} {'status':<8}"
    print(header)
    results = []
    for days in (int(d) for d in args.days.split(",")):
        for per_day in (int(p) for p in args.per_day.split(",")):
            if days * per_day * BYTES_PER_LINE / 1e9 > args.max_gb:
                print(f"{days:>5} {per_day:>8} skipped: about {days * per_day * BYTES_PER_LINE / 1e9:.0f} GB of logs")
                continue
            logs = generate(days, per_day)
            size = sum(p.stat().st_size for p in logs.glob("*/*.ndjson")) / 2**20
            if "cold" not in states and not (cell_dir(days, per_day) / "state").exists():
                print(f"{days:>5} {per_day:>8} no parsed state yet: its first warm run parses the logs")
            for job in jobs:
                row = f"{days:>5} {per_day:>8} {days * per_day:>10,} {size:>9.0f} {job:<12}"
                outcome: dict = {"days": days, "per_day": per_day, "rows": days * per_day, "job": job}
                for state in states:
                    if state == "cold":
                        shutil.rmtree(cell_dir(days, per_day) / "state", ignore_errors=True)
                    measured = run(days, per_day, job, args.memory_limit)
                    outcome[state] = measured
                    row += f" {measured['seconds']:>9.2f} {measured['cpu_seconds']:>6.1f}"
                    row += f" {measured['peak_mib']:>10.0f} {measured['status']:<8}"
                print(row, flush=True)
                results.append(outcome)
    report(results, states)
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(json.dumps(results, default=str))


def report(results: list[dict], states: list[str]) -> None:
    """Warm time of each long window against the 7-day cell with about the same rows, and the three jobs together."""
    if "warm" not in states:
        return
    warm: dict[tuple[int, int], float] = {}
    for r in results:
        if r["job"] == ALL:
            seconds, cpu = r["warm"]["seconds"], r["warm"]["cpu_seconds"]
            cell = f"{r['days']} days x {r['per_day']}/day"
            print(f"warm, the three jobs in one process: {cell}: {seconds:.2f} s ({cpu:.1f} s CPU)")
            continue
        key = (r["days"], r["per_day"])
        warm[key] = warm.get(key, 0.0) + r["warm"]["seconds"]
    sevens = {per_day * 7: t for (days, per_day), t in warm.items() if days == 7}
    for (days, per_day), seconds in sorted(warm.items()):
        print(f"warm, the three jobs in three processes: {days} days x {per_day}/day: {seconds:.2f} s", end="")
        rows = days * per_day
        near = [(abs(r - rows) / rows, r, t) for r, t in sevens.items() if days != 7 and abs(r - rows) / rows <= 0.3]
        if near:
            _, seven_rows, seven = min(near)
            print(f" = {seconds / seven:.2f}x the 7-day cell with {seven_rows:,} rows ({seven:.2f} s)", end="")
        print()
    failed = [r for r in results for s in states if r[s]["status"] not in ("ok", "alert")]
    print(f"cells not ok: {len(failed)}" + "".join(f"\n  {r['days']}x{r['per_day']} {r['job']}" for r in failed))


if __name__ == "__main__":
    main()
