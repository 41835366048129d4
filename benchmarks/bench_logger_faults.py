"""What the logger loses under faults, and whether it says so: the figures of the logger's fault model.

Each scenario runs in fresh processes against the ``logshipper`` of ``--tree`` (default: this checkout),
so the same script measures an older checkout for comparison:

- ``multiprocessing``: two ``multiprocessing.Process`` workers per start method (fork, forkserver,
  spawn) each log 2,000 predictions and return normally; lines written of 4,000.
- ``sigkill``: a writer of 3.3 KB lines (unpaced) is SIGKILLed while a second writer logs small lines
  into the same file; trials in which the surviving writer lost a line.
- ``disk_full``: a 4 MiB tmpfs, nearly full, (needs root; skipped otherwise) fills, then space is freed; 5,000 events.
- ``fsize``: ``RLIMIT_FSIZE`` (``ulimit -f``) 256 KiB, 3,000 events; then the same with the limit raised
  half-way ("space freed").
- ``read_only``: the service directory is not writable (permissions; run without ``CAP_DAC_OVERRIDE``
  through ``setpriv`` when root); 1,000 events.
- ``stalled``: the writer blocks forever (a pipe nobody reads); 150,000 events, exit.
- ``eio``: a write that stops half-way, then fails with EIO; 1,000 events; duplicated lines.
- ``configure``: ``configure()`` with a log directory that cannot be created.
- ``sampling``: ``sample_rate=0.2`` over 5,000 predictions of 1,000 entities, the README's usage
  (``plog.feedback(pid, label)``) in another process that has only the ids; orphans and lost labels.

Every scenario prints what is in the files (lines, lines that do not parse and where they are), what
the process said on stderr, and ``logshipper.stats()`` where the checkout has it.

Run: ``python benchmarks/bench_logger_faults.py [--tree PATH] [--trials 50] [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent

STATS = r"""
def _stats():
    import logshipper
    if hasattr(logshipper, "stats"):
        import dataclasses
        return dataclasses.asdict(logshipper.stats())
    return None
"""

MULTIPROCESSING = r"""
import json, multiprocessing, sys
import logshipper

def work(log_dir, worker, n):
    logshipper.configure(service="svc", log_dir=log_dir)
    plog = logshipper.PredictionLogger(model="m")
    for i in range(n):
        plog.prediction({"worker": worker, "i": i}, 0)

def work_configured_before_fork(worker, n):
    plog = logshipper.PredictionLogger(model="m")
    for i in range(n):
        plog.prediction({"worker": worker, "i": i}, 0)

if __name__ == "__main__":
    method, log_dir, before = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    ctx = multiprocessing.get_context(method)
    if before:
        logshipper.configure(service="svc", log_dir=log_dir)
        procs = [ctx.Process(target=work_configured_before_fork, args=(w, 2000)) for w in range(2)]
    else:
        procs = [ctx.Process(target=work, args=(log_dir, w, 2000)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    print(json.dumps([p.exitcode for p in procs]))
"""

SURVIVOR = r"""
import os, sys, time, logshipper
log_dir, stop = sys.argv[1], sys.argv[2]
logshipper.configure(service="svc", log_dir=log_dir)
plog = logshipper.PredictionLogger(model="m")
n = 0
while not os.path.exists(stop):
    plog.prediction({"who": "survivor", "i": n}, 0, timestamp=1772409600)
    n += 1
    if n % 50 == 0:
        time.sleep(0.001)
logshipper.shutdown()
print(n)
"""

VICTIM = r"""
import sys, logshipper
logshipper.configure(service="svc", log_dir=sys.argv[1])
plog = logshipper.PredictionLogger(model="m")
text = "v" * 3300
i = 0
while True:
    plog.prediction({"who": "victim", "i": i, "text": text}, 0, timestamp=1772409600)
    i += 1
"""

FILL = (
    STATS
    + r"""
import json, os, resource, sys, time, logshipper
log_dir, n, mode, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
if mode.startswith("fsize"):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(arg), hard))
raised = None
try:
    logshipper.configure(service="svc", log_dir=log_dir)
except Exception as exc:
    raised = f"{type(exc).__name__}: {exc}"
    print(json.dumps({"raised": raised, "stats": _stats()}))
    sys.exit(0)
plog = logshipper.PredictionLogger(model="m")
for i in range(n):
    plog.prediction({"i": i, "pad": "p" * 200}, 0, timestamp=1772409600)
    if i % 100 == 99:
        time.sleep(0.002)  # a service's pace: many small batches, as in production
    if i == n // 2 - 1 and mode in ("freed", "fsize_freed"):
        logshipper.flush()
        if mode == "freed":
            os.remove(arg)
        else:
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
logshipper.shutdown()
print(json.dumps({"raised": raised, "stats": _stats()}))
"""
)

STALLED = (
    STATS
    + r"""
import atexit, json, os, sys, logshipper
sink, where = sys.argv[1], sys.argv[2]
def report():
    print(json.dumps({"stats": _stats()}), flush=True)
atexit.register(report)  # registered first: runs after the logger's own exit handler
if sink == "stream":
    r, w = os.pipe()  # nobody reads: the writer blocks once the pipe's buffer is full
    pipeline = logshipper.configure(service="svc", stream=os.fdopen(w, "wb"))
else:
    os.makedirs(os.path.join(where, "svc"))
    os.mkfifo(os.path.join(where, "svc", "predictions-2026-03-02.ndjson"))  # a file that never takes a byte
    pipeline = logshipper.configure(service="svc", log_dir=where)
plog = logshipper.PredictionLogger(model="m")
for i in range(150_000):
    plog.prediction({"i": i}, 0, timestamp=1772409600)
if not hasattr(logshipper, "stats"):
    print(json.dumps({"dropped_attribute": pipeline.dropped}), flush=True)
"""
)

EIO = (
    STATS
    + r"""
import errno, json, os, sys, logshipper
real_write, state = os.write, {"calls": 0}
def failing_write(fd, data):
    if os.readlink(f"/proc/self/fd/{fd}").endswith(".ndjson") and len(data) > 10_000 and state["calls"] < 2:
        state["calls"] += 1
        if state["calls"] == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.EIO, "Input/output error")
    return real_write(fd, data)
os.write = failing_write
logshipper.configure(service="svc", log_dir=sys.argv[1])
plog = logshipper.PredictionLogger(model="m")
for i in range(1000):
    plog.prediction({"i": i, "pad": "p" * 100}, 0, timestamp=1772409600)
logshipper.shutdown()
print(json.dumps({"stats": _stats()}))
"""
)

PREDICT = r"""
import sys, logshipper
log_dir, rate, ids_out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
logshipper.configure(service="predictor", log_dir=log_dir)
plog = logshipper.PredictionLogger(model="m", sample_rate=rate)
with open(ids_out, "w") as out:
    for i in range(5000):
        pid = plog.prediction({"i": i}, i % 2, entity_id=f"user-{i % 1000}")
        out.write(pid + "\n")
logshipper.shutdown()
"""

FEEDBACK = r"""
import sys, logshipper
log_dir, rate, ids_in = sys.argv[1], float(sys.argv[2]), sys.argv[3]
logshipper.configure(service="labeller", log_dir=log_dir)
plog = logshipper.PredictionLogger(model="m", sample_rate=rate)
for pid in open(ids_in).read().split():
    plog.feedback(pid, label=1)
logshipper.shutdown()
"""


def run(code: str, *args: str, tree: Path, timeout: float = 300, prefix: tuple[str, ...] = ()) -> tuple[Any, str]:
    """Run ``code`` in a fresh interpreter importing logshipper from ``tree``; (its JSON output, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory() as scripts:
        script = Path(scripts) / "scenario.py"  # a file, so that spawned children can import its functions
        script.write_text(code)
        os.chmod(scripts, 0o755)
        done = subprocess.run(
            [*prefix, sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=timeout
        )
    out = done.stdout.strip().splitlines()
    parsed = None
    for line in reversed(out):
        try:
            parsed = json.loads(line)
            break
        except ValueError:
            continue
    return parsed, done.stderr


def scan(directory: Path) -> dict[str, Any]:
    """Lines in the NDJSON files under ``directory``; those that do not parse, and whether one is mid-file."""
    total, bad, bad_mid = 0, 0, 0
    ids: list[str] = []
    for path in sorted(directory.rglob("*.ndjson")):
        raw = path.read_bytes()
        lines = raw.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for k, line in enumerate(lines):
            total += 1
            try:
                ids.append(json.loads(line)["ml"]["prediction_id"])
            except (ValueError, KeyError, TypeError):
                bad += 1
                if k < len(lines) - 1:
                    bad_mid += 1
    return {"lines": total, "bad": bad, "bad_mid_file": bad_mid, "ids": ids}


def short(stderr: str, limit: int = 3) -> list[str]:
    lines = [x for x in stderr.splitlines() if x.strip()]
    return lines[:limit] + ([f"... {len(lines) - limit} more line(s)"] if len(lines) > limit else [])


def multiprocessing_children(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method, before in (("fork", True), ("fork", False), ("forkserver", False), ("spawn", False)):
        with tempfile.TemporaryDirectory() as tmp:
            codes, _stderr = run(MULTIPROCESSING, method, tmp, "1" if before else "0", tree=tree)
            name = f"{method} (configured before the fork)" if before else f"{method} (configured in the child)"
            out[name] = {"written": scan(Path(tmp))["lines"], "of": 4000, "exit_codes": codes}
    return out


def sigkill(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    rng = random.Random(args.seed)
    trials_losing, lost_total, victim_torn, survivor_logged = 0, 0, 0, 0
    for _ in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp:
            stop = Path(tmp) / "stop"
            survivor = subprocess.Popen(
                [sys.executable, "-c", SURVIVOR, tmp, str(stop)], stdout=subprocess.PIPE, text=True, env=env
            )
            victim = subprocess.Popen([sys.executable, "-c", VICTIM, tmp], env=env)
            day = Path(tmp) / "svc" / "predictions-2026-03-02.ndjson"
            while not (day.exists() and day.stat().st_size > 200_000):
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.3))
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            time.sleep(0.1)
            stop.touch()
            logged = int(survivor.communicate(timeout=120)[0].strip())
            kept = 0
            for line in day.read_bytes().splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    victim_torn += 1
                    continue
                kept += event["ml"]["features"]["who"] == "survivor"
            survivor_logged += logged
            lost = logged - kept
            lost_total += lost
            trials_losing += lost > 0
    return {
        "trials": args.trials,
        "trials_where_the_survivor_lost_a_line": trials_losing,
        "survivor_lines_lost": lost_total,
        "survivor_lines_logged": survivor_logged,
        "lines_that_do_not_parse": victim_torn,
    }


def disk_full(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    if os.geteuid() != 0:
        return {"skipped": "mounting a tmpfs needs root"}
    mount = Path(tempfile.mkdtemp())
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        mount.rmdir()
        return {"skipped": f"cannot mount a tmpfs: {exc}"}
    try:
        filler = mount / "filler"
        filler.write_bytes(b"x" * 3_300_000)  # leaves room for about 1,300 of the 5,000 lines
        result, stderr = run(FILL, str(mount / "logs"), "5000", "freed", str(filler), tree=tree)
        found = scan(mount / "logs")
        return _fill_summary(found, 5000, result, stderr)
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def fsize(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for mode in ("fsize", "fsize_freed"):
        with tempfile.TemporaryDirectory() as tmp:
            result, stderr = run(FILL, tmp, "3000", mode, str(256 * 1024), tree=tree)
            out["limit reached" if mode == "fsize" else "limit raised half-way"] = _fill_summary(
                scan(Path(tmp)), 3000, result, stderr
            )
    return out


def _unprivileged() -> tuple[str, ...]:
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        raise RuntimeError("root without setpriv: permissions cannot be tested")
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


def read_only(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        service = Path(tmp) / "svc"
        service.mkdir()
        service.chmod(0o555)
        result, stderr = run(FILL, tmp, "1000", "plain", "-", tree=tree, prefix=_unprivileged())
        service.chmod(0o755)
        return _fill_summary(scan(Path(tmp)), 1000, result, stderr)


def stalled(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out: dict[str, Any] = {}
    for sink in ("stream", "file"):
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, "-c", STALLED, sink, tmp]
            started = time.perf_counter()
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            try:
                stdout, stderr = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
                out[sink] = {"logged": 150_000, "hung_at_exit": "killed after 60 s", "stderr": short(stderr)}
                continue
            parsed = [json.loads(x) for x in stdout.splitlines() if x.startswith("{")]
            out[sink] = {
                "logged": 150_000,
                "reported": parsed,
                "stderr": short(stderr),
                "exit_code": proc.returncode,
                "exit_seconds": round(time.perf_counter() - started, 1),
            }
    return out


def eio(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        result, stderr = run(EIO, tmp, tree=tree)
        found = scan(Path(tmp))
        duplicates = len(found["ids"]) - len(set(found["ids"]))
        summary = _fill_summary(found, 1000, result, stderr)
        summary["duplicated_lines"] = duplicates
        return summary


def configure_uncreatable(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        blocker = Path(tmp) / "a-file"
        blocker.write_text("not a directory")
        result, stderr = run(FILL, str(blocker / "logs"), "100", "plain", "-", tree=tree)
        return {
            "configure_raised": (result or {}).get("raised"),
            "stats": (result or {}).get("stats"),
            "stderr": short(stderr),
        }


def sampling(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for rate in (0.2, 0.05, 0.5):
        with tempfile.TemporaryDirectory() as tmp:
            ids = Path(tmp) / "ids.txt"
            run(PREDICT, tmp, str(rate), str(ids), tree=tree)
            run(FEEDBACK, tmp, str(rate), str(ids), tree=tree)
            kept: set[str] = set()
            labelled: list[str] = []
            for path in Path(tmp).rglob("*.ndjson"):
                for line in path.read_text().splitlines():
                    event = json.loads(line)
                    if event["event"]["dataset"] == "ml.feedback":
                        labelled.append(event["ml"]["prediction_id"])
                    else:
                        kept.add(event["ml"]["prediction_id"])
            matched = sum(pid in kept for pid in labelled)
            out[f"rate {rate}"] = {
                "predictions": 5000,
                "kept": len(kept),
                "feedback_lines": len(labelled),
                "feedback_for_a_kept_prediction": matched,
                "orphans": len(labelled) - matched,
                "labels_lost": len(kept - set(labelled)),
            }
    return out


def _fill_summary(found: dict[str, Any], logged: int, result: Any, stderr: str) -> dict[str, Any]:
    distinct = len(set(found["ids"]))
    files = {k: v for k, v in found.items() if k != "ids"}
    summary = {"logged": logged, **files, "lost": logged - distinct, "stats": (result or {}).get("stats")}
    return {**summary, "stderr": short(stderr)}


SCENARIOS: dict[str, Callable[[Path, argparse.Namespace], dict[str, Any]]] = {
    "multiprocessing": multiprocessing_children,
    "sigkill": sigkill,
    "disk_full": disk_full,
    "fsize": fsize,
    "read_only": read_only,
    "stalled": stalled,
    "eio": eio,
    "configure": configure_uncreatable,
    "sampling": sampling,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=HERE, help="the checkout whose logshipper is measured")
    parser.add_argument("--trials", type=int, default=50, help="SIGKILL trials")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="run these scenarios only")
    args = parser.parse_args()
    results = {}
    for name, scenario in SCENARIOS.items():
        if args.only and name not in args.only:
            continue
        results[name] = scenario(args.tree.resolve(), args)
        print(json.dumps({name: results[name]}, indent=2), flush=True)


if __name__ == "__main__":
    main()
