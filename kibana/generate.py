"""Generate ``kibana/saved_objects.ndjson`` (Kibana 8 saved objects) from ``kibana/dashboards.yml``.

Run ``python kibana/generate.py`` after editing the description; ``--check`` exits 1 when the committed
file is out of date.  Lens charts are embedded by value in the dashboards; the Vega charts over the
analyzers' findings (whose per-feature and per-group numbers are arrays) are saved visualizations.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DESCRIPTION = HERE / "dashboards.yml"
OUTPUT = HERE / "saved_objects.ndjson"
GRID_COLUMNS = 48
CORE_MIGRATION_VERSION = "8.8.0"
# The versions these shapes are written in; Kibana migrates anything newer itself on import.
TYPE_MIGRATION_VERSION = {
    "index-pattern": "8.0.0",
    "search": "8.0.0",
    "visualization": "8.5.0",
    "dashboard": "8.9.0",
}
RECORDS = "___records___"
XY_SERIES = {"line", "bar", "bar_stacked", "bar_percentage_stacked", "area", "area_stacked"}
METRIC_OPS = {"count", "average", "sum", "min", "max", "median", "percentile", "unique_count"}
KQL_FIELD = re.compile(r"([A-Za-z_@][\w.@]*)\s*:")


class DescriptionError(ValueError):
    """The description is inconsistent; the message names the object and the key."""


def load_description(path: Path = DESCRIPTION) -> dict[str, Any]:
    """The parsed YAML description."""
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    for key in ("data_views", "dashboards"):
        if key not in data:
            raise DescriptionError(f"{path}: missing top-level key {key!r}")
    return data


def build(description: dict[str, Any], base: Path = HERE) -> list[dict[str, Any]]:
    """Every saved object: data views, saved searches, Vega visualizations, then dashboards."""
    views = description["data_views"]
    objects = [_data_view(v) for v in views.values()]
    searches = description.get("searches") or {}
    objects += [_search(s, views, f"searches.{k}") for k, s in searches.items()]
    vegas = description.get("vega") or {}
    objects += [_vega(v, base) for v in vegas.values()]
    objects += [_dashboard(d, description) for d in description["dashboards"]]
    return objects


def render(objects: Iterable[dict[str, Any]]) -> str:
    """NDJSON as Kibana's import takes it: one object per line, keys sorted so output is stable."""
    return "".join(json.dumps(o, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n" for o in objects)


def fields_used(description: dict[str, Any]) -> dict[str, set[str]]:
    """Fields each data view's objects read (time fields, columns, splits, KQL filters, Vega fields)."""
    views = description["data_views"]
    used: dict[str, set[str]] = {key: {view["time_field"]} for key, view in views.items()}
    for search in (description.get("searches") or {}).values():
        used[search["data_view"]] |= set(search["columns"]) | _kql_fields(search.get("query", ""))
        used[search["data_view"]].add(search["sort"][0])
    for vega in (description.get("vega") or {}).values():
        used.setdefault(vega.get("data_view", "monitor"), set()).update(vega["fields"])
    for dashboard in description["dashboards"]:
        for panel in dashboard["panels"]:
            if "lens" not in panel:
                continue
            fields = used[panel["data_view"]]
            fields |= _kql_fields(panel.get("filter", ""))
            for spec in _lens_specs(panel):
                if spec.get("field"):
                    fields.add(spec["field"])
                fields |= _kql_fields(spec.get("filter", ""))
    return used


def _kql_fields(query: str) -> set[str]:
    return set(KQL_FIELD.findall(query or ""))


def _lens_specs(panel: dict[str, Any]) -> list[dict[str, Any]]:
    specs = [panel.get("metric"), panel.get("x"), panel.get("split"), *panel.get("y", []), *panel.get("rows", [])]
    specs += panel.get("metrics", [])
    return [s for s in specs if s]


def _meta(obj_type: str, obj_id: str, attributes: dict[str, Any], references: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "type": obj_type,
        "id": obj_id,
        "attributes": attributes,
        "references": references,
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": TYPE_MIGRATION_VERSION[obj_type],
        "managed": False,
    }


def _search_source(query: str = "", **extra: Any) -> str:
    return json.dumps({"query": {"query": query, "language": "kuery"}, "filter": [], **extra}, sort_keys=True)


def _data_view(view: dict[str, Any]) -> dict[str, Any]:
    attributes = {
        "title": view["title"],
        "name": view["name"],
        "timeFieldName": view["time_field"],
        "allowNoIndex": True,
        "fields": "[]",
        "fieldFormatMap": "{}",
        "runtimeFieldMap": "{}",
        "sourceFilters": "[]",
    }
    return _meta("index-pattern", view["id"], attributes, [])


def _view_id(views: dict[str, Any], key: str, where: str) -> str:
    try:
        return views[key]["id"]
    except KeyError:
        raise DescriptionError(f"{where}: unknown data_view {key!r} (known: {', '.join(views)})") from None


def _search(search: dict[str, Any], views: dict[str, Any], where: str) -> dict[str, Any]:
    ref = "kibanaSavedObjectMeta.searchSourceJSON.index"
    sort_field, direction = search["sort"]
    attributes = {
        "title": search["title"],
        "description": search.get("description", ""),
        "columns": list(search["columns"]),
        "sort": [[sort_field, direction]],
        "grid": {},
        "hideChart": False,
        "isTextBasedQuery": False,
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(search.get("query", ""), indexRefName=ref)},
    }
    refs = [{"name": ref, "type": "index-pattern", "id": _view_id(views, search["data_view"], where)}]
    return _meta("search", search["id"], attributes, refs)


def _vega(vega: dict[str, Any], base: Path) -> dict[str, Any]:
    spec_path = base / vega["spec"]
    spec = spec_path.read_text(encoding="utf-8")
    try:
        json.loads(spec)
    except ValueError as exc:
        raise DescriptionError(f"{spec_path}: not JSON ({exc})") from None
    vis_state = {"title": vega["title"], "type": "vega", "aggs": [], "params": {"spec": spec}}
    attributes = {
        "title": vega["title"],
        "description": vega.get("description", ""),
        "uiStateJSON": "{}",
        "version": 1,
        "visState": json.dumps(vis_state, sort_keys=True),
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source()},
    }
    return _meta("visualization", vega["id"], attributes, [])


def _dashboard(dashboard: dict[str, Any], description: dict[str, Any]) -> dict[str, Any]:
    where = f"dashboard {dashboard['id']}"
    views = description["data_views"]
    panels: list[dict[str, Any]] = []
    references: list[dict[str, str]] = []
    x = y = row_height = 0
    for n, panel in enumerate(dashboard["panels"], start=1):
        pid = f"p{n}"
        w, h = panel.get("size", [24, 15])
        if x + w > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        grid = {"x": x, "y": y, "w": w, "h": h, "i": pid}
        x, row_height = x + w, max(row_height, h)
        if "lens" in panel:
            attributes, refs = _lens(panel, pid, views, f"{where} panel {n}")
            panels.append(
                {
                    "type": "lens",
                    "gridData": grid,
                    "panelIndex": pid,
                    "embeddableConfig": {"attributes": attributes, "enhancements": {}},
                    "title": panel["title"],
                }
            )
            references += [{**r, "name": f"{pid}:{r['name']}"} for r in refs]
        elif "vega" in panel or "search" in panel:
            kind, key = ("visualization", panel["vega"]) if "vega" in panel else ("search", panel["search"])
            catalogue = description.get("vega" if kind == "visualization" else "searches") or {}
            if key not in catalogue:
                raise DescriptionError(f"{where} panel {n}: unknown {kind} {key!r}")
            entry: dict[str, Any] = {
                "type": kind,
                "gridData": grid,
                "panelIndex": pid,
                "embeddableConfig": {"enhancements": {}},
                "panelRefName": f"panel_{pid}",
            }
            if panel.get("title"):
                entry["title"] = panel["title"]
            panels.append(entry)
            references.append({"name": f"{pid}:panel_{pid}", "type": kind, "id": catalogue[key]["id"]})
        else:
            raise DescriptionError(f"{where} panel {n}: give one of lens, vega or search")
    time = dashboard.get("time", {})
    attributes = {
        "title": dashboard["title"],
        "description": dashboard.get("description", ""),
        "panelsJSON": json.dumps(panels, sort_keys=True),
        "optionsJSON": json.dumps(
            {
                "useMargins": True,
                "syncColors": False,
                "syncCursor": True,
                "syncTooltips": False,
                "hidePanelTitles": False,
            },
            sort_keys=True,
        ),
        "version": 1,
        "timeRestore": True,
        "timeFrom": time.get("from", "now-24h"),
        "timeTo": time.get("to", "now"),
        "refreshInterval": {"pause": False, "value": int(time.get("refresh_seconds", 60)) * 1000},
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source()},
    }
    return _meta("dashboard", dashboard["id"], attributes, references)


def _lens(
    panel: dict[str, Any], pid: str, views: dict[str, Any], where: str
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    layer = f"{pid}-layer"
    columns: dict[str, dict[str, Any]] = {}
    order: list[str] = []

    def add(spec: dict[str, Any], role: str, sort_by: str | None = None) -> str:
        cid = f"{pid}-{role}"
        columns[cid] = _column(spec, sort_by, f"{where} {role}")
        order.append(cid)
        return cid

    kind = panel["lens"]
    if kind == "metric":
        metric = add(panel["metric"], "metric")
        vis_type = "lnsMetric"
        visualization: dict[str, Any] = {"layerId": layer, "layerType": "data", "metricAccessor": metric}
    elif kind in XY_SERIES:
        specs_y = panel["y"]
        # Bucket columns come first in Lens' column order; the split is ordered by the first metric.
        first_metric = f"{pid}-y1"
        x_col = add(panel["x"], "x")
        split = add({**panel["split"], "op": "terms"}, "split", first_metric) if panel.get("split") else None
        accessors = [add(spec, f"y{i}") for i, spec in enumerate(specs_y, start=1)]
        vis_type = "lnsXY"
        layer_state: dict[str, Any] = {
            "layerId": layer,
            "layerType": "data",
            "seriesType": kind,
            "xAccessor": x_col,
            "accessors": accessors,
            "position": "top",
            "showGridlines": False,
        }
        if split:
            layer_state["splitAccessor"] = split
        visualization = {
            "legend": {"isVisible": True, "position": "right"},
            "valueLabels": "hide",
            "fittingFunction": "None",
            "preferredSeriesType": kind,
            "axisTitlesVisibilitySettings": {"x": True, "yLeft": True, "yRight": True},
            "layers": [layer_state],
        }
    elif kind == "table":
        first_metric = f"{pid}-m1"
        rows = [add({**r, "op": "terms"}, f"row{i}", first_metric) for i, r in enumerate(panel["rows"], start=1)]
        metrics = [add(m, f"m{i}") for i, m in enumerate(panel["metrics"], start=1)]
        vis_type = "lnsDatatable"
        visualization = {"layerId": layer, "layerType": "data", "columns": [{"columnId": c} for c in rows + metrics]}
    else:
        raise DescriptionError(f"{where}: unknown lens chart {kind!r}")

    refs = [
        {
            "type": "index-pattern",
            "id": _view_id(views, panel["data_view"], where),
            "name": f"indexpattern-datasource-layer-{layer}",
        }
    ]
    attributes = {
        "title": panel["title"],
        "description": panel.get("description", ""),
        "visualizationType": vis_type,
        "type": "lens",
        "references": refs,
        "state": {
            "visualization": visualization,
            "query": {"query": panel.get("filter", ""), "language": "kuery"},
            "filters": [],
            "datasourceStates": {
                "formBased": {
                    "layers": {
                        layer: {"columns": columns, "columnOrder": order, "incompleteColumns": {}, "sampling": 1}
                    }
                }
            },
            "internalReferences": [],
            "adHocDataViews": {},
        },
    }
    return attributes, refs


def _column(spec: dict[str, Any], sort_by: str | None, where: str) -> dict[str, Any]:
    op = spec.get("op")
    field = spec.get("field")
    label = spec.get("label")
    if op == "count":
        column: dict[str, Any] = {
            "operationType": "count",
            "sourceField": RECORDS,
            "dataType": "number",
            "isBucketed": False,
            "scale": "ratio",
            "params": {"emptyAsNull": True},
        }
        default_label = "Count of records"
    elif op in METRIC_OPS:
        if not field:
            raise DescriptionError(f"{where}: {op} needs a field")
        column = {
            "operationType": op,
            "sourceField": field,
            "dataType": "number",
            "isBucketed": False,
            "scale": "ratio",
        }
        if op == "percentile":
            column["params"] = {"percentile": int(spec.get("percentile", 95))}
            default_label = f"{column['params']['percentile']}th percentile of {field}"
        else:
            column["params"] = {"emptyAsNull": True}
            default_label = f"{op.capitalize()} of {field}"
    elif op == "date_histogram":
        column = {
            "operationType": "date_histogram",
            "sourceField": field,
            "dataType": "date",
            "isBucketed": True,
            "scale": "interval",
            "params": {"interval": spec.get("interval", "auto"), "includeEmptyRows": True, "dropPartials": False},
        }
        default_label = field
    elif op == "histogram":
        column = {
            "operationType": "range",
            "sourceField": field,
            "dataType": "number",
            "isBucketed": True,
            "scale": "interval",
            "params": {
                "type": "histogram",
                "maxBars": spec.get("max_bars", "auto"),
                "ranges": [{"from": 0, "to": 1000, "label": ""}],
                "includeEmptyRows": True,
            },
        }
        default_label = field
    elif op == "terms":
        if sort_by is None:
            raise DescriptionError(f"{where}: terms needs a metric to order by")
        column = {
            "operationType": "terms",
            "sourceField": field,
            "dataType": "string",
            "isBucketed": True,
            "scale": "ordinal",
            "params": {
                "size": int(spec.get("size", 10)),
                "orderBy": {"type": "column", "columnId": sort_by},
                "orderDirection": "desc",
                "otherBucket": True,
                "missingBucket": False,
                "parentFormat": {"id": "terms"},
            },
        }
        default_label = f"Top {column['params']['size']} values of {field}"
    else:
        raise DescriptionError(f"{where}: unknown operation {op!r}")
    column["label"] = label or default_label
    if label:
        column["customLabel"] = True
    if spec.get("filter"):
        column["filter"] = {"query": spec["filter"], "language": "kuery"}
    return column


def main(argv: list[str] | None = None) -> int:
    """Write saved_objects.ndjson, or with ``--check`` report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render(build(load_description()))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python kibana/generate.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({text.count(chr(10))} objects)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
