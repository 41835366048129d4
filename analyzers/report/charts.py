"""The report's plots: matplotlib (Agg) figures rendered to inline SVG strings.

Text stays text in the SVG (small files, selectable labels), math parsing is off (``$`` in a feature
name is just a dollar), and element ids are renamed per figure so that many figures share one page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from analyzers.findings import DriftMetrics, EstimationMetrics, Finding, MultivariateDrift
from analyzers.findings.fairness import AttributeResult
from analyzers.report.data import Distribution, OpsSeries
from analyzers.report.trends import DriftTrend, EstimationTrend, FairnessTrend, OpsTrend, PerformanceTrend
from analyzers.stats.drift import ColumnDrift

REF_COLOR = "#4c78a8"
CUR_COLOR = "#f58518"
ALERT_COLOR = "#d62728"
LINE_COLOR = "#555555"
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#9d755d", "#eeca3b")
WIDTH = 7.5  # inches; the page scales the SVG to its column
SMALL_WIDTH = 5.2  # distribution plots, two to a row
MAX_GROUPED_VALUES = 12  # an integer column with at most this many values gets side-by-side bars
MAX_LABEL = 28  # characters of a category or group name shown on an axis (the tables show them whole)
MAX_GROUPS = 15  # groups per attribute drawn (the largest); the table lists them all
MAX_HISTORY_LINES = 6  # features whose drift scores are drawn over time
MAX_TREND_ATTRIBUTES = 4  # group attributes whose parity gaps are drawn over time
FIRED_COLOR = "#f4b6b6"  # the buckets where a job alerted
FAIRNESS_RATES = (
    ("selection_rate", "selection rate"),
    ("accuracy", "accuracy"),
    ("tpr", "TPR"),
    ("fpr", "FPR"),
    ("precision", "precision"),
)
LAYOUT = "constrained"
_STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
}
_ID = re.compile(r'\sid="([^"]+)"')
_REF = re.compile(r'(url\(#|xlink:href="#|href="#)([^)"]+)')
_GEOMETRY = re.compile(r'(\s(?:d|x|y|x1|x2|y1|y2|width|height|transform|points)=")([^"]*)"')
_DECIMALS = re.compile(r"(\d\.\d{2})\d+")  # a hundredth of a point is finer than any screen shows


def short(text: Any, limit: int = MAX_LABEL) -> str:
    """A label cut to ``limit`` characters with an ellipsis (for axes; tables show the full text)."""
    value = str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def to_svg(fig: Figure, key: str, title: str) -> str:
    """The figure as an inline ``<svg>`` element: no XML prolog, no document-wide style, ids unique to ``key``."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": key}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r"<style[^>]*>.*?</style>", "", svg, flags=re.S)
    svg = re.sub(r'\s(xmlns(:xlink)?|version)="[^"]*"', "", svg)
    referenced = {m.group(2) for m in _REF.finditer(svg)}
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", key)
    svg = _ID.sub(lambda m: f' id="{prefix}-{m.group(1)}"' if m.group(1) in referenced else "", svg)
    svg = _REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)
    svg = _GEOMETRY.sub(lambda m: m.group(1) + _DECIMALS.sub(r"\1", m.group(2)) + '"', svg)
    svg = re.sub(r"\s*\n\s*", " ", svg)
    label = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return svg.replace("<svg ", f'<svg class="plot" role="img" aria-label="{label}" ', 1)


def _figure(
    rows: int = 1, cols: int = 1, height: float = 2.8, sharex: bool = False, width: float = WIDTH
) -> tuple[Figure, Any]:
    with matplotlib.rc_context(_STYLE):
        fig, axes = plt.subplots(rows, cols, figsize=(width, height), sharex=sharex, squeeze=False, layout=LAYOUT)
    return fig, axes


def _styled(draw: Any) -> Any:
    """Run a drawing function under the report's matplotlib style."""

    def wrapper(*args: Any, **kwargs: Any) -> str:
        before = set(plt.get_fignums())
        try:
            with matplotlib.rc_context(_STYLE):
                return draw(*args, **kwargs)
        except Exception:
            for number in set(plt.get_fignums()) - before:  # a failed drawing leaves no open figure
                plt.close(number)
            raise

    wrapper.__doc__ = draw.__doc__
    wrapper.__name__ = draw.__name__
    return wrapper


def _time_axis(ax: Any) -> None:
    """Dates on the x axis, with concise ticks."""
    ax.xaxis_date()
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _legend_outside(ax: Any, **kwargs: Any) -> None:
    """The axes' legend to the right of it, where it cannot cover a bar, a point or an error bar."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def _line(ax: Any, y: float, label: str, color: str = ALERT_COLOR) -> None:
    """A dashed horizontal threshold line with its label written on it, at the right end of the axes."""
    ax.axhline(y, color=color, linestyle="--", linewidth=1)
    ax.annotate(
        label,
        xy=(1.0, y),
        xycoords=ax.get_yaxis_transform(),
        xytext=(-3, 2),
        textcoords="offset points",
        ha="right",
        va="bottom",
        color=color,
        fontsize=8,
    )


def _centres(starts: Sequence[datetime], bucket: timedelta) -> np.ndarray:
    """Matplotlib date numbers of the buckets' middles."""
    return np.asarray(mdates.date2num([s + bucket / 2 for s in starts]))


def _shade(ax: Any, starts: Sequence[datetime], bucket: timedelta, fired: Sequence[bool] | None, label: str) -> None:
    """Shade the buckets where the job alerted (one legend entry for all of them)."""
    width = bucket.total_seconds() / 86400
    shown = False
    for start, hit in zip(mdates.date2num(list(starts)), fired or [], strict=False):
        if hit:
            ax.axvspan(start, start + width, color=FIRED_COLOR, alpha=0.6, lw=0, label=None if shown else label)
            shown = True


def _num(value: Any) -> float:
    """A number for plotting; ``None`` and non-numbers become NaN (a gap in a line)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return float("nan")
    return float(value)


# ---- drift ---------------------------------------------------------------------------------------
@_styled
def distribution(dist: Distribution, feature: ColumnDrift | None, key: str) -> str:
    """Reference and current distributions of one column overlaid, titled with the test and its verdict."""
    drifted = feature is not None and feature.drifted
    verdict = "DRIFTED" if drifted else "no drift"
    method = (feature.effect_size_method or feature.method) if feature is not None else None
    effect = _num(feature.effect_size if feature is not None else None)
    chance = _num(feature.effect_size_noise if feature is not None else None)
    p_adj = _num(feature.p_value_adjusted if feature is not None else None)
    title = f"{short(dist.name, 32)}: {verdict}\n{method} {effect:.3g} (noise {chance:.2g}), adjusted p {p_adj:.2g}"
    edges = np.asarray(dist.edges or [])
    if dist.kind == "numeric" and dist.discrete and len(edges) - 1 <= MAX_GROUPED_VALUES:
        fig, axes = _figure(height=2.6, width=SMALL_WIDTH)  # one bin per integer value: grouped bars
        ax = axes[0][0]
        centres = edges[:-1] + 0.5
        ax.bar(centres - 0.2, dist.ref, width=0.4, color=REF_COLOR, label="reference")
        ax.bar(centres + 0.2, dist.cur, width=0.4, color=CUR_COLOR, label="current")
        ax.set_xticks(centres, [f"{c:g}" for c in centres] if len(centres) <= 12 else None)
        ax.set_xlabel(short(dist.name, 60))
        ax.set_ylabel("share of rows")
    elif dist.kind == "numeric" and dist.edges:
        fig, axes = _figure(height=2.6, width=SMALL_WIDTH)
        ax = axes[0][0]
        widths = np.diff(edges)
        ax.bar(edges[:-1], dist.ref, width=widths, align="edge", color=REF_COLOR, alpha=0.45, label="reference")
        ax.bar(edges[:-1], dist.cur, width=widths, align="edge", color=CUR_COLOR, alpha=0.45, label="current")
        ax.stairs(dist.ref, edges, color=REF_COLOR, linewidth=1.2)
        ax.stairs(dist.cur, edges, color=CUR_COLOR, linewidth=1.2)
        ax.set_xlabel(short(dist.name, 60) + " (tails folded into the end bins)")
        ax.set_ylabel("share of rows")
    else:
        labels = [short(c) for c in dist.categories or []]
        fig, axes = _figure(height=max(2.0, 0.3 * len(labels) + 1.0), width=SMALL_WIDTH)
        ax = axes[0][0]
        y = np.arange(len(labels))
        ax.barh(y - 0.2, dist.ref, height=0.4, color=REF_COLOR, label="reference")
        ax.barh(y + 0.2, dist.cur, height=0.4, color=CUR_COLOR, label="current")
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlabel("share of rows")
        ax.grid(axis="y", visible=False)
    ax.set_title(title, color=ALERT_COLOR if drifted else "black", loc="left")
    fig.legend(
        loc="outside lower center", ncols=2, title=f"n ref {dist.n_ref:,.0f}, cur {dist.n_cur:,.0f}", title_fontsize=8
    )
    return to_svg(fig, key, f"distribution of {dist.name}")


@_styled
def drift_trend(
    trend: DriftTrend, starts: Sequence[datetime], bucket: timedelta, fired: Sequence[bool] | None, key: str
) -> str:
    """Per bucket: how many columns drifted (the job's rule), and the largest effects over their thresholds."""
    x = _centres(starts, bucket)
    ratios = {name: np.array([_num(v) for v in values]) for name, values in trend.ratios.items()}
    fig, axes = _figure(2, 1, height=4.8, sharex=True)
    top, bottom = axes[0][0], axes[1][0]
    _shade(top, starts, bucket, fired, "drift alert")
    n_drifted = trend.n_drifted or [0] * len(x)
    top.bar(x, n_drifted, width=bucket.total_seconds() / 86400 * 0.8, color=ALERT_COLOR, label="columns drifted")
    top.set_ylim(0, max(1, len(ratios)) + 0.5)
    top.set_ylabel(f"of {len(ratios)} columns")
    top.set_title("Drift per bucket: columns drifted (significant and beyond their threshold)", loc="left")
    _legend_outside(top)
    ranked = sorted(ratios, key=lambda n: -(np.nanmax(ratios[n]) if np.any(np.isfinite(ratios[n])) else 0.0))
    _shade(bottom, starts, bucket, fired, "drift alert")
    for color, name in zip(PALETTE, ranked[:MAX_HISTORY_LINES], strict=False):
        label = f"{short(name, 22)} ({trend.methods.get(name, '')})"
        bottom.plot(x, ratios[name], marker="o", markersize=3, color=color, label=label)
        hit = np.asarray(trend.drifted.get(name, []), dtype=bool)
        if hit.any():
            bottom.plot(x[hit], ratios[name][hit], "o", markersize=7, markerfacecolor="none", color=ALERT_COLOR)
    _line(bottom, 1.0, "threshold")
    bottom.set_ylim(bottom=0)
    bottom.set_ylabel("effect beyond noise ÷ threshold")
    bottom.set_xlabel("time (UTC); circled: drifted")
    _legend_outside(bottom)
    _time_axis(bottom)
    return to_svg(fig, key, "drift over time")


@_styled
def multivariate_history(history: Sequence[Finding], key: str) -> str:
    """The multivariate drift statistic of each drift finding (by window end) against its threshold."""
    points: list[tuple[datetime, MultivariateDrift]] = []
    for finding in history:
        metrics = finding.metrics_as(DriftMetrics)
        if metrics is not None and metrics.multivariate is not None:
            points.append((finding.window.end, metrics.multivariate))
    times = mdates.date2num([t for t, _ in points])
    fig, axes = _figure(1, 1, height=2.8)
    ax = axes[0][0]
    ax.plot(times, [_num(j.statistic) for _, j in points], marker="o", markersize=3, color=REF_COLOR, label="statistic")
    ax.plot(
        times, [_num(j.threshold) for _, j in points], color=ALERT_COLOR, linestyle="--", linewidth=1, label="threshold"
    )
    if any(j.lower_threshold is not None for _, j in points):
        ax.plot(times, [_num(j.lower_threshold) for _, j in points], color=ALERT_COLOR, linestyle="--", linewidth=1)
    for t, (_, j) in zip(times, points, strict=True):
        if j.drifted:
            ax.axvline(t, color=FIRED_COLOR, alpha=0.8, linewidth=4)
    what = {"pca": "mean PCA reconstruction error", "classifier": "domain classifier ROC AUC"}
    methods = sorted({j.method for _, j in points})
    ax.set_ylabel(" / ".join(what.get(m, m) for m in methods), fontsize=8)
    ax.set_title("Features together, by window end (shaded: drifted)", loc="left")
    ax.set_xlabel("window end (UTC)")
    _legend_outside(ax)
    _time_axis(ax)
    return to_svg(fig, key, "multivariate drift over time")


# ---- fairness ------------------------------------------------------------------------------------
@_styled
def fairness_groups(attribute: AttributeResult, key: str) -> str:
    """Per group of one attribute, each rate with its confidence interval (largest groups first)."""
    groups = sorted(attribute.groups, key=lambda g: -_num(g.n))[:MAX_GROUPS]
    rates = [(k, label) for k, label in FAIRNESS_RATES if any(g.rate(k).value is not None for g in groups)]
    rates = rates or list(FAIRNESS_RATES[:1])
    fig, axes = _figure(1, len(rates), height=max(2.0, 0.3 * len(groups) + 1.2))
    y = np.arange(len(groups))
    labels = [short(g.group, 18) for g in groups]
    for i, (rate, label) in enumerate(rates):
        ax = axes[0][i]
        for j, g in enumerate(groups):
            value, ci = _num(g.rate(rate).value), g.rate(rate).ci
            color = ALERT_COLOR if g.status == "alert" else REF_COLOR
            if g.status == "insufficient_data":
                color = "#aaaaaa"
            low, high = (_num(ci[0]), _num(ci[1])) if ci and len(ci) == 2 else (float("nan"), float("nan"))
            if np.isfinite(value) and np.isfinite(low) and np.isfinite(high):
                # an interval computed apart may end a rounding error inside its estimate (a rate of 1.0
                # whose upper bound is 0.9999999999999999): the error bar is never negative
                err = [[max(0.0, value - low)], [max(0.0, high - value)]]
                ax.errorbar(value, j, xerr=err, fmt="o", color=color, markersize=4, capsize=2)
            elif np.isfinite(value):
                ax.plot(value, j, "o", color=color, markersize=4)
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(len(groups) - 0.5, -0.5)
        ax.set_yticks(y, labels if i == 0 else [""] * len(groups))
        ax.set_title(label, fontsize=9)
        ax.grid(axis="y", visible=False)
    axes[0][0].set_ylabel(short(attribute.name, 30))
    fig.suptitle(
        f"{short(attribute.name, 40)}: rates per group with confidence intervals"
        " (red: served worse; grey: too small to judge)",
        fontsize=10,
    )
    return to_svg(fig, key, f"fairness rates per group of {attribute.name}")


@_styled
def fairness_gaps(
    attributes: Sequence[AttributeResult],
    parity_ratio: float,
    max_difference: float,
    flagged: frozenset[str],
    key: str,
) -> str:
    """Per attribute: demographic parity and equalized-odds differences (with CIs), and the parity ratio, red
    for the attributes whose parity the job ``flagged`` (a ratio below the line without significance is not).

    A measure that could not be computed (too few groups large enough) is written ``n/a``, not drawn as 0.
    """
    names = [short(a.name, 20) for a in attributes]
    x = np.arange(len(attributes))
    fig, axes = _figure(1, 2, height=3.0)
    left, right = axes[0][0], axes[0][1]
    for offset, (spreads, label, color) in zip(
        (-0.2, 0.2),
        (
            ([a.demographic_parity_difference for a in attributes], "demographic parity diff.", REF_COLOR),
            ([a.equalized_odds_difference for a in attributes], "equalized odds diff.", CUR_COLOR),
        ),
        strict=True,
    ):
        values = np.array([_num(s.value) for s in spreads])
        shown = np.isfinite(values)
        low = np.array([_ci_err(s.ci, v, 0) for s, v in zip(spreads, values, strict=True)])
        high = np.array([_ci_err(s.ci, v, 1) for s, v in zip(spreads, values, strict=True)])
        left.bar(x[shown] + offset, values[shown], width=0.4, color=color, label=label)
        left.errorbar(
            x[shown] + offset, values[shown], yerr=[low[shown], high[shown]], fmt="none", ecolor="black", capsize=3
        )
        for position in x[~shown]:
            left.text(position + offset, 0.005, "n/a", ha="center", va="bottom", fontsize=7, color=LINE_COLOR)
    _line(left, max_difference, f"limit {max_difference:g}")
    left.set_ylim(bottom=0)
    left.set_xticks(x, names)
    left.set_ylabel("difference between groups")
    left.set_title("Parity differences (CI)", loc="left")
    ratios = np.array([_num(a.demographic_parity_ratio.value) for a in attributes])
    shown = np.isfinite(ratios)
    colors = [ALERT_COLOR if a.name in flagged else REF_COLOR for a, ok in zip(attributes, shown, strict=True) if ok]
    right.bar(x[shown], ratios[shown], width=0.5, color=colors)
    for position in x[~shown]:
        right.text(position, 0.01, "n/a", ha="center", va="bottom", fontsize=7, color=LINE_COLOR)
    _line(right, parity_ratio, f"four-fifths ({parity_ratio:g})")
    right.set_ylim(0, 1.1)
    right.set_xticks(x, names)
    if len(names) > 3:  # long or many attribute names: slanted so they do not overlap
        for ax in (left, right):
            ax.tick_params(axis="x", labelrotation=30)
    right.set_ylabel("lowest ÷ highest selection rate")
    right.set_title("Demographic parity ratio", loc="left")
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=2)
    return to_svg(fig, key, "fairness parity gaps")


def _ci_err(ci: Any, value: float, side: int) -> float:
    """Distance from the value to one end of its interval (0 when there is none)."""
    if not ci or ci[side] is None or not np.isfinite(value):
        return 0.0
    return abs(value - float(ci[side]))


# ---- performance ---------------------------------------------------------------------------------
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse", "mape", "r2")


@_styled
def performance_trend(
    trend: PerformanceTrend,
    starts: Sequence[datetime],
    bucket: timedelta,
    fired: Sequence[bool] | None,
    references: dict[str, float],
    key: str,
) -> str:
    """The task's metrics per bucket (dotted: their reference values) above each bucket's label coverage, over
    the whole span even where no bucket has enough labels (as the estimation trend beside it)."""
    x = _centres(starts, bucket)
    fig, axes = _figure(2, 1, height=4.8, sharex=True)
    top, bottom = axes[0][0], axes[1][0]
    _shade(top, starts, bucket, fired, "performance alert")
    for color, (name, values) in zip(PALETTE, trend.metrics.items(), strict=False):
        series = np.array([_num(v) for v in values])
        if not np.any(np.isfinite(series)):
            continue
        top.plot(x, series, marker="o", markersize=3, color=color, label=name)
        reference = references.get(name)
        if reference is not None and np.isfinite(reference):
            top.axhline(reference, color=color, linestyle=":", linewidth=1, label=f"{name} reference")
    top.set_ylabel("metric value")
    top.set_title(f"Performance per bucket (points need {trend.min_labels} labelled predictions)", loc="left")
    _legend_outside(top)
    n, labeled = np.asarray(trend.n, dtype=float), np.asarray(trend.n_labeled, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        coverage = np.where(n > 0, labeled / n, np.nan)
    bottom.bar(x, coverage, width=bucket.total_seconds() / 86400 * 0.8, color=LINE_COLOR, alpha=0.5, label="labelled")
    bottom.set_ylim(0, 1.05)
    bottom.set_xlim(mdates.date2num(starts[0]), mdates.date2num(starts[-1] + bucket))
    bottom.set_ylabel("label coverage")
    bottom.set_xlabel("time (UTC)")
    _legend_outside(bottom)
    _time_axis(bottom)
    return to_svg(fig, key, "performance over time")


@_styled
def fairness_trend(
    trend: FairnessTrend, starts: Sequence[datetime], bucket: timedelta, fired: Sequence[bool] | None, key: str
) -> str:
    """Per attribute (a row each): parity differences per bucket against the limit, and the parity ratio."""
    names = list(trend.attributes)[:MAX_TREND_ATTRIBUTES]
    x = _centres(starts, bucket)
    fig, axes = _figure(len(names), 2, height=1.9 * len(names) + 1.0, sharex=True)
    for row, name in enumerate(names):
        left, right = axes[row][0], axes[row][1]
        series = trend.attributes[name]
        for ax in (left, right):
            _shade(ax, starts, bucket, fired, "fairness alert")
        for color, (measure, label) in zip(
            (REF_COLOR, CUR_COLOR),
            (("demographic_parity_difference", "parity diff."), ("equalized_odds_difference", "equalized odds diff.")),
            strict=True,
        ):
            left.plot(x, [_num(v) for v in series[measure]], marker="o", markersize=3, color=color, label=label)
        _line(left, trend.max_difference, f"limit {trend.max_difference:g}")
        left.set_ylim(bottom=0)
        left.set_ylabel(short(name, 18))
        right.plot(x, [_num(v) for v in series["demographic_parity_ratio"]], marker="o", markersize=3, color=REF_COLOR)
        _line(right, trend.parity_ratio, f"four-fifths ({trend.parity_ratio:g})")
        right.set_ylim(0, 1.1)
        if row == 0:
            left.set_title("Parity differences", loc="left")
            right.set_title("Parity ratio (lowest ÷ highest)", loc="left")
    for ax in axes[-1]:
        _time_axis(ax)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    return to_svg(fig, key, "fairness over time")


@_styled
def ops_trend(
    trend: OpsTrend, starts: Sequence[datetime], bucket: timedelta, fired: Sequence[bool] | None, key: str
) -> str:
    """Per bucket: events (failures in red), the error rate against its limit, latency percentiles."""
    x = np.asarray(mdates.date2num(list(starts)))
    width = bucket.total_seconds() / 86400
    fig, axes = _figure(3, 1, height=6.0, sharex=True)
    volume, errors, latency = axes[0][0], axes[1][0], axes[2][0]
    counts, failures = np.asarray(trend.counts), np.asarray(trend.failures)
    for ax in (volume, errors, latency):
        _shade(ax, starts, bucket, fired, "operations alert")
    volume.bar(x, counts - failures, width=width * 0.9, align="edge", color=REF_COLOR, label="succeeded")
    volume.bar(
        x, failures, bottom=counts - failures, width=width * 0.9, align="edge", color=ALERT_COLOR, label="failed"
    )
    volume.set_ylim(0, max(1.0, float(counts.max(initial=0.0))) * 1.1)
    volume.set_ylabel("events")
    volume.set_title("Operations per bucket", loc="left")
    _legend_outside(volume)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(counts > 0, failures / counts, np.nan)
    errors.plot(x + width / 2, rate, color=ALERT_COLOR, marker="o", markersize=3, linewidth=1)
    _line(errors, trend.max_error_rate, f"limit {trend.max_error_rate:g}", LINE_COLOR)
    errors.set_ylim(bottom=0)
    errors.set_ylabel("error rate")
    for color, (name, values) in zip(PALETTE, trend.latency.items(), strict=False):
        latency.plot(x + width / 2, [_num(v) for v in values], color=color, marker="o", markersize=3, label=name)
    for name, limit in trend.latency_limits.items():
        _line(latency, limit, f"{name} limit {limit:g} ms")
    latency.set_ylabel("latency (ms)")
    latency.set_xlabel("time (UTC)")
    _legend_outside(latency)
    _time_axis(latency)
    return to_svg(fig, key, "operations over time")


# ---- estimation ----------------------------------------------------------------------------------
@_styled
def estimation_trend(
    trend: EstimationTrend,
    starts: Sequence[datetime],
    bucket: timedelta,
    fired: Sequence[bool] | None,
    key: str,
    title: str = "Estimated performance per bucket",
    shaded: str = "estimation alert",
) -> str:
    """Each bucket's estimates with their intervals (x: realized where labels came; dotted: the reference), above
    each bucket's label coverage, over the whole span even where no bucket could be estimated; ``shaded`` names
    the buckets ``fired`` marks."""
    x = _centres(starts, bucket)
    payloads = [f.metrics_as(EstimationMetrics) for f in trend.findings]
    names = list(dict.fromkeys(e.name for m in payloads if m is not None for e in m.estimates))
    fig, axes = _figure(2, 1, height=4.8, sharex=True)
    top, bottom = axes[0][0], axes[1][0]
    _shade(top, starts, bucket, fired, shaded)
    for color, name in zip(PALETTE, names, strict=False):
        entries = [m.estimate(name) if m is not None else None for m in payloads]

        def series(field: str, entries: list[Any] = entries) -> np.ndarray:
            return np.array([_num(getattr(e, field)) if e is not None else np.nan for e in entries])

        top.plot(x, series("estimated"), marker="o", markersize=3, color=color, label=f"{name} (estimated)")
        top.fill_between(x, series("lower"), series("upper"), color=color, alpha=0.15, linewidth=0)
        realized = series("realized")
        if np.any(np.isfinite(realized)):
            top.plot(x, realized, "x", color=color, markersize=5, label=f"{name} (realized)")
        reference = series("reference")
        if np.any(np.isfinite(reference)):
            top.axhline(float(np.nanmedian(reference)), color=color, linestyle=":", linewidth=1)
    top.set_ylabel("metric")
    top.set_title(f"{title} (band: interval)", loc="left")
    _legend_outside(top)
    coverage = np.array([_num(m.label_coverage) if m is not None else np.nan for m in payloads])
    bottom.bar(x, coverage, width=bucket.total_seconds() / 86400 * 0.8, color=LINE_COLOR, alpha=0.5, label="labelled")
    bottom.set_ylim(0, 1.05)
    bottom.set_xlim(mdates.date2num(starts[0]), mdates.date2num(starts[-1] + bucket))
    bottom.set_ylabel("label coverage")
    bottom.set_xlabel("time (UTC)")
    _legend_outside(bottom)
    _time_axis(bottom)
    return to_svg(fig, key, "estimated performance over time")


# ---- operations ----------------------------------------------------------------------------------
@_styled
def operations(ops: OpsSeries, max_error_rate: float | None, latency_limits: dict[str, float], key: str) -> str:
    """Volume per bucket (failures in red), the error rate per bucket, and latency percentiles."""
    fig, axes = _figure(3, 1, height=6.4, sharex=True)
    volume, errors, latency = axes[0][0], axes[1][0], axes[2][0]
    starts = mdates.date2num(ops.starts)
    width = ops.bucket.total_seconds() / 86400
    counts, failures = np.asarray(ops.counts), np.asarray(ops.failures)
    volume.bar(starts, counts - failures, width=width, align="edge", color=REF_COLOR, label="succeeded")
    volume.bar(starts, failures, bottom=counts - failures, width=width, align="edge", color=ALERT_COLOR, label="failed")
    volume.set_ylabel(f"events per {_bucket_name(ops)}")
    volume.set_title("Volume, errors and latency", loc="left")
    _legend_outside(volume)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(counts > 0, failures / counts, np.nan)
    errors.plot(starts + width / 2, rate, color=ALERT_COLOR, marker="o", markersize=2, linewidth=1)
    if max_error_rate is not None:
        _line(errors, max_error_rate, f"limit {max_error_rate:g}", LINE_COLOR)
    errors.set_ylabel("error rate")
    errors.set_ylim(bottom=0)
    lat_starts = mdates.date2num(ops.latency_starts) + ops.latency_bucket.total_seconds() / 86400 / 2
    for color, (name, values) in zip(PALETTE, ops.latency.items(), strict=False):
        latency.plot(lat_starts, [_num(v) for v in values], color=color, marker="o", markersize=2, label=name)
    for name, limit in latency_limits.items():
        _line(latency, limit, f"{name} limit {limit:g} ms")
    latency.set_ylabel("latency (ms)")
    latency.set_xlabel("time (UTC)")
    _legend_outside(latency)
    _time_axis(latency)
    return to_svg(fig, key, "operations")


def _bucket_name(ops: OpsSeries) -> str:
    minutes = ops.bucket.total_seconds() / 60
    return f"{minutes:g} min" if minutes < 60 else f"{minutes / 60:g} h"
