"""``PredictionLogger``: the API services call to log predictions, feedback and failures.

On the caller's thread it only takes the time, makes the id, decides sampling and hands the
arguments over; building and writing the JSON happen on the writer thread set up by
:func:`logshipper.configure`.  Without ``configure`` the events go through the standard
``logging`` module (logger ``predwatch.predictions``), where :class:`logshipper.JsonFormatter`
writes them in the same shape, so a service that already configures logging keeps its set-up.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from logshipper import events, lifecycle, sampling
from logshipper.ids import new_prediction_id

PAYLOAD_ATTR = "predwatch_event"  # LogRecord attribute that carries (builder, fields) to the formatter
LOGGER_NAME = "predwatch.predictions"
_F = TypeVar("_F", bound=Callable[..., Any])


class PredictionLogger:
    """Logs one model's predictions, their later feedback and failed predictions.

    ``sample_rate`` < 1 logs that fraction of predictions, chosen deterministically by
    ``entity_id`` (``sample_by="entity"``: an entity is always in or always out, falling back to
    the id when there is none) or by prediction id; the rate is written in each event
    (``ml.sample_rate``) so that analyzers weight counts by its inverse.  The decision is written into
    the prediction id, and feedback is kept exactly when its prediction was, decided from the id alone
    (so a process that only has the id, with the same ``sample_rate``, keeps the same pairs).  A
    ``prediction_id`` given by the caller is sampled by that id.  Failures are always logged.
    """

    def __init__(
        self,
        model: str,
        version: str | None = None,
        *,
        sample_rate: float = 1.0,
        sample_by: Literal["entity", "id"] = "entity",
        logger: logging.Logger | None = None,
    ) -> None:
        if not model or not isinstance(model, str):
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if model != model.lower() or any(c in model for c in ' "*\\<|,>/?#:'):
            raise ValueError(
                f"model {model!r} cannot name an Elasticsearch index: use lowercase letters, digits, '-' and '_'"
            )
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
        if sample_by not in ("entity", "id"):
            raise ValueError(f"sample_by must be 'entity' or 'id', got {sample_by!r}")
        self.model = model
        self.version = None if version is None else str(version)
        self.sample_rate = float(sample_rate)
        self.sample_by = sample_by
        self._logger = logger or logging.getLogger(LOGGER_NAME)

    # ---- the three kinds of event ----------------------------------------------------------
    def prediction(
        self,
        features: Mapping[str, Any] | None,
        prediction: Any,
        score: Any = None,
        groups: Mapping[str, Any] | None = None,
        entity_id: Any = None,
        latency_ms: Any = None,
        timestamp: Any = None,
        *,
        prediction_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Log a prediction; returns its id (time-ordered, unique across processes) to attach feedback."""
        time_ns, problems = _event_time(timestamp)
        pid, keep = self._new_id(None if timestamp is None else time_ns, prediction_id, entity_id)
        if not keep:
            return pid
        self._emit(
            events.prediction_event,
            {
                "time_ns": time_ns,
                "prediction_id": pid,
                "model": self.model,
                "version": self.version,
                "features": _copy(features),
                "prediction": prediction,
                "score": score,
                "groups": _copy(groups),
                "entity_id": entity_id,
                "latency_ms": latency_ms,
                "sample_rate": self.sample_rate,
                "extra": _copy(extra),
                "problems": problems,
            },
        )
        return pid

    def feedback(
        self,
        prediction_id: str,
        label: Any,
        timestamp: Any = None,
        *,
        entity_id: Any = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Log the ground truth of an earlier prediction (it may come days later).

        With sampling, it is written exactly when its prediction was (decided from ``prediction_id``);
        ``entity_id`` is written with it.
        """
        if self.sample_rate < 1.0 and not sampling.id_kept(str(prediction_id), self.sample_rate):
            return
        time_ns, problems = _event_time(timestamp)
        self._emit(
            events.feedback_event,
            {
                "time_ns": time_ns,
                "prediction_id": str(prediction_id),
                "model": self.model,
                "version": self.version,
                "label": label,
                "entity_id": entity_id,
                "extra": _copy(extra),
                "problems": problems,
            },
        )

    def failure(
        self,
        error: BaseException | str,
        features: Mapping[str, Any] | None = None,
        groups: Mapping[str, Any] | None = None,
        entity_id: Any = None,
        latency_ms: Any = None,
        timestamp: Any = None,
        *,
        prediction_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Log a prediction that failed, with ECS ``error.type``, ``error.message`` and the stack trace
        (formatted on the writer thread, so a failing service does not pay for it)."""
        time_ns, problems = _event_time(timestamp)
        pid = prediction_id if prediction_id is not None else new_prediction_id(None if timestamp is None else time_ns)
        self._emit(
            events.failure_event,
            {
                "time_ns": time_ns,
                "prediction_id": pid,
                "model": self.model,
                "version": self.version,
                "error": error,
                "features": _copy(features),
                "groups": _copy(groups),
                "entity_id": entity_id,
                "latency_ms": latency_ms,
                "extra": _copy(extra),
                "problems": problems,
            },
        )
        return pid

    # ---- measuring calls -------------------------------------------------------------------
    def track(
        self, features: Mapping[str, Any] | None, groups: Mapping[str, Any] | None = None, entity_id: Any = None
    ) -> Tracked:
        """A context manager that times the block and logs its outcome::

            with plog.track(features, groups={"region": "EU"}, entity_id=user) as t:
                t.record(model.predict(x), score=p)

        The prediction is logged with the measured latency when the block ends; when the block
        raises, a failure is logged instead and the exception propagates.
        """
        return Tracked(self, features, groups, entity_id)

    def observe(
        self,
        func: _F | None = None,
        *,
        groups: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
        entity_id: Callable[[Mapping[str, Any]], Any] | None = None,
    ) -> Any:
        """Decorator for ``predict(features, ...)`` (or a method ``predict(self, features, ...)``): logs each
        call's result and latency, or its failure.

        The features are the ``features=`` argument, else the first positional argument that is a
        mapping (a dict or a pandas Series).  The result may be a label, a ``(label, score)`` pair, or a
        mapping with ``prediction`` and ``score``; ``groups`` and ``entity_id`` are functions of the
        features that give those fields.
        """

        def decorate(fn: _F) -> _F:
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                features = _features_of(args, kwargs)
                g = _safely(groups, features)
                e = _safely(entity_id, features)
                with self.track(features, groups=g, entity_id=e) as tracked:
                    result = fn(*args, **kwargs)
                    label, score = _split_result(result)
                    tracked.record(label, score=score)
                return result

            return wrapper  # type: ignore[return-value]

        return decorate(func) if func is not None else decorate

    # ---- internals -------------------------------------------------------------------------
    def _new_id(self, time_ns: int | None, given: str | None, entity_id: Any) -> tuple[str, bool]:
        """The prediction's id and whether it is kept; with sampling by entity, the id carries the decision."""
        rate = self.sample_rate
        if given is not None:
            return given, rate >= 1.0 or sampling.id_kept(given, rate)
        if rate >= 1.0:
            return new_prediction_id(time_ns), True
        if self.sample_by == "entity" and entity_id is not None:
            keep, bits = sampling.entity_range(entity_id, rate)
            return new_prediction_id(time_ns, random_range=bits), keep
        pid = new_prediction_id(time_ns)
        return pid, sampling.id_kept(pid, rate)

    def _emit(self, builder: events.Builder, fields: dict[str, Any]) -> None:
        try:
            pipeline = lifecycle.current()
            if pipeline is not None:
                pipeline.submit(builder, fields)
            elif self._logger.isEnabledFor(logging.INFO):
                level = logging.ERROR if builder is events.failure_event else logging.INFO
                message = {events.prediction_event: "prediction", events.feedback_event: "feedback"}.get(
                    builder, "prediction failed"
                )
                self._logger.log(level, message, extra={PAYLOAD_ATTR: (builder, fields)})
        except Exception:  # logging must never raise into the service
            logging.getLogger("logshipper").debug("could not hand over an event", exc_info=True)


class Tracked:
    """What :meth:`PredictionLogger.track` yields: call :meth:`record` with the model's output."""

    def __init__(self, plog: PredictionLogger, features: Any, groups: Any, entity_id: Any) -> None:
        self._plog, self._features, self._groups, self._entity_id = plog, features, groups, entity_id
        self._result: tuple[Any, Any, Mapping[str, Any] | None] | None = None
        self.prediction_id: str | None = None
        self.latency_ms: float | None = None

    def record(self, prediction: Any, score: Any = None, *, extra: Mapping[str, Any] | None = None) -> None:
        """The model's output, logged when the block ends."""
        self._result = (prediction, score, extra)

    def __enter__(self) -> Tracked:
        self._started = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        self.latency_ms = (time.perf_counter() - self._started) * 1000.0
        if exc is not None:
            self.prediction_id = self._plog.failure(
                exc, self._features, self._groups, self._entity_id, latency_ms=self.latency_ms
            )
        elif self._result is not None:
            prediction, score, extra = self._result
            self.prediction_id = self._plog.prediction(
                self._features, prediction, score, self._groups, self._entity_id, self.latency_ms, extra=extra
            )
        return False


def _event_time(timestamp: Any) -> tuple[int, list[str] | None]:
    if timestamp is None:
        return time.time_ns(), None
    try:
        return events.ns_from_timestamp(timestamp), None
    except Exception as exc:
        return time.time_ns(), [f"@timestamp: {timestamp!r:.80} unusable ({exc}); the logging time was used"]


def _copy(values: Mapping[str, Any] | None) -> Any:
    """A shallow copy, so a caller that reuses its dict after the call does not change what is logged."""
    if values is None:
        return None
    if type(values) is dict:
        return values.copy()
    try:
        return dict(values)
    except Exception:
        return values


def _features_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The features of a decorated call: ``features=``, else the first positional mapping."""
    if "features" in kwargs:
        return kwargs["features"]
    for arg in args:
        if isinstance(arg, Mapping) or (hasattr(arg, "items") and hasattr(arg, "keys")):
            return arg
    return None


def _safely(func: Callable[[Mapping[str, Any]], Any] | None, features: Mapping[str, Any]) -> Any:
    if func is None:
        return None
    try:
        return func(features)
    except Exception:
        return None


def _split_result(result: Any) -> tuple[Any, Any]:
    if isinstance(result, tuple) and len(result) == 2:
        return result[0], result[1]
    if isinstance(result, Mapping) and "prediction" in result:
        return result["prediction"], result.get("score")
    return result, None
