"""Test data for the report: a few days of a classifier's and a regressor's events as raw NDJSON lines.

Lines follow the event schema (docs/event-schema.md) and go to ``<log_dir>/<service>/predictions-YYYY-MM-DD.ndjson``.
The last day can carry incidents: a shifted feature, a new category, a group served worse, slow and
failing requests.  Feature names and category values include HTML-special text on purpose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from analyzers.timeutil import format_time, parse_time

T0 = parse_time("2026-11-20T00:00:00Z")
ODD_FEATURE = "<b>odd&name</b>"
ODD_CATEGORY = "<script>alert(1)</script>"
REGIONS = ["north", "south", "east"]
COUNTRIES = ["DE", "FR", "IT", "NL", ODD_CATEGORY]


@dataclass(frozen=True)
class Incidents:
    """What goes wrong on a day: feature shift, a new category's share, a group's error rate, latency, failures."""

    shift: float = 0.0
    new_category: float = 0.0
    worse_group: str | None = None
    slow: bool = False
    failure_rate: float = 0.01


def _event(ts: datetime, service: str, model: str, pid: str, ml: dict, dataset: str, outcome: str) -> dict:
    event: dict = {
        "@timestamp": format_time(ts),
        "log.level": "info" if outcome == "success" else "error",
        "message": "prediction" if dataset == "ml.prediction" else "feedback",
        "ecs.version": "8.11.0",
        "event": {"dataset": dataset, "kind": "event", "outcome": outcome},
        "service": {"name": service, "version": "1.0.0", "environment": "test"},
        "ml": {"prediction_id": pid, "model": {"name": model, "version": "v1"}, **ml},
    }
    if outcome == "failure":
        event["error"] = {"type": "TimeoutError", "message": "model server timed out"}
    return event


def write_lines(log_dir: Path, service: str, events: list[dict]) -> None:
    """Append events to the daily file of their UTC day, as the logger does."""
    by_day: dict[str, list[str]] = {}
    for ev in events:
        by_day.setdefault(ev["@timestamp"][:10], []).append(json.dumps(ev))
    for day, lines in by_day.items():
        path = log_dir / service / f"predictions-{day}.ndjson"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")


def classifier_day(day: int, n: int, rng: np.random.Generator, incidents: Incidents = Incidents()) -> list[dict]:
    """One day of a fraud classifier: numeric, count and categorical features, a score, groups, feedback."""
    events = []
    amount = rng.lognormal(3 + incidents.shift, 0.8, size=n)
    items = rng.poisson(3, size=n)
    odd = rng.normal(0, 1, size=n)
    country = rng.choice(COUNTRIES, size=n, p=[0.4, 0.25, 0.15, 0.1, 0.1]).astype(object)
    country[rng.random(n) < incidents.new_category] = "ES"
    region = rng.choice(REGIONS, size=n)
    score = 1 / (1 + np.exp(-(np.log(amount) - 3) * 2 - odd * 0.5))
    for i in range(n):
        ts = T0 + timedelta(days=day, seconds=float(rng.uniform(0, 86_399)))
        pid = f"c{day}-{i}"
        slow = incidents.slow and ts.hour in (9, 10)
        if rng.random() < (0.3 if slow else incidents.failure_rate):
            ml = {"features": {"amount": float(amount[i])}, "latency_ms": float(rng.uniform(900, 1500))}
            events.append(_event(ts, "fraud-api", "fraud", pid, ml, "ml.prediction", "failure"))
            continue
        label_pred = int(score[i] >= 0.5)
        ml = {
            "features": {
                "amount": float(amount[i]),
                "n_items": int(items[i]),
                "country": country[i],
                ODD_FEATURE: float(odd[i]),
            },
            "prediction": {"label": label_pred, "score": float(score[i])},
            "groups": {"region": region[i]},
            "latency_ms": float(rng.gamma(4, 10 if not slow else 150)),
        }
        events.append(_event(ts, "fraud-api", "fraud", pid, ml, "ml.prediction", "success"))
        if rng.random() < 0.6:
            correct = 0.6 if region[i] == incidents.worse_group else 0.9
            truth = label_pred if rng.random() < correct else 1 - label_pred
            feedback_ts = ts + timedelta(hours=float(rng.uniform(1, 30)))
            events.append(_event(feedback_ts, "fraud-api", "fraud", pid, {"label": truth}, "ml.feedback", "success"))
    return events


def regressor_day(day: int, n: int, rng: np.random.Generator, shift: float = 0.0) -> list[dict]:
    """One day of a price regressor: two numeric features, a numeric prediction and feedback."""
    events = []
    size = rng.normal(80 + shift * 20, 15, size=n)
    rooms = rng.integers(1, 6, size=n)
    for i in range(n):
        ts = T0 + timedelta(days=day, seconds=float(rng.uniform(0, 86_399)))
        pid = f"r{day}-{i}"
        price = 1000 * size[i] + 5000 * rooms[i]
        ml = {
            "features": {"size": float(size[i]), "rooms": int(rooms[i])},
            "prediction": {"label": float(price + rng.normal(0, 5000))},
            "latency_ms": float(rng.gamma(3, 5)),
        }
        events.append(_event(ts, "price-api", "price", pid, ml, "ml.prediction", "success"))
        if rng.random() < 0.5:
            ml = {"label": float(price + rng.normal(0, 8000))}
            events.append(_event(ts + timedelta(hours=2), "price-api", "price", pid, ml, "ml.feedback", "success"))
    return events


def build(log_dir: Path, days: int = 4, per_day: int = 600, seed: int = 0, last_day: Incidents = Incidents()) -> None:
    """``days`` days of both models; the last one carries ``last_day``'s incidents (the regressor shifts)."""
    rng = np.random.default_rng(seed)
    classifier: list[dict] = []
    regressor: list[dict] = []
    for day in range(days):
        incidents = last_day if day == days - 1 else Incidents()
        classifier += classifier_day(day, per_day, rng, incidents)
        regressor += regressor_day(day, per_day // 2, rng, shift=1.0 if day == days - 1 and last_day.shift else 0.0)
    write_lines(log_dir, "fraud-api", classifier)
    write_lines(log_dir, "price-api", regressor)


def degenerate_logs(log_dir: Path) -> None:
    """One day where group "all" is always selected and always right (41 rows: Wilson's upper bound of its
    rates, 0.9999999999999999, ends a rounding error below them), "none" never selected, "solo" one row."""
    rng = np.random.default_rng(3)
    events = []
    for i in range(120):
        group = "all" if i < 41 else "none" if i < 81 else "mixed" if i < 119 else "solo"
        label = 1 if group in ("all", "solo") else 0 if group == "none" else int(rng.random() < 0.5)
        ts = T0 + timedelta(minutes=12 * i)
        ml = {
            "features": {"x": float(rng.normal())},
            "prediction": {"label": label, "score": float(label)},
            "groups": {"segment": group},
            "latency_ms": 5.0,
        }
        events.append(_event(ts, "svc", "m", f"p{i}", ml, "ml.prediction", "success"))
        events.append(
            _event(ts + timedelta(minutes=1), "svc", "m", f"p{i}", {"label": label}, "ml.feedback", "success")
        )
    write_lines(log_dir, "svc", events)
