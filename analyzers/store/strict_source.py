"""The source of a strict read: two sample lines that tell DuckDB's JSON reader every key a range may hold and
each one's type, then the range's lines.

DuckDB refuses a key it was not told of only when it detects the types itself, from the first lines of one
file; given the columns, it drops such keys silently.  The sample lines give it the types the typed read
declares otherwise: text as ``VARCHAR``, and every other field as ``JSON`` (one line holds a number there,
the other a string), so that no value is ever cast on the way in.  Keys seen but not read (``Schema.others``)
are told of too, as ``JSON``.  A features or groups object with no known key holds the sentinel key alone; the
line holds it too, so that DuckDB, reading only some of a line's keys, never checks the line's own keys.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from analyzers.store.jsonparse import OBJECTS, SENTINEL, Schema, typed_spec
from analyzers.store.linescan import ScannedRange
from analyzers.store.private_files import FILE_MODE

PREAMBLE_LINES = 2
_MIXED = (1, "s")  # one value per sample line: DuckDB detects JSON for a field that holds both


def preamble(schema: Schema, others: Mapping[str, list[str]]) -> bytes:
    """The sample lines for a range read with ``schema``'s columns, whose objects also hold ``others``."""
    spec = typed_spec(schema)
    for obj in ("features", "groups"):
        spec["ml"].setdefault(obj, {SENTINEL: "JSON"})
    lines = []
    for line in range(PREAMBLE_LINES):
        sample = _sample(spec, line)
        sample[SENTINEL] = "x"  # never read: the line's own keys are not checked, as DuckDB reads only some
        for obj, keys in others.items():
            if obj not in OBJECTS:
                continue
            target = _object(sample, obj)
            for key in keys:
                target.setdefault(key, _MIXED[line])
        lines.append(orjson.dumps(sample))
    return b"\n".join(lines) + b"\n"


def _sample(spec: Mapping[str, Any], line: int) -> dict[str, Any]:
    return {
        name: _sample(kind, line) if isinstance(kind, Mapping) else ("x" if kind == "VARCHAR" else _MIXED[line])
        for name, kind in spec.items()
    }


def _object(sample: dict[str, Any], obj: str) -> dict[str, Any]:
    """The sample's object at a name of ``OBJECTS``."""
    for part in OBJECTS[obj].split("/")[1:]:
        sample = sample[part]
    return sample


def write_source(scanned: ScannedRange, head: bytes, target: Path) -> None:
    """Write ``head`` then the scanned range's lines to ``target``."""
    size = scanned.end if not scanned.temporary else scanned.source.stat().st_size
    with (
        open(scanned.source, "rb") as source,
        os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "wb") as out,
    ):
        out.write(head)
        out.flush()
        copied = 0
        with contextlib.suppress(AttributeError, OSError):  # the kernel copies, where it can
            while copied < size:
                step = os.copy_file_range(source.fileno(), out.fileno(), size - copied, copied)
                if step == 0:
                    break
                copied += step
        source.seek(copied)
        out.seek(len(head) + copied)
        left = size - copied
        while left > 0:
            block = source.read(min(left, 2**22))
            if not block:
                raise OSError(f"{scanned.source} ended after {size - left} of {size} bytes")
            out.write(block)
            left -= len(block)
