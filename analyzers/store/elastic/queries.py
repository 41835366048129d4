"""A Query made concrete for Elasticsearch: the bool filter, the sample-rate weight script, the label runtime field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from analyzers.store.base import ColumnKind, Query
from analyzers.store.elastic.mapping import Field
from analyzers.timeutil import Window
from logshipper.schema import (
    DATASET_FEEDBACK,
    DATASET_PREDICTION,
    ENTITY_ID,
    EVENT_DATASET,
    EVENT_OUTCOME,
    GROUPS,
    LABEL,
    MODEL_NAME,
    MODEL_VERSION,
    PREDICTION_ID,
    SAMPLE_RATE,
    TIMESTAMP,
)

_WEIGHT = (
    f"double r = doc.containsKey('{SAMPLE_RATE}') && doc['{SAMPLE_RATE}'].size() > 0"
    f" ? doc['{SAMPLE_RATE}'].value : 1.0; double w = r > 0 ? 1.0 / r : 1.0;"
)
_LABEL_SCRIPT = (
    f"if (doc.containsKey('{PREDICTION_ID}') && doc['{PREDICTION_ID}'].size() > 0)"
    f" {{ def v = params.labels.get(doc['{PREDICTION_ID}'].value); if (v != null) {{ emit(%s); }} }}"
)


def weight_agg() -> dict[str, Any]:
    """Sum of ``1 / ml.sample_rate`` (1 when absent): the weighted count of the documents in a bucket."""
    return {"sum": {"script": {"source": _WEIGHT + " return w;", "lang": "painless"}}}


def weight_sq_agg() -> dict[str, Any]:
    """Sum of the squared weights: with the weighted count, a bucket's effective number of observations."""
    return {"sum": {"script": {"source": _WEIGHT + " return w * w;", "lang": "painless"}}}


def weighted_value_agg(field: str, power: int) -> dict[str, Any]:
    """Sum of ``weight * value ** power`` over a numeric field, for weighted moments."""
    value = " * v" * power
    source = f"{_WEIGHT} double v = doc[params.f].value; return w{value};"
    return {"sum": {"script": {"source": source, "lang": "painless", "params": {"f": field}}}}


def iso(moment: datetime) -> str:
    """Millisecond ISO 8601 in UTC, as Elasticsearch ``date`` fields hold it."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _term_value(value: Any) -> Any:
    return str(value).lower() if isinstance(value, bool) else value


@dataclass(frozen=True)
class Labels:
    """Latest feedback label per prediction id, for the runtime field ``ml.label``."""

    values: dict[str, Any]

    @property
    def numeric(self) -> bool:
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values.values())

    def runtime(self) -> dict[str, Any]:
        if self.numeric:
            params = {k: float(v) for k, v in self.values.items()}
            return {
                "type": "double",
                "script": {"source": _LABEL_SCRIPT % "((Number) v).doubleValue()", "params": {"labels": params}},
            }
        texts = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in self.values.items()}
        return {"type": "keyword", "script": {"source": _LABEL_SCRIPT % "(String) v", "params": {"labels": texts}}}


@dataclass
class Context:
    """One query made concrete: indices, filter, runtime label field and the mapped columns."""

    indices: str
    filter: dict[str, Any]
    fields: dict[str, Field]
    runtime: dict[str, Any] | None

    def search_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"index": self.indices, "ignore_unavailable": True, "allow_no_indices": True}
        args["query"] = self.filter
        if self.runtime:
            args["runtime_mappings"] = self.runtime
        return args


def feedback_filter(model: str, window: Window) -> list[dict[str, Any]]:
    """Labelled feedback of the model (or of no named model) since the window's first day."""
    first = window.start.replace(hour=0, minute=0, second=0, microsecond=0)
    return [
        {"term": {EVENT_DATASET: DATASET_FEEDBACK}},
        {
            "bool": {
                "should": [{"term": {MODEL_NAME: model}}, {"bool": {"must_not": {"exists": {"field": MODEL_NAME}}}}]
            }
        },
        {"range": {TIMESTAMP: {"gte": iso(first), "format": "strict_date_optional_time"}}},
        {"exists": {"field": LABEL}},
    ]


def context(query: Query, indices: str, fields: dict[str, Field], labels: Labels | None) -> Context:
    """The query's predictions as a bool filter; with ``labels``, also the runtime field ``ml.label``."""
    fields = dict(fields)
    runtime = None
    filters: list[dict[str, Any]] = [
        {"term": {EVENT_DATASET: DATASET_PREDICTION}},
        {"term": {MODEL_NAME: query.model}},
        {
            "range": {
                TIMESTAMP: {
                    "gte": iso(query.window.start),
                    "lt": iso(query.window.end),
                    "format": "strict_date_optional_time",
                }
            }
        },
    ]
    for path, values in (
        (MODEL_VERSION, query.model_versions),
        (ENTITY_ID, query.entity_ids),
        (PREDICTION_ID, query.prediction_ids),
    ):
        if values is not None:
            filters.append({"terms": {path: [_term_value(v) for v in values]}})
    for attribute, values in (query.groups or {}).items():
        filters.append({"terms": {f"{GROUPS}.{attribute}": [_term_value(v) for v in values]}})
    if query.outcome is not None:
        filters.append({"term": {EVENT_OUTCOME: query.outcome}})
    must_not: list[dict[str, Any]] = []
    if labels is not None:
        if labels.values:
            runtime = {LABEL: labels.runtime()}
            kind: ColumnKind = "numeric" if labels.numeric else "categorical"
            fields["label"] = Field(LABEL, kind, "double" if labels.numeric else "keyword")
        if query.has_label is True:
            filters.append({"exists": {"field": LABEL}} if labels.values else {"match_none": {}})
        elif query.has_label is False and labels.values:
            must_not.append({"exists": {"field": LABEL}})
    body: dict[str, Any] = {"filter": filters}
    if must_not:
        body["must_not"] = must_not
    return Context(indices, {"bool": body}, fields, runtime)
