"""``predwatch run`` over an Elasticsearch that goes away: a local server on 127.0.0.1 that refuses connections,
then accepts them and never answers, then answers (the emulator).  The daemon stays up, reports one monitoring
problem, and recovers by itself; a hung server costs a run its time budget, not forever."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from analyzers.config.loader import load_config
from analyzers.scheduler import Scheduler
from analyzers.store import open_store
from analyzers.store.elastic import connection
from analyzers.store.elastic.install import default_assets, install
from tests.conftest import check_requests
from tests.es_emulator import Emulator
from tests.live_es import shipped
from tests.store_contract import prediction

SCHEDULED = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)  # the ops window is 05:00 to 06:00


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def hanging(port: int) -> Iterator[None]:
    """A server that accepts connections on ``port`` and never answers."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


class Recorder:
    """A sender that keeps the messages instead of delivering them."""

    name = "terminal"
    target = "recorder"
    per_alert = False

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def send(self, message: Any) -> None:
        self.messages.append(message)

    def outage_notices(self) -> list[str]:
        return [m.headline() for m in self.messages if m.model == "predwatch"]


def config_file(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "predwatch.yml"
    path.write_text(
        f"""
store:
  elasticsearch: {{hosts: ["http://127.0.0.1:{port}"], request_timeout: 1, max_retries: 0}}
models:
  fraud:
    ingest_delay: 0s
    ops: {{window: 1h, schedule: {{every: 1h}}, timeout: 10s, min_rows: 1}}
"""
    )
    return path


def emulator_with_predictions(port: int) -> tuple[Emulator, Any]:
    emulator = Emulator()
    serving = emulator.serve(port)
    serving.__enter__()
    from analyzers.config.models import ElasticsearchStoreConfig

    install(ElasticsearchStoreConfig(hosts=[emulator.url]), default_assets(), wait=5, retry_interval=0.1)
    for i in range(3):
        action = shipped(prediction(f"p{i}", f"2026-11-20T05:{10 + i}:00Z"))
        emulator.put_doc(action["_index"], action["_id"], action["_source"], action["_op_type"], {})
    return emulator, serving


def test_runs_survive_a_refused_then_hung_then_returning_elasticsearch(tmp_path: Path, monkeypatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr(connection, "DOWN_FOR", 0.0)  # every run asks the server again
    port = free_port()
    loaded = load_config(config_file(tmp_path, port))
    with open_store(loaded.config, loaded.directory) as store:
        scheduler = Scheduler(loaded, store, senders={"terminal": recorder})

        # refused: the daemon's start-up catch-up does not crash, and one monitoring problem is reported
        assert scheduler.catch_up() == 0
        refused = scheduler.run_once("fraud", "ops", SCHEDULED)
        assert refused is not None
        assert refused.status == "error"
        assert "cannot reach" in (refused.error or "")
        assert len(recorder.outage_notices()) == 1

        # hung: the run ends within its budget with an error, and nothing more is reported
        with hanging(port):
            hung = scheduler.run_once("fraud", "ops", SCHEDULED)
        assert hung is not None
        assert hung.status == "error"
        assert "did not answer" in (hung.error or "")
        assert len(recorder.outage_notices()) == 1

        # answering again: the run's finding is stored, and the outage is announced as resolved, once
        emulator, serving = emulator_with_predictions(port)
        try:
            back = scheduler.run_once("fraud", "ops", SCHEDULED)
            assert back is not None
            assert back.status != "error"
            assert [f.job for f in store.read_findings(model="fraud")] == ["ops"]
            assert store.get_state("heartbeat:fraud:ops") is not None
        finally:
            serving.__exit__(None, None, None)
        check_requests(emulator.requests)
    notices = recorder.outage_notices()
    assert len(notices) == 2
    assert "resolved" in notices[1]


def test_the_outbox_round_sees_the_outage_end_when_no_job_runs(tmp_path: Path, monkeypatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr(connection, "DOWN_FOR", 0.0)
    port = free_port()
    loaded = load_config(config_file(tmp_path, port))
    with open_store(loaded.config, loaded.directory) as store:
        scheduler = Scheduler(loaded, store, senders={"terminal": recorder})
        scheduler.flush_outbox()  # refused: one monitoring problem, and nothing to deliver meanwhile
        scheduler.flush_outbox()
        assert scheduler.outage.active
        assert scheduler.deliver() is None
        emulator, serving = emulator_with_predictions(port)
        try:
            scheduler.flush_outbox()
        finally:
            serving.__exit__(None, None, None)
        check_requests(emulator.requests)
    assert not scheduler.outage.active
    notices = recorder.outage_notices()
    assert len(notices) == 2
    assert "(critical)" in notices[0]
    assert "resolved" in notices[1]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_predwatch_run_stays_up_while_elasticsearch_refuses(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "analyzers.cli", "run", "-c", str(config_file(tmp_path, port))]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        lines = []
        assert proc.stderr is not None
        for line in proc.stderr:  # waits for the daemon's own report, however long it takes to start
            lines.append(line)
            if "monitoring problem" in line:
                break
        assert any("the store cannot be reached" in line for line in lines), "".join(lines)
        assert proc.poll() is None, "the daemon is still running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_jobs_budget_bounds_its_requests_whatever_their_own_timeout(monkeypatch) -> None:
    from analyzers.config.models import ElasticsearchStoreConfig
    from analyzers.store import Query, StoreError
    from analyzers.store.elastic import ElasticsearchStore
    from analyzers.timeutil import Window

    port = free_port()
    cfg = ElasticsearchStoreConfig(hosts=[f"http://127.0.0.1:{port}"], request_timeout=600, max_retries=5)
    window = Window("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z")
    with (
        hanging(port),
        ElasticsearchStore.from_config(cfg) as store,
        store.budget(0.5),
        pytest.raises(StoreError, match="before the job's time ran out"),
    ):
        store.count(Query("fraud", window))
