"""What a service's registry records: each log file's identity and parsed extent, and the Parquet files
(its own parts, and month bins shared with other files) that hold its lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from analyzers.store.jsonparse import Schema
from analyzers.store.logfiles import FileVersion


@dataclass
class Part:
    name: str
    rows: int
    level: int = 0


@dataclass
class Entry:
    """What the registry knows of one log file."""

    path: str
    day: str
    dev: int
    inode: int
    size: int  # bytes parsed: the end of the last complete line
    seen: int  # the file's size when it was last looked at (a last line not yet ended is read when it grows)
    mtime_ns: int
    head: str
    lines: int
    parts: list[Part] = field(default_factory=list)
    bins: list[str] = field(default_factory=list)
    schema: Schema = field(default_factory=Schema)

    def matches(self, version: FileVersion) -> bool:
        """Whether the file is as it was when last looked at."""
        return (self.dev, self.inode, self.seen, self.mtime_ns) == (
            version.dev,
            version.inode,
            version.size,
            version.mtime_ns,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "day": self.day,
            "dev": self.dev,
            "inode": self.inode,
            "size": self.size,
            "seen": self.seen,
            "mtime_ns": self.mtime_ns,
            "head": self.head,
            "lines": self.lines,
            "parts": [p.__dict__ for p in self.parts],
            "bins": self.bins,
            "schema": self.schema.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(
            data["path"],
            data["day"],
            data["dev"],
            data["inode"],
            data["size"],
            data["seen"],
            data["mtime_ns"],
            data["head"],
            data["lines"],
            [Part(**p) for p in data["parts"]],
            list(data["bins"]),
            Schema.from_json(data.get("schema")),
        )


@dataclass
class Snapshot:
    """One published state of a service's registry: its version and, per log file name, its Parquet files."""

    version: int
    files: dict[str, list[str]]
    folder: Path

    def paths(self, names: Sequence[str]) -> list[Path]:
        """The distinct Parquet files holding the given log files, in a stable order."""
        seen: dict[str, None] = {}
        for name in names:
            for parquet in self.files.get(name, []):
                seen.setdefault(parquet, None)
        return [self.folder / p for p in seen]


@dataclass
class RegistryState:
    version: int = 0
    files: dict[str, Entry] = field(default_factory=dict)
    bins: dict[str, Part] = field(default_factory=dict)  # bin id ("2026-11.0") -> its current file
    retired: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "version": self.version,
                "files": {k: v.to_json() for k, v in self.files.items()},
                "bins": {k: v.__dict__ for k, v in self.bins.items()},
                "retired": self.retired,
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> RegistryState:
        raw = orjson.loads(data)
        return cls(
            raw["version"],
            {k: Entry.from_json(v) for k, v in raw["files"].items()},
            {k: Part(**v) for k, v in raw["bins"].items()},
            dict(raw["retired"]),
        )

    def snapshot(self, folder: Path) -> Snapshot:
        files = {
            name: [self.bins[b].name for b in entry.bins if b in self.bins] + [p.name for p in entry.parts]
            for name, entry in self.files.items()
        }
        return Snapshot(self.version, files, folder)


def latest_schema(state: RegistryState) -> Schema:
    """The columns of the service's most recent file parsed so far (what a new file is expected to hold)."""
    entries = sorted(state.files.values(), key=lambda e: e.day)
    return next((e.schema for e in reversed(entries) if e.schema.columns), Schema())
