"""Requests checked against Elasticsearch's official OpenAPI document (the part vendored under ``es_openapi/``).

Every request the Elasticsearch store and ``predwatch setup`` send in the recorded-response tests is matched
to its operation by method and path; its query parameters must be among the operation's (with values of the
declared type) and its body must validate against the operation's request body schema with every object
closed: a key the specification does not declare (a misspelling) fails.  The document is OpenAPI 3.0; it is
read as JSON Schema 2020-12 with these conversions: ``oneOf`` as ``anyOf`` (Elasticsearch's unions overlap,
e.g. a string or a list of strings), ``nullable`` as a ``null`` type, objects with declared properties closed
with ``unevaluatedProperties: false`` where they are used (members of an ``allOf`` stay open so their union is
what is closed), a container's "exactly one of these keys" (``minProperties``/``maxProperties`` 1 on an
``allOf`` member beside shared keys such as sub-``aggregations``) as "at least one of these keys", a bare
``{"type": "object"}`` (how the generator writes a free value) as any value, a discriminated union (mapping
properties, by ``type``) as one branch per tag, and the classes the
specification says also take named keys (``es_openapi/additional-properties.json``, e.g. a sort on a field) as open.
The document leaves out the specification's aliases (``aggs``) and shorthand forms (``{"term": {"f": v}}``),
so the store sends the canonical forms (``aggregations``, ``{"term": {"f": {"value": v}}}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SUBSET = Path(__file__).parent / "es_openapi" / "elasticsearch-openapi-subset.json"
OPEN_CLASSES = Path(__file__).parent / "es_openapi" / "additional-properties.json"
_PREFIX = "#/components/schemas/"
_DROP = {
    "description",
    "externalDocs",
    "deprecated",
    "discriminator",
    "x-state",
    "title",
    "examples",
    "format",
    "default",
}
# What a plain object schema may hold (an allOf of such is merged into one object and closed once).
_PLAIN = {"type", "properties", "required", "minProperties", "maxProperties", *_DROP}


def _def_name(ref: str, open_: bool) -> str:
    name = ref[len(_PREFIX) :].replace("/", "~1")
    return f"{name}__open" if open_ else name


class _Converter:
    """OpenAPI schema nodes of one document as JSON Schema 2020-12 (see the module docstring)."""

    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas

    def _tags(self, ref: str, name: str) -> tuple[list[str], bool]:
        """The values a union member allows for its discriminator ``name``, and whether it requires it."""
        node = self.schemas[ref[len(_PREFIX) :]]
        parts = [node, *node.get("allOf", [])]
        tags: list[str] = []
        required = False
        for part in parts:
            if "$ref" in part:
                more, req = self._tags(part["$ref"], name)
                tags, required = tags + more, required or req
                continue
            prop = (part.get("properties") or {}).get(name) or {}
            tags += list(prop.get("enum") or ([prop["const"]] if "const" in prop else []))
            required = required or name in (part.get("required") or [])
        return tags, required

    def _union(self, node: dict[str, Any]) -> dict[str, Any]:
        """A discriminated union as one branch per tag (fast, unlike trying every member)."""
        name = node["discriminator"]["propertyName"]
        branches: list[dict[str, Any]] = []
        untagged: list[dict[str, Any]] = []
        tags: list[str] = []
        for member in node["oneOf"]:
            member_tags, required = self._tags(member["$ref"], name)
            tags += member_tags
            target = self.convert(member)
            branches += [
                {"if": {"properties": {name: {"const": t}}, "required": [name]}, "then": target} for t in member_tags
            ]
            if not required:
                untagged.append(target)
        absent = {"if": {"not": {"required": [name]}}, "then": {"anyOf": untagged} if untagged else False}
        return {"type": "object", "properties": {name: {"enum": tags}}, "allOf": [*branches, absent]}

    def _members(self, node: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The plain object schemas an ``allOf`` is made of (references followed, nested ``allOf`` opened), or
        None when a member is anything else (a union, a dictionary), which is then validated as composed."""
        out: list[dict[str, Any]] = []
        own = {k: v for k, v in node.items() if k != "allOf"}
        for member in [*node["allOf"], *([own] if "properties" in own else [])]:
            target = self.schemas[member["$ref"][len(_PREFIX) :]] if "$ref" in member else member
            parts = self._members(target) if "allOf" in target else [target]
            if parts is None or any(set(p) - _PLAIN for p in parts):
                return None
            out += parts
        return out

    def _flat(self, node: dict[str, Any], members: list[dict[str, Any]], open_: bool) -> dict[str, Any]:
        """An ``allOf`` of plain objects as one object: the members' properties together, closed once."""
        properties: dict[str, Any] = {}
        required: list[str] = []
        out: dict[str, Any] = {"type": "object"}
        for member in members:
            properties.update(member.get("properties") or {})
            required += member.get("required") or []
            if member.get("maxProperties") == 1 and member.get("properties"):
                if len(members) == 1:
                    out.update(minProperties=1, maxProperties=1)
                else:  # exactly one of these keys, beside the shared ones: at least one
                    out["anyOf"] = [{"required": [k]} for k in member["properties"]]
        out["properties"] = {k: self.convert(v) for k, v in properties.items()}
        if required:
            out["required"] = sorted(set(required))
        if not open_:
            out["additionalProperties"] = False
        return out

    def convert(self, node: Any, *, open_: bool = False, in_all_of: bool = False) -> Any:
        if isinstance(node, list):
            return [self.convert(n) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return {"$ref": "#/$defs/" + _def_name(node["$ref"], open_)}
        if "discriminator" in node and "oneOf" in node:
            return self._union(node)
        if _bare_object(node):
            return {}
        if "allOf" in node and not in_all_of:
            members = self._members(node)
            if members is not None:
                return self._flat(node, members, open_)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROP or key.startswith("x-") or key == "nullable":
                continue
            if key in ("oneOf", "anyOf"):
                out["anyOf"] = [self.convert(v) for v in value]
            elif key == "allOf":
                out["allOf"] = [self.convert(v, open_=True, in_all_of=True) for v in value]
            elif key == "properties":
                out["properties"] = {k: self.convert(v) for k, v in value.items()}
            elif key in ("items", "additionalProperties", "not"):
                out[key] = self.convert(value)
            else:
                out[key] = value
        if node.get("nullable"):
            kind = out.get("type")
            out = {"anyOf": [out, {"type": "null"}]} if kind is None else {**out, "type": [kind, "null"]}
        if in_all_of and "properties" in node and node.get("maxProperties") == 1:
            out.pop("minProperties", None)
            out.pop("maxProperties", None)
            out["anyOf"] = [{"required": [k]} for k in node["properties"]]
        closes = ("properties" in node or "allOf" in node) and "additionalProperties" not in node
        if closes and not open_:
            composed = "allOf" in node or "oneOf" in node or "anyOf" in node
            out["unevaluatedProperties" if composed else "additionalProperties"] = False
        return out


def _bare_object(node: Any) -> bool:
    """``{"type": "object"}`` with nothing declared: the generator's form of a free value (``UserDefinedValue``)."""
    return isinstance(node, dict) and node.get("type") == "object" and not set(node) - {"type", "description"}


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    literal_segments: int
    spec: dict[str, Any]


class Spec:
    """The vendored operations, their parameters and request bodies, ready to validate requests."""

    def __init__(self, path: Path = SUBSET, open_classes: Path = OPEN_CLASSES) -> None:
        self.document = json.loads(path.read_text(encoding="utf-8"))
        self.open_classes = set(json.loads(open_classes.read_text(encoding="utf-8")))
        self.validated = 0

    @cached_property
    def converter(self) -> _Converter:
        return _Converter(self.document["components"].get("schemas", {}))

    @cached_property
    def defs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, node in self.converter.schemas.items():
            ref = _PREFIX + name
            out[_def_name(ref, False)] = self.converter.convert(node, open_=name in self.open_classes)
            out[_def_name(ref, True)] = self.converter.convert(node, open_=True)
        return out

    @cached_property
    def operations(self) -> list[Operation]:
        ops = []
        for template, methods in self.document["paths"].items():
            segments = [s for s in template.split("/") if s]
            regex = "^/" + "/".join("[^/]+" if s.startswith("{") else re.escape(s) for s in segments) + "$"
            literal = sum(1 for s in segments if not s.startswith("{"))
            for method, spec in methods.items():
                ops.append(Operation(method.upper(), template, re.compile(regex), literal, spec))
        return sorted(ops, key=lambda o: -o.literal_segments)

    def operation(self, method: str, path: str) -> Operation | None:
        for op in self.operations:
            if op.method == method and op.pattern.match(path if path != "" else "/"):
                return op
        return None

    def _resolve(self, node: dict[str, Any], kind: str) -> dict[str, Any]:
        ref = node.get("$ref")
        if ref is None:
            return node
        return self.document["components"][kind][ref.rsplit("/", 1)[1]]

    def _validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator({**self.converter.convert(schema), "$defs": self.defs})

    def check(self, method: str, path: str, params: dict[str, str], body: Any) -> list[str]:
        """Every way the request departs from the specification (empty: it conforms)."""
        op = self.operation(method, path)
        if op is None:
            return [f"{method} {path}: no such operation in the vendored specification"]
        problems: list[str] = []
        declared = {}
        for p in op.spec.get("parameters", []):
            param = self._resolve(p, "parameters")
            if param.get("in") == "query":
                declared[param["name"]] = param.get("schema", {})
        for name, value in params.items():
            if name not in declared:
                problems.append(f"{method} {op.template}: query parameter {name!r} is not in the specification")
            elif not self._param_ok(declared[name], value):
                problems.append(f"{method} {op.template}: query parameter {name}={value!r} has the wrong type")
        request_body = op.spec.get("requestBody")
        if body is not None:
            if request_body is None:
                problems.append(f"{method} {op.template}: sends a body, the specification takes none")
            else:
                schema = self._resolve(request_body, "requestBodies")["content"]["application/json"]["schema"]
                problems += self._body_problems(method, op.template, schema, body)
        elif request_body is not None and self._resolve(request_body, "requestBodies").get("required"):
            problems.append(f"{method} {op.template}: the body is required")
        self.validated += 1
        return problems

    def _body_problems(self, method: str, template: str, schema: dict[str, Any], body: Any) -> list[str]:
        if template == "/_bulk":  # action lines are operation containers, source lines are documents
            action = {"$ref": _PREFIX + "_global.bulk:OperationContainer"}
            return [
                f"{method} {template}: line {i + 1}: {e.message}"
                for i in range(0, len(body), 2)
                for e in self._validator(action).iter_errors(body[i])
            ]
        return [
            f"{method} {template}: body{''.join(f'[{p!r}]' for p in e.absolute_path)}: {e.message}"
            for e in self._validator(schema).iter_errors(body)
        ]

    def _param_ok(self, schema: dict[str, Any], value: str) -> bool:
        validator = self._validator(schema)
        return any(validator.is_valid(candidate) for candidate in _candidates(value))


def _candidates(value: str) -> Iterable[Any]:
    """What a query string value may stand for: the text, a boolean, a number, a comma-separated list."""
    yield value
    if value in ("true", "false"):
        yield value == "true"
    try:
        yield float(value)
        yield int(value)
    except ValueError:
        pass
    yield value.split(",")


_shared: Spec | None = None


def shared() -> Spec:
    """The one Spec the test session checks the store's requests with (and counts them)."""
    global _shared
    if _shared is None:
        _shared = Spec()
    return _shared


def validated() -> int:
    """How many requests the session's checks have validated."""
    return _shared.validated if _shared is not None else 0
