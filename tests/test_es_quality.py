"""Data quality on Elasticsearch: dead letters counted for the model their text names (and those naming none for
every model), values the mapping set aside, and a cluster set up before dead letters had a model brought up to
date by setup without losing one.

Each test runs against the emulator (``es_emulator.py``, with its ingest pipelines, every request checked against
the specification) and, when ``ES_URL`` is set, against that live cluster (``live_es.py``), under model names
and an hour of 2001 unique to the run; what a test wrote is removed after.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from analyzers.config.models import ElasticsearchStoreConfig
from analyzers.store import Query
from analyzers.store.elastic import ElasticsearchStore
from analyzers.store.elastic.connection import client_from_config
from analyzers.store.elastic.install import default_assets, install
from analyzers.timeutil import Window
from elasticsearch import Elasticsearch
from logshipper.schema import DEAD_LETTER_INDEX, PREDICTIONS_INDEX_PREFIX
from tests import live_es
from tests.conftest import check_requests
from tests.store_contract import prediction

REFUSED = "rejected by Elasticsearch (HTTP 400)"


@dataclass
class Cluster:
    """A set-up cluster, a store and a client on it, two model names and an hour of 2001 unique to the run."""

    cfg: ElasticsearchStoreConfig
    client: Elasticsearch
    store: ElasticsearchStore
    model: str
    other: str
    start: datetime
    letters: list[str] = field(default_factory=list)  # ids of the dead letters written

    @property
    def window(self) -> Window:
        return Window(self.start, self.start + timedelta(hours=1))

    def at(self, minute: int) -> str:
        return (self.start + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def dead_letter(self, key: str, minute: int, message: str, error_type: str) -> str:
        """A dead letter as Filebeat writes it (through the alias, so through the index's pipeline); its id."""
        doc_id = f"{self.model}-{key}"
        letter = {"@timestamp": self.at(minute), "message": message, "error": {"type": error_type}}
        self.client.index(index=DEAD_LETTER_INDEX, id=doc_id, document=letter, refresh="wait_for")
        self.letters.append(doc_id)
        return doc_id

    def ship(self, events: list[dict[str, Any]]) -> list[int]:
        """Events as Filebeat ships them (``live_es.shipped``), in one bulk request; each one's status."""
        operations: list[dict[str, Any]] = []
        for action in map(live_es.shipped, events):
            operations += [{action["_op_type"]: {"_index": action["_index"], "_id": action["_id"]}}, action["_source"]]
        answer = self.client.bulk(operations=operations, refresh="wait_for")
        return [int(next(iter(item.values()))["status"]) for item in answer["items"]]

    def stored_letters(self) -> dict[str, dict[str, Any]]:
        """The run's dead letters as stored: id -> ``_source`` (and where: ``_index``)."""
        answer = self.client.search(
            index=f"{DEAD_LETTER_INDEX}-*", query={"ids": {"values": self.letters}}, size=len(self.letters) or 1
        )
        return {h["_id"]: {**h["_source"], "_index": h["_index"]} for h in answer["hits"]["hits"]}


@pytest.fixture(
    params=[
        "emulated",
        pytest.param(
            "live",
            marks=[
                pytest.mark.live_es,
                pytest.mark.skipif(not live_es.ES_URL, reason="ES_URL not set: the live variant needs a cluster URL"),
            ],
        ),
    ]
)
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    run = uuid.uuid4().hex[:8]
    start = datetime(2001, 1, 1, tzinfo=timezone.utc) + timedelta(hours=int(run, 16) % 8000)
    if request.param == "emulated":
        from tests.es_emulator import Emulator

        emulator = Emulator()
        with emulator.serve():
            cfg = ElasticsearchStoreConfig(hosts=[emulator.url], request_timeout=600, max_retries=0)
            yield from _cluster(cfg, run, start, live=False)
        check_requests(emulator.requests)
    else:
        yield from _cluster(live_es.live_config(), run, start, live=True)


def _cluster(cfg: ElasticsearchStoreConfig, run: str, start: datetime, *, live: bool) -> Iterator[Cluster]:
    install(cfg, default_assets(), wait=60, retry_interval=0.5)
    client = client_from_config(cfg)
    with ElasticsearchStore.from_config(cfg) as store:
        subject = Cluster(cfg, client, store, f"pwq{run}", f"pwqother{run}", start)
        try:
            yield subject
        finally:
            if live:
                if subject.letters:
                    client.delete_by_query(
                        index=f"{DEAD_LETTER_INDEX}-*", query={"ids": {"values": subject.letters}}, refresh=True
                    )
                for name in (subject.model, subject.other):
                    client.indices.delete(
                        index=f"{PREDICTIONS_INDEX_PREFIX}{name}-*", ignore_unavailable=True, allow_no_indices=True
                    )
            client.close()


def _reasons(cluster: Cluster, model: str) -> dict[str, tuple[int, str | None]]:
    report = cluster.store.quality(Query(model, cluster.window))
    return {name: (r.count, r.first.rsplit("/", 1)[1] if r.first else None) for name, r in report.reasons.items()}


def test_a_dead_letter_counts_for_the_model_its_text_names_and_one_naming_none_for_every_model(cluster: Cluster):
    own = json.dumps(prediction("p1", cluster.at(5), model=cluster.model))  # a refused event, as Filebeat encodes it
    truncated = '{"@timestamp": "' + cluster.at(1) + '", "ml": {"model": {"name": "' + cluster.model + '", "vers'
    ids = {
        "truncated": cluster.dead_letter("truncated", 1, truncated, "json"),
        "none": cluster.dead_letter("none", 2, "{not json at all", "json"),
        "own": cluster.dead_letter("own", 5, own, "400"),
        "other": cluster.dead_letter(
            "other", 6, json.dumps(prediction("p2", cluster.at(6), model=cluster.other)), "400"
        ),
    }
    mine = cluster.store.quality(Query(cluster.model, cluster.window))
    assert mine.lines == 3  # its two dead letters and the one naming no model; the other model's is not counted
    assert _reasons(cluster, cluster.model) == {REFUSED: (1, ids["own"]), "bad JSON": (2, ids["truncated"])}
    assert _reasons(cluster, cluster.other) == {REFUSED: (1, ids["other"]), "bad JSON": (1, ids["none"])}
    stored = cluster.stored_letters()
    assert stored[ids["own"]]["ml"]["model"]["name"] == cluster.model  # read from the text by the pipeline
    assert "ml" not in stored[ids["none"]]  # a line naming no model is stored as it came
    assert stored[ids["none"]]["message"] == "{not json at all"


def test_values_the_mapping_set_aside_are_counted_per_column_with_the_first_document(cluster: Cluster):
    m = cluster.model
    noisy = prediction(f"{m}-5", cluster.at(5), model=m)
    noisy["log.level"] = "x" * 2000  # not a column: counted apart
    events = [
        prediction(f"{m}-1", cluster.at(1), model=m, amount=1.5),
        prediction(f"{m}-2", cluster.at(2), model=m, amount="abc"),  # not a number where the day began with one
        prediction(f"{m}-3", cluster.at(3), model=m, country="x" * 2000),  # over the keyword limit
        prediction(f"{m}-4", cluster.at(4), model=m, amount="def", country="y" * 1500),
        noisy,
    ]
    assert cluster.ship(events) == [201] * 5  # all stored, four with a value left out of the index
    report = cluster.store.quality(Query(m, cluster.window))
    assert report.lines == 5
    assert _reasons(cluster, m) == {
        "type mismatch in features.amount": (2, f"{m}-2"),  # as the local store names it
        "value too long to index in features.country": (2, f"{m}-3"),
        "value set aside by the mapping": (1, f"{m}-5"),
    }
    first = report.reasons["type mismatch in features.amount"].first
    assert first is not None
    assert first.startswith(PREDICTIONS_INDEX_PREFIX + m)


def test_a_repeated_prediction_id_is_stored_once_and_not_counted(cluster: Cluster):
    """Filebeat creates each prediction with its id as ``_id``: the copy is refused (409), which Filebeat counts
    only in its own metrics; the store has nothing to count (docs/elasticsearch.md says so)."""
    m = cluster.model
    first = prediction(f"{m}-a", cluster.at(1), model=m)
    assert cluster.ship([first, dict(first)]) == [201, 409]
    report = cluster.store.quality(Query(m, cluster.window))
    assert report.lines == 1
    assert report.reasons == {}


def test_setup_gives_the_dead_letters_stored_before_their_model_without_losing_one(cluster: Cluster):
    # a cluster set up before dead letters named their model: its indices run no pipeline
    cluster.client.indices.put_settings(index=f"{DEAD_LETTER_INDEX}-*", settings={"index.default_pipeline": None})
    try:
        _upgrade_keeps_and_attributes(cluster)
    finally:  # a live cluster gets its pipeline back whatever happened
        install(cluster.cfg, default_assets(), wait=60, retry_interval=0.5)


def _upgrade_keeps_and_attributes(cluster: Cluster) -> None:
    own = json.dumps(prediction("p1", cluster.at(5), model=cluster.model))
    ids = [
        cluster.dead_letter("old-own", 5, own, "400"),
        cluster.dead_letter("old-none", 6, "{not json", "json"),
    ]
    before = cluster.stored_letters()
    assert "ml" not in before[ids[0]]
    assert _reasons(cluster, cluster.other) == {REFUSED: (1, ids[0]), "bad JSON": (1, ids[1])}  # every model's

    steps = install(cluster.cfg, default_assets(), wait=60, retry_interval=0.5)
    (step,) = [s for s in steps if s.name.startswith("dead_letter_model")]
    task = step.detail.rsplit("task ", 1)[1]
    if not task.startswith("emulator:"):  # a live cluster runs it in the background
        cluster.client.tasks.get(task_id=task, wait_for_completion=True, timeout="120s")
        cluster.client.indices.refresh(index=f"{DEAD_LETTER_INDEX}-*")

    after = cluster.stored_letters()
    assert set(after) == set(before)  # none lost
    for doc_id in ids:
        assert after[doc_id]["message"] == before[doc_id]["message"]
        assert after[doc_id]["_index"] == before[doc_id]["_index"]  # re-read where they are
    assert after[ids[0]]["ml"]["model"]["name"] == cluster.model
    assert _reasons(cluster, cluster.other) == {"bad JSON": (1, ids[1])}
    assert _reasons(cluster, cluster.model) == {REFUSED: (1, ids[0]), "bad JSON": (1, ids[1])}
    # new dead letters go through the pipeline again
    later = cluster.dead_letter("new-own", 7, own, "400")
    assert cluster.stored_letters()[later]["ml"]["model"]["name"] == cluster.model


@pytest.mark.parametrize(
    "line",
    [
        '{"@timestamp": "2026-11-20T01:00:00Z", "ml": {"prediction_id": "a", "model": {"name": "fraud", "vers',
        '{"ml":{"model":{"name":"fraud-v2","version":"1"}},"event":{"dataset":"ml.prediction"}}',
        '{"ml": {"model" :  {  "name" : "Fraud Model"}}}',
        '{"ml": {"model": {"version": "1", "name": "fraud"}}}',  # name not first: neither store reads it
        '{"ml": {"model": {"name": "with \\"quote"}}}',
        "not json at all",
    ],
)
def test_the_pipeline_reads_the_model_the_local_store_reads_from_a_line_it_sets_aside(line: str):
    import re

    from analyzers.store.elastic.pipelines import dead_letter_pipeline
    from analyzers.store.jsonparse import _MODEL_RE
    from tests.es_ingest import Pipelines

    ingest = Pipelines()
    ingest.put("ml-deadletter", dead_letter_pipeline())
    stored = ingest.run("ml-deadletter", {"message": line})
    local = re.search(_MODEL_RE, line)
    assert stored.get("ml", {}).get("model", {}).get("name") == (local.group(1) if local else None)
    assert stored["message"] == line
