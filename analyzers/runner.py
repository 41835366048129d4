"""Run configured jobs over their windows, store what they found, and return the findings.

The same path serves ``predwatch analyze`` (once, now or ``--at``) and the scheduler (at each
scheduled time), so that both analyse the same windows the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from analyzers.config.models import Config, JobConfig, QualityConfig, VersionedJobConfig
from analyzers.findings import Finding, WindowQuality
from analyzers.jobs.base import Job, error_finding
from analyzers.jobs.registry import JOB_NAMES, job_spec
from analyzers.jobs.versions import run_by_version
from analyzers.store.base import PredictionReader, Query, Store
from analyzers.timeutil import Window
from analyzers.windows import job_window

__all__ = ["JOB_NAMES", "job_function", "job_window", "run_job", "run_jobs", "with_paths_resolved"]


def job_function(name: str) -> Job:
    """The ``run`` function of a job of the job table (:mod:`analyzers.jobs.registry`)."""
    return job_spec(name).run


def with_paths_resolved(job: JobConfig, base: Path | None) -> JobConfig:
    """A copy of the job config whose reference file (if any) is relative to the config's directory."""
    reference = getattr(job, "reference", None)
    if base is None or reference is None or reference.file is None or Path(reference.file).is_absolute():
        return job
    return job.model_copy(update={"reference": reference.model_copy(update={"file": str(base / reference.file)})})


def window_quality(store: PredictionReader, model: str, window: Window, quality: QualityConfig) -> WindowQuality:
    """The ``quality`` every finding carries: the window's lines set aside by reason, and the share that alerts."""
    try:
        return WindowQuality(store.quality(Query(model, window)), quality.max_bad_share)
    except Exception as exc:
        return WindowQuality(None, quality.max_bad_share, error=str(exc))


def run_job(
    store: PredictionReader,
    model: str,
    name: str,
    job: JobConfig,
    window: Window,
    *,
    quality: QualityConfig | None = None,
) -> Finding:
    """One job over one window (and each model version alone with ``by_version``), with its window's quality, its
    reads bounded by the job's timeout; an exception becomes an ``error`` finding, never a crash."""
    with store.budget(job.timeout.total_seconds()), store.snapshot():
        try:
            if isinstance(job, VersionedJobConfig) and job.by_version:
                finding = run_by_version(job_function(name), store, model, job, window)
            else:
                finding = job_function(name)(store, model, job, window)
        except Exception as exc:
            finding = error_finding(model, name, window, exc)
        finding.quality = window_quality(store, model, window, quality or QualityConfig())
    return finding


def run_jobs(
    store: Store,
    config: Config,
    *,
    models: Iterable[str] | None = None,
    jobs: Iterable[str] | None = None,
    at: datetime | None = None,
    base: Path | None = None,
    progress: Callable[[str, str], None] | None = None,
    record: bool = True,
) -> list[Finding]:
    """Every selected job of every selected model, once; findings are written to the store unless
    ``record`` is false (a dry run)."""
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
            findings.append(
                run_job(store, model, name, with_paths_resolved(job, base), window, quality=config.quality_for(model))
            )
    if findings and record:
        store.write_findings(findings)
    return findings
