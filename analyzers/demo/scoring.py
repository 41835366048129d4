"""Which injected incidents the jobs caught, and what they flagged that nobody injected."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from analyzers.alerts.rules import is_monitoring_problem
from analyzers.demo.incidents import Incident
from analyzers.findings import Finding, Signal


@dataclass
class Outcome:
    """An incident and the alert that caught it (``None`` when missed)."""

    incident: Incident
    finding: Finding | None = None
    signal: Signal | None = None
    also: list[str] = field(default_factory=list)  # "job subject" of further alerts it explains (consequences)

    @property
    def caught(self) -> bool:
        return self.signal is not None


@dataclass
class FalseAlarm:
    """An alert (or a failed job) that no injected incident explains."""

    finding: Finding
    subject: str
    message: str


def day_of(finding: Finding, start: datetime) -> int:
    """The simulated day a finding's window starts on."""
    return int((finding.window.start - start).total_seconds() // 86_400)


def score(
    findings: Sequence[Finding], injected: Sequence[Incident], start: datetime
) -> tuple[list[Outcome], list[FalseAlarm]]:
    """Match every alert to an incident of its model and day, or call it a false alarm."""
    outcomes = [Outcome(i) for i in injected]
    false_alarms: list[FalseAlarm] = []
    for finding in findings:
        if finding.status == "error" or is_monitoring_problem(finding):
            false_alarms.append(FalseAlarm(finding, "monitoring", finding.error or "no predictions in the window"))
            continue
        if finding.status != "alert":
            continue
        day = day_of(finding, start)
        for signal in finding.signals:
            matched = [
                o
                for o in outcomes
                if o.incident.day == day and o.incident.explains(finding.model, finding.job, signal.subject)
            ]
            if not matched:
                false_alarms.append(FalseAlarm(finding, signal.subject, signal.message))
                continue
            for outcome in matched:
                main = (finding.job, signal.subject) == (outcome.incident.job, outcome.incident.subject)
                if main and outcome.signal is None:
                    outcome.finding, outcome.signal = finding, signal
                elif f"{finding.job} {signal.subject}" not in outcome.also:
                    outcome.also.append(f"{finding.job} {signal.subject}")
    return outcomes, false_alarms
