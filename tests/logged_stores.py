"""What PredictionLogger wrote, read through each store: the local files, or a live Elasticsearch.

``STORES`` parametrizes a fixture over ``local`` and ``elastic-emulated`` (always: the Elasticsearch store
over the emulator, every request it sends checked against the specification) and ``elastic-live`` (when
``ES_URL`` is set, see ``live_es.py``); :func:`store_over` opens the chosen store over a log directory,
indexing its lines the way Filebeat ships them for Elasticsearch (under a fresh model name, which it yields).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from analyzers.store import LocalStore, Store
from tests import live_es
from tests.conftest import check_requests

STORES = [
    "local",
    "elastic-emulated",
    pytest.param(
        "elastic-live",
        marks=[
            pytest.mark.live_es,
            pytest.mark.skipif(not live_es.ES_URL, reason="ES_URL not set: no live Elasticsearch to index into"),
        ],
    ),
]


@contextmanager
def store_over(kind: str, log_dir: Path, state_dir: Path, model: str) -> Iterator[tuple[Store, str]]:
    """The store of ``kind`` holding what was logged under ``log_dir`` for ``model``; yields it and its model name."""
    if kind == "local":
        with LocalStore(log_dir, state_dir) as store:
            yield store, model
        return
    lines = [json.loads(line) for path in sorted(log_dir.rglob("*.ndjson")) for line in path.read_text().splitlines()]

    def events(name: str, other: str) -> list[dict]:
        out = []
        for line in lines:
            if line["ml"]["model"]["name"] == model:
                event = copy.deepcopy(line)
                event["ml"]["model"]["name"] = name
                out.append(event)
        return out

    if kind == "elastic-emulated":
        with live_es.emulated(events, model=model) as (store, name, emulator):
            yield store, name
        check_requests(emulator.requests)
        return
    with live_es.indexed(events) as (store, name):
        yield store, name
