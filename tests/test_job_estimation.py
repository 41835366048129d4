"""Estimation job end to end: predictions logged with PredictionLogger, read back by the LocalStore.

Two labelled reference days, then a day like them and a day whose inputs concentrate where the model is
unsure (its ROC AUC and accuracy fall although the relationship between inputs and label holds); that
day's labels have not arrived, except where a test logs half of them.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import accuracy_score, roc_auc_score

from analyzers.alerts.rules import alerts_of
from analyzers.cli import main
from analyzers.config.models import EstimationConfig
from analyzers.jobs import coverage, estimation
from analyzers.store import LocalStore, Query
from analyzers.timeutil import Window, format_time, parse_time
from logshipper import PredictionLogger, configure, shutdown
from tests.finding_json import as_json
from tests.logged_stores import STORES, store_over

T0 = parse_time("2026-03-01T00:00:00Z")
N = 2000
REFERENCE = {"start": format_time(T0), "end": format_time(T0 + timedelta(days=2))}
SAME_DAY = Window(T0 + timedelta(days=2), T0 + timedelta(days=3))
SHIFT_DAY = Window(T0 + timedelta(days=3), T0 + timedelta(days=4))
ENTRY_KEYS = {"name", "estimated", "lower", "upper", "reference", "realized", "dropped"}


def log_days(log_dir: Path, *, label_shift_day: bool, rule: str = "threshold", seed: int = 0) -> dict[int, dict]:
    """Four days of a calibrated logistic model; day 3's inputs concentrate near the decision boundary.

    Returns each day's ground truth (labels drawn, logged or not) for the tests to compare with.
    """
    rng = np.random.default_rng(seed)
    configure(service="svc", log_dir=log_dir)
    plog = PredictionLogger(model="m", version="v1")
    truth = {}
    try:
        for day in range(4):
            x = rng.normal(0, 0.35 if day == 3 else 1.0, N)
            score = np.round(1 / (1 + np.exp(-2.5 * x)), 3)
            y = rng.random(N) < score
            predicted = score >= 0.5 if rule == "threshold" else rng.random(N) < 0.5
            for i in range(N):
                ts = T0 + timedelta(days=day, seconds=i * 40)
                pid = plog.prediction({"x": float(x[i])}, int(predicted[i]), score=float(score[i]), timestamp=ts)
                if day < 2 or (day == 3 and label_shift_day and i % 2 == 0):
                    plog.feedback(pid, int(y[i]), timestamp=ts + timedelta(hours=2))
            truth[day] = {"score": score, "y": y, "predicted": predicted}
    finally:
        shutdown()
    return truth


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, dict]]:
    root = tmp_path_factory.mktemp("estimation")
    return root, log_days(root / "logs", label_shift_day=False)


def _run(root: Path, window: Window, **settings) -> dict:
    config = EstimationConfig(**{"reference": REFERENCE, "window": "1d", **settings})
    with LocalStore(root / "logs", root / "state") as store:
        return as_json(estimation.run(store, "m", config, window))


def _by_name(finding: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in finding["metrics"]}


@pytest.mark.parametrize("kind", STORES)
def test_the_estimate_falls_on_the_day_inputs_move_before_any_label_arrives(
    unlabelled, kind: str, tmp_path: Path
) -> None:
    root, truth = unlabelled
    config = EstimationConfig(reference=REFERENCE, window="1d")
    with store_over(kind, root / "logs", tmp_path / "state", "m") as (store, model):
        same = as_json(estimation.run(store, model, config, SAME_DAY))
        shifted = as_json(estimation.run(store, model, config, SHIFT_DAY))
    assert same["status"] == "ok"
    assert shifted["status"] == "alert"
    assert shifted["n_labeled"] == 0
    assert {s["subject"] for s in shifted["signals"]} >= {"metric:roc_auc", "metric:accuracy"}
    day = truth[3]
    actual = {"roc_auc": roc_auc_score(day["y"], day["score"]), "accuracy": accuracy_score(day["y"], day["predicted"])}
    for name, entry in _by_name(shifted).items():
        assert set(entry) >= ENTRY_KEYS
        assert entry["realized"] is None  # no label has arrived: unknown, never 0
        assert entry["lower"] <= entry["estimated"] <= entry["upper"]
        assert entry["reference_lower"] <= entry["reference"] <= entry["reference_upper"]
        if name in actual:  # the labels nobody has seen yet: within four standard errors of the estimate
            assert abs(actual[name] - entry["estimated"]) < 4 * entry["standard_error"], name
            assert entry["dropped"] is True
    assert shifted["window_read"] == "aggregates"  # predictions follow a threshold: histograms, not rows
    assert shifted["decision_threshold"] == pytest.approx(0.5)
    assert shifted["calibration"]["method"] in ("none", "platt", "isotonic")
    assert shifted["calibration"]["ece"] < 0.05


def test_analyze_prints_the_estimation_finding_and_its_alert_keys(unlabelled, tmp_path: Path) -> None:
    root, _ = unlabelled
    config = {
        "store": {"local": {"path": str(root / "logs")}},
        "state": {"path": str(tmp_path / "state")},
        "models": {"m": {"ingest_delay": "0s", "estimation": {"reference": REFERENCE, "window": "1d"}}},
    }
    path = tmp_path / "predwatch.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    out = io.StringIO()
    with redirect_stdout(out):
        at = format_time(SHIFT_DAY.end)
        code = main(["analyze", "-c", str(path), "--job", "estimation", "--at", at, "--dry-run", "--format", "json"])
    assert code == 0
    (finding,) = json.loads(out.getvalue())["findings"]
    assert finding["job"] == "estimation"
    assert [m["name"] for m in finding["metrics"]] == ["roc_auc", "accuracy", "precision", "recall", "f1"]
    assert all(m["realized"] is None for m in finding["metrics"])
    keys = {a.key for a in alerts_of(estimation_finding(finding))}
    assert "m:estimation:metric:roc_auc" in keys


def estimation_finding(data: dict):
    from analyzers.findings import Finding

    return Finding.from_dict(data)


def test_realized_stands_next_to_estimated_once_labels_arrive(tmp_path: Path) -> None:
    truth = log_days(tmp_path / "logs", label_shift_day=True, seed=1)
    entries = _by_name(_run(tmp_path, SHIFT_DAY))
    day = truth[3]
    labelled = np.arange(N) % 2 == 0
    expected = roc_auc_score(day["y"][labelled], day["score"][labelled])
    assert entries["roc_auc"]["realized"] == pytest.approx(expected, abs=1e-3)  # over the score cells
    for entry in entries.values():
        assert entry["realized"] is not None
        assert abs(entry["realized"] - entry["estimated"]) < 0.05, entry["name"]


def test_predictions_that_follow_no_threshold_are_split_by_class_and_match_the_hand_computed_expectation(
    tmp_path: Path,
) -> None:
    truth = log_days(tmp_path / "logs", label_shift_day=False, rule="coin", seed=2)
    finding = _run(tmp_path, SHIFT_DAY, calibration="none")
    assert finding["window_read"] == "aggregates"  # the histograms are split by the logged class
    assert finding["decision_threshold"] is None
    day = truth[3]
    p, predicted = day["score"], day["predicted"]
    accuracy = np.mean(np.where(predicted, p, 1 - p))  # CBPE by hand: each prediction right with its probability
    precision = p[predicted].mean()
    entries = _by_name(finding)
    assert entries["accuracy"]["estimated"] == pytest.approx(accuracy, abs=1e-3)
    assert entries["precision"]["estimated"] == pytest.approx(precision, abs=1e-3)


def test_a_reference_file_with_labels_serves_as_the_reference(unlabelled, tmp_path: Path) -> None:
    root, truth = unlabelled
    frame = pd.DataFrame(
        {
            "score": np.concatenate([truth[0]["score"], truth[1]["score"]]),
            "prediction": np.concatenate([truth[0]["predicted"], truth[1]["predicted"]]).astype(int),
            "label": np.concatenate([truth[0]["y"], truth[1]["y"]]).astype(int),
        }
    )
    frame.to_parquet(tmp_path / "validation.parquet")
    config = EstimationConfig(reference={"file": str(tmp_path / "validation.parquet")}, window="1d")
    with LocalStore(root / "logs", root / "state") as store:
        from_file = as_json(estimation.run(store, "m", config, SHIFT_DAY))
    from_window = _run(root, SHIFT_DAY)
    assert from_file["reference"]["file"].endswith("validation.parquet")
    for name, entry in _by_name(from_file).items():
        assert entry["estimated"] == pytest.approx(_by_name(from_window)[name]["estimated"], abs=0.01), name


def test_no_verdict_without_labelled_reference_or_with_poor_calibration(unlabelled) -> None:
    root, _ = unlabelled
    unlabelled_days = {"start": format_time(SAME_DAY.start), "end": format_time(SAME_DAY.end)}
    without = _run(root, SHIFT_DAY, reference=unlabelled_days)
    assert without["status"] == "insufficient_data"
    assert "labelled reference predictions" in without["reason"]
    assert without["metrics"] == []
    assert without["n_ref"] == 0
    assert [a.subject for a in alerts_of(estimation_finding(without))] == ["monitoring"]
    poor = _run(root, SHIFT_DAY, max_calibration_error=1e-4)
    assert poor["status"] == "insufficient_data"
    assert "calibration too poor" in poor["reason"]
    assert poor["calibration"]["ece"] > 1e-4
    assert alerts_of(estimation_finding(poor)) == []  # the reason is in the finding; nothing to page anyone about


def test_the_report_shows_estimates_with_intervals_over_time(unlabelled, tmp_path: Path) -> None:
    from analyzers.config.models import Config
    from analyzers.report import write_report

    root, _ = unlabelled
    config = Config.model_validate({"models": {"m": {"estimation": {"reference": REFERENCE, "window": "1d"}}}})
    job = config.models["m"].estimation
    assert job is not None
    with LocalStore(root / "logs", tmp_path / "state") as store:
        store.write_findings([estimation.run(store, "m", job, day) for day in (SAME_DAY, SHIFT_DAY)])
        page = write_report(store, "m", tmp_path / "report.html", config=config, at=SHIFT_DAY.end).read_text("utf-8")
    assert '<section id="estimation"><h2>Estimated performance</h2>' in page
    assert 'aria-label="estimated performance over time"' in page
    assert "roc_auc" in page


def test_a_reference_with_almost_no_positives_is_insufficient_data_not_an_error(tmp_path: Path) -> None:
    configure(service="svc", log_dir=tmp_path / "logs")
    plog = PredictionLogger(model="m", version="v1")
    try:
        for i in range(400):
            ts = T0 + timedelta(seconds=i * 216)  # spread over the whole day
            pid = plog.prediction({"x": 0.0}, 0, score=0.01 + i / 4000, timestamp=ts)
            plog.feedback(pid, int(i in (7, 300)), timestamp=ts)
            plog.prediction({"x": 0.0}, 0, score=0.02, timestamp=ts + timedelta(days=1))
    finally:
        shutdown()
    finding = _run(
        tmp_path,
        Window(T0 + timedelta(days=1), T0 + timedelta(days=2)),
        reference={"start": format_time(T0), "end": format_time(T0 + timedelta(days=1))},
    )
    assert finding["status"] == "insufficient_data"
    assert "2 positives and 398 negatives" in finding["reason"]


def test_many_windows_read_in_one_pass_give_what_each_window_gives_alone(unlabelled) -> None:
    root, _ = unlabelled
    config = EstimationConfig(reference=REFERENCE, window="5h", min_rows=50)
    days = (SAME_DAY.start, SHIFT_DAY.start)  # four 5-hour windows of each day (its 2000 predictions fill 22 hours)
    windows = [Window(d + timedelta(hours=5 * k), d + timedelta(hours=5 * (k + 1))) for d in days for k in range(4)]
    with LocalStore(root / "logs", root / "state") as store:
        together = [as_json(f) for f in estimation.run_windows(store, "m", config, windows)]
        alone = [as_json(estimation.run(store, "m", config, w)) for w in windows]
        back_to_back = [Query(model="m", window=w, outcome="success") for w in windows[:4]]
        # one volume aggregate for windows on one grid of slots, the same coverage as one aggregate each
        assert coverage.measure_windows(store, back_to_back) == [coverage.measure(store, q) for q in back_to_back]
    assert [f["status"] for f in together] == ["ok"] * 4 + ["alert"] * 4
    for a, b in zip(together, alone, strict=True):
        assert a["window"] == b["window"]
        assert a["window_read"] == "rows"  # 450 predictions each: all windows read in one pass
        assert b["window_read"] == "aggregates"
        for x, y in zip(a["metrics"], b["metrics"], strict=True):
            assert x["estimated"] == pytest.approx(y["estimated"], abs=1e-12), x["name"]
            assert x["upper"] == pytest.approx(y["upper"], abs=1e-12), x["name"]
        assert a["coverage"] == b["coverage"]
        assert a["status"] == b["status"]


# ---- regression: direct loss estimation ------------------------------------------------------------
def log_regression_days(log_dir: Path, *, labelled_days: tuple[int, ...] = (0, 1)) -> dict[int, dict]:
    """Four days of a regression model exact on average whose noise grows with ``x`` and in segment ``c``; on
    day 3 the inputs move to large ``x``, where it errs most (inside the reference's range)."""
    rng = np.random.default_rng(5)
    configure(service="svc", log_dir=log_dir)
    plog = PredictionLogger(model="r", version="v1")
    truth = {}
    try:
        for day in range(4):
            x = rng.uniform(0.6 if day == 3 else 0.0, 1.0, 1500)
            segment = rng.choice(["a", "b", "c"], 1500, p=[0.5, 0.3, 0.2])
            prediction = 3 * x
            label = prediction + rng.normal(0.0, 0.1 + x + 0.5 * (segment == "c"))
            for i in range(1500):
                ts = T0 + timedelta(days=day, seconds=i * 57)
                features = {"x": float(x[i]), "segment": str(segment[i])}
                pid = plog.prediction(features, float(prediction[i]), timestamp=ts)
                if day in labelled_days:
                    plog.feedback(pid, float(label[i]), timestamp=ts + timedelta(minutes=5))
            error = label - prediction
            truth[day] = {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error**2)))}
    finally:
        shutdown()
    return truth


@pytest.mark.parametrize("kind", STORES)
def test_regression_losses_are_estimated_before_the_labels_and_the_drop_alerts(kind: str, tmp_path: Path) -> None:
    truth = log_regression_days(tmp_path / "logs", labelled_days=(0, 1, 3))
    config = EstimationConfig(reference=REFERENCE, window="1d", min_labels=100)
    with store_over(kind, tmp_path / "logs", tmp_path / "state", "r") as (store, model):
        same, harder = (as_json(f) for f in estimation.run_windows(store, model, config, [SAME_DAY, SHIFT_DAY]))
    assert same["task"] == "regression"
    assert same["status"] == "ok"
    assert [e["name"] for e in same["metrics"]] == ["mae", "rmse"]
    assert same["calibration"]["method"] == "direct loss estimation"
    assert harder["status"] == "alert"
    assert {s["subject"] for s in harder["signals"]} == {"metric:mae", "metric:rmse"}
    for entry in harder["metrics"]:
        assert set(entry) >= ENTRY_KEYS
        assert entry["dropped"] is True
        assert entry["relative_drop"] > 0.2  # errors grew: worse is positive
        assert entry["estimated"] > entry["reference"]
        assert entry["lower"] <= entry["estimated"] <= entry["upper"]
        # the labels of day 3 were logged: realized stands beside estimated, within 5%
        assert entry["realized"] == pytest.approx(truth[3][entry["name"]], rel=1e-9)
        assert abs(entry["estimated"] - entry["realized"]) < 0.05 * entry["realized"], entry["name"]
    for entry in same["metrics"]:
        assert entry["realized"] is None  # day 2 has no label: unknown, never 0
        assert entry["dropped"] is False


def test_regression_metrics_on_a_classifier_are_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="mixes classification metrics with regression"):
        EstimationConfig(metrics=["mae", "accuracy"])
    with pytest.raises(ValueError, match="not estimated for the task 'classification'"):
        EstimationConfig(metrics=["mae"], task="classification")


def test_windows_on_one_grid_are_read_by_one_aggregate_and_match_the_hand_computed_values(tmp_path: Path) -> None:
    truth = log_days(tmp_path / "logs", label_shift_day=True, seed=3)
    config = EstimationConfig(reference=REFERENCE, window="6h", min_rows=50, min_labels=50, calibration="none")
    windows = [
        Window(SHIFT_DAY.start + timedelta(hours=6 * k), SHIFT_DAY.start + timedelta(hours=6 * (k + 1)))
        for k in range(3)  # the day's predictions fill 22 hours: the last quarter is too empty to judge
    ]
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        findings = [as_json(f) for f in estimation.run_windows(store, "m", config, windows)]
    day = truth[3]
    row = np.arange(N) * 40 // (6 * 3600)  # the window of each of the day's predictions (one every 40 s)
    labelled = np.arange(N) % 2 == 0
    for k, finding in enumerate(findings):
        assert finding["window_read"] == "aggregates"
        inside = row == k
        p, predicted, y = day["score"][inside], day["predicted"][inside], day["y"][inside]
        entries = _by_name(finding)
        assert finding["n_labeled"] == inside[labelled].sum()
        # CBPE by hand; a score cell may hold two neighbouring scores (their mean probability): within 1e-4
        assert entries["accuracy"]["estimated"] == pytest.approx(np.mean(np.where(predicted, p, 1 - p)), abs=1e-4)
        assert entries["precision"]["estimated"] == pytest.approx(p[predicted].mean(), abs=1e-4)
        mine = labelled[inside]
        assert entries["accuracy"]["realized"] == pytest.approx(accuracy_score(y[mine], predicted[mine]), abs=1e-12)
        assert entries["roc_auc"]["realized"] == pytest.approx(roc_auc_score(y[mine], p[mine]), abs=1e-3)
