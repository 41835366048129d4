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
    """A fixed window (``start``/``end``), a relative one (``last``/``ending``: the ``last`` long span that
    ends ``ending`` before the window starts), or a ``file``; see :mod:`analyzers.windows`."""

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
        if self.last is not None and self.last <= timedelta(0):
            raise ValueError("'last' must be longer than zero")
        if self.ending is not None and self.ending < timedelta(0):
            raise ValueError("'ending' cannot be negative: it is how long before the window the reference ends")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("the reference 'end' must be after its 'start'")
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


class MultivariateConfig(Strict):
    """Drift of the features taken together: PCA reconstruction error, or a domain classifier."""

    method: Literal["pca", "classifier"]
    sample_size: int | None = Field(default=None, ge=100)  # rows sampled from each window (pca 20000, classifier 5000)
    variance: float = Field(default=0.65, gt=0, lt=1)  # pca: share of the variance the kept components explain
    sigmas: float = Field(default=3.0, gt=0)  # pca: half-width of the reference band, in standard errors
    auc_threshold: float = Field(default=0.55, ge=0.5, lt=1)  # classifier: drifted above this AUC (and significant)
    folds: int = Field(default=5, ge=2, le=20)  # classifier: cross-validation folds
    seed: int = 0

    @property
    def rows(self) -> int:
        """Rows sampled from each window."""
        return self.sample_size or (20_000 if self.method == "pca" else 5_000)


class VersionedJobConfig(JobConfig):
    """A job whose findings can be split per model version (``by_version``): each version live in the window
    is also analysed alone, its finding kept in the JSON and its alerts under subjects of its own."""

    by_version: bool = False


class DriftConfig(VersionedJobConfig):
    reference: ReferenceConfig = Field(default_factory=lambda: ReferenceConfig(last=timedelta(days=7)))
    alpha: float = 0.05
    correction: Literal["bh", "bonferroni", "none"] = "bh"
    drift_share: float = 0.5  # dataset-level verdict when at least this share of columns drifted
    features: dict[str, FeatureOverride] = Field(default_factory=dict)
    sample_size: int = 50_000  # windows up to this many rows are tested exactly on their values
    missing_threshold: float = 0.05  # Cohen's h between missing rates that counts as drift
    min_coverage: float = Field(default=0.8, ge=0.0, le=1.0)  # share of the window's (and reference's) slots with data
    multivariate: MultivariateConfig | None = None


class FairnessConfig(VersionedJobConfig):
    window: timedelta = timedelta(days=7)
    groups: list[str] | None = None  # default: every attribute in ml.groups
    positive_label: str | int | float | bool = 1
    score_threshold: float | None = None  # selection is score >= threshold when given
    reference_group: dict[str, str] = Field(default_factory=dict)  # attribute -> group
    min_group_size: int = 100
    parity_ratio: float = 0.8  # the four-fifths rule
    max_difference: float = 0.1
    confidence: float = 0.95
    min_coverage: float = Field(default=0.8, ge=0.0, le=1.0)  # share of the window's slots with data


class PerformanceConfig(VersionedJobConfig):
    window: timedelta = timedelta(days=7)
    task: Literal["classification", "regression"] | None = None  # inferred when None
    positive_label: str | int | float | bool = 1
    reference: ReferenceConfig | None = None
    thresholds: dict[str, float] = Field(default_factory=dict)  # metric -> floor (or ceiling for errors)
    max_drop: float = 0.05  # relative drop against the reference that alerts
    min_labels: int = 50
    min_coverage: float = Field(default=0.8, ge=0.0, le=1.0)  # share of the window's (and reference's) slots with data


EstimatedMetric = Literal["roc_auc", "accuracy", "precision", "recall", "f1", "mae", "rmse"]
ESTIMATED_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("roc_auc", "accuracy", "precision", "recall", "f1"),
    "regression": ("mae", "rmse"),
}


class EstimationConfig(VersionedJobConfig):
    """Performance estimated without labels: CBPE from the scores of a binary classifier, direct loss estimation
    (DLE) from the features and predictions of a regression model."""

    reference: ReferenceConfig = Field(
        default_factory=lambda: ReferenceConfig(last=timedelta(days=7), ending=timedelta(days=7))
    )
    task: Literal["classification", "regression"] | None = None  # inferred from the reference when None
    metrics: list[EstimatedMetric] | None = Field(default=None, min_length=1)  # default: every metric of the task
    calibration: Literal["auto", "isotonic", "platt", "none"] = "auto"
    positive_label: str | int | float | bool = 1
    max_drop: float = Field(default=0.05, ge=0)  # relative drop of an estimate below the reference that alerts
    min_labels: int = Field(default=100, ge=1)  # labelled predictions to calibrate on, and for a realized value
    sample_size: int = Field(default=100_000, ge=100)  # labelled reference predictions sampled to calibrate
    max_calibration_error: float = Field(default=0.05, gt=0, le=1)  # out-of-fold ECE above which nothing is estimated
    confidence: float = Field(default=0.95, gt=0, lt=1)  # of each estimate's interval
    folds: int = Field(default=5, ge=2, le=20)  # folds checking the calibration; DLE cross-fits its loss models on them
    min_coverage: float = Field(default=0.8, ge=0.0, le=1.0)  # share of the window's (and reference's) slots with data

    @model_validator(mode="after")
    def _one_task(self) -> EstimationConfig:
        if self.metrics is not None:
            tasks = {task for task, names in ESTIMATED_METRICS.items() if set(self.metrics) <= set(names)}
            if not tasks:
                raise ValueError("'metrics' mixes classification metrics with regression ones (mae, rmse)")
            if self.task is not None and self.task not in tasks:
                raise ValueError(f"'metrics' {self.metrics} are not estimated for the task {self.task!r}")
        return self

    def metrics_of(self, task: str) -> list[str]:
        """The metrics estimated for ``task``; ``ValueError`` when the configured ones belong to another task."""
        names = ESTIMATED_METRICS[task]
        if self.metrics is None:
            return list(names)
        if not set(self.metrics) <= set(names):
            raise ValueError(f"estimation 'metrics' {self.metrics} do not apply to a {task} model")
        return list(self.metrics)


class OpsConfig(VersionedJobConfig):
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


CANARY_METRICS = ("accuracy", "precision", "recall", "error_rate", "mae", "rmse")
BASELINE_PREVIOUS = "previous"
CANDIDATE_LATEST = "latest"


def canary_metric(name: str) -> str:
    """A metric the canary can judge: one of ``CANARY_METRICS`` or ``latency_p<percentile>`` (``latency_p95``)."""
    if name in CANARY_METRICS:
        return name
    if name.startswith("latency_"):
        percentile_level(name.removeprefix("latency_"))  # raises ValueError naming the key
        return name
    raise ValueError(f"unknown canary metric {name!r}: use one of {', '.join(CANARY_METRICS)} or latency_p95 (any pNN)")


class CanaryConfig(JobConfig):
    """Two versions live in one window: the candidate against the baseline, and one verdict per run."""

    window: timedelta = timedelta(hours=1)
    severity: Literal["info", "warning", "critical"] = "critical"
    baseline: str = BASELINE_PREVIOUS  # a version, or "previous": the live version first seen before the candidate
    candidate: str = CANDIDATE_LATEST  # a version, or "latest": the live version first seen most recently
    metric: str = "accuracy"  # the metric the power calculation is for; it also rolls back when significantly worse
    min_detectable: float = Field(default=0.02, gt=0)  # the smallest worsening of `metric` that matters, in its units
    guardrails: list[str] = Field(default_factory=lambda: ["error_rate", "latency_p95"])  # also roll back on these
    confidence: float = Field(default=0.95, gt=0, lt=1)  # family-wise over `metric` and the guardrails
    power: float = Field(default=0.8, gt=0, lt=1)
    positive_label: str | int | float | bool = 1
    task: Literal["classification", "regression"] | None = None  # inferred when None
    first_seen_lookback: timedelta = timedelta(days=7)  # how far back versions' first predictions are looked for

    _l = field_validator("first_seen_lookback", mode="before")(lambda v: duration(v))

    @field_validator("metric")
    @classmethod
    def _metric(cls, name: str) -> str:
        return canary_metric(name)

    @field_validator("guardrails")
    @classmethod
    def _guardrails(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(canary_metric(n) for n in names))

    @model_validator(mode="after")
    def _versions(self) -> CanaryConfig:
        if self.baseline == CANDIDATE_LATEST:
            raise ValueError("'baseline' is a version or 'previous' ('latest' is for the candidate)")
        if self.candidate == BASELINE_PREVIOUS:
            raise ValueError("'candidate' is a version or 'latest' ('previous' is for the baseline)")
        if self.baseline == self.candidate:
            raise ValueError(f"'baseline' and 'candidate' are the same version {self.baseline!r}")
        return self
