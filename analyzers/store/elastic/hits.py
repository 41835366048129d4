"""Reading hits: every hit of a query through a point in time and ``search_after``, and values out of ``_source``."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from analyzers.store.elastic import limits
from analyzers.store.elastic.connection import Connection
from elasticsearch import ApiError, TransportError
from logshipper.schema import TIMESTAMP


def source_value(source: dict[str, Any], path: str) -> Any:
    """Value at a dotted path in ``_source``, whether it was written nested or with dotted keys."""
    if path in source:
        return source[path]
    dot = path.find(".")
    while dot != -1:
        head = source.get(path[:dot])
        if isinstance(head, dict):
            found = source_value(head, path[dot + 1 :])
            if found is not None:
                return found
        dot = path.find(".", dot + 1)
    return None


def sorted_hits(
    conn: Connection, what: str, index: str, query: dict[str, Any], sort: list[Any], **extra: Any
) -> Iterator[dict[str, Any]]:
    """Every hit of a query in ``sort`` order, a page at a time with ``search_after`` and no point in time:
    for the small monitor indices (findings, alert state), where a page that sees a later write does no harm.
    ``what`` names the read in error messages; ``extra`` adds search parameters."""
    page = 1000
    after: list[Any] | None = None
    while True:
        args: dict[str, Any] = {
            "index": index,
            "ignore_unavailable": True,
            "allow_no_indices": True,
            "query": query,
            "sort": sort,
            "size": page,
            "track_total_hits": False,
            **extra,
        }
        if after is not None:
            args["search_after"] = after
        hits = conn.call(what, functools.partial(conn.es.search, **args))["hits"]["hits"]
        yield from hits
        if len(hits) < page:
            return
        after = hits[-1]["sort"]


def scan(
    conn: Connection,
    indices: str,
    query: dict[str, Any],
    source: list[str],
    sort: list[Any] | None,
    limit: int | None,
    runtime: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every hit of a query through a point in time and ``search_after``; the point in time is closed after."""
    opened = conn.call(
        f"opening a point in time on {indices}",
        lambda: conn.es.open_point_in_time(index=indices, keep_alive=limits.PIT_KEEP_ALIVE, ignore_unavailable=True),
    )
    pit_id = opened["id"]
    order = sort or [{TIMESTAMP: {"order": "asc"}}, {"_shard_doc": "asc"}]
    after: list[Any] | None = None
    seen = 0
    try:
        while limit is None or seen < limit:
            size = limits.PAGE if limit is None else min(limits.PAGE, limit - seen)
            args: dict[str, Any] = {
                "pit": {"id": pit_id, "keep_alive": limits.PIT_KEEP_ALIVE},
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
            answer = conn.call(f"reading {indices}", functools.partial(conn.es.search, **args))
            pit_id = answer.get("pit_id", pit_id)
            hits = answer["hits"]["hits"]
            yield from hits
            seen += len(hits)
            if len(hits) < size:
                break
            after = hits[-1]["sort"]
    finally:
        with contextlib.suppress(ApiError, TransportError):  # else it expires after the keep-alive
            conn.es.close_point_in_time(id=pit_id)
