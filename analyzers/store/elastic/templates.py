"""Elasticsearch index templates and lifecycle policies, generated from the event schema.

``predwatch setup`` installs them (see :mod:`analyzers.store.elastic.install`); the committed JSON under
``elasticsearch/`` is what ``python -m analyzers.store.elastic.templates`` writes, and a test fails when
the two disagree.  Indices are plain daily indices (no data streams): one per model per day for
predictions, one per model per day of arrival for feedback, so two models with different feature
types never share a mapping.

Values keep their JSON type: in ``ml.features.*``, ``ml.groups.*``, ``ml.prediction.label`` and
``ml.label`` a string is a ``keyword``, a number a ``double``, a boolean a ``boolean`` (so aggregation
keys come back as the logged values).  A value whose type differs from the field's first one in that day's index is set
aside (``ignore_malformed``, listed in ``_ignored``) instead of rejecting the whole prediction.
Daily indices age from the day in their name (``index.lifecycle.parse_origination_date``), so a
backfilled day is deleted with its neighbours, not 30 days after the backfill.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from analyzers.store.elastic.pipelines import DEAD_LETTER_PIPELINE, pipelines
from logshipper import schema

PREDICTIONS_TEMPLATE = "ml-predictions"
FEEDBACK_TEMPLATE = "ml-feedback"
MONITOR_TEMPLATE = "ml-monitor"
DEAD_LETTER_TEMPLATE = "ml-deadletter"
RETENTION_POLICY = "ml-predictions"  # the daily prediction and feedback indices
DEAD_LETTER_POLICY = "ml-deadletter"
DEFAULT_RETENTION_DAYS = 30
DEAD_LETTER_FIRST_INDEX = f"{schema.DEAD_LETTER_INDEX}-000001"
# The oldest Elasticsearch these templates install on: dynamic templates with a list of
# ``match_mapping_type`` values (8.13), ``path_match`` lists (8.9), ``ignore_malformed`` on booleans (8.8).
MIN_VERSION = (8, 13, 0)
TOTAL_FIELDS_LIMIT = 2000  # room for a few hundred features and groups per model, with ECS fields
KEYWORD_IGNORE_ABOVE = 1024  # longer strings are kept in _source but not indexed
# A reference sample (drift's default 50,000 rows) is read in one search instead of five pages.
MAX_RESULT_WINDOW = 50_000

_KEYWORD = {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}
_DOUBLE = {"type": "double"}
_DATE = {"type": "date"}
_TEXT = {"type": "match_only_text"}
# Where a prediction's own values live: their mapping follows each value's JSON type.
CELL_PATHS = [f"{schema.FEATURES}.*", f"{schema.GROUPS}.*", schema.PREDICTION, schema.LABEL]


def _nest(flat: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Turn ``{"a.b": spec}`` into nested ``properties`` objects, as mappings write them."""
    root: dict[str, Any] = {}
    for path, spec in sorted(flat.items()):
        node = root
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[leaf] = {**node.get(leaf, {}), **spec}
    return root


def _event_fields() -> dict[str, dict[str, Any]]:
    """Explicit mappings of the fields every prediction and feedback event may carry, by dotted path."""
    s = schema
    keyword = (
        s.LOG_LEVEL,
        s.ECS_VERSION_FIELD,
        s.EVENT_DATASET,
        s.EVENT_KIND,
        s.EVENT_OUTCOME,
        s.SERVICE_NAME,
        s.SERVICE_VERSION,
        s.SERVICE_ENVIRONMENT,
        s.ERROR_TYPE,
        s.ML_SCHEMA_VERSION,
        s.PREDICTION_ID,
        s.MODEL_VERSION,
        s.ENTITY_ID,
        s.NON_FINITE,
        s.ENCODING_ERRORS,
        s.REDACTED,
    )
    fields: dict[str, dict[str, Any]] = {name: dict(_KEYWORD) for name in keyword}
    # One model per index: a constant lets a search for another model skip the index before reading it.
    fields[s.MODEL_NAME] = {"type": "constant_keyword"}
    fields[s.TIMESTAMP] = dict(_DATE)
    fields[s.MESSAGE] = dict(_TEXT)
    fields[s.ERROR_MESSAGE] = dict(_TEXT)
    fields[s.ERROR_STACK_TRACE] = {"type": "text", "index": False}
    fields[s.EVENT_DURATION] = {"type": "long"}
    fields[s.LATENCY_MS] = dict(_DOUBLE)
    fields[s.SAMPLE_RATE] = dict(_DOUBLE)
    return fields


def _predictions_fields() -> dict[str, dict[str, Any]]:
    fields = _event_fields()
    fields[schema.SCORE] = dict(_DOUBLE)
    fields[schema.FEATURES] = {"type": "object", "dynamic": "true"}
    fields[schema.GROUPS] = {"type": "object", "dynamic": "true"}
    return fields


def cell_dynamic_templates() -> list[dict[str, Any]]:
    """The mappings of features, groups, the prediction and the label, by the JSON type of their first value.

    A later value of another type is set aside (``ignore_malformed``, no coercion of ``"5"`` into 5) rather
    than rejecting the prediction.  An object is mapped by its leaves, as a dotted feature name is.
    """
    return [
        {"ml_cells_strings": {"path_match": CELL_PATHS, "match_mapping_type": "string", "mapping": dict(_KEYWORD)}},
        {
            "ml_cells_numbers": {
                "path_match": CELL_PATHS,
                "match_mapping_type": ["long", "double"],
                "mapping": {"type": "double", "ignore_malformed": True, "coerce": False},
            }
        },
        {
            "ml_cells_booleans": {
                "path_match": CELL_PATHS,
                "match_mapping_type": "boolean",
                "mapping": {"type": "boolean", "ignore_malformed": True},
            }
        },
    ]


def _other_dynamic_templates() -> list[dict[str, Any]]:
    """Fields outside the schema (extra top-level fields a service adds): strings as keywords, doubles 64-bit."""
    return [
        {"strings_as_keywords": {"match_mapping_type": "string", "mapping": dict(_KEYWORD)}},
        {"doubles_as_doubles": {"match_mapping_type": "double", "mapping": dict(_DOUBLE)}},
    ]


def _daily_settings(policy: str) -> dict[str, Any]:
    return {
        "index.lifecycle.name": policy,
        "index.lifecycle.parse_origination_date": True,
        "index.mapping.total_fields.limit": TOTAL_FIELDS_LIMIT,
        "index.auto_expand_replicas": "0-1",
        "index.refresh_interval": "5s",
    }


def _daily_template(
    prefix: str, fields: dict[str, dict[str, Any]], description: str, policy: str, settings: dict[str, Any]
) -> dict[str, Any]:
    return {
        "index_patterns": [f"{prefix}*"],
        "priority": 200,
        "template": {
            "settings": {**_daily_settings(policy), **settings},
            "mappings": {
                "dynamic": "true",
                "date_detection": False,
                "numeric_detection": False,
                "dynamic_templates": cell_dynamic_templates() + _other_dynamic_templates(),
                "properties": _nest(fields),
            },
        },
        "_meta": {
            "description": description,
            "schema_version": schema.SCHEMA_VERSION,
            "ecs_version": schema.ECS_VERSION,
            "managed_by": "predwatch",
        },
    }


def index_template(policy: str = RETENTION_POLICY) -> dict[str, Any]:
    """The composable template of ``ml-predictions-*``: a model's predictions, one index per day."""
    return _daily_template(
        schema.PREDICTIONS_INDEX_PREFIX,
        _predictions_fields(),
        "predwatch prediction events (one index per model per day)",
        policy,
        {"index.max_result_window": MAX_RESULT_WINDOW},
    )


def feedback_index_template(policy: str = RETENTION_POLICY) -> dict[str, Any]:
    """The composable template of ``ml-feedback-*``: a model's labels, one index per day of arrival.

    Filebeat writes each with ``_id`` = the prediction id and ``op_type: index``, so a day holds the latest
    label of each prediction; a later day may hold a newer one, and readers keep the latest by time.
    """
    return _daily_template(
        schema.FEEDBACK_INDEX_PREFIX,
        _event_fields(),
        "predwatch feedback events (ground truth; one index per model per day of arrival)",
        policy,
        {},
    )


def _monitor_fields() -> dict[str, dict[str, Any]]:
    """Explicit mappings of the analyzers' findings (``Finding.to_dict``) that dashboards chart."""
    fields: dict[str, dict[str, Any]] = {
        name: dict(_KEYWORD)
        for name in (
            "id",
            "model",
            "job",
            "status",
            "features.name",
            "features.kind",
            "features.method",
            "features.effect_size_method",
            "attributes.name",
            "attributes.groups.group",
            "attributes.groups.selection_rate_reference_group",
            "signals.subject",
            "signals.severity",
            "key",
        )
    }
    for name in ("created_at", "window.start", "window.end"):
        fields[name] = dict(_DATE)
    for name in (
        "share_drifted",
        "features.statistic",
        "features.p_value",
        "features.p_value_adjusted",
        "features.effect_size",
        "attributes.demographic_parity_difference",
        "attributes.demographic_parity_ratio",
        "attributes.equalized_odds_difference",
        "attributes.groups.n",
        "attributes.groups.selection_rate",
        "attributes.groups.selection_rate_difference",
        "attributes.groups.selection_rate_ratio",
        "signals.value",
        "signals.threshold",
    ):
        fields[name] = dict(_DOUBLE)
    fields["dataset_drift"] = {"type": "boolean"}
    fields["features.drifted"] = {"type": "boolean"}
    fields["signals.message"] = dict(_TEXT)
    fields["error"] = dict(_TEXT)
    # What a finding was compared with varies by job and is read back whole, never searched.
    fields["reference"] = {"type": "object", "enabled": False}
    return fields


def monitor_index_template() -> dict[str, Any]:
    """The composable template of ``ml-monitor-*``: analyzer results (kept, no lifecycle) and alert state.

    Every number a finding holds is a 64-bit ``double`` (a count past 16.7M keeps its precision).
    """
    return {
        "index_patterns": [f"{schema.MONITOR_INDEX_PREFIX}*"],
        "priority": 200,
        "template": {
            "settings": {
                "index.mapping.total_fields.limit": TOTAL_FIELDS_LIMIT,
                "index.auto_expand_replicas": "0-1",
            },
            "mappings": {
                "dynamic": "true",
                "date_detection": False,
                "numeric_detection": False,
                "dynamic_templates": [
                    {"numbers_as_doubles": {"match_mapping_type": ["long", "double"], "mapping": dict(_DOUBLE)}},
                    {"strings_as_keywords": {"match_mapping_type": "string", "mapping": dict(_KEYWORD)}},
                ],
                "properties": _nest(_monitor_fields()),
            },
        },
        "_meta": {
            "description": "predwatch analyzer results and alert state",
            "schema_version": schema.SCHEMA_VERSION,
            "managed_by": "predwatch",
        },
    }


def dead_letter_index_template(policy: str = DEAD_LETTER_POLICY) -> dict[str, Any]:
    """The composable template of ``ml-deadletter-*``: lines Filebeat could not decode and documents the
    cluster rejected, behind the write alias ``ml-deadletter`` that rolls over daily.

    Nothing but the time, the text, the error and the model is mapped, so a rejected document (which Filebeat
    re-sends as its time, text and error) is never rejected again.  Every document passes the ingest pipeline
    that reads its model from its text (:mod:`pipelines`).
    """
    fields: dict[str, dict[str, Any]] = {
        schema.TIMESTAMP: dict(_DATE),
        schema.MESSAGE: dict(_TEXT),
        schema.ERROR_TYPE: dict(_KEYWORD),
        schema.ERROR_MESSAGE: dict(_TEXT),
        schema.MODEL_NAME: dict(_KEYWORD),
        "log.file.path": dict(_KEYWORD),
    }
    return {
        "index_patterns": [f"{schema.DEAD_LETTER_INDEX}-*"],
        "priority": 200,
        "template": {
            "settings": {
                "index.lifecycle.name": policy,
                "index.lifecycle.rollover_alias": schema.DEAD_LETTER_INDEX,
                "index.default_pipeline": DEAD_LETTER_PIPELINE,
                "index.auto_expand_replicas": "0-1",
            },
            "mappings": {"dynamic": "false", "properties": _nest(fields)},
        },
        "_meta": {"description": "predwatch dead letters: undecodable lines and rejected documents"},
    }


def _retention(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"retention must be a whole number of days >= 1, got {days!r}")
    return days


def lifecycle_policy(delete_after_days: int = DEFAULT_RETENTION_DAYS) -> dict[str, Any]:
    """Delete a daily prediction or feedback index ``delete_after_days`` after the day in its name."""
    days = _retention(delete_after_days)
    return {
        "policy": {
            "phases": {
                "hot": {"min_age": "0ms", "actions": {"set_priority": {"priority": 100}}},
                "delete": {"min_age": f"{days}d", "actions": {"delete": {}}},
            },
            "_meta": {
                "description": "predwatch: delete daily prediction and feedback indices",
                "managed_by": "predwatch",
            },
        }
    }


def dead_letter_policy(delete_after_days: int = DEFAULT_RETENTION_DAYS) -> dict[str, Any]:
    """Roll the dead-letter alias over to a new index each day; delete each ``delete_after_days`` after that."""
    days = _retention(delete_after_days)
    return {
        "policy": {
            "phases": {
                "hot": {
                    "min_age": "0ms",
                    "actions": {"rollover": {"max_age": "1d", "max_primary_shard_size": "10gb"}},
                },
                "delete": {"min_age": f"{days}d", "actions": {"delete": {}}},
            },
            "_meta": {"description": "predwatch: keep each day of dead letters", "managed_by": "predwatch"},
        }
    }


def policies(delete_after_days: int = DEFAULT_RETENTION_DAYS) -> dict[str, dict[str, Any]]:
    """Lifecycle policy name -> body, in the order they must be installed (before the templates naming them)."""
    return {
        RETENTION_POLICY: lifecycle_policy(delete_after_days),
        DEAD_LETTER_POLICY: dead_letter_policy(delete_after_days),
    }


def index_templates() -> dict[str, dict[str, Any]]:
    """Composable index template name -> body."""
    return {
        PREDICTIONS_TEMPLATE: index_template(),
        FEEDBACK_TEMPLATE: feedback_index_template(),
        MONITOR_TEMPLATE: monitor_index_template(),
        DEAD_LETTER_TEMPLATE: dead_letter_index_template(),
    }


def generated_files(delete_after_days: int = DEFAULT_RETENTION_DAYS) -> dict[str, dict[str, Any]]:
    """File name -> JSON document: what ``elasticsearch/`` holds."""
    files = {f"{name}.index-template.json": body for name, body in index_templates().items()}
    files.update({f"{name}.lifecycle-policy.json": body for name, body in policies(delete_after_days).items()})
    files.update({f"{name}.ingest-pipeline.json": body for name, body in pipelines().items()})
    return files


def render(document: dict[str, Any]) -> str:
    """The committed text form: sorted keys, two-space indent, final newline."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write(directory: Path) -> list[Path]:
    """Write the generated JSON files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in generated_files().items():
        path = directory / name
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m analyzers.store.elastic.templates [DIR]``: regenerate the committed JSON (``elasticsearch/``)."""
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else Path(__file__).resolve().parents[3] / "elasticsearch"
    for path in write(directory):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
