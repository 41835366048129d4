"""Files of the state directory: created readable by their owner only, replaced atomically.

Parsed log lines, findings and alert state hold feature values, so every directory the store creates is
0700 and every file 0600, whatever the process umask (the log files themselves keep the service's).
A file is written under a private temporary name, then renamed, so that no reader ever sees it half written.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` and its missing parents, each created 0700 (existing folders are left as they are)."""
    missing = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=DIR_MODE)
        os.chmod(folder, DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def make_private(path: Path) -> None:
    """Restrict a file someone else created (DuckDB, SQLite) to its owner."""
    os.chmod(path, FILE_MODE)


def temporary_name(target: Path, tag: str = "") -> Path:
    """A name beside ``target`` that only this process uses: ``.<name>.<pid>[-<tag>].tmp``."""
    suffix = f"-{tag}" if tag else ""
    return target.with_name(f".{target.name}.{os.getpid()}{suffix}.tmp")


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` (0600) so that readers see the old file or the new one, never a mix."""
    private_dir(target.parent)
    partial = temporary_name(target)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def owner_pid(temporary: Path) -> int | None:
    """The process id in a name made by :func:`temporary_name` (None when it has none)."""
    parts = temporary.name.split(".")
    digits = parts[-2].split("-")[0] if len(parts) >= 3 and parts[-1] == "tmp" else ""
    return int(digits) if digits.isdigit() else None
