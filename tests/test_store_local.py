"""What only the local store does: rotated gzip days, repeated ids and bad lines in quality, exact quantiles,
the parsed Parquet kept under the state dir, concurrent processes, reference files; what every store does is
in ``store_contract.py``; hostile lines and live files are in ``test_store_local_hostile.py`` and
``test_store_local_live.py``."""

from __future__ import annotations

import gzip
import itertools
import multiprocessing
import os
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzers.store import ConflictError, LocalStore, Query
from analyzers.timeutil import Window
from tests.store_contract import DAY1, DAY2, contract_events, prediction


def write(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n" for x in lines)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(body))
    else:
        path.write_bytes(body)
    return path


def settle(logs: Path, at: float = 1_700_000_000) -> None:
    """Backdate every log file, as a day no longer written looks (its parse may be compacted)."""
    for path in logs.rglob("predictions-*"):
        os.utime(path, (at, at))


def registry(state: Path, service: str) -> dict:
    (folder,) = (state / "parsed").glob(f"*/{service}")
    return orjson.loads((folder / "registry.json").read_bytes())


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """The contract events as the logger's daily files, the second day rotated and gzipped."""
    days: dict[str, list[dict]] = {}
    for event in contract_events("fraud", "other"):
        days.setdefault(event["@timestamp"][:10], []).append(event)
    for day, events in days.items():
        name = f"predictions-{day}.ndjson" + (".gz" if day == "2026-11-21" else "")
        write(tmp_path / "logs" / "fraud-api" / name, events)
    return tmp_path / "logs"


@pytest.fixture
def store(logs: Path, tmp_path: Path):
    with LocalStore(logs, tmp_path / "state") as s:
        yield s


def test_rotated_gzip_days_are_read_and_repeated_ids_counted_in_quality(store: LocalStore, logs: Path):
    q = Query("fraud", DAY1)
    assert store.count(q) == 5
    repeated = store.quality(q).reasons["repeated id"]
    assert repeated.count == 1
    assert repeated.first == f"{logs / 'fraud-api' / 'predictions-2026-11-20.ndjson'}:4"
    assert store.count(Query("fraud", DAY2)) == 1  # its only prediction is in the .gz file
    rows = next(store.rows(q.with_(has_label=True), columns=["prediction_id", "label"]))
    assert dict(zip(rows["prediction_id"], rows["label"], strict=True)) == {"a": 1, "b": 0}  # b's in the .gz file


def test_quantiles_are_exact(store: LocalStore):
    q = Query("fraud", DAY1, outcome="success")
    assert store.quantiles(q, "features.amount", [0.0, 0.5, 1.0]) == [1.0, 2.0, 3.0]


def test_missing_directory_is_empty_not_an_error(tmp_path: Path):
    with LocalStore(tmp_path / "nothing", tmp_path / "state") as s:
        q = Query("fraud", DAY1)
        assert s.count(q) == 0
        assert s.columns(q) == []
        assert s.quantiles(q, "features.amount", [0.5]) == [None]


def test_bad_lines_are_set_aside_and_counted_by_reason_with_their_first_line(tmp_path: Path):
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
        q = Query("fraud", DAY1)
        assert s.count(q) == 2
        report = s.quality(q)
    firsts = {reason: r.first for reason, r in report.reasons.items()}
    assert firsts == {
        "bad JSON": f"{path}:2",
        "bad time": f"{path}:5",
        "missing prediction id": f"{path}:6",
        "bad number in ml.prediction.score": f"{path}:7",
        "not a JSON object": f"{path}:8",
        "invalid UTF-8": f"{path}:9",
    }
    assert report.reasons["bad JSON"].count == 2
    assert report.lines == 2 + 7  # the blank line is neither an event nor a problem


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


def _open_new_states(root: str, n: int, start, queue) -> None:
    from analyzers.store.sqlite_state import SqliteState

    start.wait()
    refused = []
    for i in range(n):
        folder = Path(root) / str(i)
        folder.mkdir(exist_ok=True)
        try:
            SqliteState(folder)
        except Exception as exc:  # what the other processes' opening made this one see
            refused.append(str(exc))
    queue.put(refused)


def test_processes_opening_a_new_state_file_at_once_all_open_it(tmp_path: Path):
    """A scheduler and a command started together on a fresh state folder both set it up (WAL mode)."""
    context = multiprocessing.get_context("fork")
    queue, start = context.Queue(), context.Event()
    procs = [context.Process(target=_open_new_states, args=(str(tmp_path), 100, start, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    start.set()
    refused = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert refused == [[], [], []]


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
        assert isinstance(s, LocalStore)
        assert s.count(Query("fraud", DAY1)) == 5
        assert s.state_dir == tmp_path.resolve() / ".predwatch"


def test_settled_days_are_parsed_once_into_a_month_and_parsed_again_when_changed(logs: Path, tmp_path: Path):
    settle(logs)
    state = tmp_path / "state"
    with LocalStore(logs, state) as first:
        assert first.count(Query("fraud", DAY1)) == 5
    parsed = registry(state, "fraud-api")
    assert list(parsed["bins"]) == ["2026-11.0"]  # every settled day in one Parquet file
    files = parsed["files"].values()
    assert len(files) == 4  # the four days of the contract events
    assert [entry["bins"] for entry in files] == [["2026-11.0"]] * len(files)
    assert [entry["parts"] for entry in files] == [[]] * len(files)
    with LocalStore(logs, state) as second:
        q = Query("fraud", DAY1)
        assert second.count(q) == 5
        assert second.count(q.with_(has_label=True)) == 2
        assert second.category_counts(q.with_(outcome="success"), "features.country") == {"DE": 3.0, "FR": 1.0}
    assert registry(state, "fraud-api")["version"] == parsed["version"]  # nothing parsed again
    day = logs / "fraud-api" / "predictions-2026-11-20.ndjson"
    with open(day, "ab") as handle:
        handle.write(orjson.dumps(prediction("late", "2026-11-20T23:00:00Z")) + b"\n")
    settle(logs, 1_700_000_010)
    with LocalStore(logs, state) as third:
        assert third.count(Query("fraud", DAY1)) == 6
    entry = registry(state, "fraud-api")["files"]["predictions-2026-11-20.ndjson"]
    assert entry["lines"] == 8  # the appended line only was parsed, and compacted with the rest
    assert entry["bins"] == ["2026-11.0"]


def test_reference_file_without_labels_has_no_labelled_rows(tmp_path: Path):
    import pandas as pd

    from analyzers.store import open_reference_file

    path = tmp_path / "ref.parquet"
    pd.DataFrame({"amount": [1.0, 2.0]}).to_parquet(path)
    with open_reference_file(path, "fraud") as ref:
        q = Query("fraud", DAY1)
        assert ref.count(q.with_(has_label=True)) == 0
        assert ref.count(q.with_(has_label=False)) == 2


def test_a_file_still_written_is_parsed_only_where_it_grew(logs: Path, tmp_path: Path):
    state = tmp_path / "state"
    day = logs / "fraud-api" / "predictions-2026-11-20.ndjson"
    with LocalStore(logs, state) as store:
        assert store.count(Query("fraud", DAY1)) == 5
        with open(day, "ab") as handle:
            handle.write(orjson.dumps(prediction("late", "2026-11-20T23:00:00Z")) + b"\n")
            handle.write(b'{"@timestamp": "2026-11-20T23:30:00Z", "ml": {"predic')  # a line still being written
        assert store.count(Query("fraud", DAY1)) == 6
        parts = registry(state, "fraud-api")["files"][day.name]["parts"]
        assert [p["rows"] for p in parts] == [7, 1]  # the new complete line only; the unfinished one waits
        with open(day, "ab") as handle:
            handle.write(b'tion_id": "z"}}\n')
        q = Query("fraud", DAY1)
        assert store.quality(q).reasons["not a prediction or feedback event"].first == f"{day}:9"


def test_temporary_files_left_by_a_killed_process_are_swept(logs: Path, tmp_path: Path):
    state = tmp_path / "state"
    with LocalStore(logs, state) as store:
        assert store.count(Query("fraud", DAY1)) == 5
    child = multiprocessing.get_context("spawn").Process(target=int)
    child.start()
    child.join()
    (folder,) = (state / "parsed").glob("*/fraud-api")
    orphan = folder / f".predictions-2026-11-20.ndjson.1.2.parquet.{child.pid}.tmp"
    orphan.write_bytes(b"")
    with open(logs / "fraud-api" / "predictions-2026-11-20.ndjson", "ab") as handle:
        handle.write(orjson.dumps(prediction("late", "2026-11-20T23:00:00Z")) + b"\n")
    with LocalStore(logs, state) as store:
        assert store.count(Query("fraud", DAY1)) == 6
    assert not orphan.exists()


def test_rows_sorted_slice_by_slice_stay_in_time_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from analyzers.store import duck

    monkeypatch.setattr(duck, "_SLICE_ROWS", 1)  # every slice is as small as the chunk size allows
    rng = np.random.default_rng(1)
    hours = rng.integers(0, 24, 3000)
    lines = [prediction(f"p{i}", f"2026-11-20T{h:02d}:{i % 60:02d}:00Z") for i, h in enumerate(hours)]
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        chunks = list(s.rows(Query("fraud", DAY1), columns=["timestamp", "prediction_id"], chunk_size=64))
    assert [len(c) for c in chunks] == [64] * 46 + [3000 - 64 * 46]
    stamps = [t for c in chunks for t in c["timestamp"]]
    ids = [p for c in chunks for p in c["prediction_id"]]
    assert len(set(ids)) == 3000
    assert list(zip(stamps, ids, strict=True)) == sorted(zip(stamps, ids, strict=True))


def test_rows_before_1970_fall_in_the_hour_they_belong_to(tmp_path: Path):
    """Slices are whole hours counted from the epoch: an hour before it is floored, not rounded toward it."""
    logs = tmp_path / "logs" / "svc"
    write(logs / "predictions-1969-12-31.ndjson", [prediction("a", "1969-12-31T23:30:00Z")])
    write(logs / "predictions-1970-01-01.ndjson", [prediction("b", "1970-01-01T00:30:00Z")])
    window = Window("1969-12-31T00:00:00Z", "1970-01-02T00:00:00Z")
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        chunks = list(s.rows(Query("fraud", window), columns=["prediction_id"]))
    assert [p for c in chunks for p in c["prediction_id"]] == ["a", "b"]


@pytest.mark.parametrize("sampled", [False, True])
def test_histograms_of_many_columns_in_batches_match_numpy(tmp_path: Path, monkeypatch, sampled: bool):
    from analyzers.store import duck

    monkeypatch.setattr(duck, "_BATCH_ROWS", 97)  # many batches, some mixing sample rates
    rng = np.random.default_rng(2)
    amounts = np.round(rng.normal(0, 2, 1000), 1)
    rates = np.where(rng.random(1000) < 0.3, 0.25, 1.0) if sampled else np.ones(1000)
    lines = []
    for i, (amount, rate) in enumerate(zip(amounts, rates, strict=True)):
        event = prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:00:00Z", amount=None if i % 50 == 0 else float(amount))
        event["ml"]["sample_rate"] = float(rate)
        lines.append(event)
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    edges = [-3.0, -1.0, 0.0, 0.0, 0.5, 2.0]  # a zero-width bin stays empty
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        found = s.histograms(Query("fraud", DAY1), {"features.amount": edges, "score": [0.0, 1.0]})
    weights = 1 / rates
    present = np.arange(1000) % 50 != 0
    x, w = amounts[present], weights[present]
    hist = found["features.amount"]
    expected = [w[(x >= lo) & (x < hi)].sum() if lo < hi else 0.0 for lo, hi in itertools.pairwise(edges)]
    assert hist.counts == pytest.approx(expected)
    assert hist.underflow == pytest.approx(w[x < -3].sum())
    assert hist.overflow == pytest.approx(w[x >= 2].sum())
    assert hist.missing == pytest.approx(weights[~present].sum())
    assert found["score"].counts == pytest.approx([weights.sum()])


def test_the_store_answers_within_a_small_memory_limit(tmp_path: Path):
    rng = np.random.default_rng(3)
    lines = [
        prediction(f"p{i % 120_000}", f"2026-11-20T{i % 24:02d}:{i % 60:02d}:00Z", amount=float(rng.normal()))
        for i in range(160_000)
    ]  # 40,000 repeated ids
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    with LocalStore(tmp_path / "logs", tmp_path / "state", memory_limit="48MB") as s:
        q = Query("fraud", DAY1)
        assert s.count(q) == 120_000
        assert s.quality(q).reasons["repeated id"].count == 40_000
        chunks = list(s.rows(q, columns=["timestamp", "prediction_id", "features.amount"], chunk_size=5_000))
        assert sum(len(c) for c in chunks) == 120_000
        stamps = [t for c in chunks for t in c["timestamp"]]
        assert stamps == sorted(stamps)
        assert len(s.sample(q, 1_000, seed=1)) == 1_000


def test_a_file_out_of_the_shared_memory_budget_is_parsed_again_alone(tmp_path: Path, monkeypatch):
    """Files are parsed two at a time; one whose typed read runs out of the budget they share is parsed again
    alone afterwards (not line by line, not lost, not twice)."""
    import duckdb

    from analyzers.store import range_parse

    for day in ("2026-11-20", "2026-11-21", "2026-11-22"):
        lines = [prediction(f"{day}-{i}", f"{day}T{i % 24:02d}:00:00Z", amount=float(i)) for i in range(300)]
        write(tmp_path / "logs" / "svc" / f"predictions-{day}.ndjson", lines)
    real = range_parse.write_part
    calls: list[tuple[str, bool]] = []

    def write_part(con, source, **kwargs):
        name = Path(kwargs["file"]).name
        calls.append((name, kwargs.get("by_line", False)))
        if name == "predictions-2026-11-21.ndjson" and [n for n, _ in calls].count(name) == 1:  # its first read
            raise duckdb.OutOfMemoryException("failed to allocate (simulated)")
        return real(con, source, **kwargs)

    monkeypatch.setattr(range_parse, "write_part", write_part)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        assert s.count(Query("fraud", Window("2026-11-20T00:00:00Z", "2026-11-23T00:00:00Z"))) == 900
    retried = [by_line for name, by_line in calls if name == "predictions-2026-11-21.ndjson"]
    assert retried == [False, False]  # refused beside another, then read alone with DuckDB's JSON reader
    parts = registry(tmp_path / "state", "svc")["files"]["predictions-2026-11-21.ndjson"]["parts"]
    assert [p["rows"] for p in parts] == [300]


@pytest.mark.parametrize(("memory_limit", "side_by_side"), [("128MB", False), ("256MB", True)])
def test_big_ranges_are_parsed_side_by_side_only_when_the_budget_holds_two(
    tmp_path: Path, monkeypatch, memory_limit: str, side_by_side: bool
):
    from analyzers.store import range_parse, registry

    for day in ("2026-11-20", "2026-11-21", "2026-11-22"):
        lines = [prediction(f"{day}-{i}", f"{day}T{i % 24:02d}:00:00Z") for i in range(50)]
        write(tmp_path / "logs" / "svc" / f"predictions-{day}.ndjson", lines)
    monkeypatch.setattr(registry, "PARALLEL_BYTES", 0)  # every range counts as big
    real = range_parse.RangeParser.parse
    calls: list[bool] = []

    def parse(self, con, log_file, version, entry, *, alone: bool):
        calls.append(alone)
        return real(self, con, log_file, version, entry, alone=alone)

    monkeypatch.setattr(range_parse.RangeParser, "parse", parse)
    with LocalStore(tmp_path / "logs", tmp_path / "state", memory_limit=memory_limit) as s:
        assert s.count(Query("fraud", Window("2026-11-20T00:00:00Z", "2026-11-23T00:00:00Z"))) == 150
    # alone, the first file's columns are the others' hint; side by side, the first two each expect their own
    assert calls == ([False, False, False] if side_by_side else [True, True, True])


def test_the_memory_budget_is_read_in_bytes():
    import duckdb

    from analyzers.store.registry import memory_budget

    for limit, expected in (("256MB", 256 * 10**6), ("1GB", 10**9), ("2GB", 2 * 10**9)):
        budget = memory_budget(duckdb.connect(config={"memory_limit": limit}))
        assert abs(budget - expected) / expected < 0.05, (limit, budget)  # DuckDB shows one decimal: "1.8 GiB"


def test_numbers_are_kept_as_numbers_within_the_default_memory_limit(tmp_path: Path):
    import pyarrow.parquet as pq

    lines = [prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:00:00Z", amount=float(i)) for i in range(2_000)]
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        assert s.count(Query("fraud", DAY1)) == 2_000
    (parsed,) = (tmp_path / "state" / "parsed").glob("*/svc/*.parquet")
    schema = pq.read_schema(parsed)
    assert str(schema.field("features.amount").type) == "double"  # not JSON text
    assert str(schema.field("prediction").type) == "int64"


def test_a_feature_first_seen_late_in_a_clean_file_is_kept(tmp_path: Path):
    lines = [prediction(f"p{i}", f"2026-11-20T{i % 24:02d}:00:00Z") for i in range(25_000)]
    lines[-1]["ml"]["features"]["late"] = 3.5  # past DuckDB's default type-inference sample of 20,480 lines
    write(tmp_path / "logs" / "svc" / "predictions-2026-11-20.ndjson", lines)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        q = Query("fraud", DAY1)
        assert "features.late" in {c.name for c in s.columns(q)}
        assert s.numeric_summary(q, "features.late").count == 1


def test_a_column_numeric_one_day_and_text_the_next_keeps_each_value_as_logged(tmp_path: Path):
    folder = tmp_path / "logs" / "svc"
    write(
        folder / "predictions-2026-11-20.ndjson",
        [prediction(f"a{i}", "2026-11-20T01:00:00Z", amount=1) for i in range(3)],
    )
    write(folder / "predictions-2026-11-21.ndjson", [prediction("b", "2026-11-21T01:00:00Z", amount="1")])
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        both = Query("fraud", Window(DAY1.start, DAY2.end))
        assert s.category_counts(both, "features.amount") == {1: 3.0, "1": 1.0}  # as within one file
        assert {c.name: c.kind for c in s.columns(both)}["features.amount"] == "numeric"  # most are numbers
        assert s.quality(both).reasons["type mismatch in features.amount"].count == 1
        assert {c.name: c.kind for c in s.columns(Query("fraud", DAY2))}["features.amount"] == "categorical"
