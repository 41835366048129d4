"""The committed Elasticsearch JSON is exactly what the schema generates, and maps what the schema names the way
the store reads it: each value by its JSON type, daily indices aging from their day, findings in 64 bits."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

from analyzers.store.elastic import templates
from logshipper import schema

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(templates.generated_files()))
def test_committed_json_matches_the_schema(name: str) -> None:
    committed = ROOT / "elasticsearch" / name
    assert committed.exists(), f"{committed} missing: run python -m analyzers.store.elastic.templates"
    expected = templates.generated_files()[name]
    assert json.loads(committed.read_text(encoding="utf-8")) == expected, (
        f"{committed} disagrees with logshipper/schema.py: run python -m analyzers.store.elastic.templates"
    )


def test_nothing_else_lies_in_the_folder() -> None:
    assert {p.name for p in (ROOT / "elasticsearch").glob("*.json")} == set(templates.generated_files())


def _mapping_at(template: dict, path: str) -> dict:
    node = {"properties": template["template"]["mappings"]["properties"]}
    for part in path.split("."):
        node = node["properties"][part]
    return node


def test_fixed_fields_have_their_types() -> None:
    t = templates.index_template()
    assert _mapping_at(t, schema.TIMESTAMP)["type"] == "date"
    for path in (schema.PREDICTION_ID, schema.MODEL_VERSION, schema.ENTITY_ID, schema.EVENT_DATASET):
        assert _mapping_at(t, path)["type"] == "keyword", path
    assert _mapping_at(t, schema.MODEL_NAME)["type"] == "constant_keyword"  # one model per index
    for path in (schema.LATENCY_MS, schema.SCORE, schema.SAMPLE_RATE):
        assert _mapping_at(t, path)["type"] == "double", path
    assert "data_stream" not in t, "plain daily indices, never data streams"
    assert t["index_patterns"] == ["ml-predictions-*"]


def test_daily_indices_age_from_the_day_in_their_name() -> None:
    for t in (templates.index_template(), templates.feedback_index_template()):
        settings = t["template"]["settings"]
        assert settings["index.lifecycle.name"] == templates.RETENTION_POLICY
        assert settings["index.lifecycle.parse_origination_date"] is True
    # parse_origination_date needs names ending in -yyyy.MM.dd: every daily index the schema names does
    assert schema.predictions_index("fraud", "2026.11.20").endswith("-2026.11.20")
    assert schema.feedback_index("fraud", "2026.11.20").endswith("-2026.11.20")


def _dynamic_rule(template: dict, path: str, json_type: str) -> dict | None:
    """The mapping Elasticsearch picks for a new field at ``path`` holding a JSON value of ``json_type``."""
    for entry in template["template"]["mappings"]["dynamic_templates"]:
        (rule,) = entry.values()
        globs = rule.get("path_match", "*")
        globs = [globs] if isinstance(globs, str) else globs
        types = rule.get("match_mapping_type", "*")
        types = [types] if isinstance(types, str) else types
        if any(fnmatch.fnmatchcase(path, g) for g in globs) and ("*" in types or json_type in types):
            return rule["mapping"]
    return None


@pytest.mark.parametrize(
    ("path", "json_type", "expected"),
    [
        ("ml.features.amount", "long", "double"),
        ("ml.features.amount", "double", "double"),
        ("ml.features.country", "string", "keyword"),
        ("ml.features.is_new", "boolean", "boolean"),
        ("ml.groups.region", "string", "keyword"),
        ("ml.groups.age", "long", "double"),
        ("ml.groups.vip", "boolean", "boolean"),
        ("ml.prediction.label", "long", "double"),
        ("ml.prediction.label", "string", "keyword"),
        ("ml.prediction.label", "boolean", "boolean"),
        ("ml.label", "double", "double"),
        ("ml.label", "boolean", "boolean"),
        ("labels.anything", "string", "keyword"),
        ("labels.ratio", "double", "double"),
    ],
)
def test_each_value_is_mapped_by_its_json_type(path: str, json_type: str, expected: str) -> None:
    for template in (templates.index_template(), templates.feedback_index_template()):
        rule = _dynamic_rule(template, path, json_type)
        assert rule is not None
        assert rule["type"] == expected


def test_a_value_of_another_type_is_set_aside_not_the_prediction() -> None:
    template = templates.index_template()
    numbers = _dynamic_rule(template, "ml.features.amount", "double")
    assert numbers == {"type": "double", "ignore_malformed": True, "coerce": False}  # "5" is not 5
    assert _dynamic_rule(template, "ml.features.flag", "boolean") == {"type": "boolean", "ignore_malformed": True}


def test_lifecycle_policies_delete_after_the_configured_days() -> None:
    policy = templates.lifecycle_policy(7)["policy"]
    assert policy["phases"]["delete"] == {"min_age": "7d", "actions": {"delete": {}}}
    with pytest.raises(ValueError, match="retention"):
        templates.lifecycle_policy(0)


def test_dead_letters_have_a_policy_of_their_own_and_no_model_pattern_matches_them() -> None:
    t = templates.dead_letter_index_template()
    assert t["index_patterns"] == [f"{schema.DEAD_LETTER_INDEX}-*"]
    assert t["template"]["settings"]["index.lifecycle.name"] == templates.DEAD_LETTER_POLICY
    assert t["template"]["settings"]["index.lifecycle.rollover_alias"] == schema.DEAD_LETTER_INDEX
    assert t["template"]["mappings"]["dynamic"] == "false"  # a rejected document is never rejected again
    rollover = templates.dead_letter_policy(30)["policy"]["phases"]["hot"]["actions"]["rollover"]
    assert rollover["max_age"] == "1d"  # each day's dead letters are deleted 30 days after that day
    for pattern in (f"{schema.PREDICTIONS_INDEX_PREFIX}*", f"{schema.FEEDBACK_INDEX_PREFIX}*"):
        assert not fnmatch.fnmatchcase(templates.DEAD_LETTER_FIRST_INDEX, pattern)
        assert not fnmatch.fnmatchcase(schema.DEAD_LETTER_INDEX, pattern)


def test_monitor_template_keeps_findings_numbers_in_64_bits() -> None:
    t = templates.monitor_index_template()
    assert t["index_patterns"] == ["ml-monitor-*"]
    assert _mapping_at(t, "window.end")["type"] == "date"
    assert _mapping_at(t, "features.effect_size")["type"] == "double"
    assert _mapping_at(t, "reference")["enabled"] is False
    for json_type in ("long", "double"):
        assert _dynamic_rule(t, "volume.total", json_type) == {"type": "double"}
