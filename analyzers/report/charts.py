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

from analyzers.findings import Finding
from analyzers.report.data import Distribution, OpsSeries

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
FAIRNESS_RATES = (
    ("selection_rate", "selection rate"),
    ("accuracy", "accuracy"),
    ("tpr", "TPR"),
    ("fpr", "FPR"),
    ("precision", "precision"),
)
LAYOUT = "constrained"
_STYLE = {
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


def _time_axis(ax: Any, times: Sequence[datetime] | None = None) -> None:
    """Concise date ticks; a single time gets a day either side instead of an arbitrary span."""
    if times is not None and len(set(times)) == 1:
        ax.set_xlim(times[0] - timedelta(days=1), times[0] + timedelta(days=1))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _num(value: Any) -> float:
    """A number for plotting; ``None`` and non-numbers become NaN (a gap in a line)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return float("nan")
    return float(value)


# ---- drift ---------------------------------------------------------------------------------------
@_styled
def distribution(dist: Distribution, feature: dict[str, Any], key: str) -> str:
    """Reference and current distributions of one column overlaid, titled with the test and its verdict."""
    verdict = "DRIFTED" if feature.get("drifted") else "no drift"
    method = feature.get("effect_size_method") or feature.get("method")
    effect = _num(feature.get("effect_size"))
    p_adj = _num(feature.get("p_value_adjusted"))
    title = f"{short(dist.name, 32)}: {verdict}\n{method} {effect:.3g}, adjusted p {p_adj:.2g}"
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
    ax.set_title(title, color=ALERT_COLOR if feature.get("drifted") else "black", loc="left")
    ax.legend(loc="best", title=f"n ref {dist.n_ref:,.0f}, cur {dist.n_cur:,.0f}", title_fontsize=8)
    return to_svg(fig, key, f"distribution of {dist.name}")


@_styled
def drift_history(history: Sequence[Finding], key: str) -> str:
    """Share of drifted columns over time, and each most-drifting column's effect size over its threshold."""
    findings = [f for f in history if f.metrics.get("features")]
    times = [f.window.end for f in findings]
    fig, axes = _figure(2, 1, height=4.6, sharex=True)
    top, bottom = axes[0][0], axes[1][0]
    share = [_num(f.metrics.get("share_drifted")) for f in findings]
    top.plot(times, share, marker="o", markersize=3, color=REF_COLOR, label="share of columns drifted")
    limits = {_num(f.metrics.get("drift_share")) for f in findings}
    for limit in sorted(v for v in limits if np.isfinite(v)):
        top.axhline(limit, color=ALERT_COLOR, linestyle="--", linewidth=1, label=f"dataset drift at {limit:g}")
    top.set_ylim(-0.02, 1.02)
    top.set_ylabel("share drifted")
    top.set_title("Drift over time (by window end)", loc="left")
    top.legend(loc="upper left")
    series: dict[str, list[float]] = {}
    for i, f in enumerate(findings):
        for feature in f.metrics["features"]:
            effect, threshold = _num(feature.get("effect_size")), _num(feature.get("threshold"))
            value = effect / threshold if np.isfinite(threshold) and threshold > 0 else effect
            series.setdefault(str(feature.get("name")), [float("nan")] * len(findings))[i] = value
    ranked = sorted(series, key=lambda n: -np.nan_to_num(np.nanmax(series[n]) if np.any(np.isfinite(series[n])) else 0))
    for color, name in zip(PALETTE, ranked[:MAX_HISTORY_LINES], strict=False):
        bottom.plot(times, series[name], marker="o", markersize=3, color=color, label=short(name, 24))
    bottom.axhline(1.0, color=ALERT_COLOR, linestyle="--", linewidth=1, label="threshold")
    bottom.set_ylabel("effect size ÷ threshold")
    bottom.set_xlabel("window end (UTC)")
    bottom.legend(loc="upper left", ncols=2)
    _time_axis(bottom, times)
    return to_svg(fig, key, "drift over time")


@_styled
def multivariate_history(history: Sequence[Finding], key: str) -> str:
    """The multivariate drift statistic over time (by window end) against its threshold."""
    findings = [f for f in history if isinstance(f.metrics.get("multivariate"), dict)]
    times = [f.window.end for f in findings]
    joint = [f.metrics["multivariate"] for f in findings]
    methods = sorted({str(j.get("method")) for j in joint})
    fig, axes = _figure(1, 1, height=2.8)
    ax = axes[0][0]
    ax.plot(times, [_num(j.get("statistic")) for j in joint], marker="o", markersize=3, color=REF_COLOR)
    ax.plot(times, [_num(j.get("threshold")) for j in joint], color=ALERT_COLOR, linestyle="--", linewidth=1)
    if any(j.get("lower_threshold") is not None for j in joint):
        ax.plot(times, [_num(j.get("lower_threshold")) for j in joint], color=ALERT_COLOR, linestyle="--", linewidth=1)
    for t, j in zip(times, joint, strict=True):
        if j.get("drifted"):
            ax.axvline(t, color=ALERT_COLOR, alpha=0.25, linewidth=4)
    what = {"pca": "mean PCA reconstruction error", "classifier": "domain classifier ROC AUC"}
    ax.set_ylabel(" / ".join(what.get(m, m) for m in methods), fontsize=8)
    ax.set_title("Multivariate drift over time (dashed: threshold; red bands: drifted)", loc="left")
    ax.set_xlabel("window end (UTC)")
    _time_axis(ax, times)
    return to_svg(fig, key, "multivariate drift over time")


# ---- fairness ------------------------------------------------------------------------------------
@_styled
def fairness_groups(attribute: dict[str, Any], key: str) -> str:
    """Per group of one attribute, each rate with its confidence interval (largest groups first)."""
    groups = sorted(attribute.get("groups") or [], key=lambda g: -_num(g.get("n")))[:MAX_GROUPS]
    rates = [(k, label) for k, label in FAIRNESS_RATES if any(g.get(k) is not None for g in groups)]
    rates = rates or list(FAIRNESS_RATES[:1])
    fig, axes = _figure(1, len(rates), height=max(2.0, 0.3 * len(groups) + 1.2))
    y = np.arange(len(groups))
    labels = [short(g.get("group"), 18) for g in groups]
    for i, (rate, label) in enumerate(rates):
        ax = axes[0][i]
        for j, g in enumerate(groups):
            value, ci = _num(g.get(rate)), g.get(f"{rate}_ci")
            color = ALERT_COLOR if g.get("status") == "alert" else REF_COLOR
            if g.get("status") == "insufficient_data":
                color = "#aaaaaa"
            if ci and ci[0] is not None and np.isfinite(value):
                err = [[value - ci[0]], [ci[1] - value]]
                ax.errorbar(value, j, xerr=err, fmt="o", color=color, markersize=4, capsize=2)
            elif np.isfinite(value):
                ax.plot(value, j, "o", color=color, markersize=4)
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(len(groups) - 0.5, -0.5)
        ax.set_yticks(y, labels if i == 0 else [""] * len(groups))
        ax.set_title(label, fontsize=9)
        ax.grid(axis="y", visible=False)
    axes[0][0].set_ylabel(short(attribute.get("name"), 30))
    fig.suptitle(
        f"{short(attribute.get('name'), 40)}: rates per group with confidence intervals"
        " (red: served worse; grey: too small to judge)",
        fontsize=10,
    )
    return to_svg(fig, key, f"fairness rates per group of {attribute.get('name')}")


@_styled
def fairness_gaps(attributes: Sequence[dict[str, Any]], parity_ratio: float, max_difference: float, key: str) -> str:
    """Per attribute: demographic parity and equalized-odds differences (with CIs), and the parity ratio."""
    names = [short(a.get("name"), 20) for a in attributes]
    x = np.arange(len(attributes))
    fig, axes = _figure(1, 2, height=2.8)
    left, right = axes[0][0], axes[0][1]
    for offset, (field, label, color) in zip(
        (-0.2, 0.2),
        (
            ("demographic_parity_difference", "demographic parity diff.", REF_COLOR),
            ("equalized_odds_difference", "equalized odds diff.", CUR_COLOR),
        ),
        strict=True,
    ):
        values = np.array([_num(a.get(field)) for a in attributes])
        low = [_ci_err(a.get(f"{field}_ci"), v, 0) for a, v in zip(attributes, values, strict=True)]
        high = [_ci_err(a.get(f"{field}_ci"), v, 1) for a, v in zip(attributes, values, strict=True)]
        left.bar(x + offset, np.nan_to_num(values), width=0.4, color=color, label=label)
        left.errorbar(x + offset, np.nan_to_num(values), yerr=[low, high], fmt="none", ecolor="black", capsize=3)
    left.axhline(max_difference, color=ALERT_COLOR, linestyle="--", linewidth=1, label=f"limit {max_difference:g}")
    left.set_xticks(x, names)
    left.set_ylabel("difference between groups")
    left.set_title("Parity differences (95% CI)", loc="left")
    left.legend(loc="upper left")
    ratios = np.array([_num(a.get("demographic_parity_ratio")) for a in attributes])
    colors = [ALERT_COLOR if np.isfinite(r) and r < parity_ratio else REF_COLOR for r in ratios]
    right.bar(x, np.nan_to_num(ratios), width=0.5, color=colors)
    right.axhline(parity_ratio, color=ALERT_COLOR, linestyle="--", linewidth=1, label=f"four-fifths ({parity_ratio:g})")
    right.set_ylim(0, 1.05)
    right.set_xticks(x, names)
    if len(names) > 3:  # long or many attribute names: slanted so they do not overlap
        for ax in (left, right):
            ax.tick_params(axis="x", labelrotation=30)
    right.set_ylabel("lowest ÷ highest selection rate")
    right.set_title("Demographic parity ratio", loc="left")
    right.legend(loc="lower left")
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
def performance_history(history: Sequence[Finding], key: str) -> str:
    """Metrics over time (by window end) above the share of predictions whose label has arrived."""
    findings = [f for f in history if f.status in ("ok", "alert") or f.metrics.get("label_coverage") is not None]
    times = [f.window.end for f in findings]
    regression = any(f.metrics.get("task") == "regression" for f in findings)
    names = REGRESSION_METRICS if regression else CLASSIFICATION_METRICS
    fig, axes = _figure(2, 1, height=4.6, sharex=True)
    top, bottom = axes[0][0], axes[1][0]
    for color, name in zip(PALETTE, names, strict=False):
        values = [_num((f.metrics.get(name) or {}).get("value")) for f in findings]
        if any(np.isfinite(values)):
            top.plot(times, values, marker="o", markersize=3, color=color, label=name)
    alerts = [(t, f) for t, f in zip(times, findings, strict=True) if f.status == "alert"]
    for t, _f in alerts:
        top.axvline(t, color=ALERT_COLOR, alpha=0.25, linewidth=4)
    top.set_ylabel("metric value")
    top.set_title("Performance over time (red bands: alert)", loc="left")
    top.legend(loc="best", ncols=3)
    coverage = [_num(f.metrics.get("label_coverage")) for f in findings]
    bottom.plot(times, coverage, marker="o", markersize=3, color=LINE_COLOR)
    bottom.fill_between(times, np.nan_to_num(coverage), color=LINE_COLOR, alpha=0.15)
    bottom.set_ylim(0, 1.05)
    bottom.set_ylabel("label coverage")
    bottom.set_xlabel("window end (UTC)")
    _time_axis(bottom, times)
    return to_svg(fig, key, "performance over time")


# ---- estimation ----------------------------------------------------------------------------------
@_styled
def estimation_history(history: Sequence[Finding], key: str) -> str:
    """Estimated metrics with their intervals over time, realized values where labels came, and the label coverage."""
    findings = [f for f in history if f.metrics.get("metrics")]
    times = [f.window.end for f in findings]
    names = list(dict.fromkeys(e.get("name") for f in findings for e in f.metrics["metrics"]))
    fig, axes = _figure(2, 1, height=4.6, sharex=True)
    top, bottom = axes[0][0], axes[1][0]
    for color, name in zip(PALETTE, names, strict=False):
        entries: list[dict[str, Any]] = [
            next((e for e in f.metrics["metrics"] if e.get("name") == name), {}) for f in findings
        ]
        estimated = [_num(e.get("estimated")) for e in entries]
        top.plot(times, estimated, marker="o", markersize=3, color=color, label=f"{name} (estimated)")
        low, high = [_num(e.get("lower")) for e in entries], [_num(e.get("upper")) for e in entries]
        top.fill_between(times, low, high, color=color, alpha=0.15, linewidth=0)
        realized = [_num(e.get("realized")) for e in entries]
        if any(np.isfinite(realized)):
            top.plot(times, realized, "x", color=color, markersize=5)
        reference = [_num(e.get("reference")) for e in entries]
        top.plot(times, reference, color=color, linestyle=":", linewidth=1)
    for t, f in zip(times, findings, strict=True):
        if f.status == "alert":
            top.axvline(t, color=ALERT_COLOR, alpha=0.25, linewidth=4)
    top.set_ylabel("metric")
    top.set_title("Estimated performance (band: interval; x: realized; dotted: reference)", loc="left")
    top.legend(loc="best", ncols=3, fontsize=7)
    coverage = [_num(f.metrics.get("label_coverage")) for f in findings]
    bottom.plot(times, coverage, marker="o", markersize=3, color=LINE_COLOR)
    bottom.fill_between(times, np.nan_to_num(coverage), color=LINE_COLOR, alpha=0.15)
    bottom.set_ylim(0, 1.05)
    bottom.set_ylabel("label coverage")
    bottom.set_xlabel("window end (UTC)")
    _time_axis(bottom, times)
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
    volume.legend(loc="upper left")
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(counts > 0, failures / counts, np.nan)
    errors.plot(starts + width / 2, rate, color=ALERT_COLOR, marker="o", markersize=2, linewidth=1)
    if max_error_rate is not None:
        errors.axhline(max_error_rate, color=LINE_COLOR, linestyle="--", linewidth=1, label=f"limit {max_error_rate:g}")
        errors.legend(loc="upper left")
    errors.set_ylabel("error rate")
    errors.set_ylim(bottom=0)
    lat_starts = mdates.date2num(ops.latency_starts) + ops.latency_bucket.total_seconds() / 86400 / 2
    for color, (name, values) in zip(PALETTE, ops.latency.items(), strict=False):
        latency.plot(lat_starts, [_num(v) for v in values], color=color, marker="o", markersize=2, label=name)
    for name, limit in latency_limits.items():
        latency.axhline(limit, color=ALERT_COLOR, linestyle="--", linewidth=1, label=f"{name} limit {limit:g} ms")
    latency.set_ylabel("latency (ms)")
    latency.set_xlabel("time (UTC)")
    latency.legend(loc="upper left", ncols=4)
    volume.xaxis_date()
    _time_axis(latency)
    return to_svg(fig, key, "operations")


def _bucket_name(ops: OpsSeries) -> str:
    minutes = ops.bucket.total_seconds() / 60
    return f"{minutes:g} min" if minutes < 60 else f"{minutes / 60:g} h"
