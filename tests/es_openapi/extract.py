"""Cut the operations predwatch sends out of Elasticsearch's official OpenAPI document.

    python tests/es_openapi/extract.py path/to/elasticsearch-specification   # a checkout of its 8.17 branch

Reads ``output/openapi/elasticsearch-openapi.json`` of https://github.com/elastic/elasticsearch-specification
(Apache-2.0, see NOTICE.txt).  The subset keeps these operations (their parameters and request bodies) and
every component schema they reach, unchanged.  The OpenAPI output drops one thing the specification says:
which classes also take keys that are names (``@behavior AdditionalProperty``/``AdditionalProperties``, e.g. a
sort on a field, ``{"@timestamp": {"order": "asc"}}``); their names are listed beside it, read from the
specification's TypeScript sources.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUBSET = HERE / "elasticsearch-openapi-subset.json"
OPEN_CLASSES = HERE / "additional-properties.json"
_BEHAVIOR = re.compile(r"export\s+(?:class|interface)\s+(\w+)[^{]*?\bAdditionalPropert(?:y|ies)\s*<", re.S)
# (method, path): every request the Elasticsearch store and `predwatch setup` send.
OPERATIONS = [
    ("get", "/"),
    ("get", "/_cluster/health"),
    ("get", "/_ilm/policy/{policy}"),
    ("put", "/_ilm/policy/{policy}"),
    ("head", "/_index_template/{name}"),
    ("put", "/_index_template/{name}"),
    ("head", "/_alias/{name}"),
    ("head", "/{index}"),
    ("put", "/{index}"),
    ("post", "/{index}/_search"),
    ("post", "/_search"),
    ("post", "/{index}/_field_caps"),
    ("post", "/{index}/_pit"),
    ("delete", "/_pit"),
    ("put", "/_bulk"),
    ("put", "/{index}/_create/{id}"),
    ("put", "/{index}/_doc/{id}"),
    ("get", "/{index}/_doc/{id}"),
    ("delete", "/{index}/_doc/{id}"),
    ("get", "/{index}/_stats/{metric}"),
    ("get", "/_ingest/pipeline/{id}"),
    ("put", "/_ingest/pipeline/{id}"),
    ("put", "/{index}/_settings"),
    ("put", "/{index}/_mapping"),
    ("post", "/{index}/_update_by_query"),
]


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def subset(document: dict[str, Any]) -> dict[str, Any]:
    """The operations above and the components they reference, transitively."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path in OPERATIONS:
        paths.setdefault(path, {})[method] = document["paths"][path][method]
    components: dict[str, dict[str, Any]] = {}
    todo = _refs(paths)
    seen: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, _, kind, name = ref.split("/", 3)
        node = document["components"][kind][name]
        components.setdefault(kind, {})[name] = node
        todo |= _refs(node) - seen
    return {
        "openapi": document["openapi"],
        "info": document["info"],
        "paths": paths,
        "components": {k: dict(sorted(v.items())) for k, v in sorted(components.items())},
    }


def open_classes(specification: Path) -> list[str]:
    """``namespace:Class`` of every class of the TypeScript specification that also takes named keys."""
    found = []
    for source in sorted(specification.rglob("*.ts")):
        namespace = ".".join(source.relative_to(specification).parent.parts)
        found += [f"{namespace}:{name}" for name in _BEHAVIOR.findall(source.read_text(encoding="utf-8"))]
    return sorted(found)


def main(argv: list[str]) -> int:
    checkout = Path(argv[0])
    document = json.loads((checkout / "output" / "openapi" / "elasticsearch-openapi.json").read_text(encoding="utf-8"))
    cut = subset(document)
    SUBSET.write_text(json.dumps(cut, sort_keys=True, separators=(",", ":")) + "\n", encoding="utf-8")
    schemas = cut["components"]["schemas"]
    classes = [c for c in open_classes(checkout / "specification") if c in schemas]
    OPEN_CLASSES.write_text(json.dumps(classes, indent=1) + "\n", encoding="utf-8")
    print(SUBSET, SUBSET.stat().st_size, "bytes;", len(classes), "classes take named keys")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
