"""An Elasticsearch 8 stand-in on 127.0.0.1 for the store's tests: it indexes documents under the templates
``predwatch setup`` installs and answers the subset of the REST API the store sends, from those documents.

What it does the way Elasticsearch does (per its reference documentation): composable index templates
(highest priority wins), dynamic templates (``path_match`` and ``match_mapping_type``, lists included),
``ignore_malformed``/``coerce`` (a set-aside value is listed in ``_ignored``), ``constant_keyword``,
``_id`` conflicts on ``create``, optimistic concurrency (``if_seq_no``), aliases, ``_field_caps`` with an
``index_filter`` (an index is left out when a ``range`` or a ``constant_keyword`` term cannot match it),
points in time (a search on one whose index was deleted fails with ``search_context_missing_exception``),
``search_after``, ``collapse``, ``_source`` includes, and the aggregations ``terms``, ``filter``,
``extended_stats``, ``value_count``, ``percentiles`` (exact here, TDigest estimates there), ``range``,
``composite``, ``date_histogram`` and ``top_hits``, with their response shapes; ``_ignored`` in hits; ingest
pipelines and ``index.default_pipeline`` (``es_ingest.py``); settings, mappings and updates by query on existing
indices (``es_index_admin.py``).

It is no substitute for a live cluster (``ES_URL``): scoring, shards, refresh timing and everything outside
this subset are not modelled.  Every request is recorded, so tests can count searches and measure bodies.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from tests import es_index_admin
from tests.es_ingest import IngestFailure, Pipelines
from tests.local_http import ELASTIC_JSON, QuietHandler

_NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}


class EsError(Exception):
    def __init__(self, status: int, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.kind, self.reason = status, kind, reason

    def body(self) -> dict[str, Any]:
        cause = {"type": self.kind, "reason": self.reason}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    size: int  # bytes of the body as sent


def _millis(text: str) -> int:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return None


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every leaf; a list gives its elements under the same path; dots in keys nest."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict):
                yield path, value  # the object itself (for object mappings)
                yield from _leaves(value, path + ".")
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, dict):
                        yield path, item
                        yield from _leaves(item, path + ".")
                    else:
                        yield path, item
            else:
                yield path, value


@dataclass
class Index:
    name: str
    mapping: dict[str, dict[str, Any]]  # dotted path -> field mapping (objects included)
    dynamic_templates: list[dict[str, Any]]
    dynamic: str
    settings: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    seq_no: int = 0

    def mapped_type(self, path: str) -> str | None:
        spec = self.mapping.get(path)
        return spec.get("type", "object") if spec is not None else None

    def _dynamic(self, path: str, json_type: str) -> dict[str, Any] | None:
        for entry in self.dynamic_templates:
            (rule,) = entry.values()
            globs = rule.get("path_match", "*")
            globs = [globs] if isinstance(globs, str) else globs
            types = rule.get("match_mapping_type", "*")
            types = [types] if isinstance(types, str) else types
            if any(fnmatch.fnmatchcase(path, g) for g in globs) and ("*" in types or json_type in types):
                return dict(rule["mapping"])
        return None

    def _disabled(self, path: str) -> bool:
        parts = path.split(".")
        for i in range(1, len(parts)):
            spec = self.mapping.get(".".join(parts[:i]))
            if spec is not None and spec.get("enabled") is False:
                return True
        return False

    def parse(self, source: dict[str, Any]) -> tuple[dict[str, list[Any]], list[str]]:
        """Indexed values per path and the paths set aside (``_ignored``); raises EsError for a rejected doc."""
        values: dict[str, list[Any]] = {}
        ignored: list[str] = []
        new: dict[str, dict[str, Any]] = {}
        for path, value in _leaves(source):
            if value is None or self._disabled(path):
                continue
            json_type = _json_type(value)
            spec = self.mapping.get(path) or new.get(path)
            if spec is None:
                if self.dynamic == "false":
                    continue
                spec = self._dynamic(path, json_type or "string")
                if spec is None:
                    spec = {"type": "object"} if json_type == "object" else _default_mapping(json_type)
                new[path] = spec
            kind = spec.get("type", "object")
            if kind == "object":
                if json_type != "object":
                    raise EsError(
                        400, "document_parsing_exception", f"object mapping for [{path}] tried to parse a value"
                    )
                continue
            if json_type == "object":
                raise EsError(400, "document_parsing_exception", f"[{path}] of type [{kind}] cannot hold an object")
            try:
                parsed = _parse_value(kind, spec, value)
            except ValueError:
                if spec.get("ignore_malformed"):
                    ignored.append(path)
                    continue
                raise EsError(
                    400, "document_parsing_exception", f"failed to parse field [{path}] of type [{kind}]"
                ) from None
            if parsed is None:  # a keyword over its ignore_above: kept in _source, not indexed, listed
                ignored.append(path)
                continue
            if kind == "constant_keyword":
                fixed = spec.get("value", self.mapping.get(path, {}).get("value"))
                if fixed is not None and fixed != parsed:
                    raise EsError(
                        400, "document_parsing_exception", f"[constant_keyword] field [{path}] only accepts [{fixed}]"
                    )
            values.setdefault(path, []).append(parsed)
        for path, spec in new.items():
            self.mapping[path] = spec
        for path, vals in values.items():
            spec = self.mapping.get(path, {})
            if spec.get("type") == "constant_keyword" and "value" not in spec:
                spec["value"] = vals[0]
        return values, ignored


def _default_mapping(json_type: str | None) -> dict[str, Any]:
    return {
        "string": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
        "long": {"type": "long"},
        "double": {"type": "float"},
        "boolean": {"type": "boolean"},
    }.get(json_type or "string", {"type": "keyword"})


def _parse_value(kind: str, spec: dict[str, Any], value: Any) -> Any:
    if kind in ("keyword", "constant_keyword"):
        text = (
            str(value).lower()
            if isinstance(value, bool)
            else (json.dumps(value) if isinstance(value, float) else str(value))
        )
        return None if len(text) > spec.get("ignore_above", 1 << 30) else text
    if kind in _NUMERIC:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, str):
            if spec.get("coerce") is False:
                raise ValueError(value)
            return float(value)
        return float(value) if kind in ("double", "float") else int(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise ValueError(value)
    if kind == "date":
        return _millis(value)
    if kind in ("text", "match_only_text"):
        return str(value)
    return value


def _source_filter(source: dict[str, Any], includes: list[str] | None) -> dict[str, Any]:
    if includes is None:
        return source
    out: dict[str, Any] = {}

    def walk(node: dict[str, Any], target: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if any(path == i or path.startswith(i + ".") for i in includes):
                target[key] = value
            elif isinstance(value, dict) and any(i.startswith(path + ".") for i in includes):
                walk(value, target.setdefault(key, {}), path + ".")

    walk(source, out, "")
    return out


class Emulator:
    """The cluster's state and the REST handlers, behind :meth:`serve`."""

    def __init__(self, version: str = "8.17.0") -> None:
        self.version = version
        self.indices: dict[str, Index] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, dict[str, Any]] = {}
        self.aliases: dict[str, list[str]] = {}
        self.pits: dict[str, list[str]] = {}
        self.ingest = Pipelines()  # ingest pipelines by id (es_ingest.py)
        self.requests: list[Request] = []
        self.answers: list[tuple[int, Any]] = []  # what each request was answered, in order
        self.lock = threading.RLock()
        self.url = ""

    # ---- indices -------------------------------------------------------------------------------------
    def _template_for(self, name: str) -> dict[str, Any] | None:
        found = [t for t in self.templates.values() if any(fnmatch.fnmatchcase(name, p) for p in t["index_patterns"])]
        return max(found, key=lambda t: t.get("priority", 0)) if found else None

    def create_index(self, name: str, body: dict[str, Any] | None = None) -> Index:
        if name in self.indices or name in self.aliases:
            raise EsError(400, "resource_already_exists_exception", f"index [{name}] already exists")
        body = body or {}
        template = (self._template_for(name) or {}).get("template", {})
        mappings = {**template.get("mappings", {}), **body.get("mappings", {})}
        flat: dict[str, dict[str, Any]] = {}

        def walk(props: dict[str, Any], prefix: str) -> None:
            for key, spec in props.items():
                path = f"{prefix}{key}"
                flat[path] = {k: v for k, v in spec.items() if k != "properties"}
                walk(spec.get("properties", {}), path + ".")

        walk(template.get("mappings", {}).get("properties", {}), "")
        walk(body.get("mappings", {}).get("properties", {}), "")
        index = Index(
            name,
            flat,
            list(mappings.get("dynamic_templates", [])),
            str(mappings.get("dynamic", "true")).lower(),
            {**template.get("settings", {}), **body.get("settings", {})},
        )
        self.indices[name] = index
        for alias, spec in (body.get("aliases") or {}).items():
            members = self.aliases.setdefault(alias, [])
            members.insert(0, name) if spec.get("is_write_index") else members.append(name)
        return index

    def _write_target(self, name: str) -> Index:
        if name in self.aliases:
            return self.indices[self.aliases[name][0]]
        return self.indices.get(name) or self.create_index(name)

    def resolve(self, expression: str, allow_missing: bool = True) -> list[str]:
        names: list[str] = []
        for part in expression.split(","):
            if part.startswith("-"):
                names = [n for n in names if not fnmatch.fnmatchcase(n, part[1:])]
            elif "*" in part:
                names += sorted(n for n in self.indices if fnmatch.fnmatchcase(n, part))
            elif part in self.aliases:
                names += self.aliases[part]
            elif part in self.indices:
                names.append(part)
            elif not allow_missing:
                raise EsError(404, "index_not_found_exception", f"no such index [{part}]")
        return list(dict.fromkeys(names))

    def put_doc(
        self, index_name: str, doc_id: str, source: dict[str, Any], op: str, params: dict[str, str]
    ) -> dict[str, Any]:
        index = self._write_target(index_name)
        pipeline = self.ingest.for_index(index.settings, params)
        if pipeline is not None:
            try:
                source = self.ingest.run(pipeline, copy.deepcopy(source))
            except IngestFailure as exc:
                raise EsError(400, "illegal_argument_exception", str(exc)) from None
        existing = index.docs.get(doc_id)
        if op == "create" and existing is not None:
            raise EsError(
                409, "version_conflict_engine_exception", f"[{doc_id}]: version conflict, document already exists"
            )
        if "if_seq_no" in params and (existing is None or existing["_seq_no"] != int(params["if_seq_no"])):
            raise EsError(409, "version_conflict_engine_exception", f"[{doc_id}]: version conflict")
        values, ignored = index.parse(source)
        index.seq_no += 1
        if doc_id not in index.docs:
            index.order.append(doc_id)
        index.docs[doc_id] = {
            "_id": doc_id,
            "_source": source,
            "values": values,
            "ignored": ignored,
            "_seq_no": index.seq_no - 1,
        }
        status = 200 if existing is not None else 201
        result = "updated" if existing is not None else "created"
        return {
            "_index": index.name,
            "_id": doc_id,
            "_version": 1,
            "result": result,
            "_seq_no": index.seq_no - 1,
            "_primary_term": 1,
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "status": status,
        }

    # ---- queries -------------------------------------------------------------------------------------
    def field_type(self, indices: list[Index], path: str) -> str | None:
        for index in indices:
            kind = index.mapped_type(path)
            if kind is not None:
                return kind
        return None

    def _values(self, index: Index, doc: dict[str, Any], path: str) -> list[Any]:
        if path == "_ignored":
            return list(doc["ignored"])
        if path == "_id":
            return [doc["_id"]]
        spec = index.mapping.get(path)
        if spec is not None and spec.get("type") == "constant_keyword":  # every document of the index holds it
            return [spec["value"]] if "value" in spec else []
        return list(doc["values"].get(path, []))

    def _coerce(self, index: Index, path: str, value: Any) -> Any:
        kind = index.mapped_type(path)
        if kind in _NUMERIC:
            return float(value)
        if kind == "boolean":
            return value is True or value == "true"
        if kind == "date":
            return value if isinstance(value, (int, float)) else _millis(value)
        if kind in ("keyword", "constant_keyword") or path == "_ignored":
            return str(value).lower() if isinstance(value, bool) else str(value)
        return value

    def matches(self, index: Index, doc: dict[str, Any], query: dict[str, Any]) -> bool:
        ((kind, spec),) = query.items()
        if kind == "match_all":
            return True
        if kind == "match_none":
            return False
        if kind == "bool":
            return self._bool(index, doc, spec)
        if kind == "term":
            ((path, inner),) = spec.items()
            value = inner["value"] if isinstance(inner, dict) else inner
            return self._coerce(index, path, value) in self._values(index, doc, path)
        if kind == "terms":
            ((path, wanted),) = spec.items()
            have = self._values(index, doc, path)
            return any(self._coerce(index, path, w) in have for w in wanted)
        if kind == "exists":
            return bool(self._values(index, doc, spec["field"]))
        if kind == "ids":
            return doc["_id"] in spec["values"]
        if kind == "prefix":
            ((path, inner),) = spec.items()
            value = inner["value"] if isinstance(inner, dict) else inner
            return any(str(v).startswith(value) for v in self._values(index, doc, path))
        if kind == "range":
            ((path, bounds),) = spec.items()
            have = self._values(index, doc, path)
            return any(self._in_range(index, path, v, bounds) for v in have)
        if kind == "function_score":
            return self.matches(index, doc, spec.get("query", {"match_all": {}}))
        raise EsError(400, "parsing_exception", f"unknown query [{kind}] in the emulator")

    def _in_range(self, index: Index, path: str, value: Any, bounds: dict[str, Any]) -> bool:
        checks = {
            "gte": lambda a, b: a >= b,
            "gt": lambda a, b: a > b,
            "lte": lambda a, b: a <= b,
            "lt": lambda a, b: a < b,
        }
        return all(checks[op](value, self._coerce(index, path, bound)) for op, bound in bounds.items() if op in checks)

    def _bool(self, index: Index, doc: dict[str, Any], spec: dict[str, Any]) -> bool:
        def listed(key: str) -> list[dict[str, Any]]:
            clauses = spec.get(key, [])
            return clauses if isinstance(clauses, list) else [clauses]

        if not all(self.matches(index, doc, q) for q in listed("filter") + listed("must")):
            return False
        if any(self.matches(index, doc, q) for q in listed("must_not")):
            return False
        should = listed("should")
        if should:
            needed = int(spec.get("minimum_should_match", 0 if listed("filter") + listed("must") else 1))
            return sum(self.matches(index, doc, q) for q in should) >= needed
        return True

    def can_match(self, index: Index, query: dict[str, Any]) -> bool:
        """Whether a filter could match the index: ``range`` against its values' bounds, a ``constant_keyword``
        term against its value; other clauses may always match (as the can-match phase rewrites them)."""
        ((kind, spec),) = query.items()
        if kind == "bool":
            clauses = [*spec.get("filter", []), *spec.get("must", [])]
            if not all(self.can_match(index, q) for q in clauses):
                return False
            should = spec.get("should", [])
            return not should or any(self.can_match(index, q) for q in should)
        if kind == "term":
            ((path, inner),) = spec.items()
            value = inner["value"] if isinstance(inner, dict) else inner
            mapping = index.mapping.get(path, {})
            return mapping.get("type") != "constant_keyword" or mapping.get("value") in (None, value)
        if kind == "range":
            ((path, bounds),) = spec.items()
            if index.mapped_type(path) not in {"date", *_NUMERIC}:
                return True  # only points fields know their bounds before the search
            seen = [v for d in index.docs.values() for v in self._values(index, d, path)]
            return bool(seen) and self._spans(index, path, min(seen), max(seen), bounds)
        if kind == "function_score":
            return self.can_match(index, spec.get("query", {"match_all": {}}))
        return kind != "match_none"

    def _spans(self, index: Index, path: str, low: Any, high: Any, bounds: dict[str, Any]) -> bool:
        lower = [self._coerce(index, path, bounds[k]) for k in ("gte", "gt") if k in bounds]
        upper = [self._coerce(index, path, bounds[k]) for k in ("lte", "lt") if k in bounds]
        return all(high >= b for b in lower) and all(low <= b for b in upper)

    def hits_of(self, names: list[str], query: dict[str, Any]) -> list[tuple[Index, dict[str, Any]]]:
        out = []
        for name in names:
            index = self.indices.get(name)
            if index is None:
                continue
            for doc_id in index.order:
                doc = index.docs[doc_id]
                if self.matches(index, doc, query):
                    out.append((index, doc))
        return out

    # ---- search ----------------------------------------------------------------------------------------
    def search(self, expression: str | None, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body or {})
        if "pit" in body:
            pit_id = body["pit"]["id"]
            names = self.pits.get(pit_id)
            if names is None:
                raise EsError(404, "search_context_missing_exception", f"No search context found for id [{pit_id}]")
            vanished = [n for n in names if n not in self.indices]
            if vanished:
                raise EsError(
                    404, "search_context_missing_exception", f"No search context found: index {vanished[0]} was deleted"
                )
        else:
            names = self.resolve(expression or "*", params.get("ignore_unavailable") == "true")
        query = body.get("query", {"match_all": {}})
        if "pre_filter_shard_size" in params:  # the can-match phase: shards that cannot match are skipped
            kept = [n for n in names if n in self.indices and self.can_match(self.indices[n], query)]
            names = kept or names[:1]
        matched = self.hits_of(names, query)
        indices = [self.indices[n] for n in names if n in self.indices]
        out: dict[str, Any] = {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": len(indices), "successful": len(indices), "skipped": 0, "failed": 0},
        }
        size = int(body.get("size", 10))
        window = min(int(i.settings.get("index.max_result_window", 10_000)) for i in indices) if indices else 10_000
        if size > window:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"Result window is too large, from + size must be less than or equal to: [{window}] but was [{size}].",
            )
        hits = self._sorted_hits(matched, body, names) if size else []
        if "collapse" in body:
            seen: set[Any] = set()
            kept = []
            for hit in hits:
                key = tuple(self._values(hit[0], hit[1], body["collapse"]["field"]))
                if key not in seen:
                    seen.add(key)
                    kept.append(hit)
            hits = kept
        total = body.get("track_total_hits", True)
        out["hits"] = {"max_score": None, "hits": [self._hit(i, d, s, body) for i, d, s in hits[:size]]}
        if total is not False:
            out["hits"]["total"] = {"value": len(matched), "relation": "eq"}
        aggs = body.get("aggregations", body.get("aggs"))
        if aggs:
            out["aggregations"] = self._aggregations(aggs, matched, indices)
        if "pit" in body:
            out["pit_id"] = body["pit"]["id"]
        return out

    def _score(self, index: Index, doc: dict[str, Any], query: dict[str, Any]) -> float:
        if "function_score" in query:
            for function in query["function_score"].get("functions", []):
                if "random_score" in function:
                    rs = function["random_score"]
                    value = self._values(index, doc, rs["field"])
                    digest = hashlib.sha256(f"{rs['seed']}|{value}|{index.name}".encode()).digest()
                    return int.from_bytes(digest[:4], "big") / 2**32
        return 1.0

    def _sort_key(self, index: Index, doc: dict[str, Any], body: dict[str, Any], names: list[str]) -> list[Any]:
        keys = []
        for entry in body.get("sort", [{"_score": {"order": "desc"}}]):
            ((path, spec),) = entry.items() if isinstance(entry, dict) else [(entry, {})]
            if path == "_score":
                keys.append(self._score(index, doc, body.get("query", {})))
            elif path == "_shard_doc":
                keys.append(names.index(index.name) * 1_000_000 + index.order.index(doc["_id"]))
            else:
                values = self._values(index, doc, path)
                order = spec.get("order", "asc") if isinstance(spec, dict) else spec
                keys.append((min(values) if order == "asc" else max(values)) if values else None)
        return keys

    def _sorted_hits(
        self, matched: list[tuple[Index, dict[str, Any]]], body: dict[str, Any], names: list[str]
    ) -> list[tuple[Index, dict[str, Any], list[Any]]]:
        orders = []
        for entry in body.get("sort", [{"_score": {"order": "desc"}}]):
            ((_, spec),) = entry.items() if isinstance(entry, dict) else [(entry, {})]
            orders.append(spec.get("order", "asc") if isinstance(spec, dict) else spec)
        keyed = [(i, d, self._sort_key(i, d, body, names)) for i, d in matched]

        def compare(a: list[Any], b: list[Any]) -> int:
            for x, y, order in zip(a, b, orders, strict=True):
                if x == y:
                    continue
                if x is None or y is None:
                    return 1 if x is None else -1  # missing values last, whatever the order
                result = -1 if x < y else 1
                return result if order == "asc" else -result
            return 0

        import functools

        keyed.sort(key=functools.cmp_to_key(lambda a, b: compare(a[2], b[2])))
        after = body.get("search_after")
        if after is not None:
            keyed = [k for k in keyed if compare(k[2], list(after)) > 0]
        return keyed

    def _hit(self, index: Index, doc: dict[str, Any], sort: list[Any], body: dict[str, Any]) -> dict[str, Any]:
        hit: dict[str, Any] = {"_index": index.name, "_id": doc["_id"], "_score": None}
        source = body.get("_source", True)
        if source is not False:
            includes = (
                source.get("includes") if isinstance(source, dict) else (source if isinstance(source, list) else None)
            )
            hit["_source"] = _source_filter(doc["_source"], includes)
        if doc["ignored"]:  # the fields the mapping set aside are part of every hit
            hit["_ignored"] = sorted(set(doc["ignored"]))
        if "sort" in body:
            hit["sort"] = sort
        if body.get("seq_no_primary_term"):
            hit["_seq_no"], hit["_primary_term"] = doc["_seq_no"], 1
        return hit

    # ---- aggregations -----------------------------------------------------------------------------------
    def _aggregations(
        self, aggs: dict[str, Any], docs: list[tuple[Index, dict[str, Any]]], indices: list[Index]
    ) -> dict[str, Any]:
        return {name: self._aggregate(spec, docs, indices) for name, spec in aggs.items()}

    def _sub(
        self, spec: dict[str, Any], docs: list[tuple[Index, dict[str, Any]]], indices: list[Index]
    ) -> dict[str, Any]:
        sub = spec.get("aggregations", spec.get("aggs"))
        return self._aggregations(sub, docs, indices) if sub else {}

    def _key(self, path: str, value: Any, index: Index, *, composite: bool = False) -> Any:
        kind = index.mapped_type(path)
        if kind == "boolean":
            return value if composite else int(value)
        if kind in ("double", "float"):
            return float(value)
        return value

    def _aggregate(
        self, spec: dict[str, Any], docs: list[tuple[Index, dict[str, Any]]], indices: list[Index]
    ) -> dict[str, Any]:
        kinds = [k for k in spec if k not in ("aggregations", "aggs", "meta")]
        (kind,) = kinds
        body = spec[kind]
        if kind == "filter":
            inside = [(i, d) for i, d in docs if self.matches(i, d, body)]
            return {"doc_count": len(inside), **self._sub(spec, inside, indices)}
        if kind == "terms":
            return self._terms(spec, body, docs, indices)
        if kind == "value_count":
            return {"value": sum(len(self._values(i, d, body["field"])) for i, d in docs)}
        if kind in ("extended_stats", "percentiles"):
            values = [float(v) for i, d in docs for v in self._values(i, d, body["field"])]
            if kind == "percentiles":
                points = [
                    {"key": float(p), "value": (float(np.percentile(values, p)) if values else None)}
                    for p in body["percents"]
                ]
                return {"values": points}
            return _extended_stats(values)
        if kind == "range":
            pairs = [(k, float(v)) for k, (i, d) in enumerate(docs) for v in self._values(i, d, body["field"])]
            owner = np.array([k for k, _ in pairs], dtype=int)
            values = np.array([v for _, v in pairs], dtype=float)
            buckets = {}
            for r in body["ranges"]:
                low, high = r.get("from", -np.inf), r.get("to", np.inf)
                inside = [docs[k] for k in np.unique(owner[(values >= low) & (values < high)])]
                bucket = {"doc_count": len(inside), **self._sub(spec, inside, indices)}
                bucket |= {k: r[k] for k in ("from", "to") if k in r}
                buckets[r["key"]] = bucket
            return {"buckets": buckets if body.get("keyed") else [{"key": k, **v} for k, v in buckets.items()]}
        if kind == "composite":
            return self._composite(spec, body, docs, indices)
        if kind == "date_histogram":
            return self._date_histogram(spec, body, docs, indices)
        if kind == "top_hits":
            names = [i.name for i in indices]
            ordered = self._sorted_hits(docs, body, names)
            hits = [self._hit(i, d, s, body) for i, d, s in ordered[: int(body.get("size", 3))]]
            return {"hits": {"total": {"value": len(docs), "relation": "eq"}, "max_score": None, "hits": hits}}
        raise EsError(400, "parsing_exception", f"unknown aggregation [{kind}] in the emulator")

    def _one_type(self, path: str, indices: list[Index]) -> None:
        """A terms or composite aggregation over indices that map the field to different types fails to reduce."""
        kinds = {i.mapped_type(path) for i in indices} - {None}
        if len(kinds) > 1:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"[{path}] is of different types {sorted(kinds)} in the indices searched",
            )

    def _terms(
        self, spec: dict[str, Any], body: dict[str, Any], docs: list[tuple[Index, dict[str, Any]]], indices: list[Index]
    ) -> dict[str, Any]:
        path = body["field"]
        self._one_type(path, indices)
        groups: dict[Any, list[tuple[Index, dict[str, Any]]]] = {}
        for i, d in docs:
            values = set(self._values(i, d, path))
            if not values and "missing" in body:
                values = {self._coerce(i, path, body["missing"])}
            for v in values:
                groups.setdefault(self._key(path, v, i), []).append((i, d))
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        size = int(body.get("size", 10))
        buckets = []
        for key, members in ordered[:size]:
            bucket = {"key": key, "doc_count": len(members), **self._sub(spec, members, indices)}
            if self.field_type(indices, path) == "boolean":
                bucket["key_as_string"] = "true" if key else "false"
            buckets.append(bucket)
        other = sum(len(m) for _, m in ordered[size:])
        return {"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": buckets}

    def _composite(
        self, spec: dict[str, Any], body: dict[str, Any], docs: list[tuple[Index, dict[str, Any]]], indices: list[Index]
    ) -> dict[str, Any]:
        sources = [next(iter(s.items())) for s in body["sources"]]
        for _, source in sources:
            if "terms" in source:
                self._one_type(source["terms"]["field"], indices)
        groups: dict[tuple[Any, ...], list[tuple[Index, dict[str, Any]]]] = {}
        for i, d in docs:
            per_source = []
            for _, source in sources:
                ((kind, options),) = source.items()
                values = sorted({self._source_key(kind, options, i, v) for v in self._values(i, d, options["field"])})
                if not values:
                    if not options.get("missing_bucket"):
                        break
                    values = [None]
                per_source.append(values)
            else:
                for combination in itertools.product(*per_source):
                    groups.setdefault(tuple(combination), []).append((i, d))
        order = sorted(groups, key=lambda k: tuple((v is not None, v if v is not None else 0) for v in k))
        after = body.get("after")
        if after is not None:
            after_key = tuple((after[n] is not None, after[n] if after[n] is not None else 0) for n, _ in sources)
            order = [k for k in order if tuple((v is not None, v if v is not None else 0) for v in k) > after_key]
        page = order[: int(body.get("size", 10))]
        buckets = [
            {
                "key": {n: v for (n, _), v in zip(sources, k, strict=True)},
                "doc_count": len(groups[k]),
                **self._sub(spec, groups[k], indices),
            }
            for k in page
        ]
        out: dict[str, Any] = {"buckets": buckets}
        if buckets:
            out["after_key"] = buckets[-1]["key"]
        return out

    def _source_key(self, kind: str, options: dict[str, Any], index: Index, value: Any) -> Any:
        """A composite source's key for one value: the term, or the start of the value's date histogram bucket."""
        if kind == "terms":
            return self._key(options["field"], value, index, composite=True)
        if kind == "date_histogram":
            return _date_key(value, options)
        raise EsError(400, "parsing_exception", f"unknown composite source [{kind}] in the emulator")

    def _date_histogram(
        self, spec: dict[str, Any], body: dict[str, Any], docs: list[tuple[Index, dict[str, Any]]], indices: list[Index]
    ) -> dict[str, Any]:
        interval, _ = _interval(body)
        groups: dict[int, list[tuple[Index, dict[str, Any]]]] = {}
        for i, d in docs:
            for v in self._values(i, d, body["field"]):
                groups.setdefault(_date_key(v, body), []).append((i, d))
        keys = set(groups)
        bounds = body.get("extended_bounds")
        if bounds and body.get("min_doc_count") == 0:
            first = _date_key(bounds["min"], body)
            keys |= set(range(first, bounds["max"] + 1, interval))
        buckets = [
            {
                "key_as_string": _iso(k),
                "key": k,
                "doc_count": len(groups.get(k, [])),
                **self._sub(spec, groups.get(k, []), indices),
            }
            for k in sorted(keys)
        ]
        return {"buckets": buckets}

    # ---- field caps -------------------------------------------------------------------------------------
    def field_caps(self, expression: str, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        patterns = body.get("fields") or params.get("fields", "*").split(",")
        names = self.resolve(expression, True)
        index_filter = body.get("index_filter")
        chosen = [
            self.indices[n] for n in names if index_filter is None or self.can_match(self.indices[n], index_filter)
        ]
        fields: dict[str, dict[str, Any]] = {}
        for index in chosen:
            for path, spec in index.mapping.items():
                kind = spec.get("type", "object")
                if not any(fnmatch.fnmatchcase(path, p) for p in patterns):
                    continue
                entry = fields.setdefault(path, {}).setdefault(
                    kind,
                    {
                        "type": kind,
                        "metadata_field": False,
                        "searchable": kind != "object",
                        "aggregatable": kind not in ("object", "text", "match_only_text"),
                        "indices": [],
                    },
                )
                entry["indices"].append(index.name)
        for by_type in fields.values():
            for entry in by_type.values():
                if len(by_type) == 1:
                    entry.pop("indices")
        return {"indices": [i.name for i in chosen], "fields": fields}

    # ---- the HTTP side ------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, params: dict[str, str], raw: bytes, ndjson: bool) -> tuple[int, Any]:
        body: Any = None
        if raw:
            body = (
                [json.loads(line) for line in raw.decode().splitlines() if line.strip()] if ndjson else json.loads(raw)
            )
        with self.lock:
            self.requests.append(Request(method, path, params, body, len(raw)))
            try:
                answered: tuple[int, Any] = (200, self._route(method, path, params, body))
            except EsError as exc:
                answered = (exc.status, exc.body())
            except Exception as exc:  # a gap in the emulator: answer at once, naming it
                answered = (500, EsError(500, "emulator_exception", f"{type(exc).__name__}: {exc}").body())
            self.answers.append(answered)
            return answered

    def _route(self, method: str, path: str, params: dict[str, str], body: Any) -> Any:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return {
                "name": "emulator",
                "cluster_name": "predwatch",
                "version": {"number": self.version, "build_flavor": "default"},
                "tagline": "You Know, for Search",
            }
        if parts == ["_cluster", "health"]:
            return {"cluster_name": "predwatch", "status": "green", "timed_out": False}
        if parts[0] == "_ilm":
            name = parts[2]
            if method == "PUT":
                self.policies[name] = body
                return {"acknowledged": True}
            if name not in self.policies:
                raise EsError(404, "resource_not_found_exception", f"Lifecycle policy not found: {name}")
            return {name: {"version": 1, "policy": self.policies[name]["policy"]}}
        if parts[0] == "_index_template":
            if method == "HEAD":
                return None if parts[1] in self.templates else _missing()
            self.templates[parts[1]] = body
            return {"acknowledged": True}
        if parts[0] == "_ingest":
            return self._pipeline(method, parts[2], body)
        if parts[0] == "_alias":
            return None if parts[1] in self.aliases else _missing()
        if parts == ["_bulk"]:
            return self._bulk(body, params)
        if parts == ["_pit"]:
            freed = self.pits.pop(body["id"], None)
            return {"succeeded": True, "num_freed": int(freed is not None)}
        if parts == ["_search"]:
            return self.search(None, params, body)
        if len(parts) == 1:
            if method == "HEAD":
                return None if parts[0] in self.indices else _missing()
            if method == "DELETE":
                for name in self.resolve(parts[0], False):
                    del self.indices[name]
                return {"acknowledged": True}
            self.create_index(parts[0], body)
            return {"acknowledged": True, "shards_acknowledged": True, "index": parts[0]}
        target, action = parts[0], parts[1]
        if action == "_search":
            return self.search(target, params, body)
        if action == "_field_caps":
            return self.field_caps(target, params, body or {})
        if action == "_pit":
            pit_id = hashlib.sha256(f"{target}{len(self.pits)}{len(self.requests)}".encode()).hexdigest()
            self.pits[pit_id] = self.resolve(target, True)
            return {"id": pit_id, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}
        if action == "_refresh":
            return {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if action == "_stats":
            names = self.resolve(target, True)
            docs = sum(len(self.indices[n].docs) for n in names)
            size = sum(len(json.dumps([d["_source"] for d in self.indices[n].docs.values()])) for n in names)
            totals = {"docs": {"count": docs, "deleted": 0}, "store": {"size_in_bytes": size}}
            return {
                "_shards": {"total": len(names), "successful": len(names), "failed": 0},
                "_all": {"primaries": totals, "total": totals},
                "indices": {},
            }
        if action == "_settings" and method == "PUT":
            return es_index_admin.put_settings(self, target, body)
        if action == "_mapping" and method in ("PUT", "POST"):
            return es_index_admin.put_mapping(self, target, body)
        if action == "_update_by_query":
            return es_index_admin.update_by_query(self, target, params, body)
        if action in ("_create", "_doc"):
            return self._document(method, target, parts[2], action, params, body)
        raise EsError(400, "unsupported", f"{method} {path} is not emulated")

    def _pipeline(self, method: str, pipeline_id: str, body: Any) -> Any:
        if method == "PUT":
            try:
                self.ingest.put(pipeline_id, body)
            except ValueError as exc:
                raise EsError(400, "parse_exception", str(exc)) from None
            return {"acknowledged": True}
        if pipeline_id not in self.ingest.bodies:
            return _missing()
        return {pipeline_id: self.ingest.bodies[pipeline_id]}

    def _document(self, method: str, target: str, doc_id: str, action: str, params: dict[str, str], body: Any) -> Any:
        index = self.indices.get(self.aliases.get(target, [target])[0])
        if method == "GET":
            doc = index.docs.get(doc_id) if index else None
            if doc is None:
                raise EsError(404, "not_found", f"[{doc_id}] not found")
            return {
                "_index": index.name,
                "_id": doc_id,
                "_version": 1,
                "_seq_no": doc["_seq_no"],
                "_primary_term": 1,
                "found": True,
                "_source": doc["_source"],
            }
        if method == "DELETE":
            doc = index.docs.get(doc_id) if index else None
            if doc is None:
                raise EsError(404, "not_found", f"[{doc_id}] not found")
            if "if_seq_no" in params and doc["_seq_no"] != int(params["if_seq_no"]):
                raise EsError(409, "version_conflict_engine_exception", f"[{doc_id}]: version conflict")
            del index.docs[doc_id]
            index.order.remove(doc_id)
            return {
                "_index": index.name,
                "_id": doc_id,
                "result": "deleted",
                "_seq_no": index.seq_no,
                "_primary_term": 1,
            }
        answer = self.put_doc(target, doc_id, body, "create" if action == "_create" else "index", params)
        answer.pop("status")
        return answer

    def _bulk(self, lines: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
        items = []
        errors = False
        for action_line, source in zip(lines[::2], lines[1::2], strict=True):
            ((op, meta),) = action_line.items()
            try:
                result = self.put_doc(
                    meta["_index"],
                    str(meta.get("_id") or hashlib.sha256(json.dumps(source).encode()).hexdigest()[:20]),
                    source,
                    op,
                    params,
                )
            except EsError as exc:
                errors = True
                result = {
                    "_index": meta["_index"],
                    "_id": meta.get("_id"),
                    "status": exc.status,
                    "error": {"type": exc.kind, "reason": exc.reason},
                }
            items.append({op: result})
        return {"took": 1, "errors": errors, "items": items}

    # ---- serving ------------------------------------------------------------------------------------------
    def searches(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/_search") or r.path == "/_search"]

    @contextmanager
    def serve(self, port: int = 0) -> Iterator[Emulator]:
        emulator = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                ndjson = "ndjson" in (self.headers.get("Content-Type") or "")
                status, answer = emulator.handle(self.command, unquote(parts.path), params, raw, ndjson)
                if answer is None and status == 200:
                    status, answer = 200, {}
                if isinstance(answer, tuple):  # a HEAD that found nothing
                    status, answer = answer
                self.answer(status, ELASTIC_JSON, json.dumps(answer))

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


def _interval(body: dict[str, Any]) -> tuple[int, int]:
    """A date histogram's ``fixed_interval`` and ``offset`` in milliseconds (the forms the store sends)."""
    interval = int(body["fixed_interval"].removesuffix("ms"))
    offset = int(body.get("offset", "+0ms").removeprefix("+").removesuffix("ms"))
    return interval, offset


def _date_key(millis: int, body: dict[str, Any]) -> int:
    """The start of the date histogram bucket that holds ``millis``."""
    interval, offset = _interval(body)
    return (millis - offset) // interval * interval + offset


def _extended_stats(values: list[float]) -> dict[str, Any]:
    """An ``extended_stats`` answer, every key Elasticsearch gives (population and sampling variants)."""
    names = ("upper", "lower", "upper_population", "lower_population", "upper_sampling", "lower_sampling")
    if not values:
        empty = dict.fromkeys(("min", "max", "avg", "sum_of_squares", "variance", "variance_population"))
        empty |= dict.fromkeys(("variance_sampling", "std_deviation", "std_deviation_population"))
        empty |= dict.fromkeys(("std_deviation_sampling",))
        return {"count": 0, "sum": 0.0, **empty, "std_deviation_bounds": dict.fromkeys(names)}
    arr = np.array(values)
    mean, var = float(arr.mean()), float(arr.var())
    var_s = float(arr.var(ddof=1)) if len(arr) > 1 else None
    std, std_s = var**0.5, (var_s**0.5 if var_s is not None else None)
    bounds: list[float | None] = [mean + 2 * std, mean - 2 * std] * 2
    bounds += [mean + 2 * std_s, mean - 2 * std_s] if std_s is not None else [None, None]
    return {
        "count": len(values),
        "min": float(arr.min()),
        "max": float(arr.max()),
        "avg": mean,
        "sum": float(arr.sum()),
        "sum_of_squares": float((arr**2).sum()),
        "variance": var,
        "variance_population": var,
        "variance_sampling": var_s,
        "std_deviation": std,
        "std_deviation_population": std,
        "std_deviation_sampling": std_s,
        "std_deviation_bounds": dict(zip(names, bounds, strict=True)),
    }


def _missing() -> tuple[int, dict[str, Any]]:
    return 404, {}
