"""A reference data set from a file (Parquet, CSV or NDJSON of the training data) as a ``PredictionReader``.

Columns are feature names; ``prediction``, ``score``, ``label``, ``prediction_id``, ``entity_id`` and
``model_version`` keep their meaning, and ``groups.<name>`` columns are group attributes.  Every
row is in every window: a training set has no time.  The SQL is the local store's (``duck.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

from analyzers.store.base import PredictionReader, QualityReport, Query, StoreError
from analyzers.store.duck import DuckAggregates, quote
from logshipper.schema import FEATURE_PREFIX, GROUP_PREFIX

_READERS = {
    ".parquet": "read_parquet",
    ".pq": "read_parquet",
    ".csv": "read_csv_auto",
    ".tsv": "read_csv_auto",
    ".ndjson": "read_json_auto",
    ".jsonl": "read_json_auto",
    ".json": "read_json_auto",
}
_KEPT = {"prediction_id", "entity_id", "model_version"}
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}
_FRACTIONS = {"FLOAT", "DOUBLE"}
_JSON = {"prediction", "label"}


class ReferenceFileStore(DuckAggregates, PredictionReader):
    """Predictions read from one table file; it keeps no findings or state (it is not a ``Store``)."""

    def __init__(self, path: str | os.PathLike[str], model: str) -> None:
        super().__init__()
        self.path = Path(path)
        self.model = model
        suffixes = [s.lower() for s in self.path.suffixes]
        reader = next((_READERS[s] for s in reversed(suffixes) if s in _READERS), None)
        if reader is None:
            raise StoreError(f"reference file {self.path}: unknown format (use .parquet, .csv or .ndjson)")
        if not self.path.is_file():
            raise StoreError(f"reference file {self.path} does not exist")
        literal = str(self.path).replace("'", "''")
        try:
            described = self._con.execute(f"DESCRIBE SELECT * FROM {reader}('{literal}')").fetchall()
        except Exception as exc:
            raise StoreError(f"reference file {self.path} cannot be read: {exc}") from exc
        select = [
            "CAST(row_number() OVER () AS VARCHAR) AS _rowid",
            "TIMESTAMPTZ '1970-01-01 00:00:00+00' AS timestamp",
            "'success' AS outcome",
            "1.0 AS sample_rate",
            "1.0 AS _w",
        ]
        names = {name for name, *_ in described}
        types = {name: str(kind).upper() for name, kind, *_ in described}
        for name in sorted(names):
            if name in _KEPT:
                select.append(f"CAST({quote(name)} AS VARCHAR) AS {quote(name)}")
            elif name in ("score", "latency_ms"):
                select.append(f"TRY_CAST({quote(name)} AS DOUBLE) AS {quote(name)}")
            elif name in ("timestamp", "outcome", "sample_rate"):
                continue
            else:
                keep = name in _JSON or name.startswith((GROUP_PREFIX, FEATURE_PREFIX))
                target = name if keep else FEATURE_PREFIX + name
                if types[name] in _INTEGERS | _FRACTIONS:  # numbers stay numbers; anything else is its JSON text
                    kind = "BIGINT" if types[name] in _INTEGERS else "DOUBLE"
                    select.append(f"CAST({quote(name)} AS {kind}) AS {quote(target)}")
                else:
                    select.append(
                        f"CASE WHEN {quote(name)} IS NULL THEN NULL ELSE CAST(to_json({quote(name)}) AS VARCHAR) END"
                        f" AS {quote(target)}"
                    )
        if "prediction_id" not in names:
            select.append("CAST(row_number() OVER () AS VARCHAR) AS prediction_id")
        self._con.execute(f"CREATE TABLE _pw_reference AS SELECT {', '.join(select)} FROM {reader}('{literal}')")
        self._con.execute("ALTER TABLE _pw_reference DROP COLUMN _rowid")

    def _table(self, query: Query, label: bool = True) -> str:
        return "_pw_reference"

    def quality(self, query: Query) -> QualityReport:
        """Every row of the file is considered and kept: a training set has nothing set aside."""
        return QualityReport(int(self._fetch("SELECT count(*) FROM _pw_reference", [])[0][0]))


def open_reference_file(path: str | os.PathLike[str], model: str) -> PredictionReader:
    """The predictions of a training-data file; its rows count as inside any window."""
    return ReferenceFileStore(path, model)
