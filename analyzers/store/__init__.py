"""Stores: the ``Store`` interface and its adapters (local DuckDB over log files, Elasticsearch)."""

from analyzers.store.base import (
    ColumnInfo,
    ConflictError,
    Histogram,
    NumericSummary,
    QualityReport,
    Query,
    ReasonCount,
    Store,
    StoreError,
)
from analyzers.store.factory import open_store
from analyzers.store.local import LocalStore
from analyzers.store.reference import open_reference_file

__all__ = [
    "ColumnInfo",
    "ConflictError",
    "Histogram",
    "LocalStore",
    "NumericSummary",
    "QualityReport",
    "Query",
    "ReasonCount",
    "Store",
    "StoreError",
    "open_reference_file",
    "open_store",
]
