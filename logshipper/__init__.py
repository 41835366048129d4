"""What services import: ``configure``, ``PredictionLogger`` and the ECS ``JsonFormatter``.

Lean on purpose: python-json-logger and (optionally) orjson, nothing from the analyzers' stack.
"""

from logshipper.formatter import JsonFormatter
from logshipper.handlers import configure, flush, shutdown
from logshipper.ids import new_prediction_id
from logshipper.logger import PredictionLogger
from logshipper.redaction import RedactionError

__all__ = ["JsonFormatter", "PredictionLogger", "RedactionError", "configure", "flush", "new_prediction_id", "shutdown"]
