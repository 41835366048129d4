"""The local store over daily log files: windows, feedback joins, weights, bad lines, state."""

from __future__ import annotations

import gzip
import multiprocessing
from datetime import timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzers.findings import Finding, Signal
from analyzers.store import ConflictError, LocalStore, Query
from analyzers.timeutil import Window

DAY1 = Window("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z")


def prediction(
    pid: str,
    ts: str,
    *,
    amount=1.0,
    country="DE",
    label=1,
    score=0.5,
    region="EU",
    rate=None,
    outcome="success",
    model="fraud",
    entity="u1",
    latency=10.0,
) -> dict:
    ml = {
        "prediction_id": pid,
        "model": {"name": model, "version": "v1"},
        "entity_id": entity,
        "features": {"amount": amount, "country": country},
        "prediction": {"label": label, "score": score},
        "groups": {"region": region},
        "latency_ms": latency,
    }
    if rate is not None:
        ml["sample_rate"] = rate
    event = {"dataset": "ml.prediction", "kind": "event", "outcome": outcome}
    line = {"@timestamp": ts, "log.level": "info", "message": "prediction", "event": event, "ml": ml}
    if outcome == "failure":
        line["error"] = {"type": "ValueError", "message": "bad input"}
    return line


def feedback(pid: str, ts: str, label, model="fraud") -> dict:
    return {
        "@timestamp": ts,
        "event": {"dataset": "ml.feedback", "kind": "event"},
        "ml": {"prediction_id": pid, "model": {"name": model}, "label": label},
    }


def write(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n" for x in lines)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(body))
    else:
        path.write_bytes(body)
    return path


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    svc = tmp_path / "logs" / "fraud-api"
    write(
        svc / "predictions-2026-11-20.ndjson",
        [
            prediction("a", "2026-11-20T01:00:00Z", amount=1.0),
            prediction("b", "2026-11-20T02:00:00.500Z", amount=2.0, country="FR", region="US", label=0),
            prediction("c", "2026-11-20T03:00:00Z", amount=3.0, rate=0.5),
            prediction("a", "2026-11-20T04:00:00Z", amount=99.0),  # shipped twice: counts once
            prediction("f", "2026-11-20T05:00:00Z", outcome="failure"),
            prediction("x", "2026-11-20T06:00:00Z", model="other"),
            feedback("a", "2026-11-20T09:00:00Z", 0),
        ],
    )
    write(
        svc / "predictions-2026-11-21.ndjson.gz",
        [
            prediction("d", "2026-11-21T01:00:00Z", amount=4.0),
            feedback("b", "2026-11-21T02:00:00Z", 0),
        ],
    )
    write(
        svc / "predictions-2026-11-23.ndjson",
        [
            feedback("a", "2026-11-23T02:00:00Z", 1),  # latest feedback wins
        ],
    )
    return tmp_path / "logs"


@pytest.fixture
def store(logs: Path, tmp_path: Path):
    with LocalStore(logs, tmp_path / "state") as s:
        yield s


def test_window_reads_its_days_dedups_and_weights(store: LocalStore):
    q = Query("fraud", DAY1)
    assert store.count(q) == 1 + 1 + 2 + 1  # a, b, c (rate 0.5 weighs 2), f
    assert store.scan_report().duplicates == 1
    assert store.count(q.with_(outcome="success")) == 4
    assert store.count(Query("fraud", Window("2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z"))) == 1


def test_feedback_from_later_days_is_joined_latest_wins(store: LocalStore):
    rows = next(store.rows(Query("fraud", DAY1), columns=["prediction_id", "label", "features.amount"]))
    labels = dict(zip(rows["prediction_id"], rows["label"], strict=False))
    assert labels["a"] == 1 and labels["b"] == 0 and np.isnan(labels["c"])  # numeric column: NaN when missing
    assert rows.loc[rows["prediction_id"] == "a", "features.amount"].item() == 1.0  # first copy kept
    assert store.count(Query("fraud", DAY1, has_label=True)) == 2


def test_columns_kinds(store: LocalStore):
    kinds = {c.name: c.kind for c in store.columns(Query("fraud", DAY1))}
    assert kinds["features.amount"] == "numeric"
    assert kinds["features.country"] == "categorical"
    assert kinds["groups.region"] == "categorical"
    assert kinds["score"] == "numeric" and "label" in kinds


def test_aggregates(store: LocalStore):
    q = Query("fraud", DAY1, outcome="success")
    assert store.category_counts(q, "features.country") == {"DE": 3.0, "FR": 1.0}
    hist = store.histogram(q, "features.amount", [0, 1.5, 2.5, 10])
    assert hist.counts.tolist() == [1.0, 1.0, 2.0] and hist.missing == 0
    hist = store.histogram(q, "features.amount", [1.5, 2.5])
    assert (hist.underflow, hist.counts.tolist(), hist.overflow) == (1.0, [1.0], 2.0)
    summary = store.numeric_summary(q, "features.amount")
    assert summary.count == 4 and summary.mean == pytest.approx((1 + 2 + 3 * 2) / 4)
    assert store.quantiles(q, "features.amount", [0.0, 0.5, 1.0]) == [1.0, 2.0, 3.0]
    tab = store.crosstab(q, ["groups.region", "prediction", "label"])
    eu = tab[(tab["groups.region"] == "EU") & (tab["label"] == 1)]
    assert eu["count"].sum() == 1.0
    filtered = Query("fraud", DAY1, groups={"region": ("US",)})
    assert store.count(filtered) == 1


def test_volume_buckets_include_empty_ones(store: LocalStore):
    vol = store.volume(Query("fraud", DAY1), timedelta(hours=6))
    assert vol["count"].tolist() == [5.0, 0.0, 0.0, 0.0]
    assert vol["failures"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert str(vol["start"].iloc[1]) == "2026-11-20 06:00:00+00:00"


def test_sample_is_bounded_and_reproducible(store: LocalStore):
    q = Query("fraud", DAY1)
    one = store.sample(q, 2, seed=3)
    assert len(one) == 2
    assert one["prediction_id"].tolist() == store.sample(q, 2, seed=3)["prediction_id"].tolist()
    assert len(store.sample(q, 100)) == 4


def test_rows_are_chunked_and_ordered(store: LocalStore):
    chunks = list(store.rows(Query("fraud", DAY1), chunk_size=2))
    assert [len(c) for c in chunks] == [2, 2]
    assert [p for c in chunks for p in c["prediction_id"]] == ["a", "b", "c", "f"]
    assert str(chunks[0]["timestamp"].dt.tz) == "UTC"


def test_missing_directory_is_empty_not_an_error(tmp_path: Path):
    with LocalStore(tmp_path / "nothing", tmp_path / "state") as s:
        q = Query("fraud", DAY1)
        assert s.count(q) == 0 and s.columns(q) == []
        assert s.quantiles(q, "features.amount", [0.5]) == [None]


def test_bad_lines_are_skipped_and_reported_with_line_numbers(tmp_path: Path):
    path = write(
        tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson",
        [
            prediction("a", "2026-11-20T01:00:00Z"),
            b"not json at all",
            b'{"@timestamp": "2026-11-20T01:00:00Z", "ml": {"prediction_id": "cut',
            b"",
            orjson.dumps({**prediction("b", "2026-11-20T01:00:00Z"), "@timestamp": "yesterday"}),
            orjson.dumps({"event": {"dataset": "ml.prediction"}, "@timestamp": "2026-11-20T01:00:00Z"}),
            orjson.dumps(prediction("c", "2026-11-20T01:00:00Z", score="high")),
            b"[1, 2, 3]",
            b"\xff\xfe broken bytes",
            prediction("d", "2026-11-20T02:00:00Z"),
        ],
    )
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        assert s.count(Query("fraud", DAY1)) == 2
        skipped = {(x.line, x.reason.split(" ")[0]) for x in s.scan_report().skipped}
        assert {line for line, _ in skipped} == {2, 3, 5, 6, 7, 8, 9}
        assert all(x.source == str(path) for x in s.scan_report().skipped)
    report = orjson.loads((tmp_path / "state" / "quarantine" / f"svc__{path.name}.json").read_bytes())
    assert {r["line"] for r in report} == {2, 3, 5, 6, 7, 8, 9}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.lists(st.one_of(st.binary(max_size=60), st.text(max_size=60).map(str.encode)), max_size=6))
def test_generated_garbage_never_hides_good_lines(tmp_path_factory, garbage):
    root = tmp_path_factory.mktemp("g")
    lines = [prediction("good1", "2026-11-20T01:00:00Z")]
    lines += [g.replace(b"\n", b" ").replace(b"\r", b" ") for g in garbage]
    lines.append(prediction("good2", "2026-11-20T02:00:00Z"))
    write(root / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    with LocalStore(root / "logs", root / "state") as s:
        q = Query("fraud", DAY1)
        ids = {p for c in s.rows(q, columns=["prediction_id"]) for p in c["prediction_id"]}
        assert {"good1", "good2"} <= ids


def test_findings_round_trip_and_idempotent(store: LocalStore):
    f = Finding(
        "fraud",
        "drift",
        DAY1,
        "alert",
        {"share_drifted": 0.5},
        signals=[Signal("feature:amount", "drifted", value=0.3)],
    )
    store.write_findings([f])
    store.write_findings([f])
    back = store.read_findings(model="fraud")
    assert len(back) == 1 and back[0].signals[0].subject == "feature:amount"
    assert store.read_findings(model="fraud", job="ops") == []


def test_state_optimistic_concurrency(store: LocalStore):
    v1 = store.put_state("alert:fraud:drift:feature:amount", {"firing": True})
    with pytest.raises(ConflictError):
        store.put_state("alert:fraud:drift:feature:amount", {"firing": True})
    v2 = store.put_state("alert:fraud:drift:feature:amount", {"firing": False}, version=v1)
    with pytest.raises(ConflictError):
        store.put_state("alert:fraud:drift:feature:amount", {"x": 1}, version=v1)
    doc, version = store.get_state("alert:fraud:drift:feature:amount")
    assert doc == {"firing": False} and version == v2
    assert list(store.list_state("alert:fraud:")) == ["alert:fraud:drift:feature:amount"]
    store.delete_state("alert:fraud:drift:feature:amount", version=v2)
    assert store.get_state("alert:fraud:drift:feature:amount") is None


def _claim(state_dir: str, n: int, queue) -> None:
    with LocalStore(Path(state_dir) / "logs", state_dir) as s:
        won = 0
        for i in range(n):
            try:
                s.put_state(f"claim:{i}", {"by": multiprocessing.current_process().name})
                won += 1
            except ConflictError:
                pass
        queue.put(won)


def test_two_processes_never_both_claim_the_same_key(tmp_path: Path):
    queue = multiprocessing.get_context("spawn").Queue()
    procs = [
        multiprocessing.get_context("spawn").Process(target=_claim, args=(str(tmp_path), 200, queue)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sum(queue.get(timeout=5) for _ in procs) == 200
    with LocalStore(tmp_path / "logs", tmp_path) as s:
        assert len(s.list_state("claim:")) == 200


def test_many_rows_stream_with_bounded_chunks(tmp_path: Path):
    rng = np.random.default_rng(0)
    lines = [prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:00:00Z", amount=float(rng.normal())) for i in range(5000)]
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        sizes = [len(c) for c in s.rows(Query("fraud", DAY1), columns=["features.amount"], chunk_size=1000)]
        assert sizes == [1000] * 5


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".ndjson"])
def test_reference_file_is_a_store_over_every_window(tmp_path: Path, suffix: str):
    import pandas as pd

    from analyzers.store import open_reference_file

    frame = pd.DataFrame(
        {
            "amount": [1.0, 2.0, 3.0, None],
            "country": ["DE", "FR", "DE", "DE"],
            "prediction": [1, 0, 1, 1],
            "groups.region": ["EU", "US", "EU", "EU"],
        }
    )
    path = tmp_path / f"ref{suffix}"
    {
        ".parquet": frame.to_parquet,
        ".csv": lambda p: frame.to_csv(p, index=False),
        ".ndjson": lambda p: frame.to_json(p, orient="records", lines=True),
    }[suffix](path)
    with open_reference_file(path, "fraud") as ref:
        q = Query("fraud", DAY1, outcome="success")
        kinds = {c.name: c.kind for c in ref.columns(q)}
        assert kinds == {
            "features.amount": "numeric",
            "features.country": "categorical",
            "prediction": "numeric",
            "groups.region": "categorical",
        }
        assert ref.count(q) == 4
        assert ref.category_counts(q, "features.country") == {"DE": 3.0, "FR": 1.0}
        assert ref.numeric_summary(q, "features.amount").missing == 1
        assert ref.quantiles(q, "features.amount", [0.5]) == [2.0]


def test_open_store_from_config(tmp_path: Path, logs: Path):
    from analyzers.config.models import Config
    from analyzers.store import open_store

    cfg = Config.model_validate({"store": {"local": {"path": "logs"}}})
    with open_store(cfg, config_dir=tmp_path) as s:
        assert isinstance(s, LocalStore) and s.count(Query("fraud", DAY1)) == 5
        assert s.state_dir == tmp_path.resolve() / ".predwatch"


def test_settled_files_are_parsed_once_and_reparsed_when_changed(logs: Path, tmp_path: Path):
    import os

    old = 1_700_000_000
    for path in logs.rglob("predictions-*"):
        os.utime(path, (old, old))
    state = tmp_path / "state"
    with LocalStore(logs, state) as first:
        assert first.count(Query("fraud", DAY1)) == 5
    cached = sorted(p.name for p in (state / "parsed").glob("*.parquet"))
    assert len(cached) == 3
    with LocalStore(logs, state) as second:
        q = Query("fraud", DAY1)
        assert second.count(q) == 5 and second.count(q.with_(has_label=True)) == 2
        assert second.category_counts(q.with_(outcome="success"), "features.country") == {"DE": 3.0, "FR": 1.0}
    day = logs / "fraud-api" / "predictions-2026-11-20.ndjson"
    with open(day, "ab") as handle:
        handle.write(orjson.dumps(prediction("late", "2026-11-20T23:00:00Z")) + b"\n")
    os.utime(day, (old + 10, old + 10))
    with LocalStore(logs, state) as third:
        assert third.count(Query("fraud", DAY1)) == 6
    assert len(list((state / "parsed").glob("*.parquet"))) == 3


def test_reference_file_without_labels_has_no_labelled_rows(tmp_path: Path):
    import pandas as pd

    from analyzers.store import open_reference_file

    path = tmp_path / "ref.parquet"
    pd.DataFrame({"amount": [1.0, 2.0]}).to_parquet(path)
    with open_reference_file(path, "fraud") as ref:
        q = Query("fraud", DAY1)
        assert ref.count(q.with_(has_label=True)) == 0
        assert ref.count(q.with_(has_label=False)) == 2
