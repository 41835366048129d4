"""The mapping of the daily indices: which logical column lives at which field, and whether it is numeric."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from analyzers.store.base import ColumnKind, Query
from analyzers.store.elastic import limits
from analyzers.store.elastic.connection import Connection
from analyzers.store.elastic.indices import feedback_indices, window_indices
from logshipper.schema import FEATURE_PREFIX, FEATURES, GROUP_PREFIX, GROUPS, LABEL, PREDICTION, SCORE, column_path

_NUMERIC_TYPES = frozenset(
    {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}
)
_CATEGORICAL_TYPES = frozenset({"keyword", "constant_keyword", "boolean", "ip", "version", "wildcard"})
_FIXED_AGGREGATABLE = (
    "model_version",
    "entity_id",
    "outcome",
    "error_type",
    "latency_ms",
    "sample_rate",
    "prediction_id",
)


@dataclass(frozen=True)
class Field:
    """Where a logical column lives in the mapping and whether it is numeric."""

    path: str
    kind: ColumnKind
    es_type: str


def _fixed_columns() -> dict[str, str]:
    return {"prediction": PREDICTION, "score": SCORE, **{c: column_path(c) for c in _FIXED_AGGREGATABLE}}


def _fixed_paths() -> list[str]:
    return [column_path(c) for c in _FIXED_AGGREGATABLE]


def fields_from_caps(caps: dict[str, Any]) -> dict[str, Field]:
    """Aggregatable fields of a ``_field_caps`` answer: numbers, keywords (a text's ``.keyword``), booleans."""
    fields: dict[str, Field] = {}
    for name, by_type in caps.items():
        types = set(by_type) - {"unmapped"}
        if not types or types & {"object", "nested", "alias"}:
            continue
        if types <= _NUMERIC_TYPES:
            fields[name] = Field(name, "numeric", "double")
        elif types == {"text"}:
            sub = caps.get(f"{name}.keyword") or {}
            if "keyword" in sub:
                fields[name] = Field(f"{name}.keyword", "categorical", "keyword")
        elif types <= _CATEGORICAL_TYPES:
            fields[name] = Field(name, "categorical", "boolean" if types == {"boolean"} else "keyword")
    for name in [n for n in fields if n.endswith(".keyword") and n[: -len(".keyword")] in fields]:
        del fields[name]
    return fields


def logical_columns(fields: dict[str, Field]) -> dict[str, Field]:
    """Logical column name -> mapped field, from the fields by path (groups are always categorical)."""
    out: dict[str, Field] = {}
    for path, field in fields.items():
        if path.startswith(FEATURES + "."):
            out[FEATURE_PREFIX + path[len(FEATURES) + 1 :]] = field
        elif path.startswith(GROUPS + "."):
            out[GROUP_PREFIX + path[len(GROUPS) + 1 :]] = Field(field.path, "categorical", field.es_type)
        else:
            for logical, logical_path in _fixed_columns().items():
                if logical_path == path:
                    out[logical] = field
    return out


class Mappings:
    """Field capabilities of a model's indices, each answer reused for ``FIELD_CAPS_TTL`` seconds."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._caps: dict[str, tuple[float, dict[str, Field]]] = {}

    def fields(self, indices: str, patterns: list[str]) -> dict[str, Field]:
        """Mapped fields by path among those matching the patterns in these indices."""
        key = indices + "|" + ",".join(patterns)
        cached = self._caps.get(key)
        if cached and time.monotonic() - cached[0] < limits.FIELD_CAPS_TTL:
            return cached[1]
        answer = self._conn.call(
            f"reading the mapping of {indices}",
            lambda: self._conn.es.field_caps(
                index=indices, fields=patterns, ignore_unavailable=True, allow_no_indices=True
            ),
        )
        fields = fields_from_caps(answer.get("fields") or {})
        self._caps[key] = (time.monotonic(), fields)
        return fields

    def columns(self, query: Query) -> dict[str, Field]:
        """Logical column name -> mapped field, for the window's indices (label excluded)."""
        indices = window_indices(query.model, query.window)
        patterns = [f"{FEATURES}.*", f"{GROUPS}.*", PREDICTION, SCORE, *_fixed_paths()]
        return logical_columns(self.fields(indices, patterns))

    def label_kind(self, query: Query) -> ColumnKind:
        """Whether the feedback labels are mapped as numbers (else they are categories)."""
        field = self.fields(feedback_indices(query.model), [LABEL]).get(LABEL)
        return field.kind if field is not None and field.path == LABEL else "categorical"
