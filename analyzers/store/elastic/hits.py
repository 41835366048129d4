"""Reading hits: every hit of a query in a total order, and values out of ``_source``.

A long read pages through a point in time with ``search_after``.  The order always ends on fields that
identify a hit (``@timestamp`` and ``ml.prediction_id``, or the prediction id alone), so when lifecycle
deletes one of the indices mid-read the point in time is opened again on what remains and the read goes
on from the last hit, instead of failing: the deleted day's hits are gone, the others are all read once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from typing import Any

from analyzers.store.base import StoreError
from analyzers.store.elastic import limits
from analyzers.store.elastic.connection import Connection, error_reason
from elasticsearch import ApiError, Elasticsearch, TransportError

log = logging.getLogger("predwatch.store")

# Errors of a point in time whose index (or one of them) went away while it was read.
_VANISHED = ("search_context_missing_exception", "index_not_found_exception", "No search context found")
REOPEN_LIMIT = 5  # points in time opened again for one read before giving up


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


def _search(es: Elasticsearch, *, args: dict[str, Any]) -> Any:
    return es.search(**args)


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
        hits = conn.call(what, functools.partial(_search, args=args))["hits"]["hits"]
        yield from hits
        if len(hits) < page:
            return
        after = hits[-1]["sort"]


def _vanished(exc: ApiError) -> bool:
    text = f"{exc.body}" if exc.body is not None else str(exc)
    return any(marker in text for marker in _VANISHED)


class _PointInTime:
    """A point in time over an index pattern, opened again when an index it covered is deleted."""

    def __init__(self, conn: Connection, index: str) -> None:
        self.conn = conn
        self.index = index
        self.id = self._open()
        self.reopened = 0

    def _open(self) -> str:
        opened = self.conn.call(
            f"opening a point in time on {self.index}",
            lambda es: es.open_point_in_time(
                index=self.index, keep_alive=limits.PIT_KEEP_ALIVE, ignore_unavailable=True
            ),
        )
        return str(opened["id"])

    def reopen(self) -> None:
        self.reopened += 1
        if self.reopened > REOPEN_LIMIT:
            raise StoreError(
                f"Elasticsearch at {self.conn.where}: the indices of {self.index} kept disappearing "
                "while they were read"
            )
        self.close()
        log.warning("an index of %s was deleted during a read; reading on from the last hit", self.index)
        self.id = self._open()

    def close(self) -> None:
        with contextlib.suppress(ApiError, TransportError, StoreError):  # else it expires after the keep-alive
            self.conn.call("closing a point in time", lambda es: es.close_point_in_time(id=self.id))


def scan(
    conn: Connection,
    index: str,
    query: dict[str, Any],
    source: dict[str, Any] | bool,
    sort: list[Any],
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Every hit of a query (at most ``limit``) in ``sort`` order (which must identify each hit), a page of
    ``PAGE`` hits at a time through a point in time that survives the deletion of one of its indices."""
    pit = _PointInTime(conn, index)
    after: list[Any] | None = None
    seen = 0
    try:
        while limit is None or seen < limit:
            size = limits.PAGE if limit is None else min(limits.PAGE, limit - seen)
            args: dict[str, Any] = {
                "query": query,
                "sort": sort,
                "source": source,
                "size": size,
                "track_total_hits": False,
                "allow_partial_search_results": False,
                "pre_filter_shard_size": 1,
            }
            if after is not None:
                args["search_after"] = after
            try:
                args["pit"] = {"id": pit.id, "keep_alive": limits.PIT_KEEP_ALIVE}
                answer = conn.call(f"reading {index}", functools.partial(_search, args=args), keep=(ApiError,))
            except ApiError as exc:
                if _vanished(exc):
                    pit.reopen()
                    continue
                raise StoreError(
                    f"Elasticsearch at {conn.where} answered HTTP {exc.meta.status} while reading {index}: "
                    f"{error_reason(exc.body)}"
                ) from None
            pit.id = str(answer.get("pit_id", pit.id))
            hits = answer["hits"]["hits"]
            yield from hits
            seen += len(hits)
            if len(hits) < size:
                break
            if hits[-1].get("sort") == after:
                raise StoreError(f"Elasticsearch at {conn.where}: reading {index} did not move past {after}")
            after = hits[-1]["sort"]
    finally:
        pit.close()
