"""The configuration's shape: store, Slack, Kibana, state and each monitored model's jobs.

Unknown keys are errors (``extra="forbid"``) so typos are caught at load time.  Durations are
strings such as ``15m`` or ``7d``; times are ISO 8601 (UTC when no offset).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from analyzers.timeutil import parse_duration, parse_time


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _duration(value: object) -> timedelta:
    return parse_duration(value)  # type: ignore[arg-type]


class Schedule(Strict):
    """When a job runs: ``every`` an interval, or a ``cron`` expression (UTC)."""

    every: timedelta | None = None
    cron: str | None = None

    _v = field_validator("every", mode="before")(lambda v: None if v is None else _duration(v))

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of 'every' or 'cron'")
        if self.every is not None and self.every.total_seconds() <= 0:
            raise ValueError("'every' must be longer than zero")
        if self.cron is not None:
            from analyzers.schedule import make_trigger

            make_trigger(self)  # raises ValueError naming the bad field
        return self


# DuckDB's working memory in the local store: past it, sorts, joins and aggregates spill to disk instead
# of growing the process, so a window costs about this much memory whatever its size.
DEFAULT_MEMORY_LIMIT = "256MB"
_MEMORY_SIZE = r"(?i)^\s*\d+(\.\d+)?\s*(b|kb|mb|gb|tb|kib|mib|gib|tib|%)\s*$"


class LocalStoreConfig(Strict):
    path: str = "./logs"
    # DuckDB's working memory for scans ("256MB", "2GB", "25%"); beyond it, work spills to <state>/spill.
    memory_limit: str = Field(DEFAULT_MEMORY_LIMIT, pattern=_MEMORY_SIZE)
    # Beyond these a log line is set aside (and counted in quality) instead of parsed: Filebeat's max_bytes,
    # and caps on feature and group keys per line and per file, so that hostile lines cost a line, not a day.
    max_line_bytes: int = Field(10 * 2**20, ge=1024)
    max_keys_per_line: int = Field(1000, ge=1)
    max_keys_per_file: int = Field(1000, ge=1)


class ElasticsearchStoreConfig(Strict):
    hosts: list[str]
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    verify_certs: bool = True
    request_timeout: float = 30.0
    max_retries: int = 5


class StoreConfig(Strict):
    local: LocalStoreConfig | None = None
    elasticsearch: ElasticsearchStoreConfig | None = None

    @model_validator(mode="after")
    def _one_of(self) -> StoreConfig:
        if self.local is not None and self.elasticsearch is not None:
            raise ValueError("give one of 'local' or 'elasticsearch', not both")
        if self.local is None and self.elasticsearch is None:
            self.local = LocalStoreConfig()
        return self


class SlackConfig(Strict):
    token: str | None = None
    channel: str | None = None
    webhook_url: str | None = None
    base_url: str | None = None
    mention: str | None = None  # e.g. "<!here>" for critical alerts
    report_url: str | None = None  # embedded mode: where the HTML reports are served, linked from alerts
    max_items: int = Field(10, ge=1, le=40)  # alerts listed in one message before "and N more"

    @model_validator(mode="after")
    def _how(self) -> SlackConfig:
        if self.token and not self.channel:
            raise ValueError("a bot token needs a 'channel'")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.webhook_url)


class KibanaConfig(Strict):
    url: str = "http://localhost:5601"
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    space: str | None = None


class StateConfig(Strict):
    path: str | None = None  # default: .predwatch/ beside the log directory


class ReferenceConfig(Strict):
    """A fixed window (``start``/``end``), a relative one (``last``/``ending``), or a ``file``."""

    start: datetime | None = None
    end: datetime | None = None
    last: timedelta | None = None
    ending: timedelta | None = None
    file: str | None = None

    _t = field_validator("start", "end", mode="before")(lambda v: None if v is None else parse_time(v))
    _d = field_validator("last", "ending", mode="before")(lambda v: None if v is None else _duration(v))

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
    cooldown_backoff: float = Field(1.0, ge=1.0)  # each re-send of a still-firing alert waits this many times longer
    max_cooldown: timedelta = timedelta(days=1)
    timeout: timedelta = timedelta(minutes=15)  # a run that takes longer is reported as a monitoring problem
    min_rows: int = 100

    _w = field_validator("window", "cooldown", "max_cooldown", "timeout", mode="before")(lambda v: _duration(v))


class FeatureOverride(Strict):
    method: str | None = None  # e.g. ks, wasserstein, psi, chisquare, jensenshannon
    threshold: float | None = None
    kind: Literal["numeric", "categorical"] | None = None
    ignore: bool = False


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
    bucket: timedelta = timedelta(minutes=5)
    max_silence: timedelta = timedelta(minutes=30)  # no predictions for this long alerts
    max_error_rate: float = 0.05
    latency_ms: dict[str, float] = Field(default_factory=lambda: {"p95": 500.0})

    _b = field_validator("bucket", "max_silence", mode="before")(lambda v: _duration(v))


class QualityConfig(Strict):
    """When the lines of a job's window that were set aside (bad JSON, repeated ids, ...) raise an alert."""

    max_bad_share: float = Field(0.01, ge=0.0, le=1.0)


class ModelConfig(Strict):
    drift: DriftConfig | None = None
    fairness: FairnessConfig | None = None
    performance: PerformanceConfig | None = None
    ops: OpsConfig | None = None
    ingest_delay: timedelta = timedelta(minutes=2)
    quality: QualityConfig | None = None  # default: the configuration's top-level ``quality``

    _d = field_validator("ingest_delay", mode="before")(lambda v: _duration(v))

    def jobs(self) -> dict[str, JobConfig]:
        """Configured and enabled jobs by name."""
        out: dict[str, JobConfig] = {}
        for name in ("drift", "fairness", "performance", "ops"):
            job = getattr(self, name)
            if job is not None and job.enabled:
                out[name] = job
        return out


class SchedulerConfig(Strict):
    """``predwatch run``: how many missed windows a restart catches up on, and how late a run may start."""

    catch_up: int = Field(24, ge=0)
    misfire_grace: timedelta = timedelta(minutes=10)
    outbox_every: timedelta = timedelta(minutes=1)  # how often undelivered alerts are retried

    _d = field_validator("misfire_grace", "outbox_every", mode="before")(lambda v: _duration(v))


class Config(Strict):
    store: StoreConfig = Field(default_factory=StoreConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    slack: SlackConfig | None = None
    kibana: KibanaConfig | None = None
    models: dict[str, ModelConfig] = Field(default_factory=dict)

    def quality_for(self, model: str) -> QualityConfig:
        """The model's own ``quality`` settings, else the configuration's."""
        own = self.models[model].quality if model in self.models else None
        return own or self.quality
