"""Replay end to end on the LocalStore: a model that matches the log, one that does not, filters, export."""

from __future__ import annotations

import itertools
import re
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from analyzers.cli import main
from analyzers.jobs.replay import export_predictions, load_predictor, logged_decimals, replay
from analyzers.store import LocalStore
from analyzers.store.base import Query
from analyzers.timeutil import Window, format_time, parse_time
from tests.finding_json import as_json
from tests.log_events import event, write_events

T0 = parse_time("2026-11-20T00:00:00Z")
WINDOW = Window(T0, T0 + timedelta(days=1))
MODEL_SOURCE = """
import math

def score(amount, n_items):
    return 1 / (1 + math.exp(-(0.01 * amount - 0.5 * n_items)))

def predict(records):
    out = []
    for r in records:
        s = score(r["amount"], r["n_items"])
        out.append({"prediction": int(s >= 0.5), "score": s})
    return out

def predict_frame(frame):
    s = 1 / (1 + (-(0.01 * frame["amount"] - 0.5 * frame["n_items"])).map(math.exp))
    return (s >= 0.5).astype(int).tolist(), s.to_numpy()

def retrained(records):
    return [(int(r["amount"] > 150), 0.5) for r in records]
"""


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """300 logged predictions of the model in MODEL_SOURCE, for 10 users; the module is importable."""
    (tmp_path / "fraud_model.py").write_text(textwrap.dedent(MODEL_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    model = importlib.import_module("fraud_model")
    rng = np.random.default_rng(0)
    events = []
    for i in range(300):
        amount, n_items = float(rng.uniform(0, 300)), int(rng.integers(1, 6))
        s = model.score(amount, n_items)
        ml = {
            "prediction_id": f"p{i}",
            "model": {"name": "fraud", "version": "v1"},
            "features": {"amount": amount, "n_items": n_items},
            "prediction": {"label": int(s >= 0.5), "score": s},
            "entity_id": f"user-{i % 10}",
            "latency_ms": 3.0,
        }
        events.append(
            {
                "@timestamp": format_time(T0 + timedelta(minutes=i)),
                "log.level": "info",
                "message": "prediction",
                "ecs.version": "8.11.0",
                "event": {"dataset": "ml.prediction", "kind": "event", "outcome": "success"},
                "service": {"name": "svc", "version": "1", "environment": "test"},
                "ml": ml,
            }
        )
    write_events(tmp_path / "logs", events)
    with LocalStore(tmp_path / "logs", tmp_path / "state") as s:
        yield s
    importlib.invalidate_caches()


def test_matching_model_has_no_mismatch(store) -> None:
    out = as_json(replay(store, "fraud", WINDOW, target="fraud_model:predict"))
    assert out["status"] == "ok", out.get("error")
    assert out["n"] == 300
    assert out["mismatches"] == 0
    assert out["mismatch_rate"] == 0.0
    assert out["scores_compared"] == 300
    assert out["max_score_difference"] < 1e-9


def test_frame_callable_returning_a_tuple(store) -> None:
    out = as_json(replay(store, "fraud", WINDOW, target="fraud_model:predict_frame"))
    assert out["status"] == "ok"
    assert out["mismatches"] == 0


def test_changed_model_reports_mismatches_with_ids(store) -> None:
    out = as_json(replay(store, "fraud", WINDOW, target="fraud_model:retrained", atol=1e-3))
    assert out["status"] == "alert"
    assert 0 < out["prediction_mismatches"] <= out["mismatches"] <= 300
    assert out["score_mismatches"] > 0
    assert out["mismatch_rate"] == pytest.approx(out["mismatches"] / 300)
    top = out["largest_differences"]
    assert len(top) == 10
    assert top[0]["score_difference"] == out["max_score_difference"]
    assert all(a["score_difference"] >= b["score_difference"] for a, b in itertools.pairwise(top))
    example = out["examples"][0]
    assert example["prediction_id"].startswith("p")
    assert example["logged"] != example["replayed"]
    assert out["signals"][0]["subject"] == "metric:mismatch_rate"


def test_filters_by_entity_and_ids(store) -> None:
    out = as_json(replay(store, "fraud", entity_id="user-3", target="fraud_model:predict"))
    assert out["n"] == 30
    assert out["status"] == "ok"
    out = as_json(replay(store, "fraud", prediction_ids=["p1", "p2", "p7"], target="fraud_model:predict"))
    assert out["n"] == 3


def test_estimator_object(store) -> None:
    frame = pd.concat(list(store.rows(Query("fraud", WINDOW), columns=["features.amount", "features.n_items"])))
    x = frame.rename(columns=lambda c: c.split(".", 1)[1])
    logged = pd.concat(list(store.rows(Query("fraud", WINDOW), columns=["prediction"])))["prediction"].astype(int)
    est = LogisticRegression().fit(x, logged)
    out = as_json(replay(store, "fraud", WINDOW, target=est, atol=1.0))
    assert out["status"] in ("ok", "alert")
    assert out["prediction_mismatches"] == int((est.predict(x) != logged.to_numpy()).sum())
    assert out["score_mismatches"] == 0


def test_bad_target_and_no_selection_are_error_findings(store) -> None:
    out = as_json(replay(store, "fraud", WINDOW, target="no_such_module_xyz:f"))
    assert out["status"] == "error"
    assert "no_such_module_xyz" in out["error"]
    assert replay(store, "fraud", target="fraud_model:predict").status == "error"
    assert replay(store, "other", WINDOW, target="fraud_model:predict").status == "insufficient_data"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_predictions_of_a_user(store, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"user3{suffix}"
    n = export_predictions(store, Query("fraud", WINDOW, entity_ids=("user-3",)), path)
    frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    assert n == 30
    assert len(frame) == 30
    assert set(frame["entity_id"]) == {"user-3"}
    assert {"prediction_id", "prediction", "score", "features.amount", "features.n_items"} <= set(frame.columns)
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        export_predictions(store, Query("fraud", WINDOW), tmp_path / "out.xlsx")


def test_output_shapes() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    assert load_predictor(lambda df: df["a"] > 1)(frame)[0] == [False, True, True]
    preds, scores = load_predictor(lambda df: pd.DataFrame({"label": [0, 1, 1], "score": [0.1, 0.6, 0.9]}))(frame)
    assert preds == [0, 1, 1]
    assert scores.tolist() == [0.1, 0.6, 0.9]
    records_only = load_predictor(lambda rows: [r["a"] * 2 for r in rows], features_as="records")
    assert records_only(frame)[0] == [2.0, 4.0, 6.0]
    with pytest.raises(ValueError, match="3 inputs"):
        load_predictor(lambda df: [1])(frame)


def _rounded_logs(root: Path, decimals: int = 5) -> None:
    """The MODEL_SOURCE model's predictions with scores logged rounded to ``decimals``, as some services do."""
    namespace: dict = {}
    exec(textwrap.dedent(MODEL_SOURCE), namespace)
    rng = np.random.default_rng(1)
    events = []
    for i in range(200):
        amount, n_items = float(rng.uniform(0, 300)), int(rng.integers(1, 6))
        s = namespace["score"](amount, n_items)
        ml = {"features": {"amount": amount, "n_items": n_items}, "prediction": {"label": int(s >= 0.5)}}
        ml["prediction"]["score"] = round(s, decimals)
        events.append(event(T0 + timedelta(minutes=i), f"r{i}", ml, model="fraud"))
    write_events(root / "logs", events)


def test_logged_decimals_read_values_as_written() -> None:
    assert logged_decimals([0.12345, 0.5, 0.25, 3]) == 5
    assert logged_decimals([1.5e-07, float("nan"), None, "x"]) == 8
    assert logged_decimals([0.1 + 0.2]) == 17  # 0.30000000000000004: the logger writes floats exactly
    assert logged_decimals([]) is None


def test_rounded_scores_of_the_identical_model_match_within_their_precision(store, tmp_path: Path) -> None:
    _rounded_logs(tmp_path / "rounded")
    with LocalStore(tmp_path / "rounded" / "logs", tmp_path / "rounded" / "state") as rounded:
        out = as_json(replay(rounded, "fraud", WINDOW, target="fraud_model:predict"))
        strict = as_json(replay(rounded, "fraud", WINDOW, target="fraud_model:predict", atol=0.0))
    assert out["status"] == "ok"
    assert out["mismatches"] == 0
    assert out["tolerance"]["score"] == {
        "atol": 5e-06,
        "rtol": 1e-09,
        "source": "scores logged with at most 5 decimals",
    }
    assert 0 < out["max_score_difference"] <= 5e-06
    assert strict["status"] == "alert"
    assert strict["score_mismatches"] > 150


MYSVC = """
import math

def predict(records: list) -> list:
    out = []
    for r in records:
        s = 1 / (1 + math.exp(-(0.01 * r["amount"] - 0.5 * r["n_items"])))
        out.append({"prediction": int(s >= 0.5), "score": s})
    return out

def shifted(records: list) -> list:
    return [dict(p, score=p["score"] + 1e-3) for p in predict(records)]
"""


@pytest.fixture
def service_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A service checkout with package ``mysvc`` in the current directory, and a predwatch.yml for its logs."""
    _rounded_logs(tmp_path)
    checkout = tmp_path / "checkout"
    (checkout / "mysvc").mkdir(parents=True)
    (checkout / "mysvc" / "__init__.py").write_text("")
    (checkout / "mysvc" / "model.py").write_text(textwrap.dedent(MYSVC))
    config = checkout / "predwatch.yml"
    config.write_text(f"store: {{local: {{path: {tmp_path / 'logs'}}}}}\nstate: {{path: {tmp_path / 'state'}}}\n")
    monkeypatch.chdir(checkout)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(checkout))])
    yield config
    for name in ("mysvc.model", "mysvc"):
        sys.modules.pop(name, None)


def test_replay_command_imports_the_target_from_the_current_directory(service_directory: Path, capsys) -> None:
    args = ["replay", "-c", str(service_directory), "--model", "fraud", "--at", "2026-11-21T00:00:00Z"]
    assert main([*args, "--window", "1d", "--target", "mysvc.model:predict", "--fail-on-alert"]) == 0
    out = capsys.readouterr().out
    assert "200 predictions replayed; 0 predictions differ" in out
    assert "scores: 0 of 200 beyond 5e-06 + 1e-09 x |score| (scores logged with at most 5 decimals)" in out
    assert "largest difference 4." in out or "largest difference 5e-06" in out


def test_replay_command_shows_differences_and_fails_on_alert(service_directory: Path, capsys) -> None:
    args = ["replay", "-c", str(service_directory), "--model", "fraud", "--at", "2026-11-21T00:00:00Z"]
    assert main([*args, "--window", "1d", "--target", "mysvc.model:shifted"]) == 0
    assert main([*args, "--window", "1d", "--target", "mysvc.model:shifted", "--fail-on-alert"]) == 1
    out = capsys.readouterr().out
    assert "200 rows differ (100.0%)" in out
    assert "largest difference 0.001" in out
    assert "rows that differ" in out
    assert re.search(r"r\d+ .*0\.001", out)
