"""A first report's "over time" comes from the logs: every day, from aggregates, marked where a job alerted;
``--out`` takes a directory or a file and never leaves a partial file."""

from __future__ import annotations

import collections
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from report_events import T0, Incidents, build

from analyzers.cli import main
from analyzers.config.models import (
    Config,
    DriftConfig,
    FairnessConfig,
    ModelConfig,
    OpsConfig,
    PerformanceConfig,
    ReferenceConfig,
)
from analyzers.report import gather, output, trends
from analyzers.runner import run_jobs
from analyzers.store import LocalStore
from analyzers.store.base import Store

DAY = timedelta(days=1)
AT = T0 + 4 * DAY


def model_config(reference: ReferenceConfig | None = None) -> ModelConfig:
    return ModelConfig(
        ingest_delay="0s",
        drift=DriftConfig(window="1d", reference=reference or ReferenceConfig(start=T0, end=T0 + DAY), min_rows=50),
        fairness=FairnessConfig(window="1d", min_group_size=50, min_rows=50),
        performance=PerformanceConfig(window="1d", min_labels=30),
        ops=OpsConfig(window="1d", min_rows=50),
    )


CONFIG = Config(models={"fraud": model_config()})


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four days of logs, incidents on the last; no finding stored."""
    root = tmp_path_factory.mktemp("trends")
    build(root / "logs", days=4, per_day=500, last_day=Incidents(0.5, 0.1, "south", slow=True))
    return root


class Counting:
    """Counts the store calls made through it (and forwards them)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.store, name)
        if not callable(target):
            return target

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return target(*args, **kwargs)

        return counted


def test_a_first_report_trends_every_logged_day(logs: Path) -> None:
    with LocalStore(logs / "logs", logs / "state-first") as store:
        data = gather(store, "fraud", config=CONFIG, at=AT)  # the default span, 30 days, starts at the first event
        stored = store.read_findings("fraud")
    t = data.trends
    assert stored == []
    assert [w.start for w in t.windows] == [T0 + i * DAY for i in range(4)]
    assert t.ops is not None
    assert [round(c, -2) for c in t.ops.counts] == [500, 500, 500, 500]
    assert t.drift is not None
    amount = t.drift.ratios["amount"]
    assert amount[0] == 0.0  # the first day is the reference itself
    assert amount[3] is not None and amount[3] > 3 * max(r for r in amount[1:3] if r is not None)
    assert t.drift.drifted["amount"] == [False, False, False, True]  # days 2 and 3 differ by sampling noise only
    assert t.performance is not None
    coverage = [labeled / n for labeled, n in zip(t.performance.n_labeled, t.performance.n, strict=True)]
    assert all(0.5 < c < 0.7 for c in coverage)  # the fixture labels 60%
    accuracy = t.performance.metrics["accuracy"]
    assert accuracy[3] is not None and accuracy[0] is not None and accuracy[3] < accuracy[0] - 0.05
    assert t.fairness is not None
    odds = t.fairness.attributes["region"]["equalized_odds_difference"]
    assert odds[3] is not None and odds[3] > max(v for v in odds[:3] if v is not None)
    # no finding is stored: the marks come from the report's own findings of the last window
    assert t.fired["drift"] == [False, False, False, True]


def test_stored_findings_mark_the_days_they_alerted(logs: Path, tmp_path: Path) -> None:
    with LocalStore(logs / "logs", tmp_path / "state") as store:
        for day in (2, 3, 4):
            run_jobs(store, CONFIG, at=T0 + day * DAY)
        data = gather(store, "fraud", config=CONFIG, at=AT + DAY)  # a day later: its own windows are empty
    assert data.jobs["drift"].finding is not None
    assert data.jobs["drift"].finding.status == "insufficient_data"
    assert data.trends.fired["drift"] == [False, False, False, True, False]
    assert data.trends.fired["ops"] == [False, False, False, True, True]  # and the report's own empty window


def test_trends_cost_aggregates_per_bucket_and_sum_relative_references(logs: Path) -> None:
    relative = Config(models={"fraud": model_config(ReferenceConfig(last="2d"))})
    with LocalStore(logs / "logs", logs / "state-cost") as store:
        counting = Counting(store)
        jobs = {name: job for name, job in relative.models["fraud"].jobs().items()}
        out = trends.compute(counting, "fraud", jobs, AT, timedelta(days=30), [])  # type: ignore[arg-type]
    assert out.drift is not None
    assert counting.calls["rows"] == 0  # classification trends never read rows
    assert counting.calls["sample"] <= 1  # inferring the task looks at a bounded sample
    # four days and the two before the first: each bucket's histograms once, references summed from them
    assert counting.calls["histograms"] == 6


def _config_file(logs: Path, tmp_path: Path, models: str) -> Path:
    path = tmp_path / "predwatch.yml"
    path.write_text(
        f"store: {{local: {{path: {logs / 'logs'}}}}}\nstate: {{path: {tmp_path / 'state'}}}\nmodels:\n{models}"
    )
    return path


ONE = "  fraud: {ops: {window: 1d}}\n"
TWO = ONE + "  price: {ops: {window: 1d}}\n"


@pytest.mark.parametrize("trailing", ["/", ""])
def test_out_may_name_a_directory(logs: Path, tmp_path: Path, trailing: str) -> None:
    config = _config_file(logs, tmp_path, ONE)
    folder = tmp_path / "mysvc"
    if not trailing:
        folder.mkdir()
    code = main(["report", "-c", str(config), "--at", "2026-11-24T00:00:00Z", "--out", f"{folder}{trailing}"])
    assert code == 0
    assert sorted(p.name for p in folder.iterdir()) == ["fraud.html"]


def test_out_may_name_a_file_and_several_models_need_a_directory(logs: Path, tmp_path: Path, capsys) -> None:
    config = _config_file(logs, tmp_path, TWO)
    at = ["--at", "2026-11-24T00:00:00Z"]
    assert main(["report", "-c", str(config), *at, "--model", "fraud", "--out", str(tmp_path / "one.html")]) == 0
    assert (tmp_path / "one.html").is_file()
    assert main(["report", "-c", str(config), *at, "--out", str(tmp_path / "both.html")]) == 2
    assert "2 models need a directory" in capsys.readouterr().err
    assert not (tmp_path / "both.html").exists()
    assert main(["report", "-c", str(config), *at, "--out", str(tmp_path / "both")]) == 0
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == ["fraud.html", "price.html"]


def test_a_write_that_fails_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(UnicodeEncodeError):
        output.write_atomically(tmp_path / "fraud.html", "half a page \ud800")  # a lone surrogate cannot be written
    assert list(tmp_path.iterdir()) == []
