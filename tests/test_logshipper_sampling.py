"""Sampling keeps a prediction and its feedback together, decided from the prediction id alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from logshipper import PredictionLogger, configure, shutdown
from logshipper.ids import prediction_id_time_ms
from logshipper.sampling import fraction, id_kept

LABELLER = """
import sys, logshipper
log_dir, rate, ids = sys.argv[1], float(sys.argv[2]), sys.argv[3]
logshipper.configure(service="labeller", log_dir=log_dir)
plog = logshipper.PredictionLogger(model="m", sample_rate=rate)
for pid in open(ids).read().split():
    plog.feedback(pid, label=1)  # only the id: no entity, no memory of the prediction
logshipper.shutdown()
"""


@pytest.fixture(autouse=True)
def _clean_pipeline():
    yield
    shutdown()


def events_by_dataset(directory: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {"ml.prediction": [], "ml.feedback": []}
    for path in directory.rglob("*.ndjson"):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            out[event["event"]["dataset"]].append(event)
    return out


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_feedback_logged_by_another_process_follows_its_prediction(tmp_path: Path, rate: float) -> None:
    n, entities = 4000, 800
    configure(service="predictor", log_dir=tmp_path)
    plog = PredictionLogger(model="m", sample_rate=rate)
    ids = [plog.prediction({"i": i}, i % 2, entity_id=f"user-{i % entities}") for i in range(n)]
    shutdown()
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    labeller = subprocess.run(
        [sys.executable, "-c", LABELLER, str(tmp_path), str(rate), str(tmp_path / "ids.txt")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert labeller.returncode == 0, labeller.stderr
    found = events_by_dataset(tmp_path)
    kept = {e["ml"]["prediction_id"] for e in found["ml.prediction"]}
    labelled = {e["ml"]["prediction_id"] for e in found["ml.feedback"]}
    assert labelled - kept == set(), "orphans: feedback for a prediction that was not kept"
    assert kept - labelled == set(), "lost labels: a kept prediction whose feedback was dropped"
    kept_entities = {f"user-{i}" for i in range(entities) if fraction(f"user-{i}") < rate}
    assert {e["ml"]["entity_id"] for e in found["ml.prediction"]} == kept_entities, "an entity is in or out"
    assert len(kept) == n // entities * len(kept_entities)
    assert all(e["ml"]["sample_rate"] == rate for e in found["ml.prediction"])


def test_ids_carrying_a_sampling_decision_stay_unique_uuid7_in_time_order() -> None:
    plog = PredictionLogger(model="m", sample_rate=0.3)
    ids = [plog.prediction({}, 0, entity_id=f"user-{i % 7}") for i in range(5000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids)
    assert prediction_id_time_ms(ids[-1]) >= prediction_id_time_ms(ids[0])


@pytest.mark.parametrize("sample_by", ["entity", "id"])
def test_the_share_kept_is_the_sample_rate(sample_by: str) -> None:
    rate, n = 0.2, 20_000
    plog = PredictionLogger(model="m", sample_rate=rate, sample_by=sample_by)
    kept = sum(id_kept(plog.prediction({}, 0, entity_id=f"user-{i}"), rate) for i in range(n))
    assert abs(kept / n - rate) < 4 * (rate * (1 - rate) / n) ** 0.5  # within four standard errors


def test_ids_given_by_the_caller_are_sampled_by_the_id_so_feedback_follows(tmp_path: Path) -> None:
    configure(service="svc", log_dir=tmp_path)
    plog = PredictionLogger(model="m", sample_rate=0.3)
    for i in range(1000):
        plog.prediction({}, 0, entity_id="one-entity", prediction_id=f"order-{i}")
        plog.feedback(f"order-{i}", label=1)
    shutdown()
    found = events_by_dataset(tmp_path)
    kept = [e["ml"]["prediction_id"] for e in found["ml.prediction"]]
    assert kept == [e["ml"]["prediction_id"] for e in found["ml.feedback"]]
    assert kept == [f"order-{i}" for i in range(1000) if id_kept(f"order-{i}", 0.3)]
    assert 200 < len(kept) < 400
