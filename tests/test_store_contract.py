"""The store contract (``store_contract.py``) run against every adapter over the same events.

``local`` is a LocalStore over the logger's daily files and always runs; ``elastic-emulated`` is the
Elasticsearch store over the emulator (``es_emulator.py``: the real client and templates, a stand-in server,
every request checked against the specification) and always runs; ``elastic-live`` indexes the events into
the cluster at ``ES_URL`` (see ``live_es.py``) and is skipped when it is not set.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from analyzers.store import LocalStore
from tests import live_es
from tests.conftest import check_requests
from tests.log_events import write_events
from tests.store_contract import StoreContract, Subject, all_events


@pytest.fixture(
    scope="module",
    params=[
        "local",
        "elastic-emulated",
        pytest.param(
            "elastic-live",
            marks=[
                pytest.mark.live_es,
                pytest.mark.skipif(
                    not live_es.ES_URL,
                    reason="ES_URL not set: the live Elasticsearch contract needs a cluster URL "
                    "(e.g. https://elastic:changeme@localhost:9200)",
                ),
            ],
        ),
    ],
)
def subject(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Subject]:
    """Each adapter holding ``all_events``, shared by the module's tests (indexing a cluster is slow)."""
    if request.param == "local":
        root = tmp_path_factory.mktemp("contract")
        write_events(root / "logs", all_events("fraud", "other"), service="fraud-api")
        with LocalStore(root / "logs", root / "state") as store:
            yield Subject(store, "fraud")
    elif request.param == "elastic-emulated":
        with live_es.emulated(all_events) as (store, model, emulator):
            yield Subject(store, model)
        check_requests(emulator.requests)
    else:
        with live_es.indexed(all_events) as (store, model):
            yield Subject(store, model)


# Day 3 mixes JSON types within one field on one day; Elasticsearch maps a field by its first value of the day,
# so these cases come out otherwise there (docs/elasticsearch.md, "Values keep their JSON type").  When they pass
# there these strict expectations fail, to be removed.
REFUSED = "v2's object in features.tags, where the day began with an array of strings, is refused (a dead letter)"
ELASTIC_GAPS = {
    "test_strings_numbers_and_booleans_keep_their_json_type": REFUSED
    + "; an integer in features.code, which began as a string, is indexed as its text",
    "test_arrays_and_objects_are_categories_of_their_compact_json": REFUSED
    + ", counted as a rejected document, not a nested value",
    "test_integers_and_fractions_are_equal_keys": REFUSED + ", so its amount and its confusion cell are missing",
}


@pytest.fixture(autouse=True)
def _known_elastic_gaps(request: pytest.FixtureRequest) -> None:
    name = request.node.originalname
    if name in ELASTIC_GAPS and str(request.node.callspec.params.get("subject", "")).startswith("elastic"):
        request.applymarker(pytest.mark.xfail(strict=True, reason=ELASTIC_GAPS[name]))


class TestStoreContract(StoreContract):
    """The contract, once per adapter."""
