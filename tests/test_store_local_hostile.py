"""Hostile or odd log lines cost one line, never a day, and every one of them is counted in the window's quality."""

from __future__ import annotations

import gzip
import random
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from analyzers.config.models import DriftConfig, OpsConfig, PerformanceConfig, ReferenceConfig
from analyzers.jobs import drift, ops, performance
from analyzers.store import LocalStore, Query
from analyzers.timeutil import Window
from tests.log_events import event
from tests.store_contract import DAY1, prediction

DAY0 = DAY1.shift(-timedelta(days=1))


def write(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n" for x in lines))
    return path


def classified(day: Window, n: int, seed: int) -> list[dict]:
    """``n`` scored binary predictions over the day, each with its feedback label (integers 0 and 1)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        ts = day.start + timedelta(seconds=i * 86_000 // n)
        score = rng.random()
        label = int(rng.random() < score)
        pid = f"{day.start:%d}-{i}"
        lines.append(event(ts, pid, {"prediction": {"label": int(score > 0.5), "score": score}}, model="m"))
        lines.append(event(ts + timedelta(seconds=1), pid, {"label": label}, dataset="ml.feedback", model="m"))
    return lines


def test_one_bad_line_leaves_a_performance_verdict_unchanged(tmp_path: Path):
    config = PerformanceConfig(window="1d", reference=ReferenceConfig(last="1d"), min_labels=50)
    verdicts = []
    for name, bad in (("clean", []), ("one-bad-line", [b'{"@timestamp": "2026-11-20T05:00:00Z", "ml": {"predi'])):
        logs = tmp_path / name / "logs" / "svc"
        write(logs / "predictions-2026-11-19.ndjson", classified(DAY0, 400, 1))
        current = classified(DAY1, 400, 2)
        write(logs / "predictions-2026-11-20.ndjson", current[:300] + bad + current[300:])
        with LocalStore(logs.parent, tmp_path / name / "state") as store:
            finding = performance.run(store, "m", config, DAY1)
            rows = next(store.rows(Query("m", DAY1, has_label=True), columns=["prediction", "label"]))
        measured = finding.to_dict()
        verdicts.append((finding.status, measured["accuracy"], measured["recall"], rows))
    (clean_status, clean_accuracy, clean_recall, clean_rows), (status, accuracy, recall, rows) = verdicts
    assert status == clean_status
    assert (accuracy, recall) == (clean_accuracy, clean_recall)
    assert rows.equals(clean_rows)  # the same values: labels are numbers in both, never "0"/"1" in one of them


def test_a_list_valued_feature_is_a_category_of_its_json_and_drift_runs(tmp_path: Path):
    lines = []
    for day, shift in ((DAY0, 0), (DAY1, 1)):
        for i in range(300):
            tags = [["a", "b"], ["b"], {"k": i % 3 + shift}][i % 3]
            features = {"tags": tags, "amount": float(i % 50 + shift)}
            lines.append(
                event(day.start + timedelta(minutes=i), f"{day.start:%d}-{i}", {"features": features}, model="m")
            )
    for day in ("2026-11-19", "2026-11-20"):
        write(
            tmp_path / "logs" / "svc" / f"predictions-{day}.ndjson", [e for e in lines if e["@timestamp"][:10] == day]
        )
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        config = DriftConfig(reference=ReferenceConfig(last="1d"), min_rows=10, min_coverage=0.0)
        finding = drift.run(store, "m", config, DAY1)
        quality = store.quality(Query("m", DAY1))
    assert finding.status in ("ok", "alert"), finding.error
    kinds = {f["name"]: f["kind"] for f in finding.to_dict()["features"]}
    assert kinds["tags"] == "categorical"
    assert quality.reasons["nested value in features.tags"].count == 300


def test_a_20_mb_line_and_a_truncated_gzip_leave_the_other_lines_analysed(tmp_path: Path):
    folder = tmp_path / "logs" / "svc"
    good = [prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:{i % 60:02d}:00Z", amount=float(i)) for i in range(400)]
    huge = orjson.dumps(prediction("huge", "2026-11-20T12:00:00Z", country="x" * 20_000_000))
    day = write(folder / "predictions-2026-11-20.ndjson", [*good[:200], huge, *good[200:]])
    rotated = gzip.compress(b"".join(orjson.dumps(e) + b"\n" for e in good[:300]))
    archive = folder / "predictions-2026-11-20.ndjson.1.gz"
    archive.write_bytes(rotated[: len(rotated) * 2 // 3])  # cut short, as by a disk filled while rotating
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        q = Query("fraud", DAY1)
        assert store.count(q) == 400  # every line of the day file (the archive repeats some of them)
        finding = ops.run(store, "fraud", OpsConfig(window="1d", min_rows=10), DAY1)
        reasons = store.quality(q).reasons
    assert finding.status in ("ok", "alert"), finding.error
    assert reasons["line too long"].first == f"{day}:201"
    assert reasons["truncated gzip"].first.startswith(f"{archive}:")
    assert reasons["repeated id"].count > 0  # the archive's readable lines, counted once


def test_500_distinct_keys_per_line_stay_within_the_memory_budget(tmp_path: Path):
    rng = random.Random(5)
    good = [prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:00:00Z") for i in range(100)]
    wide = []
    for i in range(200):
        line = prediction(f"w{i}", "2026-11-20T06:00:00Z")
        line["ml"]["features"] = {f"k{rng.getrandbits(48):x}": 1.0 for _ in range(500)}
        wide.append(line)
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", good + wide)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:  # the default memory budget
        finding = ops.run(store, "fraud", OpsConfig(window="1d", min_rows=10), DAY1)
        quality = store.quality(Query("fraud", DAY1))
        columns = store.columns(Query("fraud", DAY1))
        store_count = store.count(Query("fraud", DAY1))
    assert finding.status in ("ok", "alert"), finding.error
    assert store_count == 101  # the first wide line fits under the 1,000 keys of a file, the next ones do not
    assert quality.reasons["too many distinct keys"].count == 199
    assert len([c for c in columns if c.name.startswith("features.")]) == 2 + 500


def test_bad_bytes_implausible_times_and_repeated_ids_are_counted(tmp_path: Path):
    path = tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson"
    lines: list = [prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:00:00Z") for i in range(100)]
    lines += [orjson.dumps(prediction(f"u{i}", "2026-11-20T03:00:00Z")).replace(b"DE", b"D\xff") for i in range(10)]
    lines += [prediction(f"t{i}", "1970-01-01T00:00:00Z" if i % 2 else "2100-01-01T00:00:00Z") for i in range(6)]
    lines += [prediction(f"p{i}", "2026-11-20T23:00:00Z") for i in range(7)]
    write(path, lines)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        q = Query("fraud", DAY1)
        assert store.count(q) == 100
        report = store.quality(q)
    assert {r: c.count for r, c in report.reasons.items()} == {
        "invalid UTF-8": 10,
        "implausible time": 6,
        "repeated id": 7,
    }
    assert report.reasons["invalid UTF-8"].first == f"{path}:101"
    assert report.lines == 100 + 10 + 6 + 7


def test_text_among_numbers_is_set_aside_and_named(tmp_path: Path):
    lines = [prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:00:00Z", amount=float(i)) for i in range(200)]
    for i in range(0, 200, 20):
        lines[i]["ml"]["features"]["amount"] = "abc"
    path = write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        q = Query("fraud", DAY1)
        kinds = {c.name: c.kind for c in store.columns(q)}
        summary = store.numeric_summary(q, "features.amount")
        mismatch = store.quality(q).reasons["type mismatch in features.amount"]
    assert kinds["features.amount"] == "numeric"  # most values are numbers
    assert (summary.count, summary.missing) == (190, 0)  # the ten texts are neither values nor missing
    assert (mismatch.count, mismatch.first) == (10, f"{path}:1")


@pytest.mark.parametrize("hostile", [b"[" * 5000 + b"]" * 5000, b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b"}"])
def test_deep_nesting_costs_one_line(tmp_path: Path, hostile: bytes):
    good = [prediction(f"p{i}", "2026-11-20T01:00:00Z") for i in range(5)]
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", [*good[:2], hostile, *good[2:]])
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        assert store.count(Query("fraud", DAY1)) == 5
        assert store.quality(Query("fraud", DAY1)).set_aside == 1


def test_a_key_written_twice_costs_its_line_where_it_is_read(tmp_path: Path):
    """DuckDB's reader refuses a line holding twice a key it reads: that line is set aside (``duplicate key``),
    never the day; a key it does not read may repeat."""
    good = [prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:00:00Z") for i in range(50)]
    twice_feature = orjson.dumps(prediction("d1", "2026-11-20T05:00:00Z")).replace(
        b'"amount":', b'"amount":"x","amount":'
    )
    twice_model = orjson.dumps(prediction("d2", "2026-11-20T05:00:00Z")).replace(
        b'"name":"fraud"', b'"name":"fraud","name":"other"'
    )
    twice_unread = orjson.dumps(prediction("d3", "2026-11-20T05:00:00Z")).replace(b'"ml":{', b'"ml":{"q":1,"q":2,')
    path = write(
        tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", [*good, twice_feature, twice_model, twice_unread]
    )
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        q = Query("fraud", DAY1)
        assert store.count(q) == 51
        reasons = store.quality(q).reasons
    assert {r: c.count for r, c in reasons.items()} == {"duplicate key": 2}
    assert reasons["duplicate key"].first == f"{path}:51"


@pytest.mark.parametrize("odd", [b"", b'{"message": "caf\xe9"}'], ids=["blank line", "not UTF-8"])
def test_a_text_feature_first_seen_late_beside_an_odd_line_costs_nothing_but_that_line(tmp_path: Path, odd: bytes):
    """A feature first seen past the lines its type is expected from, holding text where a number was expected,
    makes the typed read stop; the range read again must keep a blank line blank and set aside bytes that are not
    UTF-8, never fail the day."""
    lines: list = [prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:00:00Z") for i in range(2500)]
    lines[2300]["ml"]["features"]["note"] = "late text"
    lines.append(odd)
    path = write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        q = Query("fraud", DAY1)
        assert store.count(q) == 2500
        assert store.category_counts(q, "features.note")["late text"] == 1.0
        reasons = store.quality(q).reasons
    expected = {} if not odd else {"invalid UTF-8": 1}
    assert {r: c.count for r, c in reasons.items()} == expected
    if odd:
        assert reasons["invalid UTF-8"].first == f"{path}:2501"


def test_an_integer_beyond_bigint_makes_its_column_fractional_never_fails_the_day(tmp_path: Path):
    lines = [prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:00:00Z") for i in range(3000)]
    for i, line in enumerate(lines):
        line["ml"]["features"]["visits"] = i
    lines[2800]["ml"]["features"]["visits"] = 2**64 - 1  # a counter that wrapped, past the lines types come from
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        q = Query("fraud", DAY1)
        assert store.count(q) == 3000
        summary = store.numeric_summary(q, "features.visits")
        assert store.quality(q).reasons == {}
    assert summary.count == 3000
    assert summary.max == pytest.approx(2.0**64)


def test_whitespace_around_a_line_is_json_whitespace(tmp_path: Path):
    """A line indented with a tab is an event; a line of a tab alone is blank; a form feed is not JSON's whitespace."""
    good = [prediction(f"p{i}", "2026-11-20T01:00:00Z") for i in range(4)]
    indented = b"\t" + orjson.dumps(prediction("tab", "2026-11-20T02:00:00Z")) + b" \t"
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", [*good[:2], indented, b"\t", b"\x0c", *good[2:]])
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        q = Query("fraud", DAY1)
        assert store.count(q) == 5
        reasons = store.quality(q).reasons
    assert {r: c.count for r, c in reasons.items()} == {"bad JSON": 1}
    assert reasons["bad JSON"].first.endswith(":5")


def test_a_key_that_cannot_be_a_column_costs_its_lines(tmp_path: Path):
    """An empty key, or one holding the unit separator (which would split the names of a ``nested`` cell), is an
    ``unusable key``: its lines are set aside, the others' nested values keep their own names."""
    lines = [prediction(f"p{i}", "2026-11-20T01:00:00Z") for i in range(10)]
    for line in lines:
        line["ml"]["features"]["tags"] = ["a"]
    lines[3]["ml"]["features"]["a\x1fb"] = [1]
    lines[4]["ml"]["features"][""] = 1.0
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        q = Query("fraud", DAY1)
        assert store.count(q) == 8
        reasons = {r: c.count for r, c in store.quality(q).reasons.items()}
    assert reasons == {"unusable key": 2, "nested value in features.tags": 8}
