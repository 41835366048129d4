"""Performance job end to end on the LocalStore: a changed relationship, regression, label coverage."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error, r2_score, roc_auc_score

from analyzers.config.models import PerformanceConfig
from analyzers.jobs import performance
from analyzers.store import LocalStore
from analyzers.timeutil import Window, parse_time
from tests.finding_json import as_json
from tests.log_events import event, write_events

T0 = parse_time("2026-11-20T00:00:00Z")
DAY1 = Window(T0, T0 + timedelta(days=1))
DAY2 = Window(T0 + timedelta(days=1), T0 + timedelta(days=2))


def classification_days(log_dir: Path, flip_day2: float, seed: int = 0, n: int = 1500, label_share: float = 1.0):
    """Two days of a logistic model; on day 2 a share of labels flips (the world changed, inputs did not)."""
    rng = np.random.default_rng(seed)
    events, day2 = [], {"y": [], "p": [], "s": [], "x": []}
    for day in (0, 1):
        x = rng.normal(size=n)
        score = 1 / (1 + np.exp(-3 * x))
        pred = (score >= 0.5).astype(int)
        y = (rng.random(n) < score).astype(int)
        if day == 1:
            y = np.where(rng.random(n) < flip_day2, 1 - y, y)
        for i in range(n):
            ts = T0 + timedelta(days=day, seconds=float(rng.uniform(0, 86000)))
            pid = f"d{day}-{i}"
            ml = {"features": {"x": float(x[i])}, "prediction": {"label": int(pred[i]), "score": float(score[i])}}
            events.append(event(ts, pid, ml))
            if rng.random() < label_share or day == 0:
                events.append(event(ts + timedelta(hours=1), pid, {"label": int(y[i])}, "ml.feedback"))
                if day == 1:
                    day2["y"].append(y[i]), day2["p"].append(pred[i]), day2["s"].append(score[i])
            if day == 1:
                day2["x"].append(x[i])
    write_events(log_dir, events)
    return {k: np.array(v) for k, v in day2.items()}


def _run(tmp_path: Path, window: Window = DAY2, **cfg) -> dict:
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        return as_json(performance.run(store, "m", PerformanceConfig(window="1d", **cfg), window))


def test_changed_relationship_drops_performance(tmp_path: Path) -> None:
    truth = classification_days(tmp_path / "logs", flip_day2=0.3)
    out = _run(tmp_path)
    assert out["status"] == "alert", out.get("error")
    assert out["task"] == "classification"
    assert out["accuracy"]["value"] == pytest.approx(accuracy_score(truth["y"], truth["p"]))
    assert out["f1"]["value"] == pytest.approx(f1_score(truth["y"], truth["p"]))
    assert out["roc_auc"]["value"] == pytest.approx(roc_auc_score(truth["y"], truth["s"]), abs=1e-3)
    assert out["log_loss"]["value"] == pytest.approx(log_loss(truth["y"], truth["s"]), rel=1e-6)
    assert out["accuracy"]["reference"] > out["accuracy"]["value"] + 0.1
    assert out["reference"]["window"] == DAY1.to_dict()
    subjects = {s["subject"] for s in out["signals"]}
    assert {"metric:accuracy", "metric:roc_auc"} <= subjects
    assert abs(truth["x"].mean()) < 0.1  # the inputs did not move


def test_stable_relationship_rarely_alerts(tmp_path: Path) -> None:
    alerts = 0
    for seed in range(5):
        root = tmp_path / f"s{seed}"
        classification_days(root / "logs", flip_day2=0.0, seed=10 + seed)
        out = _run(root)
        assert out["label_coverage"] == pytest.approx(1.0)
        alerts += out["status"] == "alert"
    assert alerts <= 1


def test_threshold_and_label_coverage(tmp_path: Path) -> None:
    truth = classification_days(tmp_path / "logs", flip_day2=0.0, seed=2, label_share=0.4)
    out = _run(tmp_path, thresholds={"accuracy": 0.99})
    assert out["n"] == 1500
    assert out["n_labeled"] == len(truth["y"])
    assert out["label_coverage"] == pytest.approx(len(truth["y"]) / 1500)
    signal = next(s for s in out["signals"] if s["subject"] == "metric:accuracy")
    assert signal["threshold"] == 0.99
    assert "below floor" in signal["message"]


def test_too_few_labels_is_insufficient(tmp_path: Path) -> None:
    classification_days(tmp_path / "logs", flip_day2=0.0, seed=3, n=200, label_share=0.1)
    out = _run(tmp_path, min_labels=50)
    assert out["status"] == "insufficient_data"
    assert out["n"] == 200
    assert out["label_coverage"] < 0.25


def test_regression_inferred_and_matches_sklearn(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    events, ys, ps = [], [], []
    for i in range(800):
        ts = T0 + timedelta(days=1, seconds=float(rng.uniform(0, 86000)))
        y = float(rng.normal(50, 10))
        p = y + float(rng.normal(0, 3))
        events.append(event(ts, f"r{i}", {"features": {"x": y / 10}, "prediction": {"label": p}}))
        events.append(event(ts + timedelta(minutes=5), f"r{i}", {"label": y}, "ml.feedback"))
        ys.append(y), ps.append(p)
    write_events(tmp_path / "logs", events)
    out = _run(tmp_path)
    assert out["task"] == "regression"
    assert out["mae"]["value"] == pytest.approx(mean_absolute_error(ys, ps))
    assert out["r2"]["value"] == pytest.approx(r2_score(ys, ps))
    assert out["reference"]["status"] == "insufficient_data"
    assert "0 of its 24 slots" in out["reference"]["reason"]
    assert out["status"] == "insufficient_data"  # no reference and no floor: nothing to judge against
    assert out["reason"].startswith("nothing to judge against: the reference")
