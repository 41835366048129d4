"""Where JSON lines go: daily files shared safely by many processes, or a stream for containers.

A sink never raises: it returns what it wrote and what it could not, by reason (:class:`WriteResult`).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol, cast

from logshipper import schema
from logshipper.counts import reason_of

try:
    import fcntl
except ImportError:  # not on POSIX: O_APPEND alone keeps lines whole on local disks
    fcntl = None  # type: ignore[assignment]

_KEEP_OPEN_DAYS = 3  # file descriptors kept for the most recent days (late events reuse them)
_NEWLINE = b"\n"


@dataclass
class WriteResult:
    """What one :meth:`Sink.write` did: lines written whole, lines lost by reason, and the first error of
    each reason (for the one report a reason gets)."""

    written: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    repaired: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    def fail(self, reason: str, lines: int, description: str) -> None:
        if lines:
            self.failed[reason] += lines
        self.errors.setdefault(reason, description)


class Sink(Protocol):
    """Receives complete lines grouped by their event's UTC day (``YYYY-MM-DD``)."""

    def write(self, lines_by_day: Mapping[str, Sequence[bytes]]) -> WriteResult: ...

    def close(self) -> WriteResult: ...

    def abandon(self) -> None: ...

    def after_fork(self) -> None: ...


@dataclass(frozen=True)
class _Cut:
    """The unwritten end of a line a failed write cut short, and where the file ended then."""

    inode: int
    end: int
    rest: bytes
    reason: str


class _Stopped(Exception):
    """A write stopped after ``done`` bytes of the data it was given."""

    def __init__(self, done: int, cause: OSError) -> None:
        super().__init__(str(cause))
        self.done, self.cause = done, cause


class DailyFileSink:
    """``<directory>/predictions-YYYY-MM-DD.ndjson``, one file per event UTC day.

    Files are opened ``O_APPEND`` and each batch is written under an exclusive ``flock``, so several
    processes (gunicorn workers) appending to one file never interleave lines.  Every batch starts on a
    line boundary: a line that a killed writer left unfinished is ended first (it alone is lost), and a
    line this writer's own failed write cut short is completed when the file has not moved since, so a
    full disk that frees up leaves no torn line.  Nothing written is ever written again.  Files and the
    directory are created with the process's umask (``0o666``/``0o777`` before it, as ``open`` does).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._fds: dict[str, int] = {}
        self._cut: dict[str, _Cut] = {}

    def path(self, day: str) -> Path:
        return self.directory / schema.log_file_name(day)

    def prepare(self) -> OSError | None:
        """Create the directory now; the error when it cannot be (writing will try again later)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return exc
        return None

    def write(self, lines_by_day: Mapping[str, Sequence[bytes]]) -> WriteResult:
        result = WriteResult()
        for day, lines in lines_by_day.items():
            self._write_day(day, lines, result)
        return result

    def _write_day(self, day: str, lines: Sequence[bytes], result: WriteResult) -> None:
        """Write ``lines``; after a failure, open the file afresh and go on from where it stopped, once."""
        remaining = list(lines)
        error: OSError | None = None
        for _ in range(2):
            try:
                fd = self._fd(day)
                with _locked(fd):
                    self._start_on_line_boundary(day, fd, result)
                    self._append(day, fd, remaining, result)
                return
            except OSError as exc:
                error = exc
                self._forget(day)
        assert error is not None
        result.fail(reason_of(error), len(remaining), f"cannot write {self.path(day)}: {_describe(error)}")

    def _start_on_line_boundary(self, day: str, fd: int, result: WriteResult) -> None:
        """Complete this writer's own cut line if the file ends where it was cut; else end any unfinished
        line at the end of the file (a killed writer's, or this one's after another writer ended it)."""
        info = os.fstat(fd)
        cut = self._cut.pop(day, None)
        if cut is not None and (cut.inode, cut.end) == (info.st_ino, info.st_size):
            try:
                _write_all(fd, cut.rest)
            except _Stopped as stopped:
                self._cut[day] = _Cut(info.st_ino, info.st_size + stopped.done, cut.rest[stopped.done :], cut.reason)
                raise stopped.cause from None
            result.written += 1
            return
        if cut is not None:
            result.fail(cut.reason, 1, f"a line cut short in {self.path(day)} was ended by another writer")
        if info.st_size and _last_byte(fd, info.st_size) not in (None, _NEWLINE):
            _write_all_or_raise(fd, _NEWLINE)
            result.repaired += 1

    def _append(self, day: str, fd: int, remaining: list[bytes], result: WriteResult) -> None:
        """Write ``remaining`` in one ``write`` loop, removing from it what was written; a line cut short
        by an error is kept in ``self._cut`` to be completed later."""
        data = b"".join(remaining)
        try:
            _write_all(fd, data)
        except _Stopped as stopped:
            whole, offset = 0, 0
            for line in remaining:
                if offset + len(line) > stopped.done:
                    break
                offset += len(line)
                whole += 1
            result.written += whole
            partial = stopped.done - offset
            if partial:
                info = os.fstat(fd)
                rest = remaining[whole][partial:]
                self._cut[day] = _Cut(info.st_ino, info.st_size, rest, reason_of(stopped.cause))
                whole += 1
            del remaining[:whole]
            raise stopped.cause from None
        result.written += len(remaining)
        remaining.clear()

    def _fd(self, day: str) -> int:
        fd = self._fds.get(day)
        if fd is None:
            others = sorted(d for d in self._fds if d != day)
            for old in others[: max(len(others) - (_KEEP_OPEN_DAYS - 1), 0)]:
                self._forget(old)
            fd = self._open(self.path(day))
            self._fds[day] = fd
        return fd

    def _open(self, path: Path) -> int:
        """Open for appending (and reading its last byte), creating the directory when it is missing."""
        flags = os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            return _open_rw_or_w(path, flags)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            return _open_rw_or_w(path, flags)

    def _forget(self, day: str) -> None:
        fd = self._fds.pop(day, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> WriteResult:
        """Close the files; a line still cut short is counted as lost (the next writer ends it)."""
        result = WriteResult()
        for day in list(self._fds):
            self._forget(day)
        for day, cut in self._cut.items():
            result.fail(cut.reason, 1, f"a line cut short in {self.path(day)} could not be completed")
        self._cut.clear()
        return result

    def abandon(self) -> None:
        """The writer is stuck in a write: leave the files to the exiting process."""

    def after_fork(self) -> None:
        """In a forked child: forget the parent's files (their locks are shared) and its cut lines."""
        for day in list(self._fds):
            self._forget(day)
        self._cut.clear()


def _open_rw_or_w(path: Path, flags: int) -> int:
    try:
        return os.open(path, os.O_RDWR | flags, 0o666)
    except PermissionError:  # a file we may append to but not read: write without the boundary check
        return os.open(path, os.O_WRONLY | flags, 0o666)


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        if fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)


def _last_byte(fd: int, size: int) -> bytes | None:
    """The file's last byte, or None when it cannot be read (opened write-only, no ``pread``)."""
    try:
        return os.pread(fd, 1, size - 1)
    except (OSError, AttributeError):
        return None


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``; :class:`_Stopped` says how much was written when a write fails."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        try:
            done += os.write(fd, view[done:])
        except OSError as exc:
            raise _Stopped(done, exc) from None


def _write_all_or_raise(fd: int, data: bytes) -> None:
    try:
        _write_all(fd, data)
    except _Stopped as stopped:
        raise stopped.cause from None


def _describe(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)
    return strerror or f"{type(exc).__name__}: {exc}"


class StreamSink:
    """Lines to a stream (stdout for containers, where the runtime collects them), flushed per batch."""

    def __init__(self, stream: IO[str] | IO[bytes] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self._abandoned = False

    def write(self, lines_by_day: Mapping[str, Sequence[bytes]]) -> WriteResult:
        data = b"".join(b"".join(lines) for lines in lines_by_day.values())
        count = sum(len(lines) for lines in lines_by_day.values())
        result = WriteResult()
        try:
            self._write(data)
        except Exception as exc:  # a closed or broken stream: counted, never raised into anything
            result.fail(reason_of(exc), count, f"cannot write to the stream: {_describe(exc)}")
            return result
        result.written = count
        return result

    def _write(self, data: bytes) -> None:
        stream = self.stream
        binary = getattr(stream, "buffer", None) if isinstance(stream, io.TextIOBase) else stream
        if binary is not None and not isinstance(binary, io.TextIOBase):
            if binary is not stream:
                stream.flush()  # text written to the stream earlier goes first
            cast(IO[bytes], binary).write(data)
            binary.flush()
        else:
            cast(IO[str], stream).write(data.decode("utf-8"))
            stream.flush()

    def close(self) -> WriteResult:
        if not self._abandoned:
            with contextlib.suppress(Exception):
                self.stream.flush()
        return WriteResult()

    def abandon(self) -> None:
        """The writer is stuck in a write: flushing the stream now would block the exiting process."""
        self._abandoned = True

    def after_fork(self) -> None:
        """Streams are shared with a forked parent as they should be: nothing to reopen."""
