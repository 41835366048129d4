"""The Elasticsearch adapter: the ``Store`` interface over ``ml-predictions-<model>-YYYY.MM.DD`` indices.

Aggregates are Elasticsearch aggregations over the window's daily indices (never a pull of every
document); every count is the sum of the weight ``1 / ml.sample_rate`` computed by a script.
Rows stream through a point in time with ``search_after``.

Labels live on ``ml.feedback`` documents, possibly in later days' indices.  Aggregates that need
them (a ``label`` column, a ``has_label`` filter) first read the model's feedback since the window's
first day, from all its daily indices (prediction id -> latest label) and hand it to Elasticsearch as the parameters
of a runtime field ``ml.label`` on the prediction documents: that costs one pass over the feedback
and a request body of O(labelled predictions).  Rows look their labels up chunk by chunk instead.
Percentiles are Elasticsearch's TDigest estimates, so quantiles are approximate.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
import orjson
import pandas as pd
from elasticsearch.helpers import streaming_bulk

from analyzers.config.models import ElasticsearchStoreConfig
from analyzers.findings import Finding
from analyzers.store.base import (
    ColumnInfo,
    ColumnKind,
    ConflictError,
    Histogram,
    NumericSummary,
    Query,
    Store,
    StoreError,
)
from analyzers.timeutil import Window, format_time, parse_time, utcnow
from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    Elasticsearch,
    NotFoundError,
    TransportError,
)
from elasticsearch import ConflictError as EsConflictError
from logshipper.schema import (
    DATASET_FEEDBACK,
    DATASET_PREDICTION,
    ENTITY_ID,
    EVENT_DATASET,
    EVENT_OUTCOME,
    FEATURE_PREFIX,
    FEATURES,
    GROUP_PREFIX,
    GROUPS,
    LABEL,
    MODEL_NAME,
    MODEL_VERSION,
    MONITOR_INDEX_PREFIX,
    OUTCOME_FAILURE,
    PREDICTION,
    PREDICTION_ID,
    PREDICTIONS_INDEX_PREFIX,
    SAMPLE_RATE,
    SCORE,
    STATE_INDEX,
    TIMESTAMP,
    column_path,
    monitor_index,
    predictions_index,
)

T = TypeVar("T")

RETRY_ON_STATUS = (429, 502, 503, 504)
MAX_LISTED_DAYS = 45  # beyond this many daily indices, name them by wildcard (the time filter still applies)
PAGE = 10_000  # hits per page: Elasticsearch's default max_result_window
COMPOSITE_PAGE = 1_000
PIT_KEEP_ALIVE = "2m"
FIELD_CAPS_TTL = 30.0  # seconds a window's mapping is reused
LABELS_TTL = 30.0  # seconds a window's feedback map is reused by the aggregates of one job run
_NUMERIC_TYPES = frozenset(
    {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}
)
_CATEGORICAL_TYPES = frozenset({"keyword", "constant_keyword", "boolean", "ip", "version", "wildcard"})
# Columns ``rows()`` returns when none are named, before every features.* and groups.* column.
ROW_COLUMNS = (
    "prediction_id",
    "timestamp",
    "model_version",
    "entity_id",
    "outcome",
    "error_type",
    "error_message",
    "prediction",
    "score",
    "label",
    "latency_ms",
    "sample_rate",
)
_FLOAT_COLUMNS = frozenset({"score", "latency_ms", "sample_rate"})
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


def _weighted_value_agg(field: str, power: int) -> dict[str, Any]:
    value = " * v" * power
    source = f"{_WEIGHT} double v = doc[params.f].value; return w{value};"
    return {"sum": {"script": {"source": source, "lang": "painless", "params": {"f": field}}}}


def safe_host(url: str) -> str:
    """A host URL without user name or password, for messages."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = parts.hostname or url
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def _iso(moment: datetime) -> str:
    """Millisecond ISO 8601 in UTC, as Elasticsearch ``date`` fields hold it."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _indices(model: str, days: list[str]) -> str:
    if not days:
        return predictions_index(model, "none")
    if len(days) > MAX_LISTED_DAYS:
        return f"{PREDICTIONS_INDEX_PREFIX}{model}-*"
    return ",".join(predictions_index(model, d) for d in days)


def _get(source: dict[str, Any], path: str) -> Any:
    """Value at a dotted path in ``_source``, whether it was written nested or with dotted keys."""
    if path in source:
        return source[path]
    dot = path.find(".")
    while dot != -1:
        head = source.get(path[:dot])
        if isinstance(head, dict):
            found = _get(head, path[dot + 1 :])
            if found is not None:
                return found
        dot = path.find(".", dot + 1)
    return None


def _plain(value: Any, es_type: str | None) -> Any:
    """An aggregation key as the Python value the logs held: integral doubles as ints, booleans as bools."""
    if es_type == "boolean" and value in (0, 1, "true", "false"):
        return value in (1, "true")
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _term_value(value: Any) -> Any:
    return str(value).lower() if isinstance(value, bool) else value


def _reason(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        causes = error.get("root_cause") or [error]
        first = causes[0] if isinstance(causes[0], dict) else error
        return f"{first.get('type', 'error')}: {first.get('reason', '')}".strip()
    return str(body)[:300]


@dataclass(frozen=True)
class _Field:
    """Where a logical column lives in the mapping and whether it is numeric."""

    path: str
    kind: ColumnKind
    es_type: str


@dataclass(frozen=True)
class _Labels:
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
        params = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in self.values.items()}
        return {"type": "keyword", "script": {"source": _LABEL_SCRIPT % "(String) v", "params": {"labels": params}}}


@dataclass
class _Context:
    """One query made concrete: indices, filter, runtime label field and the mapped columns."""

    indices: str
    filter: dict[str, Any]
    fields: dict[str, _Field]
    runtime: dict[str, Any] | None

    def search_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"index": self.indices, "ignore_unavailable": True, "allow_no_indices": True}
        args["query"] = self.filter
        if self.runtime:
            args["runtime_mappings"] = self.runtime
        return args


class ElasticsearchStore(Store):
    """Predictions from Elasticsearch daily indices; findings and alert state written back to it."""

    def __init__(self, client: Elasticsearch, hosts: Sequence[str] | None = None, *, owns_client: bool = False) -> None:
        self._es = client
        self._owns = owns_client
        if hosts is None:
            hosts = [f"{n.scheme}://{n.host}:{n.port}" for n in client.transport.node_pool.all()]
        self.where = ", ".join(safe_host(h) for h in hosts) or "Elasticsearch"
        self._caps: dict[str, tuple[float, dict[str, _Field]]] = {}
        self._labels: dict[tuple[str, Window], tuple[float, _Labels]] = {}
        self._state_index_ready = False

    @classmethod
    def from_config(cls, cfg: ElasticsearchStoreConfig, config_dir: Path | None = None) -> ElasticsearchStore:
        """A client with the configured auth, TLS (CA file relative to the config file) and retries."""
        if not cfg.hosts:
            raise StoreError("store.elasticsearch.hosts is empty: give at least one URL, e.g. https://localhost:9200")
        kwargs: dict[str, Any] = {
            "hosts": list(cfg.hosts),
            "request_timeout": cfg.request_timeout,
            "max_retries": cfg.max_retries,
            "retry_on_timeout": True,
            "retry_on_status": RETRY_ON_STATUS,
            "verify_certs": cfg.verify_certs,
        }
        if cfg.api_key:
            kwargs["api_key"] = cfg.api_key
        elif cfg.username:
            kwargs["basic_auth"] = (cfg.username, cfg.password or "")
        if cfg.ca_certs:
            ca = Path(cfg.ca_certs).expanduser()
            if not ca.is_absolute() and config_dir is not None:
                ca = Path(config_dir) / ca
            if not ca.is_file():
                raise StoreError(f"store.elasticsearch.ca_certs: no such file {ca}")
            kwargs["ca_certs"] = str(ca)
        try:
            client = Elasticsearch(**kwargs)
        except ValueError as exc:
            raise StoreError(f"store.elasticsearch: {exc}") from None
        return cls(client, cfg.hosts, owns_client=True)

    # ---- calls ----------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T], keep: tuple[type[Exception], ...] = ()) -> T:
        """Run one client call; turn its failures (except ``keep``) into a StoreError naming the host, never
        the credentials."""
        try:
            return fn()
        except keep:
            raise
        except AuthenticationException:
            raise StoreError(
                f"Elasticsearch at {self.where} rejected the credentials (HTTP 401) while {what}"
            ) from None
        except AuthorizationException as exc:
            raise StoreError(
                f"Elasticsearch at {self.where}: the user may not do this (HTTP 403) while {what}: {_reason(exc.body)}"
            ) from None
        except ApiError as exc:
            raise StoreError(
                f"Elasticsearch at {self.where} answered HTTP {exc.meta.status} while {what}: {_reason(exc.body)}"
            ) from None
        except TransportError as exc:
            raise StoreError(
                f"cannot reach Elasticsearch at {self.where} while {what} ({type(exc).__name__})"
            ) from None

    # ---- windows, mappings, labels -----------------------------------------------------------
    def _window_indices(self, model: str, window: Window) -> str:
        return _indices(model, [d.strftime("%Y.%m.%d") for d in window.days()])

    def _feedback_indices(self, model: str, window: Window) -> str:
        """Every daily index of the model: feedback may land any day after the window (clocks differ too).

        The ``@timestamp`` lower bound lets Elasticsearch skip the older indices' shards before searching.
        """
        return f"{PREDICTIONS_INDEX_PREFIX}{model}-*"

    def _field_caps(self, indices: str, patterns: list[str]) -> dict[str, _Field]:
        key = indices + "|" + ",".join(patterns)
        cached = self._caps.get(key)
        if cached and time.monotonic() - cached[0] < FIELD_CAPS_TTL:
            return cached[1]
        answer = self._call(
            f"reading the mapping of {indices}",
            lambda: self._es.field_caps(index=indices, fields=patterns, ignore_unavailable=True, allow_no_indices=True),
        )
        caps = answer.get("fields") or {}
        fields: dict[str, _Field] = {}
        for name, by_type in caps.items():
            types = set(by_type) - {"unmapped"}
            if not types or types & {"object", "nested", "alias"}:
                continue
            if types <= _NUMERIC_TYPES:
                fields[name] = _Field(name, "numeric", "double")
            elif types == {"text"}:
                sub = caps.get(f"{name}.keyword") or {}
                if "keyword" in sub:
                    fields[name] = _Field(f"{name}.keyword", "categorical", "keyword")
            elif types <= _CATEGORICAL_TYPES:
                fields[name] = _Field(name, "categorical", "boolean" if types == {"boolean"} else "keyword")
        for name in [n for n in fields if n.endswith(".keyword") and n[: -len(".keyword")] in fields]:
            del fields[name]
        self._caps[key] = (time.monotonic(), fields)
        return fields

    def _columns_mapped(self, query: Query) -> dict[str, _Field]:
        """Logical column name -> mapped field, for the window's indices (label excluded)."""
        indices = self._window_indices(query.model, query.window)
        patterns = [f"{FEATURES}.*", f"{GROUPS}.*", PREDICTION, SCORE, *_fixed_paths()]
        out: dict[str, _Field] = {}
        for path, field in self._field_caps(indices, patterns).items():
            if path.startswith(FEATURES + "."):
                out[FEATURE_PREFIX + path[len(FEATURES) + 1 :]] = field
            elif path.startswith(GROUPS + "."):
                out[GROUP_PREFIX + path[len(GROUPS) + 1 :]] = _Field(field.path, "categorical", field.es_type)
            else:
                for logical, logical_path in _fixed_columns().items():
                    if logical_path == path:
                        out[logical] = field
        return out

    def _label_kind(self, query: Query) -> ColumnKind:
        caps = self._field_caps(self._feedback_indices(query.model, query.window), [LABEL])
        field = caps.get(LABEL)
        return field.kind if field is not None and field.path == LABEL else "categorical"

    def _feedback_filter(self, model: str, window: Window) -> list[dict[str, Any]]:
        first = window.start.replace(hour=0, minute=0, second=0, microsecond=0)
        return [
            {"term": {EVENT_DATASET: DATASET_FEEDBACK}},
            {
                "bool": {
                    "should": [{"term": {MODEL_NAME: model}}, {"bool": {"must_not": {"exists": {"field": MODEL_NAME}}}}]
                }
            },
            {"range": {TIMESTAMP: {"gte": _iso(first), "format": "strict_date_optional_time"}}},
            {"exists": {"field": LABEL}},
        ]

    def _window_labels(self, query: Query) -> _Labels:
        """Latest label per prediction id among the feedback since the window's first day (cached briefly)."""
        key = (query.model, query.window)
        cached = self._labels.get(key)
        if cached and time.monotonic() - cached[0] < LABELS_TTL:
            return cached[1]
        values: dict[str, Any] = {}
        indices = self._feedback_indices(query.model, query.window)
        body_query = {"bool": {"filter": self._feedback_filter(query.model, query.window)}}
        for hit in self._scan(indices, body_query, [PREDICTION_ID, LABEL], None, None):
            pid, label = _get(hit["_source"], PREDICTION_ID), _get(hit["_source"], LABEL)
            if pid is not None and label is not None:
                values[str(pid)] = label
        labels = _Labels(values)
        self._labels[key] = (time.monotonic(), labels)
        return labels

    def _lookup_labels(self, query: Query, pids: list[str]) -> dict[str, Any]:
        """Latest label of each of these prediction ids (one collapsed search per 10,000 ids)."""
        out: dict[str, Any] = {}
        indices = self._feedback_indices(query.model, query.window)
        for start in range(0, len(pids), PAGE):
            batch = pids[start : start + PAGE]
            filters = [*self._feedback_filter(query.model, query.window), {"terms": {PREDICTION_ID: batch}}]
            answer = self._call(
                f"reading feedback from {indices}",
                lambda batch=batch, filters=filters: self._es.search(
                    index=indices,
                    ignore_unavailable=True,
                    allow_no_indices=True,
                    query={"bool": {"filter": filters}},
                    collapse={"field": PREDICTION_ID},
                    sort=[{TIMESTAMP: {"order": "desc"}}],
                    source=[PREDICTION_ID, LABEL],
                    size=len(batch),
                    track_total_hits=False,
                ),
            )
            for hit in answer["hits"]["hits"]:
                pid, label = _get(hit["_source"], PREDICTION_ID), _get(hit["_source"], LABEL)
                if pid is not None and label is not None:
                    out[str(pid)] = label
        return out

    def _context(self, query: Query, needs_label: bool = False) -> _Context:
        fields = self._columns_mapped(query)
        runtime = None
        filters: list[dict[str, Any]] = [
            {"term": {EVENT_DATASET: DATASET_PREDICTION}},
            {"term": {MODEL_NAME: query.model}},
            {
                "range": {
                    TIMESTAMP: {
                        "gte": _iso(query.window.start),
                        "lt": _iso(query.window.end),
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
        if needs_label or query.has_label is not None:
            labels = self._window_labels(query)
            if labels.values:
                runtime = {LABEL: labels.runtime()}
                kind: ColumnKind = "numeric" if labels.numeric else "categorical"
                fields["label"] = _Field(LABEL, kind, "double" if labels.numeric else "keyword")
            if query.has_label is True:
                filters.append({"exists": {"field": LABEL}} if labels.values else {"match_none": {}})
            elif query.has_label is False and labels.values:
                must_not.append({"exists": {"field": LABEL}})
        body: dict[str, Any] = {"filter": filters}
        if must_not:
            body["must_not"] = must_not
        return _Context(self._window_indices(query.model, query.window), {"bool": body}, fields, runtime)

    def _aggregate(self, ctx: _Context, aggs: dict[str, Any], what: str) -> dict[str, Any]:
        answer = self._call(
            f"{what} over {ctx.indices}",
            lambda: self._es.search(**ctx.search_args(), aggs=aggs, size=0, track_total_hits=False),
        )
        return answer.get("aggregations") or {}

    # ---- aggregates ---------------------------------------------------------------------------
    def count(self, query: Query) -> float:
        aggs = self._aggregate(self._context(query), {"w": weight_agg()}, "counting")
        return float((aggs.get("w") or {}).get("value") or 0.0)

    def columns(self, query: Query) -> list[ColumnInfo]:
        ctx = self._context(query, needs_label=True)
        wanted = {
            name: field
            for name, field in ctx.fields.items()
            if name in ("prediction", "score", "label") or name.startswith((FEATURE_PREFIX, GROUP_PREFIX))
        }
        if not wanted:
            return []
        names = sorted(wanted, key=lambda n: (n.startswith((FEATURE_PREFIX, GROUP_PREFIX)), n))
        aggs = {
            f"c{i}": {"filter": {"exists": {"field": wanted[n].path}}, "aggs": {"w": weight_agg()}}
            for i, n in enumerate(names)
        }
        answer = self._aggregate(ctx, aggs, "discovering columns")
        out = []
        for i, name in enumerate(names):
            bucket = answer.get(f"c{i}") or {}
            if bucket.get("doc_count"):
                out.append(ColumnInfo(name, wanted[name].kind, float((bucket.get("w") or {}).get("value") or 0.0)))
        return out

    def numeric_summary(self, query: Query, column: str) -> NumericSummary:
        ctx = self._context(query, needs_label=column == "label")
        field = ctx.fields.get(column)
        aggs: dict[str, Any] = {"w": weight_agg()}
        if field is not None and field.kind == "numeric":
            aggs["has"] = {
                "filter": {"exists": {"field": field.path}},
                "aggs": {
                    "w": weight_agg(),
                    "wx": _weighted_value_agg(field.path, 1),
                    "wxx": _weighted_value_agg(field.path, 2),
                    "min": {"min": {"field": field.path}},
                    "max": {"max": {"field": field.path}},
                },
            }
        answer = self._aggregate(ctx, aggs, f"summarising {column}")
        total = float((answer.get("w") or {}).get("value") or 0.0)
        has = answer.get("has") or {}
        n = float((has.get("w") or {}).get("value") or 0.0) if has.get("doc_count") else 0.0
        if not n:
            return NumericSummary(0.0, total, None, None, None, None)
        mean = float(has["wx"]["value"]) / n
        std = float(np.sqrt(max(float(has["wxx"]["value"]) / n - mean * mean, 0.0)))
        return NumericSummary(n, max(total - n, 0.0), mean, std, has["min"]["value"], has["max"]["value"])

    def category_counts(self, query: Query, column: str) -> dict[Any, float]:
        table = self.crosstab(query, [column])
        return {(None if v is None else v): float(c) for v, c in zip(table[column], table["count"], strict=True)}

    def histogram(self, query: Query, column: str, edges: Sequence[float]) -> Histogram:
        edges_arr = np.asarray(edges, dtype=float)
        if edges_arr.ndim != 1 or len(edges_arr) < 2 or np.any(np.diff(edges_arr) < 0):
            raise ValueError("histogram edges must be at least two ascending numbers")
        ctx = self._context(query, needs_label=column == "label")
        field = ctx.fields.get(column)
        aggs: dict[str, Any] = {"w": weight_agg()}
        if field is not None and field.kind == "numeric":
            ranges = [{"key": "under", "to": float(edges_arr[0])}]
            ranges += [
                {"key": f"b{i}", "from": float(lo), "to": float(hi)}
                for i, (lo, hi) in enumerate(itertools.pairwise(edges_arr))
            ]
            ranges.append({"key": "over", "from": float(edges_arr[-1])})
            aggs["bins"] = {
                "range": {"field": field.path, "ranges": ranges, "keyed": True},
                "aggs": {"w": weight_agg()},
            }
        answer = self._aggregate(ctx, aggs, f"binning {column}")
        total = float((answer.get("w") or {}).get("value") or 0.0)
        buckets = (answer.get("bins") or {}).get("buckets") or {}

        def weight(key: str) -> float:
            bucket = buckets.get(key) or {}
            return float((bucket.get("w") or {}).get("value") or 0.0) if bucket.get("doc_count") else 0.0

        counts = np.array([weight(f"b{i}") for i in range(len(edges_arr) - 1)], dtype=float)
        under, over = weight("under"), weight("over")
        missing = max(total - under - over - float(counts.sum()), 0.0)
        return Histogram(edges_arr, counts, under, over, missing)

    def quantiles(self, query: Query, column: str, qs: Sequence[float]) -> list[float | None]:
        """TDigest percentiles per sample-rate stratum, mixed by weight: approximate, as Elasticsearch's are."""
        if any(not 0.0 <= q <= 1.0 for q in qs):
            raise ValueError("quantiles must lie in [0, 1]")
        if not qs:
            return []
        ctx = self._context(query, needs_label=column == "label")
        field = ctx.fields.get(column)
        if field is None or field.kind != "numeric":
            return [None] * len(qs)
        grid = sorted({*(float(q) * 100 for q in qs), *np.linspace(0.0, 100.0, 201).tolist()})
        inner = {
            "n": {"value_count": {"field": field.path}},
            "p": {"percentiles": {"field": field.path, "percents": grid, "keyed": False}},
        }
        aggs = {
            "rates": {"terms": {"field": SAMPLE_RATE, "size": 100}, "aggs": inner},
            "unsampled": {"missing": {"field": SAMPLE_RATE}, "aggs": inner},
        }
        answer = self._aggregate(ctx, aggs, f"percentiles of {column}")
        strata = [(float(b["key"]), b) for b in (answer.get("rates") or {}).get("buckets") or []]
        strata.append((1.0, answer.get("unsampled") or {}))
        mixture = []
        for rate, bucket in strata:
            n = float((bucket.get("n") or {}).get("value") or 0.0)
            points = [
                (p["key"], p["value"])
                for p in (bucket.get("p") or {}).get("values") or []
                if p.get("value") is not None
            ]
            if n and points:
                mixture.append((n / (rate if rate > 0 else 1.0), points))
        if not mixture:
            return [None] * len(qs)
        if len(mixture) == 1:
            points = mixture[0][1]
            return [float(min(points, key=lambda p, q=q: abs(p[0] - q * 100))[1]) for q in qs]
        return _mixed_quantiles(mixture, qs)

    def crosstab(self, query: Query, columns: Sequence[str]) -> pd.DataFrame:
        if not columns:
            raise ValueError("crosstab needs at least one column")
        ctx = self._context(query, needs_label="label" in columns)
        for column in columns:
            column_path(column)  # unknown names fail with the list of known ones
        mapped = [c for c in columns if c in ctx.fields]
        sources = [
            {f"k{i}": {"terms": {"field": ctx.fields[c].path, "missing_bucket": True}}} for i, c in enumerate(mapped)
        ]
        rows: list[list[Any]] = []
        if not sources:
            total = self.count(query)
            rows = [[None] * len(columns) + [total]] if total else []
        else:
            after: dict[str, Any] | None = None
            while True:
                composite: dict[str, Any] = {"size": COMPOSITE_PAGE, "sources": sources}
                if after is not None:
                    composite["after"] = after
                answer = self._aggregate(
                    ctx, {"t": {"composite": composite, "aggs": {"w": weight_agg()}}}, "counting combinations"
                )
                part = answer.get("t") or {}
                buckets = part.get("buckets") or []
                for bucket in buckets:
                    key = bucket["key"]
                    values = {c: _plain(key.get(f"k{i}"), ctx.fields[c].es_type) for i, c in enumerate(mapped)}
                    rows.append([values.get(c) for c in columns] + [float(bucket["w"]["value"] or 0.0)])
                after = part.get("after_key")
                if not buckets or after is None or len(buckets) < COMPOSITE_PAGE:
                    break
        data = {c: pd.Series([r[i] for r in rows], dtype=object) for i, c in enumerate(columns)}
        return pd.DataFrame({**data, "count": pd.Series([r[-1] for r in rows], dtype=float)})

    def volume(self, query: Query, bucket: timedelta) -> pd.DataFrame:
        seconds = bucket.total_seconds()
        if seconds <= 0:
            raise ValueError("volume bucket must be positive")
        interval_ms = max(round(seconds * 1000), 1)
        start = query.window.start
        start_ms = int(start.timestamp() * 1000)
        end_ms = int(query.window.end.timestamp() * 1000)
        n_buckets = int(np.ceil(query.window.length.total_seconds() / seconds))
        aggs = {
            "v": {
                "date_histogram": {
                    "field": TIMESTAMP,
                    "fixed_interval": f"{interval_ms}ms",
                    "offset": f"+{start_ms % interval_ms}ms",
                    "min_doc_count": 0,
                    "extended_bounds": {"min": start_ms, "max": end_ms - 1},
                },
                "aggs": {
                    "w": weight_agg(),
                    "failures": {"filter": {"term": {EVENT_OUTCOME: OUTCOME_FAILURE}}, "aggs": {"w": weight_agg()}},
                },
            }
        }
        answer = self._aggregate(self._context(query), aggs, "counting volume")
        counts = np.zeros(n_buckets)
        failures = np.zeros(n_buckets)
        for b in (answer.get("v") or {}).get("buckets") or []:
            index = (int(b["key"]) - start_ms) // interval_ms
            if 0 <= index < n_buckets and b.get("doc_count"):
                counts[index] += float(b["w"]["value"] or 0.0)
                failures[index] += float(b["failures"]["w"]["value"] or 0.0) if b["failures"].get("doc_count") else 0.0
        starts = pd.date_range(start=start, periods=n_buckets, freq=pd.Timedelta(milliseconds=interval_ms), tz="UTC")
        return pd.DataFrame({"start": starts, "count": counts, "failures": failures})

    # ---- rows -----------------------------------------------------------------------------------
    def _scan(
        self,
        indices: str,
        query: dict[str, Any],
        source: list[str],
        sort: list[Any] | None,
        limit: int | None,
        runtime: dict[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every hit of a query through a point in time and ``search_after``; the point in time is closed after."""
        opened = self._call(
            f"opening a point in time on {indices}",
            lambda: self._es.open_point_in_time(index=indices, keep_alive=PIT_KEEP_ALIVE, ignore_unavailable=True),
        )
        pit_id = opened["id"]
        order = sort or [{TIMESTAMP: {"order": "asc"}}, {"_shard_doc": "asc"}]
        after: list[Any] | None = None
        seen = 0
        try:
            while limit is None or seen < limit:
                size = PAGE if limit is None else min(PAGE, limit - seen)
                args: dict[str, Any] = {
                    "pit": {"id": pit_id, "keep_alive": PIT_KEEP_ALIVE},
                    "query": query,
                    "sort": order,
                    "source": source,
                    "size": size,
                    "track_total_hits": False,
                }
                if after is not None:
                    args["search_after"] = after
                if runtime:
                    args["runtime_mappings"] = runtime
                answer = self._call(f"reading {indices}", lambda args=args: self._es.search(**args))
                pit_id = answer.get("pit_id", pit_id)
                hits = answer["hits"]["hits"]
                yield from hits
                seen += len(hits)
                if len(hits) < size:
                    break
                after = hits[-1]["sort"]
        finally:
            with contextlib.suppress(ApiError, TransportError):  # else it expires after the keep-alive
                self._es.close_point_in_time(id=pit_id)

    def _row_plan(self, query: Query, columns: Sequence[str] | None) -> tuple[list[str], dict[str, ColumnKind]]:
        mapped = self._columns_mapped(query)
        if columns is None:
            dynamic = sorted(c for c in mapped if c.startswith((FEATURE_PREFIX, GROUP_PREFIX)))
            names = [*ROW_COLUMNS, *dynamic]
        else:
            names = list(columns)
            for name in names:
                column_path(name)
        kinds: dict[str, ColumnKind] = {n: f.kind for n, f in mapped.items()}
        if "label" in names:
            kinds["label"] = self._label_kind(query)
        return names, kinds

    def _frame(
        self, hits: list[dict[str, Any]], names: list[str], kinds: dict[str, ColumnKind], query: Query
    ) -> pd.DataFrame:
        sources = [h.get("_source") or {} for h in hits]
        data: dict[str, list[Any]] = {}
        for name in names:
            if name == "label":
                continue
            path = column_path(name)
            data[name] = [_get(s, path) for s in sources]
        if "label" in names:
            pids = [_get(s, PREDICTION_ID) for s in sources]
            found = self._lookup_labels(query, sorted({str(p) for p in pids if p is not None}))
            data["label"] = [found.get(str(p)) if p is not None else None for p in pids]
        frame = pd.DataFrame({n: data[n] for n in names}, columns=names)
        for name in names:
            if name == "timestamp":
                frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
            elif name in _FLOAT_COLUMNS or kinds.get(name) == "numeric":
                frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
            else:
                column = frame[name].astype(object)
                frame[name] = column.where(column.notna(), None)
        return frame

    def _hits_frames(
        self,
        query: Query,
        columns: Sequence[str] | None,
        chunk_size: int,
        sort: list[Any],
        limit: int | None,
        random_score: dict[str, Any] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Hits of the query as frames of ``chunk_size`` rows; ``random_score`` orders them by a seeded hash."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        ctx = self._context(query)
        names, kinds = self._row_plan(query, columns)
        source = sorted({column_path(n) for n in names if n != "label"} | {PREDICTION_ID})
        body = ctx.filter
        if random_score is not None:
            body = {"function_score": {"query": ctx.filter, "random_score": random_score, "boost_mode": "replace"}}
        pending: list[dict[str, Any]] = []
        for hit in self._scan(ctx.indices, body, source, sort, limit, ctx.runtime):
            pending.append(hit)
            if len(pending) >= chunk_size:
                yield self._frame(pending, names, kinds, query)
                pending = []
        if pending:
            yield self._frame(pending, names, kinds, query)

    def rows(
        self, query: Query, columns: Sequence[str] | None = None, chunk_size: int = 50_000
    ) -> Iterator[pd.DataFrame]:
        sort = [
            {TIMESTAMP: {"order": "asc"}},
            {PREDICTION_ID: {"order": "asc", "unmapped_type": "keyword"}},
            {"_shard_doc": "asc"},
        ]
        return self._hits_frames(query, columns, chunk_size, sort, None)

    def sample(self, query: Query, n: int, seed: int = 0, columns: Sequence[str] | None = None) -> pd.DataFrame:
        if n <= 0:
            names, _ = self._row_plan(query, columns)
            return pd.DataFrame(columns=names)
        sort = [{"_score": {"order": "desc"}}, {PREDICTION_ID: {"order": "asc", "unmapped_type": "keyword"}}]
        random_score = {"seed": int(seed), "field": PREDICTION_ID}
        frames = list(self._hits_frames(query, columns, PAGE, sort, int(n), random_score))
        if not frames:
            names, _ = self._row_plan(query, columns)
            return pd.DataFrame(columns=names)
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    # ---- findings -------------------------------------------------------------------------------
    def write_findings(self, findings: Sequence[Finding]) -> None:
        actions = [
            {
                "_op_type": "index",
                "_index": monitor_index(f.model, f.window.end.strftime("%Y.%m.%d")),
                "_id": f.id,
                "_source": f.to_dict(),
            }
            for f in findings
        ]
        if not actions:
            return
        failures: list[str] = []

        def run() -> None:
            for ok, item in streaming_bulk(
                self._es,
                actions,
                raise_on_error=False,
                max_retries=3,
                initial_backoff=0.5,
                yield_ok=False,
                refresh="wait_for",
            ):
                if not ok:
                    result = next(iter(item.values()))
                    failures.append(f"{result.get('_id')}: HTTP {result.get('status')} {_reason(result)}")

        self._call("writing findings", run)
        if failures:
            shown = "; ".join(failures[:10]) + (f"; and {len(failures) - 10} more" if len(failures) > 10 else "")
            raise StoreError(
                f"Elasticsearch at {self.where} rejected {len(failures)} of {len(actions)} findings: {shown}"
            )

    def read_findings(
        self, model: str | None = None, job: str | None = None, since: Any = None, until: Any = None
    ) -> list[Finding]:
        index = f"{MONITOR_INDEX_PREFIX}{model + '-' if model else ''}*,-{STATE_INDEX}"
        filters: list[dict[str, Any]] = []
        if model is not None:
            filters.append({"term": {"model": model}})
        if job is not None:
            filters.append({"term": {"job": job}})
        bounds: dict[str, Any] = {}
        if since is not None:
            bounds["gte"] = format_time(parse_time(since))
        if until is not None:
            bounds["lte"] = format_time(parse_time(until))
        if bounds:
            filters.append({"range": {"window.end": {**bounds, "format": "strict_date_optional_time"}}})
        sort = [
            {"window.end": {"order": "asc", "unmapped_type": "date"}},
            {"window.start": {"order": "asc", "unmapped_type": "date"}},
            {"job": {"order": "asc", "unmapped_type": "keyword"}},
            {"id": {"order": "asc", "unmapped_type": "keyword"}},
        ]
        out: list[Finding] = []
        after: list[Any] | None = None
        while True:
            args: dict[str, Any] = {
                "index": index,
                "ignore_unavailable": True,
                "allow_no_indices": True,
                "query": {"bool": {"filter": filters}},
                "sort": sort,
                "size": 1000,
                "track_total_hits": False,
            }
            if after is not None:
                args["search_after"] = after
            answer = self._call(f"reading findings from {index}", lambda args=args: self._es.search(**args))
            hits = answer["hits"]["hits"]
            out.extend(Finding.from_dict(h["_source"]) for h in hits)
            if len(hits) < 1000:
                return out
            after = hits[-1]["sort"]

    # ---- alert state ------------------------------------------------------------------------------
    def _ensure_state_index(self) -> None:
        """Create ``ml-monitor-state`` with its mapping on first write (the state is kept as JSON text)."""
        if self._state_index_ready:
            return
        mappings = {
            "dynamic": False,
            "properties": {
                "key": {"type": "keyword"},
                "state": {"type": "keyword", "index": False, "doc_values": False},
                "updated_at": {"type": "date"},
            },
        }
        try:
            self._call(f"creating {STATE_INDEX}", lambda: self._es.indices.create(index=STATE_INDEX, mappings=mappings))
        except StoreError as exc:
            if "resource_already_exists_exception" not in str(exc):
                raise
        self._state_index_ready = True

    @staticmethod
    def _state_doc(key: str, doc: dict[str, Any]) -> dict[str, Any]:
        return {"key": key, "state": orjson.dumps(doc).decode(), "updated_at": format_time(utcnow())}

    @staticmethod
    def _version(answer: Any) -> tuple[int, int]:
        return (int(answer["_seq_no"]), int(answer["_primary_term"]))

    def get_state(self, key: str) -> tuple[dict[str, Any], Any] | None:
        try:
            answer = self._call(
                f"reading state {key!r}", lambda: self._es.get(index=STATE_INDEX, id=state_id(key)), (NotFoundError,)
            )
        except NotFoundError:
            return None
        return orjson.loads(answer["_source"]["state"]), self._version(answer)

    def put_state(self, key: str, doc: dict[str, Any], version: Any = None) -> Any:
        self._ensure_state_index()
        body = self._state_doc(key, doc)
        try:
            if version is None:
                answer = self._call(
                    f"creating state {key!r}",
                    lambda: self._es.create(index=STATE_INDEX, id=state_id(key), document=body, refresh="wait_for"),
                    (EsConflictError,),
                )
            else:
                seq_no, term = _parse_version(version)
                answer = self._call(
                    f"writing state {key!r}",
                    lambda: self._es.index(
                        index=STATE_INDEX,
                        id=state_id(key),
                        document=body,
                        if_seq_no=seq_no,
                        if_primary_term=term,
                        refresh="wait_for",
                    ),
                    (EsConflictError,),
                )
        except EsConflictError:
            if version is None:
                raise ConflictError(f"state {key!r} already exists") from None
            raise ConflictError(f"state {key!r} changed since version {version}") from None
        return self._version(answer)

    def delete_state(self, key: str, version: Any = None) -> None:
        args: dict[str, Any] = {"index": STATE_INDEX, "id": state_id(key), "refresh": "wait_for"}
        if version is not None:
            args["if_seq_no"], args["if_primary_term"] = _parse_version(version)
        try:
            self._call(f"deleting state {key!r}", lambda: self._es.delete(**args), (NotFoundError, EsConflictError))
        except NotFoundError:
            if version is not None:
                raise ConflictError(f"state {key!r} changed since version {version}") from None
        except EsConflictError:
            raise ConflictError(f"state {key!r} changed since version {version}") from None

    def list_state(self, prefix: str = "") -> dict[str, tuple[dict[str, Any], Any]]:
        query: dict[str, Any] = {"prefix": {"key": prefix}} if prefix else {"match_all": {}}
        out: dict[str, tuple[dict[str, Any], Any]] = {}
        after: list[Any] | None = None
        while True:
            args: dict[str, Any] = {
                "index": STATE_INDEX,
                "ignore_unavailable": True,
                "allow_no_indices": True,
                "query": query,
                "sort": [{"key": {"order": "asc", "unmapped_type": "keyword"}}],
                "seq_no_primary_term": True,
                "size": 1000,
                "track_total_hits": False,
            }
            if after is not None:
                args["search_after"] = after
            answer = self._call(f"listing state in {STATE_INDEX}", lambda args=args: self._es.search(**args))
            hits = answer["hits"]["hits"]
            for hit in hits:
                key = hit["_source"]["key"]
                if key.startswith(prefix):
                    out[key] = (orjson.loads(hit["_source"]["state"]), self._version(hit))
            if len(hits) < 1000:
                return out
            after = hits[-1]["sort"]

    # ---- housekeeping -----------------------------------------------------------------------------
    def install_templates(self, delete_after_days: int = 30) -> None:
        """Put the lifecycle policy and the composable index templates generated from the schema."""
        from logshipper import index_template as templates

        policy = templates.lifecycle_policy(delete_after_days)
        self._call(
            f"putting lifecycle policy {templates.LIFECYCLE_POLICY}",
            lambda: self._es.ilm.put_lifecycle(name=templates.LIFECYCLE_POLICY, policy=policy["policy"]),
        )
        for name, body in (
            (templates.PREDICTIONS_TEMPLATE, templates.index_template()),
            (templates.MONITOR_TEMPLATE, templates.monitor_index_template()),
        ):
            self._call(
                f"putting index template {name}",
                lambda name=name, body=body: self._es.indices.put_index_template(name=name, body=body),
            )

    def close(self) -> None:
        if self._owns:
            self._es.close()


def state_id(key: str) -> str:
    """Document id of a state key: the key itself, or a hash when longer than Elasticsearch's 512 bytes."""
    return key if len(key.encode()) <= 512 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _parse_version(version: Any) -> tuple[int, int]:
    try:
        seq_no, term = version
        return int(seq_no), int(term)
    except (TypeError, ValueError):
        raise StoreError(f"state version must be (seq_no, primary_term) from get_state, got {version!r}") from None


def _fixed_columns() -> dict[str, str]:
    return {"prediction": PREDICTION, "score": SCORE, **{c: column_path(c) for c in _FIXED_AGGREGATABLE}}


_FIXED_AGGREGATABLE = (
    "model_version",
    "entity_id",
    "outcome",
    "error_type",
    "latency_ms",
    "sample_rate",
    "prediction_id",
)


def _fixed_paths() -> list[str]:
    return [column_path(c) for c in _FIXED_AGGREGATABLE]


def _mixed_quantiles(mixture: list[tuple[float, list[tuple[float, float]]]], qs: Sequence[float]) -> list[float | None]:
    """Quantiles of a weighted mixture of strata, each known by its percentile curve."""
    total = sum(w for w, _ in mixture)
    xs = np.unique(np.concatenate([[x for _, x in points] for _, points in mixture]))
    cdf = np.zeros(len(xs))
    for w, points in mixture:
        ps = np.array([p for p, _ in points]) / 100.0
        vs = np.maximum.accumulate(np.array([x for _, x in points], dtype=float))
        cdf += w * np.interp(xs, vs, ps, left=0.0, right=1.0)
    cdf /= total
    out: list[float | None] = []
    for q in qs:
        i = int(np.searchsorted(cdf, float(q) - 1e-9, side="left"))
        out.append(float(xs[min(i, len(xs) - 1)]))
    return out
