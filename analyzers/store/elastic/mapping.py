"""The mapping of a model's daily indices: which logical column lives at which field, and how it can be read.

A column whose field has one type in every index of the window is aggregated by Elasticsearch: numbers
(``double``), strings (``keyword``) and booleans (``boolean``), as the templates map each JSON type.  A
column whose type changed from one day to the next (a number one day, a string the next) has no single
field type to aggregate on; it is marked ``exact=False`` and its aggregates are computed from its values
read back (see :mod:`analyzers.store.elastic.rowset`), so it answers the same as the local store.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from analyzers.store.base import ColumnKind, Query
from analyzers.store.elastic import limits
from analyzers.store.elastic.connection import Connection
from analyzers.store.elastic.indices import predictions_pattern
from analyzers.store.elastic.queries import bool_filter, window_filter
from logshipper.schema import FEATURE_PREFIX, FEATURES, GROUP_PREFIX, GROUPS, PREDICTION, SCORE, column_path

NUMERIC_TYPES = frozenset(
    {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}
)
_KEYWORDS = frozenset({"keyword", "constant_keyword"})
# Columns with a fixed place in every event (besides features and groups), read and aggregated by name.
FIXED_COLUMNS = (
    "prediction",
    "score",
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
    """Where a logical column lives, whether it is numeric, its field type, and whether Elasticsearch can
    aggregate it as it is (one type in every index)."""

    path: str
    kind: ColumnKind
    es_type: str

    @property
    def exact(self) -> bool:
        return self.es_type != "mixed"


def field_of(by_type: dict[str, Any], path: str) -> Field | None:
    """The field a ``_field_caps`` entry describes, or None for objects and fields that cannot be read."""
    types = set(by_type) - {"unmapped"}
    if not types or types & {"object", "nested", "alias"}:
        return None
    if types <= NUMERIC_TYPES:
        return Field(path, "numeric", "double")
    if types <= _KEYWORDS:
        return Field(path, "categorical", "keyword")
    if types == {"boolean"}:
        return Field(path, "categorical", "boolean")
    return Field(path, "categorical", "mixed")


def logical_columns(caps: dict[str, Any]) -> dict[str, Field]:
    """Logical column name -> field, from a ``_field_caps`` answer (groups are always categorical)."""
    fixed = {column_path(c): c for c in FIXED_COLUMNS}
    out: dict[str, Field] = {}
    for path, by_type in caps.items():
        field = field_of(by_type, path)
        if field is None:
            continue
        if path.startswith(FEATURES + "."):
            out[FEATURE_PREFIX + path[len(FEATURES) + 1 :]] = field
        elif path.startswith(GROUPS + "."):
            out[GROUP_PREFIX + path[len(GROUPS) + 1 :]] = Field(path, "categorical", field.es_type)
        elif path in fixed:
            out[fixed[path]] = field
    return out


class Mappings:
    """Field capabilities of the indices a window reads, each answer reused for ``FIELD_CAPS_TTL`` seconds."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._caps: dict[str, tuple[float, dict[str, Field]]] = {}

    def columns(self, query: Query) -> dict[str, Field]:
        """Logical column name -> field in the model's indices that hold predictions of the window (label
        excluded: it lives in the feedback indices)."""
        index = predictions_pattern(query.model)
        patterns = [f"{FEATURES}.*", f"{GROUPS}.*", PREDICTION, SCORE, *(column_path(c) for c in FIXED_COLUMNS)]
        index_filter = bool_filter(window_filter(query.model, query.window))
        key = json.dumps([index, patterns, index_filter], sort_keys=True)
        cached = self._caps.get(key)
        if cached and time.monotonic() - cached[0] < limits.FIELD_CAPS_TTL:
            return cached[1]
        answer = self._conn.call(
            f"reading the mapping of {index}",
            lambda es: es.field_caps(
                index=index,
                fields=patterns,
                index_filter=index_filter,
                ignore_unavailable=True,
                allow_no_indices=True,
            ),
        )
        columns = logical_columns(answer.get("fields") or {})
        self._caps[key] = (time.monotonic(), columns)
        return columns
