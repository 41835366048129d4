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


# Value-contract cases the local store does not meet yet; its rewrite (issue 16's local half) meets them, and
# then these strict expectations fail, to be removed.
LOCAL_GAPS = {
    "test_integer_categories_stay_integers": "the local store reads group values as text",
    "test_arrays_are_their_compact_json_text": "the local store gives arrays back as lists",
}


@pytest.fixture(autouse=True)
def _known_local_gaps(request: pytest.FixtureRequest) -> None:
    name = request.node.originalname
    if name in LOCAL_GAPS and request.node.callspec.params.get("subject") == "local":
        request.applymarker(pytest.mark.xfail(strict=True, reason=LOCAL_GAPS[name]))


class TestStoreContract(StoreContract):
    """The contract, once per adapter."""
