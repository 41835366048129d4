"""The hand-off from the service's threads to one writer thread: a queue, a listener, a sink.

The caller only puts its arguments on a queue (no formatting, no I/O), so logging never blocks
the service on disk.  The listener builds, encodes and writes events in batches.  When the queue
is full (the disk stalls), events are dropped and counted rather than blocking or eating memory;
every event's fate is counted in :class:`logshipper.counts.Counters`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from typing import Any

from logshipper.counts import Counters
from logshipper.events import Builder, Service, build_line
from logshipper.sinks import Sink, WriteResult

DEFAULT_MAX_QUEUE = 100_000
BATCH = 1_000
_STOP = object()
_REPORT_EVERY = 60.0  # seconds between two reports of a reason that keeps failing
_log = logging.getLogger("logshipper")


class Pipeline:
    """Owns the queue, the listener thread and the sink for one configured service."""

    def __init__(self, service: Service, sink: Sink, *, counters: Counters, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.service = service
        self.sink = sink
        self.max_queue = max_queue
        self.counters = counters
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._markers = 0  # flush and stop markers in the queue (they are not events)
        self._in_flight = 0  # events of the batch being written
        self._abandoned = 0  # of those, how many a shutdown that stopped waiting counted as lost
        self._gave_up = False  # shutdown stopped waiting for the writer
        self._closed = False
        self._reported: dict[str, float] = {}
        self._at_start = counters.snapshot(0)

    def submit(self, builder: Builder, fields: dict[str, Any]) -> bool:
        """Queue one event; ``False`` when it was dropped (queue full or pipeline closed), and counted."""
        if self._closed:
            self.counters.drop("closed")
            return False
        if self._queue.qsize() >= self.max_queue:
            self.counters.drop("queue_full")
            return False
        self._queue.put((builder, fields))
        if self._thread is None:
            self._start()
        return True

    def note_reported(self, reason: str) -> None:
        """A failure of this reason was just reported (by ``configure``): do not report it again at once."""
        self._reported[reason] = time.monotonic()

    def waiting(self) -> int:
        """Accepted events still in the queue."""
        return max(self._queue.qsize() - self._markers, 0)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="logshipper-writer", daemon=True)
                self._thread.start()

    def _put_marker(self, marker: object) -> None:
        with self._lock:
            self._markers += 1
        self._queue.put(marker)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written; ``False`` on timeout."""
        if self._thread is None or not self._thread.is_alive():
            return self._queue.empty()
        done = threading.Event()
        self._put_marker(done)
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, stop the listener and close the files.

        When the writer does not finish within ``timeout`` (a stalled disk), what it still holds is
        counted as lost at exit and reported, and the process is not kept waiting.
        """
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._put_marker(_STOP)
            thread.join(timeout)
        else:
            self._drain_without_thread()
        if thread is not None and thread.is_alive():
            self._give_up_on_writer(timeout)
            self.sink.abandon()
        else:
            self._account(self.sink.close())
        self._report_losses()

    def after_fork(self) -> None:
        """In a forked child: a fresh queue (the parent writes what it had queued) and own files."""
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._lock = threading.Lock()
        self._markers = self._in_flight = self._abandoned = 0
        self._reported = {}
        self._at_start = self.counters.snapshot(0)
        self.sink.after_fork()

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
        events = [item for item in batch if type(item) is tuple]
        markers = [item for item in batch if type(item) is not tuple]
        self.counters.taken(len(events))
        with self._lock:
            self._markers -= len(markers)
            if self._gave_up:  # taken off the queue while a shutdown was counting what is left
                self.counters.lost_at_exit(len(events))
                return True
            self._in_flight = len(events)
        if events:
            lines: defaultdict[str, list[bytes]] = defaultdict(list)
            for builder, fields in events:
                day, line = build_line(self.service, builder, fields)
                lines[day].append(line)
            self._account(self.sink.write(lines))
        with self._lock:
            self._in_flight = 0
            if self._abandoned:  # finished after all, after a shutdown counted it lost at exit
                self.counters.reclaimed_from_exit(self._abandoned)
                self._abandoned = 0
        stop = False
        for marker in markers:
            if marker is _STOP:
                stop = True
            else:
                marker.set()
        return stop

    def _account(self, result: WriteResult) -> None:
        """Count what a write did and report each failing reason (once a minute at most)."""
        self.counters.finished(written=result.written, failed=result.failed, repaired=result.repaired)
        now = time.monotonic()
        for reason, description in result.errors.items():
            last = self._reported.get(reason)
            if last is None or now - last > _REPORT_EVERY:
                self._reported[reason] = now
                _log.error(
                    "logshipper: %s (%s); the events are not written and are counted in logshipper.stats()",
                    description,
                    reason,
                )

    def _give_up_on_writer(self, timeout: float) -> None:
        """Count what a stuck writer holds, and what is still queued, as lost at exit."""
        drained = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if type(item) is tuple:
                drained += 1
        self.counters.taken(drained)
        with self._lock:
            self._gave_up = True
            self._markers = 0
            self._abandoned = self._in_flight
            self.counters.lost_at_exit(drained + self._in_flight)
        self._put_marker(_STOP)  # a writer that recovers after all stops there
        _log.error(
            "logshipper: the writer did not finish within %.0f s (a stalled disk or stream): "
            "%d event(s) still queued or being written are lost at exit",
            timeout,
            drained + self._abandoned,
        )

    def _report_losses(self) -> None:
        """At close: what this pipeline could not write, by reason, in one message."""
        now, before = self.counters.snapshot(self.waiting()), self._at_start
        lost = {
            reason: n - before.write_errors.get(reason, 0)
            for reason, n in now.write_errors.items()
            if n > before.write_errors.get(reason, 0)
        }
        dropped = now.dropped.get("queue_full", 0) - before.dropped.get("queue_full", 0)
        if dropped:
            lost["queue_full (the writer could not keep up)"] = dropped
        if now.lost_at_exit > before.lost_at_exit:
            lost["still queued at exit"] = now.lost_at_exit - before.lost_at_exit
        if lost:
            _log.warning(
                "logshipper lost %d event(s): %s (see logshipper.stats())",
                sum(lost.values()),
                ", ".join(f"{n} {reason}" for reason, n in sorted(lost.items())),
            )

    def _drain_without_thread(self) -> None:
        batch = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if batch:
            self._process(batch)
