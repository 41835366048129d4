"""Fairness job end to end: JSON event lines in a temp log dir, read by the LocalStore."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_difference, demographic_parity_ratio, equalized_odds_difference

from analyzers.config.models import FairnessConfig
from analyzers.jobs import fairness
from analyzers.store import LocalStore
from analyzers.timeutil import Window, parse_time
from tests.finding_json import as_json
from tests.log_events import event, write_events

T0 = parse_time("2026-11-20T00:00:00Z")
WINDOW = Window(T0, T0 + timedelta(days=1))


def generate(log_dir: Path, seed: int, worse: dict[str, float], sizes: dict[str, int], sample_rate=None):
    """Predictions with feedback; in a group listed in ``worse`` that share of predictions is flipped."""
    rng = np.random.default_rng(seed)
    events, rows = [], []
    i = 0
    for group, size in sizes.items():
        for _ in range(size):
            ts = T0 + timedelta(seconds=float(rng.uniform(0, 86000)))
            y = int(rng.random() < 0.4)
            pred = y if rng.random() < 0.85 else 1 - y
            if rng.random() < worse.get(group, 0.0):
                pred = 1 - pred
            score = float(np.clip(0.5 + (0.3 if pred else -0.3) + rng.normal(0, 0.1), 0, 1))
            ml = {
                "features": {"x": float(rng.normal())},
                "prediction": {"label": pred, "score": score},
                "groups": {"region": group},
            }
            if sample_rate is not None:
                ml["sample_rate"] = sample_rate
            pid = f"p{i}"
            i += 1
            events.append(event(ts, pid, ml))
            events.append(event(ts + timedelta(seconds=30), pid, {"label": y}, "ml.feedback"))
            rows.append((group, pred, y, score))
    write_events(log_dir, events)
    groups, preds, labels, scores = (np.array(c) for c in zip(*rows, strict=True))
    return groups, preds, labels, scores


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


def _run(log_dir: Path, tmp_path: Path, **cfg) -> dict:
    with LocalStore(log_dir, tmp_path / "state") as store:
        return as_json(fairness.run(store, "m", FairnessConfig(**cfg), WINDOW))


def test_group_served_worse_alerts_and_agrees_with_fairlearn(log_dir: Path, tmp_path: Path) -> None:
    groups, preds, labels, _ = generate(log_dir, 0, {"APAC": 0.35}, {"EU": 800, "US": 800, "APAC": 800})
    out = _run(log_dir, tmp_path, min_group_size=100)
    assert out["status"] == "alert", out.get("error")
    subjects = {s["subject"] for s in out["signals"]}
    assert "group:region=APAC" in subjects
    assert not any(s.startswith(("group:region=EU", "group:region=US")) for s in subjects)
    (attr,) = out["attributes"]
    assert attr["name"] == "region"
    by_group = {g["group"]: g for g in attr["groups"]}
    assert by_group["APAC"]["status"] == "alert"
    assert by_group["EU"]["status"] == "ok"
    assert attr["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(labels, preds, sensitive_features=groups)
    )
    assert attr["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(labels, preds, sensitive_features=groups)
    )
    assert attr["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(labels, preds, sensitive_features=groups)
    )
    apac = by_group["APAC"]
    assert apac["n"] == 800
    assert apac["n_labeled"] == 800
    assert apac["accuracy"] == pytest.approx(np.mean(preds[groups == "APAC"] == labels[groups == "APAC"]))
    assert apac["accuracy_difference_ci"][1] < 0


def test_fair_data_gives_no_alert(log_dir: Path, tmp_path: Path) -> None:
    generate(log_dir, 1, {}, {"EU": 700, "US": 700, "APAC": 700})
    out = _run(log_dir, tmp_path, min_group_size=100)
    assert out["status"] == "ok"
    assert out["signals"] == []


def test_small_group_gets_no_verdict(log_dir: Path, tmp_path: Path) -> None:
    generate(log_dir, 2, {"tiny": 0.9}, {"EU": 600, "US": 600, "tiny": 30})
    out = _run(log_dir, tmp_path, min_group_size=100)
    (attr,) = out["attributes"]
    tiny = next(g for g in attr["groups"] if g["group"] == "tiny")
    assert tiny["status"] == "insufficient_data"
    assert "accuracy_difference" not in tiny
    assert not any("tiny" in s["subject"] for s in out["signals"])
    assert set(attr["demographic_parity_difference_groups"]) <= {"EU", "US"}


def test_score_threshold_parity_breach_against_named_reference(log_dir: Path, tmp_path: Path) -> None:
    generate(log_dir, 3, {"B": 0.0}, {"A": 600, "B": 600})
    # Group B's scores are lower: re-write the lines with a shifted score for B.
    lines = []
    for path in sorted(log_dir.rglob("*.ndjson")):
        for line in path.read_text().splitlines():
            ev = json.loads(line)
            ml = ev["ml"]
            if ml.get("groups", {}).get("region") == "B":
                ml["prediction"]["score"] = max(0.0, ml["prediction"]["score"] - 0.45)
            lines.append(ev)
        path.unlink()
    write_events(log_dir, lines)
    out = _run(log_dir, tmp_path, min_group_size=100, score_threshold=0.5, reference_group={"region": "A"})
    (attr,) = out["attributes"]
    assert attr["reference_group"] == "A"
    by_group = {g["group"]: g for g in attr["groups"]}
    assert by_group["B"]["selection_rate"] < 0.2 < by_group["A"]["selection_rate"]
    assert by_group["B"]["selection_rate_reference_group"] == "A"
    assert attr["demographic_parity_ratio"] < 0.8
    assert any(s["subject"] == "attribute:region" for s in out["signals"])


def test_sample_rate_weights_counts(log_dir: Path, tmp_path: Path) -> None:
    generate(log_dir, 4, {}, {"EU": 150, "US": 150}, sample_rate=0.5)
    out = _run(log_dir, tmp_path, min_group_size=100)
    assert {g["n"] for g in out["attributes"][0]["groups"]} == {300}
    assert [g["n_effective"] for g in out["attributes"][0]["groups"]] == pytest.approx([150, 150])  # rows logged
    assert out["n_observed"] == 300


def test_no_data_is_insufficient(log_dir: Path, tmp_path: Path) -> None:
    log_dir.mkdir(parents=True)
    out = _run(log_dir, tmp_path)
    assert out["status"] == "insufficient_data"
