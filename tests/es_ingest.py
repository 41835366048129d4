"""Ingest pipelines for the Elasticsearch emulator (``es_emulator.py``), the subset ``predwatch setup`` installs.

What it does the way Elasticsearch does (per its reference documentation, "Ingest pipelines", "Grok processor",
"Handling pipeline failures"): a pipeline runs its processors in order on the document's ``_source`` before it
is indexed; an index's ``index.default_pipeline`` runs when the request names no ``pipeline`` (``_none`` runs
none); a missing pipeline refuses the document; a processor that fails stops the pipeline and refuses the
document unless the processor has ``ignore_failure`` (then the next one runs on the document as it is).

``grok``: ``%{NAME:field}`` and ``%{NAME}`` expand from the processor's ``pattern_definitions`` (the built-in
library is not modelled: a pattern naming one is refused when the pipeline is put, as an unknown name is
there); the first of ``patterns`` found anywhere in the field's text (grok searches, it does not anchor) sets
its named captures, dotted names as nested objects; no match, a text that is not a string, or a capture whose
parent is not an object is a failure; ``ignore_missing`` skips a missing or null field.  The regular
expressions are Oniguruma's there and Python's here: the constructs the pipeline uses (classes, ``\\s``,
escapes, counted repetition) mean the same in both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_REFERENCE = re.compile(r"%\{(\w+)(?::([\w.@]+))?\}")


class IngestFailure(Exception):
    """A processor failed on a document (Elasticsearch answers 400 for the document unless it is ignored)."""


@dataclass(frozen=True)
class Grok:
    """One ``grok`` processor, its patterns compiled."""

    field: str
    patterns: list[tuple[re.Pattern[str], dict[str, str]]]  # regex, group name -> target field
    ignore_missing: bool

    @classmethod
    def parse(cls, spec: dict[str, Any]) -> Grok:
        definitions = dict(spec.get("pattern_definitions") or {})
        compiled = [_compile(p, definitions) for p in spec["patterns"]]
        return cls(spec["field"], compiled, bool(spec.get("ignore_missing", False)))

    def run(self, source: dict[str, Any]) -> None:
        value = _get(source, self.field)
        if value is None:
            if self.ignore_missing:
                return
            raise IngestFailure(f"field [{self.field}] not present as part of path [{self.field}]")
        if not isinstance(value, str):
            raise IngestFailure(f"field [{self.field}] of type [{type(value).__name__}] cannot be cast to a string")
        for regex, targets in self.patterns:
            found = regex.search(value)
            if found is not None:
                for group, target in targets.items():
                    if found.group(group) is not None:
                        _set(source, target, found.group(group))
                return
        raise IngestFailure(f"Provided Grok expressions do not match field value: [{value}]")


def _compile(pattern: str, definitions: dict[str, str]) -> tuple[re.Pattern[str], dict[str, str]]:
    """A grok pattern as a Python regex: each ``%{NAME:field}`` a named group, each ``%{NAME}`` a plain one."""
    targets: dict[str, str] = {}

    def expand(text: str, depth: int) -> str:
        def one(m: re.Match[str]) -> str:
            name, field = m.group(1), m.group(2)
            if name not in definitions:
                raise ValueError(f"Unable to find pattern [{name}] in Grok's pattern dictionary")
            if depth > 20:
                raise ValueError(f"circular reference in pattern [{name}]")
            inner = expand(definitions[name], depth + 1)
            if field is None:
                return f"(?:{inner})"
            group = f"g{len(targets)}"
            targets[group] = field
            return f"(?P<{group}>{inner})"

        return _REFERENCE.sub(one, text)

    return re.compile(expand(pattern, 0)), targets


def _get(source: dict[str, Any], path: str) -> Any:
    node: Any = source
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _set(source: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = source
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise IngestFailure(f"cannot set [{leaf}] with parent object of type [{type(child).__name__}]")
        node = child
    node[leaf] = value


@dataclass(frozen=True)
class Processor:
    grok: Grok
    ignore_failure: bool


class Pipelines:
    """The cluster's ingest pipelines, by id: put (validated), read back, and run on a document."""

    def __init__(self) -> None:
        self.bodies: dict[str, dict[str, Any]] = {}
        self._compiled: dict[str, list[Processor]] = {}

    def put(self, pipeline_id: str, body: dict[str, Any]) -> None:
        """Validate and store a pipeline (``ValueError`` for what Elasticsearch refuses, with its reason)."""
        processors = []
        for entry in body.get("processors", []):
            ((kind, spec),) = entry.items()
            if kind != "grok":
                raise ValueError(f"processor [{kind}] is not emulated")
            processors.append(Processor(Grok.parse(spec), bool(spec.get("ignore_failure", False))))
        self.bodies[pipeline_id] = body
        self._compiled[pipeline_id] = processors

    def run(self, pipeline_id: str, source: dict[str, Any]) -> dict[str, Any]:
        """The document after the pipeline; :class:`IngestFailure` when it is refused."""
        if pipeline_id not in self._compiled:
            raise IngestFailure(f"pipeline with id [{pipeline_id}] does not exist")
        for processor in self._compiled[pipeline_id]:
            try:
                processor.grok.run(source)
            except IngestFailure:
                if not processor.ignore_failure:
                    raise
        return source

    def for_index(self, settings: dict[str, Any], params: dict[str, str]) -> str | None:
        """The pipeline an index request runs: its ``pipeline`` parameter, else the index's default."""
        chosen = params.get("pipeline") or settings.get("index.default_pipeline")
        return None if chosen in (None, "_none") else str(chosen)
