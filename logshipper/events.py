"""Prediction, feedback and failure events: the ECS-shaped dicts of docs/event-schema.md, and their JSON lines.

Building and encoding happen off the caller's thread (in the handler's listener), so the
service pays only for handing over its arguments.  Every name comes from :mod:`logshipper.schema`.
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logshipper import encoding, schema
from logshipper.redaction import Redactor

_EPOCH = dt.datetime(1970, 1, 1)
_second_cache: dict[int, str] = {}


def iso_from_ns(time_ns: int) -> str:
    """``2026-11-22T10:15:30.123Z`` (UTC, milliseconds) from Unix nanoseconds; cached per second."""
    seconds, rest = divmod(time_ns, 1_000_000_000)
    prefix = _second_cache.get(seconds)
    if prefix is None:
        if len(_second_cache) > 4096:
            _second_cache.clear()
        prefix = (_EPOCH + dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")
        _second_cache[seconds] = prefix
    return f"{prefix}.{rest // 1_000_000:03d}Z"


def ns_from_timestamp(value: Any) -> int:
    """Unix nanoseconds from a datetime (naive = UTC), an ISO 8601 string, or Unix seconds."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if isinstance(value, str):
        text = value.strip()
        parsed = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        return ns_from_timestamp(parsed)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(float(value) * 1_000_000_000)
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        return ns_from_timestamp(value.to_pydatetime())
    raise TypeError(f"timestamp must be a datetime, an ISO 8601 string or Unix seconds, not {type(value).__name__}")


@dataclass(frozen=True)
class Service:
    """Who writes the events: ECS ``service.*`` and the redaction every event of it gets."""

    name: str | None = None
    version: str | None = None
    environment: str | None = None
    redactor: Redactor | None = None

    def as_ecs(self) -> dict[str, str]:
        out = {"name": self.name, "version": self.version, "environment": self.environment}
        return {k: v for k, v in out.items() if v is not None}


def _base(service: Service, time_ns: int, level: str, message: str, dataset: str, outcome: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        schema.TIMESTAMP: iso_from_ns(time_ns),
        schema.LOG_LEVEL: level,
        schema.MESSAGE: message,
        schema.ECS_VERSION_FIELD: schema.ECS_VERSION,
        "event": {"dataset": dataset, "kind": "event", "outcome": outcome},
    }
    ecs_service = service.as_ecs()
    if ecs_service:
        event["service"] = ecs_service
    return event


def _ml(model: str, version: str | None, prediction_id: str) -> dict[str, Any]:
    ml: dict[str, Any] = {
        "schema_version": schema.SCHEMA_VERSION,
        "prediction_id": prediction_id,
        "model": {"name": model},
    }
    if version is not None:
        ml["model"]["version"] = version
    return ml


def _inputs(ml: dict[str, Any], features: Any, groups: Any, entity_id: Any, notes: encoding.Notes) -> None:
    if features is not None:
        ml["features"] = _mapping(features, "ml.features", notes)
    if groups:
        ml["groups"] = _mapping(groups, "ml.groups", notes)
    if entity_id is not None:
        ml["entity_id"] = entity_id if type(entity_id) is str else encoding.clean(entity_id, "ml.entity_id", notes)


def _mapping(values: Any, path: str, notes: encoding.Notes) -> Any:
    if type(values) is dict:
        return encoding.clean_mapping_in_place(values, path, notes)
    if hasattr(values, "items"):
        return encoding.clean_mapping_in_place(dict(values.items()), path, notes)
    notes.changed.append(f"{path}: expected a mapping of names to values, got {type(values).__name__}")
    return {"value": encoding.clean(values, path, notes)}


def _latency(event: dict[str, Any], ml: dict[str, Any], latency_ms: Any, notes: encoding.Notes) -> None:
    if latency_ms is None:
        return
    value = encoding.clean_scalar(latency_ms, "ml.latency_ms", notes)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ml["latency_ms"] = value
        event["event"]["duration"] = int(value * 1_000_000)
    elif value is not None:
        notes.changed.append(f"ml.latency_ms: not a number ({type(latency_ms).__name__}), dropped")


def prediction_event(
    service: Service,
    *,
    time_ns: int,
    prediction_id: str,
    model: str,
    version: str | None,
    features: Any,
    prediction: Any,
    score: Any = None,
    groups: Any = None,
    entity_id: Any = None,
    latency_ms: Any = None,
    sample_rate: float | None = None,
    extra: dict[str, Any] | None = None,
    problems: list[str] | None = None,
) -> tuple[dict[str, Any], encoding.Notes]:
    """A successful prediction (``event.dataset: ml.prediction``) and the notes its encoding made."""
    event, ml, notes = _request(
        service,
        level="info",
        message="prediction",
        outcome=schema.OUTCOME_SUCCESS,
        time_ns=time_ns,
        prediction_id=prediction_id,
        model=model,
        version=version,
        features=features,
        groups=groups,
        entity_id=entity_id,
        latency_ms=latency_ms,
        sample_rate=sample_rate,
        problems=problems,
    )
    out: dict[str, Any] = {"label": encoding.clean_scalar(prediction, "ml.prediction.label", notes)}
    if score is not None:
        out["score"] = encoding.clean_scalar(score, "ml.prediction.score", notes)
    ml["prediction"] = out
    _extra(event, extra, notes)
    return event, notes


def failure_event(
    service: Service,
    *,
    time_ns: int,
    prediction_id: str,
    model: str,
    version: str | None,
    error: BaseException | str,
    features: Any = None,
    groups: Any = None,
    entity_id: Any = None,
    latency_ms: Any = None,
    sample_rate: float | None = None,
    extra: dict[str, Any] | None = None,
    problems: list[str] | None = None,
) -> tuple[dict[str, Any], encoding.Notes]:
    """A prediction that failed (``event.outcome: failure``) with ECS ``error.*``.

    The exception is formatted here, on the writer thread, not in the service's call.
    """
    event, _, notes = _request(
        service,
        level="error",
        message="prediction failed",
        outcome=schema.OUTCOME_FAILURE,
        time_ns=time_ns,
        prediction_id=prediction_id,
        model=model,
        version=version,
        features=features,
        groups=groups,
        entity_id=entity_id,
        latency_ms=latency_ms,
        sample_rate=sample_rate,
        problems=problems,
    )
    if isinstance(error, BaseException):
        error_type, message = type(error).__name__, str(error)
        stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    else:
        error_type, message, stack = "Error", str(error), None
    described = {"type": error_type, "message": encoding.clean(message, "error.message", notes)}
    if stack:
        described["stack_trace"] = encoding.clean(stack, "error.stack_trace", notes)
    event["error"] = described
    _extra(event, extra, notes)
    return event, notes


def _request(
    service: Service,
    *,
    level: str,
    message: str,
    outcome: str,
    time_ns: int,
    prediction_id: str,
    model: str,
    version: str | None,
    features: Any,
    groups: Any,
    entity_id: Any,
    latency_ms: Any,
    sample_rate: float | None,
    problems: list[str] | None,
) -> tuple[dict[str, Any], dict[str, Any], encoding.Notes]:
    """What a prediction and a failed one share: the ECS frame, ids, inputs, latency and sample rate."""
    notes = encoding.Notes(changed=list(problems or ()))
    event = _base(service, time_ns, level, message, schema.DATASET_PREDICTION, outcome)
    ml = _ml(model, version, prediction_id)
    _inputs(ml, features, groups, entity_id, notes)
    _latency(event, ml, latency_ms, notes)
    if sample_rate is not None and sample_rate < 1.0:
        ml["sample_rate"] = sample_rate
    event["ml"] = ml
    return event, ml, notes


def feedback_event(
    service: Service,
    *,
    time_ns: int,
    prediction_id: str,
    model: str,
    version: str | None,
    label: Any,
    entity_id: Any = None,
    extra: dict[str, Any] | None = None,
    problems: list[str] | None = None,
) -> tuple[dict[str, Any], encoding.Notes]:
    """The ground truth for an earlier prediction (``event.dataset: ml.feedback``)."""
    notes = encoding.Notes(changed=list(problems or ()))
    event = _base(service, time_ns, "info", "feedback", schema.DATASET_FEEDBACK, schema.OUTCOME_SUCCESS)
    ml = _ml(model, version, prediction_id)
    ml["label"] = encoding.clean_scalar(label, "ml.label", notes)
    _inputs(ml, None, None, entity_id, notes)
    event["ml"] = ml
    _extra(event, extra, notes)
    return event, notes


def _extra(event: dict[str, Any], extra: dict[str, Any] | None, notes: encoding.Notes) -> None:
    """Caller-given top-level fields (``trace.id``, ``labels``); never overriding the event's own."""
    if not extra:
        return
    for key, value in extra.items():
        key = str(key)
        if key in event or key.split(".")[0] in event:
            notes.changed.append(f"{key}: extra field would override the event's own, dropped")
            continue
        event[key] = encoding.clean(value, key, notes)


def encode(event: dict[str, Any], notes: encoding.Notes, redactor: Redactor | None = None) -> bytes:
    """One JSON line (with its newline): redaction applied, notes recorded under ``ml.*``; never raises."""
    ml = event.get("ml")
    if redactor is not None and isinstance(ml, dict):
        redacted = redactor.apply(ml)
        if redacted:
            ml["redacted"] = redacted
    _record_notes(event, notes)
    try:
        return encoding.dumps(event) + b"\n"
    except ValueError:
        repaired, fixed = encoding.repair_strings(event)
        notes.changed.extend(fixed)
        _record_notes(repaired, notes)
    try:
        return encoding.dumps(repaired) + b"\n"
    except Exception:
        return encoding.dumps_lenient(repaired) + b"\n"


def _record_notes(event: dict[str, Any], notes: encoding.Notes) -> None:
    if not notes:
        return
    ml = event.setdefault("ml", {})
    if notes.non_finite:
        ml["non_finite"] = notes.non_finite
    if notes.changed:
        ml["encoding_errors"] = notes.changed


Builder = Callable[..., tuple[dict[str, Any], encoding.Notes]]


def build_line(service: Service, builder: Builder, fields: dict[str, Any]) -> tuple[str, bytes]:
    """The UTC day (``YYYY-MM-DD``) and JSON line of an event; a builder that fails still gives a line."""
    try:
        event, notes = builder(service, **fields)
    except Exception as exc:  # a bug or a value nothing could handle: keep what identifies the event
        event, notes = _fallback(service, builder, fields, exc)
    return event[schema.TIMESTAMP][:10], encode(event, notes, service.redactor)


def _fallback(
    service: Service, builder: Builder, fields: dict[str, Any], exc: Exception
) -> tuple[dict[str, Any], encoding.Notes]:
    notes = encoding.Notes(changed=[f"event could not be built ({builder.__name__}): {type(exc).__name__}: {exc}"])
    time_ns = fields.get("time_ns")
    dataset = schema.DATASET_FEEDBACK if builder is feedback_event else schema.DATASET_PREDICTION
    event = _base(
        service,
        time_ns if isinstance(time_ns, int) else 0,
        "error",
        "event not written whole",
        dataset,
        schema.OUTCOME_FAILURE,
    )
    event["ml"] = _ml(str(fields.get("model")), _text(fields.get("version")), str(fields.get("prediction_id")))
    return event, notes


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
