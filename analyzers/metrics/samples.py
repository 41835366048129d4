"""What each stored document says as metric samples: findings, heartbeats, alert state and the outbox.

Pure functions from documents to :class:`Sample` lists (the collector reads the store and groups them into
families).  A number a finding does not have (``None``, NaN) gives no sample rather than a made-up 0.

State documents are read defensively, field by field, since other parts may add fields to them:

- ``heartbeat:<model>:<job>``: ``model``, ``job``, ``ran_at``, ``duration_s``, ``status``, ``window_end``;
- ``alert:<model>:<job>:<subject>``: ``model``, ``job``, ``status`` (``firing`` counts) and ``alert.severity``;
- ``outbox:<id>``: ``done_at`` (an entry every channel took, kept a while: not waiting), ``created_at``, and
  per channel under ``deliveries``: ``status`` (``sent`` or pending) and ``attempts`` (failed deliveries so far);
  an entry without ``deliveries`` counts its top-level ``attempts``;
- ``tally:delivery:<channel>``: ``channel``, ``since``, ``delivered``, ``failed`` (:mod:`analyzers.alerts.tally`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analyzers.alerts.tally import DeliveryTally
from analyzers.findings import (
    STATUSES,
    CanaryMetrics,
    DriftMetrics,
    EstimationMetrics,
    FairnessMetrics,
    Finding,
    Metrics,
    OpsMetrics,
    PerformanceMetrics,
    VersionSplit,
)
from analyzers.findings.base import SEVERITIES
from analyzers.findings.canary import TrafficShare
from analyzers.metrics.catalogue import PERFORMANCE_FAMILIES, VERSIONED_FAMILIES, version_family
from analyzers.stats.canary import VERDICTS
from analyzers.stats.drift import ColumnDrift
from analyzers.timeutil import parse_time


@dataclass(frozen=True)
class Sample:
    """One series' value: a family name, its labels and a number (a counter's also when it started counting)."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float
    created: float | None = None


@dataclass(frozen=True)
class Limits:
    """How many drift columns and fairness groups each model exports at most, and how many versions each job."""

    max_columns: int = 50
    max_groups: int = 50
    max_versions: int = 5


def sample(name: str, value: Any, **labels: Any) -> list[Sample]:
    """A one-sample list, or none when ``value`` is not a finite number."""
    if value is None or isinstance(value, str):
        return []
    number = float(value)
    if not math.isfinite(number):
        return []
    return [Sample(name, tuple((k, str(v)) for k, v in labels.items()), number)]


def _enum(name: str, label: str, current: str | None, values: Iterable[str], **labels: Any) -> list[Sample]:
    """One series per possible value under ``label``: 1 for ``current``, 0 for the others."""
    out: list[Sample] = []
    for value in values:
        out += sample(name, 1.0 if value == current else 0.0, **labels, **{label: value})
    return out


def _timestamp(value: Any) -> float | None:
    if not value:
        return None
    try:
        return parse_time(value).timestamp()
    except (TypeError, ValueError):
        return None


# ---- findings ---------------------------------------------------------------------------------------
def finding_samples(finding: Finding, limits: Limits) -> list[Sample]:
    """The latest finding of a model and job: its status, window end, signal count, its job's numbers, and each
    version's own (``by_version``, at most ``limits.max_versions``, most traffic first)."""
    model, job = finding.model, finding.job
    out = _enum("predwatch_finding_status", "status", finding.status, STATUSES, model=model, job=job)
    out += sample(
        "predwatch_finding_window_end_timestamp_seconds", finding.window.end.timestamp(), model=model, job=job
    )
    out += sample("predwatch_finding_signals", len(finding.signals), model=model, job=job)
    if finding.metrics is not None:
        out += _payload(model, finding.metrics, limits)
    if finding.by_version is not None:
        out += _versions(model, job, finding.by_version, limits)
    return out


def _payload(model: str, metrics: Metrics, limits: Limits) -> list[Sample]:
    """A job's numbers by the kind of its payload."""
    if isinstance(metrics, DriftMetrics):
        return _drift(model, metrics, limits)
    if isinstance(metrics, FairnessMetrics):
        return _fairness(model, metrics, limits)
    if isinstance(metrics, PerformanceMetrics):
        return _performance(model, metrics)
    if isinstance(metrics, OpsMetrics):
        return _ops(model, metrics)
    if isinstance(metrics, CanaryMetrics):
        return _canary(model, metrics, limits)
    if isinstance(metrics, EstimationMetrics):
        return _estimation(model, metrics)
    return []


_PER_VERSION = {name: version_family(name) for name in VERSIONED_FAMILIES}


def _versions(model: str, job: str, split: VersionSplit, limits: Limits) -> list[Sample]:
    """Each exported version's status, events, share and headline numbers, labelled with its version."""
    out: list[Sample] = []
    for v in split.versions[: limits.max_versions]:
        labels = {"model": model, "job": job, "version": v.version}
        out += _enum("predwatch_version_status", "status", v.status, STATUSES, **labels)
        out += sample("predwatch_version_events", v.events, **labels)
        out += sample("predwatch_version_traffic_ratio", v.share, **labels)
        for s in _payload(model, v.metrics, limits) if v.metrics is not None else []:
            if s.name in _PER_VERSION:
                out.append(Sample(_PER_VERSION[s.name], (*s.labels, ("version", v.version)), s.value))
    return out


def versions_left_out(findings: Sequence[Finding], limits: Limits) -> list[Sample]:
    """Per model, the versions over ``limits.max_versions`` whose series were not exported, over its jobs' latest
    findings: a ``by_version`` job's versions (and those it did not analyse at all) and a canary's traffic."""
    left: Counter[str] = Counter()
    for finding in findings:
        if finding.by_version is not None:
            split = finding.by_version
            left[finding.model] += max(len(split.versions) - limits.max_versions, 0) + split.left_out
        if (canary := finding.metrics_as(CanaryMetrics)) is not None:
            left[finding.model] += max(len(canary.traffic) - limits.max_versions, 0)
    out: list[Sample] = []
    for model, count in sorted(left.items()):
        out += sample("predwatch_metrics_series_left_out", count, model=model, kind="version")
    return out


def _drift_rank(column: ColumnDrift) -> tuple[bool, float]:
    """Drifted columns first, then by effect size over its threshold."""
    effect, threshold = column.effect_size, column.threshold
    relative = effect / threshold if math.isfinite(effect) and math.isfinite(threshold) and threshold > 0 else 0.0
    return (not column.drifted, -relative if math.isfinite(relative) else 0.0)


def _drift(model: str, m: DriftMetrics, limits: Limits) -> list[Sample]:
    if m.reason is not None:
        return []
    out = sample("predwatch_drift_columns_drifted_ratio", m.share_drifted, model=model)
    out += sample("predwatch_drift_columns", m.n_columns, model=model)
    out += sample("predwatch_drift_dataset_drift", m.dataset_drift, model=model)
    ranked = sorted(m.features, key=_drift_rank)
    for column in ranked[: limits.max_columns]:
        labels = {"model": model, "column": column.name, "method": column.effect_size_method}
        out += sample("predwatch_drift_effect_size", column.effect_size, **labels)
        out += sample("predwatch_drift_effect_size_threshold", column.threshold, **labels)
        out += sample("predwatch_drift_column_drifted", column.drifted, model=model, column=column.name)
    out += sample(
        "predwatch_metrics_series_left_out", max(len(ranked) - limits.max_columns, 0), model=model, kind="column"
    )
    joint = m.multivariate
    if joint is not None:
        out += sample("predwatch_drift_multivariate_statistic", joint.statistic, model=model, method=joint.method)
        out += sample("predwatch_drift_multivariate_threshold", joint.threshold, model=model, method=joint.method)
        if joint.statistic is not None:
            out += sample("predwatch_drift_multivariate_drifted", joint.drifted, model=model, method=joint.method)
    return out


def _fairness(model: str, m: FairnessMetrics, limits: Limits) -> list[Sample]:
    out: list[Sample] = []
    groups = []
    for a in m.attributes:
        out += sample(
            "predwatch_fairness_demographic_parity_difference",
            a.demographic_parity_difference.value,
            model=model,
            attribute=a.name,
        )
        out += sample(
            "predwatch_fairness_demographic_parity_ratio",
            a.demographic_parity_ratio.value,
            model=model,
            attribute=a.name,
        )
        out += sample(
            "predwatch_fairness_equalized_odds_difference",
            a.equalized_odds_difference.value,
            model=model,
            attribute=a.name,
        )
        groups += [(a.name, g) for g in a.groups]
    # groups that alert first, then the largest
    groups.sort(key=lambda ag: (ag[1].status != "alert", -(ag[1].n if math.isfinite(ag[1].n) else 0.0)))
    for attribute, g in groups[: limits.max_groups]:
        labels = {"model": model, "attribute": attribute, "group": g.group}
        out += sample("predwatch_fairness_selection_rate_ratio", g.rate("selection_rate").value, **labels)
        out += sample("predwatch_fairness_group_predictions", g.n, **labels)
    out += sample(
        "predwatch_metrics_series_left_out", max(len(groups) - limits.max_groups, 0), model=model, kind="group"
    )
    return out


def _performance(model: str, m: PerformanceMetrics) -> list[Sample]:
    out = sample("predwatch_performance_label_coverage_ratio", m.label_coverage, model=model)
    out += sample("predwatch_performance_labeled_predictions", m.n_labeled, model=model)
    for name, result in m.measured.items():
        family = PERFORMANCE_FAMILIES.get(name)
        if family is None:
            continue
        out += sample(family, result.value, model=model)
        if result.breached is not None:
            out += sample("predwatch_performance_metric_breached", result.breached, model=model, metric=name)
    return out


def _ops(model: str, m: OpsMetrics) -> list[Sample]:
    out = sample("predwatch_ops_events", m.volume.total, model=model)
    out += sample("predwatch_ops_failures", m.volume.failures, model=model)
    out += sample("predwatch_ops_error_rate_ratio", m.error_rate.value, model=model)
    out += sample("predwatch_ops_longest_silence_seconds", m.silence.value_s, model=model)
    for name, latency in m.latency_ms.items():
        seconds = latency.value / 1000 if latency.value is not None else None
        out += sample("predwatch_ops_latency_seconds", seconds, model=model, percentile=name)
    return out


def _traffic_first(m: CanaryMetrics) -> list[TrafficShare]:
    """The canary's versions: the two compared first, then by share of traffic."""
    compared = {v.version for v in (m.baseline, m.candidate) if v is not None}
    return sorted(m.traffic, key=lambda t: (t.version not in compared, -t.share if math.isfinite(t.share) else 0.0))


def _canary(model: str, m: CanaryMetrics, limits: Limits) -> list[Sample]:
    out = _enum("predwatch_canary_verdict", "verdict", m.verdict, VERDICTS, model=model)
    if m.baseline is not None and m.candidate is not None:
        out += sample(
            "predwatch_canary_info", 1, model=model, baseline=m.baseline.version, candidate=m.candidate.version
        )
    for share in _traffic_first(m)[: limits.max_versions]:
        out += sample("predwatch_canary_traffic_ratio", share.share, model=model, version=share.version)
    for c in m.comparisons:
        out += sample("predwatch_canary_difference", c.difference, model=model, metric=c.metric)
        out += sample("predwatch_canary_difference_lower", c.low, model=model, metric=c.metric)
        out += sample("predwatch_canary_difference_upper", c.high, model=model, metric=c.metric)
    if m.sample_size is not None and m.sample_size.more_predictions is not None:
        out += sample("predwatch_canary_predictions_needed", m.sample_size.more_predictions, model=model)
    return out


def _estimation(model: str, m: EstimationMetrics) -> list[Sample]:
    out = sample("predwatch_estimation_label_coverage_ratio", m.label_coverage, model=model)
    for e in m.estimates:
        out += sample("predwatch_estimation_estimate", e.estimated, model=model, metric=e.name)
        out += sample("predwatch_estimation_estimate_lower", e.lower, model=model, metric=e.name)
        out += sample("predwatch_estimation_estimate_upper", e.upper, model=model, metric=e.name)
        out += sample("predwatch_estimation_reference", e.reference, model=model, metric=e.name)
        if e.estimated is not None:
            out += sample("predwatch_estimation_dropped", e.dropped, model=model, metric=e.name)
    return out


# ---- state documents -----------------------------------------------------------------------------------
def heartbeat_samples(docs: Iterable[Mapping[str, Any]]) -> list[Sample]:
    """Each job's last scheduled run: when it finished, how long it took, how it ended, which window."""
    out: list[Sample] = []
    for doc in docs:
        model, job = doc.get("model"), doc.get("job")
        if not isinstance(model, str) or not isinstance(job, str):
            continue
        out += sample("predwatch_job_last_run_timestamp_seconds", _timestamp(doc.get("ran_at")), model=model, job=job)
        duration = doc.get("duration_s")
        out += sample(
            "predwatch_job_last_run_duration_seconds",
            duration if isinstance(duration, (int, float)) else None,
            model=model,
            job=job,
        )
        status = doc.get("status")
        out += _enum(
            "predwatch_job_last_run_status",
            "status",
            status if isinstance(status, str) else None,
            STATUSES,
            model=model,
            job=job,
        )
        out += sample(
            "predwatch_job_last_window_end_timestamp_seconds", _timestamp(doc.get("window_end")), model=model, job=job
        )
    return out


def alert_samples(docs: Iterable[Mapping[str, Any]], jobs: Sequence[tuple[str, str]]) -> list[Sample]:
    """Firing alerts counted by model, job and severity; configured jobs show 0 for each severity."""
    firing: Counter[tuple[str, str, str]] = Counter()
    for doc in docs:
        if doc.get("status") != "firing":
            continue
        alert = doc.get("alert")
        severity = alert.get("severity") if isinstance(alert, Mapping) else None
        severity = severity if severity in SEVERITIES else "warning"
        firing[(str(doc.get("model")), str(doc.get("job")), str(severity))] += 1
    keys = set(firing) | {(m, j, s) for m, j in jobs for s in SEVERITIES}
    out: list[Sample] = []
    for model, job, severity in sorted(keys):
        out += sample(
            "predwatch_alerts_firing", firing[(model, job, severity)], model=model, job=job, severity=severity
        )
    return out


def _failed_attempts(doc: Mapping[str, Any]) -> float:
    """Failed attempts of an outbox entry over the channels that have not taken it yet."""
    records = doc.get("deliveries")
    if not isinstance(records, Mapping):
        return _count(doc.get("attempts"))
    return sum(
        _count(r.get("attempts")) for r in records.values() if isinstance(r, Mapping) and r.get("status") != "sent"
    )


def _count(value: Any) -> float:
    """A count field as a number (0 when absent or not a number)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def outbox_samples(docs: Iterable[Mapping[str, Any]], now: datetime) -> list[Sample]:
    """The outbox's waiting notifications, how many failed to deliver to a channel, their failed attempts, the
    oldest age (entries every channel took are kept a while to recognise repeats: they are not waiting)."""
    entries = [doc for doc in docs if not doc.get("done_at")]
    attempts = [_failed_attempts(doc) for doc in entries]
    created = [t for t in (_timestamp(doc.get("created_at")) for doc in entries) if t is not None]
    out = sample("predwatch_outbox_notifications", len(entries))
    out += sample("predwatch_outbox_failing_notifications", sum(1 for a in attempts if a > 0))
    out += sample("predwatch_outbox_failed_attempts", sum(attempts))
    out += sample("predwatch_outbox_oldest_age_seconds", max(now.timestamp() - min(created), 0.0) if created else 0.0)
    return out


def delivery_samples(counts: Iterable[DeliveryTally], channels: Sequence[str]) -> list[Sample]:
    """Per channel, notifications delivered and failed attempts, as stored totals; a configured channel that has
    delivered nothing yet shows 0 (so that a rate over its first delivery is seen)."""
    stored = {t.channel: t for t in counts}
    out: list[Sample] = []
    for channel in sorted(set(stored) | set(channels)):
        count = stored.get(channel)
        created = count.since.timestamp() if count is not None else None
        for name, value in (
            ("predwatch_notifications_delivered_total", count.delivered if count is not None else 0),
            ("predwatch_notification_delivery_failures_total", count.failed if count is not None else 0),
        ):
            out.append(Sample(name, (("channel", channel),), float(value), created))
    return out
