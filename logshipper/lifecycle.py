"""The process-wide writer's life: ``configure()`` sets it up, ``flush()``/``shutdown()`` end it, and it is
flushed when the process exits, also as a ``multiprocessing`` child that leaves through ``os._exit``."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from logshipper.counts import Counters, LoggerStats, reason_of
from logshipper.events import Service
from logshipper.pipeline import DEFAULT_MAX_QUEUE, Pipeline
from logshipper.redaction import DEFAULT_KEY_ENV, Redactor
from logshipper.sinks import DailyFileSink, StreamSink

_FINALIZE_PRIORITY = -10  # multiprocessing runs its finalizers by descending priority: ours late
_lock = threading.Lock()
_current: Pipeline | None = None
_counters = Counters()
_exit_hooks = {"atexit": False, "multiprocessing": False}
_log = logging.getLogger("logshipper")


def configure(
    service: str,
    log_dir: str | os.PathLike[str] | None = None,
    stream: IO[str] | IO[bytes] | None = None,
    *,
    version: str | None = None,
    environment: str | None = None,
    redact_hash: Iterable[str] = (),
    redact_drop: Iterable[str] = (),
    redaction_key_env: str = DEFAULT_KEY_ENV,
    max_queue: int = DEFAULT_MAX_QUEUE,
) -> Pipeline:
    """Send every :class:`PredictionLogger` event of this process to daily files or a stream.

    ``log_dir`` writes ``<log_dir>/<service>/predictions-YYYY-MM-DD.ndjson`` (the event's UTC day);
    ``stream`` (e.g. ``sys.stdout``) suits containers.  Writing happens on a listener thread and is
    flushed at exit.  ``redact_hash``/``redact_drop`` name fields (``features.x``, ``groups.y``,
    ``entity_id``) to hash with the key in ``$PREDWATCH_REDACTION_KEY`` or to drop.  Calling it
    again replaces the previous set-up after writing what it had queued.

    Wrong arguments raise ``ValueError`` (or :class:`RedactionError`); a directory that cannot be
    created or written never raises: it is reported once on stderr (logger ``logshipper``) and the
    events that cannot be written are counted in :func:`stats`.
    """
    if not service or not isinstance(service, str) or "/" in service or service in (".", ".."):
        raise ValueError(f"service must be a non-empty name usable as a directory, got {service!r}")
    if (log_dir is None) == (stream is None):
        raise ValueError("give exactly one of log_dir (daily files) or stream (e.g. sys.stdout)")
    redactor = Redactor.from_config(redact_hash, redact_drop, redaction_key_env)
    sink: DailyFileSink | StreamSink
    directory = Path(log_dir) / service if log_dir is not None else None
    if directory is not None:
        sink = DailyFileSink(directory)
        problem = sink.prepare()
    else:
        sink, problem = StreamSink(stream), None
    pipeline = Pipeline(Service(service, version, environment, redactor), sink, counters=_counters, max_queue=max_queue)
    if problem is not None:
        pipeline.note_reported(reason_of(problem))
        _log.error(
            "logshipper: cannot create the log directory %s: %s (%s); events will be counted as not written "
            "(logshipper.stats()) until it can be",
            directory,
            problem.strerror or problem,
            reason_of(problem),
        )
    global _current
    with _lock:
        previous, _current = _current, pipeline
        _register_exit_hooks()
    if previous is not None:
        previous.close()
    return pipeline


def current() -> Pipeline | None:
    """The pipeline :func:`configure` set up, if any."""
    return _current


def flush(timeout: float = 5.0) -> bool:
    """Wait until every event logged so far is written; ``False`` on timeout."""
    pipeline = _current
    return True if pipeline is None else pipeline.flush(timeout)


def shutdown(timeout: float = 5.0) -> None:
    """Write what is queued and close the files (also runs at exit: ``atexit`` and multiprocessing's
    finalizers).  A writer that does not finish within ``timeout`` has what it holds counted as lost at
    exit and reported, rather than keeping the process from exiting."""
    global _current
    with _lock:
        pipeline, _current = _current, None
    if pipeline is not None:
        pipeline.close(timeout)


def stats() -> LoggerStats:
    """What the logger did with this process's events so far: accepted, written, dropped and failed by
    reason, lost at exit (see :class:`LoggerStats`)."""
    pipeline = _current
    return _counters.snapshot(pipeline.waiting() if pipeline is not None else 0)


def _register_exit_hooks() -> None:
    """``atexit`` for a normal exit; multiprocessing's finalizers for its children, which leave through
    ``os._exit`` and skip ``atexit`` (fork and forkserver start methods)."""
    if not _exit_hooks["atexit"]:
        atexit.register(shutdown)
        _exit_hooks["atexit"] = True
    _watch_multiprocessing()


def _watch_multiprocessing() -> None:
    """When the process uses multiprocessing: finalize at its exit, again in every child it forks (a
    child clears the finalizers it inherits, then runs its after-fork hooks).  Not imported otherwise."""
    util: Any = sys.modules.get("multiprocessing.util")
    if util is None:
        return
    if not _exit_hooks["multiprocessing"]:
        util.register_after_fork(_AFTER_FORK, _finalize_at_exit)
        _exit_hooks["multiprocessing"] = True
    _finalize_at_exit(_AFTER_FORK)


class _Token:
    """The object multiprocessing's after-fork registry is keyed by (it holds it weakly)."""


_AFTER_FORK = _Token()
_finalizer: list[Any] = []


def _finalize_at_exit(_: object) -> None:
    util: Any = sys.modules["multiprocessing.util"]
    if not (_finalizer and _finalizer[0].still_active()):
        _finalizer[:] = [util.Finalize(None, shutdown, exitpriority=_FINALIZE_PRIORITY)]


def _after_fork_in_child() -> None:
    """A forked child starts with its own lock, counts and writer; what the parent had queued stays the
    parent's to write."""
    global _lock, _counters
    _lock = threading.Lock()
    _counters = Counters()
    pipeline = _current
    if pipeline is not None:
        pipeline.counters = _counters
        pipeline.after_fork()
        _watch_multiprocessing()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
