"""What the logger did with every event, counted: ``logshipper.stats()`` returns a :class:`LoggerStats`.

Every event a ``PredictionLogger`` hands over ends in exactly one count: ``dropped`` (refused before it
was queued), ``written``, ``write_errors`` (its line could not be written), ``lost_at_exit`` (still
queued when the process exited and the writer could not finish in time), or it is still ``queued``.
"""

from __future__ import annotations

import errno
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

# Why a line could not be written, by errno: the names ``LoggerStats.write_errors`` uses.
_REASONS = {
    errno.ENOSPC: "disk_full",
    errno.EDQUOT: "disk_full",
    errno.EFBIG: "file_too_large",
    errno.EACCES: "permission",
    errno.EPERM: "permission",
    errno.EROFS: "read_only",
    errno.ENOENT: "no_directory",
    errno.ENOTDIR: "no_directory",
    errno.EIO: "io_error",
    errno.EPIPE: "closed_stream",
}


def reason_of(exc: BaseException) -> str:
    """The counted reason for a failed write: ``disk_full``, ``permission``, ... or the errno's name."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        return _REASONS.get(code) or errno.errorcode.get(code, "os_error").lower()
    if isinstance(exc, ValueError):  # a closed stream
        return "closed_stream"
    return "error"


@dataclass(frozen=True)
class LoggerStats:
    """A snapshot of what this process's logger did since it started (a forked child starts at zero).

    ``accepted == written + sum(write_errors.values()) + lost_at_exit + queued`` always holds;
    ``dropped`` events were never accepted.
    """

    accepted: int = 0
    """Events handed to the writer."""
    written: int = 0
    """Events whose whole line is in the file or stream."""
    queued: int = 0
    """Accepted events not yet written: waiting, being written now, or one line a failed write cut
    short, to be completed by the next write when the file has not moved."""
    dropped: Mapping[str, int] = field(default_factory=dict)
    """Events refused before queueing, by reason: ``queue_full`` (the writer is behind), ``closed``."""
    write_errors: Mapping[str, int] = field(default_factory=dict)
    """Accepted events whose line could not be written, by reason: ``disk_full``, ``file_too_large``,
    ``permission``, ``read_only``, ``no_directory``, ``io_error``, ``closed_stream``, or an errno name."""
    lost_at_exit: int = 0
    """Accepted events still queued or being written when shutdown stopped waiting for the writer."""
    repaired_lines: int = 0
    """Lines another writer left unfinished (killed mid-write) that were ended before this one's next
    line, so that only that writer's own line is lost."""

    @property
    def lost(self) -> int:
        """Every event that will never be written: dropped, failed or lost at exit."""
        return sum(self.dropped.values()) + sum(self.write_errors.values()) + self.lost_at_exit


class Counters:
    """The live counts behind :class:`LoggerStats`, shared by the caller's threads and the writer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken = 0  # accepted events the writer (or a shutdown) has taken off a queue
        self._written = 0
        self._dropped: Counter[str] = Counter()
        self._write_errors: Counter[str] = Counter()
        self._lost_at_exit = 0
        self._repaired = 0

    def drop(self, reason: str) -> None:
        with self._lock:
            self._dropped[reason] += 1

    def taken(self, n: int) -> None:
        with self._lock:
            self._taken += n

    def finished(self, *, written: int, failed: Mapping[str, int], repaired: int = 0) -> None:
        """Record what became of a batch the writer took."""
        with self._lock:
            self._written += written
            self._write_errors.update(failed)
            self._repaired += repaired

    def lost_at_exit(self, n: int) -> None:
        with self._lock:
            self._lost_at_exit += n

    def reclaimed_from_exit(self, n: int) -> None:
        """A batch counted lost at exit was finished after all: it is counted by :meth:`finished`."""
        with self._lock:
            self._lost_at_exit -= n

    def snapshot(self, waiting: int) -> LoggerStats:
        """The counts now; ``waiting`` is how many accepted events sit in the queues."""
        with self._lock:
            done = self._written + sum(self._write_errors.values()) + self._lost_at_exit
            return LoggerStats(
                accepted=self._taken + waiting,
                written=self._written,
                queued=self._taken - done + waiting,
                dropped=dict(self._dropped),
                write_errors=dict(self._write_errors),
                lost_at_exit=self._lost_at_exit,
                repaired_lines=self._repaired,
            )
