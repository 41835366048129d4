"""The HTML report in a real browser: headless Chromium renders it with its plots and no script error."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from browser import find_chromium, load, screenshot
from report_events import T0, Incidents, build, degenerate_logs

from analyzers.config.models import (
    Config,
    DriftConfig,
    FairnessConfig,
    ModelConfig,
    OpsConfig,
    PerformanceConfig,
    ReferenceConfig,
)
from analyzers.report import write_report
from analyzers.report.charts import CUR_COLOR
from analyzers.store import LocalStore

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="headless Chromium not found (chromium or chromium-browser on PATH); .ci/run installs Debian's chromium",
    ),
]
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    build(root / "logs", days=3, per_day=400, last_day=Incidents(0.5, 0.1, "south", slow=True))
    model = ModelConfig(
        drift=DriftConfig(window=DAY, reference=ReferenceConfig(start=T0, end=T0 + DAY), min_rows=50),
        fairness=FairnessConfig(window=DAY, min_group_size=50, min_rows=50),
        performance=PerformanceConfig(window=DAY, min_labels=30),
        ops=OpsConfig(window=DAY, min_rows=50),
    )
    with LocalStore(root / "logs", root / "state") as store:
        return write_report(
            store, "fraud", root / "fraud.html", config=Config(models={"fraud": model}), at=T0 + 3 * DAY
        )


@pytest.fixture(scope="module")
def degenerate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report over groups with rates of 0 and 1 and a one-row group (see test_report_charts)."""
    root = tmp_path_factory.mktemp("degenerate")
    degenerate_logs(root / "logs")
    model = ModelConfig(
        ingest_delay="0s",
        fairness=FairnessConfig(window="1d", min_group_size=1, min_rows=1, groups=["segment"]),
        ops=OpsConfig(window="1d", min_rows=1),
    )
    with LocalStore(root / "logs", root / "state") as store:
        return write_report(store, "m", root / "m.html", config=Config(models={"m": model}), at=T0 + DAY)


def _rendered(path: Path, minimum: int) -> None:
    """Chromium ran the page's scripts, drew every plot and reported no error."""
    assert CHROMIUM is not None
    page = load(CHROMIUM, path)
    body = re.search(r"<body([^>]*)>", page.dom)
    assert body, page.dom[:500]
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    expected = path.read_text(encoding="utf-8").count('<svg class="plot"')
    assert expected >= minimum
    assert attributes["data-rendered"] == "1"
    assert attributes["data-errors"] == "0"
    assert int(attributes["data-plots"]) == expected
    problems = [m for m in page.console if re.search(r"Uncaught|Refused|error", m, flags=re.I)]
    assert problems == []


def test_chromium_renders_every_plot_without_script_errors(report: Path) -> None:
    _rendered(report, 14)


def test_chromium_renders_a_report_over_degenerate_groups(degenerate: Path) -> None:
    assert "could not be drawn" not in degenerate.read_text(encoding="utf-8")
    _rendered(degenerate, 5)


def test_screenshot_shows_the_plots(report: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    png = screenshot(CHROMIUM, report, tmp_path / "report.png")
    image = matplotlib.image.imread(png)[..., :3]
    assert image.shape[:2] == (2400, 1200)
    assert image.std() > 0.05
    colour = np.array([int(CUR_COLOR[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    near = np.all(np.abs(image - colour) < 0.04, axis=-1)
    assert near.sum() > 500, "the current-window colour of the distribution plots is not on screen"
