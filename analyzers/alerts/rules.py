"""From findings to alerts: one per thing that fired, with a stable key, plus monitoring problems.

The key ``model:job:subject`` (``fraud:drift:feature:amount``) recognises the same problem run after
run.  Its severity is the signal's own (each job sets it from its configured ``severity``; a signal
without a known severity takes the job's).  A job that failed or timed out, an ops job that could
not judge its window, or any job whose window (or reference) held no predictions at all is itself an
alert (subject ``monitoring``): silence from a job must never look like good news.  What counts as
"could not judge" and which counts are read from the job's payload (``Metrics.unjudged_needs_attention``,
``row_counts``, ``no_verdict_reason``).  A window whose share of lines set aside (its finding's ``quality``) is
above ``quality.max_bad_share`` raises one more alert (subject ``quality``), whatever the job found; it
resolves on the first later window whose measured share is back within the limit, whatever that job found
(:func:`quality_within_limit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analyzers.findings import Finding, Severity
from analyzers.findings.quality import describe_reasons

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
MONITORING = "monitoring"
QUALITY = "quality"


@dataclass(frozen=True)
class Alert:
    """One firing problem found in one finding."""

    key: str
    model: str
    job: str
    subject: str
    severity: Severity
    message: str
    value: float | None = None
    threshold: float | None = None


def alert_key(model: str, job: str, subject: str) -> str:
    """The stable identity of an alert."""
    return f"{model}:{job}:{subject}"


def is_monitoring_problem(finding: Finding) -> bool:
    """A failed job, or a window the job could not judge in a way that needs attention (an ops job that
    could not judge, a window or reference without any predictions)."""
    if finding.status == "error":
        return True
    if finding.status != "insufficient_data":
        return False
    return finding.metrics is not None and finding.metrics.unjudged_needs_attention()


def _monitoring_message(finding: Finding) -> str:
    if finding.status == "error":
        return f"{finding.job} failed: {finding.error or 'unknown error'}"
    reason = finding.metrics.no_verdict_reason() if finding.metrics is not None else None
    if reason:
        return f"{finding.job} could not judge its window: {reason}"
    rows = finding.metrics.row_counts() if finding.metrics is not None else []
    if rows and min(rows) == 0:
        return f"{finding.job} found no predictions in its window"
    return f"{finding.job} could not judge its window ({max(rows, default=0):g} predictions)"


def _quality_alert(finding: Finding, severity: Severity) -> list[Alert]:
    """An alert when the share of the window's lines set aside is above the configured one."""
    quality = finding.quality
    if quality is None or quality.report is None or not quality.exceeded():
        return []
    report = quality.report
    named = "; ".join(describe_reasons(report)[:3])
    message = f"{report.share:.1%} of {report.lines} lines set aside, more than {quality.max_bad_share:.1%}: {named}"
    key = alert_key(finding.model, finding.job, QUALITY)
    return [Alert(key, finding.model, finding.job, QUALITY, severity, message, report.share, quality.max_bad_share)]


def quality_within_limit(finding: Finding) -> bool:
    """Whether a finding shows its window's lines back within ``quality.max_bad_share``: a quality report over at
    least one line, whatever the job's verdict.  A finding without a report (stored before quality was measured,
    or the store could not tell) or over an empty window says nothing about quality, so a quality alert stays."""
    quality = finding.quality
    if quality is None or quality.report is None or quality.report.lines == 0:
        return False
    return not quality.exceeded()


def alerts_of(finding: Finding, default_severity: Severity = "warning") -> list[Alert]:
    """The alerts a finding raises: one per signal when it alerts, one monitoring alert when it could not judge,
    and one when too many of its window's lines were set aside."""
    quality = _quality_alert(finding, default_severity)
    if is_monitoring_problem(finding):
        key = alert_key(finding.model, finding.job, MONITORING)
        monitoring = Alert(key, finding.model, finding.job, MONITORING, default_severity, _monitoring_message(finding))
        return [monitoring, *quality]
    if finding.status != "alert":
        return quality
    alerts: dict[str, Alert] = {}
    for signal in finding.signals:
        key = alert_key(finding.model, finding.job, signal.subject)
        severity = signal.severity if signal.severity in SEVERITY_RANK else default_severity
        previous = alerts.get(key)
        if previous is None or SEVERITY_RANK[severity] > SEVERITY_RANK[previous.severity]:
            alerts[key] = Alert(
                key,
                finding.model,
                finding.job,
                signal.subject,
                severity,
                signal.message,
                signal.value,
                signal.threshold,
            )
    if not alerts:  # an alert without signals still says so
        key = alert_key(finding.model, finding.job, "finding")
        alerts[key] = Alert(key, finding.model, finding.job, "finding", default_severity, f"{finding.job} alerted")
    return [*alerts.values(), *quality]


def judges_subjects(finding: Finding) -> bool:
    """Whether a finding says anything about the subjects it does not list (then those have resolved)."""
    return finding.status in ("ok", "alert")


def as_dict(alert: Alert) -> dict[str, Any]:
    """The alert as stored in state and outbox documents."""
    return {
        "key": alert.key,
        "model": alert.model,
        "job": alert.job,
        "subject": alert.subject,
        "severity": alert.severity,
        "message": alert.message,
        "value": alert.value,
        "threshold": alert.threshold,
    }
