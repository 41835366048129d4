"""The logger under faults: nothing torn, nothing written twice, every lost event counted in ``stats()``."""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import logshipper
from logshipper import LoggerStats, PredictionLogger, configure, shutdown

DAY = 1772409600  # 2026-03-02T00:00:00Z: every event of these tests goes to one file
DAY_FILE = "predictions-2026-03-02.ndjson"


@pytest.fixture(autouse=True)
def _clean_pipeline():
    yield
    shutdown()


def delta(before: LoggerStats, after: LoggerStats) -> dict[str, object]:
    """What changed between two snapshots (the counts are the process's since it started)."""
    out: dict[str, object] = {}
    for name in ("accepted", "written", "queued", "lost_at_exit", "repaired_lines"):
        out[name] = getattr(after, name) - getattr(before, name)
    for name in ("dropped", "write_errors"):
        old, new = getattr(before, name), getattr(after, name)
        out[name] = {k: new[k] - old.get(k, 0) for k in new if new[k] != old.get(k, 0)}
    return out


def parse_file(path: Path) -> tuple[list[dict], list[int]]:
    """The events of a file, and the (0-based) positions of lines that do not parse."""
    events, bad = [], []
    for k, raw in enumerate(path.read_bytes().splitlines()):
        try:
            events.append(json.loads(raw))
        except ValueError:
            bad.append(k)
    return events, bad


def run_script(tmp_path: Path, code: str, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``code`` from a file (so that spawned children can import its functions) in a fresh interpreter."""
    script = tmp_path / "scenario.py"
    script.write_text(code)
    return subprocess.run(
        [*prefix, sys.executable, str(script), *args], capture_output=True, text=True, timeout=300, check=False
    )


# ---- stats() ---------------------------------------------------------------------------------------


def test_stats_is_a_typed_snapshot_whose_counts_add_up(tmp_path: Path) -> None:
    before = logshipper.stats()
    configure(service="svc", log_dir=tmp_path)
    plog = PredictionLogger(model="m")
    for i in range(300):
        plog.prediction({"i": i}, 0)
    shutdown()
    after = logshipper.stats()
    assert isinstance(after, LoggerStats)
    assert delta(before, after) == {
        "accepted": 300,
        "written": 300,
        "queued": 0,
        "lost_at_exit": 0,
        "repaired_lines": 0,
        "dropped": {},
        "write_errors": {},
    }
    assert after.accepted == after.written + sum(after.write_errors.values()) + after.lost_at_exit + after.queued
    assert dataclasses.asdict(after)["written"] == after.written


# ---- a killed writer, a failed write ---------------------------------------------------------------


def test_a_batch_starts_on_a_line_boundary_after_a_writer_killed_mid_line(tmp_path: Path) -> None:
    service = tmp_path / "svc"
    service.mkdir()
    (service / DAY_FILE).write_bytes(b'{"whole": "line"}\n{"killed": "mid-li')  # what a SIGKILLed writer leaves
    before = logshipper.stats()
    configure(service="svc", log_dir=tmp_path)
    plog = PredictionLogger(model="m")
    ids = [plog.prediction({"i": i}, 0, timestamp=DAY) for i in range(3)]
    shutdown()
    events, bad = parse_file(service / DAY_FILE)
    assert bad == [1], "only the killed writer's own line is lost"
    assert [e["ml"]["prediction_id"] for e in events[1:]] == ids
    assert delta(before, logshipper.stats())["repaired_lines"] == 1


SURVIVOR = """
import json, os, sys, time, logshipper
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
print(json.dumps({"logged": n, "written": logshipper.stats().written}))
"""

VICTIM = """
import sys, logshipper
logshipper.configure(service="svc", log_dir=sys.argv[1])
plog = logshipper.PredictionLogger(model="m")
text, i = "v" * 3300, 0
while True:  # unpaced: batches of up to 1,000 lines of 3.3 KB, one write each
    plog.prediction({"who": "victim", "i": i, "text": text}, 0, timestamp=1772409600)
    i += 1
"""


def test_a_sigkilled_writer_of_large_lines_never_costs_another_writer_a_line(tmp_path: Path) -> None:
    rng = random.Random(7)
    for trial in range(8):
        directory = tmp_path / str(trial)
        directory.mkdir()
        stop = directory / "stop"
        survivor = subprocess.Popen(
            [sys.executable, "-c", SURVIVOR, str(directory), str(stop)], stdout=subprocess.PIPE, text=True
        )
        victim = subprocess.Popen([sys.executable, "-c", VICTIM, str(directory)])
        day = directory / "svc" / DAY_FILE
        try:
            while not (day.exists() and day.stat().st_size > 200_000):
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.2))
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            stop.touch()
        counts = json.loads(survivor.communicate(timeout=120)[0])
        events, bad = parse_file(day)
        assert len(bad) <= 1, f"trial {trial}: lines at {bad} do not parse; only the victim's last line may"
        kept = [e["ml"]["features"]["i"] for e in events if e["ml"]["features"]["who"] == "survivor"]
        assert sorted(kept) == list(range(counts["logged"])), f"trial {trial}: the survivor lost a line"
        assert counts["written"] == counts["logged"]


class _FailingWrites:
    """``os.write`` that writes half of the first large write to the log file, then fails ``failures``
    times with EIO (a disk that hiccups), then works."""

    def __init__(self, failures: int) -> None:
        self.real = os.write
        self.calls = 0
        self.failures = failures

    def __call__(self, fd: int, data: bytes) -> int:
        if len(data) > 1000 and self.calls <= self.failures and os.readlink(f"/proc/self/fd/{fd}").endswith(DAY_FILE):
            self.calls += 1
            if self.calls == 1:
                return self.real(fd, bytes(data)[: len(data) // 2 + 7])  # mid-line
            raise OSError(errno.EIO, "Input/output error")
        return self.real(fd, data)


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc to recognise the log file's descriptor")
def test_a_write_that_stops_half_way_then_fails_resumes_where_it_stopped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(os, "write", _FailingWrites(failures=1))
    before = logshipper.stats()
    configure(service="svc", log_dir=tmp_path)
    plog = PredictionLogger(model="m")
    ids = [plog.prediction({"i": i, "pad": "p" * 100}, 0, timestamp=DAY) for i in range(1000)]
    shutdown()
    events, bad = parse_file(tmp_path / "svc" / DAY_FILE)
    assert bad == []
    assert sorted(e["ml"]["prediction_id"] for e in events) == sorted(ids), "each line once: none lost, none twice"
    changed = delta(before, logshipper.stats())
    assert changed["written"] == 1000
    assert changed["write_errors"] == {}


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc to recognise the log file's descriptor")
def test_a_write_that_keeps_failing_counts_its_lines_once_and_writes_none_twice(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(os, "write", _FailingWrites(failures=2))
    before = logshipper.stats()
    configure(service="svc", log_dir=tmp_path)
    plog = PredictionLogger(model="m")
    ids = [plog.prediction({"i": i, "pad": "p" * 100}, 0, timestamp=DAY) for i in range(1000)]
    shutdown()
    events, bad = parse_file(tmp_path / "svc" / DAY_FILE)
    written = [e["ml"]["prediction_id"] for e in events]
    assert len(set(written)) == len(written), "no line written twice"
    assert set(written) <= set(ids)
    assert bad in ([], [len(events)]), "at most the cut line, at the end of the file"
    changed = delta(before, logshipper.stats())
    assert changed["written"] == len(events)
    assert changed["write_errors"] == {"io_error": 1000 - len(events)}


# ---- a full disk, a file size limit ---------------------------------------------------------------

FILL = """
import json, resource, sys, time, logshipper
log_dir, limit, raise_half_way = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
logshipper.configure(service="svc", log_dir=log_dir)
plog = logshipper.PredictionLogger(model="m")
for i in range(1200):
    plog.prediction({"i": i, "pad": "p" * 200}, 0, timestamp=1772409600)
    if i % 50 == 49:
        time.sleep(0.002)  # a service's pace: many small batches
    if i == 599 and raise_half_way:  # space freed
        logshipper.flush()
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
logshipper.shutdown()
print(json.dumps(logshipper.stats().__dict__))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("freed", [True, False], ids=["space-freed-half-way", "full-until-exit"])
def test_a_full_disk_tears_no_line_mid_file_and_counts_exactly(tmp_path: Path, freed: bool) -> None:
    done = run_script(tmp_path, FILL, str(tmp_path), str(64 * 1024), "1" if freed else "0")
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    events, bad = parse_file(tmp_path / "svc" / DAY_FILE)
    if freed:
        assert bad == [], "the line the full disk cut short was completed once there was room"
    else:
        assert bad == [len(events)], "only the cut line, at the very end of the file"
    assert stats["accepted"] == 1200
    assert stats["written"] == len(events) == len({e["ml"]["prediction_id"] for e in events})
    assert stats["write_errors"]["file_too_large"] == 1200 - len(events)
    assert stats["queued"] == 0
    assert done.stderr.count("File too large (file_too_large)") == 1, "reported once, not per batch"
    assert f"lost {1200 - len(events)} event(s)" in done.stderr


# ---- permissions, missing directories ------------------------------------------------------------

WRITE_1000 = """
import json, sys, logshipper
logshipper.configure(service="svc", log_dir=sys.argv[1])
plog = logshipper.PredictionLogger(model="m")
for i in range(1000):
    plog.prediction({"i": i}, 0, timestamp=1772409600)
logshipper.shutdown()
print(json.dumps(logshipper.stats().__dict__))
"""


def _without_root_privileges() -> tuple[str, ...]:
    """A command prefix under which directory permissions apply (root ignores them)."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be observed")
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_a_read_only_log_directory_is_reported_once_and_every_event_counted(tmp_path: Path) -> None:
    service = tmp_path / "svc"
    service.mkdir()
    service.chmod(0o555)
    try:
        done = run_script(tmp_path, WRITE_1000, str(tmp_path), prefix=_without_root_privileges())
    finally:
        service.chmod(0o755)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert stats["written"] == 0
    assert stats["write_errors"] == {"permission": 1000}
    assert done.stderr.count("Permission denied (permission)") == 1
    assert list(service.iterdir()) == []


def test_configure_never_raises_for_a_directory_that_cannot_be_created(tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the log directory should be")
    before = logshipper.stats()
    with caplog.at_level(logging.ERROR, logger="logshipper"):
        configure(service="svc", log_dir=blocker / "logs")
        plog = PredictionLogger(model="m")
        for i in range(10):
            plog.prediction({"i": i}, 0, timestamp=DAY)
        logshipper.flush()
        blocker.unlink()  # the directory can be created now: writing resumes
        for i in range(10, 15):
            plog.prediction({"i": i}, 0, timestamp=DAY)
        shutdown()
    changed = delta(before, logshipper.stats())
    assert changed["write_errors"] == {"no_directory": 10}
    assert changed["written"] == 5
    events, _ = parse_file(blocker / "logs" / "svc" / DAY_FILE)
    assert [e["ml"]["features"]["i"] for e in events] == [10, 11, 12, 13, 14]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "cannot create the log directory" in errors[0]


def test_log_files_take_the_process_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        configure(service="svc", log_dir=tmp_path)
        PredictionLogger(model="m").prediction({"x": 1}, 0, timestamp=DAY)
        shutdown()
    finally:
        os.umask(old)
    assert (tmp_path / "svc" / DAY_FILE).stat().st_mode & 0o777 == 0o664


# ---- a stalled writer, multiprocessing children --------------------------------------------------


class _StalledStream(io.StringIO):
    """A stream whose writes wait until released: the disk has stalled."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.release.wait(60)
        return super().write(text)


def test_events_still_queued_when_shutdown_gives_up_are_counted_and_reported(caplog) -> None:
    stream = _StalledStream()
    before = logshipper.stats()
    configure(service="svc", stream=stream, max_queue=100)
    plog = PredictionLogger(model="m")
    plog.prediction({"i": 0}, 0)
    assert stream.entered.wait(30), "the writer is stuck writing the first event"
    for i in range(1, 500):
        plog.prediction({"i": i}, 0)
    with caplog.at_level(logging.WARNING, logger="logshipper"):
        shutdown(timeout=0.2)
    changed = delta(before, logshipper.stats())
    stream.release.set()
    assert changed["dropped"] == {"queue_full": 399}
    assert changed["lost_at_exit"] == 101, "the event being written and the 100 queued"
    assert changed["accepted"] == 101
    assert changed["queued"] == 0
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "101 event(s) still queued or being written are lost at exit" in messages
    assert "lost 500 event(s)" in messages


WORKERS = """
import json, multiprocessing, sys
import logshipper

def work(log_dir, worker):
    logshipper.configure(service="svc", log_dir=log_dir)
    log_events(worker)

def log_events(worker):
    plog = logshipper.PredictionLogger(model="m")
    for i in range(500):
        plog.prediction({"worker": worker, "i": i}, 0, timestamp=1772409600)

if __name__ == "__main__":
    method, log_dir, configured_in_parent = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    ctx = multiprocessing.get_context(method)
    if configured_in_parent:
        logshipper.configure(service="svc", log_dir=log_dir)
        procs = [ctx.Process(target=log_events, args=(w,)) for w in range(2)]
    else:
        procs = [ctx.Process(target=work, args=(log_dir, w)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    print(json.dumps([p.exitcode for p in procs]))
"""


@pytest.mark.parametrize(
    ("method", "configured_in_parent"),
    [("fork", True), ("fork", False), ("forkserver", False), ("spawn", False)],
    ids=["fork-configured-before", "fork", "forkserver", "spawn"],
)
def test_multiprocessing_children_write_every_event_they_logged(
    tmp_path: Path, method: str, configured_in_parent: bool
) -> None:
    import multiprocessing

    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method on this platform")
    logs = tmp_path / "logs"
    done = run_script(tmp_path, WORKERS, method, str(logs), "1" if configured_in_parent else "0")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [0, 0]
    events, bad = parse_file(logs / "svc" / DAY_FILE)
    assert bad == []
    for worker in (0, 1):
        logged = sorted(e["ml"]["features"]["i"] for e in events if e["ml"]["features"]["worker"] == worker)
        assert logged == list(range(500)), f"worker {worker} lost events"
