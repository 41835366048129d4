"""The prediction event schema: the one place where field names live.

Events are ECS-shaped JSON objects with everything model-specific under ``ml.``.
The formatter, the Elasticsearch index template, the stores and the Kibana objects
all take their field names from here.  Paths are dotted; on the wire ``ml``,
``event``, ``service`` and ``error`` are nested objects while ``log.level`` and
``ecs.version`` stay dotted top-level keys, as ecs-logging writes them.
"""

from __future__ import annotations

SCHEMA_VERSION = "1"
ECS_VERSION = "8.11.0"

# event.dataset values: the kinds of event.
DATASET_PREDICTION = "ml.prediction"
DATASET_FEEDBACK = "ml.feedback"
DATASETS = (DATASET_PREDICTION, DATASET_FEEDBACK)

OUTCOME_SUCCESS = "success"
OUTCOME_FAILURE = "failure"

# ECS fields.
TIMESTAMP = "@timestamp"
LOG_LEVEL = "log.level"
MESSAGE = "message"
ECS_VERSION_FIELD = "ecs.version"
EVENT_DATASET = "event.dataset"
EVENT_KIND = "event.kind"
EVENT_OUTCOME = "event.outcome"
EVENT_DURATION = "event.duration"  # nanoseconds, as ECS defines it
SERVICE_NAME = "service.name"
SERVICE_VERSION = "service.version"
SERVICE_ENVIRONMENT = "service.environment"
ERROR_TYPE = "error.type"
ERROR_MESSAGE = "error.message"
ERROR_STACK_TRACE = "error.stack_trace"

# predwatch fields.
ML_SCHEMA_VERSION = "ml.schema_version"
PREDICTION_ID = "ml.prediction_id"
MODEL_NAME = "ml.model.name"
MODEL_VERSION = "ml.model.version"
FEATURES = "ml.features"  # object: feature name -> value
PREDICTION = "ml.prediction.label"  # what the model returned: a class or a number
SCORE = "ml.prediction.score"  # optional confidence / probability of the positive class
GROUPS = "ml.groups"  # object: attribute name -> group value (fairness)
ENTITY_ID = "ml.entity_id"
LATENCY_MS = "ml.latency_ms"
LABEL = "ml.label"  # ground truth, on ml.feedback events
SAMPLE_RATE = "ml.sample_rate"  # fraction of predictions logged; counts are weighted by 1/rate
NON_FINITE = "ml.non_finite"  # dotted paths whose value was NaN or +-inf (written as null)
ENCODING_ERRORS = "ml.encoding_errors"  # dotted paths whose value could not be encoded as-is
REDACTED = "ml.redacted"  # dotted paths that were hashed or dropped by configuration

# Logical column names the stores use for rows, filters and aggregates, mapped to event paths.
# ``features.<name>`` and ``groups.<name>`` address one feature or group attribute.
COLUMNS: dict[str, str] = {
    "prediction_id": PREDICTION_ID,
    "timestamp": TIMESTAMP,
    "model": MODEL_NAME,
    "model_version": MODEL_VERSION,
    "entity_id": ENTITY_ID,
    "outcome": EVENT_OUTCOME,
    "prediction": PREDICTION,
    "score": SCORE,
    "label": LABEL,
    "latency_ms": LATENCY_MS,
    "sample_rate": SAMPLE_RATE,
    "error_type": ERROR_TYPE,
    "error_message": ERROR_MESSAGE,
    "service": SERVICE_NAME,
}
FEATURE_PREFIX = "features."
GROUP_PREFIX = "groups."


def column_path(column: str) -> str:
    """Event path of a logical column name (``score`` -> ``ml.prediction.score``)."""
    if column.startswith(FEATURE_PREFIX):
        return f"{FEATURES}.{column[len(FEATURE_PREFIX) :]}"
    if column.startswith(GROUP_PREFIX):
        return f"{GROUPS}.{column[len(GROUP_PREFIX) :]}"
    try:
        return COLUMNS[column]
    except KeyError:
        known = ", ".join(sorted(COLUMNS))
        raise KeyError(
            f"unknown column {column!r}: expected features.<name>, groups.<name> or one of {known}"
        ) from None


# Index naming (Elasticsearch) and file naming (local store).  Predictions and feedback live in
# daily indices of their own (feedback by the day it arrived, its _id the prediction id it labels);
# rejected documents go to the dead-letter alias, outside both patterns, under a policy of its own.
PREDICTIONS_INDEX_PREFIX = "ml-predictions-"
FEEDBACK_INDEX_PREFIX = "ml-feedback-"
MONITOR_INDEX_PREFIX = "ml-monitor-"
STATE_INDEX = "ml-monitor-state"
DEAD_LETTER_INDEX = "ml-deadletter"
LOG_FILE_PREFIX = "predictions-"
LOG_FILE_SUFFIX = ".ndjson"


def predictions_index(model: str, day: str) -> str:
    """Daily index of a model's events; ``day`` is ``YYYY.MM.DD``."""
    return f"{PREDICTIONS_INDEX_PREFIX}{model}-{day}"


def feedback_index(model: str, day: str) -> str:
    """Daily index of a model's feedback, by the day it arrived; ``day`` is ``YYYY.MM.DD``."""
    return f"{FEEDBACK_INDEX_PREFIX}{model}-{day}"


def monitor_index(model: str, day: str) -> str:
    """Daily index of the analyzers' results for a model; ``day`` is ``YYYY.MM.DD``."""
    return f"{MONITOR_INDEX_PREFIX}{model}-{day}"


def log_file_name(day: str) -> str:
    """Name of a local daily log file; ``day`` is ``YYYY-MM-DD`` (the event's UTC day)."""
    return f"{LOG_FILE_PREFIX}{day}{LOG_FILE_SUFFIX}"
