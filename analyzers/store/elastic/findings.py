"""Findings in the ``ml-monitor-<model>-YYYY.MM.DD`` indices: bulk-written by id, read back in window order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from elasticsearch.helpers import streaming_bulk

from analyzers.findings import Finding
from analyzers.store.base import StoreError
from analyzers.store.elastic.connection import Connection, error_reason
from analyzers.store.elastic.hits import sorted_hits
from analyzers.store.elastic.queries import term
from analyzers.timeutil import format_time, parse_time
from logshipper.schema import MONITOR_INDEX_PREFIX, STATE_INDEX, monitor_index


def write(conn: Connection, findings: Sequence[Finding]) -> None:
    """Index the findings (by id, so a rerun overwrites) and wait until they are searchable."""
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

    def run(es: Any) -> None:
        failures.clear()  # a retried call starts over (writing by id is idempotent)
        for ok, item in streaming_bulk(
            es,
            actions,
            raise_on_error=False,
            max_retries=3,
            initial_backoff=0.5,
            yield_ok=False,
            refresh="wait_for",
        ):
            if not ok:
                result = next(iter(item.values()))
                failures.append(f"{result.get('_id')}: HTTP {result.get('status')} {error_reason(result)}")

    conn.call("writing findings", run)
    if failures:
        shown = "; ".join(failures[:10]) + (f"; and {len(failures) - 10} more" if len(failures) > 10 else "")
        raise StoreError(f"Elasticsearch at {conn.where} rejected {len(failures)} of {len(actions)} findings: {shown}")


def read(
    conn: Connection, model: str | None = None, job: str | None = None, since: Any = None, until: Any = None
) -> list[Finding]:
    """Findings of a model and job whose window ends between ``since`` and ``until``, oldest first."""
    index = f"{MONITOR_INDEX_PREFIX}{model + '-' if model else ''}*,-{STATE_INDEX}"
    filters: list[dict[str, Any]] = []
    if model is not None:
        filters.append(term("model", model))
    if job is not None:
        filters.append(term("job", job))
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
    hits = sorted_hits(conn, f"reading findings from {index}", index, {"bool": {"filter": filters}}, sort)
    return [Finding.from_dict(h["_source"]) for h in hits]
