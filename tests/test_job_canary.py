"""The canary job on simulated traffic: a worse candidate is rolled back, an equal one promoted, a thin one held,
and the power calculation agrees with the formula worked by hand."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from analyzers.alerts.rules import alerts_of
from analyzers.cli import main
from analyzers.config.models import CanaryConfig
from analyzers.findings import CanaryMetrics, Finding
from analyzers.jobs import canary
from analyzers.stats.canary import decide, family_level, proportion_sample_size, sample_size
from analyzers.timeutil import Window, format_time, parse_time
from tests.finding_json import as_json
from tests.log_events import event, write_events
from tests.logged_stores import STORES, store_over
from tests.version_traffic import Version, write_traffic

T0 = parse_time("2026-11-20T00:00:00Z")
WINDOW = Window(T0 + timedelta(hours=20), T0 + timedelta(hours=24))


def rollout(tmp_path: Path, *, n_candidate: int, accuracy: float, error_rate: float = 0.01) -> dict[str, Any]:
    """v1 all day (about 500 events in the window), v2 only in the window: a canary of ``n_candidate`` events."""
    return write_traffic(
        tmp_path / "logs",
        [
            Version("v1", 3000, T0, T0 + timedelta(days=1)),
            Version("v2", n_candidate, WINDOW.start, WINDOW.end, accuracy=accuracy, error_rate=error_rate),
        ],
    )


def run(tmp_path: Path, kind: str = "local", **settings: Any) -> tuple[Finding, CanaryMetrics]:
    config = CanaryConfig(window="4h", **{"min_detectable": 0.05, **settings})
    with store_over(kind, tmp_path / "logs", tmp_path / "state", "m") as (store, model):
        finding = canary.run(store, model, config, WINDOW)
    assert finding.status != "error", finding.error
    as_json(finding)
    metrics = finding.metrics_as(CanaryMetrics)
    assert metrics is not None
    return finding, metrics


@pytest.mark.parametrize("kind", STORES)
def test_a_worse_candidate_is_rolled_back(kind: str, tmp_path: Path) -> None:
    truth = rollout(tmp_path, n_candidate=300, accuracy=0.7)
    finding, m = run(tmp_path, kind)
    assert m.verdict == "rollback"
    assert finding.status == "alert"
    assert [(a.key, a.severity) for a in alerts_of(finding)] == [(f"{finding.model}:canary:rollback:v2", "critical")]
    assert m.baseline is not None
    assert m.candidate is not None
    assert (m.baseline.version, m.baseline.chosen_as) == ("v1", "previous")
    assert (m.candidate.version, m.candidate.chosen_as) == ("v2", "latest")
    accuracy = m.comparison("accuracy")
    assert accuracy is not None
    assert accuracy.worse
    assert accuracy.gated
    assert accuracy.candidate == pytest.approx(np.mean(truth["v2"]["correct"]))
    assert accuracy.high is not None
    assert accuracy.high < 0
    assert "accuracy" in m.reason
    assert m.reason.startswith("rollback v2 (baseline v1")
    # v2 starts in the window: found to the look-back's resolution (7 days / 40,000 = 15.12 s)
    first = m.candidate.first_seen
    assert first is not None
    assert timedelta(0) <= truth["v2"]["first"] - first < timedelta(seconds=15.2)
    shares = {t.version: t.share for t in m.traffic}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["v2"] == pytest.approx(m.candidate.events / (m.candidate.events + m.baseline.events))
    assert [d.name for d in m.drift] == ["prediction", "score"]


def test_the_same_rows_logged_at_ten_percent_stand_for_ten_times_the_traffic_not_more_evidence(
    tmp_path: Path,
) -> None:
    found = {}
    for rate in (None, 0.1):
        root = tmp_path / str(rate)
        write_traffic(
            root / "logs",
            [
                Version("v1", 3000, T0, T0 + timedelta(days=1), sample_rate=rate),
                Version("v2", 300, WINDOW.start, WINDOW.end, accuracy=0.85, sample_rate=rate),
            ],
        )
        found[rate] = run(root)[1]
    plain, sampled = found[None], found[0.1]
    assert sampled.candidate is not None
    assert plain.candidate is not None
    assert sampled.candidate.events == pytest.approx(10 * plain.candidate.events)
    assert sampled.candidate.events_observed == plain.candidate.events
    for name in ("accuracy", "error_rate", "latency_p95"):
        a, b = plain.comparison(name), sampled.comparison(name)
        assert a is not None
        assert b is not None
        assert (b.difference, b.low, b.high) == pytest.approx((a.difference, a.low, a.high)), name
        assert b.n_candidate == pytest.approx(a.n_candidate), name
    assert sampled.verdict == plain.verdict


def test_an_equal_candidate_with_enough_traffic_is_promoted(tmp_path: Path) -> None:
    rollout(tmp_path, n_candidate=600, accuracy=0.9)
    finding, m = run(tmp_path, min_detectable=0.1)
    assert m.verdict == "promote", m.reason
    assert [(a.key, a.severity) for a in alerts_of(finding)] == [("m:canary:promote:v2", "info")]
    assert m.sample_size is not None
    assert m.sample_size.required is not None
    assert m.sample_size.observed >= m.sample_size.required
    assert not any(c.worse for c in m.comparisons)


def test_a_thin_candidate_is_held_with_the_predictions_it_still_needs(tmp_path: Path) -> None:
    rollout(tmp_path, n_candidate=60, accuracy=0.9)
    finding, m = run(tmp_path)
    assert m.verdict == "hold"
    assert finding.status == "insufficient_data"
    assert alerts_of(finding) == []  # waiting for data is not a problem to page about
    assert m.candidate is not None
    assert m.candidate.events < 100
    assert m.candidate.events_observed == m.candidate.events  # logged unsampled
    assert f"{100 - m.candidate.events_observed:g} more events logged before a verdict" in m.reason
    assert finding.summary() == m.reason


def test_hold_until_the_power_calculation_is_met(tmp_path: Path) -> None:
    rollout(tmp_path, n_candidate=400, accuracy=0.9)
    _finding, m = run(tmp_path)
    accuracy, size = m.comparison("accuracy"), m.sample_size
    assert m.verdict == "hold", m.reason
    assert accuracy is not None
    assert accuracy.baseline is not None
    assert size is not None
    assert size.required is not None
    # the job's own numbers in the formula: three gated metrics (accuracy, error_rate, latency_p95), so each
    # interval and the power calculation are at 1 - 0.05/3 (Bonferroni)
    z = NormalDist().inv_cdf(1 - 0.05 / 3 / 2) + NormalDist().inv_cdf(0.8)
    p_b, k = accuracy.baseline, accuracy.n_baseline / accuracy.n_candidate
    p_c = p_b - 0.05
    assert size.required == math.ceil(z * z * (p_c * (1 - p_c) + p_b * (1 - p_b) / k) / 0.05**2)
    assert m.level == pytest.approx(1 - 0.05 / 3)
    assert size.more_observations == size.required - size.observed
    assert m.candidate is not None
    labelled_per_event = size.observed / m.candidate.events
    assert size.more_predictions == math.ceil(size.more_observations / labelled_per_event)
    assert size.window_needed_s == pytest.approx(WINDOW.length.total_seconds() * size.required / size.observed)
    assert f"about {size.more_predictions:,} more v2 predictions for accuracy" in m.reason


def test_the_power_calculation_is_the_textbook_formula() -> None:
    # Two proportions, unpooled (Fleiss): n_c = (z_{1-a/2} + z_{power})^2 (p_c q_c + p_b q_b / k) / d^2
    # p_b = 0.9, d = 0.05 (p_c = 0.85), k = 9 (a 10% canary), alpha = 0.05, power = 0.8:
    # (1.959964 + 0.841621)^2 * (0.85 * 0.15 + 0.9 * 0.1 / 9) / 0.05^2 = 7.848879 * 0.1375 / 0.0025 = 431.69
    by_hand = (1.959964 + 0.841621) ** 2 * (0.85 * 0.15 + 0.9 * 0.1 / 9) / 0.05**2
    assert by_hand == pytest.approx(431.69, abs=0.01)
    n = proportion_sample_size(0.9, difference=0.05, ratio=9, higher_is_better=True, confidence=0.95, power=0.8)
    assert n == pytest.approx(by_hand, rel=1e-5)
    # an error rate worsens upwards: 0.02 -> 0.03 on an even split
    error = proportion_sample_size(0.02, difference=0.01, ratio=1, higher_is_better=False)
    assert error == pytest.approx((1.959964 + 0.841621) ** 2 * (0.03 * 0.97 + 0.02 * 0.98) / 0.01**2, rel=1e-5)
    # a mean (MAE) with a per-observation spread of 4 (variance 16) on both sides, difference 0.5, k = 4
    mean = sample_size(variance_candidate=16, variance_baseline=16, difference=0.5, ratio=4)
    assert mean == pytest.approx((1.959964 + 0.841621) ** 2 * (16 + 16 / 4) / 0.25, rel=1e-5)
    assert family_level(0.95, 3) == pytest.approx(1 - 0.05 / 3)
    with pytest.raises(ValueError, match="must be positive"):
        sample_size(variance_candidate=1, variance_baseline=1, difference=0, ratio=1)


def test_the_verdict_rules() -> None:
    common = {"n_baseline": 1000.0, "min_rows": 100}
    assert decide(n_candidate=50, worse=["accuracy"], required=10, observed=5, **common).verdict == "hold"
    assert decide(n_candidate=500, worse=["error_rate"], required=900, observed=5, **common).verdict == "rollback"
    held = decide(n_candidate=500, worse=[], required=900, observed=400, **common)
    assert (held.verdict, held.observations_short) == ("hold", 500)
    assert decide(n_candidate=500, worse=[], required=None, observed=0, **common).verdict == "hold"
    assert decide(n_candidate=500, worse=[], required=400, observed=400, **common).verdict == "promote"


def test_an_error_rate_guardrail_rolls_back_without_labels(tmp_path: Path) -> None:
    write_traffic(
        tmp_path / "logs",
        [
            Version("v1", 3000, T0, T0 + timedelta(days=1), label_share=0.0),
            Version("v2", 300, WINDOW.start, WINDOW.end, error_rate=0.2, label_share=0.0),
        ],
    )
    _finding, m = run(tmp_path)
    assert m.verdict == "rollback"
    assert m.comparison("accuracy") is None
    error = m.comparison("error_rate")
    assert error is not None
    assert error.worse
    assert "error_rate" in m.reason


def test_explicit_versions_and_no_canary(tmp_path: Path) -> None:
    write_traffic(
        tmp_path / "logs",
        [
            Version("v1", 3000, T0, T0 + timedelta(days=1)),
            Version("v2", 300, WINDOW.start, WINDOW.end),
            Version("v3", 300, WINDOW.start, WINDOW.end, accuracy=0.6),
        ],
    )
    _finding, m = run(tmp_path, baseline="v2", candidate="v3")
    assert m.baseline is not None
    assert m.candidate is not None
    assert (m.baseline.chosen_as, m.candidate.chosen_as) == ("configured", "configured")
    assert m.verdict == "rollback"
    assert {t.version for t in m.traffic} == {"v1", "v2", "v3"}
    _finding, m = run(tmp_path, baseline="v3")  # a configured baseline is never its own "latest" candidate
    assert m.candidate is not None
    assert m.candidate.version == "v2"
    finding, m = run(tmp_path, candidate="v9")
    assert (finding.status, m.verdict) == ("ok", None)
    assert "the candidate v9 served no events" in m.reason


def test_one_version_is_no_canary(tmp_path: Path) -> None:
    write_traffic(tmp_path / "logs", [Version("v1", 600, T0, T0 + timedelta(days=1))])
    finding, m = run(tmp_path)
    assert (finding.status, m.verdict) == ("ok", None)
    assert m.reason.startswith("no canary: v1 served")
    assert alerts_of(finding) == []


def test_a_worse_regressor_is_rolled_back_on_mae(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    events = []
    for version, n, start, noise in (("v1", 1500, T0, 1.0), ("v2", 400, WINDOW.start, 3.0)):
        for i in range(n):
            ts = start + timedelta(seconds=float(rng.uniform(0, (WINDOW.end - start).total_seconds())))
            truth = float(rng.gamma(4.0, 5.0))
            ml = {"model": {"name": "m", "version": version}, "prediction": {"label": truth + rng.normal(0, noise)}}
            events.append(event(ts, f"{version}-{i}", ml))
            events.append(event(ts + timedelta(minutes=1), f"{version}-{i}", {"label": truth}, "ml.feedback"))
    write_events(tmp_path / "logs", events)
    _finding, m = run(tmp_path, metric="mae", min_detectable=0.2, guardrails=[])
    mae = m.comparison("mae")
    assert mae is not None
    assert mae.worse
    assert m.verdict == "rollback"
    assert m.comparison("accuracy") is None


def test_configuration_errors_name_the_key() -> None:
    with pytest.raises(ValidationError, match="'baseline' is a version or 'previous'"):
        CanaryConfig(baseline="latest")
    with pytest.raises(ValidationError, match="unknown canary metric 'auc'"):
        CanaryConfig(metric="auc")
    with pytest.raises(ValidationError, match="not a percentile"):
        CanaryConfig(guardrails=["latency_q95"])
    with pytest.raises(ValidationError, match="the same version 'v2'"):
        CanaryConfig(baseline="v2", candidate="v2")
    assert CanaryConfig(guardrails=["latency_p99.9", "error_rate", "error_rate"]).guardrails == [
        "latency_p99.9",
        "error_rate",
    ]


def test_the_report_has_a_canary_section_and_per_version_results(tmp_path: Path) -> None:
    rollout(tmp_path, n_candidate=300, accuracy=0.7)
    config = {
        "store": {"local": {"path": str(tmp_path / "logs")}},
        "state": {"path": str(tmp_path / "state")},
        "models": {
            "m": {
                "ingest_delay": "0s",
                "canary": {"window": "4h", "min_detectable": 0.05},
                "ops": {"window": "4h", "by_version": True, "min_rows": 50},
            }
        },
    }
    (tmp_path / "predwatch.yml").write_text(yaml.safe_dump(config))
    out = tmp_path / "m.html"
    argv = ["report", "-c", str(tmp_path / "predwatch.yml"), "--model", "m", "--window", "4h"]
    assert main([*argv, "--at", format_time(WINDOW.end), "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    canary_part = re.search(r'<section id="canary">(.*?)</section>', html, flags=re.S)
    assert canary_part is not None
    body = canary_part.group(1)
    assert '<span class="badge v-rollback">ROLL BACK</span> rollback v2 (baseline v1' in body
    assert "<td>accuracy</td>" in body
    assert "<h3>Prediction and score: candidate against baseline</h3>" in body
    ops_part = re.search(r'<section id="ops">(.*?)</section>', html, flags=re.S)
    assert ops_part is not None
    assert "<h3>By version</h3>" in ops_part.group(1)
    assert "<td>v2</td>" in ops_part.group(1)
