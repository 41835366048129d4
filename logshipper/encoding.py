"""Turning any Python value into JSON that parses back, and noting what had to change.

Rules (docs/event-schema.md): NaN and ±inf become null and their paths are listed under
``ml.non_finite``; numpy and pandas scalars become Python numbers, arrays lists; datetimes UTC
ISO 8601 (naive ones are taken as UTC); ``Decimal`` a number; ``UUID``, paths and enums their
string or value; bytes UTF-8 text (``\\xNN`` escapes when not UTF-8, noted); sets sorted lists;
strings longer than the limit are cut (noted); anything else ``str(value)`` (noted).  Nothing
here raises: a value that cannot be written becomes a note, never an exception in the service.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

try:
    import orjson
except ImportError:  # the stdlib json fallback keeps the logger usable without orjson
    orjson = None  # type: ignore[assignment]
import json

MAX_STRING = 8192  # characters kept of one string value; longer ones are cut and noted
MAX_DEPTH = 16  # deeper nesting is written as str() and noted
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson and Elasticsearch's long can hold


@dataclasses.dataclass(slots=True)
class Notes:
    """Paths whose values were not finite (written as null) and paths that had to be changed, with why."""

    non_finite: list[str] = dataclasses.field(default_factory=list)
    changed: list[str] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.non_finite or self.changed)


def utc_iso(value: dt.datetime) -> str:
    """``2026-11-22T10:15:30.123456Z``: UTC, microseconds kept; a naive datetime is taken as UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def clean(value: Any, path: str, notes: Notes, depth: int = 0) -> Any:
    """A JSON-ready copy of ``value``; changes are recorded in ``notes`` under dotted ``path``."""
    t = type(value)
    if t is str:
        return value if len(value) <= MAX_STRING else _cut(value, path, notes)
    if t is float:
        if value - value == 0.0:  # finite; NaN and inf give nan here
            return value
        notes.non_finite.append(path)
        return None
    if t is int:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        notes.changed.append(f"{path}: integer too large for JSON numbers, written as text")
        return str(value)
    if value is None or t is bool:
        return value
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            return _as_text(value, path, notes, "nested too deep")
        return {_key(k): clean(v, f"{path}.{_key(k)}", notes, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            return _as_text(value, path, notes, "nested too deep")
        return [clean(v, f"{path}[{i}]", notes, depth + 1) for i, v in enumerate(value)]
    return _other(value, path, notes, depth)


def clean_mapping_in_place(values: dict[str, Any], path: str, notes: Notes) -> dict[str, Any]:
    """:func:`clean` for a flat dict the caller owns (features, groups): the hot path, no copy."""
    rekey = False
    for key, value in values.items():
        t = type(value)
        if type(key) is not str:
            rekey = True
        if t is float:
            if value - value != 0.0:
                notes.non_finite.append(f"{path}.{key}")
                values[key] = None
        elif t is str:
            if len(value) > MAX_STRING:
                values[key] = _cut(value, f"{path}.{key}", notes)
        elif t is bool or value is None or (t is int and _INT_MIN <= value <= _INT_MAX):
            continue
        else:
            values[key] = clean(value, f"{path}.{key}", notes)
    if rekey:
        cleaned = {_key(k): v for k, v in values.items()}
        values.clear()
        values.update(cleaned)
    return values


def clean_scalar(value: Any, path: str, notes: Notes) -> Any:
    """:func:`clean` with a shortcut for the common plain values (labels, scores, latencies)."""
    t = type(value)
    if t is str or t is bool or value is None or (t is float and value - value == 0.0):
        return value if t is not str or len(value) <= MAX_STRING else _cut(value, path, notes)
    return clean(value, path, notes)


def _key(key: Any) -> str:
    return key if type(key) is str else str(key.value if isinstance(key, enum.Enum) else key)


def _cut(value: str, path: str, notes: Notes) -> str:
    notes.changed.append(f"{path}: string of {len(value)} characters cut to {MAX_STRING}")
    return value[:MAX_STRING]


def _as_text(value: Any, path: str, notes: Notes, why: str) -> str | None:
    notes.changed.append(f"{path}: {why}, written as text")
    try:
        text = str(value)
    except Exception as exc:  # a broken __str__ must not reach the service
        notes.changed.append(f"{path}: str() failed: {type(exc).__name__}")
        return f"<unprintable {type(value).__name__}>"
    return text if len(text) <= MAX_STRING else text[:MAX_STRING]


def _other(value: Any, path: str, notes: Notes, depth: int) -> Any:
    """Every type that is not a plain JSON one: numpy, pandas, datetimes, decimals, bytes, ..."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, float):  # float subclasses, e.g. numpy.float64
        return clean(float(value), path, notes, depth)
    if isinstance(value, int) and not isinstance(value, enum.Enum):
        return clean(int(value), path, notes, depth)
    if isinstance(value, str) and not isinstance(value, enum.Enum):
        return clean(str(value), path, notes, depth)
    module = type(value).__module__.split(".")[0]
    if module in ("numpy", "pandas"):
        return _array_like(value, path, notes, depth)
    if isinstance(value, dt.datetime):
        return utc_iso(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        if value.is_finite():
            return clean(int(value) if value == value.to_integral_value() else float(value), path, notes, depth)
        notes.non_finite.append(path)
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return clean(raw.decode("utf-8"), path, notes, depth)
        except UnicodeDecodeError:
            notes.changed.append(f"{path}: bytes not UTF-8, invalid bytes written as \\xNN")
            return clean(raw.decode("utf-8", "backslashreplace"), path, notes, depth)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return clean(value.value, path, notes, depth)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (set, frozenset)):
        items = [clean(v, f"{path}[]", notes, depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return clean(dataclasses.asdict(value), path, notes, depth)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return _as_text(value, path, notes, f"{type(value).__name__} is not JSON")


def _array_like(value: Any, path: str, notes: Notes, depth: int) -> Any:
    """numpy and pandas values: scalars via ``item()``, arrays and series via ``tolist()``, NA/NaT as null."""
    name = type(value).__name__
    if name in ("NAType", "NaTType"):
        return None
    if name == "Timestamp":
        return utc_iso(value.to_pydatetime())
    if name == "datetime64":
        return _from_item(value.astype("datetime64[us]").item(), path, notes, depth)
    try:
        if getattr(value, "ndim", 1) == 0 and hasattr(value, "item"):
            return _from_item(value.item(), path, notes, depth)
        if hasattr(value, "tolist"):
            return clean(value.tolist(), path, notes, depth)
        if hasattr(value, "to_dict"):
            return clean(value.to_dict(), path, notes, depth)
    except Exception as exc:
        notes.changed.append(f"{path}: {name} could not be converted: {type(exc).__name__}")
    return _as_text(value, path, notes, f"{name} is not JSON")


def _from_item(item: Any, path: str, notes: Notes, depth: int) -> Any:
    if type(item).__module__.split(".")[0] == "numpy":  # e.g. item() of a void or object scalar
        return _as_text(item, path, notes, f"{type(item).__name__} is not JSON")
    return clean(item, path, notes, depth)


def dumps(document: dict[str, Any]) -> bytes:
    """Serialize an already cleaned document to one JSON line (no newline), UTF-8.

    Raises ``ValueError`` only for strings that are not valid Unicode (lone surrogates, e.g. from
    ``surrogateescape``); :func:`repair_strings` fixes those, and :func:`dumps_lenient` never raises.
    """
    if orjson is not None:
        try:
            return orjson.dumps(document)
        except orjson.JSONEncodeError as exc:
            raise ValueError(str(exc)) from None
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def repair_strings(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """A copy with every string that is not valid Unicode escaped (``\\udcxx``), and the paths fixed."""
    fixed: list[str] = []

    def walk(v: Any, p: str) -> Any:
        if isinstance(v, str):
            try:
                v.encode("utf-8")
                return v
            except UnicodeEncodeError:
                fixed.append(f"{p}: invalid Unicode (lone surrogates), escaped")
                return v.encode("utf-8", "backslashreplace").decode("utf-8")
        if isinstance(v, dict):
            return {
                walk(k, f"{p}.<key>") if isinstance(k, str) else k: walk(x, f"{p}.{k}".lstrip("."))
                for k, x in v.items()
            }
        if isinstance(v, list):
            return [walk(x, f"{p}[{i}]") for i, x in enumerate(v)]
        return v

    return walk(value, path), fixed


def dumps_lenient(document: Any) -> bytes:
    """The never-failing path: invalid Unicode escaped, anything not JSON written with ``str()``."""
    text = json.dumps(document, ensure_ascii=False, default=str, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace")


def loads(line: bytes | str) -> Any:
    """Parse one line written by :func:`dumps`."""
    return orjson.loads(line) if orjson is not None else json.loads(line)
