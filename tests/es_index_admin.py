"""Changing existing indices in the Elasticsearch emulator (``es_emulator.py``): settings, mappings and updates by
query, the way Elasticsearch 8's reference documents them (``PUT <target>/_settings``, ``PUT <target>/_mapping``,
``POST <target>/_update_by_query``).

A target is a comma-separated list of names, aliases and wildcards.  Settings are stored flat
(``index.default_pipeline``).  A mapping may add fields; changing the type of a mapped field is refused
(``illegal_argument_exception``).  An update by query re-indexes each matching document from its ``_source``
(through the ``pipeline`` parameter, if given), keeping its ``_id``; with ``wait_for_completion=false`` it
answers with a task id (here the work is already done when it answers: the task has completed).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from tests.es_ingest import IngestFailure

if TYPE_CHECKING:
    from tests.es_emulator import Emulator


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def put_settings(emulator: Emulator, target: str, body: dict[str, Any]) -> dict[str, Any]:
    flat = _flat(body.get("settings", body))
    flat = {k if k.startswith("index.") else f"index.{k}": v for k, v in flat.items()}
    for name in emulator.resolve(target, False):
        emulator.indices[name].settings.update(flat)
    return {"acknowledged": True}


def put_mapping(emulator: Emulator, target: str, body: dict[str, Any]) -> dict[str, Any]:
    from tests.es_emulator import EsError

    added: dict[str, dict[str, Any]] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for key, spec in props.items():
            path = f"{prefix}{key}"
            added[path] = {k: v for k, v in spec.items() if k != "properties"}
            if "properties" in spec:
                added[path].setdefault("type", "object")
            walk(spec.get("properties", {}), path + ".")

    walk(body.get("properties", {}), "")
    names = emulator.resolve(target, False)
    for name in names:
        index = emulator.indices[name]
        for path, spec in added.items():
            had = index.mapped_type(path)
            if had is not None and had != spec.get("type", "object"):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"mapper [{path}] cannot be changed from type [{had}] to [{spec.get('type', 'object')}]",
                )
    for name in names:
        for path, spec in added.items():
            emulator.indices[name].mapping.setdefault(path, dict(spec))
    return {"acknowledged": True}


def update_by_query(emulator: Emulator, target: str, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    from tests.es_emulator import EsError

    query = (body or {}).get("query", {"match_all": {}})
    pipeline = params.get("pipeline")
    updated, failures = 0, []
    for index, doc in emulator.hits_of(emulator.resolve(target, True), query):
        source = copy.deepcopy(doc["_source"])
        try:
            if pipeline not in (None, "_none"):
                source = emulator.ingest.run(str(pipeline), source)
            values, ignored = index.parse(source)
        except (IngestFailure, EsError) as exc:
            failures.append({"index": index.name, "id": doc["_id"], "cause": {"reason": str(exc)}, "status": 400})
            continue
        index.seq_no += 1
        doc.update(_source=source, values=values, ignored=ignored, _seq_no=index.seq_no - 1)
        updated += 1
    if params.get("wait_for_completion") == "false":
        return {"task": f"emulator:{len(emulator.requests)}"}
    return {
        "took": 1,
        "timed_out": False,
        "total": updated + len(failures),
        "updated": updated,
        "deleted": 0,
        "batches": 1,
        "version_conflicts": 0,
        "noops": 0,
        "failures": failures,
    }
