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

from pydantic import Field, ValidationInfo, create_model, field_validator, model_validator

from analyzers.config.base import Strict, duration
from analyzers.config.channels import (
    ChannelSettings,
    ConfirmConfig,
    DeliveryConfig,
    RouteConfig,
    SlackConfig,
    WebhookConfig,
)
from analyzers.config.jobs import (
    CanaryConfig,
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
    VersionedJobConfig,
)
from analyzers.jobs.registry import JOBS
from analyzers.store.settings import DEFAULT_MEMORY_LIMIT, ElasticsearchStoreConfig, LocalStoreConfig, StoreConfig

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "CanaryConfig",
    "ChannelSettings",
    "Config",
    "ConfirmConfig",
    "DeliveryConfig",
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
    "QualityConfig",
    "ReferenceConfig",
    "RouteConfig",
    "Schedule",
    "SchedulerConfig",
    "SlackConfig",
    "StateConfig",
    "StoreConfig",
    "Strict",
    "VersionedJobConfig",
    "WebhookConfig",
]


class KibanaConfig(Strict):
    url: str = "http://localhost:5601"
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    space: str | None = None


class StateConfig(Strict):
    path: str | None = None  # default: .predwatch/ beside the log directory


class QualityConfig(Strict):
    """When the lines of a job's window that were set aside (bad JSON, repeated ids, ...) raise an alert."""

    max_bad_share: float = Field(default=0.01, ge=0.0, le=1.0)


class ModelJobs(Strict):
    """A monitored model: one optional section per job of the job table, how late its lines arrive, and its
    own data-quality limit."""

    ingest_delay: timedelta = timedelta(minutes=2)
    quality: QualityConfig | None = None  # default: the configuration's top-level ``quality``

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
    """``predwatch run``: how many missed windows a restart catches up on, how late a run may start, and
    where Prometheus metrics are served."""

    catch_up: int = Field(default=24, ge=0)
    misfire_grace: timedelta = timedelta(minutes=10)
    outbox_every: timedelta = timedelta(minutes=1)  # how often undelivered alerts are retried
    metrics_port: int | None = Field(default=None, ge=0, le=65535)  # serve /metrics (predwatch run --metrics-port)
    metrics_address: str = "127.0.0.1"  # where /metrics listens; 0.0.0.0 for every interface (containers)
    metrics_max_columns: int = Field(default=50, ge=0)  # drift columns exported per model (drifted first)
    metrics_max_groups: int = Field(default=50, ge=0)  # fairness groups exported per model (alerting first)
    metrics_max_versions: int = Field(default=5, ge=0)  # versions exported per job and canary (most traffic first)
    # a message waits this long at most for the other jobs of its model fired at the same time
    group_wait: timedelta = timedelta(minutes=1)

    _d = field_validator("misfire_grace", "outbox_every", "group_wait", mode="before")(lambda v: duration(v))


class Config(Strict):
    store: StoreConfig = Field(default_factory=StoreConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    slack: SlackConfig | None = None
    webhooks: dict[str, WebhookConfig] = Field(default_factory=dict)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    kibana: KibanaConfig | None = None
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    # last: its validation sees every channel above it
    routes: list[RouteConfig] | None = None  # default: every channel receives every alert

    def channel_settings(self) -> dict[str, ChannelSettings]:
        """Every configured channel by its name: a field holding settings (``slack``), or each entry of a
        field holding a mapping of them (``webhooks``)."""
        return _channels({name: getattr(self, name) for name in type(self).model_fields})

    def quality_for(self, model: str) -> QualityConfig:
        """The model's own ``quality`` settings, else the configuration's."""
        own = self.models[model].quality if model in self.models else None
        return own or self.quality

    @field_validator("routes")
    @classmethod
    def _known_channels(cls, routes: list[RouteConfig] | None, info: ValidationInfo) -> list[RouteConfig] | None:
        known = _channels(info.data)
        for route in routes or []:
            for channel in route.channels:
                if channel not in known:
                    names = ", ".join(sorted(known)) or "none"
                    raise ValueError(f"unknown channel {channel!r} in a route (configured channels: {names})")
        return routes

    @model_validator(mode="after")
    def _names_unique(self) -> Config:
        for name in self.webhooks:
            if name in type(self).model_fields or name == "terminal":
                raise ValueError(f"webhooks.{name}: {name!r} names another channel or section; pick another name")
        return self


def _channels(fields: dict[str, object]) -> dict[str, ChannelSettings]:
    """Channel settings among a configuration's fields, by channel name."""
    out: dict[str, ChannelSettings] = {}
    for name, value in fields.items():
        if isinstance(value, ChannelSettings):
            out[name] = value
        elif isinstance(value, dict):
            out.update({key: item for key, item in value.items() if isinstance(item, ChannelSettings)})
    return out
