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

__all__ = [
    "ColumnInfo",
    "ConflictError",
    "Histogram",
    "NumericSummary",
    "Query",
    "ScanReport",
    "SkippedLine",
    "Store",
    "StoreError",
]
