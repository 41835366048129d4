"""The one-pass strict read of a log range: the same parts as the two passes, one pass when the first lines name
every key, and the two passes whenever a line holds a key they did not name."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzers.store import LocalStore, Query
from analyzers.store import range_parse as range_parse_module
from analyzers.timeutil import Window
from tests.store_contract import DAY1, prediction

DAYS = Window("2026-11-20T00:00:00Z", "2026-11-23T00:00:00Z")


def write(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n" for x in lines))
    return path


def parts(state: Path) -> list[tuple]:
    """Every parsed row of the state, with its columns, in file and line order."""
    files = sorted(str(p) for p in (state / "parsed").rglob("*.parquet"))
    relation = duckdb.sql(f"SELECT * FROM read_parquet({files}, union_by_name=true) ORDER BY file, line_no")
    return [tuple(sorted(relation.columns)), *relation.fetchall()] if files else []


class Reads:
    """How each strict read of a range ended (``calls``: ``read``, ``stopped`` at a line, ``refused``), and which
    way each file's range was read in the end (``ways``: ``strict`` or ``two passes``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, strict: bool = True) -> None:
        self.calls: list[tuple[str, str]] = []
        real = range_parse_module.RangeParser._read_strictly
        monkeypatch.setattr(range_parse_module, "STRICT_MIN_BYTES", 0)  # the test's ranges are small

        def read_strictly(parser, con, scanned, log_file, *args, **kwargs):
            done = real(parser, con, scanned, log_file, *args, **kwargs) if strict else None
            kind = "read" if isinstance(done, tuple) else "stopped" if isinstance(done, int) else "refused"
            self.calls.append((log_file.name, kind))
            return done

        monkeypatch.setattr(range_parse_module.RangeParser, "_read_strictly", read_strictly)

    @property
    def ways(self) -> list[tuple[str, str]]:
        last = dict(self.calls)  # each file's last strict read (one range per file here)
        return [(name, "strict" if kind == "read" else "two passes") for name, kind in last.items()]


def test_a_late_feature_is_learned_where_the_strict_read_stops_and_the_range_read_strictly_again(
    tmp_path: Path, monkeypatch
):
    logs = tmp_path / "logs" / "svc"
    clean = [prediction(f"a{i}", f"2026-11-20T{i % 24:02d}:00:00Z") for i in range(3000)]
    late = [prediction(f"b{i}", f"2026-11-21T{i % 24:02d}:00:00Z") for i in range(3000)]
    late[2500]["ml"]["features"]["late"] = 3.5  # past the 2,000 first lines the strict read is told of
    late[2800]["ml"]["features"]["late"] = 4
    write(logs / "predictions-2026-11-20.ndjson", clean)
    write(logs / "predictions-2026-11-21.ndjson", late)
    reads = Reads(monkeypatch)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        q = Query("fraud", DAYS)
        assert s.count(q) == 6000
        assert s.numeric_summary(q, "features.late").count == 2
        assert s.numeric_summary(q, "features.late").mean == 3.75
    assert sorted(reads.calls) == [
        ("predictions-2026-11-20.ndjson", "read"),
        ("predictions-2026-11-21.ndjson", "read"),
        ("predictions-2026-11-21.ndjson", "stopped"),
    ]


@pytest.mark.parametrize("values", [[3, 2.5], [3, "x"], [2.5, "x"], [None, 1.5]], ids=repr)
def test_a_late_feature_of_two_types_is_read_as_the_two_passes_read_it(tmp_path: Path, monkeypatch, values: list):
    """The type a learned key is told of is its first line's; a later value of another type is left to the two
    passes, which type the column from every line."""
    lines = [prediction(f"a{i}", f"2026-11-20T{i % 24:02d}:00:00Z") for i in range(3000)]
    lines[2500]["ml"]["features"]["late"] = values[0]
    lines[2800]["ml"]["features"]["late"] = values[1]
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    results = []
    for strict in (True, False):
        with pytest.MonkeyPatch.context() as patch:
            Reads(patch, strict=strict)
            with LocalStore(tmp_path / "logs", tmp_path / f"state-{strict}") as s:
                assert s.count(Query("fraud", DAY1)) == 3000
        results.append(parts(tmp_path / f"state-{strict}"))
    assert results[0] == results[1]


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("ml", lambda line: line["ml"].update(trace={"id": "t1"})),
        ("event", lambda line: line["event"].update(created="2026-11-20T01:00:00Z")),
        ("error", lambda line: line.update(error={"type": "E", "message": "m", "stack_trace": "at x"})),
    ],
)
def test_a_key_first_seen_late_outside_the_features_and_groups_is_learned_where_the_strict_read_stops(
    tmp_path: Path, monkeypatch, where: str, change
):
    logs = tmp_path / "logs" / "svc"
    reads = Reads(monkeypatch)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        for day in ("2026-11-20", "2026-11-21"):  # the next day is written once the first is parsed
            lines = [prediction(f"{day}-{i}", f"{day}T{i % 24:02d}:00:00Z") for i in range(2500)]
            for line in lines[2100:]:  # past the 2,000 first lines the strict read is told of
                change(line)
            write(logs / f"predictions-{day}.ndjson", lines)
            assert s.count(Query("fraud", DAYS)) == 2500 * (1 + (day == "2026-11-21"))
    assert reads.calls == [  # the next day's first lines hold no such key: it was remembered
        ("predictions-2026-11-20.ndjson", "stopped"),
        ("predictions-2026-11-20.ndjson", "read"),
        ("predictions-2026-11-21.ndjson", "read"),
    ]


def test_a_line_holding_the_sentinel_key_is_read_in_two_passes(tmp_path: Path, monkeypatch):
    lines = [prediction(f"a{i}", "2026-11-20T01:00:00Z") for i in range(2500)]
    for line in lines:
        del line["ml"]["groups"]
    lines[2200]["ml"]["groups"] = {"\x00predwatch": 1}  # after the first lines: the strict read is told of none
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    reads = Reads(monkeypatch)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        assert s.count(Query("fraud", DAY1)) == 2500
    assert reads.ways == [("predictions-2026-11-20.ndjson", "two passes")]


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**62), 2**62),
    st.sampled_from([2**63, 2**64 - 1, -(2**63)]),  # beyond BIGINT, its edges
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=5),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["x", "y"]), st.integers(0, 3), max_size=2),
)
_EVENT = b'"@timestamp": "2026-11-20T01:00:00Z", "event": {"dataset": "ml.prediction"}'
_ODD_LINES = [
    b'{"message": "caf\xe9"}',  # not UTF-8 (Latin-1)
    b"{" + _EVENT + b', "ml": {"prediction_id": "d1", "model": {"name": "fraud"}, "features": {"a": 1, "a": "x"}}}',
    b"{" + _EVENT + b', "ml": {"prediction_id": "d2", "model": {"name": "fraud", "name": "other"}}}',
    b"{" + _EVENT + b', "ml": {"prediction_id": "d3", "model": {"name": "fraud"}, "q": 1, "q": 2}}',  # not read
    b"\t",
    b"\t{"
    + _EVENT
    + b', "ml": {"prediction_id": "t1", "model": {"name": "fraud"}, "features": {"b": 1'
    + b"8" * 20
    + b"}}}",  # beyond any 64-bit integer
]
_LINE = st.fixed_dictionaries(
    {
        "features": st.dictionaries(st.sampled_from(["a", "b", "c", "A"]), _VALUES, max_size=4),
        "groups": st.one_of(st.none(), st.dictionaries(st.sampled_from(["g", "h"]), _VALUES, max_size=2)),
        "score": st.one_of(st.none(), st.floats(0, 1), st.sampled_from(["0.5", "high"])),
        "label": st.one_of(st.none(), st.integers(0, 2), st.sampled_from([1.5, "1", True])),
        "extra_ml": st.booleans(),
        "raw": st.sampled_from([None, None, None, None, b"", b"not json", b"[1, 2]", b'{"ml": 5}', *_ODD_LINES]),
    }
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=st.lists(_LINE, min_size=1, max_size=6), tail=st.lists(_LINE, max_size=4), first=st.integers(1, 4))
def test_the_strict_read_writes_what_the_two_passes_write(tmp_path_factory, head, tail, first):
    """Whatever the lines hold (late keys, mixed types, nested values, bad lines), a range read strictly gives the
    very parts the two passes give, or is left to them.  The strict read is told of the keys of the ``first``
    lines (2,000 in use)."""
    root = tmp_path_factory.mktemp("strict")
    lines: list = []
    for i, spec in enumerate([*head, *tail]):
        if spec["raw"] is not None:
            lines.append(spec["raw"])
            continue
        line = prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:00:00Z", label=spec["label"], score=spec["score"])
        line["ml"]["features"] = spec["features"]
        if spec["groups"] is None:
            del line["ml"]["groups"]
        else:
            line["ml"]["groups"] = spec["groups"]
        if spec["extra_ml"]:
            line["ml"]["note"] = "n"
        lines.append(line)
    write(root / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    results = []
    for strict in (True, False):
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setattr(range_parse_module, "_SAMPLE_LINES", first)
            Reads(monkeypatch, strict=strict)
            with LocalStore(root / "logs", root / f"state-{strict}") as s:
                s.count(Query("fraud", DAY1))
        results.append(parts(root / f"state-{strict}"))
    assert results[0] == results[1]


def test_the_keys_seen_but_not_read_are_remembered_up_to_the_files_cap(tmp_path: Path):
    """A service whose every line holds a key of its own under ``ml`` keeps a registry of bounded size."""
    from analyzers.store.jsonparse import Limits

    lines = [prediction(f"a{i}", "2026-11-20T01:00:00Z") for i in range(300)]
    for i, line in enumerate(lines):
        line["ml"][f"request_{i}"] = i
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    with LocalStore(tmp_path / "logs", tmp_path / "state", limits=Limits(2**20, 50, 50)) as s:
        assert s.count(Query("fraud", DAY1)) == 300
    (registry,) = (tmp_path / "state" / "parsed").rglob("registry.json")
    (entry,) = orjson.loads(registry.read_bytes())["files"].values()
    assert len(entry["schema"]["others"]["ml"]) == 50


def test_a_line_that_is_not_json_past_the_first_lines_is_set_aside_and_the_range_read_strictly(
    tmp_path: Path, monkeypatch
):
    lines: list = [prediction(f"a{i}", f"2026-11-20T{i % 24:02d}:00:00Z") for i in range(3000)]
    lines[2600] = orjson.dumps(prediction("torn", "2026-11-20T05:00:00Z"))[:60]  # cut by a writer's crash
    lines[2700] = b"[1, 2]"
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    reads = Reads(monkeypatch)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        q = Query("fraud", DAY1)
        assert s.count(q) == 2998
        reasons = s.quality(q).reasons
    assert reasons["bad JSON"].count == 1
    assert reasons["bad JSON"].first.endswith(":2601")
    assert reasons["not a JSON object"].count == 1
    assert reads.calls == [
        ("predictions-2026-11-20.ndjson", "stopped"),
        ("predictions-2026-11-20.ndjson", "stopped"),
        ("predictions-2026-11-20.ndjson", "read"),
    ]


def test_bytes_that_are_not_utf8_past_the_first_lines_cost_their_line(tmp_path: Path, monkeypatch):
    """A file read in place, stopped by a line that is not UTF-8: the two passes check every line and set it aside
    (the strict read's look at the line it stopped at could not read the file as it is)."""
    lines: list = [prediction(f"a{i}", f"2026-11-20T{i % 24:02d}:00:00Z") for i in range(3000)]
    lines[2600] = orjson.dumps(lines[2600]).replace(b"DE", b"D\xff")  # Latin-1 where UTF-8 was due
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    reads = Reads(monkeypatch)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        q = Query("fraud", DAY1)
        assert s.count(q) == 2999
        reasons = s.quality(q).reasons
    assert {r: c.count for r, c in reasons.items()} == {"invalid UTF-8": 1}
    assert reasons["invalid UTF-8"].first.endswith(":2601")
    assert reads.ways == [("predictions-2026-11-20.ndjson", "two passes")]


@pytest.mark.parametrize("cut", range(4))
def test_a_late_key_on_a_line_whose_text_duckdb_cuts_mid_character_is_read(tmp_path: Path, monkeypatch, cut: int):
    """DuckDB quotes the line it stops at, cut at a byte count: a cut inside a character made its binding raise
    ``UnicodeDecodeError``, and the whole parse failed.  The line is read, at every offset of the character."""
    lines = [prediction(f"a{i}", f"2026-11-20T{i % 24:02d}:00:00Z") for i in range(3000)]
    lines[2500]["ml"]["features"] = {"late": 1, "a" * cut + "city": "Zürich" * 20}
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    Reads(monkeypatch)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        assert s.count(Query("fraud", DAY1)) == 3000
        assert s.numeric_summary(Query("fraud", DAY1), "features.late").count == 1


@pytest.mark.parametrize("strict", [True, False], ids=["strict first", "two passes"])
def test_a_blank_line_and_a_late_feature_of_another_type_than_expected_are_read(
    tmp_path: Path, monkeypatch, strict: bool
):
    """A value not of its expected type has every line's types found and the range read again: the blank lines
    must stay placeholders in that read too (they were dropped, DuckDB's reader skipped them, the line count
    disagreed and the whole parse failed)."""
    lines: list = [prediction(f"a{i}", f"2026-11-20T{i % 24:02d}:00:00Z") for i in range(3000)]
    lines[10] = b""
    lines[2500]["ml"]["features"]["late"] = 2.5  # past the first lines: expected an integer, as none was seen
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    Reads(monkeypatch, strict=strict)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        assert s.count(Query("fraud", DAY1)) == 2999
        assert s.numeric_summary(Query("fraud", DAY1), "features.late").mean == 2.5
        assert s.quality(Query("fraud", DAY1)).set_aside == 0


def test_a_range_beginning_with_a_torn_line_is_read_strictly_with_that_line_set_aside(tmp_path: Path, monkeypatch):
    """A writer killed mid-line leaves its line unfinished at the end of the file: the parse stops before it, and
    once the next writer ends it, it is the first line of the next range (among the lines the strict read samples)."""
    torn = orjson.dumps(prediction("torn", "2026-11-20T05:00:00Z"))[:60]
    path = write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", [])
    with open(path, "ab") as handle:
        handle.write(b"".join(orjson.dumps(prediction(f"a{i}", "2026-11-20T01:00:00Z")) + b"\n" for i in range(100)))
        handle.write(torn)
    reads = Reads(monkeypatch)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        assert s.count(Query("fraud", DAY1)) == 100
        with open(path, "ab") as handle:  # the next writer ends the torn line first, then writes its own
            handle.write(
                b"\n" + b"".join(orjson.dumps(prediction(f"b{i}", "2026-11-20T02:00:00Z")) + b"\n" for i in range(3000))
            )
        assert s.count(Query("fraud", DAY1)) == 3100
        reasons = s.quality(Query("fraud", DAY1)).reasons
    assert reasons["bad JSON"].count == 1
    assert reasons["bad JSON"].first.endswith(":101")
    assert reads.calls == [("predictions-2026-11-20.ndjson", "read")]
