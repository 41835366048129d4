"""The strict read under live writers: several writer processes append to one service's daily file while it is
parsed (in one strict pass where the range is big enough), a scheduler job and an ad-hoc ``predwatch analyze``
read the same state at once, round after round.  Every complete line is read once, the odd lines are counted
where they are, no job ends in error and a feature first seen late is never dropped."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import orjson
import pytest

from analyzers.config.loader import load_config
from analyzers.findings.quality import ReasonCount
from analyzers.scheduler import Scheduler
from analyzers.store import LocalStore, Query
from analyzers.store import range_parse as range_parse_module
from analyzers.store.parsed_state import RegistryState
from analyzers.timeutil import Window
from tests import live_writers
from tests.live_writers import MODEL, Plan, log_path, odd_lines, record_strict_reads, start_writers
from tests.store_contract import prediction

WINDOW = Window("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z")
AT = datetime(2026, 11, 21, tzinfo=timezone.utc)
# An ad-hoc `predwatch` in a process of its own; its strict reads recorded, its thresholds the test's (-1: as shipped).
CLI = """
import sys
from pathlib import Path
from analyzers.store import range_parse
from tests.live_writers import record_strict_reads
min_bytes, sample, record = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
if min_bytes >= 0:
    range_parse.STRICT_MIN_BYTES, range_parse._SAMPLE_LINES = min_bytes, sample
record_strict_reads(setattr, record)
from analyzers.cli import main
sys.exit(main(sys.argv[4:]))
"""


def config(tmp_path: Path) -> Path:
    """A model with a drift and an ops job over the writers' day, its reference the day before (settled)."""
    reference = tmp_path / "logs" / live_writers.SERVICE / "predictions-2026-11-19.ndjson"
    reference.parent.mkdir(parents=True)
    reference.write_bytes(
        b"".join(
            orjson.dumps(prediction(f"r{i}", f"2026-11-19T{i % 24:02d}:00:00Z", amount=float(i % 100), model=MODEL))
            + b"\n"
            for i in range(300)
        )
    )
    path = tmp_path / "predwatch.yml"
    path.write_text(
        "store: {local: {path: logs}}\n"
        "state: {path: state}\n"
        "models:\n"
        f"  {MODEL}:\n"
        "    ingest_delay: 0s\n"
        "    ops: {window: 1d, schedule: {every: 1h}, min_rows: 1}\n"
        "    drift: {window: 1d, schedule: {every: 1h}, min_rows: 1,\n"
        "            reference: {start: 2026-11-19T00:00:00Z, end: 2026-11-20T00:00:00Z}}\n"
    )
    return path


def set_aside(state: Path, log_file: Path) -> list[tuple[int, str]]:
    """The lines of ``log_file`` the published registry holds as set aside: (line, reason), in line order."""
    (registry,) = (state / "parsed").glob(f"*/{live_writers.SERVICE}/registry.json")  # under the format's version
    state_now = RegistryState.from_json(registry.read_bytes())
    paths = [str(p) for p in state_now.snapshot(registry.parent).paths([log_file.name])]
    rows = duckdb.sql(
        f"SELECT line_no, reason FROM read_parquet({paths}, union_by_name=true) WHERE file = '{log_file}'"
        " AND reason IS NOT NULL ORDER BY line_no"
    )
    return [(int(line), str(reason)) for line, reason in rows.fetchall()]


def check_prefixes(entities: list[str], plan: Plan) -> None:
    """What a reader got while the writers wrote: no line twice, and of each writer its first lines, none
    missing before the last one read (a writer's lines reach the file in order)."""
    repeated = [e for e, n in Counter(entities).items() if n > 1]
    assert repeated == []
    by_writer: dict[int, list[int]] = {}
    for name in entities:
        writer, index = name[1:].split("-")
        by_writer.setdefault(int(writer), []).append(int(index))
    for writer, indexes in by_writer.items():
        assert sorted(indexes) == list(range(len(indexes))), f"writer {writer}: a line missing before its last"


def run_live(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    plan: Plan,
    *,
    start_bytes: int,
    thresholds: tuple[int, int],
    live_rounds: int,
    round_bytes: int = 0,
) -> list[tuple[int, str, int]]:
    """The writers of ``plan`` start; once the file holds ``start_bytes``, a scheduler's jobs and an ad-hoc
    `predwatch analyze` read side by side, round after round, while the writers write (``live_rounds`` rounds at
    least, and until both odd lines are in), each waiting for the file to grow by ``round_bytes`` since its last
    round (a scheduler's interval); then the writers stop and both read once more.  Everything is checked; the
    strict reads of both processes are returned (``live_writers.strict_reads``)."""
    min_bytes, sample = thresholds
    if min_bytes >= 0:
        monkeypatch.setattr(range_parse_module, "STRICT_MIN_BYTES", min_bytes)
        monkeypatch.setattr(range_parse_module, "_SAMPLE_LINES", sample)
    record = tmp_path / "strict-reads.txt"
    record_strict_reads(monkeypatch.setattr, record)
    path = config(tmp_path)
    logs = tmp_path / "logs"
    writers = start_writers(logs, plan)
    while log_path(logs).stat().st_size < start_bytes and writers.alive():
        threading.Event().wait(0.02)
    loaded = load_config(path)
    errors: list[str] = []
    command = [sys.executable, "-c", CLI, str(min_bytes), str(sample), str(record)]
    command += ["analyze", "--config", str(path), "--at", "2026-11-21T00:00:00Z", "--format", "json"]
    rounds = {"scheduler": 0, "cli": 0}

    def grown(since: int) -> int:
        """Wait until the file grew by ``round_bytes`` since ``since`` (or the writers are done); its size."""
        while (size := log_path(logs).stat().st_size) < since + round_bytes and writers.alive():
            threading.Event().wait(0.02)
        return size

    with LocalStore(logs, tmp_path / "state") as store:
        scheduler = Scheduler(loaded, store, senders={})

        def scheduled_round() -> None:
            for job in ("ops", "drift"):
                finding = scheduler.run_once(MODEL, job, AT, tick=False)
                assert finding is not None
                if finding.status == "error":
                    errors.append(f"scheduler {job}: {finding.error}")
            read = [e for chunk in store.rows(Query(MODEL, WINDOW), columns=["entity_id"]) for e in chunk["entity_id"]]
            check_prefixes(read, plan)
            rounds["scheduler"] += 1

        def cli_round() -> None:
            done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parent.parent)
            if done.returncode not in (0, 1):
                errors.append(f"predwatch exit {done.returncode}: {done.stderr[-2000:]}")
                return
            for finding in json.loads(done.stdout)["findings"]:
                if finding["status"] == "error":
                    errors.append(f"predwatch {finding['job']}: {finding.get('error')}")
            rounds["cli"] += 1

        def scheduled_rounds() -> None:
            size = log_path(logs).stat().st_size
            while not enough.is_set():
                size = grown(size)
                scheduled_round()

        scheduled_round()  # the first range, the file as it stands, is this process's to parse
        enough = threading.Event()
        scheduler_thread = threading.Thread(target=scheduled_rounds)
        scheduler_thread.start()
        size = log_path(logs).stat().st_size
        while writers.alive() and (rounds["cli"] < live_rounds or not writers.odd_lines_ended(log_path(logs))):
            size = grown(size)
            cli_round()
        enough.set()
        scheduler_thread.join()
        live = dict(rounds)
        exits = writers.join()
        scheduled_round()
        cli_round()
    assert exits == [0] * plan.writers + [-9, 0]  # the torn line's writer died by SIGKILL, as it meant to
    assert errors == []
    assert live["cli"] >= live_rounds  # rounds read while the writers wrote
    assert live["scheduler"] >= live_rounds
    odd, lines = odd_lines(log_path(logs))
    assert sorted(odd) == ["text", "torn"]
    with LocalStore(logs, tmp_path / "state") as store:
        q = Query(MODEL, WINDOW)
        read = [e for chunk in store.rows(q, columns=["entity_id"]) for e in chunk["entity_id"]]
        written = list(writers.written)
        assert Counter(read) == Counter(plan.entities(written))  # every line written, each once
        assert lines == sum(written) + 2
        quality = store.quality(q)
        assert quality.reasons == {"bad JSON": ReasonCount(2, f"{log_path(logs)}:{min(odd.values())}")}
        assert quality.lines == lines
        assert store.numeric_summary(q, "features.late").count == plan.late_count(written)
    assert set_aside(tmp_path / "state", log_path(logs)) == sorted((n, "bad JSON") for n in odd.values())
    return live_writers.strict_reads(record)


def test_writers_appending_while_a_scheduler_and_a_command_read_strictly_lose_and_repeat_no_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    plan = Plan(writers=3, lines=20_000, batch=40, pause=0.05, late_from=1000, torn_at=400, text_at=800)
    reads = run_live(
        tmp_path,
        monkeypatch,
        plan,
        start_bytes=200_000,
        thresholds=(64 * 2**10, 50),
        live_rounds=2,
        round_bytes=256 * 2**10,
    )
    outcomes = Counter(kind for _, kind, _ in reads)
    assert outcomes["read"] >= 1  # the ranges took the strict path, and it read some whole
    assert outcomes["stopped"] >= 1  # a line it stopped at: the late feature, the torn line or the text


@pytest.mark.slow
def test_at_production_size_writers_appending_to_a_big_file_while_it_is_read_strictly_lose_and_repeat_no_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The same at the shipped thresholds: the file holds more than ``STRICT_MIN_BYTES`` when the readers start,
    and the writers keep appending as it is read in one strict pass."""
    plan = Plan(writers=3, lines=200_000, batch=500, pause=0.15, late_from=45_000, torn_at=30_000, text_at=45_000)
    start = range_parse_module.STRICT_MIN_BYTES + 4 * 2**20
    reads = run_live(
        tmp_path, monkeypatch, plan, start_bytes=start, thresholds=(-1, -1), live_rounds=3, round_bytes=2 * start
    )
    strict = [n for _, kind, n in reads if kind == "read"]
    assert max(strict) >= range_parse_module.STRICT_MIN_BYTES  # a big range read whole in one strict pass
