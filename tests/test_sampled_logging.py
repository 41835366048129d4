"""Sampled logging keeps the tests honest: weights for the estimates, rows observed for the uncertainty.

A stable model (the same distribution every day) logged at ``sample_rate`` 0.1, and one logged at rates
mixed by region, is judged over ``REPEATS`` seeded pairs of days by the drift, fairness and performance
jobs with every effect threshold at zero, so that only the statistical gate decides.  Weighted counts
taken as observations (ten times the rows at 10%) made nearly every run alert; counted as the rows
observed, the false alarms stay near alpha.  The same data with a real shift is still caught.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from analyzers.config.models import DriftConfig, FairnessConfig, FeatureOverride, PerformanceConfig
from analyzers.jobs import drift, fairness, performance
from analyzers.store import LocalStore, Query
from analyzers.timeutil import Window, format_time, parse_time
from tests.finding_json import as_json
from tests.log_events import event

T0 = parse_time("2026-10-01T00:00:00Z")
REPEATS = 10  # seeded (reference day, current day) pairs per model
TRAFFIC = 6_000  # predictions a day, of which the sampled ones are logged
FLAT = {"EU": 0.1, "US": 0.1, "APAC": 0.1}
MIXED = {"EU": 0.05, "US": 0.1, "APAC": 0.3}
FEATURES = ("x1", "x2", "c1")
# Of REPEATS runs: a run alarms at most about alpha (0.05) for drift and performance, up to about twice that for
# fairness (four rates per group, the pairs corrected family-wise but not the rates); P(4 or more of 10) is about
# 1% at 10%.  Counted as observations, the weighted counts alarmed in 7 to 10 runs of 10 (before the fix).
MAX_FALSE_ALARMS = 3


def _day(rng: np.random.Generator, day: int, rates: dict[str, float], *, shift: bool, model: str) -> list[dict]:
    """One day of the model's logged predictions (each region sampled at its rate) and their feedback."""
    lines = []
    start = T0 + timedelta(days=day)
    for region, rate in rates.items():
        kept = int(rng.binomial(TRAFFIC // len(rates), rate))
        x1 = rng.normal(0.3 if shift else 0.0, 1.0, kept)
        x2 = rng.lognormal(0.0, 0.5, kept)
        c1 = rng.choice(["A", "B", "C", "D"], kept, p=[0.4, 0.3, 0.2, 0.1])
        score = 1 / (1 + np.exp(-(x1 + 0.5 * (c1 == "A") - 0.2)))
        label = rng.random(kept) < score
        prediction = score >= 0.5
        if shift and region == "APAC":  # the model serves one region worse: a fifth of its predictions flipped
            prediction = np.where(rng.random(kept) < 0.2, ~prediction, prediction)
        seconds = np.sort(rng.uniform(0, 86_399, kept))
        for i in range(kept):
            ts = start + timedelta(seconds=float(seconds[i]))
            pid = f"{model}-{day}-{region}-{i}"
            ml: dict[str, Any] = {
                "features": {"x1": round(float(x1[i]), 4), "x2": round(float(x2[i]), 4), "c1": str(c1[i])},
                "prediction": {"label": int(prediction[i]), "score": round(float(score[i]), 5)},
                "groups": {"region": region},
                "sample_rate": rate,
            }
            lines.append(event(ts, pid, ml, model=model))
            lines.append(event(ts + timedelta(minutes=5), pid, {"label": int(label[i])}, "ml.feedback", model=model))
    return lines


def _write(log_dir: Path, events: list[dict]) -> None:
    """The events into the daily files of their UTC day (one open per file)."""
    by_day: dict[str, list[str]] = {}
    for ev in events:
        by_day.setdefault(ev["@timestamp"][:10], []).append(orjson.dumps(ev).decode())
    for day, lines in by_day.items():
        path = log_dir / "svc" / f"predictions-{day}.ndjson"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStore]:
    """``flat`` (10% everywhere) and ``mixed`` (5%, 10%, 30% by region): REPEATS stable day pairs each; then
    one more pair of each where the current day is shifted."""
    root = tmp_path_factory.mktemp("sampled")
    events: list[dict] = []
    for model, rates, seed in (("flat", FLAT, 1), ("mixed", MIXED, 2)):
        rng = np.random.default_rng(seed)
        for day in range(2 * REPEATS + 2):
            events += _day(rng, day, rates, shift=day == 2 * REPEATS + 1, model=model)
    _write(root / "logs", events)
    with LocalStore(root / "logs", root / "state") as opened:
        yield opened


def _window(day: int) -> Window:
    return Window(T0 + timedelta(days=day), T0 + timedelta(days=day + 1))


def _drift_config(day: int) -> DriftConfig:
    reference = {"start": format_time(_window(day).start), "end": format_time(_window(day).end)}
    zero = {name: FeatureOverride(threshold=0.0) for name in (*FEATURES, "prediction", "score", "label")}
    return DriftConfig(reference=reference, features=zero, missing_threshold=0.0)


FAIRNESS = FairnessConfig(window=timedelta(days=1), max_difference=0.0, parity_ratio=0.8, min_group_size=30)
PERFORMANCE = PerformanceConfig(window=timedelta(days=1), max_drop=0.0, min_labels=30)


def _verdicts(store: LocalStore, model: str, day: int) -> dict[str, dict]:
    """The three jobs on the current day ``day + 1`` against the reference day ``day``."""
    current = _window(day + 1)
    return {
        "drift": as_json(drift.run(store, model, _drift_config(day), current)),
        "fairness": as_json(fairness.run(store, model, FAIRNESS, current)),
        "performance": as_json(performance.run(store, model, PERFORMANCE, current)),
    }


@pytest.mark.parametrize("model", ["flat", "mixed"])
def test_a_stable_model_logged_sampled_raises_false_alarms_near_alpha(store: LocalStore, model: str) -> None:
    alarms: Counter[str] = Counter()
    for repeat in range(REPEATS):
        for job, finding in _verdicts(store, model, 2 * repeat).items():
            assert finding["status"] in ("ok", "alert"), (job, finding.get("reason"), finding.get("error"))
            alarms[job] += finding["status"] == "alert"
    for job in ("drift", "fairness", "performance"):
        assert alarms[job] <= MAX_FALSE_ALARMS, f"{model} {job}: {alarms[job]} false alarms in {REPEATS} runs"


def test_a_real_shift_logged_at_ten_percent_is_still_caught(store: LocalStore) -> None:
    found = _verdicts(store, "flat", 2 * REPEATS)
    drifted = {f["name"] for f in found["drift"]["features"] if f["drifted"]}
    assert "x1" in drifted
    assert "c1" not in drifted
    subjects = {s["subject"] for s in found["fairness"]["signals"]}
    assert "group:region=APAC" in subjects
    assert "group:region=EU" not in subjects


def test_a_real_shift_logged_at_mixed_rates_is_still_caught(store: LocalStore) -> None:
    found = _verdicts(store, "mixed", 2 * REPEATS)
    drifted = {f["name"] for f in found["drift"]["features"] if f["drifted"]}
    assert "x1" in drifted
    assert "c1" not in drifted


def test_findings_report_the_traffic_and_the_rows_observed(store: LocalStore) -> None:
    found = _verdicts(store, "flat", 0)
    query = _query("flat", 1)
    logged = store.sample_size(query)
    assert logged.weighted == pytest.approx(10 * logged.rows)
    assert logged.effective == pytest.approx(logged.rows)
    report = found["drift"]
    assert report["n_cur"] == pytest.approx(logged.weighted)
    assert report["n_cur_observed"] == logged.rows
    x1 = next(f for f in report["features"] if f["name"] == "x1")
    assert x1["n_cur"] == pytest.approx(logged.weighted)
    assert x1["n_cur_effective"] == pytest.approx(logged.rows)
    groups = {g["group"]: g for g in found["fairness"]["attributes"][0]["groups"]}
    eu = store.sample_size(query.with_(groups={"region": ("EU",)}))
    assert groups["EU"]["n"] == pytest.approx(eu.weighted)
    assert groups["EU"]["n_effective"] == pytest.approx(eu.rows)
    assert found["fairness"]["n_observed"] == logged.rows
    labelled = store.sample_size(query.with_(has_label=True))
    assert found["performance"]["n_labeled"] == pytest.approx(labelled.weighted)
    assert found["performance"]["n_labeled_observed"] == labelled.rows
    assert found["performance"]["label_coverage"] == pytest.approx(1.0)
    assert found["performance"]["reference"]["label_coverage"] == pytest.approx(1.0)


def test_mixed_rates_count_kish_effective_size(store: LocalStore) -> None:
    found = _verdicts(store, "mixed", 0)
    logged = store.sample_size(_query("mixed", 1))
    assert logged.rows < logged.weighted
    assert logged.effective < logged.rows  # unequal weights: fewer effective observations than rows
    x1 = next(f for f in found["drift"]["features"] if f["name"] == "x1")
    assert x1["n_cur_effective"] == pytest.approx(logged.effective)
    groups = {g["group"]: g for g in found["fairness"]["attributes"][0]["groups"]}
    apac = store.sample_size(_query("mixed", 1).with_(groups={"region": ("APAC",)}))
    assert groups["APAC"]["n_effective"] == pytest.approx(apac.rows)  # one rate within the group


def _query(model: str, day: int) -> Query:
    return Query(model=model, window=_window(day), outcome="success")
