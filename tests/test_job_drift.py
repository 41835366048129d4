"""Drift job end to end on the LocalStore: no drift, a shifted mean, a new category, a changed missing rate."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyzers.config.models import DriftConfig, FeatureOverride, ReferenceConfig
from analyzers.jobs import drift
from analyzers.store import LocalStore
from analyzers.timeutil import Window, parse_time
from tests.finding_json import as_json
from tests.log_events import event, write_events

T0 = parse_time("2026-11-20T00:00:00Z")
DAY1 = Window(T0, T0 + timedelta(days=1))
DAY2 = Window(T0 + timedelta(days=1), T0 + timedelta(days=2))
COUNTRIES = ["DE", "FR", "IT", "NL", "PL"]


def day_events(
    day: int, n: int, rng: np.random.Generator, shift: float = 0.0, new_country: float = 0.0, missing: float = 0.0
) -> list[dict]:
    """One day of a model with a continuous, a count and a categorical feature, score, class and label."""
    events = []
    x = rng.normal(50 + shift * 10, 10, size=n)
    items = rng.poisson(3, size=n)
    countries = rng.choice(COUNTRIES, size=n, p=[0.4, 0.2, 0.2, 0.1, 0.1]).astype(object)
    countries[rng.random(n) < new_country] = "ES"
    amount = rng.lognormal(3, 1, size=n)
    score = 1 / (1 + np.exp(-(x - 50) / 10))
    for i in range(n):
        ts = T0 + timedelta(days=day, seconds=float(rng.uniform(0, 86000)))
        pid = f"d{day}-{i}"
        features = {"x": float(x[i]), "n_items": int(items[i]), "country": countries[i], "amount": float(amount[i])}
        if rng.random() < missing:
            del features["amount"]
        ml = {"features": features, "prediction": {"label": int(score[i] >= 0.5), "score": float(score[i])}}
        events.append(event(ts, pid, ml))
        events.append(event(ts + timedelta(minutes=5), pid, {"label": int(rng.random() < score[i])}, "ml.feedback"))
    failed = event(T0 + timedelta(days=day, hours=1), f"d{day}-err", {"features": {"x": 1e6}}, outcome="failure")
    events.append(failed)
    return events


def two_days(log_dir: Path, n: int = 1500, seed: int = 0, **day2) -> None:
    rng = np.random.default_rng(seed)
    write_events(log_dir, day_events(0, n, rng) + day_events(1, n, rng, **day2))


def run(tmp_path: Path, config: DriftConfig | None = None) -> dict:
    config = config or DriftConfig(reference=ReferenceConfig(last=timedelta(days=1)))
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        return as_json(drift.run(store, "m", config, DAY2))


def by_name(finding: dict) -> dict[str, dict]:
    return {f["name"]: f for f in finding["features"]}


def test_no_drift_is_ok_and_reports_every_column(tmp_path: Path) -> None:
    two_days(tmp_path / "logs")
    finding = run(tmp_path)
    assert finding["status"] == "ok", [f for f in finding["features"] if f["drifted"]]
    columns = by_name(finding)
    assert set(columns) == {"amount", "country", "n_items", "x", "prediction", "score", "label"}
    assert columns["x"]["kind"] == "numeric"
    assert columns["x"]["method"] == "ks"
    assert columns["country"]["kind"] == "categorical"
    assert columns["country"]["method"] == "chisquare"
    assert columns["prediction"]["method"] == "chisquare"  # 0/1 classes are tested as categories
    assert columns["x"]["test_mode"] == "exact"
    assert finding["share_drifted"] == 0
    assert finding["dataset_drift"] is False
    assert finding["reference"]["window"] == DAY1.to_dict()
    assert finding["reference"]["n"] == 1500
    assert finding["n_cur"] == 1500  # the failed prediction is left out
    for column in finding["features"]:
        assert column["p_value_adjusted"] >= column["p_value"]
    assert finding["signals"] == []


def test_false_alarm_rate_without_drift_stays_near_alpha(tmp_path: Path) -> None:
    alarms, seeds = 0, 30
    for seed in range(seeds):
        two_days(tmp_path / f"s{seed}" / "logs", n=150, seed=seed)
        finding = run(tmp_path / f"s{seed}")
        assert finding["status"] in ("ok", "alert")
        alarms += finding["status"] == "alert"
    # Under no drift, BH keeps P(any column flagged) at alpha = 0.05: about 1.5 alarms in 30 runs.
    assert alarms <= 4


def test_shifted_mean_is_flagged_on_its_column_only(tmp_path: Path) -> None:
    two_days(tmp_path / "logs", n=3000, shift=0.3)
    finding = run(tmp_path)
    columns = by_name(finding)
    assert finding["status"] == "alert"
    assert columns["x"]["drifted"]
    assert columns["x"]["effect_size"] == pytest.approx(0.3, abs=0.08)
    assert not columns["country"]["drifted"]
    assert not columns["amount"]["drifted"]
    assert not columns["n_items"]["drifted"]
    assert "feature:x" in {s["subject"] for s in finding["signals"]}
    signal = next(s for s in finding["signals"] if s["subject"] == "feature:x")
    assert "wasserstein" in signal["message"]
    assert signal["threshold"] == 0.03


def test_binned_path_agrees_with_the_exact_one(tmp_path: Path) -> None:
    two_days(tmp_path / "logs", n=3000, shift=0.3)
    exact = by_name(run(tmp_path))
    config = DriftConfig(reference=ReferenceConfig(last=timedelta(days=1)), sample_size=100)
    binned = by_name(run(tmp_path, config))
    assert binned["x"]["test_mode"] == "binned"
    assert binned["x"]["drifted"]
    assert not binned["amount"]["drifted"]
    assert binned["x"]["effect_size"] == pytest.approx(exact["x"]["effect_size"], rel=0.05)
    assert binned["x"]["statistic"] <= exact["x"]["statistic"] + 1e-9


def test_new_category_is_counted_and_flagged(tmp_path: Path) -> None:
    two_days(tmp_path / "logs", n=2000, new_country=0.1)
    columns = by_name(run(tmp_path))
    country = columns["country"]
    assert country["drifted"]
    assert [c["value"] for c in country["new_categories"]] == ["ES"]
    assert country["new_categories"][0]["share"] == pytest.approx(0.1, abs=0.02)
    assert not columns["x"]["drifted"]


def test_changed_missing_rate_is_a_finding(tmp_path: Path) -> None:
    two_days(tmp_path / "logs", n=2000, missing=0.1)
    finding = run(tmp_path)
    amount = by_name(finding)["amount"]
    assert amount["missing_rate_ref"] == 0
    assert amount["missing_rate_cur"] == pytest.approx(0.1, abs=0.02)
    assert amount["missing_drifted"]
    assert amount["drifted"]
    assert not amount["distribution_drifted"]
    signal = next(s for s in finding["signals"] if s["subject"] == "feature:amount")
    assert "missing rate" in signal["message"]


def test_overrides_change_method_threshold_kind_and_ignore(tmp_path: Path) -> None:
    two_days(tmp_path / "logs", n=1000, shift=0.3)
    features = {
        "x": FeatureOverride(method="psi", threshold=0.5),
        "n_items": FeatureOverride(kind="categorical"),
        "amount": FeatureOverride(ignore=True),
    }
    config = DriftConfig(reference=ReferenceConfig(last=timedelta(days=1)), features=features)
    columns = by_name(run(tmp_path, config))
    assert "amount" not in columns
    assert columns["x"]["effect_size_method"] == "psi"
    assert columns["x"]["threshold"] == 0.5
    assert not columns["x"]["drifted"]  # a 0.3 sd shift has a PSI near 0.09
    assert columns["n_items"]["kind"] == "categorical"


def test_fixed_relative_and_file_references(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    write_events(tmp_path / "logs", day_events(0, 500, rng) + day_events(2, 500, rng))
    window = Window(T0 + timedelta(days=2), T0 + timedelta(days=3))
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        relative = drift.run(store, "m", DriftConfig(reference=ReferenceConfig(last="1d", ending="1d")), window)
        fixed = drift.run(store, "m", DriftConfig(reference=ReferenceConfig(start=DAY1.start, end=DAY1.end)), window)
        frame = pd.DataFrame(
            {
                "x": rng.normal(50, 10, 800),
                "n_items": rng.poisson(3, 800),
                "country": rng.choice(COUNTRIES, 800, p=[0.4, 0.2, 0.2, 0.1, 0.1]),
                "amount": rng.lognormal(3, 1, 800),
            }
        )
        frame.to_parquet(tmp_path / "train.parquet")
        from_file = drift.run(
            store, "m", DriftConfig(reference=ReferenceConfig(file=str(tmp_path / "train.parquet"))), window
        )
    assert relative.reference == fixed.reference
    assert relative.reference["window"] == DAY1.to_dict()
    assert relative.status == "ok"
    assert from_file.status == "ok", from_file.error
    assert from_file.reference == {"file": str(tmp_path / "train.parquet"), "n": 800}
    assert {f["name"] for f in from_file.to_dict()["features"]} >= {"x", "n_items", "country", "amount"}


def test_insufficient_data_and_errors_are_findings(tmp_path: Path) -> None:
    two_days(tmp_path / "logs", n=50)
    assert run(tmp_path)["status"] == "insufficient_data"
    missing_file = DriftConfig(reference=ReferenceConfig(file=str(tmp_path / "nope.parquet")), min_rows=10)
    finding = run(tmp_path, missing_file)
    assert finding["status"] == "error"
    assert "nope.parquet" in finding["error"]
