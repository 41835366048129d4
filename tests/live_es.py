"""Events indexed the way Filebeat ships them, into a live Elasticsearch (``ES_URL``) or the emulator.

``ES_URL`` is a cluster URL; credentials come from ``ES_USERNAME``/``ES_PASSWORD`` or ``ES_API_KEY`` (or the
URL itself); ``ES_CA_CERTS`` names a CA file and ``ES_VERIFY_CERTS=0`` turns certificate checks off.
A prediction goes to its model's daily index with ``_id`` = its id (``create``: a second copy is refused),
feedback to its model's daily feedback index with ``_id`` = the prediction id (``index``: the latest wins),
under model names unique to the run; everything is removed after.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from analyzers.config.models import ElasticsearchStoreConfig
from analyzers.store.elastic import ElasticsearchStore
from analyzers.store.elastic.connection import client_from_config
from analyzers.store.elastic.install import default_assets, install
from logshipper.schema import (
    DATASET_FEEDBACK,
    DEAD_LETTER_INDEX,
    FEEDBACK_INDEX_PREFIX,
    MONITOR_INDEX_PREFIX,
    PREDICTIONS_INDEX_PREFIX,
    feedback_index,
    predictions_index,
)

ES_URL = os.environ.get("ES_URL")


def shipped(event: dict[str, Any]) -> dict[str, Any]:
    """The bulk action Filebeat's configuration makes of an event (see filebeat/filebeat.yml)."""
    ml = event["ml"]
    day = event["@timestamp"][:10].replace("-", ".")
    model = ml["model"]["name"].lower()
    if event["event"]["dataset"] == DATASET_FEEDBACK:
        return {"_op_type": "index", "_index": feedback_index(model, day), "_id": ml["prediction_id"], "_source": event}
    return {"_op_type": "create", "_index": predictions_index(model, day), "_id": ml["prediction_id"], "_source": event}


def live_config() -> ElasticsearchStoreConfig:
    """The store configuration of the cluster at ``ES_URL``."""
    es: dict[str, Any] = {"hosts": [ES_URL], "verify_certs": os.environ.get("ES_VERIFY_CERTS", "1") != "0"}
    if os.environ.get("ES_API_KEY"):
        es["api_key"] = os.environ["ES_API_KEY"]
    elif os.environ.get("ES_USERNAME"):
        es["username"] = os.environ["ES_USERNAME"]
        es["password"] = os.environ.get("ES_PASSWORD", "")
    if os.environ.get("ES_CA_CERTS"):
        es["ca_certs"] = os.environ["ES_CA_CERTS"]
    return ElasticsearchStoreConfig.model_validate(es)


@contextmanager
def indexed(events: Callable[[str, str], list[dict]]) -> Iterator[tuple[ElasticsearchStore, str]]:
    """A store over ``events(model, other)`` indexed under two fresh model names; yields it and ``model``."""
    from elasticsearch.helpers import bulk

    cfg = live_config()
    install(cfg, default_assets(), wait=60, retry_interval=2)
    store = ElasticsearchStore.from_config(cfg)
    client = client_from_config(cfg)
    run = uuid.uuid4().hex[:8]
    model, other = f"pwtest{run}", f"pwother{run}"
    bulk(client, [shipped(e) for e in events(model, other)], raise_on_error=False, refresh="wait_for")
    try:
        yield store, model
    finally:
        for prefix in (PREDICTIONS_INDEX_PREFIX, FEEDBACK_INDEX_PREFIX, MONITOR_INDEX_PREFIX):
            for name in (model, other):
                client.indices.delete(index=f"{prefix}{name}-*", ignore_unavailable=True, allow_no_indices=True)
        for key in store.list_state(f"alert:{model}:"):
            store.delete_state(key)
        store.close()
        client.close()


@contextmanager
def emulated(
    events: Callable[[str, str], list[dict]], model: str = "fraud", other: str = "other"
) -> Iterator[tuple[ElasticsearchStore, str, Any]]:
    """A store over ``events(model, other)`` in the emulator (``es_emulator.py``), set up by ``predwatch setup``'s
    installer; yields the store, ``model`` and the emulator (its recorded requests)."""
    from tests.es_emulator import Emulator, EsError

    emulator = Emulator()
    with emulator.serve():
        # no time bound that a busy machine could reach: the emulator answers, however slowly
        cfg = ElasticsearchStoreConfig(hosts=[emulator.url], request_timeout=600, max_retries=0)
        install(cfg, default_assets(), wait=5, retry_interval=0.1)
        for event in events(model, other):
            action = shipped(event)
            try:
                emulator.put_doc(action["_index"], action["_id"], action["_source"], action["_op_type"], {})
            except EsError as exc:
                if exc.status == 409:  # a second copy of a prediction is refused, as Filebeat's create is
                    continue
                if exc.status != 400:
                    raise
                # a document the mapping refuses goes to the dead letters, as Filebeat writes them
                letter = {"@timestamp": event["@timestamp"], "message": json.dumps(event), "error": {"type": "400"}}
                emulator.put_doc(DEAD_LETTER_INDEX, action["_id"], letter, "index", {})
        with ElasticsearchStore.from_config(cfg) as store:
            yield store, model, emulator
