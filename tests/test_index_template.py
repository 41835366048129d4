"""The committed Elasticsearch JSON is exactly what the schema generates, and maps what the schema names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logshipper import index_template, schema

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(index_template.generated_files()))
def test_committed_json_matches_the_schema(name: str) -> None:
    committed = ROOT / "elasticsearch" / name
    assert committed.exists(), f"{committed} missing: run python -m logshipper.index_template"
    expected = index_template.generated_files()[name]
    assert json.loads(committed.read_text(encoding="utf-8")) == expected, (
        f"{committed} disagrees with logshipper/schema.py: run python -m logshipper.index_template"
    )


def _mapping_at(template: dict, path: str) -> dict:
    node = {"properties": template["template"]["mappings"]["properties"]}
    for part in path.split("."):
        node = node["properties"][part]
    return node


def test_fixed_fields_have_their_types() -> None:
    t = index_template.index_template()
    assert _mapping_at(t, schema.TIMESTAMP)["type"] == "date"
    for path in (schema.PREDICTION_ID, schema.MODEL_NAME, schema.MODEL_VERSION, schema.ENTITY_ID, schema.EVENT_DATASET):
        assert _mapping_at(t, path)["type"] == "keyword", path
    for path in (schema.LATENCY_MS, schema.SCORE, schema.SAMPLE_RATE):
        assert _mapping_at(t, path)["type"] == "double", path
    settings = t["template"]["settings"]
    assert settings["index.lifecycle.name"] == index_template.LIFECYCLE_POLICY
    assert settings["index.mapping.total_fields.limit"] >= 1000
    assert "data_stream" not in t, "plain daily indices, never data streams"
    assert t["index_patterns"] == ["ml-predictions-*"]


def _dynamic_rule(template: dict, path: str, json_type: str) -> dict | None:
    """The mapping Elasticsearch would pick for a new field at ``path`` holding a JSON value of ``json_type``."""
    from fnmatch import fnmatch

    for entry in template["template"]["mappings"]["dynamic_templates"]:
        (rule,) = entry.values()
        globs = rule.get("path_match", "*")
        globs = [globs] if isinstance(globs, str) else globs
        types = rule.get("match_mapping_type", "*")
        types = [types] if isinstance(types, str) else types
        if any(fnmatch(path, g) for g in globs) and ("*" in types or json_type in types):
            return rule["mapping"]
    return None


@pytest.mark.parametrize(
    ("path", "json_type", "expected"),
    [
        ("ml.features.amount", "long", "double"),
        ("ml.features.amount", "double", "double"),
        ("ml.features.country", "string", "keyword"),
        ("ml.features.is_new", "boolean", "keyword"),
        ("ml.groups.region", "string", "keyword"),
        ("ml.groups.age", "long", "keyword"),
        ("ml.prediction.label", "long", "double"),
        ("ml.prediction.label", "string", "keyword"),
        ("ml.label", "double", "double"),
        ("ml.label", "string", "keyword"),
        ("labels.anything", "string", "keyword"),
    ],
)
def test_dynamic_fields_get_the_types_analyzers_expect(path: str, json_type: str, expected: str) -> None:
    rule = _dynamic_rule(index_template.index_template(), path, json_type)
    assert rule is not None
    assert rule["type"] == expected


def test_lifecycle_policy_deletes_after_the_configured_days() -> None:
    policy = index_template.lifecycle_policy(7)["policy"]
    assert policy["phases"]["delete"] == {"min_age": "7d", "actions": {"delete": {}}}
    with pytest.raises(ValueError, match="delete_after_days"):
        index_template.lifecycle_policy(0)


def test_monitor_template_maps_what_dashboards_read() -> None:
    t = index_template.monitor_index_template()
    assert t["index_patterns"] == ["ml-monitor-*"]
    assert _mapping_at(t, "window.end")["type"] == "date"
    assert _mapping_at(t, "features.effect_size")["type"] == "double"
    assert _mapping_at(t, "reference")["enabled"] is False
