"""Run configured jobs over their windows, store what they found, and return the findings.

The same path serves ``predwatch analyze`` (once, now or ``--at``) and the scheduler (at each
scheduled time), so that both analyse the same windows the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from analyzers.config.models import Config, JobConfig, ModelConfig
from analyzers.findings import Finding
from analyzers.jobs.base import Job, error_finding
from analyzers.store.base import Store
from analyzers.timeutil import Window, parse_time, utcnow

JOB_NAMES = ("drift", "fairness", "performance", "ops")


def job_function(name: str) -> Job:
    """The ``run`` function of a job module (``analyzers.jobs.<name>``)."""
    if name not in JOB_NAMES:
        raise ValueError(f"unknown job {name!r}: expected one of {', '.join(JOB_NAMES)}")
    return importlib.import_module(f"analyzers.jobs.{name}").run


def job_window(model: ModelConfig, job: JobConfig, at: datetime | None) -> Window:
    """The window a job analyses: its length, ending at ``at`` (or now less the model's ingest delay)."""
    end = parse_time(at) if at is not None else utcnow() - model.ingest_delay
    return Window.ending(end, job.window)


def with_paths_resolved(job: JobConfig, base: Path | None) -> JobConfig:
    """A copy of the job config whose reference file (if any) is relative to the config's directory."""
    reference = getattr(job, "reference", None)
    if base is None or reference is None or reference.file is None or Path(reference.file).is_absolute():
        return job
    return job.model_copy(update={"reference": reference.model_copy(update={"file": str(base / reference.file)})})


def run_job(store: Store, model: str, name: str, job: JobConfig, window: Window) -> Finding:
    """One job over one window, its reads bounded by the job's timeout; an exception becomes an ``error``
    finding, never a crash."""
    try:
        with store.budget(job.timeout.total_seconds()):
            return job_function(name)(store, model, job, window)
    except Exception as exc:
        return error_finding(model, name, window, exc)


def run_jobs(
    store: Store,
    config: Config,
    *,
    models: Iterable[str] | None = None,
    jobs: Iterable[str] | None = None,
    at: datetime | None = None,
    base: Path | None = None,
    progress: Callable[[str, str], None] | None = None,
) -> list[Finding]:
    """Every selected job of every selected model, once; findings are written to the store."""
    wanted_models = set(models) if models is not None else None
    wanted_jobs = set(jobs) if jobs is not None else None
    unknown = (wanted_models or set()) - set(config.models)
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(sorted(unknown))}: configured are {', '.join(config.models)}")
    findings = []
    for model, model_config in config.models.items():
        if wanted_models is not None and model not in wanted_models:
            continue
        for name, job in model_config.jobs().items():
            if wanted_jobs is not None and name not in wanted_jobs:
                continue
            if progress is not None:
                progress(model, name)
            window = job_window(model_config, job, at)
            findings.append(run_job(store, model, name, with_paths_resolved(job, base), window))
    if findings:
        store.write_findings(findings)
    return findings
