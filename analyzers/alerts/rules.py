"""From findings to alerts: one per thing that fired, with a stable key, plus monitoring problems.

The key ``model:job:subject`` (``fraud:drift:feature:amount``) recognises the same problem run after
run.  Its severity is the signal's own (each job sets it from its configured ``severity``; a signal
without a known severity takes the job's).  A job that failed or timed out, an ops job that could
not judge its window, or any job whose window (or reference) held no predictions at all is itself an
alert (subject ``monitoring``): silence from a job must never look like good news.  A window whose share of
lines set aside (its finding's ``quality``) is above ``quality.max_bad_share`` raises one more (subject
``quality``), whatever the job found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analyzers.findings import Finding, Severity

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


def _row_counts(finding: Finding) -> list[float]:
    """The prediction counts a finding's numbers report (current window, reference, volume)."""
    m = finding.metrics
    volume = m.get("volume")
    candidates = [m.get("n_cur"), m.get("n_ref"), m.get("n"), volume.get("total") if isinstance(volume, dict) else None]
    return [float(v) for v in candidates if isinstance(v, (int, float)) and not isinstance(v, bool)]


def is_monitoring_problem(finding: Finding) -> bool:
    """A failed job, an ops job that could not judge, or a window (or reference) without any predictions."""
    if finding.status == "error":
        return True
    if finding.status != "insufficient_data":
        return False
    return finding.job == "ops" or any(n == 0 for n in _row_counts(finding))


def _monitoring_message(finding: Finding) -> str:
    if finding.status == "error":
        return f"{finding.job} failed: {finding.error or 'unknown error'}"
    reason = finding.metrics.get("reason")
    if isinstance(reason, str) and reason:
        return f"{finding.job} could not judge its window: {reason}"
    rows = _row_counts(finding)
    if rows and min(rows) == 0:
        return f"{finding.job} found no predictions in its window"
    return f"{finding.job} could not judge its window ({max(rows, default=0):g} predictions)"


def _quality_alert(finding: Finding, severity: Severity) -> list[Alert]:
    """An alert when the share of the window's lines set aside is above the configured one."""
    quality = finding.metrics.get("quality")
    if not isinstance(quality, dict):
        return []
    share, limit, lines = quality.get("share"), quality.get("max_bad_share"), quality.get("lines")
    if not isinstance(share, (int, float)) or not isinstance(limit, (int, float)) or share <= limit:
        return []
    reasons = sorted((quality.get("reasons") or {}).items(), key=lambda item: -item[1].get("count", 0))
    named = "; ".join(f"{r['count']} {reason} (first at {r.get('first') or 'unknown'})" for reason, r in reasons[:3])
    message = f"{share:.1%} of {lines} lines set aside, more than {limit:.1%}: {named}"
    key = alert_key(finding.model, finding.job, QUALITY)
    return [Alert(key, finding.model, finding.job, QUALITY, severity, message, float(share), float(limit))]


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
