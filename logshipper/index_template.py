"""Elasticsearch index templates and lifecycle policy, generated from the event schema.

``predwatch setup`` installs them; the committed JSON under ``elasticsearch/`` is what
``python -m logshipper.index_template`` writes, and a test fails when the two disagree.
Indices are plain daily indices (no data streams): one per model per day, so two models with
different feature types never collide in one mapping.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from logshipper import schema

PREDICTIONS_TEMPLATE = "ml-predictions"
MONITOR_TEMPLATE = "ml-monitor"
LIFECYCLE_POLICY = "ml-predictions"
DEFAULT_RETENTION_DAYS = 30
TOTAL_FIELDS_LIMIT = 2000  # room for a few hundred features and groups per model, with ECS fields
KEYWORD_IGNORE_ABOVE = 1024  # longer strings are kept in _source but not indexed

_KEYWORD = {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}
_DOUBLE = {"type": "double"}
_DATE = {"type": "date"}
_TEXT = {"type": "match_only_text"}


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


def _predictions_fields() -> dict[str, dict[str, Any]]:
    """Explicit mappings of the fixed fields of an event, by dotted path."""
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
        s.MODEL_NAME,
        s.MODEL_VERSION,
        s.ENTITY_ID,
        s.NON_FINITE,
        s.ENCODING_ERRORS,
        s.REDACTED,
    )
    fields: dict[str, dict[str, Any]] = {name: dict(_KEYWORD) for name in keyword}
    fields[s.TIMESTAMP] = dict(_DATE)
    fields[s.MESSAGE] = dict(_TEXT)
    fields[s.ERROR_MESSAGE] = dict(_TEXT)
    fields[s.ERROR_STACK_TRACE] = {"type": "text", "index": False}
    fields[s.EVENT_DURATION] = {"type": "long"}
    fields[s.LATENCY_MS] = dict(_DOUBLE)
    fields[s.SAMPLE_RATE] = dict(_DOUBLE)
    fields[s.SCORE] = dict(_DOUBLE)
    fields[s.FEATURES] = {"type": "object", "dynamic": True}
    fields[s.GROUPS] = {"type": "object", "dynamic": True}
    return fields


def _dynamic_templates() -> list[dict[str, Any]]:
    """Typed mappings for the open-ended parts: features, groups, the prediction and the label.

    Numbers become ``double`` (an integer feature that later carries 0.5 still fits), strings and
    booleans ``keyword``; group attributes are always ``keyword`` since fairness counts their values.
    """
    labels = [schema.PREDICTION, schema.LABEL]
    return [
        {"ml_groups": {"path_match": f"{schema.GROUPS}.*", "mapping": dict(_KEYWORD)}},
        {
            "ml_features_numeric": {
                "path_match": f"{schema.FEATURES}.*",
                "match_mapping_type": ["long", "double"],
                "mapping": dict(_DOUBLE),
            }
        },
        {
            "ml_features_other": {
                "path_match": f"{schema.FEATURES}.*",
                "match_mapping_type": ["string", "boolean"],
                "mapping": dict(_KEYWORD),
            }
        },
        {"ml_labels_numeric": {"path_match": labels, "match_mapping_type": ["long", "double"], "mapping": _DOUBLE}},
        {"ml_labels_other": {"path_match": labels, "match_mapping_type": ["string", "boolean"], "mapping": _KEYWORD}},
        {"strings_as_keywords": {"match_mapping_type": "string", "mapping": dict(_KEYWORD)}},
    ]


def index_template(policy: str = LIFECYCLE_POLICY) -> dict[str, Any]:
    """The composable template of ``ml-predictions-*``: plain daily indices under the lifecycle policy."""
    return {
        "index_patterns": [f"{schema.PREDICTIONS_INDEX_PREFIX}*"],
        "priority": 200,
        "template": {
            "settings": {
                "index.lifecycle.name": policy,
                "index.mapping.total_fields.limit": TOTAL_FIELDS_LIMIT,
                "index.auto_expand_replicas": "0-1",
                "index.refresh_interval": "5s",
            },
            "mappings": {
                "dynamic": True,
                "date_detection": False,
                "numeric_detection": False,
                "dynamic_templates": _dynamic_templates(),
                "properties": _nest(_predictions_fields()),
            },
        },
        "_meta": {
            "description": "predwatch prediction events (one index per model per day)",
            "schema_version": schema.SCHEMA_VERSION,
            "ecs_version": schema.ECS_VERSION,
        },
    }


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
    """The composable template of ``ml-monitor-*``: analyzer results (kept, no lifecycle) and alert state."""
    return {
        "index_patterns": [f"{schema.MONITOR_INDEX_PREFIX}*"],
        "priority": 200,
        "template": {
            "settings": {
                "index.mapping.total_fields.limit": TOTAL_FIELDS_LIMIT,
                "index.auto_expand_replicas": "0-1",
            },
            "mappings": {
                "dynamic": True,
                "date_detection": False,
                "numeric_detection": False,
                "dynamic_templates": [
                    {"numbers_as_doubles": {"match_mapping_type": "long", "mapping": dict(_DOUBLE)}},
                    {"strings_as_keywords": {"match_mapping_type": "string", "mapping": dict(_KEYWORD)}},
                ],
                "properties": _nest(_monitor_fields()),
            },
        },
        "_meta": {"description": "predwatch analyzer results and alert state", "schema_version": schema.SCHEMA_VERSION},
    }


def lifecycle_policy(delete_after_days: int = DEFAULT_RETENTION_DAYS) -> dict[str, Any]:
    """Delete a daily prediction index ``delete_after_days`` after it was created."""
    if not isinstance(delete_after_days, int) or delete_after_days < 1:
        raise ValueError(f"delete_after_days must be a whole number of days >= 1, got {delete_after_days!r}")
    return {
        "policy": {
            "phases": {
                "hot": {"min_age": "0ms", "actions": {"set_priority": {"priority": 100}}},
                "delete": {"min_age": f"{delete_after_days}d", "actions": {"delete": {}}},
            },
            "_meta": {"description": "predwatch: delete daily prediction indices", "managed_by": "predwatch"},
        }
    }


def generated_files(delete_after_days: int = DEFAULT_RETENTION_DAYS) -> dict[str, dict[str, Any]]:
    """File name -> JSON document: what ``elasticsearch/`` holds."""
    return {
        f"{PREDICTIONS_TEMPLATE}.index-template.json": index_template(),
        f"{MONITOR_TEMPLATE}.index-template.json": monitor_index_template(),
        f"{LIFECYCLE_POLICY}.lifecycle-policy.json": lifecycle_policy(delete_after_days),
    }


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
    """``python -m logshipper.index_template [DIR]``: regenerate the committed JSON (default ``elasticsearch/``)."""
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "elasticsearch"
    for path in write(directory):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
