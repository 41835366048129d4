"""The HTML report on generated log lines: sections, verdicts, plots, escaping, notes, self-containment."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from report_events import ODD_CATEGORY, ODD_FEATURE, T0, Incidents, build

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
from analyzers.findings.fairness import AttributeResult
from analyzers.report import charts, write_report
from analyzers.report.data import Distribution, latency_by_bucket, numeric_edges, top_categories
from analyzers.report.html import _PAGE, _gap_table, plot
from analyzers.runner import run_jobs
from analyzers.store import LocalStore
from analyzers.timeutil import Window

DAYS = 4
AT = T0 + timedelta(days=DAYS)
LAST = Window(T0 + timedelta(days=DAYS - 1), AT)


def model_config() -> ModelConfig:
    day = timedelta(days=1)
    return ModelConfig(
        drift=DriftConfig(window=day, reference=ReferenceConfig(start=T0, end=T0 + day), min_rows=50),
        fairness=FairnessConfig(window=day, min_group_size=50, min_rows=50),
        performance=PerformanceConfig(window=day, min_labels=30),
        ops=OpsConfig(window=day, min_rows=50),
    )


CONFIG = Config(models={"fraud": model_config(), "price": model_config()})


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four days of both models, incidents on the last; the scheduler's findings stored for days 2 to 4."""
    root = tmp_path_factory.mktemp("report")
    build(root / "logs", days=DAYS, per_day=600, last_day=Incidents(0.5, 0.1, "south", slow=True))
    with LocalStore(root / "logs", root / "state") as store:
        for day in range(2, DAYS + 1):
            run_jobs(store, CONFIG, at=T0 + timedelta(days=day))
    return root


@pytest.fixture(scope="module")
def fraud_html(logs: Path) -> str:
    with LocalStore(logs / "logs", logs / "state") as store:
        path = write_report(store, "fraud", logs / "out" / "fraud.html", config=CONFIG, at=AT)
    assert path == logs / "out" / "fraud.html"
    return path.read_text(encoding="utf-8")


def plots(html: str) -> list[str]:
    """What each inline SVG plot shows (its accessible label), in page order."""
    return re.findall(r'<svg class="plot" role="img" aria-label="([^"]+)"', html)


def html_page_template() -> str:
    return _PAGE.template


def section(html: str, name: str) -> str:
    match = re.search(rf'<section id="{name}">(.*?)</section>', html, flags=re.S)
    assert match, f"no section {name}"
    return match.group(1)


def test_verdicts_at_the_top_name_each_job_with_its_status(fraud_html: str) -> None:
    summary = section(fraud_html, "summary")
    assert fraud_html.index('id="summary"') < fraud_html.index('id="drift"')
    for job in ("Drift", "Fairness", "Performance", "Operations"):
        assert f">{job}</a>" in summary
    cards = {job: status for status, job in re.findall(r'<div class="card s-(\w+)-b"><h3><a href="#(\w+)">', summary)}
    # drift, the worse-served group, the accuracy drop, the latency spike
    assert cards == {"drift": "alert", "fairness": "alert", "performance": "alert", "ops": "alert"}
    assert "region=south is served worse" in summary
    assert re.search(r"\d of 7 columns drifted: amount \(wasserstein [\d.]+\)", summary)
    assert "stored result of a scheduled run" in summary


def test_drift_section_plots_every_column_with_its_test(fraud_html: str) -> None:
    drift = section(fraud_html, "drift")
    assert "dataset drift</strong>" in drift
    columns = {"amount", "country", "n_items", "prediction", "score", "label", "&lt;b>odd&amp;name&lt;/b>"}
    assert sorted(plots(drift)) == sorted([*(f"distribution of {c}" for c in columns), "drift over time"])
    assert "Shaded: the 1 bucket(s) of 1d where the drift job alerted." in drift
    assert re.search(r"<td>amount</td>.*?wasserstein", drift, flags=re.S)
    assert "ES (" in drift  # the new category is named


def test_fairness_performance_and_operations_are_drawn(fraud_html: str) -> None:
    fairness = section(fraud_html, "fairness")
    assert 'aria-label="fairness parity gaps"' in fairness
    assert 'aria-label="fairness rates per group of region"' in fairness
    assert re.search(r'<tr class="alert"><td>south</td>', fairness)
    performance = section(fraud_html, "performance")
    assert 'aria-label="performance over time"' in performance
    assert re.search(r"<td>accuracy</td>", performance)
    assert 'aria-label="fairness over time"' in fairness
    ops = section(fraud_html, "ops")
    assert 'aria-label="operations"' in ops
    assert 'aria-label="operations over time"' in ops
    assert "latency p95" in ops


def test_user_data_is_escaped(fraud_html: str) -> None:
    assert ODD_FEATURE not in fraud_html
    assert ODD_CATEGORY not in fraud_html
    assert "&lt;b&gt;odd&amp;name&lt;/b&gt;" in fraud_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in fraud_html
    page_scripts = re.findall(r"<script>(.*?)</script>", html_page_template(), flags=re.S)
    assert re.findall(r"<script[^>]*>(.*?)</script>", fraud_html, flags=re.S) == page_scripts, "only the page's own"


def test_page_is_self_contained_and_small(fraud_html: str) -> None:
    assert not re.search(r"https?://", fraud_html)
    assert not re.search(r"\s(src|href)=\"(?!#)", fraud_html)
    assert "default-src 'none'" in fraud_html
    assert '<body data-errors="0" data-plots="0" data-rendered="0">' in fraud_html
    assert len(fraud_html.encode()) < 600_000
    svgs = re.findall(r"<svg.*?</svg>", fraud_html, flags=re.S)
    assert len(svgs) == len(plots(fraud_html)), "every SVG is a labelled plot"
    assert plots(fraud_html)[-7:] == [
        "drift over time",
        "fairness parity gaps",
        "fairness rates per group of region",
        "fairness over time",
        "performance over time",
        "operations",
        "operations over time",
    ]
    assert max(len(s) for s in svgs) < 100_000
    ids = re.findall(r'\sid="([^"]+)"', fraud_html)
    assert len(ids) == len(set(ids)), "element ids repeat across plots"


def test_regressor_report_shows_regression_metrics(logs: Path) -> None:
    with LocalStore(logs / "logs", logs / "state") as store:
        html = write_report(store, "price", logs / "out" / "price.html", config=CONFIG, at=AT).read_text()
    performance = section(html, "performance")
    for metric in ("mae", "rmse", "r2"):
        assert f"<td>{metric}</td>" in performance
    assert "Task: regression" in performance
    summary = section(html, "summary")
    assert re.search(r"\d+ events, error rate [\d.]+%, latency p95 [\d.]+ ms", summary)
    assert re.search(r"mae [\d,]+ \(reference [\d,]+\)", summary)
    fairness = section(html, "fairness")
    assert "No group attributes" in fairness or "Not enough data" in fairness


def test_a_model_without_data_gets_notes_not_a_failure(logs: Path) -> None:
    config = Config(models={"ghost": ModelConfig(ops=OpsConfig(window=timedelta(days=1)))})
    with LocalStore(logs / "logs", logs / "state") as store:
        html = write_report(store, "ghost", logs / "out" / "ghost.html", config=config, at=AT).read_text()
    assert "The drift job is not configured" in section(html, "drift")
    assert "The fairness job is not configured" in section(html, "fairness")
    assert "No events were logged" in section(html, "ops")
    assert "NOT RUN" in section(html, "summary")
    assert "<svg" not in html


def test_a_failing_job_is_reported_in_its_section(logs: Path) -> None:
    broken = model_config().model_copy(
        update={"drift": DriftConfig(window=timedelta(days=1), reference=ReferenceConfig(file="absent.parquet"))}
    )
    with LocalStore(logs / "logs", logs / "state") as store:
        html = write_report(
            store,
            "fraud",
            logs / "out" / "broken.html",
            config=Config(models={"fraud": broken}),
            at=AT - timedelta(hours=1),
        ).read_text()
    assert "The drift job failed" in section(html, "drift")
    assert "ERROR" in section(html, "summary")
    assert 'aria-label="operations"' in section(html, "ops")


def test_report_command_writes_one_file_per_model(logs: Path, tmp_path: Path) -> None:
    config = tmp_path / "predwatch.yml"
    config.write_text(
        f"store: {{local: {{path: {logs / 'logs'}}}}}\nstate: {{path: {tmp_path / 'state'}}}\n"
        "models:\n  fraud: {ops: {window: 1d}}\n  price: {ops: {window: 1d}}\n"
    )
    out = tmp_path / "reports"
    code = main(
        ["report", "--config", str(config), "--window", "1d", "--at", "2026-11-24T00:00:00Z", "--out", str(out)]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["fraud.html", "price.html"]
    assert 'aria-label="operations"' in (out / "fraud.html").read_text()


def test_a_plot_that_cannot_be_drawn_becomes_a_note() -> None:
    open_before = plt.get_fignums()
    mismatched = Distribution("x", "numeric", ref=[1.0], cur=[0.5, 0.5], n_ref=1, n_cur=2, edges=[0.0, 1.0, 2.0])
    out = plot(charts.distribution, mismatched, None, "bad")
    assert out.startswith('<p class="note">This plot could not be drawn: ')
    assert plt.get_fignums() == open_before


def test_numeric_edges_give_one_bin_per_integer_or_equal_widths() -> None:
    assert np.allclose(numeric_edges(0, 3, discrete=True), [-0.5, 0.5, 1.5, 2.5, 3.5])
    edges = numeric_edges(0.0, 10.0, discrete=False)
    assert len(edges) == 31
    assert edges[0] == 0
    assert edges[-1] == 10
    flat = numeric_edges(5.0, 5.0, discrete=False)
    assert flat[0] < 5 < flat[-1]


def test_top_categories_pool_the_rest() -> None:
    ref = {"a": 50, "b": 30, "c": 20}
    cur = {"a": 40, "d": 60}
    labels, r, c = top_categories(ref, cur, 2)
    assert labels == ["d", "a", "other (2)"]
    assert r == pytest.approx([0.0, 0.5, 0.5])
    assert c == pytest.approx([0.6, 0.4, 0.0])


def test_latency_percentiles_per_bucket_skip_sparse_buckets() -> None:
    window = Window(T0, T0 + timedelta(hours=2))
    times = [T0 + timedelta(minutes=m) for m in range(60)] + [T0 + timedelta(minutes=90)]
    sample = pd.DataFrame({"timestamp": pd.to_datetime(times, utc=True), "latency_ms": [*range(60), 1000.0]})
    out = latency_by_bucket(sample, window, timedelta(hours=1), 2)
    assert out["p50"][0] == pytest.approx(29.5)
    assert out["p50"][1] is None


def test_gap_table_highlights_only_what_the_verdict_flags() -> None:
    """A ratio below four-fifths whose difference is not significant gets an OK badge, no highlight, and says so."""
    unproven = AttributeResult.from_dict(
        {
            "name": "region",
            "demographic_parity_difference": 0.12,
            "demographic_parity_difference_ci": [-0.02, 0.26],
            "demographic_parity_ratio": 0.7,
            "status": "ok",
        }
    )
    breached = AttributeResult.from_dict(
        {
            "name": "age_band",
            "demographic_parity_difference": 0.3,
            "demographic_parity_difference_ci": [0.2, 0.4],
            "demographic_parity_ratio": 0.5,
            "status": "alert",
        }
    )
    rows = re.findall(
        r"<tr( class=\"alert\")?><td>(\w+)</td>(.*?)</tr>",
        _gap_table([unproven, breached], 0.8, frozenset({"age_band"})),
    )
    by_name = {name: (bool(css), cells) for css, name, cells in rows}
    assert by_name["region"][0] is False
    assert "below 0.8, not significant" in by_name["region"][1]
    assert ">OK<" in by_name["region"][1]
    assert by_name["age_band"][0] is True
    assert "not significant" not in by_name["age_band"][1]
    assert ">ALERT<" in by_name["age_band"][1]
