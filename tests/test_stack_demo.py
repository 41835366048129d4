"""The compose demo service: its model, its synthetic traffic, its HTTP routes (on 127.0.0.1), and the
log lines it writes through logshipper where Filebeat expects them."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import logshipper
from logshipper import schema

ROOT = Path(__file__).resolve().parents[1]


def _load_demo() -> Any:
    spec = importlib.util.spec_from_file_location("predwatch_demo_service", ROOT / "examples" / "demo_service.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


demo = _load_demo()


@dataclass
class RecordingLogger:
    """Stands in for PredictionLogger: records the calls the service makes."""

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    def prediction(self, **kwargs: Any) -> str:
        self.calls.append(("prediction", (), kwargs))
        return f"pid-{len(self.calls)}"

    def failure(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("failure", args, kwargs))

    def feedback(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("feedback", args, kwargs))


def serve(service: Any) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), demo.make_handler(service))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def recorded() -> Iterator[tuple[dict[str, RecordingLogger], str]]:
    loggers = {v: RecordingLogger() for v in demo.MODELS}
    server, url = serve(demo.Service(loggers, random.Random(3)))
    yield loggers, url
    server.shutdown()
    server.server_close()


def test_model_scores_are_probabilities_and_bad_input_is_named() -> None:
    model = demo.MODELS["v1.0.0"]
    label, score = model.predict({"amount": 120.0, "country": "DE", "n_items": 2}, {"region": "EU"})
    assert 0 < score < 1
    assert label == int(score >= 0.5)
    assert model.predict({"amount": 5000.0, "country": "BR", "n_items": 6}, {})[1] > score
    with pytest.raises(ValueError, match=r"features\.amount"):
        model.predict({"amount": "n/a"}, {})
    with pytest.raises(ValueError, match=r"features\.n_items"):
        model.predict({"amount": 1.0, "n_items": 0}, {})


def test_the_canary_version_favours_one_region() -> None:
    features = {"amount": 150.0, "country": "JP", "n_items": 2}
    biased = demo.MODELS["v1.1.0"]
    assert biased.predict(features, {"region": "APAC"})[1] > biased.predict(features, {"region": "EU"})[1]
    fair = demo.MODELS["v1.0.0"]
    assert fair.predict(features, {"region": "APAC"}) == fair.predict(features, {"region": "EU"})


def test_traffic_is_reproducible_drifts_and_has_some_bad_requests() -> None:
    a = [demo.Traffic(random.Random(1)).request(float(t)) for t in range(3)]
    b = [demo.Traffic(random.Random(1)).request(float(t)) for t in range(3)]
    assert a == b
    traffic = demo.Traffic(random.Random(2))
    quarter = traffic.period_s / 4
    high = [traffic.request(quarter)[0]["features"]["amount"] for _ in range(2000)]
    low = [traffic.request(3 * quarter)[0]["features"]["amount"] for _ in range(2000)]
    numeric_high = sorted(x for x in high if isinstance(x, float))
    numeric_low = sorted(x for x in low if isinstance(x, float))
    assert numeric_high[len(numeric_high) // 2] > 2 * numeric_low[len(numeric_low) // 2]
    bad = sum(not isinstance(x, float) for x in high + low)
    assert 10 <= bad <= 80
    body, truth = traffic.request(0.0)
    assert set(body) == {"features", "groups", "entity_id"}
    assert 0 < truth < 1
    assert body["groups"]["region"] in demo.REGIONS


def test_routes_log_predictions_failures_and_feedback(recorded: tuple[dict[str, RecordingLogger], str]) -> None:
    loggers, url = recorded
    status, answer = post(f"{url}/predict", {"features": {"amount": 80.5, "country": "FR"}, "entity_id": "u1"})
    assert status == 200
    assert answer["model_version"] in demo.MODELS
    calls = loggers[answer["model_version"]].calls
    kind, _, kwargs = calls[-1]
    assert kind == "prediction"
    assert kwargs["entity_id"] == "u1"
    assert kwargs["score"] == answer["score"]
    assert kwargs["latency_ms"] >= 0
    status, answer = post(f"{url}/predict", {"features": {"amount": "n/a"}})
    assert status == 422
    assert "features.amount" in answer["error"]
    assert any(c[0] == "failure" for lg in loggers.values() for c in lg.calls)
    assert post(f"{url}/feedback", {"prediction_id": "pid-1", "label": 1})[0] == 202
    assert post(f"{url}/feedback", {"prediction_id": "pid-1", "label": "yes"})[0] == 422
    assert post(f"{url}/predict", [1, 2])[0] == 422
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
        assert json.loads(resp.read()) == {"status": "ok"}


def test_load_generator_sends_requests_until_stopped(recorded: tuple[dict[str, RecordingLogger], str]) -> None:
    loggers, url = recorded
    stop = threading.Event()
    worker = threading.Thread(target=demo.generate_load, args=(url, 200.0, stop, 5))
    worker.start()
    deadline = threading.Event()
    while sum(len(lg.calls) for lg in loggers.values()) < 20 and not deadline.wait(0.05):
        pass
    stop.set()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert sum(len(lg.calls) for lg in loggers.values()) >= 20


def test_demo_writes_lines_where_filebeat_reads_them(tmp_path: Path) -> None:
    logshipper.configure(service="fraud-api", log_dir=str(tmp_path))
    service = demo.Service({v: logshipper.PredictionLogger(model=demo.MODEL, version=v) for v in demo.MODELS})
    server, url = serve(service)
    try:
        status, answer = post(f"{url}/predict", {"features": {"amount": 10.0, "country": "US"}, "entity_id": "u9"})
        assert status == 200
        assert post(f"{url}/predict", {"features": {"amount": "n/a"}})[0] == 422
        assert post(f"{url}/feedback", {"prediction_id": answer["prediction_id"], "label": 0})[0] == 202
    finally:
        server.shutdown()
        server.server_close()
    logging_shutdown = getattr(logshipper, "shutdown", None) or getattr(logshipper, "flush", None)
    if logging_shutdown:
        logging_shutdown()
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    path = tmp_path / "fraud-api" / schema.log_file_name(day)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    datasets = [line["event"]["dataset"] for line in lines]
    assert datasets.count(schema.DATASET_PREDICTION) == 2
    assert datasets.count(schema.DATASET_FEEDBACK) == 1
    outcomes = {line["event"].get("outcome") for line in lines if line["event"]["dataset"] == schema.DATASET_PREDICTION}
    assert outcomes == {schema.OUTCOME_SUCCESS, schema.OUTCOME_FAILURE}
    assert all(line["ml"]["model"]["name"] == demo.MODEL for line in lines)
