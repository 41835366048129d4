"""``configure()``: the one call that sets up where a service's prediction events go."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from logshipper.events import Service
from logshipper.pipeline import DEFAULT_MAX_QUEUE, Pipeline
from logshipper.redaction import DEFAULT_KEY_ENV, Redactor
from logshipper.sinks import DailyFileSink, StreamSink

_lock = threading.Lock()
_current: Pipeline | None = None
_atexit_registered = False


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
    """
    if not service or not isinstance(service, str) or "/" in service or service in (".", ".."):
        raise ValueError(f"service must be a non-empty name usable as a directory, got {service!r}")
    if (log_dir is None) == (stream is None):
        raise ValueError("give exactly one of log_dir (daily files) or stream (e.g. sys.stdout)")
    redactor = Redactor.from_config(redact_hash, redact_drop, redaction_key_env)
    sink = DailyFileSink(Path(log_dir) / service) if log_dir is not None else StreamSink(stream)
    pipeline = Pipeline(Service(service, version, environment, redactor), sink, max_queue=max_queue)
    global _current, _atexit_registered
    with _lock:
        previous, _current = _current, pipeline
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
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
    """Write what is queued and close the files (also runs at interpreter exit)."""
    global _current
    with _lock:
        pipeline, _current = _current, None
    if pipeline is not None:
        pipeline.close(timeout)
