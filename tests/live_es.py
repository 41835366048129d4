"""A live Elasticsearch holding given events, indexed the way Filebeat ships them, when ``ES_URL`` is set.

``ES_URL`` is a cluster URL; credentials come from ``ES_USERNAME``/``ES_PASSWORD`` or ``ES_API_KEY``
(or the URL itself); ``ES_CA_CERTS`` names a CA file and ``ES_VERIFY_CERTS=0`` turns certificate checks
off.  Events go to the daily index of their day, a prediction's ``_id`` is its id (so a second copy is
refused), under a model name unique to the run, and are removed after.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from analyzers.store.elastic import ElasticsearchStore
from logshipper.schema import MONITOR_INDEX_PREFIX, PREDICTIONS_INDEX_PREFIX, predictions_index

ES_URL = os.environ.get("ES_URL")


def _action(event: dict) -> dict:
    ml = event["ml"]
    day = event["@timestamp"][:10].replace("-", ".")
    if event["event"]["dataset"] == "ml.prediction":
        doc_id = ml["prediction_id"]
    else:
        doc_id = hashlib.sha256(f"{ml['prediction_id']}|{ml['label']}".encode()).hexdigest()
    return {
        "_op_type": "create",
        "_index": predictions_index(ml["model"]["name"], day),
        "_id": doc_id,
        "_source": event,
    }


@contextmanager
def indexed(events: Callable[[str, str], list[dict]]) -> Iterator[tuple[ElasticsearchStore, str]]:
    """A store over ``events(model, other)`` indexed under two fresh model names; yields it and ``model``."""
    from elasticsearch.helpers import bulk

    from elasticsearch import Elasticsearch

    kwargs: dict = {"request_timeout": 30, "verify_certs": os.environ.get("ES_VERIFY_CERTS", "1") != "0"}
    if os.environ.get("ES_API_KEY"):
        kwargs["api_key"] = os.environ["ES_API_KEY"]
    elif os.environ.get("ES_USERNAME"):
        kwargs["basic_auth"] = (os.environ["ES_USERNAME"], os.environ.get("ES_PASSWORD", ""))
    if os.environ.get("ES_CA_CERTS"):
        kwargs["ca_certs"] = os.environ["ES_CA_CERTS"]
    client = Elasticsearch(ES_URL, **kwargs)
    run = uuid.uuid4().hex[:8]
    model, other = f"pwtest{run}", f"pwother{run}"
    store = ElasticsearchStore(client)
    store.install_templates()
    bulk(client, [_action(e) for e in events(model, other)], raise_on_error=False, refresh="wait_for")
    try:
        yield store, model
    finally:
        for prefix in (PREDICTIONS_INDEX_PREFIX, MONITOR_INDEX_PREFIX):
            for name in (model, other):
                client.indices.delete(index=f"{prefix}{name}-*", ignore_unavailable=True, allow_no_indices=True)
        for key in store.list_state(f"alert:{model}:"):
            store.delete_state(key)
        client.close()
