"""The configuration of each job: what all jobs share (window, schedule, alerting) and each job's own keys.

A job's configuration class is named in the job table (:mod:`analyzers.jobs.registry`), which makes it
the section of that name under each model.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from analyzers.config.base import Strict, duration
from analyzers.stats.drift_methods import drift_test, effect_size
from analyzers.stats.ops import percentile_level
from analyzers.timeutil import parse_time


class Schedule(Strict):
    """When a job runs: ``every`` an interval, or a ``cron`` expression (UTC)."""

    every: timedelta | None = None
    cron: str | None = None

    _v = field_validator("every", mode="before")(lambda v: None if v is None else duration(v))

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of 'every' or 'cron'")
        if self.every is not None and self.every.total_seconds() <= 0:
            raise ValueError("'every' must be longer than zero")
        if self.cron is not None:
            from analyzers.triggers import make_trigger

            make_trigger(self)  # raises ValueError naming the bad field
        return self


class ReferenceConfig(Strict):
    """A fixed window (``start``/``end``), a relative one (``last``/``ending``), or a ``file``."""

    start: datetime | None = None
    end: datetime | None = None
    last: timedelta | None = None
    ending: timedelta | None = None
    file: str | None = None

    _t = field_validator("start", "end", mode="before")(lambda v: None if v is None else parse_time(v))
    _d = field_validator("last", "ending", mode="before")(lambda v: None if v is None else duration(v))

    @model_validator(mode="after")
    def _one_of(self) -> ReferenceConfig:
        kinds = [self.start is not None or self.end is not None, self.last is not None, self.file is not None]
        if sum(kinds) != 1:
            raise ValueError("give one of {start, end}, {last, ending} or {file}")
        if kinds[0] and (self.start is None or self.end is None):
            raise ValueError("a fixed reference needs both 'start' and 'end'")
        if self.ending is not None and self.last is None:
            raise ValueError("'ending' goes with 'last'")
        return self


class JobConfig(Strict):
    """What every job has: its window, schedule, whether it runs, and alert handling."""

    enabled: bool = True
    window: timedelta = timedelta(days=1)
    schedule: Schedule = Field(default_factory=lambda: Schedule(every=timedelta(hours=1)))
    severity: Literal["info", "warning", "critical"] = "warning"
    cooldown: timedelta = timedelta(hours=6)
    cooldown_backoff: float = Field(default=1.0, ge=1.0)  # each re-send of a still-firing alert waits this much longer
    max_cooldown: timedelta = timedelta(days=1)
    timeout: timedelta = timedelta(minutes=15)  # a run that takes longer is reported as a monitoring problem
    min_rows: int = 100

    _w = field_validator("window", "cooldown", "max_cooldown", "timeout", mode="before")(lambda v: duration(v))


class FeatureOverride(Strict):
    """One column's drift settings: its effect size (``method``), test, threshold, kind, or that it is ignored.

    ``method`` and ``test`` are names registered in :mod:`analyzers.stats.drift_methods` (aliases such as
    ``chi2`` or ``js`` are accepted and stored under the method's own name).
    """

    method: str | None = None  # effect size: wasserstein, ks, psi, jensenshannon, chisquare (Cramér's V)
    test: str | None = None  # ks or chisquare; default: chi-square for categorical or discrete columns, else KS
    threshold: float | None = None
    kind: Literal["numeric", "categorical"] | None = None
    ignore: bool = False

    @field_validator("method")
    @classmethod
    def _effect_size(cls, name: str | None) -> str | None:
        return None if name is None else effect_size(name).name

    @field_validator("test")
    @classmethod
    def _test(cls, name: str | None) -> str | None:
        return None if name is None else drift_test(name).name

    @model_validator(mode="after")
    def _applies(self) -> FeatureOverride:
        if self.kind is not None:
            if self.method is not None:
                effect_size(self.method, self.kind)
            if self.test is not None:
                drift_test(self.test, self.kind)
        return self


class DriftConfig(JobConfig):
    reference: ReferenceConfig = Field(default_factory=lambda: ReferenceConfig(last=timedelta(days=7)))
    alpha: float = 0.05
    correction: Literal["bh", "bonferroni", "none"] = "bh"
    drift_share: float = 0.5  # dataset-level verdict when at least this share of columns drifted
    features: dict[str, FeatureOverride] = Field(default_factory=dict)
    sample_size: int = 50_000  # windows up to this many rows are tested exactly on their values
    missing_threshold: float = 0.05  # Cohen's h between missing rates that counts as drift


class FairnessConfig(JobConfig):
    window: timedelta = timedelta(days=7)
    groups: list[str] | None = None  # default: every attribute in ml.groups
    positive_label: str | int | float | bool = 1
    score_threshold: float | None = None  # selection is score >= threshold when given
    reference_group: dict[str, str] = Field(default_factory=dict)  # attribute -> group
    min_group_size: int = 100
    parity_ratio: float = 0.8  # the four-fifths rule
    max_difference: float = 0.1
    confidence: float = 0.95


class PerformanceConfig(JobConfig):
    window: timedelta = timedelta(days=7)
    task: Literal["classification", "regression"] | None = None  # inferred when None
    positive_label: str | int | float | bool = 1
    reference: ReferenceConfig | None = None
    thresholds: dict[str, float] = Field(default_factory=dict)  # metric -> floor (or ceiling for errors)
    max_drop: float = 0.05  # relative drop against the reference that alerts
    min_labels: int = 50


class OpsConfig(JobConfig):
    window: timedelta = timedelta(hours=1)
    # error rate and latency are judged from this many events; an hour of a quiet service is still judged
    # (silence is judged whatever the count)
    min_rows: int = 20
    bucket: timedelta = timedelta(minutes=5)
    max_silence: timedelta = timedelta(minutes=30)  # no predictions for this long alerts
    max_error_rate: float = 0.05
    latency_ms: dict[str, float] = Field(default_factory=lambda: {"p95": 500.0})

    _b = field_validator("bucket", "max_silence", mode="before")(lambda v: duration(v))

    @field_validator("latency_ms")
    @classmethod
    def _percentiles(cls, limits: dict[str, float]) -> dict[str, float]:
        for name in limits:
            percentile_level(name)  # a ValueError names the key
        return limits
