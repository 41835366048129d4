"""The logger's daily files on disk: which exist, which day and service each holds, and how to tell versions apart.

Files are ``<dir>/<service>/predictions-YYYY-MM-DD.ndjson``, also rotated (``.ndjson.1``) or
gzip-compressed (``.ndjson.gz``).  Like Filebeat's registry, a file is known by its device and inode; its
size and the fingerprint of its first bytes tell an append (parse the new bytes only) from a truncation or
a replacement (parse it again).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from logshipper import schema

FILE_PATTERN = re.compile(
    re.escape(schema.LOG_FILE_PREFIX) + r"(\d{4}-\d{2}-\d{2})" + re.escape(schema.LOG_FILE_SUFFIX) + r"(\.\d+)?(\.gz)?$"
)
ROOT_SERVICE = "."  # the service name of files directly in the log directory
_FINGERPRINT_BYTES = 1024


@dataclass(frozen=True)
class LogFile:
    """One daily log file: where it is, the UTC day it holds and the service folder it sits in."""

    path: Path
    day: date
    service: str

    @property
    def compressed(self) -> bool:
        return self.path.suffix == ".gz"

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class FileVersion:
    """What a log file is right now: its identity (device, inode), size and modification time."""

    dev: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileVersion:
        stat = path.stat()
        return cls(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def fingerprint(path: Path, length: int) -> str:
    """A hash of the first ``length`` bytes (at most 1 KiB): equal for a file that was only appended to."""
    with open(path, "rb") as handle:
        return hashlib.sha1(handle.read(min(length, _FINGERPRINT_BYTES)), usedforsecurity=False).hexdigest()


def discover(log_dir: Path) -> list[LogFile]:
    """Every daily log file under ``log_dir`` (one folder per service, or the files directly)."""
    found: list[LogFile] = []
    if not log_dir.is_dir():
        return found
    candidates = [*log_dir.glob("*/" + schema.LOG_FILE_PREFIX + "*"), *log_dir.glob(schema.LOG_FILE_PREFIX + "*")]
    for path in sorted(candidates):
        match = FILE_PATTERN.search(path.name)
        if match and path.is_file():
            service = ROOT_SERVICE if path.parent == log_dir else path.parent.name
            found.append(LogFile(path, datetime.strptime(match.group(1), "%Y-%m-%d").date(), service))
    return found


class Directory:
    """The log directory's files, listed again only when a folder in it changed (its mtime moved)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._stamp: tuple[tuple[str, int], ...] | None = None
        self._files: list[LogFile] = []

    def _folders_stamp(self) -> tuple[tuple[str, int], ...]:
        try:
            entries = [self.log_dir, *(p for p in self.log_dir.iterdir() if p.is_dir())]
        except OSError:
            return ()
        return tuple(sorted((str(p), os.stat(p).st_mtime_ns) for p in entries))

    def files(self) -> list[LogFile]:
        stamp = self._folders_stamp()
        if stamp != self._stamp:
            self._files = discover(self.log_dir)
            self._stamp = stamp
        return list(self._files)
