"""What services import: ``configure``, ``PredictionLogger``, ``stats()`` and the ECS ``JsonFormatter``.

Lean on purpose: python-json-logger and (optionally) orjson, nothing from the analyzers' stack.
"""

from logshipper.counts import LoggerStats
from logshipper.formatter import JsonFormatter
from logshipper.ids import new_prediction_id
from logshipper.lifecycle import configure, flush, shutdown, stats
from logshipper.logger import PredictionLogger
from logshipper.redaction import RedactionError

__all__ = [
    "JsonFormatter",
    "LoggerStats",
    "PredictionLogger",
    "RedactionError",
    "configure",
    "flush",
    "new_prediction_id",
    "shutdown",
    "stats",
]
