"""kibana/ checked without Kibana: the committed NDJSON is what the description generates, every saved
object parses and has Kibana 8's shape, every reference resolves, and every field a chart reads exists
in the index templates generated from the schema."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from logshipper import schema

ROOT = Path(__file__).resolve().parents[1]
KIBANA = ROOT / "kibana"
JSON_STRING_ATTRIBUTES = ("panelsJSON", "optionsJSON", "visState", "uiStateJSON", "fields", "fieldFormatMap")


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("predwatch_kibana_generate", KIBANA / "generate.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    lines = (KIBANA / "saved_objects.ndjson").read_text(encoding="utf-8").splitlines()
    out = []
    for n, line in enumerate(lines, start=1):
        try:
            out.append(json.loads(line))
        except ValueError as exc:
            pytest.fail(f"saved_objects.ndjson line {n}: {exc}")
    return out


@pytest.fixture(scope="module")
def by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["type"], o["id"]): o for o in objects}


def test_committed_file_is_what_the_description_generates() -> None:
    fresh = generate.render(generate.build(generate.load_description()))
    assert (KIBANA / "saved_objects.ndjson").read_text(encoding="utf-8") == fresh, "run python kibana/generate.py"
    assert generate.main(["--check"]) == 0


def test_every_object_has_kibana_8_shape(objects: list[dict[str, Any]]) -> None:
    assert len({(o["type"], o["id"]) for o in objects}) == len(objects), "duplicate ids"
    for o in objects:
        assert set(o) >= {"type", "id", "attributes", "references", "coreMigrationVersion", "typeMigrationVersion"}
        assert re.fullmatch(r"8\.\d+\.\d+", o["coreMigrationVersion"])
        assert o["attributes"]["title"]
        for key in JSON_STRING_ATTRIBUTES:
            if key in o["attributes"]:
                assert isinstance(o["attributes"][key], str), f"{o['id']}.{key} must be a JSON string"
                json.loads(o["attributes"][key])
        meta = o["attributes"].get("kibanaSavedObjectMeta")
        if meta:
            json.loads(meta["searchSourceJSON"])


def test_data_views_cover_predictions_feedback_and_results(objects: list[dict[str, Any]]) -> None:
    views = {o["attributes"]["title"]: o["attributes"] for o in objects if o["type"] == "index-pattern"}
    assert views[schema.PREDICTIONS_INDEX_PREFIX + "*"]["timeFieldName"] == schema.TIMESTAMP
    assert views[schema.FEEDBACK_INDEX_PREFIX + "*"]["timeFieldName"] == schema.TIMESTAMP
    assert views[schema.MONITOR_INDEX_PREFIX + "*"]["timeFieldName"] == "window.end"


def test_the_four_promised_views_exist(objects: list[dict[str, Any]]) -> None:
    dashboards = {o["id"]: o for o in objects if o["type"] == "dashboard"}
    assert {"predwatch-overview", "predwatch-drift", "predwatch-fairness"} <= set(dashboards)
    searches = {o["id"]: o["attributes"] for o in objects if o["type"] == "search"}
    predictions = searches["predwatch-predictions-debug"]
    for needed in (schema.ENTITY_ID, schema.PREDICTION_ID, schema.MODEL_VERSION, schema.SCORE):
        assert needed in predictions["columns"]
    feedback = searches["predwatch-feedback-debug"]  # labels live in their own indices
    assert {schema.PREDICTION_ID, schema.LABEL} <= set(feedback["columns"])
    for attributes in searches.values():
        assert attributes["sort"] == [[schema.TIMESTAMP, "desc"]]


def test_every_reference_resolves(objects: list[dict[str, Any]], by_key: dict[tuple[str, str], Any]) -> None:
    for o in objects:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in by_key, f"{o['id']}: reference {ref} does not resolve"
        if o["type"] == "search":
            source = json.loads(o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
            assert source["indexRefName"] in {r["name"] for r in o["references"]}


def test_dashboard_panels_have_their_references(objects: list[dict[str, Any]]) -> None:
    for dash in (o for o in objects if o["type"] == "dashboard"):
        refs = {r["name"]: r for r in dash["references"]}
        panels = json.loads(dash["attributes"]["panelsJSON"])
        assert len({p["panelIndex"] for p in panels}) == len(panels)
        for p in panels:
            assert p["gridData"]["i"] == p["panelIndex"]
            assert p["gridData"]["x"] >= 0
            assert p["gridData"]["x"] + p["gridData"]["w"] <= 48
            if "panelRefName" in p:
                ref = refs[f"{p['panelIndex']}:{p['panelRefName']}"]
                assert ref["type"] == p["type"]
            else:
                assert p["type"] == "lens"
                for inner in p["embeddableConfig"]["attributes"]["references"]:
                    outer = refs[f"{p['panelIndex']}:{inner['name']}"]
                    assert (outer["type"], outer["id"]) == (inner["type"], inner["id"])
        assert set(refs) == {r["name"] for r in dash["references"]}, "reference names are unique"


def _lens_panels(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for dash in (o for o in objects if o["type"] == "dashboard"):
        out += [p for p in json.loads(dash["attributes"]["panelsJSON"]) if p["type"] == "lens"]
    return out


def test_lens_state_is_consistent(objects: list[dict[str, Any]]) -> None:
    panels = _lens_panels(objects)
    assert panels
    for p in panels:
        attrs = p["embeddableConfig"]["attributes"]
        state = attrs["state"]
        layers = state["datasourceStates"]["formBased"]["layers"]
        ref_names = {r["name"] for r in attrs["references"]}
        for layer_id, layer in layers.items():
            assert f"indexpattern-datasource-layer-{layer_id}" in ref_names
            assert set(layer["columnOrder"]) == set(layer["columns"])
            for column in layer["columns"].values():
                order_by = column.get("params", {}).get("orderBy", {})
                if order_by.get("type") == "column":
                    assert order_by["columnId"] in layer["columns"]
                assert column["sourceField"]
        vis = state["visualization"]
        columns = {c for layer in layers.values() for c in layer["columns"]}
        if attrs["visualizationType"] == "lnsXY":
            for layer in vis["layers"]:
                assert layer["layerId"] in layers
                used = [layer["xAccessor"], *layer["accessors"], layer.get("splitAccessor")]
                assert {c for c in used if c} <= columns
        elif attrs["visualizationType"] == "lnsMetric":
            assert vis["metricAccessor"] in columns
        else:
            assert attrs["visualizationType"] == "lnsDatatable"
            assert {c["columnId"] for c in vis["columns"]} == columns


def _vega_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for o in objects:
        if o["type"] == "visualization":
            state = json.loads(o["attributes"]["visState"])
            assert state["type"] == "vega"
            out[o["id"]] = json.loads(state["params"]["spec"])
    return out


def vega_fields(spec: dict[str, Any]) -> set[str]:
    """Document fields a Vega-Lite spec reads: query and sort fields, ``_source`` paths, and encoded fields
    of flattened arrays mapped back to their source paths."""
    body = spec["data"]["url"]["body"]
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("term", "range", "terms"):
                if isinstance(node.get(key), dict):
                    found.update(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(body["query"])
    for sort in body.get("sort", []):
        found.update(sort)
    aliases: dict[str, str] = {}
    for t in spec.get("transform", []):
        if "flatten" in t:
            for src, alias in zip(t["flatten"], t["as"], strict=True):
                head, _, rest = src.partition(".")
                aliases[alias] = rest if head == "_source" else f"{aliases[head]}.{rest}"
        expression = t.get("calculate", "") + " " + str(t.get("filter", ""))
        found.update(re.findall(r"datum\._source\.([\w.]+)", expression))
        for alias, path in re.findall(r"datum\.(\w+)\.(\w+)", expression):
            if alias in aliases:
                found.add(f"{aliases[alias]}.{path}")
    encoded = [e for e in spec["encoding"].values() if isinstance(e, dict)]
    encoded += [t for t in spec["encoding"].get("tooltip", [])]
    for enc in encoded:
        head, _, rest = enc["field"].partition(".")
        if head in aliases and rest:
            found.add(f"{aliases[head]}.{rest}")
    return found


def test_vega_charts_read_the_results_through_the_dashboard_context(objects: list[dict[str, Any]]) -> None:
    description = generate.load_description()
    declared = {v["id"]: set(v["fields"]) for v in description["vega"].values()}
    specs = _vega_specs(objects)
    assert set(specs) == set(declared)
    for vid, spec in specs.items():
        url = spec["data"]["url"]
        assert url["index"] == schema.MONITOR_INDEX_PREFIX + "*"
        text = json.dumps(url)
        for placeholder in ("%dashboard_context-must_clause%", "%dashboard_context-filter_clause%", "%timefilter%"):
            assert placeholder in text, f"{vid}: {placeholder} missing"
        read = vega_fields(spec)
        assert read <= declared[vid], f"{vid} reads undeclared fields {read - declared[vid]}"
        assert {"job", "window.end", "model"} <= read


def test_vega_charts_follow_the_findings_shape() -> None:
    """The arrays the charts flatten are the ones the drift and fairness findings carry."""
    from analyzers.findings import DriftMetrics, FairnessMetrics, Finding
    from analyzers.timeutil import Window, parse_time

    window = Window(parse_time("2026-11-22T00:00:00Z"), parse_time("2026-11-23T00:00:00Z"))
    amount = {"name": "amount", "kind": "numeric", "method": "ks", "effect_size": 0.1}
    drift = Finding("fraud", "drift", window, "ok", DriftMetrics.from_dict({"n_cur": 100, "features": [amount]}))
    region = {"name": "region", "groups": []}
    fairness = Finding("fraud", "fairness", window, "ok", FairnessMetrics.from_dict({"n": 100, "attributes": [region]}))
    description = generate.load_description()
    for finding, key in ((drift, "drift-features"), (fairness, "fairness-selection-rate")):
        doc = finding.to_dict()
        for field in description["vega"][key]["fields"]:
            top = field.split(".")[0]
            assert top in doc, f"{key} reads {field}, but a {finding.job} finding has no {top!r}"


# Fields against the generated index templates -------------------------------------------------


def mapped_fields(template: dict[str, Any]) -> tuple[set[str], list[str]]:
    """Explicitly mapped field paths (objects, nested objects and multi-fields) and dynamic path_match globs."""
    mappings = template.get("template", template).get("mappings", {})
    fields: set[str] = set()

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            path = f"{prefix}{name}"
            fields.add(path)
            walk(spec.get("properties", {}), path + ".")
            for sub in spec.get("fields", {}):
                fields.add(f"{path}.{sub}")

    walk(mappings.get("properties", {}), "")
    globs = []
    for entry in mappings.get("dynamic_templates", []):
        for rule in entry.values():
            if "path_match" in rule:
                globs += [rule["path_match"]] if isinstance(rule["path_match"], str) else rule["path_match"]
    return fields, globs


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    from analyzers.store.elastic import templates as generated

    return {
        "predictions": generated.index_template(),
        "feedback": generated.feedback_index_template(),
        "monitor": generated.monitor_index_template(),
    }


def test_every_field_a_chart_uses_exists_in_the_index_templates(templates: dict[str, dict[str, Any]]) -> None:
    description = generate.load_description()
    used = generate.fields_used(description)
    for view_key, view in description["data_views"].items():
        template = templates[view["template"]]
        assert fnmatch.fnmatch(view["title"].replace("*", "x"), template["index_patterns"][0])
        fields, globs = mapped_fields(template)
        missing = sorted(f for f in used[view_key] if f not in fields and not any(fnmatch.fnmatch(f, g) for g in globs))
        assert not missing, f"{view['title']}: fields used by Kibana objects but not in the template: {missing}"
