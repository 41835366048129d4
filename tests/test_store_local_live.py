"""Live files and concurrent readers: files still written, rotated, truncated or changed while others read them,
long histories under a small memory budget, private state files, and failures told in words."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest

from analyzers.config.models import Config
from analyzers.runner import run_jobs
from analyzers.store import LocalStore, Query, StoreError
from analyzers.store import range_parse as range_parse_module
from analyzers.store import registry as registry_module
from analyzers.timeutil import Window
from tests.store_contract import DAY1, prediction

WRITER = """
import os, sys, time
from datetime import datetime, timedelta, timezone
from logshipper import PredictionLogger, configure, shutdown
log_dir, stop, most, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
configure(service="svc", log_dir=log_dir)
plog = PredictionLogger(model="m", version="v1")
start = datetime(2026, 11, 20, tzinfo=timezone.utc)
written = 0
while written < most and not os.path.exists(stop):
    for i in range(written, written + 10):
        at = start + timedelta(seconds=(i * 7919 + seed) % 86000)
        plog.prediction(features={"amount": float((i + seed) % 100), "country": "DE"}, prediction=i % 2, score=0.5,
                        timestamp=at)
    written += 10
    time.sleep(0.02)  # about 500 lines a second, a busy service
shutdown()
print(written)
"""


def write(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n" for x in lines))
    return path


def settle(path: Path, at: float = 1_700_000_000) -> None:
    os.utime(path, (at, at))


def test_three_writers_appending_while_analyze_runs_in_a_loop_cause_no_job_error(tmp_path: Path):
    logs = tmp_path / "logs"
    reference = [prediction(f"r{i}", f"2026-11-19T{i % 24:02d}:00:00Z", amount=float(i % 100)) for i in range(300)]
    for line in reference:
        line["ml"]["model"]["name"] = "m"
    settle(write(logs / "svc" / "predictions-2026-11-19.ndjson", reference))
    config = Config.model_validate(
        {
            "models": {
                "m": {
                    "drift": {"window": "1d", "reference": {"start": "2026-11-19", "end": "2026-11-20"}, "min_rows": 1},
                    "ops": {"window": "1d", "min_rows": 1},
                }
            }
        }
    )
    stop = tmp_path / "stop"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(logs), str(stop), "20000", str(seed)], stdout=subprocess.PIPE
        )
        for seed in range(3)
    ]
    at = DAY1.end
    errors: list[str] = []

    def analyze(store: LocalStore) -> None:
        for finding in run_jobs(store, config, at=at):
            if finding.status == "error":
                errors.append(f"{finding.job}: {finding.error}")

    def other_process() -> None:  # a second analyzer with its own connection, as a scheduler beside the CLI
        with LocalStore(logs, tmp_path / "state") as store:
            while any(w.poll() is None for w in writers):
                analyze(store)

    other = threading.Thread(target=other_process)
    other.start()
    for _ in range(3):  # the writers keep writing until these runs are done
        with LocalStore(logs, tmp_path / "state") as store:  # a fresh `predwatch analyze`
            analyze(store)
    stop.touch()
    written = [int(writer.communicate(timeout=60)[0]) for writer in writers]
    other.join(60)
    with LocalStore(logs, tmp_path / "state") as store:
        analyze(store)
        assert store.count(Query("m", DAY1)) == sum(written)  # nothing lost, nothing torn
        assert store.quality(Query("m", DAY1)).set_aside == 0
    assert all(w.returncode == 0 for w in writers)
    assert errors == []


def test_a_settled_day_changing_under_readers_never_fails_them(tmp_path: Path):
    logs = tmp_path / "logs"
    day = write(
        logs / "svc" / "predictions-2026-11-20.ndjson", [prediction(f"p{i}", "2026-11-20T01:00:00Z") for i in range(50)]
    )
    settle(day)
    failures: list[str] = []
    done = threading.Event()

    def reader() -> None:
        with LocalStore(logs, tmp_path / "state") as store:
            while not done.is_set():
                try:
                    assert store.count(Query("fraud", DAY1)) >= 50
                    next(store.rows(Query("fraud", DAY1), columns=["prediction_id"]))
                except (StoreError, AssertionError) as exc:
                    failures.append(str(exc))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    with LocalStore(logs, tmp_path / "state") as changer:
        for i in range(15):
            with open(day, "ab") as handle:
                handle.write(orjson.dumps(prediction(f"late{i}", "2026-11-20T02:00:00Z")) + b"\n")
            settle(day, 1_700_000_000 + i)
            assert changer.count(Query("fraud", DAY1)) == 51 + i
    done.set()
    for thread in threads:
        thread.join(60)
    assert failures == []


@pytest.mark.parametrize("unfinished", [b"", b'{"@timestamp": "2026-1'], ids=["whole line", "and a line begun"])
@pytest.mark.parametrize("read", ["strict", "two passes"])
def test_a_file_growing_while_it_is_parsed_is_read_up_to_its_counted_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unfinished: bytes, read: str
):
    """A writer appends between the count and DuckDB's read: the strict read copies the counted lines; the two
    passes read the file in place, see the lines change, and read a copy instead."""
    logs = tmp_path / "logs"
    lines = [prediction(f"a{i}", "2026-11-20T10:00:00Z") for i in range(50)]
    path = write(logs / "svc" / "predictions-2026-11-20.ndjson", lines)
    grown: list[Path] = []

    def append() -> None:
        grown.append(path)
        with open(path, "ab") as handle:
            handle.write(orjson.dumps(prediction("late", "2026-11-20T11:00:00Z")) + b"\n" + unfinished)

    if read == "strict":
        monkeypatch.setattr(range_parse_module, "_SAMPLE_LINES", 10)  # 50 lines: more than the strict read's first
        monkeypatch.setattr(range_parse_module, "STRICT_MIN_BYTES", 0)
        real_copy = range_parse_module.write_source

        def append_then_copy(scanned, head, target):
            if not grown:
                append()
            return real_copy(scanned, head, target)

        monkeypatch.setattr(range_parse_module, "write_source", append_then_copy)
    else:
        real_write = range_parse_module.write_part

        def append_then_write(con, source, **kwargs):
            if source == path and not grown:
                append()
            return real_write(con, source, **kwargs)

        monkeypatch.setattr(range_parse_module.RangeParser, "_read_strictly", lambda *args, **kwargs: None)
        monkeypatch.setattr(range_parse_module, "write_part", append_then_write)
    with LocalStore(logs, tmp_path / "state") as store:
        assert store.count(Query("fraud", DAY1)) == 50  # the lines counted, none of the appended ones
        assert grown == [path]
        assert store.quality(Query("fraud", DAY1)).set_aside == 0
    if unfinished:  # the writer finishes its line: an event that is no prediction, set aside at the next parse
        with open(path, "ab") as handle:
            handle.write(b'1-20T12:00:00Z"}\n')
    with LocalStore(logs, tmp_path / "state") as store:
        assert store.count(Query("fraud", DAY1)) == 51  # the appended prediction, at the next parse
        assert store.quality(Query("fraud", DAY1)).set_aside == (1 if unfinished else 0)


def test_a_parsed_file_gone_under_a_reader_is_read_again_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    logs = tmp_path / "logs"
    settle(write(logs / "svc" / "predictions-2026-11-20.ndjson", [prediction("a", "2026-11-20T01:00:00Z")]))
    with LocalStore(logs, tmp_path / "state") as store:
        assert store.count(Query("fraud", DAY1)) == 1
        for parsed in (tmp_path / "state" / "parsed").rglob("*"):  # another process collected it all
            if parsed.is_file():
                parsed.unlink()
        assert store.count(Query("fraud", DAY1)) == 1  # the failed read is retried over a fresh parse


def test_reads_in_a_snapshot_agree_and_the_next_snapshot_sees_what_was_appended(tmp_path: Path):
    day = write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", [prediction("a", "2026-11-20T01:00:00Z")])
    q = Query("fraud", DAY1)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        with store.snapshot():
            assert store.count(q) == 1
            with day.open("ab") as appending:
                appending.write(orjson.dumps(prediction("b", "2026-11-20T02:00:00Z")) + b"\n")
            assert store.count(q) == 1  # one job's reads see one version of the files
            assert store.sample_size(q).rows == 1
        assert store.count(q) == 2  # outside a snapshot every read looks for changes
        with store.snapshot():
            assert store.count(q) == 2


def test_a_parsed_file_gone_under_a_snapshot_is_read_again_once(tmp_path: Path):
    logs = tmp_path / "logs"
    settle(write(logs / "svc" / "predictions-2026-11-20.ndjson", [prediction("a", "2026-11-20T01:00:00Z")]))
    with LocalStore(logs, tmp_path / "state") as store, store.snapshot():
        assert store.count(Query("fraud", DAY1)) == 1
        for parsed in (tmp_path / "state" / "parsed").rglob("*"):
            if parsed.is_file():
                parsed.unlink()
        assert store.sample_size(Query("fraud", DAY1)).rows == 1  # the retry looks at the files again


def test_a_job_looks_for_changed_files_once_not_before_every_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    lines = [prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:00:00Z", region="EU" if i % 2 else "US") for i in range(40)]
    settle(write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines))
    syncs = []
    sync = registry_module.Registry.sync
    monkeypatch.setattr(
        registry_module.Registry, "sync", lambda self, *args, **kwargs: syncs.append(1) or sync(self, *args, **kwargs)
    )
    config = Config.model_validate(
        {"models": {"fraud": {"fairness": {"window": "1d", "groups": ["region"], "min_group_size": 10}}}}
    )
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        (finding,) = run_jobs(store, config, at=DAY1.end)
    assert finding.status != "error", finding.error
    assert finding.quality is not None  # the quality of the window was read too, in the same snapshot
    assert len(syncs) == 1


def test_a_failure_names_what_failed_and_what_to_do_never_sql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    logs = tmp_path / "logs"
    settle(write(logs / "svc" / "predictions-2026-11-20.ndjson", [prediction("a", "2026-11-20T01:00:00Z")]))
    with LocalStore(logs, tmp_path / "state") as store:
        assert store.count(Query("fraud", DAY1)) == 1
        monkeypatch.setattr(registry_module.Registry, "sync", lambda self, con, files, now=None: _gone(self))
        store._invalidate()
        with pytest.raises(StoreError) as failure:
            store.count(Query("fraud", DAY1))
    message = str(failure.value)
    assert "counting predictions (fraud, 2026-11-20T00:00:00Z to 2026-11-21T00:00:00Z)" in message
    assert "svc/predictions-2026-11-20.ndjson" in message
    assert "run again" in message
    assert "SELECT" not in message
    assert "read_parquet" not in message


def _gone(registry: registry_module.Registry) -> registry_module.Snapshot:
    """A registry that lists a parsed file nobody can read any more."""
    return registry_module.Snapshot(
        99, {"predictions-2026-11-20.ndjson": ["predictions-2026-11-20.ndjson.1.0.1.parquet"]}, registry.folder
    )


def test_rotation_and_truncation_are_detected_and_read_again(tmp_path: Path):
    folder = tmp_path / "logs" / "svc"
    day = write(
        folder / "predictions-2026-11-20.ndjson", [prediction(f"a{i}", "2026-11-20T01:00:00Z") for i in range(5)]
    )
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        q = Query("fraud", DAY1)
        assert store.count(q) == 5
        day.rename(folder / "predictions-2026-11-20.ndjson.1")  # rotated: the old lines live on under a new name
        write(day, [prediction(f"b{i}", "2026-11-20T02:00:00Z") for i in range(2)])
        assert store.count(q) == 7
        write(day, [prediction("c", "2026-11-20T03:00:00Z")])  # truncated and rewritten: same inode, shorter
        assert store.count(q) == 6
        replaced = folder / "replacement"
        write(replaced, [prediction("d", "2026-11-20T03:00:00Z"), prediction("e", "2026-11-20T03:00:00Z")])
        replaced.replace(day)  # a new file under the old name: another inode
        assert store.count(q) == 7
        ids = {p for chunk in store.rows(q, columns=["prediction_id"]) for p in chunk["prediction_id"]}
    assert ids == {"a0", "a1", "a2", "a3", "a4", "d", "e"}


def test_a_window_over_a_few_hundred_daily_files_under_a_small_memory_budget(tmp_path: Path):
    first = date(2025, 11, 1)
    days = 240
    for d in range(days):
        day = first + timedelta(days=d)
        lines = [
            prediction(f"{d}-{i}", f"{day}T{i:02d}:00:00Z", amount=float(i), region="EU" if i % 2 else "US")
            for i in range(20)
        ]
        settle(write(tmp_path / "logs" / "svc" / f"predictions-{day}.ndjson", lines))
    window = Window(f"{first}T00:00:00Z", f"{first + timedelta(days=days)}T00:00:00Z")
    config = Config.model_validate(
        {"models": {"fraud": {"fairness": {"window": f"{days}d", "groups": ["region"], "min_group_size": 10}}}}
    )
    with LocalStore(tmp_path / "logs", tmp_path / "state", memory_limit="64MB") as store:
        assert store.count(Query("fraud", window)) == days * 20
        (finding,) = run_jobs(store, config, at=window.end)
    assert finding.status in ("ok", "alert"), finding.error
    parsed = orjson.loads(next((tmp_path / "state" / "parsed").glob("*/svc/registry.json")).read_bytes())
    assert len(parsed["bins"]) == 8  # one Parquet file per month, not one per day


def test_state_files_are_private_to_their_owner(tmp_path: Path):
    logs = tmp_path / "logs"
    write(logs / "svc" / "predictions-2026-11-20.ndjson", [prediction("a", "2026-11-20T01:00:00Z")])
    state = tmp_path / "state"
    with LocalStore(logs, state) as store:
        store.count(Query("fraud", DAY1))
        store.put_state("k", {"v": 1})
    for path in [state, *state.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o700, path
        else:
            assert mode & 0o077 == 0, path


def test_a_deleted_log_file_takes_its_lines_with_it_even_compacted(tmp_path: Path):
    folder = tmp_path / "logs" / "svc"
    first = write(folder / "predictions-2026-11-20.ndjson", [prediction("a", "2026-11-20T01:00:00Z")])
    second = write(folder / "predictions-2026-11-21.ndjson", [prediction("b", "2026-11-21T01:00:00Z")])
    settle(first)
    settle(second)
    both = Query("fraud", Window(DAY1.start, DAY1.end + timedelta(days=1)))
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        assert store.count(both) == 2  # one Parquet file holds both days
        first.unlink()  # retention removed the older day
        assert store.count(both) == 1


def test_files_growing_while_parsed_side_by_side_lose_no_line_when_one_is_parsed_again_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Big ranges parsed two at a time while writers append to each between its count and DuckDB's read; one of
    them also runs out of the budget the two share and is parsed again alone.  Every counted line is read once,
    the appended ones at the next parse."""
    import duckdb

    logs = tmp_path / "logs"
    days = ("2026-11-20", "2026-11-21", "2026-11-22")
    paths = {
        day: write(
            logs / "svc" / f"predictions-{day}.ndjson",
            [prediction(f"{day}-{i}", f"{day}T{i % 24:02d}:00:00Z", amount=float(i)) for i in range(300)],
        )
        for day in days
    }
    monkeypatch.setattr(registry_module, "PARSERS", 2)
    monkeypatch.setattr(registry_module, "PARALLEL_BYTES", 0)  # every range counts as big
    real = range_parse_module.write_part
    reads: list[str] = []
    lock = threading.Lock()

    def append_then_write(con, source, **kwargs):
        name = Path(kwargs["file"]).name
        with lock:
            reads.append(name)
            first = reads.count(name) == 1
        if first:  # a writer appends between the count and DuckDB's read of this range
            day = name.removeprefix("predictions-").removesuffix(".ndjson")
            with open(paths[day], "ab") as handle:
                for i in range(5):
                    handle.write(orjson.dumps(prediction(f"{day}-late{i}", f"{day}T23:00:00Z")) + b"\n")
            if day == "2026-11-21":
                raise duckdb.OutOfMemoryException("failed to allocate (simulated)")
        return real(con, source, **kwargs)

    monkeypatch.setattr(range_parse_module, "write_part", append_then_write)
    window = Window("2026-11-20T00:00:00Z", "2026-11-23T00:00:00Z")
    with LocalStore(logs, tmp_path / "state") as store:
        assert store.count(Query("fraud", window)) == 900  # the lines counted at the sync, none appended after
        assert store.quality(Query("fraud", window)).set_aside == 0
    assert reads.count("predictions-2026-11-21.ndjson") >= 2  # refused beside another, then read alone
    with LocalStore(logs, tmp_path / "state") as store:
        assert store.count(Query("fraud", window)) == 915  # the appended lines, at the next parse, once each
        assert store.quality(Query("fraud", window)).set_aside == 0
