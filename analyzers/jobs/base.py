"""What every job is: a function from (store, model, job config, window) to one finding."""

from __future__ import annotations

from typing import Protocol

from analyzers.config.models import JobConfig
from analyzers.findings import Finding
from analyzers.store.base import PredictionReader
from analyzers.timeutil import Window


class Job(Protocol):
    """A job reads one window of one model through the store and returns its finding.

    It never raises for bad or missing data: no data is ``insufficient_data``, a failure
    inside is ``error`` with the message, so a scheduler can report either.
    """

    def __call__(self, store: PredictionReader, model: str, config: JobConfig, window: Window) -> Finding: ...


def error_finding(model: str, job: str, window: Window, exc: BaseException) -> Finding:
    """The ``error`` finding that reports a job's failure instead of raising it."""
    return Finding(model, job, window, "error", error=f"{type(exc).__name__}: {exc}")
