"""A Query made concrete for Elasticsearch: its bool filter, and the sample-rate strata every count is weighed in.

Counts are weighted by ``1 / ml.sample_rate``.  Instead of a script per document, every aggregation runs
inside a ``terms`` aggregation on the rate (documents without one counted at rate 1): a stratum's counts are
doc counts, and its weight is applied here, after the answer.  Services log with a handful of rates, so this
adds a few buckets and no scripting at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from analyzers.store.base import Query, StoreError
from analyzers.store.elastic import limits
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

RATES = "rates"
# Every search over a model's pattern: missing indices are fine, and the shards of days outside the window
# and of other models are skipped before they are searched (the can-match phase, forced for any shard count),
# so their mappings never meet the window's in an aggregation.
SEARCH_OPTIONS: dict[str, Any] = {"ignore_unavailable": True, "allow_no_indices": True, "pre_filter_shard_size": 1}
# Feedback stamped up to this long before its window's first day is still read (clocks differ).
FEEDBACK_EARLY = timedelta(days=1)


def iso(moment: datetime) -> str:
    """Millisecond ISO 8601 in UTC, as Elasticsearch ``date`` fields hold it."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def term(field: str, value: Any) -> dict[str, Any]:
    """A ``term`` query in the specification's long form (the short ``{field: value}`` form is an alias)."""
    return {"term": {field: {"value": value}}}


def term_value(value: Any) -> Any:
    """A filter value as a ``terms`` query takes it (booleans as ``true``/``false`` strings)."""
    return str(value).lower() if isinstance(value, bool) else value


def time_range(window: Window) -> dict[str, Any]:
    return {
        "range": {TIMESTAMP: {"gte": iso(window.start), "lt": iso(window.end), "format": "strict_date_optional_time"}}
    }


def window_filter(model: str, window: Window) -> list[dict[str, Any]]:
    """Every prediction of the model in the window, successes and failures."""
    return [term(EVENT_DATASET, DATASET_PREDICTION), term(MODEL_NAME, model), time_range(window)]


def prediction_filter(query: Query) -> list[dict[str, Any]]:
    """The query's predictions: every filter but ``has_label``, which the label join answers."""
    filters = window_filter(query.model, query.window)
    for path, values in (
        (MODEL_VERSION, query.model_versions),
        (ENTITY_ID, query.entity_ids),
        (PREDICTION_ID, query.prediction_ids),
    ):
        if values is not None:
            filters.append({"terms": {path: [term_value(v) for v in values]}})
    for attribute, values in (query.groups or {}).items():
        filters.append({"terms": {f"{GROUPS}.{attribute}": [term_value(v) for v in values]}})
    if query.outcome is not None:
        filters.append(term(EVENT_OUTCOME, query.outcome))
    return filters


def feedback_filter(model: str, window: Window, pid_range: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """Labelled feedback of the model that may belong to the window's predictions: stamped since shortly
    before the window's first day (a label arrives after its prediction, clocks permitting), and with a
    prediction id between the window's smallest and largest (ids are UUIDv7, ordered by time)."""
    first = window.start.replace(hour=0, minute=0, second=0, microsecond=0) - FEEDBACK_EARLY
    filters: list[dict[str, Any]] = [
        term(EVENT_DATASET, DATASET_FEEDBACK),
        term(MODEL_NAME, model),
        {"range": {TIMESTAMP: {"gte": iso(first), "format": "strict_date_optional_time"}}},
        {"exists": {"field": LABEL}},
    ]
    if pid_range is not None:
        filters.append({"range": {PREDICTION_ID: {"gte": pid_range[0], "lte": pid_range[1]}}})
    return filters


def bool_filter(filters: list[dict[str, Any]]) -> dict[str, Any]:
    return {"bool": {"filter": filters}}


def strata(aggs: dict[str, Any]) -> dict[str, Any]:
    """``aggs`` inside one bucket per sample rate (no rate: rate 1)."""
    return {
        RATES: {
            "terms": {"field": SAMPLE_RATE, "missing": 1.0, "size": limits.MAX_SAMPLE_RATES},
            "aggregations": aggs,
        }
    }


def weight(rate: Any) -> float:
    """The weight of a prediction logged at ``rate``: ``1 / rate``, or 1 when the rate is missing or not positive."""
    try:
        r = float(rate)
    except (TypeError, ValueError):
        return 1.0
    return 1.0 / r if r > 0 else 1.0


@dataclass(frozen=True)
class Stratum:
    """One sample rate's bucket of an answer and the weight of each of its documents."""

    weight: float
    bucket: dict[str, Any]

    @property
    def docs(self) -> float:
        return float(self.bucket.get("doc_count") or 0)


def strata_of(aggregations: dict[str, Any], where: str) -> Iterator[Stratum]:
    """The strata of an answer built with :func:`strata`; more rates than the aggregation asked for is an error."""
    part = aggregations.get(RATES) or {}
    if part.get("sum_other_doc_count"):
        raise StoreError(
            f"{where}: predictions were logged with more than {limits.MAX_SAMPLE_RATES} different sample rates"
        )
    for bucket in part.get("buckets") or []:
        yield Stratum(weight(bucket.get("key")), bucket)
