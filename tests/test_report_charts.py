"""Report plots on degenerate data: rates of 0 and 1, one-row groups, measures that cannot be computed;
legends beside the data and threshold labels on their lines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from report_events import degenerate_logs

from analyzers.config.models import Config, FairnessConfig, ModelConfig, OpsConfig
from analyzers.findings.fairness import AttributeResult
from analyzers.report import charts, write_report
from analyzers.report.trends import FAIRNESS, DriftTrend, FairnessTrend, OpsTrend, PerformanceTrend
from analyzers.stats.intervals import wilson
from analyzers.store import LocalStore
from analyzers.timeutil import parse_time

T0 = parse_time("2026-11-20T00:00:00Z")
DAY = timedelta(days=1)
STARTS = [T0 + i * DAY for i in range(5)]


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Figure]]:
    """Every figure a chart function hands to ``to_svg``, drawn, before it is closed."""
    drawn: list[Figure] = []
    original = charts.to_svg

    def keep(fig: Figure, key: str, title: str) -> str:
        drawn.append(fig)
        return original(fig, key, title)

    monkeypatch.setattr(charts, "to_svg", keep)
    yield drawn


def _renderer(fig: Figure) -> RendererAgg:
    """The figure laid out and drawn again (``to_svg`` closed it), for positions in pixels."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _legends_clear_of_data(fig: Figure) -> list[str]:
    """The legends of ``fig`` that overlap the data area of any of its axes (should be none)."""
    renderer = _renderer(fig)
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    overlaps = []
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            if box.overlaps(ax.get_window_extent(renderer)):
                overlaps.append(f"{[t.get_text() for t in legend.get_texts()]} over {ax.get_title()!r}")
    return overlaps


def _rate(value: float, n: float) -> tuple[float, list[float]]:
    """A rate and its Wilson interval as the fairness job reports them."""
    est = wilson(value * n, n)
    return est.value, [est.low, est.high]


def degenerate_attribute() -> AttributeResult:
    """Groups whose rates are exactly 0 or 1 (Wilson's bound for 10 of 10 is 0.9999999999999999), one row."""
    groups = []
    for name, n, rate in (("all", 10, 1.0), ("none", 10, 0.0), ("solo", 1, 1.0), ("big", 261, 1.0)):
        row: dict[str, Any] = {"group": name, "n": n, "n_labeled": n, "status": "ok"}
        for key in ("selection_rate", "accuracy", "tpr", "precision"):
            row[key], row[f"{key}_ci"] = _rate(rate, n)
        row["fpr"], row["fpr_ci"] = None, None
        groups.append(row)
    return AttributeResult.from_dict({"name": "segment", "groups": groups})


def test_rates_of_one_whose_interval_ends_a_rounding_error_below_are_drawn(figures: list[Figure]) -> None:
    attribute = degenerate_attribute()
    tpr = attribute.groups[0].rate("tpr")
    assert tpr.ci is not None
    assert tpr.value is not None
    assert tpr.ci[1] is not None
    assert tpr.ci[1] < tpr.value  # what broke errorbar's xerr
    svg = charts.fairness_groups(attribute, "degenerate")
    assert svg.startswith('<svg class="plot"')
    assert plt.get_fignums() == []


def test_gaps_that_cannot_be_computed_are_written_not_drawn_as_zero(figures: list[Figure]) -> None:
    attributes = [
        AttributeResult.from_dict(
            {"name": "segment", "demographic_parity_difference": 1.0, "demographic_parity_difference_ci": [0.6, 1.0]}
        ),
        AttributeResult.from_dict({"name": "alone", "demographic_parity_difference": None}),
    ]
    svg = charts.fairness_gaps(attributes, 0.8, 0.1, frozenset(), "gaps")
    assert svg.count(">n/a<") == 5  # equalized odds of "segment"; both differences of "alone"; both ratios
    (fig,) = figures
    assert _legends_clear_of_data(fig) == []


def test_four_fifths_label_sits_on_its_line(figures: list[Figure]) -> None:
    attributes = [
        AttributeResult.from_dict(
            {"name": "region", "demographic_parity_difference": 0.3, "demographic_parity_ratio": 0.5}
        )
    ]
    charts.fairness_gaps(attributes, 0.8, 0.1, frozenset({"region"}), "gaps")
    (fig,) = figures
    renderer = _renderer(fig)
    right = fig.axes[1]
    label = next(t for t in right.texts if isinstance(t, Annotation) and t.get_text() == "four-fifths (0.8)")
    line_y = right.transData.transform((0, 0.8))[1]
    box = label.get_window_extent(renderer)
    assert 0 <= box.y0 - line_y <= 6  # just above the dashed line, in pixels
    assert right.get_window_extent(renderer).x0 < box.x0 < box.x1 <= right.get_window_extent(renderer).x1 + 1


def test_trend_and_operations_legends_never_cover_the_data(figures: list[Figure]) -> None:
    fired = [False, True, False, False, True]
    nan = None
    charts.drift_trend(
        DriftTrend({"a": [0.1, 2.0, nan, 0.5, 3.0]}, {"a": [False, True, False, False, True]}, {"a": "psi > 0.1"}, "r"),
        STARTS,
        DAY,
        fired,
        "d",
    )
    charts.performance_trend(
        PerformanceTrend("classification", {"accuracy": [0.9, nan, 0.8, 0.9, 0.7]}, [10.0] * 5, [0, 0, 5, 5, 5], 1),
        STARTS,
        DAY,
        fired,
        {"accuracy": 0.9},
        "p",
    )
    charts.fairness_trend(
        FairnessTrend({"g": {m: [nan, 0.2, 0.3, nan, 0.1] for m in FAIRNESS}}, 0.1, 0.8, 1),
        STARTS,
        DAY,
        fired,
        "f",
    )
    charts.ops_trend(
        OpsTrend([10.0, 0.0, 5.0, 5.0, 7.0], [0, 0, 5, 0, 1], {"p95": [1.0, nan, 2.0, 3.0, 4.0]}, 0.05, {"p95": 3.0}),
        STARTS,
        DAY,
        fired,
        "o",
    )
    assert len(figures) == 4
    for fig in figures:
        assert _legends_clear_of_data(fig) == []


def test_a_report_over_degenerate_groups_draws_every_plot(tmp_path: Path) -> None:
    degenerate_logs(tmp_path / "logs")
    model = ModelConfig(
        ingest_delay="0s",
        fairness=FairnessConfig(window="1d", min_group_size=1, min_rows=1, groups=["segment"]),
        ops=OpsConfig(window="1d", min_rows=1),
    )
    with LocalStore(tmp_path / "logs", tmp_path / "state") as store:
        path = write_report(store, "m", f"{tmp_path / 'out'}/", config=Config(models={"m": model}), at=T0 + DAY)
    html = path.read_text(encoding="utf-8")
    assert path == tmp_path / "out" / "m.html"
    assert "could not be drawn" not in html
    for label in ("fairness parity gaps", "fairness rates per group of segment", "fairness over time"):
        assert f'aria-label="{label}"' in html


def test_a_ratio_below_the_line_is_red_only_when_the_job_flagged_it(figures: list[Figure]) -> None:
    attributes = [
        AttributeResult.from_dict({"name": name, "demographic_parity_difference": 0.3, "demographic_parity_ratio": 0.5})
        for name in ("flagged", "unproven")
    ]
    charts.fairness_gaps(attributes, 0.8, 0.1, frozenset({"flagged"}), "gaps")
    (fig,) = figures
    bars = [to_hex(patch.get_facecolor()) for patch in fig.axes[1].patches]
    assert bars == [charts.ALERT_COLOR, charts.REF_COLOR]
