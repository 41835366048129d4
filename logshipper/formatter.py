"""``JsonFormatter``: ECS-shaped JSON lines for any ``logging`` record, built on python-json-logger.

Use it from ``logging.config.dictConfig`` (``"()": "logshipper.JsonFormatter"``) and a service
keeps its logging set-up while every line becomes ECS JSON; records that
:class:`logshipper.PredictionLogger` emits become full prediction events.  python-json-logger's
orjson formatter is the base when orjson is installed, its stdlib json one otherwise.  Values are
written by :mod:`logshipper.encoding`'s rules, and formatting never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from logshipper import encoding, events, schema
from logshipper.logger import PAYLOAD_ATTR
from logshipper.redaction import DEFAULT_KEY_ENV, Redactor

try:
    from pythonjsonlogger.orjson import OrjsonFormatter as _Base
except ImportError:  # orjson absent: python-json-logger's stdlib json formatter
    from pythonjsonlogger.json import JsonFormatter as _Base  # type: ignore[assignment]

_DROP = ("message", "exc_info", "stack_info", "levelname", "name", "asctime", "created")


class JsonFormatter(_Base):  # type: ignore[misc, valid-type]
    """One ECS JSON object per record: ``@timestamp``, ``log.level``, ``message``, ``ecs.version``,
    ``log.logger``, ``service.*``, ``error.*`` for exceptions, and the record's extra fields."""

    def __init__(
        self,
        *args: Any,
        service: str | None = None,
        service_version: str | None = None,
        environment: str | None = None,
        redact_hash: Iterable[str] = (),
        redact_drop: Iterable[str] = (),
        redaction_key_env: str = DEFAULT_KEY_ENV,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        redactor = Redactor.from_config(redact_hash, redact_drop, redaction_key_env)
        self.service = events.Service(service, service_version, environment, redactor)

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line (no newline); prediction events in the shape of docs/event-schema.md."""
        try:
            payload = getattr(record, PAYLOAD_ATTR, None)
            if payload is not None:
                builder, fields = payload
                return events.build_line(self.service, builder, dict(fields))[1][:-1].decode("utf-8")
            return super().format(record)
        except Exception as exc:  # never raise into the service: write what is known, note the problem
            return self._fallback(record, exc)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        extra: dict[str, Any] = {}
        super().add_fields(extra, record, message_dict)
        stack_trace = extra.get("exc_info")
        stack_info = extra.get("stack_info")
        for key in _DROP:
            extra.pop(key, None)
        log_data[schema.TIMESTAMP] = events.iso_from_ns(int(record.created * 1_000_000_000))
        log_data[schema.LOG_LEVEL] = record.levelname.lower()
        log_data[schema.MESSAGE] = record.message
        log_data[schema.ECS_VERSION_FIELD] = schema.ECS_VERSION
        log_data["log"] = {
            "logger": record.name,
            "origin": {"file": {"name": record.filename, "line": record.lineno}, "function": record.funcName},
        }
        log_data["process"] = {"pid": record.process, "thread": {"name": record.threadName}}
        service = self.service.as_ecs()
        if service:
            log_data["service"] = service
        if record.exc_info and record.exc_info[0] is not None:
            log_data["error"] = {
                "type": record.exc_info[0].__name__,
                "message": str(record.exc_info[1]),
                "stack_trace": stack_trace,
            }
        if stack_info:
            log_data.setdefault("error", {})["stack_trace"] = stack_info
        for key, value in extra.items():
            log_data.setdefault(key, value)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        notes = encoding.Notes()
        cleaned = encoding.clean(log_data, "", notes)
        cleaned = {k.lstrip("."): v for k, v in cleaned.items()}
        if notes:
            notes.non_finite = [p.lstrip(".") for p in notes.non_finite]
            notes.changed = [p.lstrip(".") for p in notes.changed]
            ml = cleaned.setdefault("ml", {})
            if isinstance(ml, dict):
                if notes.non_finite:
                    ml["non_finite"] = notes.non_finite
                if notes.changed:
                    ml["encoding_errors"] = notes.changed
        return cleaned

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        try:
            return encoding.dumps(log_data).decode("utf-8")
        except ValueError:
            repaired, fixed = encoding.repair_strings(log_data)
            if isinstance(repaired.get("ml"), dict):
                repaired["ml"].setdefault("encoding_errors", []).extend(fixed)
            return encoding.dumps_lenient(repaired).decode("utf-8")

    def _fallback(self, record: logging.LogRecord, exc: Exception) -> str:
        try:
            message = str(record.msg)
        except Exception:
            message = f"<unprintable {type(record.msg).__name__}>"
        document = {
            schema.TIMESTAMP: events.iso_from_ns(int(record.created * 1_000_000_000)),
            schema.LOG_LEVEL: record.levelname.lower(),
            schema.MESSAGE: message[: encoding.MAX_STRING],
            schema.ECS_VERSION_FIELD: schema.ECS_VERSION,
            "log": {"logger": record.name},
            "ml": {"encoding_errors": [f"record could not be formatted: {type(exc).__name__}: {exc}"]},
        }
        return encoding.dumps_lenient(document).decode("utf-8")
