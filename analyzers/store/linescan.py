"""The lines of a byte range of a log file, checked before any JSON is parsed.

Only whole lines are taken: a range ends after its last newline, so a line a writer has not finished
is read at the next scan (as Filebeat's harvester does).  A line longer than the cap, with bytes that
are not UTF-8, or with control characters JSON cannot hold, is set aside with its line number; so is
the rest of a gzip file that ends early.  When DuckDB cannot read the range as it is (a range that
starts mid-file, a compressed file, a set-aside line, a blank line), the range is copied to a private
temporary file in which every set-aside or blank line is ``{}``, so that line numbers stay exact.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

from analyzers.store.logfiles import LogFile
from analyzers.store.private_files import FILE_MODE

BLOCK_BYTES = 16 * 2**20
PLACEHOLDER = b"{}"
_TIME = re.compile(rb'"@timestamp"\s*:\s*"([^"\\]{1,64})"')
_MODEL = re.compile(rb'"model"\s*:\s*\{\s*"name"\s*:\s*"([^"\\]{1,256})"')
_HEAD_BYTES = 512


@dataclass(frozen=True)
class SetAside:
    """A line not parsed, why, and what its first bytes say of its time and model (for quality counts)."""

    line: int
    reason: str
    time: str | None = None
    model: str | None = None


@dataclass
class ScannedRange:
    """A range of a log file ready for DuckDB: ``source`` holds exactly ``lines`` lines, the first of which
    is line ``first_line`` of the log file; ``end`` is the byte offset after the last line taken."""

    source: Path
    temporary: bool
    first_line: int
    lines: int
    end: int
    longest: int = 0  # bytes of the source's longest line (DuckDB's readers size their buffers by it)
    set_aside: list[SetAside] = field(default_factory=list)
    placeholders: set[int] = field(default_factory=set)

    def release(self) -> None:
        if self.temporary:
            self.source.unlink(missing_ok=True)


def _guess(head: bytes) -> tuple[str | None, str | None]:
    time = _TIME.search(head)
    model = _MODEL.search(head)
    decode = lambda m: m.group(1).decode("utf-8", "replace") if m else None  # noqa: E731
    return decode(time), decode(model)


class _Gunzip:
    """A gzip file's bytes as they decompress, so that a file cut short still yields everything before the cut."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.inflater = zlib.decompressobj(wbits=47)  # 47: gzip or zlib header, detected
        self.truncated = False
        self._done = False

    def read(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size and not self._done:
            compressed = self.handle.read(2**20)
            if not compressed:
                self._done = True
                self.truncated = not self.inflater.eof
                break
            try:
                out += self.inflater.decompress(compressed)
                while self.inflater.eof and self.inflater.unused_data:  # a file of several gzip members
                    rest = self.inflater.unused_data
                    self.inflater = zlib.decompressobj(wbits=47)
                    out += self.inflater.decompress(rest)
            except zlib.error:
                self._done = self.truncated = True
        return bytes(out)


class _Blocks:
    """Complete lines of a byte stream in blocks; a line longer than the cap is skipped as it streams by.

    Yields ``("block", buffer, line ends, lines before)`` and, for a skipped line, ``("long", head, lines before)``,
    in file order.  ``consumed`` only ever counts complete lines: an unfinished last line is read next time.
    """

    def __init__(self, stream: BinaryIO, limit: int | None, max_line: int) -> None:
        self.stream = stream
        self.limit = limit  # bytes to read at most (plain files); None for a whole decompressed stream
        self.max_line = max_line
        self.consumed = 0

    def _read(self, size: int) -> bytes:
        if self.limit is not None:
            size = min(size, self.limit)
            if size <= 0:
                return b""
        data = self.stream.read(size)
        if self.limit is not None:
            self.limit -= len(data)
        return data

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        pending = b""
        skipping: bytes | None = None  # head of an over-long line whose newline is still to come
        skipped = 0
        before = 0
        while chunk := self._read(BLOCK_BYTES):
            if skipping is not None:
                cut = chunk.find(b"\n")
                if cut < 0:
                    skipped += len(chunk)
                    continue
                yield ("long", skipping, before)
                before += 1
                self.consumed += skipped + cut + 1
                chunk, skipping, skipped = chunk[cut + 1 :], None, 0
            data = pending + chunk
            ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
            last = int(ends[-1]) + 1 if len(ends) else 0
            if last:
                yield ("block", data[:last], ends, before)
                before += len(ends)
                self.consumed += last
            pending = data[last:]
            if len(pending) > self.max_line:
                skipping, skipped, pending = pending[:_HEAD_BYTES], len(pending), b""


def _check_block(buffer: bytes, ends: np.ndarray, max_line: int) -> dict[int, str]:
    """Line index (within the block) -> reason, for lines longer than the cap, with control bytes, or not UTF-8."""
    bad: dict[int, str] = {}
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts
    for index in np.flatnonzero(lengths > max_line):
        bad[int(index)] = "line too long"
    view = np.frombuffer(buffer, np.uint8)
    control = np.flatnonzero((view < 32) & (view != 9) & (view != 10))
    if len(control):
        allowed = (view[control] == 13) & (np.isin(control + 1, ends))  # CR of a CRLF line ending
        for index in np.unique(np.searchsorted(ends, control[~allowed])):
            bad.setdefault(int(index), "bad JSON")
    offsets = np.empty(len(ends) + 1, np.int64)
    offsets[0] = 0
    offsets[1:] = ends + 1
    text = pa.Array.from_buffers(pa.large_binary(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(buffer)])
    try:
        text.cast(pa.large_string())
    except pa.ArrowInvalid:
        for line in range(len(ends)):
            start, end = int(starts[line]), int(ends[line])
            try:
                buffer[start:end].decode("utf-8")
            except UnicodeDecodeError:
                bad.setdefault(line, "invalid UTF-8")
    return bad


def _blank(buffer: bytes, ends: np.ndarray) -> list[int]:
    """Indexes of lines holding nothing but whitespace."""
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    short = np.flatnonzero(ends - starts <= 8)
    return [int(i) for i in short if not buffer[int(starts[i]) : int(ends[i])].strip()]


def scan(
    log_file: LogFile,
    start: int,
    first_line: int,
    *,
    max_line: int,
    scratch: Path,
    size: int,
    replace: set[int] | None = None,
    careful: bool = False,
) -> ScannedRange:
    """The complete lines of ``log_file`` from byte ``start`` (line ``first_line``) up to byte ``size``.

    A whole plain file that ends with a newline is given to DuckDB as it is, its lines only counted (if DuckDB
    refuses it, a line too long or not UTF-8, or reads another number of lines, the caller asks again with
    ``careful``); otherwise every line is checked and the range copied to ``scratch``, with the lines in
    ``replace`` (found bad by the JSON passes) as placeholders too.  The caller releases the copy.
    """
    if start == 0 and not log_file.compressed and not replace and not careful:
        counted = _count_lines(log_file.path, size)
        if counted is not None and counted[1] <= max_line:
            return ScannedRange(log_file.path, False, first_line, counted[0], size, counted[1])
    return _scan(log_file, start, first_line, max_line=max_line, size=size, copy_to=scratch, replace=replace or set())


def _count_lines(path: Path, size: int) -> tuple[int, int] | None:
    """The number of lines of a file whose last byte is a newline, and its longest line (None when the last
    line is unfinished)."""
    lines = longest = 0
    carried = 0  # bytes of a line begun in an earlier block
    last = b""
    with open(path, "rb") as handle:
        left = size
        while left > 0:
            block = handle.read(min(BLOCK_BYTES, left))
            if not block:
                return None
            left -= len(block)
            ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
            if len(ends):
                longest = max(longest, carried + int(ends[0]), int(np.diff(ends).max(initial=0)))
                carried = len(block) - int(ends[-1]) - 1
            else:
                carried += len(block)
            lines += len(ends)
            last = block[-1:]
    return (lines, longest) if last == b"\n" else None


def _scan(
    log_file: LogFile, start: int, first_line: int, *, max_line: int, size: int, copy_to: Path, replace: set[int]
) -> ScannedRange:
    out = os.fdopen(os.open(copy_to, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "wb")
    result = ScannedRange(copy_to, True, first_line, 0, start)
    try:
        with open(log_file.path, "rb") as handle:
            if start:
                handle.seek(start)
            stream: Any = _Gunzip(handle) if log_file.compressed else handle
            limit = None if log_file.compressed else size - start
            blocks = _Blocks(stream, limit, max_line)
            for item in blocks:
                if item[0] == "long":
                    _, head, before = item
                    result.set_aside.append(SetAside(first_line + before, "line too long", *_guess(head)))
                    result.placeholders.add(first_line + before)
                    out.write(PLACEHOLDER + b"\n")
                    result.lines = before + 1
                    continue
                _, buffer, ends, before = item
                bad = _check_block(buffer, ends, max_line)
                blank = _blank(buffer, ends)
                base = first_line + before
                for index, reason in bad.items():
                    head = buffer[(int(ends[index - 1]) + 1 if index else 0) :][:_HEAD_BYTES]
                    result.set_aside.append(SetAside(base + index, reason, *_guess(head)))
                replaced = {*bad, *blank, *(line - base for line in replace if 0 <= line - base < len(ends))}
                lengths = np.diff(ends, prepend=-1) - 1
                if replaced:
                    lengths[sorted(replaced)] = 0
                result.longest = max(result.longest, int(lengths.max(initial=0)))
                result.placeholders.update(base + i for i in replaced)
                _copy(out, buffer, ends, sorted(replaced))
                result.lines = before + len(ends)
            result.end = size if log_file.compressed else start + blocks.consumed
            if getattr(stream, "truncated", False):  # one more line, a placeholder, stands for what could not be read
                result.set_aside.append(SetAside(first_line + result.lines, "truncated gzip"))
                result.placeholders.add(first_line + result.lines)
                result.lines += 1
                out.write(PLACEHOLDER + b"\n")
    finally:
        out.close()
    result.set_aside.sort(key=lambda s: s.line)
    return result


def _copy(out: BinaryIO, buffer: bytes, ends: np.ndarray, replaced: list[int]) -> None:
    """Write the block's lines, each replaced one as ``{}``."""
    position = 0
    for index in replaced:
        start = int(ends[index - 1]) + 1 if index else 0
        out.write(buffer[position:start])
        out.write(PLACEHOLDER + b"\n")
        position = int(ends[index]) + 1
    out.write(buffer[position:])
