"""The hand-off from the service's threads to one writer thread: a queue, a listener, a sink.

The caller only puts its arguments on a queue (no formatting, no I/O), so logging never blocks
the service on disk.  The listener builds, encodes and writes events in batches.  When the queue
is full (the disk stalls), events are dropped and counted rather than blocking or eating memory.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from collections import defaultdict
from typing import Any

from logshipper.events import Builder, Service, build_line
from logshipper.sinks import Sink

DEFAULT_MAX_QUEUE = 100_000
BATCH = 1_000
_STOP = object()
_log = logging.getLogger("logshipper")
_live: weakref.WeakSet[Pipeline] = weakref.WeakSet()


class Pipeline:
    """Owns the queue, the listener thread and the sink for one configured service."""

    def __init__(self, service: Service, sink: Sink, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.service = service
        self.sink = sink
        self.max_queue = max_queue
        self.dropped = 0
        self.write_errors = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._last_report = 0.0
        _live.add(self)

    def submit(self, builder: Builder, fields: dict[str, Any]) -> bool:
        """Queue one event; ``False`` when it was dropped (queue full or pipeline closed)."""
        if self._closed or self._queue.qsize() >= self.max_queue:
            self.dropped += 1
            return False
        self._queue.put((builder, fields))
        if self._thread is None:
            self._start()
        return True

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="logshipper-writer", daemon=True)
                self._thread.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written; ``False`` on timeout."""
        if self._thread is None or not self._thread.is_alive():
            return self._queue.empty()
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, stop the listener and close the files."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)
        else:
            self._drain_without_thread()
        self.sink.close()
        if self.dropped:
            _log.warning("logshipper dropped %d event(s): the writer could not keep up", self.dropped)

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh queue (the parent writes what it had queued) and own files."""
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._start_lock = threading.Lock()
        self.sink.reopen()

    # ---- the listener --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if self._process(batch):
                return

    def _process(self, batch: list[Any]) -> bool:
        """Write a batch; returns True when the stop marker was in it."""
        lines: defaultdict[str, list[bytes]] = defaultdict(list)
        waiters: list[threading.Event] = []
        stop = False
        for item in batch:
            if item is _STOP:
                stop = True
            elif isinstance(item, threading.Event):
                waiters.append(item)
            else:
                day, line = build_line(self.service, item[0], item[1])
                lines[day].append(line)
        if lines:
            self._write(lines)
        for waiter in waiters:
            waiter.set()
        return stop

    def _write(self, lines: dict[str, list[bytes]]) -> None:
        try:
            self.sink.write(lines)
            return
        except Exception:  # a stale or closed file: open afresh and try once more
            self.sink.reopen()
        try:
            self.sink.write(lines)
        except Exception as exc:  # disk full, permissions: report, never raise into anything
            self.write_errors += sum(len(v) for v in lines.values())
            now = time.monotonic()
            if now - self._last_report > 60:
                self._last_report = now
                _log.error("logshipper could not write %d line(s): %s", self.write_errors, exc)

    def _drain_without_thread(self) -> None:
        batch = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if batch:
            self._process(batch)


def _after_fork_in_child() -> None:
    for pipeline in list(_live):
        pipeline.reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
