"""Simulated traffic for two models, logged with predwatch's own ``PredictionLogger``.

``fraud`` is a binary classifier with scores (amount, items, account age, country, channel; groups
region and age band); ``eta`` a delivery-time regressor (distance, items, courier, weather).  Labels
arrive later (hours for fraud, minutes for eta) and not for every prediction; only feedback that has
arrived by the end of the simulation is logged.  Incidents change the data on their day only.  Each
model is ``STABLE``; on the day of a version rollout a ``CANDIDATE`` version serves ``CANARY_SHARE`` of
the fraud model's traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from analyzers.demo.incidents import CANDIDATE_VERSION, Incident
from logshipper import PredictionLogger, configure, shutdown

COUNTRIES = np.array(["DE", "FR", "ES", "IT", "NL", "PL"])
COUNTRY_P = np.array([0.3, 0.2, 0.15, 0.15, 0.1, 0.1])
COUNTRY_RISK = {"DE": 0.0, "FR": 0.1, "ES": 0.2, "IT": 0.2, "NL": -0.1, "PL": 0.3, "BR": 0.1}
CHANNELS = np.array(["web", "app", "pos"])
REGIONS = np.array(["north", "south", "east", "west"])
AGE_BANDS = np.array(["18-24", "25-34", "35-49", "50+"])
COURIERS = np.array(["bike", "scooter", "car"])
COURIER_SPEED = {"bike": 1.3, "scooter": 1.0, "car": 0.8}
WEATHER = np.array(["clear", "rain", "wind"])
FRAUD_THRESHOLD = 0.1  # flags about 10% of transactions for review
STABLE, CANDIDATE = "v1.0.0", CANDIDATE_VERSION
CANARY_SHARE = 0.1  # of the traffic the candidate serves on the day of a version rollout


@dataclass(frozen=True)
class Loggers:
    """A model's loggers: the stable version's and the candidate's (rolled out on an incident day)."""

    stable: PredictionLogger
    candidate: PredictionLogger


@dataclass(frozen=True)
class Day:
    """One simulated day: its index, its UTC midnight, and the incidents that happen on it."""

    index: int
    start: datetime
    incidents: frozenset[str]


def _times(rng: np.random.Generator, day: Day, n: int, silent: tuple[int, int] | None) -> np.ndarray:
    seconds = np.sort(rng.uniform(0, 86_400, n))
    if silent is not None:
        seconds = seconds[(seconds < silent[0] * 3600) | (seconds >= silent[1] * 3600)]
    return seconds


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def log_fraud_day(loggers: Loggers, rng: np.random.Generator, day: Day, n: int, end: datetime) -> int:
    """One day of the fraud classifier; returns how many predictions were logged.

    On a version rollout the candidate serves ``CANARY_SHARE`` of the requests with a miscalibrated,
    noisier score: it flags four times as many transactions (about 40%), so its accuracy falls from
    about 87% to about 60%.
    """
    seconds = _times(rng, day, n, None)
    n = len(seconds)
    amount = rng.lognormal(3.4, 0.7, n) * (1.6 if "feature shift" in day.incidents else 1.0)
    items = rng.poisson(2.0, n) + 1
    age = rng.exponential(400.0, n)
    if "relationship change" in day.incidents:  # same marginals; the largest amounts now go with the oldest accounts
        age = np.sort(age)[np.argsort(np.argsort(amount))]
    country = rng.choice(COUNTRIES, n, p=COUNTRY_P).astype(object)
    if "new category" in day.incidents:
        country[rng.random(n) < 0.2] = "BR"
    channel = rng.choice(CHANNELS, n, p=[0.5, 0.35, 0.15])
    region = rng.choice(REGIONS, n)
    age_band = rng.choice(AGE_BANDS, n, p=[0.15, 0.35, 0.3, 0.2])
    risk = np.array([COUNTRY_RISK[c] for c in country])
    logit = -3.0 + 0.9 * np.log(amount / 30.0) + 0.25 * (items > 3) - 0.0015 * age + risk + 0.3 * (channel == "web")
    bias = np.where((region == "south") & ("group served worse" in day.incidents), 1.6, 0.0)
    score = _sigmoid(logit + rng.normal(0, 0.15, n) + bias)
    canary = rng.random(n) < (CANARY_SHARE if "version rollout" in day.incidents else 0.0)
    score[canary] = _sigmoid(logit[canary] + 0.8 + rng.normal(0, 0.6, int(canary.sum())))
    label = (rng.random(n) < _sigmoid(logit)).astype(int)
    latency = rng.lognormal(np.log(25.0), 0.35, n)
    failed = np.zeros(n, dtype=bool)
    if "latency spike with errors" in day.incidents:
        spike = (seconds >= 14 * 3600) & (seconds < 17 * 3600)
        latency[spike] *= 8.0
        failed = spike & (rng.random(n) < 0.35)
    delays = rng.exponential(6 * 3600.0, n)
    labelled = rng.random(n) < 0.7
    for i in range(n):
        ts = day.start + timedelta(seconds=float(seconds[i]))
        features = {
            "amount": round(float(amount[i]), 2),
            "n_items": int(items[i]),
            "account_age_days": round(float(age[i]), 1),
            "country": str(country[i]),
            "channel": str(channel[i]),
        }
        groups = {"region": str(region[i]), "age_band": str(age_band[i])}
        entity = f"user-{int(rng.integers(0, 50_000))}"
        plog = loggers.candidate if canary[i] else loggers.stable
        if failed[i]:
            plog.failure(TimeoutError("feature store timed out"), features, groups, entity, float(latency[i]), ts)
            continue
        pid = plog.prediction(
            features,
            int(score[i] >= FRAUD_THRESHOLD),
            score=round(float(score[i]), 4),
            groups=groups,
            entity_id=entity,
            latency_ms=round(float(latency[i]), 2),
            timestamp=ts,
        )
        arrives = ts + timedelta(seconds=float(delays[i]))
        if labelled[i] and arrives < end:
            plog.feedback(pid, int(label[i]), timestamp=arrives)
    return n


def log_eta_day(loggers: Loggers, rng: np.random.Generator, day: Day, n: int, end: datetime) -> int:
    """One day of the delivery-time regressor (its stable version only); returns how many predictions were logged."""
    plog = loggers.stable
    silent = (13, 14) if "silent hour" in day.incidents else None
    seconds = _times(rng, day, n, silent)
    n = len(seconds)
    distance = rng.gamma(2.0, 2.0, n)
    items = rng.poisson(3.0, n) + 1
    courier = rng.choice(COURIERS, n, p=[0.4, 0.35, 0.25])
    weather = rng.choice(WEATHER, n, p=[0.7, 0.2, 0.1])
    speed = np.array([COURIER_SPEED[c] for c in courier])
    expected = 10.0 + 4.0 * distance * speed * np.where(weather == "rain", 1.2, 1.0) + 0.5 * items
    actual = expected * (1.4 if "concept drift" in day.incidents else 1.0) + rng.normal(0, 3.0, n)
    predicted = expected + rng.normal(0, 1.0, n)
    latency = rng.lognormal(np.log(15.0), 0.3, n)
    delays = rng.uniform(20 * 60, 90 * 60, n)
    labelled = rng.random(n) < 0.9
    for i in range(n):
        ts = day.start + timedelta(seconds=float(seconds[i]))
        features = {
            "distance_km": round(float(distance[i]), 3),
            "n_items": int(items[i]),
            "courier": str(courier[i]),
            "weather": str(weather[i]),
        }
        pid = plog.prediction(
            features,
            round(float(predicted[i]), 2),
            groups={"courier": str(courier[i])},
            entity_id=f"order-{day.index}-{i}",
            latency_ms=round(float(latency[i]), 2),
            timestamp=ts,
        )
        arrives = ts + timedelta(seconds=float(delays[i]))
        if labelled[i] and arrives < end:
            plog.feedback(pid, round(float(max(actual[i], 1.0)), 2), timestamp=arrives)
    return n


MODELS: dict[str, tuple[str, Callable[..., int]]] = {
    "fraud": ("fraud-api", log_fraud_day),
    "eta": ("eta-api", log_eta_day),
}


def simulate(
    log_dir: Path,
    *,
    days: int,
    per_day: int,
    seed: int,
    end: datetime,
    injected: list[Incident],
    progress: Callable[[], None] | None = None,
) -> int:
    """Log ``days`` days ending at ``end`` for both models into ``log_dir``; returns the predictions logged."""
    total = 0
    for offset, (model, (service, log_day)) in enumerate(MODELS.items()):
        rng = np.random.default_rng([seed, offset])
        configure(service=service, log_dir=log_dir)
        loggers = Loggers(
            PredictionLogger(model=model, version=STABLE), PredictionLogger(model=model, version=CANDIDATE)
        )
        try:
            for index in range(days):
                start = end - timedelta(days=days - index)
                names = frozenset(i.name for i in injected if i.model == model and i.day == index)
                total += log_day(loggers, rng, Day(index, start, names), per_day, end)
                if progress is not None:
                    progress()
        finally:
            shutdown()
    return total
