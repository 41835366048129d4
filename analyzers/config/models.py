"""The configuration's shape: store, Slack, Kibana, state and each monitored model's jobs.

Unknown keys are errors (``extra="forbid"``) so typos are caught at load time.  Durations are
strings such as ``15m`` or ``7d``; times are ISO 8601 (UTC when no offset).  Each job's section is
its class in :mod:`analyzers.config.jobs`, named by the job table (:mod:`analyzers.jobs.registry`);
the ``store`` section is :mod:`analyzers.store.settings`.  Every configuration class can be imported
from here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from pydantic import Field, create_model, field_validator, model_validator

from analyzers.config.base import Strict, duration
from analyzers.config.jobs import (
    DriftConfig,
    EstimatedMetric,
    EstimationConfig,
    FairnessConfig,
    FeatureOverride,
    JobConfig,
    MultivariateConfig,
    OpsConfig,
    PerformanceConfig,
    ReferenceConfig,
    Schedule,
)
from analyzers.jobs.registry import JOBS
from analyzers.store.settings import DEFAULT_MEMORY_LIMIT, ElasticsearchStoreConfig, LocalStoreConfig, StoreConfig

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "Config",
    "DriftConfig",
    "ElasticsearchStoreConfig",
    "EstimatedMetric",
    "EstimationConfig",
    "FairnessConfig",
    "FeatureOverride",
    "JobConfig",
    "KibanaConfig",
    "LocalStoreConfig",
    "ModelConfig",
    "MultivariateConfig",
    "OpsConfig",
    "PerformanceConfig",
    "ReferenceConfig",
    "Schedule",
    "SchedulerConfig",
    "SlackConfig",
    "StateConfig",
    "StoreConfig",
    "Strict",
]


class SlackConfig(Strict):
    token: str | None = None
    channel: str | None = None
    webhook_url: str | None = None
    base_url: str | None = None
    mention: str | None = None  # e.g. "<!here>" for critical alerts
    report_url: str | None = None  # embedded mode: where the HTML reports are served, linked from alerts
    max_items: int = Field(default=10, ge=1, le=40)  # alerts listed in one message before "and N more"

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


class ModelJobs(Strict):
    """A monitored model: one optional section per job of the job table, and how late its lines arrive."""

    ingest_delay: timedelta = timedelta(minutes=2)

    _d = field_validator("ingest_delay", mode="before")(lambda v: duration(v))

    def job(self, name: str) -> JobConfig | None:
        """The configuration of the job ``name``, ``None`` when it is not configured."""
        job = getattr(self, name, None)
        return job if isinstance(job, JobConfig) else None

    def jobs(self) -> dict[str, JobConfig]:
        """Configured and enabled jobs by name, in the job table's order."""
        out: dict[str, JobConfig] = {}
        for name in JOBS:
            job = self.job(name)
            if job is not None and job.enabled:
                out[name] = job
        return out


if TYPE_CHECKING:
    ModelConfig = ModelJobs
else:
    ModelConfig = create_model(
        "ModelConfig",
        __base__=ModelJobs,
        __module__=__name__,
        **{name: (spec.config | None, None) for name, spec in JOBS.items()},
    )


class SchedulerConfig(Strict):
    """``predwatch run``: how many missed windows a restart catches up on, and how late a run may start."""

    catch_up: int = Field(default=24, ge=0)
    misfire_grace: timedelta = timedelta(minutes=10)
    outbox_every: timedelta = timedelta(minutes=1)  # how often undelivered alerts are retried

    _d = field_validator("misfire_grace", "outbox_every", mode="before")(lambda v: duration(v))


class Config(Strict):
    store: StoreConfig = Field(default_factory=StoreConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    slack: SlackConfig | None = None
    kibana: KibanaConfig | None = None
    models: dict[str, ModelConfig] = Field(default_factory=dict)
