"""Cost of one ``PredictionLogger.prediction()`` call, and multi-process throughput into a daily file.

Part 1 logs the same 20-feature prediction (15 numeric, 5 categorical) N times, each variant in a fresh
process, writing to a file in a temporary directory:

- ``pjl_orjson``: python-json-logger's ``OrjsonFormatter`` on a ``FileHandler``, the dict as ``extra``
  (the baseline: what a service would do without predwatch);
- ``ecs_logging``: ecs-logging's ``StdlibFormatter`` on a ``FileHandler``, same ``extra``;
- ``predwatch``: ``configure(log_dir=...)`` + ``PredictionLogger.prediction(...)``.

It reports the caller thread's CPU per call (``time.thread_time``) and the whole process's CPU per call
(``time.process_time``, which includes predwatch's writer thread) up to the moment every line is on disk.

Part 2 runs 4 processes writing ``--lines`` predictions each into one service directory and reports
lines per second and whether every line parses.

Run: ``python benchmarks/bench_logging.py [--calls 100000] [--lines 100000]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, logging, sys, time, random
variant, calls, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(0)
rows = []
for i in range(1000):
    features = {f"num_{j}": rng.gauss(0, 1) for j in range(15)}
    features.update({f"cat_{j}": rng.choice(["alpha", "beta", "gamma", "delta"]) for j in range(5)})
    rows.append(features)

if variant == "predwatch":
    import logshipper
    logshipper.configure(service="bench", log_dir=out)
    plog = logshipper.PredictionLogger(model="fraud", version="v1")
    call = lambda f, i: plog.prediction(f, i & 1, score=0.5, groups={"region": "EU"}, entity_id="user", latency_ms=3.2)
    finish = logshipper.shutdown
else:
    handler = logging.FileHandler(f"{out}/plain.ndjson")
    if variant == "pjl_orjson":
        from pythonjsonlogger.orjson import OrjsonFormatter
        handler.setFormatter(OrjsonFormatter(timestamp=True))
    else:
        import ecs_logging
        handler.setFormatter(ecs_logging.StdlibFormatter())
    logger = logging.getLogger("bench")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    def call(f, i):
        logger.info("prediction", extra={"ml": {"model": {"name": "fraud", "version": "v1"}, "features": f,
                    "prediction": {"label": i & 1, "score": 0.5}, "groups": {"region": "EU"},
                    "entity_id": "user", "latency_ms": 3.2}})
    finish = handler.close

for i in range(2000):  # warm-up
    call(rows[i % 1000], i)
t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
for i in range(calls):
    call(rows[i % 1000], i)
c1 = time.thread_time()
finish()
t1, p1 = time.perf_counter(), time.process_time()
print(json.dumps({"caller_us": (c1 - c0) / calls * 1e6, "total_us": (p1 - p0) / calls * 1e6,
                  "wall_us": (t1 - t0) / calls * 1e6}))
"""

WRITER = r"""
import sys, logshipper
out, lines, worker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
logshipper.configure(service="bench", log_dir=out)
plog = logshipper.PredictionLogger(model="fraud")
features = {f"num_{j}": j * 0.5 for j in range(15)} | {f"cat_{j}": "alpha" for j in range(5)}
for i in range(lines):
    plog.prediction(features, i & 1, score=0.5, entity_id=worker)
logshipper.shutdown(timeout=600)
"""


def per_call(variant: str, calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        result = subprocess.run([sys.executable, "-c", CHILD, variant, str(calls), out], capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(result.stderr)
        return json.loads(result.stdout)


def throughput(lines: int, writers: int = 4) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, out, str(lines), str(w)]) for w in range(writers)]
        codes = [p.wait() for p in procs]
        elapsed = time.perf_counter() - started
        total, broken = 0, 0
        for path in Path(out).rglob("*.ndjson"):
            for raw in path.read_bytes().splitlines():
                total += 1
                try:
                    json.loads(raw)
                except ValueError:
                    broken += 1
        return {
            "writers": writers,
            "exit_codes": codes,
            "lines": total,
            "broken": broken,
            "lines_per_s": total / elapsed,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    results = {v: per_call(v, args.calls) for v in ("pjl_orjson", "ecs_logging", "predwatch")}
    base = results["pjl_orjson"]
    print(f"{'variant':<12} {'caller µs':>10} {'total CPU µs':>13} {'caller/base':>12} {'total/base':>11}")
    for name, r in results.items():
        print(
            f"{name:<12} {r['caller_us']:>10.2f} {r['total_us']:>13.2f} "
            f"{r['caller_us'] / base['caller_us']:>12.2f} {r['total_us'] / base['total_us']:>11.2f}"
        )
    print(json.dumps({"per_call": results, "throughput": throughput(args.lines)}, indent=2))


if __name__ == "__main__":
    main()
