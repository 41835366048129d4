"""Record the answers the request tests (``test_store_elastic.py``) replay, from the emulator holding the contract
suite's events under the templates ``predwatch setup`` installs:

    python -m tests.record_es_answers

Each answer is what the emulator (``tests/es_emulator.py``) gave the store's own request; the shapes are those
of Elasticsearch 8's reference documentation.  Error answers, which the emulator does not produce the way a
cluster does (a deleted index under a point in time, credentials refused, overload, an older version), are
written by hand from the documentation and not touched here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from analyzers.store import Query
from analyzers.store.elastic import ElasticsearchStore, limits
from tests import live_es
from tests.store_contract import DAY1, VALUES_DAY, all_events

# Dead letters as Filebeat writes them (the event's time, its text, ``error.type``), in the contract's first day:
# a line naming no model, and two refused documents, of the contract's model and of the other one (the
# dead-letter pipeline reads their model from the text).
DEAD_LETTERS = [
    ("r0", {"@timestamp": "2026-11-20T01:00:00Z", "message": "{not json", "error": {"type": "json"}}),
    (
        "r1",
        {
            "@timestamp": "2026-11-20T02:00:00Z",
            "message": '{"ml": {"model": {"name": "fraud"}}}',
            "error": {"type": "400"},
        },
    ),
    (
        "r2",
        {
            "@timestamp": "2026-11-20T03:00:00Z",
            "message": '{"ml": {"model": {"name": "other"}}}',
            "error": {"type": "400"},
        },
    ),
]

HERE = Path(__file__).resolve().parent / "recorded_es"


def _bucketed(store: Any, model: str) -> Any:
    """Per two hours and logged class, ``features.amount`` over three edges (two composite pages when the
    recording shrinks ``MAX_BUCKETS``)."""
    return store.bucketed_histograms(
        Query(model, DAY1, outcome="success"),
        "features.amount",
        [0, 1.5, 2.5],
        bucket=timedelta(hours=2),
        by="prediction",
    )


# file -> (what the store is asked, which of its requests' answers: method, path pattern, nth match)
SCENARIOS: dict[str, tuple[Callable[[ElasticsearchStore, str], Any], str, str, int]] = {
    "field_caps_window": (lambda s, m: s.columns(Query(m, DAY1)), "POST", r".*/_field_caps", 0),
    "search_count": (lambda s, m: s.count(Query(m, DAY1)), "POST", r"/ml-predictions-[^,]*/_search", 0),
    "search_window_facts": (
        lambda s, m: s.count(Query(m, DAY1, has_label=True)),
        "POST",
        r"/ml-predictions-.*,ml-feedback-.*/_search",
        0,
    ),
    "search_feedback_scan": (lambda s, m: s.count(Query(m, DAY1, has_label=True)), "POST", r"/_search", 0),
    "search_lookup": (
        lambda s, m: s.count(Query(m, DAY1, has_label=True)),
        "POST",
        r"/ml-predictions-[^,]*/_search",
        0,
    ),
    "search_profile": (lambda s, m: s.columns(Query(m, DAY1)), "POST", r"/ml-predictions-.*,ml-feedback-.*/_search", 0),
    "field_caps_values": (lambda s, m: s.columns(Query(m, VALUES_DAY)), "POST", r".*/_field_caps", 0),
    "search_profile_values": (
        lambda s, m: s.columns(Query(m, VALUES_DAY)),
        "POST",
        r"/ml-predictions-.*,ml-feedback-.*/_search",
        0,
    ),
    "search_scan_tags": (
        lambda s, m: s.category_counts(Query(m, VALUES_DAY), "features.tags"),
        "POST",
        r"/_search",
        0,
    ),
    "search_histograms": (
        lambda s, m: s.histograms(Query(m, DAY1, outcome="success"), {"features.amount": [0, 1.5, 2.5, 10]}),
        "POST",
        r"/ml-predictions-[^,]*/_search",
        0,
    ),
    "search_percentiles_two_rates": (
        lambda s, m: s.quantiles(Query(m, DAY1, outcome="success"), "features.amount", [0.0, 0.5, 1.0]),
        "POST",
        r"/ml-predictions-[^,]*/_search",
        0,
    ),
    "search_composite_page1": (
        lambda s, m: s.crosstab(Query(m, DAY1), ["groups.region", "prediction"]),
        "POST",
        r"/ml-predictions-[^,]*/_search",
        0,
    ),
    "search_composite_page2": (
        lambda s, m: s.crosstab(Query(m, DAY1), ["groups.region", "prediction"]),
        "POST",
        r"/ml-predictions-[^,]*/_search",
        1,
    ),
    "search_composite_booleans": (
        lambda s, m: s.crosstab(Query(m, VALUES_DAY), ["features.flag", "prediction"]),
        "POST",
        r"/ml-predictions-[^,]*/_search",
        0,
    ),
    "search_date_histogram": (
        lambda s, m: s.volume(Query(m, DAY1), timedelta(hours=6)),
        "POST",
        r"/ml-predictions-[^,]*/_search",
        0,
    ),
    "search_rows_page1": (
        lambda s, m: list(s.rows(Query(m, DAY1), columns=["prediction_id", "features.amount", "features.country"])),
        "POST",
        r"/_search",
        0,
    ),
    "search_rows_page2": (
        lambda s, m: list(s.rows(Query(m, DAY1), columns=["prediction_id", "features.amount", "features.country"])),
        "POST",
        r"/_search",
        1,
    ),
    "search_rows_page3": (
        lambda s, m: list(s.rows(Query(m, DAY1), columns=["prediction_id", "features.amount", "features.country"])),
        "POST",
        r"/_search",
        2,
    ),
    "search_sample": (
        lambda s, m: s.sample(Query(m, DAY1), 3, seed=7, columns=["prediction_id", "features.country"]),
        "POST",
        r"/ml-predictions-[^,]*/_search",
        0,
    ),
    "search_bucketed_page1": (
        _bucketed,
        "POST",
        r"/ml-predictions-[^,]*/_search",
        0,
    ),
    "search_bucketed_page2": (
        _bucketed,
        "POST",
        r"/ml-predictions-[^,]*/_search",
        1,
    ),
    "search_lines": (lambda s, m: s.quality(Query(m, DAY1)), "POST", r"/ml-predictions-.*,ml-feedback-.*/_search", 0),
    "search_deadletters_of_model": (lambda s, m: s.quality(Query(m, DAY1)), "POST", r"/ml-deadletter/_search", 0),
    "stats_deadletter": (lambda s, m: s.dead_letters(DAY1), "GET", r"/ml-deadletter/_stats/docs,store", 0),
    "search_deadletters": (lambda s, m: s.dead_letters(DAY1), "POST", r"/ml-deadletter/_search", 0),
}


def record() -> list[Path]:
    written = []
    defaults = (limits.COMPOSITE_PAGE, limits.PAGE, limits.MAX_BUCKETS)
    for name, (ask, method, pattern, nth) in SCENARIOS.items():
        # pages of two, so that the paging tests have a second page to ask for
        limits.COMPOSITE_PAGE = 2 if "composite_page" in name else defaults[0]
        limits.PAGE = 2 if "rows_page" in name else defaults[1]
        limits.MAX_BUCKETS = 12 if "bucketed_page" in name else defaults[2]  # two composite buckets a page
        with live_es.emulated(all_events) as (store, model, emulator):
            for doc_id, letter in DEAD_LETTERS:
                emulator.put_doc("ml-deadletter", doc_id, letter, "index", {})
            ask(store, model)
            answers = [
                answer
                for request, answer in zip(emulator.requests, emulator.answers, strict=True)
                if request.method == method and re.fullmatch(pattern, request.path)
            ]
        status, body = answers[nth]
        assert status == 200, (name, body)
        path = HERE / f"{name}.json"
        path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    limits.COMPOSITE_PAGE, limits.PAGE, limits.MAX_BUCKETS = defaults
    return written


if __name__ == "__main__":
    for path in record():
        print(path)
