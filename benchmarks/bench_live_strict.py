"""The strict read under live writers: how fast several writer processes append, and what a parse of a big range
costs with the writers running and with them held, measured alternately in one run.

Three ``multiprocessing`` writers (``tests/live_writers.py``: logshipper's real formatter, one torn line, one line
that is not JSON, a feature first seen late) append to one service's daily file.  Once it holds ``--range-mib``,
a local store parses it; then, round after round, the writers append ``--range-mib`` more and the store parses the
new range, alternately while they keep writing (``with``) and once they are held (``without``: the file has
stopped growing).  What they append during a timed parse is parsed before the next round, untimed, so that
every timed range is one step.  Each parse is a ``count`` of the day, which brings the registry up to date
first; the strict reads it made (how they ended, the bytes of their range) are recorded by a spy on
``RangeParser._read_strictly``.

Printed: per parse, the condition, the range's MiB, the seconds (wall, and CPU of this process's threads),
MiB/s, the strict reads' outcomes and the writers' lines per second during the parse; then the medians per
condition, and the writers' rate alone (while no parse ran).  The state measured is said before the table.

Then (``--late-rounds``, no writers) one appended range of about 40 MiB, parsed cold, alternately clean and
holding a feature first seen two thirds of the way in (past the lines the strict read is told of): seconds each,
and the strict reads they took.

Run: ``python benchmarks/bench_live_strict.py [--rounds 4] [--range-mib 24] [--pause 0] [--late-rounds 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def newlines(path: Path, start: int, end: int) -> int:
    """Lines ended between two byte offsets of the file."""
    with open(path, "rb") as handle:
        handle.seek(start)
        return handle.read(end - start).count(b"\n")


def wait_for(path: Path, size: int, writers: object) -> int:
    """Wait until the file holds ``size`` bytes; its size."""
    while (now := path.stat().st_size) < size:
        if not writers.alive():  # type: ignore[attr-defined]
            raise SystemExit(f"the writers stopped at {now} bytes: raise the plan's lines")
        time.sleep(0.01)
    return now


def settled(path: Path, quiet_s: float = 0.3) -> int:
    """Wait until the file stops growing (the writers are held); its size."""
    size = path.stat().st_size
    while True:
        time.sleep(quiet_s)
        now = path.stat().st_size
        if now == size:
            return size
        size = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="parses per condition (with, without writers)")
    parser.add_argument("--range-mib", type=float, default=24.0, help="MiB appended before each parse")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds each writer rests after a batch of 500")
    parser.add_argument("--late-rounds", type=int, default=3, help="parses of each late-feature range (0: none)")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))  # the repository, when run as a script from anywhere
    from tests import live_writers

    with tempfile.TemporaryDirectory(prefix="bench-live-strict-reads-") as tmp:
        record = Path(tmp) / "strict-reads.txt"
        live_writers.record_strict_reads(setattr, record)
        live(args, record)
        if args.late_rounds:
            late_feature(args.late_rounds, record)


def live(args: argparse.Namespace, record: Path) -> None:
    """The writers and the alternating parses; ``record`` is where the strict reads are recorded."""

    from analyzers.store import LocalStore, Query, range_parse
    from analyzers.timeutil import Window
    from tests import live_writers

    step = int(args.range_mib * 2**20)
    plan = live_writers.Plan(
        writers=3, lines=10**8, batch=500, pause=args.pause, late_from=60_000, torn_at=20_000, text_at=40_000
    )
    window = Window("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z")
    print(
        f"state: cold registry, one daily file grown by {args.range_mib:g} MiB before each parse;"
        f" STRICT_MIN_BYTES {range_parse.STRICT_MIN_BYTES / 2**20:g} MiB; 3 writers, batches of 500,"
        f" pause {args.pause:g} s; store memory budget as shipped"
    )
    with tempfile.TemporaryDirectory(prefix="bench-live-strict-") as tmp:
        root = Path(tmp)
        logs = root / "logs"
        path = live_writers.log_path(logs)
        writers = live_writers.start_writers(logs, plan)
        rows = []
        alone_lines = alone_s = 0.0
        try:
            with LocalStore(logs, root / "state") as store:
                query = Query(live_writers.MODEL, window)
                for index in range(2 * args.rounds + 1):
                    condition = "first" if index == 0 else ("with", "without")[(index - 1) % 2]
                    if index:  # what the writers appended meanwhile is parsed first, untimed: each range is one step
                        writers.go.clear()
                        settled(path)
                        store.count(query)
                        writers.go.set()
                    began, start = time.monotonic(), store_parsed(root / "state")
                    size = wait_for(path, start + step, writers)
                    alone_lines += newlines(path, start, size)
                    alone_s += time.monotonic() - began
                    if condition != "with":
                        writers.go.clear()
                        settled(path)
                    seen = len(live_writers.strict_reads(record))
                    before = path.stat().st_size
                    clock, cpu = time.monotonic(), time.process_time()
                    store.count(query)
                    seconds, cpu = time.monotonic() - clock, time.process_time() - cpu
                    after = path.stat().st_size
                    reads = live_writers.strict_reads(record)[seen:]
                    rows.append(
                        {
                            "condition": condition,
                            "mib": (store_parsed(root / "state") - start) / 2**20,
                            "seconds": seconds,
                            "cpu": cpu,
                            "strict": ",".join(kind for _, kind, _ in reads) or "none",
                            "writer_lines_s": newlines(path, before, after) / seconds,
                        }
                    )
                    writers.go.set()
        finally:
            writers.join()
    written = list(writers.written)
    print(
        f"{'parse':>5} {'condition':>9} {'MiB':>7} {'s':>6} {'CPU s':>6} {'MiB/s':>6} {'writers lines/s':>15}"
        "  strict reads"
    )
    for number, row in enumerate(rows):
        print(
            f"{number:>5} {row['condition']:>9} {row['mib']:7.1f} {row['seconds']:6.2f} {row['cpu']:6.2f}"
            f" {row['mib'] / row['seconds']:6.1f} {row['writer_lines_s']:15.0f}  {row['strict']}"
        )
    for condition in ("with", "without"):
        chosen = [r for r in rows if r["condition"] == condition]
        print(
            f"median {condition:>7} writers: {statistics.median(r['seconds'] for r in chosen):.2f} s per parse"
            f" ({statistics.median(r['cpu'] for r in chosen):.2f} s CPU),"
            f" {statistics.median(r['mib'] / r['seconds'] for r in chosen):.1f} MiB/s"
        )
    print(
        f"writers alone (no parse running): {alone_lines / alone_s:.0f} lines/s; lines written in all: {sum(written)}"
    )


def late_feature(rounds: int, record: Path) -> None:
    """A range of 150,000 lines appended after 20,000 parsed ones, clean or with ``features.late`` on one line
    two thirds in, parsed cold, alternately."""
    import orjson

    from analyzers.store import LocalStore, Query
    from analyzers.timeutil import Window
    from tests import live_writers
    from tests.store_contract import prediction

    window = Window("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z")
    lines = [orjson.dumps(prediction(f"a{i}", f"2026-11-20T{i % 24:02d}:00:00Z")) for i in range(170_000)]
    with_late = list(lines)
    late = prediction("late", "2026-11-20T01:00:00Z")
    late["ml"]["features"]["late"] = 1.5
    with_late[120_000] = orjson.dumps(late)
    times: dict[str, list[float]] = {"clean": [], "late feature": []}
    print(f"one appended range of {sum(map(len, lines[20_000:])) / 2**20:.1f} MiB, parsed cold:")
    for _ in range(rounds):
        for name, chosen in (("clean", lines), ("late feature", with_late)):
            with tempfile.TemporaryDirectory(prefix="bench-late-") as tmp:
                root = Path(tmp)
                seen = len(live_writers.strict_reads(record))
                path = root / "logs" / "svc" / "predictions-2026-11-20.ndjson"
                path.parent.mkdir(parents=True)
                path.write_bytes(b"\n".join(chosen[:20_000]) + b"\n")
                with LocalStore(root / "logs", root / "state") as store:
                    store.count(Query("fraud", window))
                with open(path, "ab") as out:
                    out.write(b"\n".join(chosen[20_000:]) + b"\n")
                with LocalStore(root / "logs", root / "state") as store:
                    clock = time.monotonic()
                    store.count(Query("fraud", window))
                    times[name].append(time.monotonic() - clock)
                reads = ",".join(kind for _, kind, _ in live_writers.strict_reads(record)[seen:]) or "none"
                print(f"  {name:>12}: {times[name][-1]:.2f} s  strict reads {reads}")
    for name, seconds in times.items():
        print(f"median {name}: {statistics.median(seconds):.2f} s")


def store_parsed(state: Path) -> int:
    """Bytes of the day's file the published registry has parsed."""
    from analyzers.store.parsed_state import RegistryState

    registries = list((state / "parsed").glob("*/svc/registry.json"))
    if not registries:
        return 0
    (registry,) = registries
    return sum(entry.size for entry in RegistryState.from_json(registry.read_bytes()).files.values())


if __name__ == "__main__":
    main()
