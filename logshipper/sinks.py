"""Where JSON lines go: daily files shared safely by many processes, or a stream for containers."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol

from logshipper import schema

try:
    import fcntl
except ImportError:  # not on POSIX: O_APPEND alone keeps lines whole on local disks
    fcntl = None  # type: ignore[assignment]

_KEEP_OPEN_DAYS = 3  # file descriptors kept for the most recent days (late events reuse them)


class Sink(Protocol):
    """Receives complete lines grouped by their event's UTC day (``YYYY-MM-DD``)."""

    def write(self, lines_by_day: Mapping[str, Sequence[bytes]]) -> None: ...

    def close(self) -> None: ...

    def reopen(self) -> None: ...


class DailyFileSink:
    """``<directory>/predictions-YYYY-MM-DD.ndjson``, one file per event UTC day.

    Files are opened ``O_APPEND`` and each batch is written with one locked ``write`` loop, so
    several processes (gunicorn workers) appending to one file never interleave or cut lines.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fds: dict[str, int] = {}

    def path(self, day: str) -> Path:
        return self.directory / schema.log_file_name(day)

    def write(self, lines_by_day: Mapping[str, Sequence[bytes]]) -> None:
        for day, lines in lines_by_day.items():
            _write_all(self._fd(day), b"".join(lines))

    def _fd(self, day: str) -> int:
        fd = self._fds.get(day)
        if fd is None:
            others = sorted(d for d in self._fds if d != day)
            for old in others[: max(len(others) - (_KEEP_OPEN_DAYS - 1), 0)]:
                os.close(self._fds.pop(old))
            fd = os.open(self.path(day), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._fds[day] = fd
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def reopen(self) -> None:
        """Forget open files (they are opened again on the next write): after a fork, whose child shares
        the parent's file descriptions and locks, or after a failed write."""
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


def _write_all(fd: int, data: bytes) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)


class StreamSink:
    """Lines to a stream (stdout for containers, where the runtime collects them), flushed per batch."""

    def __init__(self, stream: IO[str] | IO[bytes] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout

    def write(self, lines_by_day: Mapping[str, Sequence[bytes]]) -> None:
        data = b"".join(b"".join(lines) for lines in lines_by_day.values())
        binary = self.stream if not isinstance(self.stream, io.TextIOBase) else getattr(self.stream, "buffer", None)
        if binary is not None and not isinstance(binary, io.TextIOBase):
            with contextlib.suppress(AttributeError, ValueError):
                self.stream.flush()
            binary.write(data)  # type: ignore[arg-type]
            binary.flush()
        else:
            self.stream.write(data.decode("utf-8"))  # type: ignore[call-overload]
            self.stream.flush()

    def close(self) -> None:
        with contextlib.suppress(AttributeError, ValueError):
            self.stream.flush()

    def reopen(self) -> None:
        """Streams are shared with a forked parent as they should be: nothing to reopen."""
