"""What every window means: a job's window and its reference, resolved for one evaluation time.

The evaluation time ``T`` is ``--at`` when given, else the moment of the run (the scheduler's fire
time, or now) less the model's ``ingest_delay``.  A job's ``window: D`` is ``[T - D, T)``.  Its
reference is

- ``{start, end}``: that fixed span, whatever ``T`` is;
- ``{last: L, ending: E}``: the span of length ``L`` that ends ``E`` before the window starts
  (``E`` defaults to 0, the ``L`` just before the window);
- ``{file: F}``: the rows of a file, which have no time;
- no reference (performance only): the previous window of the same length, ``{last: D}``.

The scheduler, ``analyze``, every job and ``report`` resolve windows here, so one configuration
means the same spans everywhere (``docs/windows.md`` has worked examples).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from analyzers.config.jobs import JobConfig, ReferenceConfig
from analyzers.config.models import ModelConfig
from analyzers.timeutil import Window, parse_time, utcnow


def evaluation_time(model: ModelConfig, at: datetime | str | None = None, *, now: datetime | None = None) -> datetime:
    """``T``: ``at`` itself when given, else ``now`` (default: the current time, to the second) less the ingest
    delay."""
    if at is not None:
        return parse_time(at)
    return (now if now is not None else utcnow().replace(microsecond=0)) - model.ingest_delay


def job_window(
    model: ModelConfig,
    job: JobConfig,
    at: datetime | str | None = None,
    *,
    now: datetime | None = None,
    length: timedelta | None = None,
) -> Window:
    """The window a job analyses: ``[T - window, T)``; ``length`` overrides the configured window."""
    return Window.ending(evaluation_time(model, at, now=now), length if length is not None else job.window)


def reference_window(window: Window, reference: ReferenceConfig | None) -> Window | None:
    """The reference span of ``window``; ``None`` for a reference file (its rows have no time).

    ``reference=None`` is the previous window of the same length (the performance job's default).
    """
    if reference is None:
        return window.shift(-window.length)
    if reference.file is not None:
        return None
    if reference.start is not None and reference.end is not None:
        return Window(reference.start, reference.end)
    if reference.last is None:
        raise ValueError("a reference needs {start, end}, {last, ending} or {file}")
    end = window.start - (reference.ending or timedelta(0))
    return Window(end - reference.last, end)


@dataclass(frozen=True)
class JobWindows:
    """A job's window and what it is compared with at one evaluation time."""

    window: Window
    compares: bool  # whether the job compares with a reference at all (drift, performance)
    reference: Window | None = None  # the reference span, when it is a window
    reference_file: str | None = None  # the reference file, when it is one


def resolve(
    model: ModelConfig,
    job: JobConfig,
    at: datetime | str | None = None,
    *,
    now: datetime | None = None,
    length: timedelta | None = None,
) -> JobWindows:
    """The window of ``job`` at ``T`` and, for a job with a ``reference`` setting, its reference."""
    window = job_window(model, job, at, now=now, length=length)
    if "reference" not in type(job).model_fields:
        return JobWindows(window, compares=False)
    reference: ReferenceConfig | None = getattr(job, "reference", None)
    file = reference.file if reference is not None else None
    return JobWindows(window, compares=True, reference=reference_window(window, reference), reference_file=file)
