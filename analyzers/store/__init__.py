"""Stores: the ports (``base``), their adapters (local DuckDB over log files, Elasticsearch, reference
files) and the factory that opens the configured one.

The adapters are imported on first use, so the configuration (which reads ``store.settings``) does not
load DuckDB or Elasticsearch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from analyzers.store.base import (
    BucketedHistograms,
    ColumnInfo,
    ConflictError,
    FindingStore,
    Histogram,
    NumericSummary,
    PredictionReader,
    QualityReport,
    Query,
    ReasonCount,
    StateStore,
    Store,
    StoreError,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from analyzers.store.factory import open_store
    from analyzers.store.local import LocalStore
    from analyzers.store.reference import open_reference_file

_ADAPTERS = {
    "LocalStore": "analyzers.store.local",
    "open_store": "analyzers.store.factory",
    "open_reference_file": "analyzers.store.reference",
}

__all__ = [
    "BucketedHistograms",
    "ColumnInfo",
    "ConflictError",
    "FindingStore",
    "Histogram",
    "LocalStore",
    "NumericSummary",
    "PredictionReader",
    "QualityReport",
    "Query",
    "ReasonCount",
    "StateStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "open_reference_file",
    "open_store",
]


def __getattr__(name: str) -> Any:
    module = _ADAPTERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
