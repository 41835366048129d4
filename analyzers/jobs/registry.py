"""The job table: every kind of job predwatch runs, in one place.

Each row names a job (its section under a model in the configuration, ``predwatch analyze --job``,
its findings' ``job``), its configuration class, the module whose ``run(store, model, config,
window)`` computes its finding, and its title in reports.  The configuration (``ModelConfig``), the
runner, the scheduler, the command line and the HTML report all read this table; adding a job is a
row here, its configuration class, its module and its findings' payload (see ``CONTRIBUTING.md``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from analyzers.config.jobs import (
    CanaryConfig,
    DriftConfig,
    EstimationConfig,
    FairnessConfig,
    JobConfig,
    OpsConfig,
    PerformanceConfig,
)

if TYPE_CHECKING:
    from analyzers.jobs.base import Job


@dataclass(frozen=True)
class JobSpec:
    """One kind of job.  ``module`` is imported when the job first runs, so reading the configuration
    does not load the statistics."""

    name: str
    config: type[JobConfig]
    module: str
    title: str

    @property
    def run(self) -> Job:
        """The job's ``run`` function."""
        return cast("Job", importlib.import_module(self.module).run)


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        JobSpec("drift", DriftConfig, "analyzers.jobs.drift", "Drift"),
        JobSpec("fairness", FairnessConfig, "analyzers.jobs.fairness", "Fairness"),
        JobSpec("performance", PerformanceConfig, "analyzers.jobs.performance", "Performance"),
        JobSpec("ops", OpsConfig, "analyzers.jobs.ops", "Operations"),
        JobSpec("canary", CanaryConfig, "analyzers.jobs.canary", "Canary"),
        JobSpec("estimation", EstimationConfig, "analyzers.jobs.estimation", "Estimated performance"),
    )
}
JOB_NAMES: tuple[str, ...] = tuple(JOBS)


def job_spec(name: str) -> JobSpec:
    """The row of a job; ``ValueError`` names the known jobs."""
    spec = JOBS.get(name)
    if spec is None:
        raise ValueError(f"unknown job {name!r}: expected one of {', '.join(JOB_NAMES)}")
    return spec
