"""PredictionLogger and configure(): the API services call, the files it writes, sampling, redaction."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import logging.config
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import logshipper
from logshipper import PredictionLogger, RedactionError, configure, schema, shutdown
from logshipper.ids import new_prediction_id, prediction_id_time_ms
from logshipper.sampling import fraction


@pytest.fixture(autouse=True)
def _clean_pipeline():
    yield
    shutdown()


def read_lines(directory: Path) -> list[dict]:
    out = []
    for path in sorted(directory.rglob("*.ndjson")):
        out += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return out


def test_design_example_writes_daily_files_in_the_event_shape(tmp_path: Path) -> None:
    configure(service="fraud-api", log_dir=tmp_path)
    plog = PredictionLogger(model="fraud", version="v2.1.0")
    pid = plog.prediction(
        features={"amount": 12.5, "country": "DE"},
        prediction=1,
        score=0.87,
        groups={"region": "EU"},
        entity_id="user-1",
        latency_ms=12.0,
    )
    plog.feedback(pid, label=0)
    shutdown()
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    files = list((tmp_path / "fraud-api").iterdir())
    assert [f.name for f in files] == [schema.log_file_name(today)] or len(files) == 2  # around midnight
    prediction, feedback = read_lines(tmp_path)
    assert prediction["event"] == {
        "dataset": "ml.prediction",
        "kind": "event",
        "outcome": "success",
        "duration": 12_000_000,
    }
    assert prediction["ml"]["prediction_id"] == pid
    assert prediction["ml"]["model"] == {
        "name": "fraud",
        "version": "v2.1.0",
    }
    assert prediction["ml"]["features"] == {"amount": 12.5, "country": "DE"}
    assert prediction["ml"]["prediction"] == {"label": 1, "score": 0.87}
    assert prediction["ml"]["groups"] == {"region": "EU"}
    assert prediction["ml"]["entity_id"] == "user-1"
    assert prediction["ml"]["latency_ms"] == 12.0
    assert prediction["service"] == {"name": "fraud-api"}
    assert prediction["ecs.version"] == schema.ECS_VERSION
    assert prediction["log.level"] == "info"
    assert prediction["@timestamp"].endswith("Z")
    assert feedback["event"]["dataset"] == "ml.feedback"
    assert feedback["ml"]["label"] == 0
    assert feedback["ml"]["prediction_id"] == pid


def test_explicit_timestamps_go_to_their_utc_day_file(tmp_path: Path) -> None:
    configure(service="svc", log_dir=tmp_path)
    plog = PredictionLogger(model="m")
    plog.prediction({"x": 1}, 0, timestamp=dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2))))
    plog.prediction({"x": 2}, 0, timestamp="2026-03-01T10:00:00Z")
    plog.feedback("abc", 1, timestamp=1772409600.0)  # 2026-03-02T00:00:00Z
    plog.prediction({"x": 3}, 0, timestamp="not a time")
    shutdown()
    days = {p.name: [json.loads(x) for x in p.read_text().splitlines()] for p in (tmp_path / "svc").iterdir()}
    assert [e["ml"]["features"]["x"] for e in days["predictions-2026-03-01.ndjson"]] == [2]
    second = days["predictions-2026-03-02.ndjson"]
    assert second[0]["@timestamp"] == "2026-03-02T01:30:00.000Z"
    assert second[1]["ml"]["label"] == 1
    bad = next(e for name, es in days.items() for e in es if e["ml"].get("features", {}).get("x") == 3)
    assert "unusable" in bad["ml"]["encoding_errors"][0]


def test_ids_are_uuid7_time_ordered_and_unique() -> None:
    ids = [new_prediction_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids), "ids from one process sort in creation order"
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids[:100])
    assert abs(prediction_id_time_ms(ids[0]) - time.time() * 1000) < 60_000
    fixed = new_prediction_id(1_700_000_000_123_000_000)
    assert prediction_id_time_ms(fixed) == 1_700_000_000_123


def test_caller_changes_after_the_call_do_not_change_the_event(tmp_path: Path) -> None:
    configure(service="svc", log_dir=tmp_path)
    plog = PredictionLogger(model="m")
    features = {"x": 1}
    plog.prediction(features, 0)
    features["x"] = 2
    shutdown()
    assert read_lines(tmp_path)[0]["ml"]["features"] == {"x": 1}


def test_failures_context_manager_and_decorator(tmp_path: Path) -> None:
    configure(service="svc", log_dir=tmp_path)
    plog = PredictionLogger(model="m", version="1")
    with plog.track({"x": 1}, groups={"g": "a"}, entity_id="u1") as t:
        t.record(1, score=0.9)
    with pytest.raises(KeyError), plog.track({"x": 2}) as t2:
        raise KeyError("missing")

    @plog.observe(entity_id=lambda f: f["user"])
    def predict(features: dict) -> tuple[int, float]:
        if features["x"] < 0:
            raise ValueError("negative")
        return 0, 0.1

    assert predict({"x": 3, "user": "u3"}) == (0, 0.1)
    with pytest.raises(ValueError, match="negative"):
        predict({"x": -1, "user": "u4"})
    shutdown()
    ok, failed, decorated, decorated_failed = read_lines(tmp_path)
    assert ok["ml"]["prediction"] == {"label": 1, "score": 0.9}
    assert ok["ml"]["latency_ms"] >= 0
    assert ok["ml"]["prediction_id"] == t.prediction_id
    assert failed["event"]["outcome"] == "failure"
    assert failed["error"]["type"] == "KeyError"
    assert "missing" in failed["error"]["message"]
    assert "Traceback" in failed["error"]["stack_trace"]
    assert failed["ml"]["prediction_id"] == t2.prediction_id
    assert failed["log.level"] == "error"
    assert decorated["ml"]["entity_id"] == "u3"
    assert decorated["ml"]["prediction"]["score"] == 0.1
    assert decorated_failed["error"]["message"] == "negative"


def test_sampling_is_deterministic_and_recorded(tmp_path: Path) -> None:
    configure(service="svc", log_dir=tmp_path)
    plog = PredictionLogger(model="m", sample_rate=0.25)
    kept_entities = set()
    for i in range(4000):
        entity = f"user-{i % 400}"
        pid = plog.prediction({"i": i}, 0, entity_id=entity)
        plog.feedback(pid, 1, entity_id=entity)
        if fraction(entity) < 0.25:
            kept_entities.add(entity)
    shutdown()
    lines = read_lines(tmp_path)
    predictions = [e for e in lines if e["event"]["dataset"] == "ml.prediction"]
    assert {e["ml"]["entity_id"] for e in predictions} == kept_entities, "an entity is always in or always out"
    assert 0.17 < len(predictions) / 4000 < 0.33
    assert all(e["ml"]["sample_rate"] == 0.25 for e in predictions)
    assert len([e for e in lines if e["event"]["dataset"] == "ml.feedback"]) == len(predictions)


def test_sampling_by_id_keeps_feedback_of_kept_predictions_only(tmp_path: Path) -> None:
    configure(service="svc", log_dir=tmp_path)
    plog = PredictionLogger(model="m", sample_rate=0.5, sample_by="id")
    for _ in range(500):
        plog.feedback(plog.prediction({}, 0), 1)
    shutdown()
    lines = read_lines(tmp_path)
    predicted = {e["ml"]["prediction_id"] for e in lines if e["event"]["dataset"] == "ml.prediction"}
    labelled = {e["ml"]["prediction_id"] for e in lines if e["event"]["dataset"] == "ml.feedback"}
    assert predicted == labelled
    assert 150 < len(predicted) < 350


def test_redaction_hashes_with_the_environment_key_and_drops(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PREDWATCH_REDACTION_KEY", "s3cret-key-value")
    configure(
        service="svc",
        log_dir=tmp_path,
        redact_hash=["entity_id", "groups.age_band", "features.email"],
        redact_drop=["features.ssn"],
    )
    plog = PredictionLogger(model="m")
    for _ in range(2):
        plog.prediction(
            {"email": "a@b.c", "ssn": "123-45", "amount": 3}, 1, groups={"age_band": "25-34"}, entity_id="u1"
        )
    shutdown()
    first, second = read_lines(tmp_path)
    raw = "\n".join(p.read_text() for p in tmp_path.rglob("*.ndjson"))
    for secret in ("a@b.c", "123-45", "25-34", "u1", "s3cret-key-value"):
        assert secret not in raw
    assert first["ml"]["entity_id"].startswith("hmac:")
    assert first["ml"]["entity_id"] == second["ml"]["entity_id"]
    assert first["ml"]["groups"]["age_band"] == second["ml"]["groups"]["age_band"] != "25-34"
    assert "ssn" not in first["ml"]["features"]
    assert first["ml"]["features"]["amount"] == 3
    assert first["ml"]["redacted"] == sorted(
        ["ml.entity_id", "ml.features.email", "ml.features.ssn", "ml.groups.age_band"]
    )


def test_redaction_without_a_key_or_with_a_bad_name_fails_at_configure(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PREDWATCH_REDACTION_KEY", raising=False)
    with pytest.raises(RedactionError, match="PREDWATCH_REDACTION_KEY"):
        configure(service="svc", log_dir=tmp_path, redact_hash=["entity_id"])
    with pytest.raises(RedactionError, match=r"features\.<name>"):
        configure(service="svc", log_dir=tmp_path, redact_drop=["email"])


def test_stream_mode_writes_lines_to_the_stream() -> None:
    stream = io.StringIO()
    configure(service="svc", stream=stream)
    PredictionLogger(model="m").prediction({"x": 1}, 1)
    logshipper.flush()
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["ml"]["features"] == {"x": 1}


def test_a_full_queue_drops_instead_of_blocking() -> None:
    class StalledStream(io.StringIO):
        """A stream whose first write waits until released: the disk has stalled."""

        def __init__(self) -> None:
            super().__init__()
            self.entered, self.release = threading.Event(), threading.Event()

        def write(self, text: str) -> int:
            self.entered.set()
            self.release.wait(30)
            return super().write(text)

    stream = StalledStream()
    before = logshipper.stats()
    configure(service="svc", stream=stream, max_queue=10)
    plog = PredictionLogger(model="m")
    plog.prediction({"i": 0}, 0)
    assert stream.entered.wait(30), "the writer took the first event and is stuck writing it"
    for i in range(1, 5000):
        plog.prediction({"i": i}, 0)  # returns although nothing can be written: events beyond the queue drop
    during = logshipper.stats()
    assert during.dropped["queue_full"] - before.dropped.get("queue_full", 0) == 5000 - 1 - 10
    assert during.queued - before.queued == 1 + 10
    stream.release.set()
    shutdown()
    after = logshipper.stats()
    assert len(stream.getvalue().splitlines()) == 1 + 10
    assert after.written - before.written == 1 + 10


def test_bad_arguments_are_rejected_when_the_logger_is_made(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lowercase"):
        PredictionLogger(model="Fraud")
    with pytest.raises(ValueError, match="sample_rate"):
        PredictionLogger(model="m", sample_rate=0)
    with pytest.raises(ValueError, match="exactly one"):
        configure(service="svc")


def test_without_configure_events_go_through_logging_with_the_formatter(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"ecs": {"()": "logshipper.JsonFormatter", "service": "legacy-api"}},
            "handlers": {"file": {"class": "logging.FileHandler", "filename": str(path), "formatter": "ecs"}},
            "loggers": {
                "predwatch": {"handlers": ["file"], "level": "INFO"},
                "app": {"handlers": ["file"], "level": "INFO"},
            },
        }
    )
    try:
        plog = PredictionLogger(model="m", version="2")
        pid = plog.prediction({"x": float("nan")}, 1, score=0.5)
        logging.getLogger("app").warning("slow request %d ms", 900, extra={"http": {"status": 200}})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("app").exception("request failed")
    finally:
        for name in ("predwatch", "app"):
            for handler in logging.getLogger(name).handlers:
                handler.close()
            logging.getLogger(name).handlers.clear()
    prediction, warning, error = (json.loads(x) for x in path.read_text().splitlines())
    assert prediction["ml"]["prediction_id"] == pid
    assert prediction["ml"]["non_finite"] == ["ml.features.x"]
    assert prediction["service"] == {"name": "legacy-api"}
    assert warning["message"] == "slow request 900 ms"
    assert warning["log.level"] == "warning"
    assert warning["http"] == {"status": 200}
    assert warning["log"]["logger"] == "app"
    assert error["error"]["type"] == "RuntimeError"
    assert "Traceback" in error["error"]["stack_trace"]


def test_formatter_falls_back_to_stdlib_json_without_orjson(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['orjson'] = None\n"
        "import logging, logshipper\n"
        "from pythonjsonlogger.json import JsonFormatter\n"
        "assert issubclass(logshipper.JsonFormatter, JsonFormatter)\n"
        "logshipper.configure(service='s', stream=sys.stdout)\n"
        "logshipper.PredictionLogger('m').prediction({'x': float('inf'), 'b': b'\\xff'}, 1)\n"
        "logshipper.shutdown()\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    doc = json.loads(out.stdout)
    assert doc["ml"]["features"] == {"x": None, "b": "\\xff"}
    assert doc["ml"]["non_finite"] == ["ml.features.x"]


def test_logshipper_imports_nothing_from_the_analyzers_stack() -> None:
    script = (
        "import sys, logshipper\n"
        "logshipper.configure(service='s', stream=sys.stdout)\n"
        "logshipper.PredictionLogger('m').prediction({'x': 1}, 1)\n"
        "logshipper.shutdown()\n"
        "heavy = {'pandas', 'numpy', 'scipy', 'duckdb', 'elasticsearch', 'pyarrow', 'analyzers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)


WORKER = """
import sys, logshipper
log_dir, n, worker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
logshipper.configure(service="svc", log_dir=log_dir)
plog = logshipper.PredictionLogger(model="m")
for i in range(n):
    plog.prediction({"worker": worker, "i": i, "text": "y" * (i % 5000)}, i % 2, timestamp=1772409600 + (i % 3) * 86400)
logshipper.shutdown()
"""


def test_processes_writing_one_directory_never_interleave_lines(tmp_path: Path) -> None:
    n, workers = 3000, 4
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(n), str(w)]) for w in range(workers)]
    assert [p.wait(timeout=120) for p in procs] == [0] * workers
    lines = read_lines(tmp_path)  # json.loads fails on any broken or interleaved line
    assert len(lines) == n * workers
    assert len({e["ml"]["prediction_id"] for e in lines}) == n * workers
    for w in range(workers):
        assert sorted(e["ml"]["features"]["i"] for e in lines if e["ml"]["features"]["worker"] == str(w)) == list(
            range(n)
        )
    assert len(list((tmp_path / "svc").iterdir())) == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (pre-forking servers such as gunicorn)")
def test_workers_forked_after_configure_write_their_own_events(tmp_path: Path) -> None:
    configure(service="svc", log_dir=tmp_path)
    plog = PredictionLogger(model="m")
    plog.prediction({"who": "parent"}, 0)
    children = []
    for w in range(3):
        pid = os.fork()
        if pid == 0:
            try:
                for i in range(500):
                    plog.prediction({"who": f"child{w}", "i": i}, 1)
                shutdown()
            finally:
                os._exit(0)
        children.append(pid)
    for child in children:
        assert os.waitpid(child, 0)[1] == 0
    shutdown()
    lines = read_lines(tmp_path)
    who = [e["ml"]["features"]["who"] for e in lines]
    assert who.count("parent") == 1
    assert all(who.count(f"child{w}") == 500 for w in range(3))
    assert len({e["ml"]["prediction_id"] for e in lines}) == len(lines)


def test_events_for_many_days_in_any_order_are_all_written(tmp_path: Path) -> None:
    configure(service="svc", log_dir=tmp_path)
    plog = PredictionLogger(model="m")
    days = [5, 6, 7, 8, 1, 9, 2, 8, 3, 1]  # late feedback and backfills jump between days
    for i, day in enumerate(days):
        plog.prediction({"i": i}, 0, timestamp=dt.datetime(2026, 3, day, 12, tzinfo=dt.timezone.utc))
        logshipper.flush()  # one batch per event: each may need another file
    shutdown()
    lines = read_lines(tmp_path)
    assert sorted(e["ml"]["features"]["i"] for e in lines) == list(range(len(days)))
    assert len(list((tmp_path / "svc").iterdir())) == len(set(days))


def test_observe_finds_the_features_of_a_method_or_a_keyword(tmp_path: Path) -> None:
    configure(service="svc", log_dir=tmp_path)
    plog = PredictionLogger(model="m")

    class Model:
        @plog.observe
        def predict(self, features: dict, threshold: float = 0.5) -> dict:
            return {"prediction": int(features["x"] > threshold), "score": features["x"]}

    model = Model()
    assert model.predict({"x": 0.9}) == {"prediction": 1, "score": 0.9}
    model.predict(features={"x": 0.1}, threshold=0.2)
    shutdown()
    first, second = read_lines(tmp_path)
    assert first["ml"]["features"] == {"x": 0.9}
    assert first["ml"]["prediction"] == {"label": 1, "score": 0.9}
    assert second["ml"]["features"] == {"x": 0.1}
    assert second["ml"]["prediction"]["label"] == 0
