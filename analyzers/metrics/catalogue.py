"""Every metric predwatch exports to Prometheus: its name, help and labels, in one table.

Names follow Prometheus' conventions: the ``predwatch_`` prefix, base units in the name (``_seconds``,
``_ratio`` for shares between 0 and 1), ``_timestamp_seconds`` for Unix times, ``_info`` for a constant 1
carrying labels, ``_total`` for counters.  Most families are gauges (they read the latest stored state); an
enumeration (a status, a verdict) is one series per possible value, 1 for the current one and 0 for the
others.  The counters (deliveries per channel) are totals kept in the state store, so they only go up,
across restarts of any process, and carry their start as ``_created``.  Label values come from the
configuration (models, jobs, channels) or from bounded sets (statuses, severities, verdicts, percentiles,
performance metrics); the open-ended ones, drift columns, fairness groups and model versions, are cut at a
configured limit (``scheduler.metrics_max_columns``, ``scheduler.metrics_max_groups``,
``scheduler.metrics_max_versions``) and what was left out is counted in ``predwatch_metrics_series_left_out``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric family: a gauge reads the latest state; a counter (its name ends in ``_total``) a
    stored total that only goes up."""

    name: str
    help: str
    labels: tuple[str, ...]
    type: Literal["gauge", "counter"] = "gauge"


# Performance metrics by the name the performance job gives them, and the family each is exported as.
PERFORMANCE_FAMILIES = {
    "accuracy": "predwatch_performance_accuracy_ratio",
    "precision": "predwatch_performance_precision_ratio",
    "recall": "predwatch_performance_recall_ratio",
    "f1": "predwatch_performance_f1_score",
    "roc_auc": "predwatch_performance_roc_auc_score",
    "log_loss": "predwatch_performance_log_loss",
    "mae": "predwatch_performance_mae",
    "rmse": "predwatch_performance_rmse",
    "mape": "predwatch_performance_mape_ratio",
    "r2": "predwatch_performance_r2_score",
}

_SPECS = [
    # the exporter itself
    MetricSpec("predwatch_build_info", "predwatch's version (always 1).", ("version",)),
    MetricSpec("predwatch_store_up", "1 when the last scrape could read the store, else 0.", ()),
    MetricSpec(
        "predwatch_metrics_series_left_out",
        "Drift columns, fairness groups or model versions of the latest findings not exported (over the limit).",
        ("model", "kind"),
    ),
    # scheduled runs (the scheduler's heartbeats)
    MetricSpec(
        "predwatch_job_last_run_timestamp_seconds",
        "When the scheduler last finished the job (Unix time).",
        ("model", "job"),
    ),
    MetricSpec(
        "predwatch_job_last_run_duration_seconds", "How long the job's last scheduled run took.", ("model", "job")
    ),
    MetricSpec(
        "predwatch_job_last_run_status",
        "The status of the job's last scheduled run: 1 for it, 0 for the other statuses.",
        ("model", "job", "status"),
    ),
    MetricSpec(
        "predwatch_job_last_window_end_timestamp_seconds",
        "The end of the window the job's last scheduled run analysed (Unix time).",
        ("model", "job"),
    ),
    # latest findings, whoever wrote them (scheduler or predwatch analyze)
    MetricSpec(
        "predwatch_finding_status",
        "The status of the latest finding: 1 for it, 0 for the other statuses.",
        ("model", "job", "status"),
    ),
    MetricSpec(
        "predwatch_finding_window_end_timestamp_seconds",
        "The end of the latest finding's window (Unix time).",
        ("model", "job"),
    ),
    MetricSpec("predwatch_finding_signals", "Signals (things that fired) in the latest finding.", ("model", "job")),
    # drift
    MetricSpec("predwatch_drift_columns_drifted_ratio", "Share of the compared columns that drifted.", ("model",)),
    MetricSpec("predwatch_drift_columns", "Columns compared (features and outputs).", ("model",)),
    MetricSpec("predwatch_drift_dataset_drift", "1 when the dataset as a whole drifted.", ("model",)),
    MetricSpec(
        "predwatch_drift_effect_size",
        "A column's drift effect size (its method in the label).",
        ("model", "column", "method"),
    ),
    MetricSpec(
        "predwatch_drift_effect_size_threshold",
        "The effect size above which the column counts as drifted.",
        ("model", "column", "method"),
    ),
    MetricSpec("predwatch_drift_column_drifted", "1 when the column drifted.", ("model", "column")),
    MetricSpec(
        "predwatch_drift_multivariate_statistic",
        "The features taken together: the multivariate method's statistic (PCA error, classifier ROC AUC).",
        ("model", "method"),
    ),
    MetricSpec(
        "predwatch_drift_multivariate_threshold",
        "The value above which the multivariate statistic means drift.",
        ("model", "method"),
    ),
    MetricSpec(
        "predwatch_drift_multivariate_drifted", "1 when the features taken together drifted.", ("model", "method")
    ),
    # fairness
    MetricSpec(
        "predwatch_fairness_demographic_parity_difference",
        "Largest gap in selection rate between groups of the attribute.",
        ("model", "attribute"),
    ),
    MetricSpec(
        "predwatch_fairness_demographic_parity_ratio",
        "Smallest over largest selection rate among groups of the attribute (four-fifths rule: 0.8).",
        ("model", "attribute"),
    ),
    MetricSpec(
        "predwatch_fairness_equalized_odds_difference",
        "Largest gap in true or false positive rate between groups of the attribute.",
        ("model", "attribute"),
    ),
    MetricSpec(
        "predwatch_fairness_selection_rate_ratio",
        "Share of a group's predictions that were positive.",
        ("model", "attribute", "group"),
    ),
    MetricSpec("predwatch_fairness_group_predictions", "Predictions of the group.", ("model", "attribute", "group")),
    # performance
    MetricSpec("predwatch_performance_label_coverage_ratio", "Share of predictions with feedback.", ("model",)),
    MetricSpec("predwatch_performance_labeled_predictions", "Predictions with feedback.", ("model",)),
    MetricSpec(
        "predwatch_performance_metric_breached",
        "1 when the metric crossed its threshold or fell significantly behind the reference.",
        ("model", "metric"),
    ),
    *(
        MetricSpec(family, f"The model's {name} over the latest performance window.", ("model",))
        for name, family in PERFORMANCE_FAMILIES.items()
    ),
    # operations
    MetricSpec("predwatch_ops_events", "Events (predictions and failures) in the latest ops window.", ("model",)),
    MetricSpec("predwatch_ops_failures", "Failed predictions in the latest ops window.", ("model",)),
    MetricSpec("predwatch_ops_error_rate_ratio", "Failures over events in the latest ops window.", ("model",)),
    MetricSpec(
        "predwatch_ops_latency_seconds", "Latency percentile of the latest ops window.", ("model", "percentile")
    ),
    MetricSpec(
        "predwatch_ops_longest_silence_seconds",
        "The longest run without predictions in the latest ops window.",
        ("model",),
    ),
    # estimation (performance before the labels)
    MetricSpec(
        "predwatch_estimation_estimate",
        "A metric estimated without labels over the latest estimation window (in the metric's own units).",
        ("model", "metric"),
    ),
    MetricSpec("predwatch_estimation_estimate_lower", "Lower end of the estimate's interval.", ("model", "metric")),
    MetricSpec("predwatch_estimation_estimate_upper", "Upper end of the estimate's interval.", ("model", "metric")),
    MetricSpec("predwatch_estimation_reference", "The metric's realized value on the reference.", ("model", "metric")),
    MetricSpec(
        "predwatch_estimation_dropped",
        "1 when the estimate is significantly worse than the reference by more than max_drop.",
        ("model", "metric"),
    ),
    MetricSpec(
        "predwatch_estimation_label_coverage_ratio",
        "Share of the estimation window's predictions with feedback.",
        ("model",),
    ),
    # canary
    MetricSpec(
        "predwatch_canary_verdict",
        "The latest canary verdict: 1 for it, 0 for the others (all 0 without a canary).",
        ("model", "verdict"),
    ),
    MetricSpec(
        "predwatch_canary_info",
        "The versions the latest canary compared (always 1).",
        ("model", "baseline", "candidate"),
    ),
    MetricSpec(
        "predwatch_canary_traffic_ratio",
        "A live version's share of the model's events in the canary window.",
        ("model", "version"),
    ),
    MetricSpec(
        "predwatch_canary_difference",
        "Candidate minus baseline of a compared metric (in the metric's own units).",
        ("model", "metric"),
    ),
    MetricSpec(
        "predwatch_canary_difference_lower",
        "Lower end of the interval of candidate minus baseline.",
        ("model", "metric"),
    ),
    MetricSpec(
        "predwatch_canary_difference_upper",
        "Upper end of the interval of candidate minus baseline.",
        ("model", "metric"),
    ),
    MetricSpec(
        "predwatch_canary_predictions_needed",
        "More candidate predictions the power calculation asks for (0 once it is met).",
        ("model",),
    ),
    # alerts and delivery
    MetricSpec(
        "predwatch_alerts_firing", "Alerts firing now, by model, job and severity.", ("model", "job", "severity")
    ),
    MetricSpec("predwatch_outbox_notifications", "Notifications waiting in the outbox for delivery.", ()),
    MetricSpec(
        "predwatch_outbox_failing_notifications",
        "Notifications in the outbox whose delivery failed at least once.",
        (),
    ),
    MetricSpec("predwatch_outbox_failed_attempts", "Failed delivery attempts of the notifications in the outbox.", ()),
    MetricSpec("predwatch_outbox_oldest_age_seconds", "Age of the oldest notification in the outbox.", ()),
    MetricSpec(
        "predwatch_notifications_delivered_total",
        "Notifications the channel took, since the state was created.",
        ("channel",),
        "counter",
    ),
    MetricSpec(
        "predwatch_notification_delivery_failures_total",
        "Failed attempts to deliver a notification to the channel (each is retried), since the state was created.",
        ("channel",),
        "counter",
    ),
]

# The whole-window families a ``by_version`` finding also exports for each version, as ``predwatch_version_...``
# with a ``version`` label: the headline figures of each job, not its per-column or per-group series, so that a
# version costs a bounded number of series.
VERSIONED_FAMILIES = (
    "predwatch_drift_columns_drifted_ratio",
    "predwatch_drift_columns",
    "predwatch_drift_dataset_drift",
    "predwatch_drift_multivariate_statistic",
    "predwatch_drift_multivariate_drifted",
    "predwatch_fairness_demographic_parity_difference",
    "predwatch_fairness_demographic_parity_ratio",
    "predwatch_fairness_equalized_odds_difference",
    "predwatch_performance_label_coverage_ratio",
    "predwatch_performance_labeled_predictions",
    "predwatch_performance_metric_breached",
    *PERFORMANCE_FAMILIES.values(),
    "predwatch_estimation_estimate",
    "predwatch_estimation_estimate_lower",
    "predwatch_estimation_estimate_upper",
    "predwatch_estimation_dropped",
    "predwatch_estimation_label_coverage_ratio",
    "predwatch_ops_events",
    "predwatch_ops_failures",
    "predwatch_ops_error_rate_ratio",
    "predwatch_ops_latency_seconds",
    "predwatch_ops_longest_silence_seconds",
)


def version_family(name: str) -> str:
    """The per-version family of a whole-window one: ``predwatch_ops_events`` → ``predwatch_version_ops_events``."""
    return "predwatch_version_" + name.removeprefix("predwatch_")


_BY_NAME = {spec.name: spec for spec in _SPECS}
_VERSION_SPECS = [
    MetricSpec(
        "predwatch_version_status",
        "The status of a version's own result in the latest by_version finding: 1 for it, 0 for the others.",
        ("model", "job", "version", "status"),
    ),
    MetricSpec(
        "predwatch_version_events",
        "A version's events in the latest by_version finding's window.",
        ("model", "job", "version"),
    ),
    MetricSpec(
        "predwatch_version_traffic_ratio",
        "A version's share of the events in the latest by_version finding's window.",
        ("model", "job", "version"),
    ),
    *(
        MetricSpec(
            version_family(name), f"{_BY_NAME[name].help} One version alone.", (*_BY_NAME[name].labels, "version")
        )
        for name in VERSIONED_FAMILIES
    ),
]

METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in (*_SPECS, *_VERSION_SPECS)}
