"""Stores: the ``Store`` interface and its adapters (local DuckDB over log files, Elasticsearch)."""

from analyzers.store.base import (
    ColumnInfo,
    ConflictError,
    Histogram,
    NumericSummary,
    Query,
    ScanReport,
    SkippedLine,
    Store,
    StoreError,
)
from analyzers.store.local import LocalStore

__all__ = [
    "ColumnInfo",
    "ConflictError",
    "Histogram",
    "LocalStore",
    "NumericSummary",
    "Query",
    "ScanReport",
    "SkippedLine",
    "Store",
    "StoreError",
]
