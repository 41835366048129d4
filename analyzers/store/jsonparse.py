"""JSON lines of a scanned range into one Parquet part: one row per line, events and set-aside lines alike.

Usually one pass: DuckDB's JSON reader, told every key the range may hold by two sample lines put before it
(``strict_source``), reads it and refuses a line holding any other key, so a feature first seen on the last
line is never dropped; each value is read as its JSON text and cast to a number where the column is expected
to hold numbers.  Where it stops at a line, the caller (``range_parse``) learns that line's new keys or sets it
aside and reads strictly again; when that read still refuses the range, two passes do it: the first reads every
line's keys and names the lines that are not JSON objects, the second reads the range with every column
declared.  A column's type is expected from what the file (or else the service's latest file, or else the
range's first lines) held so far; a value the cast refuses, or
a field DuckDB's reader cannot take at all (a ``ml.features`` that is not an object), stops the read, and an
exact pass finds every line's types before the range is read again (rare: a new service, or a changed one).

A value's type never depends on another line's: numbers are numbers (``BIGINT`` when every value of the
column is an integer, else ``DOUBLE``), and anything else (text, booleans, a column mixing types) is kept
as its JSON text, so ``"1"``, ``1`` and ``true`` stay apart and read back as ``str``, ``int`` and ``bool``.
An array or object is kept as the JSON string of its compact text and named in the row's ``nested`` column.

A part's columns: ``file``, ``day`` (the file's), ``line_no``, ``ts``, ``dataset``, ``outcome``, ``pid``,
``pid_hash``, ``model``, ``version``, ``entity``, ``prediction``, ``score``, ``label``, ``latency``,
``rate``, ``error_type``, ``error_message``, ``nested``, ``features.*``, ``groups.*``,
``reason``.  A set-aside line is a row with a ``reason``, no ``dataset``, and the time and model it seems
to be about.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from analyzers.store.linescan import SetAside
from logshipper.schema import FEATURE_PREFIX, GROUP_PREFIX

Key = tuple[str, str]  # ("features" or "groups", name)
VALUES = ("prediction", "label")  # fields typed like features
_FIXED_TYPES = {  # the fields the exact pass checks, as JSON pointers
    "ts": "/@timestamp",
    "dataset": "/event/dataset",
    "pid": "/ml/prediction_id",
    "score": "/ml/prediction/score",
    "latency": "/ml/latency_ms",
    "rate": "/ml/sample_rate",
    "ml": "/ml",
    "features": "/ml/features",
    "groups": "/ml/groups",
    "event": "/event",
    "model": "/ml/model",
    "prediction_obj": "/ml/prediction",
    "error": "/error",
}
# A part's row groups: the writer holds one in memory, so its size bounds the parse's memory whatever the width of
# the lines (DuckDB's default of 122,880 rows took 130 MiB on 20-feature lines, this about 55 MiB).
ROW_GROUP_BYTES = "16MB"
_PLAUSIBLE_BEFORE = timedelta(days=1)  # a line's time may fall this far before its file's day...
_PLAUSIBLE_AFTER = timedelta(days=2)  # ... and up to the end of the next day (clock skew, midnight)
BLANK = "blank"  # a blank line: neither an event nor a problem
DUPLICATE = "duplicate key"  # a line holding a key twice where the typed read reads it
# The objects the strict read transforms whole, as JSON pointers: keys in them that are not read (``Schema.others``)
# must still be named to it, as it refuses any key it was not told of.  The line's own other keys are never read.
OBJECTS = {
    "event": "/event",
    "ml": "/ml",
    "ml.model": "/ml/model",
    "ml.prediction": "/ml/prediction",
    "error": "/error",
}
SENTINEL = "\x00predwatch"  # the one key a features or groups object with no known key is told of (never a real one)
_SENTINEL_SQL = "(chr(0) || 'predwatch')"
_FIXED_SPEC: dict[str, Any] = {  # the fields every typed read takes, with their DuckDB types
    "@timestamp": "VARCHAR",
    "event": {"dataset": "VARCHAR", "outcome": "VARCHAR"},
    "ml": {
        "prediction_id": "VARCHAR",
        "model": {"name": "VARCHAR", "version": "VARCHAR"},
        "entity_id": "VARCHAR",
        "prediction": {"label": "JSON", "score": "JSON"},
        "label": "JSON",
        "latency_ms": "JSON",
        "sample_rate": "JSON",
    },
    "error": {"type": "VARCHAR", "message": "VARCHAR"},
}
READ_KEYS: dict[str, frozenset[str]] = {  # per object of OBJECTS, the keys the typed read takes
    "event": frozenset(_FIXED_SPEC["event"]),
    "ml": frozenset(_FIXED_SPEC["ml"]) | {"features", "groups"},
    "ml.model": frozenset(_FIXED_SPEC["ml"]["model"]),
    "ml.prediction": frozenset(_FIXED_SPEC["ml"]["prediction"]),
    "error": frozenset(_FIXED_SPEC["error"]),
}
SEPARATOR = "\x1f"  # between the column names of a ``nested`` cell
_WHITESPACE = "(' ' || chr(9) || chr(13))"  # JSON's whitespace within a line: a line of it alone is blank
_TIME_RE = r'"@timestamp"\s*:\s*"([^"\\]{1,64})"'
_MODEL_RE = r'"model"\s*:\s*\{\s*"name"\s*:\s*"([^"\\]{1,256})"'


@dataclass(frozen=True)
class Limits:
    """What one line and one file may hold before a line is set aside."""

    max_line_bytes: int
    max_keys_per_line: int
    max_keys_per_file: int


@dataclass
class Schema:
    """The columns of a log file's parts so far: each value field's type (``BIGINT``, ``DOUBLE`` or ``JSON``)."""

    columns: dict[Key, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    others: dict[str, list[str]] = field(default_factory=dict)  # per object of OBJECTS, the keys seen but not read

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": [[obj, key, kind] for (obj, key), kind in self.columns.items()],
            "values": self.values,
            "others": self.others,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Schema:
        data = data or {}
        return cls(
            {(obj, key): kind for obj, key, kind in data.get("columns", [])},
            dict(data.get("values", {})),
            {str(obj): [str(k) for k in keys] for obj, keys in dict(data.get("others", {})).items()},
        )

    def add_others(self, others: Mapping[str, Any], *, most: int) -> None:
        """Remember more keys seen but not read, per object, at most ``most`` of each (lines holding keys beyond
        those are read in two passes; the registry stays small whatever the lines hold)."""
        for obj, keys in others.items():
            known = self.others.setdefault(obj, [])
            seen = set(known)
            for key in keys:
                if len(known) >= most:
                    break
                if key not in seen:
                    known.append(key)
                    seen.add(key)


@dataclass
class KeyScan:
    """The first pass: lines that are not JSON objects (or hold too many keys), and where each key first shows."""

    bad: list[SetAside] = field(default_factory=list)
    key_sets: list[tuple[int, list[Key]]] = field(default_factory=list)  # (first line, keys) per distinct key set
    others: dict[str, set[str]] = field(default_factory=dict)  # per object of OBJECTS, the keys it is not read for
    lines: int = 0

    def learn(self, more: KeyScan, *, known: Mapping[Key, str]) -> list[Key] | None:
        """Take in the keys of ``more`` (a few later lines) that neither this scan nor ``known`` holds, the
        sentinel aside: the feature and group keys taken, or None when there was no key to take."""
        held = set(known) | {k for _, keys in self.key_sets for k in keys}
        new = list(dict.fromkeys(k for _, keys in more.key_sets for k in keys if k not in held and k[1] != SENTINEL))
        others = {obj: names - self.others.get(obj, set()) for obj, names in more.others.items()}
        others = {obj: names for obj, names in others.items() if names}
        if not new and not others:
            return None
        if new:
            self.key_sets.append((max(line for line, _ in more.key_sets), new))
        for obj, names in others.items():
            self.others.setdefault(obj, set()).update(names)
        return new


def pointer(*parts: str) -> str:
    """A JSON pointer (RFC 6901) to a key, whatever characters it holds."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def column_name(key: Key) -> str:
    return (FEATURE_PREFIX if key[0] == "features" else GROUP_PREFIX) + key[1]


def buffer_bytes(longest: int) -> int:
    """What DuckDB's readers are told the longest line may be: their buffers grow with it, so the longest line
    of the source itself (with room to spare) keeps them small under a small memory budget."""
    return max(2 * int(longest) + 1024, 2**20)


def lines_sql(source: Path, first_line: int, longest: int) -> str:
    """The source's lines, numbered as in the log file (DuckDB's CSV reader with no delimiter, quote or escape)."""
    return (
        f"SELECT row_number() OVER () + {int(first_line) - 1} AS line_no, line"
        f" FROM read_csv({sql_string(str(source))}, columns={{'line': 'VARCHAR'}}, delim='\\x01', quote='',"
        f" escape='', header=false, auto_detect=false, max_line_size={buffer_bytes(longest)},"
        f" buffer_size={max(buffer_bytes(longest), 4 * 2**20)}, compression='none')"
    )


def _guessed(reason: str) -> str:
    """The time and model a bad line's text mentions, for the rows of lines with a reason."""
    return (
        f"any_value(CASE WHEN {reason} <> '' THEN regexp_extract(line, {sql_string(_TIME_RE)}, 1) END),"
        f" any_value(CASE WHEN {reason} <> '' THEN regexp_extract(line, {sql_string(_MODEL_RE)}, 1) END)"
    )


def find_keys(
    con: duckdb.DuckDBPyConnection, lines: str, limits: Limits, ignore: set[int], sample: int | None = None
) -> KeyScan:
    """Every line's feature and group keys, and the other keys of the objects read; lines in ``ignore``
    (placeholders) are left out.  With ``sample``, only that many first lines are read."""
    # Only lines that fail a cheap test pay for copying them (trim): most lines are not blank and start with "{".
    blank = f"line IS NULL OR trim(line, {_WHITESPACE}) = ''"
    reason = f"""CASE WHEN k IS NULL THEN CASE WHEN {blank} THEN {sql_string(BLANK)} ELSE 'bad JSON' END
        WHEN left(line, 1) <> '{{' AND left(ltrim(line, {_WHITESPACE}), 1) <> '{{' THEN 'not a JSON object'
        WHEN coalesce(len(k[1]), 0) + coalesce(len(k[2]), 0) > {int(limits.max_keys_per_line)} THEN 'too many keys'
        ELSE '' END"""
    paths = "[" + ", ".join(sql_string(p) for p in ["/ml/features", "/ml/groups", *OBJECTS.values()]) + "]"
    limit = f" LIMIT {int(sample)}" if sample is not None else ""
    rows = con.execute(
        f"""SELECT CASE WHEN reason = '' THEN NULL ELSE line_no END AS bad_line, reason, any_value(k), min(line_no),
                {_guessed("reason")}, count(*)
            FROM (SELECT line_no, line, k, {reason} AS reason
                  FROM (SELECT line_no, line, try(json_keys(line, {paths})) AS k FROM ({lines}){limit}))
            GROUP BY bad_line, reason, hash(k)"""
    ).fetchall()
    out = KeyScan()
    for bad_line, why, key_lists, first, time, model, count in rows:
        out.lines += int(count)
        if bad_line is not None:
            if bad_line not in ignore:
                out.bad.append(SetAside(int(bad_line), why, time or None, model or None))
            continue
        keys = [
            (obj, name)
            for obj, names in zip(("features", "groups"), key_lists[:2], strict=True)
            for name in names or []
        ]
        out.key_sets.append((int(first), keys))
        for obj, names in zip(OBJECTS, key_lists[2:], strict=True):
            out.others.setdefault(obj, set()).update(n for n in names or [] if n not in READ_KEYS[obj])
    out.bad.sort(key=lambda s: s.line)
    out.key_sets.sort(key=lambda item: item[0])
    return out


def accepted_keys(found: KeyScan, previous: Schema, limits: Limits) -> tuple[list[Key], dict[Key, str]]:
    """Keys that become columns, and the keys refused with the reason.

    The file's earlier keys stay; then each set of keys, in the order it first shows, is taken whole if its new
    keys fit under the file's cap, else refused (its lines are set aside, "too many distinct keys"); an empty
    key, one equal to another but for case, or one holding ``SEPARATOR`` (it would split a ``nested`` cell's
    names) is refused too ("unusable key").
    """
    accepted: dict[Key, None] = dict.fromkeys(previous.columns)
    folded = {column_name(key).casefold() for key in accepted}
    refused: dict[Key, str] = {}
    for _first, keys in found.key_sets:
        new, seen = [], set(folded)
        for key in dict.fromkeys(k for k in keys if k not in accepted):
            name = column_name(key).casefold()
            if not key[1] or SEPARATOR in key[1] or name in seen:  # also two keys of one line equal but for case
                refused[key] = "unusable key"
            else:
                new.append(key)
                seen.add(name)
        if len(accepted) + len(new) > limits.max_keys_per_file:
            refused.update({k: "too many distinct keys" for k in new if k not in refused})
            continue
        accepted.update(dict.fromkeys(new))
        folded.update(column_name(k).casefold() for k in new)
        for key in new:
            refused.pop(key, None)
    return list(accepted), refused


def lines_with_keys(con: duckdb.DuckDBPyConnection, lines: str, refused: Mapping[Key, str]) -> list[SetAside]:
    """Lines holding a refused key, each with that key's reason."""
    table = pa.table(
        {
            "obj": pa.array([1 if obj == "features" else 2 for obj, _ in refused], pa.int32()),
            "key": [key for _, key in refused],
            "why": list(refused.values()),
        }
    )
    con.register("_pw_refused", table)
    try:
        rows = con.execute(
            f"""SELECT line_no, min(why) FROM (
                    SELECT line_no, obj, unnest(names) AS key FROM (
                        SELECT line_no, unnest([1, 2]) AS obj,
                               unnest(try(json_keys(line, ['/ml/features', '/ml/groups']))) AS names
                        FROM ({lines})))
                JOIN _pw_refused USING (obj, key)
                GROUP BY line_no ORDER BY line_no"""
        ).fetchall()
    finally:
        con.unregister("_pw_refused")
    return [SetAside(int(line), why) for line, why in rows]


def find_types(
    con: duckdb.DuckDBPyConnection, lines: str, keys: list[Key], ignore: set[int], sample: int | None = None
) -> tuple[list[SetAside], Schema]:
    """Every line's JSON types: lines whose fields DuckDB's reader cannot take, with their reason, and the type
    each value field needs.  The exact pass for a range the typed read refused; with ``sample``, only that many
    first lines are read, for a first expectation of the types of new keys."""
    fixed = list(_FIXED_TYPES.values())
    paths = fixed + [pointer("ml", "prediction", "label"), pointer("ml", "label")] + [pointer("ml", *k) for k in keys]
    at = {name: i + 1 for i, name in enumerate(_FIXED_TYPES)}
    numbers = "('UBIGINT', 'BIGINT', 'DOUBLE', 'NULL')"
    objects = "('OBJECT', 'NULL')"
    checks = " ".join(
        f"WHEN t[{at[name]}] NOT IN {objects} THEN '{what} is not an object'"
        for name, what in (
            ("ml", "ml"),
            ("event", "event"),
            ("model", "ml.model"),
            ("prediction_obj", "ml.prediction"),
            ("features", "ml.features"),
            ("groups", "ml.groups"),
            ("error", "error"),
        )
    )
    object_keys, duplicated = _duplicate_check()
    reason = f"""CASE WHEN t IS NULL THEN 'bad JSON' {checks}
        WHEN {duplicated} THEN {sql_string(DUPLICATE)}
        WHEN t[{at["score"]}] NOT IN {numbers} THEN 'bad number in ml.prediction.score'
        WHEN t[{at["latency"]}] NOT IN {numbers} THEN 'bad number in ml.latency_ms'
        WHEN t[{at["rate"]}] NOT IN {numbers} THEN 'bad number in ml.sample_rate'
        ELSE '' END"""
    path_list = "[" + ", ".join(sql_string(p) for p in paths) + "]"
    limit = f" LIMIT {int(sample)}" if sample is not None else ""
    rows = con.execute(
        f"""SELECT CASE WHEN reason = '' THEN NULL ELSE line_no END AS bad_line, reason, any_value(t),
                {_guessed("reason")}
            FROM (SELECT line_no, line, t, {reason} AS reason
                  FROM (SELECT line_no, line, try(json_type(line, {path_list})) AS t, {object_keys}
                        FROM ({lines}){limit}))
            GROUP BY bad_line, reason, hash(t)"""
    ).fetchall()
    bad: list[SetAside] = []
    kinds: dict[int, set[str]] = {}
    for bad_line, why, types, time, model in rows:
        if bad_line is not None:
            if bad_line not in ignore:
                bad.append(SetAside(int(bad_line), why, time or None, model or None))
            continue
        for i, kind in enumerate(types or []):
            if kind is not None:
                kinds.setdefault(i, set()).add(kind)
    offset = len(fixed)
    _widen_beyond_bigint(con, lines, limit, paths, kinds, first=offset)
    schema = Schema(
        {key: leaf_type(kinds.get(offset + 2 + i, set())) for i, key in enumerate(keys)},
        {name: leaf_type(kinds.get(offset + i, set())) for i, name in enumerate(VALUES)},
    )
    return sorted(bad, key=lambda s: s.line), schema


def _widen_beyond_bigint(
    con: duckdb.DuckDBPyConnection, lines: str, limit: str, paths: list[str], kinds: dict[int, set[str]], *, first: int
) -> None:
    """Mark as fractional (``DOUBLE``) the integer fields from ``paths[first]`` on that hold an integer beyond
    ``BIGINT`` (JSON's unsigned 64-bit integers above 2**63 - 1): such a column cannot be ``BIGINT``."""
    unsigned = [
        i for i in range(first, len(paths)) if "UBIGINT" in kinds.get(i, ()) and leaf_type(kinds[i]) == "BIGINT"
    ]
    if not unsigned:
        return
    beyond = ", ".join(
        f"coalesce(max(try(CAST(json_extract_string(line, {sql_string(paths[i])}) AS UBIGINT))) > {2**63 - 1}, false)"
        for i in unsigned
    )
    (row,) = con.execute(f"SELECT {beyond} FROM (SELECT line FROM ({lines}){limit})").fetchall()
    for i, wide in zip(unsigned, row, strict=True):
        if wide:
            kinds[i].add("DOUBLE")


def _duplicate_check() -> tuple[str, str]:
    """A select item ``dk``: the keys of each object DuckDB's typed reader transforms; and whether a line holds
    twice a key that reader reads (it refuses the line then; a key it does not read may repeat)."""
    read = {"": [*_FIXED_SPEC], **{OBJECTS[obj]: sorted(READ_KEYS[obj]) for obj in OBJECTS}}
    checks = []
    for i, names in enumerate([*read.values(), None, None], start=1):
        keys = f"dk[{i}]"
        if names is not None:
            wanted = ", ".join(sql_string(n) for n in names)
            keys = f"list_filter(dk[{i}], lambda x: x IN ({wanted}))"
        checks.append(f"len({keys}) > len(list_distinct({keys}))")
    paths = "[" + ", ".join(sql_string(p) for p in [*read, "/ml/features", "/ml/groups"]) + "]"
    return f"try(json_keys(line, {paths})) AS dk", "coalesce(" + " OR ".join(checks) + ", false)"


def leaf_type(kinds: set[str]) -> str:
    """The column type for the JSON types a field's values took (integers, when none was seen yet)."""
    kinds = kinds - {"NULL"}
    if kinds <= {"UBIGINT", "BIGINT"}:
        return "BIGINT"
    if kinds and kinds <= {"UBIGINT", "BIGINT", "DOUBLE"}:
        return "DOUBLE"
    return "JSON"


def typed_spec(schema: Schema) -> dict[str, Any]:
    """The fields the typed read takes, with their DuckDB types: the fixed ones, then the schema's features and
    groups (each as JSON text)."""
    spec = copy.deepcopy(_FIXED_SPEC)
    for obj in ("features", "groups"):
        keys = {k: "JSON" for (o, k) in schema.columns if o == obj}
        if keys:
            spec["ml"][obj] = keys
    return spec


def _sql_type(spec: str | Mapping[str, Any]) -> str:
    if isinstance(spec, str):
        return spec
    return "STRUCT(" + ", ".join(f"{quote(name)} {_sql_type(kind)}" for name, kind in spec.items()) + ")"


def _reader(
    source: Path, spec: Mapping[str, Any], first_line: int, longest: int, by_line: bool, preamble_lines: int
) -> str:
    """The source's lines as typed columns (``@timestamp``, ``event``, ``ml``, ``error``) with their number.

    DuckDB's JSON reader is the fast one; its buffers need about 70 MB, so under a smaller memory budget each
    line is read by the CSV reader and transformed on its own (the same transformation, more slowly).  A source
    that begins with ``preamble_lines`` sample lines is read with the types those lines show, and DuckDB refuses
    any key they do not hold (its reader does so only when it detects the types itself, from one file)."""
    if preamble_lines:
        # Each line is one value (records false) of which whole objects are taken: DuckDB checks the keys of an
        # object it transforms whole, and the line numbering keeps it from narrowing them to the fields used.
        skip = int(preamble_lines)
        whole = ", ".join(f"json.{quote(name)} AS {quote(name)}" for name in spec)
        return (
            f"SELECT line_no + {int(first_line) - 1 - skip} AS line_no, * EXCLUDE (line_no) FROM ("
            f"SELECT row_number() OVER () AS line_no, {whole} FROM read_json({sql_string(str(source))},"
            f" format='newline_delimited', records='false', sample_size={skip}, maximum_sample_files=1,"
            f" map_inference_threshold=-1, field_appearance_threshold=0, maximum_object_size={buffer_bytes(longest)},"
            f" compression='none')) WHERE line_no > {skip}"
        )
    if by_line:
        shape = sql_string(json.dumps(spec))
        return f"SELECT line_no, unnest(json_transform(line, {shape})) FROM ({lines_sql(source, first_line, longest)})"
    columns = "{" + ", ".join(f"{sql_string(k)}: {sql_string(_sql_type(v))}" for k, v in spec.items()) + "}"
    return (
        f"SELECT row_number() OVER () + {int(first_line) - 1} AS line_no, * FROM read_json({sql_string(str(source))},"
        f" format='newline_delimited', columns={columns}, maximum_object_size={buffer_bytes(longest)},"
        " compression='none')"
    )


def _typed(text: str, kind: str) -> str:
    """A value read as JSON text, as the column stores it; a value that is not of the column's type stops the read."""
    varchar = f"CAST({text} AS VARCHAR)"
    if kind == "JSON":  # an array or object is kept as the JSON string of its text
        return (
            f"CASE WHEN left({varchar}, 1) IN ('[', '{{') THEN CAST(to_json({varchar}) AS VARCHAR) ELSE {varchar} END"
        )
    if kind == "BIGINT":
        fraction = f"(contains({varchar}, '.') OR contains({varchar}, 'e') OR contains({varchar}, 'E'))"
        return f"CASE WHEN {fraction} THEN error('not an integer') ELSE CAST({varchar} AS BIGINT) END"
    return f"CAST({varchar} AS DOUBLE)"


def write_part(
    con: duckdb.DuckDBPyConnection,
    source: Path,
    *,
    file: Path,
    day: date,
    first_line: int,
    schema: Schema,
    set_aside: list[SetAside],
    blank: set[int],
    longest: int,
    target: Path,
    by_line: bool = False,
    preamble_lines: int = 0,
) -> int:
    """Read ``source`` with the schema's columns and write every line but the blank ones to ``target`` (Parquet),
    the ``set_aside`` lines as rows with their reason; the number of rows.  A value the schema's type refuses
    raises ``duckdb.ConversionException`` (or ``InvalidInputException``).  With ``preamble_lines``, ``source``
    begins with that many sample lines (``strict_source``), and a key they do not hold raises
    ``InvalidInputException``."""
    bad = [*set_aside, *(SetAside(line, BLANK) for line in sorted(blank))]
    spec = typed_spec(schema)
    selected, notes = [], []
    for name, path in (("prediction", "ml.prediction.label"), ("label", "ml.label")):
        selected.append(f"{_typed(path, schema.values.get(name, 'JSON'))} AS {name}")
        if schema.values.get(name, "JSON") == "JSON":
            notes.append(f"CASE WHEN left(CAST({path} AS VARCHAR), 1) IN ('[', '{{') THEN {sql_string(name)} END")
    for key, kind in schema.columns.items():
        name = column_name(key)
        text = f"struct_extract(struct_extract(ml, {sql_string(key[0])}), {sql_string(key[1])})"
        selected.append(f"{_typed(text, kind)} AS {quote(name)}")
        if kind == "JSON":
            notes.append(f"CASE WHEN left(CAST({text} AS VARCHAR), 1) IN ('[', '{{') THEN {sql_string(name)} END")
    nested_sql = f"nullif(concat_ws(chr(31), {', '.join(notes)}), '')" if notes else "CAST(NULL AS VARCHAR)"
    midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    low = f"TIMESTAMPTZ {sql_string((midnight - _PLAUSIBLE_BEFORE).isoformat())}"
    high = f"TIMESTAMPTZ {sql_string((midnight + _PLAUSIBLE_AFTER).isoformat())}"
    bad_join, bad_reason, guessed_time, model_guess = "", "CAST(NULL AS VARCHAR)", "CAST(NULL AS TIMESTAMPTZ)", "model"
    if bad:
        con.register(
            "_pw_bad",
            pa.table(
                {
                    "line_no": pa.array([b.line for b in bad], pa.int64()),
                    "bad_reason": [b.reason for b in bad],
                    "bad_time": pa.array([b.time for b in bad], pa.string()),
                    "bad_model": pa.array([b.model for b in bad], pa.string()),
                }
            ),
        )
        bad_join, bad_reason = " LEFT JOIN _pw_bad USING (line_no)", "bad_reason"
        guessed_time, model_guess = "TRY_CAST(bad_time AS TIMESTAMPTZ)", "coalesce(model, bad_model)"
    numbers = {
        name: f"TRY_CAST(CAST({path} AS VARCHAR) AS DOUBLE)"
        for name, path in (("score", "ml.prediction.score"), ("latency", "ml.latency_ms"), ("rate", "ml.sample_rate"))
    }
    unknown = " ".join(  # the sentinel of an object told of no key: any value in it is a key not told of
        f"WHEN struct_extract(ml.{obj}, {_SENTINEL_SQL}) IS NOT NULL THEN error('a key not in the sample')"
        for obj in ("features", "groups")
        if preamble_lines and obj not in spec["ml"]
    )
    refused = unknown + " ".join(
        f"WHEN {path} IS NOT NULL AND {numbers[name]} IS NULL THEN 'bad number in {shown}'"
        for name, path, shown in (
            ("score", "ml.prediction.score", "ml.prediction.score"),
            ("latency", "ml.latency_ms", "ml.latency_ms"),
            ("rate", "ml.sample_rate", "ml.sample_rate"),
        )
    )
    typed = f"""SELECT line_no, TRY_CAST("@timestamp" AS TIMESTAMPTZ) AS ts, event.dataset AS dataset,
            event.outcome AS outcome, ml.prediction_id AS pid, ml.model.name AS model, ml.model.version AS version,
            ml.entity_id AS entity, {numbers["score"]} AS score, {numbers["latency"]} AS latency,
            {numbers["rate"]} AS rate, error.type AS error_type, error.message AS error_message,
            CASE {refused} END AS number_reason, {nested_sql} AS nested,
            {", ".join(selected)}
        FROM ({_reader(source, spec, first_line, longest, by_line, preamble_lines)})"""
    checked = f"""SELECT *, max(CASE WHEN plausible THEN ts END) OVER (ROWS UNBOUNDED PRECEDING) AS previous_ts
        FROM (SELECT *, ts >= {low} AND ts < {high} AS plausible FROM ({typed}))"""
    reason = f"""CASE WHEN {bad_reason} IS NOT NULL THEN {bad_reason}
            WHEN number_reason IS NOT NULL THEN number_reason
            WHEN ts IS NULL THEN 'bad time'
            WHEN NOT plausible THEN 'implausible time'
            WHEN dataset IS NULL OR dataset NOT IN ('ml.prediction', 'ml.feedback')
                THEN 'not a prediction or feedback event'
            WHEN pid IS NULL OR pid = '' THEN 'missing prediction id'
            WHEN dataset = 'ml.prediction' AND model IS NULL THEN 'missing model name'
            WHEN rate IS NOT NULL AND NOT (rate > 0 AND rate <= 1) THEN 'bad sample rate' END"""
    guessed = f"""coalesce(CASE WHEN {guessed_time} >= {low} AND {guessed_time} < {high} THEN {guessed_time} END,
        CASE WHEN plausible THEN ts END, previous_ts, TIMESTAMPTZ {sql_string(midnight.isoformat())})"""
    internal = "plausible, previous_ts, reason, number_reason" + (", bad_reason, bad_time, bad_model" if bad else "")
    final = f"""SELECT CAST({sql_string(str(file))} AS VARCHAR) AS file, DATE {sql_string(day.isoformat())} AS day,
            line_no, CASE WHEN reason IS NULL THEN ts ELSE {guessed} END AS ts,
            CASE WHEN reason IS NULL THEN dataset END AS dataset, coalesce(outcome, 'success') AS outcome,
            pid, hash(pid) AS pid_hash, CASE WHEN reason IS NULL THEN model ELSE {model_guess} END AS model,
            version, entity, prediction, score, label, latency, coalesce(rate, 1.0) AS rate, error_type,
            error_message, * EXCLUDE (line_no, ts, dataset, outcome, pid, model, version, entity, prediction, score,
            label, latency, rate, error_type, error_message, {internal}),
            reason
        FROM (SELECT *, {reason} AS reason FROM ({checked}){bad_join})
        WHERE reason IS DISTINCT FROM {sql_string(BLANK)}"""
    try:
        ((rows,),) = con.execute(
            f"COPY ({final}) TO {sql_string(str(target))} (FORMAT parquet, ROW_GROUP_SIZE_BYTES '{ROW_GROUP_BYTES}')"
        ).fetchall()
    finally:
        if bad:
            con.unregister("_pw_bad")
    return int(rows)
