"""From findings to alerts: one per thing that fired, with a stable key, plus monitoring problems.

The key ``model:job:subject`` (``fraud:drift:feature:amount``) recognises the same problem run after
run.  A job that failed, or whose window held no predictions at all, is itself an alert (subject
``monitoring``): silence from a job must never look like good news.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analyzers.findings import Finding, Severity

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
MONITORING = "monitoring"


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


def window_rows(finding: Finding) -> float | None:
    """How many predictions the job saw in its window, when its numbers say so."""
    m = finding.metrics
    for value in (m.get("n_cur"), m.get("n"), (m.get("volume") or {}).get("total")):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def is_monitoring_problem(finding: Finding) -> bool:
    """A failed job, or one that found no predictions at all in its window."""
    return finding.status == "error" or (finding.status == "insufficient_data" and window_rows(finding) == 0)


def alerts_of(finding: Finding, default_severity: Severity = "warning") -> list[Alert]:
    """The alerts a finding raises: one per signal when it alerts, one monitoring alert when it could not judge."""
    if is_monitoring_problem(finding):
        if finding.status == "error":
            message = f"{finding.job} failed: {finding.error or 'unknown error'}"
        else:
            message = f"{finding.job} found no predictions in its window"
        key = alert_key(finding.model, finding.job, MONITORING)
        return [Alert(key, finding.model, finding.job, MONITORING, default_severity, message)]
    if finding.status != "alert":
        return []
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
    return list(alerts.values())


def judges_subjects(finding: Finding) -> bool:
    """Whether a finding says anything about the subjects it does not list (then those have resolved)."""
    return finding.status in ("ok", "alert")


def as_dict(alert: Alert) -> dict[str, Any]:
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
