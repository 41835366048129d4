"""Writer processes for live tests and benchmarks: several ``multiprocessing`` children append predictions to one
service's daily file through logshipper's real formatter, while two more leave the odd lines services leave (a
line torn by a writer killed mid-write, a line that is not JSON); and a spy on the store's strict reads.

Every prediction's ``entity_id`` names its writer and its index (``w1-42``), so that what a reader got can be
checked line for line against what was written.
"""

from __future__ import annotations

import fcntl
import io
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import orjson

import logshipper
from analyzers.store import range_parse

SERVICE, MODEL = "svc", "m"
DAY = datetime(2026, 11, 20, tzinfo=timezone.utc)
LATE_EVERY = 97  # one line in this many carries the late feature, once it has started
TEXT_LINE = b"Traceback (most recent call last):"  # a line a service's stray print leaves in its log
TORN_AT = "2026-11-20T23:59:58.777Z"  # the torn line's time (no writer's line has milliseconds)
_WAIT_S = 120.0  # the odd writers give up when the writers never get to their line


@dataclass(frozen=True)
class Plan:
    """What the writers write: at most ``lines`` predictions each (until told to stop), flushed every ``batch``
    and then resting ``pause`` seconds; writer 0 adds ``features.late`` from its line ``late_from``; writer 1
    lets the torn line be written after its line ``torn_at`` and the text line after ``text_at``."""

    writers: int
    lines: int
    batch: int
    pause: float
    late_from: int
    torn_at: int
    text_at: int

    def late(self, writer: int, index: int) -> bool:
        return writer == 0 and index >= self.late_from and index % LATE_EVERY == 0

    def entities(self, written: list[int]) -> set[str]:
        """The lines of writers that wrote ``written`` lines each."""
        return {entity(w, i) for w, n in enumerate(written) for i in range(n)}

    def late_count(self, written: list[int]) -> int:
        return sum(self.late(0, i) for i in range(written[0]))


def entity(writer: int, index: int) -> str:
    return f"w{writer}-{index}"


def log_path(log_dir: Path) -> Path:
    return log_dir / SERVICE / f"predictions-{DAY.date().isoformat()}.ndjson"


def _write(
    log_dir: str, writer: int, plan: Plan, milestones: dict[int, Event], go: Event, stop: Event, written: Any
) -> None:
    """One writer process: predictions through ``PredictionLogger`` until ``plan.lines`` or ``stop``; between
    batches it waits on ``go``, and it sets each of ``milestones`` once that many lines are written; what it
    wrote goes in ``written[writer]``."""
    logshipper.configure(service=SERVICE, log_dir=log_dir)
    plog = logshipper.PredictionLogger(model=MODEL, version="v1")
    for index in range(plan.lines):
        features: dict[str, Any] = {
            "amount": float((index * 7 + writer) % 100),
            "country": ("DE", "FR", "US")[index % 3],
        }
        if plan.late(writer, index):
            features["late"] = float(index % 10)
        plog.prediction(
            features=features,
            prediction=index % 2,
            score=(index % 10) / 10,
            groups={"region": ("EU", "US")[index % 2]},
            entity_id=entity(writer, index),
            latency_ms=float(index % 20),
            timestamp=DAY + timedelta(seconds=(index * 7919 + writer * 104729) % 86000),
        )
        if (index + 1) % plan.batch == 0 or index + 1 in milestones:
            logshipper.flush(60)
            if index + 1 in milestones:
                milestones[index + 1].set()
            if plan.pause:
                time.sleep(plan.pause)
            go.wait()
            if stop.is_set():
                break
    logshipper.shutdown(60)
    counts = logshipper.stats()
    written[writer] = counts.written
    if counts.lost or counts.written != counts.accepted:  # the logger itself lost lines: not what is tested
        os._exit(3)


def _formatted_line() -> bytes:
    """One prediction as logshipper's formatter writes it."""
    buffer = io.BytesIO()
    logshipper.configure(service=SERVICE, stream=buffer)
    logshipper.PredictionLogger(model=MODEL, version="v1").prediction(
        features={"amount": 1.0, "country": "DE"}, prediction=1, score=0.5, entity_id="torn", timestamp=TORN_AT
    )
    logshipper.shutdown(60)
    return buffer.getvalue()


def _append_odd(log_dir: str, ready: Event, kill: bool) -> None:
    """Once ``ready``: append an odd line under the writers' lock, on a line boundary as they do.  With ``kill``
    it is the first half of a prediction and the process dies there, holding it unfinished (a writer killed
    mid-write); else it is ``TEXT_LINE``."""
    if kill:
        whole = _formatted_line()
        text = whole[: len(whole) // 2]
    else:
        text = TEXT_LINE + b"\n"
    if not ready.wait(_WAIT_S):
        os._exit(4)

    fd = os.open(log_path(Path(log_dir)), os.O_WRONLY | os.O_APPEND)
    fcntl.flock(fd, fcntl.LOCK_EX)
    size = os.fstat(fd).st_size
    with open(log_path(Path(log_dir)), "rb") as handle:
        handle.seek(size - 1)
        if handle.read(1) != b"\n":
            os.write(fd, b"\n")
    os.write(fd, text)
    if kill:
        os.kill(os.getpid(), signal.SIGKILL)
    os.close(fd)


@dataclass
class Writers:
    """The writer processes of a plan, started: ``go`` (set) lets them write, cleared it holds them; ``stop``
    ends them; ``written`` counts each one's lines."""

    processes: list[multiprocessing.process.BaseProcess]
    go: Event
    stop: Event
    written: Any

    def alive(self) -> bool:
        return any(p.is_alive() for p in self.processes[:-2])

    def odd_lines_ended(self, path: Path) -> bool:
        """Whether both odd lines are in the file and ended (the torn one by whichever write came next)."""
        if any(p.is_alive() for p in self.processes[-2:]):
            return False
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def join(self) -> list[int | None]:
        """Stop the writers, wait for them all; their exit codes."""
        self.stop.set()
        self.go.set()
        for process in self.processes:
            process.join(_WAIT_S)
        return [p.exitcode for p in self.processes]


def start_writers(log_dir: Path, plan: Plan) -> Writers:
    """Fork the plan's writers and the two odd ones (the torn line's writer dies by SIGKILL)."""
    context = multiprocessing.get_context("fork")
    torn_ready, text_ready, go, stop = (context.Event() for _ in range(4))
    go.set()
    written = context.Array("l", plan.writers)
    processes: list[multiprocessing.process.BaseProcess] = [
        context.Process(
            target=_write,
            args=(
                str(log_dir),
                writer,
                plan,
                {plan.torn_at: torn_ready, plan.text_at: text_ready} if writer == 1 else {},
            ),
            kwargs={"go": go, "stop": stop, "written": written},
        )
        for writer in range(plan.writers)
    ]
    processes.append(context.Process(target=_append_odd, args=(str(log_dir), torn_ready, True)))
    processes.append(context.Process(target=_append_odd, args=(str(log_dir), text_ready, False)))
    log_path(log_dir).parent.mkdir(parents=True, exist_ok=True)
    log_path(log_dir).touch()
    for process in processes:
        process.start()
    return Writers(processes, go, stop, written)


def odd_lines(path: Path) -> tuple[dict[str, int], int]:
    """The lines of a finished file that are not JSON objects (line number by what they hold: ``torn``,
    ``text``), and the number of its complete lines."""
    odd: dict[str, int] = {}
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"", "the file ends with a complete line"
    for number, line in enumerate(lines[:-1], start=1):
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            odd["text" if line == TEXT_LINE else "torn" if TORN_AT.encode() in line else repr(line[:80])] = number
    return odd, len(lines) - 1


def record_strict_reads(setattr_: Callable[[Any, str, Any], None], record: Path) -> None:
    """Spy on the store's strict reads: each appends how it ended (``read``, ``stopped`` at a line, ``refused``)
    and the bytes of its range to ``record``, one line per read, from any process."""
    real = range_parse.RangeParser._read_strictly

    def read_strictly(parser: Any, con: Any, scanned: Any, *args: Any, **kwargs: Any) -> Any:
        done = real(parser, con, scanned, *args, **kwargs)
        kind = "read" if isinstance(done, tuple) else "stopped" if isinstance(done, int) else "refused"
        entry = args[1]
        with open(record, "a") as out:
            out.write(f"{os.getpid()} {kind} {scanned.end - entry.size}\n")
        return done

    setattr_(range_parse.RangeParser, "_read_strictly", read_strictly)


def strict_reads(record: Path) -> list[tuple[int, str, int]]:
    """What ``record_strict_reads`` recorded: (process, how it ended, bytes of the range)."""
    if not record.exists():
        return []
    return [(int(p), kind, int(n)) for p, kind, n in (line.split() for line in record.read_text().splitlines())]
