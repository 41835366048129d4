"""Where reports go: ``--out`` as a file or a directory, and writes that never leave a partial file behind."""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from analyzers.report.naming import report_file_name

DEFAULT_FILE = "predwatch-report.html"  # one model and no --out
DEFAULT_DIRECTORY = "predwatch-report"  # several models and no --out
PAGE_SUFFIXES = (".html", ".htm")


def is_directory(out: str | os.PathLike[str]) -> bool:
    """Whether ``out`` names a directory: one that exists, or a path written with a trailing separator."""
    text = os.fspath(out)
    return Path(text).is_dir() or text.endswith((os.sep, "/"))


def report_paths(out: str | os.PathLike[str] | None, models: Sequence[str]) -> dict[str, Path]:
    """The file of each model's report, decided before any work so a bad ``--out`` fails at once.

    A directory (existing, or written with a trailing ``/``) gets ``<model>.html`` per model (the name made safe by
    :func:`analyzers.report.naming.report_file_name`); one model
    and any other path write that file; several models need a directory, created when missing.
    """
    if out is None:
        out = DEFAULT_FILE if len(models) == 1 else DEFAULT_DIRECTORY + os.sep
    path = Path(out)
    if is_directory(out):
        return {model: path / report_file_name(model) for model in models}
    if len(models) == 1:
        return {models[0]: path}
    if path.exists() or path.suffix.lower() in PAGE_SUFFIXES:
        raise ValueError(f"--out {out}: {len(models)} models need a directory (one <model>.html each), not a file")
    return {model: path / report_file_name(model) for model in models}


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in its folder, removed should anything fail."""
    if path.is_dir():
        raise ValueError(f"cannot write the report to {path}: it is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("x", encoding="utf-8") as fh:  # "x": a new file with the usual permissions
            fh.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
