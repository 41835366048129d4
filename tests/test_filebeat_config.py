"""filebeat/ checked without Filebeat: the inputs read the files the logger writes, events land in
plain daily indices named by the schema, _id comes from the prediction id, nothing is dropped."""

from __future__ import annotations

import fnmatch
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from logshipper import schema

ROOT = Path(__file__).resolve().parents[1]
FILEBEAT = ROOT / "filebeat" / "filebeat.yml"
CONTAINERS = ROOT / "filebeat" / "inputs.d" / "containers.yml"
BEATS_VAR = re.compile(r"\$\{([\w.]+)(?::([^}]*))?\}")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(FILEBEAT.read_text())


@pytest.fixture(scope="module")
def file_input(config: dict[str, Any]) -> dict[str, Any]:
    (only,) = [i for i in config["filebeat.inputs"] if i.get("enabled", True)]
    return only


def beats_value(text: str, env: dict[str, str] | None = None) -> str:
    """Resolve Beats' ${VAR} / ${VAR:default} syntax."""
    env = env or {}
    return BEATS_VAR.sub(lambda m: env.get(m.group(1), m.group(2) or ""), text)


def format_index(pattern: str, event: dict[str, Any]) -> str:
    """Beats' format strings: %{[dotted.field]} and %{+yyyy.MM.dd} from the event's @timestamp."""

    def field(m: re.Match[str]) -> str:
        value: Any = event
        for part in m.group(1).split("."):
            value = value[part]
        return str(value)

    ts = datetime.fromisoformat(event["@timestamp"].replace("Z", "+00:00")).astimezone(timezone.utc)
    out = re.sub(r"%\{\[([^\]]+)\]\}", field, pattern)
    return out.replace("%{+yyyy.MM.dd}", ts.strftime("%Y.%m.%d")).lower()


def _value(event: dict[str, Any], dotted: str) -> Any:
    value: Any = event
    for part in dotted.split("."):
        value = value[part]
    return value


def holds(condition: dict[str, Any], event: dict[str, Any]) -> bool:
    """Beats' conditions: ``equals``, ``has_fields``, ``and``, ``or``, ``not``."""
    ((kind, spec),) = condition.items()
    if kind == "equals":
        return all(_has(event, f) and _value(event, f) == v for f, v in spec.items())
    if kind == "has_fields":
        return all(_has(event, f) for f in spec)
    if kind == "and":
        return all(holds(c, event) for c in spec)
    if kind == "or":
        return any(holds(c, event) for c in spec)
    if kind == "not":
        return not holds(spec, event)
    raise ValueError(f"condition {kind} not understood by this test")


def rule_condition(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule's ``when`` condition, written nested (``when: {and: ...}``) or dotted (``when.and: ...``)."""
    if "when" in rule:
        return rule["when"]
    ((key, spec),) = [(k, v) for k, v in rule.items() if k.startswith("when.")]
    return {key.split(".", 1)[1]: spec}


def route(output: dict[str, Any], event: dict[str, Any]) -> str:
    """Which index the output sends an event to (first matching `indices` rule, else `index`)."""
    for rule in output.get("indices", []):
        if holds(rule_condition(rule), event):
            return format_index(rule["index"], event)
    return format_index(output["index"], event)


def metadata(processors: list[dict[str, Any]], event: dict[str, Any]) -> dict[str, Any]:
    """The ``@metadata`` the input's processors give an event (``_id``, ``op_type``)."""
    meta: dict[str, Any] = {}
    for processor in processors:
        ((kind, spec),) = processor.items()
        if "when" in spec and not holds(spec["when"], event):
            continue
        if kind == "copy_fields":
            for move in spec["fields"]:
                if move["to"].startswith("@metadata.") and _has(event, move["from"]):
                    meta[move["to"].split(".", 1)[1]] = _value(event, move["from"])
        elif kind == "add_fields" and spec.get("target") == "@metadata":
            meta.update(spec["fields"])
    return meta


def _has(event: dict[str, Any], dotted: str) -> bool:
    value: Any = event
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def test_file_input_reads_where_the_logger_writes(file_input: dict[str, Any]) -> None:
    assert file_input["type"] == "filestream"
    assert file_input["id"]
    (pattern,) = file_input["paths"]
    log_dir = "/var/log/predwatch"
    resolved = beats_value(pattern, {"PREDWATCH_LOG_DIR": log_dir})
    day = "2026-11-22"
    written = f"{log_dir}/fraud-api/{schema.log_file_name(day)}"
    assert fnmatch.fnmatch(written, resolved)
    assert fnmatch.fnmatch(
        f"/other/fraud-api/{schema.log_file_name(day)}", beats_value(pattern, {"PREDWATCH_LOG_DIR": "/other"})
    )
    for not_ours in (f"{log_dir}/fraud-api/{schema.log_file_name(day)}.gz", f"{log_dir}/fraud-api/app.log"):
        assert not fnmatch.fnmatch(not_ours, resolved)


def test_ndjson_parser_puts_fields_at_the_top_and_keeps_bad_lines(file_input: dict[str, Any]) -> None:
    (parser,) = [p["ndjson"] for p in file_input["parsers"] if "ndjson" in p]
    assert parser["target"] == ""
    assert parser["overwrite_keys"] is True
    assert parser["add_error_key"] is True
    assert parser["expand_keys"] is True
    assert "document_id" not in parser  # it would delete ml.prediction_id from the document


PREDICTION = {
    "@timestamp": "2026-11-22T23:59:59.999Z",
    "event": {"dataset": schema.DATASET_PREDICTION},
    "ml": {"model": {"name": "fraud"}, "prediction_id": "p1"},
}
FEEDBACK = {
    "@timestamp": "2026-12-22T08:00:00Z",  # 30 days after its prediction
    "event": {"dataset": schema.DATASET_FEEDBACK},
    "ml": {"model": {"name": "fraud"}, "prediction_id": "p1", "label": 1},
}


@pytest.mark.parametrize("source", [FILEBEAT, CONTAINERS])
def test_documents_are_identified_by_the_prediction_id(source: Path) -> None:
    doc = yaml.safe_load(source.read_text())
    inp = doc["filebeat.inputs"][0] if isinstance(doc, dict) else doc[0]
    # a prediction is created once: a second copy is refused (op_type create, the default with an _id)
    assert metadata(inp["processors"], PREDICTION) == {"_id": "p1"}
    # feedback overwrites the day's earlier label of the same prediction: the latest one wins
    assert metadata(inp["processors"], FEEDBACK) == {"_id": "p1", "op_type": "index"}


def test_feedback_goes_to_the_feedback_index_of_the_day_it_arrived(config: dict[str, Any]) -> None:
    output = config["output.elasticsearch"]
    assert route(output, FEEDBACK) == schema.feedback_index("fraud", "2026.12.22")


def test_output_writes_plain_daily_indices_named_by_the_schema(config: dict[str, Any]) -> None:
    assert config["setup.ilm.enabled"] is False
    assert config["setup.template.enabled"] is False
    assert config["setup.template.pattern"] == schema.PREDICTIONS_INDEX_PREFIX + "*"
    output = config["output.elasticsearch"]
    assert route(output, PREDICTION) == schema.predictions_index("fraud", "2026.11.22")
    assert route(output, {**PREDICTION, "@timestamp": "2026-11-23T00:00:00Z"}) == schema.predictions_index(
        "fraud", "2026.11.23"
    )
    failed = {**PREDICTION, "event": {"dataset": schema.DATASET_PREDICTION, "outcome": "failure"}}
    assert route(output, failed) == schema.predictions_index("fraud", "2026.11.22")


def test_lines_that_fail_to_decode_and_rejected_documents_are_kept(config: dict[str, Any]) -> None:
    output = config["output.elasticsearch"]
    undecodable = {"@timestamp": "2026-11-22T10:00:00Z", "message": "{not json", "error": {"message": "x"}}
    assert route(output, undecodable) == schema.DEAD_LETTER_INDEX
    assert output["non_indexable_policy.dead_letter_index"]["index"] == schema.DEAD_LETTER_INDEX
    # The dead-letter alias is no model's daily index: no prediction or feedback pattern matches it.
    for prefix in (schema.PREDICTIONS_INDEX_PREFIX, schema.FEEDBACK_INDEX_PREFIX):
        assert not fnmatch.fnmatch(schema.DEAD_LETTER_INDEX, prefix + "*")
    nameless = {**PREDICTION, "ml": {"prediction_id": "p2"}}
    assert route(output, nameless) == schema.DEAD_LETTER_INDEX


def test_credentials_come_from_the_environment(config: dict[str, Any]) -> None:
    output = config["output.elasticsearch"]
    assert BEATS_VAR.fullmatch(output["password"])
    assert BEATS_VAR.fullmatch(output["password"]).group(2) is None
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["services"]["filebeat"]["environment"]
    for m in BEATS_VAR.finditer(FILEBEAT.read_text()):
        name, default = m.group(1), m.group(2)
        assert name.startswith("path.") or default is not None or name in env, f"{name} is never set"


def test_container_logs_are_a_disabled_alternative() -> None:
    (inp,) = yaml.safe_load(CONTAINERS.read_text())
    assert inp["enabled"] is False
    assert inp["type"] == "filestream"
    assert inp["id"] != "predwatch-prediction-files"
    kinds = [next(iter(p)) for p in inp["parsers"]]
    assert kinds == ["container", "ndjson"]
    drop = next(p["drop_event"] for p in inp["processors"] if "drop_event" in p)
    kept = {c["equals"][schema.EVENT_DATASET] for c in drop["when"]["not"]["or"]}
    assert kept == set(schema.DATASETS)
    config = yaml.safe_load(FILEBEAT.read_text())
    assert config["filebeat.config.inputs"]["path"].endswith("inputs.d/*.yml")
