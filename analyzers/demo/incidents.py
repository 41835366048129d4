"""The incidents the demo injects: what, where, when, and which job and subject should catch it.

An incident may have known consequences (a shifted feature moves the score distribution too); those
count as caught with it, not as false alarms.  Days are counted from the first simulated day.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CANDIDATE_VERSION = "v2.0.0"  # the version a rollout brings in (see ``traffic``)


@dataclass(frozen=True)
class Incident:
    """One injected problem and the alert that should report it."""

    name: str
    model: str
    day: int
    job: str
    subject: str
    description: str
    consequences: tuple[tuple[str, str], ...] = field(default=())  # (job, subject prefix) it may also raise

    def explains(self, model: str, job: str, subject: str) -> bool:
        """Whether an alert is this incident or one of its declared consequences."""
        if model != self.model:
            return False
        return (job, subject) == (self.job, self.subject) or any(
            job == j and subject.startswith(prefix) for j, prefix in self.consequences
        )


def incidents(days: int) -> list[Incident]:
    """The eight incidents, placed on the six days after the reference half of a ``days``-day simulation.

    The version rollout of ``fraud`` shares its day with ``eta``'s concept drift, and the last incident day
    holds two, one per model; when it is analysed, as it ends, the fraud model's labels for it have only
    partly arrived, as on any day that has just finished.
    """
    first = days // 2
    span = days - first
    if span < 6:
        raise ValueError(f"the demo needs at least 12 days (6 reference, 6 with incidents), got {days}")
    step = span / 6
    day = [first + int(i * step) for i in range(6)]
    return [
        Incident(
            "feature shift",
            "fraud",
            day[0],
            "drift",
            "feature:amount",
            "transaction amounts grow by 60% (a new merchant mix)",
            # bigger amounts are riskier: scores, predictions and the fraud labels themselves move too
            (
                ("drift", "feature:score"),
                ("drift", "feature:prediction"),
                ("drift", "feature:label"),
                ("drift", "multivariate"),
                ("performance", "metric:"),
                ("estimation", "metric:"),
            ),
        ),
        Incident(
            "new category",
            "fraud",
            day[1],
            "drift",
            "feature:country",
            "a new market (country BR) starts sending 20% of the traffic",
            (("drift", "feature:score"), ("drift", "feature:prediction"), ("drift", "multivariate")),
        ),
        Incident(
            "concept drift",
            "eta",
            day[2],
            "performance",
            "metric:mae",
            "deliveries take 40% longer at the same distance (traffic): inputs do not move, errors grow",
            (("performance", "metric:"), ("drift", "feature:label")),
        ),
        Incident(
            "version rollout",
            "fraud",
            day[2],
            "canary",
            f"rollback:{CANDIDATE_VERSION}",
            f"version {CANDIDATE_VERSION} serves 10% of the traffic: miscalibrated, it flags 4x as many transactions",
            # its scores and flags are higher: the day's score and prediction distributions move a little
            (("drift", "feature:score"), ("drift", "feature:prediction"), ("performance", "metric:")),
        ),
        Incident(
            "group served worse",
            "fraud",
            day[3],
            "fairness",
            "group:region=south",
            "the model flags region=south three times as often for the same behaviour",
            (
                ("fairness", "group:region="),
                ("fairness", "attribute:region"),
                ("drift", "feature:score"),
                ("drift", "feature:prediction"),
                ("performance", "metric:"),
                ("estimation", "metric:"),
            ),
        ),
        Incident(
            "latency spike with errors",
            "fraud",
            day[4],
            "ops",
            "metric:latency_p95",
            "a slow dependency: three hours of 8x latency with 35% of predictions failing",
            (("ops", "metric:error_rate"), ("ops", "metric:latency_p99"), ("ops", "metric:latency_p50")),
        ),
        Incident(
            "silent hour",
            "eta",
            day[5],
            "ops",
            "metric:silence",
            "a deploy takes the service down: no predictions for an hour",
        ),
        Incident(
            "relationship change",
            "fraud",
            day[5],
            "estimation",
            "metric:recall",
            "big purchases move to old accounts: amount and account age, each unchanged, now rise together;"
            " the model, which trusts old accounts, stops flagging. Chargebacks take hours: the estimate falls today",
            (
                ("estimation", "metric:"),
                ("drift", "multivariate"),
                ("drift", "feature:score"),
                ("drift", "feature:prediction"),
                ("drift", "feature:label"),
                ("performance", "metric:"),
            ),
        ),
    ]
