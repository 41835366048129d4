"""The behaviour every ``Store`` must have, written only against the public ``Store`` interface.

``all_events`` are the shared fixture events; an adapter under test holds exactly them (the
local store as daily log files, Elasticsearch as daily indices the way Filebeat ships them).
``StoreContract`` holds the tests; a test module subclasses it and provides the ``subject``
fixture: the store and the model name the events were written under.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pytest

from analyzers.findings import DriftMetrics, Finding, Signal
from analyzers.store import ConflictError, Query, Store
from analyzers.store.base import ROW_COLUMNS
from analyzers.timeutil import Window

DAY1 = Window("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z")
DAY2 = Window("2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z")
DAY3 = Window("2026-11-22T00:00:00Z", "2026-11-23T00:00:00Z")
VALUES_DAY = Window("2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z")


def prediction(
    pid: str,
    ts: str,
    *,
    amount=1.0,
    country="DE",
    label=1,
    score=0.5,
    region="EU",
    rate=None,
    outcome="success",
    model="fraud",
    entity="u1",
    latency=10.0,
) -> dict:
    """A prediction event with one numeric and one categorical feature, a group and a label."""
    ml = {
        "prediction_id": pid,
        "model": {"name": model, "version": "v1"},
        "entity_id": entity,
        "features": {"amount": amount, "country": country},
        "prediction": {"label": label, "score": score},
        "groups": {"region": region},
        "latency_ms": latency,
    }
    if rate is not None:
        ml["sample_rate"] = rate
    event = {"dataset": "ml.prediction", "kind": "event", "outcome": outcome}
    line = {"@timestamp": ts, "log.level": "info", "message": "prediction", "event": event, "ml": ml}
    if outcome == "failure":
        line["error"] = {"type": "ValueError", "message": "bad input"}
    return line


def feedback(pid: str, ts: str, label, model="fraud") -> dict:
    """A feedback event: the ground truth of prediction ``pid``."""
    return {
        "@timestamp": ts,
        "event": {"dataset": "ml.feedback", "kind": "event"},
        "ml": {"prediction_id": pid, "model": {"name": model}, "label": label},
    }


def day3_events(model: str) -> list[dict]:
    """Day 3: v1, v2, v3 with values of every JSON type (the value contract) and their feedback the same day."""
    values = [
        ("v1", {"code": "1", "flag": True, "tags": ["a", "b"], "amount": 1}, 1),
        ("v2", {"code": 1, "flag": False, "tags": {"k": 1}, "amount": 1.0}, 1.0),
        ("v3", {"code": None, "amount": 2.5}, 0),
    ]
    events = []
    for i, (pid, features, label) in enumerate(values, start=1):
        event = prediction(pid, f"2026-11-22T0{i}:00:00Z", model=model)
        event["ml"]["features"] = features
        event["ml"]["prediction"]["label"] = label
        events.append(event)
    return events + [feedback(pid, "2026-11-22T09:00:00Z", label, model=model) for pid, _, label in values]


def value_events(model: str) -> list[dict]:
    """The value contract's cases, on a day of their own: booleans, integers and floats (2.0 among them),
    strings that look like numbers, nulls and absent values, arrays; the labels are booleans."""

    def event(pid: str, hour: int, features: dict, prediction: bool, groups: dict) -> dict:
        line = prediction_line(pid, f"2026-11-25T{hour:02d}:00:00Z", model)
        line["ml"].update(features=features, prediction={"label": prediction}, groups=groups)
        return line

    return [
        event("t1", 1, {"flag": True, "n_items": 3, "ratio": 0.5, "code": "1", "tags": ["a", "b"]}, True, {"tier": 1}),
        event("t2", 2, {"flag": False, "n_items": 4, "ratio": 2.0, "code": "01234", "note": None}, False, {"tier": 2}),
        event(
            "t3",
            3,
            {"flag": True, "n_items": 5, "ratio": 1.5, "code": "1", "tags": ["c", "d"], "note": "x"},
            False,
            {"tier": 1},
        ),
        feedback("t1", "2026-11-25T05:00:00Z", True, model=model),
        feedback("t2", "2026-11-25T06:00:00Z", False, model=model),
    ]


def prediction_line(pid: str, ts: str, model: str) -> dict:
    """A bare prediction event (no features, prediction or groups yet)."""
    return {
        "@timestamp": ts,
        "event": {"dataset": "ml.prediction", "kind": "event", "outcome": "success"},
        "ml": {"prediction_id": pid, "model": {"name": model, "version": "v1"}},
    }


def all_events(model: str, other: str) -> list[dict]:
    """What the contract suite's stores hold: :func:`contract_events` and, on day 6, :func:`value_events`."""
    return [*contract_events(model, other), *value_events(model)]


def contract_events(model: str, other: str) -> list[dict]:
    """Day 1 holds a, b, c (rate 0.5), a again, failure f and one event of ``other``; feedback of a and b
    arrives on days 1, 2 and 4 (a's latest label is 1); day 2 holds prediction d; day 3 the value events."""
    return [
        prediction("a", "2026-11-20T01:00:00Z", amount=1.0, model=model),
        prediction("b", "2026-11-20T02:00:00.500Z", amount=2.0, country="FR", region="US", label=0, model=model),
        prediction("c", "2026-11-20T03:00:00Z", amount=3.0, rate=0.5, model=model),
        prediction("a", "2026-11-20T04:00:00Z", amount=99.0, model=model),
        prediction("f", "2026-11-20T05:00:00Z", outcome="failure", model=model),
        prediction("x", "2026-11-20T06:00:00Z", model=other),
        feedback("a", "2026-11-20T09:00:00Z", 0, model=model),
        prediction("d", "2026-11-21T01:00:00Z", amount=4.0, model=model),
        feedback("b", "2026-11-21T02:00:00Z", 0, model=model),
        feedback("a", "2026-11-23T02:00:00Z", 1, model=model),
        *day3_events(model),
    ]


@dataclass(frozen=True)
class Subject:
    """A store holding ``all_events(model, ...)``."""

    store: Store
    model: str


class StoreContract:
    """Every adapter answers the same questions about the contract events the same way."""

    def test_window_reads_only_its_days_and_weights_by_sample_rate(self, subject: Subject):
        store, q = subject.store, Query(subject.model, DAY1)
        assert store.count(q) == 1 + 1 + 2 + 1  # a, b, c (rate 0.5 weighs 2), f; not d, not the other model
        assert store.count(q.with_(outcome="success")) == 4
        assert store.count(Query(subject.model, DAY2)) == 1

    def test_sample_size_gives_rows_and_squared_weights_beside_the_weighted_count(self, subject: Subject):
        size = subject.store.sample_size(Query(subject.model, DAY1))
        assert (size.weighted, size.squares, size.rows) == (5.0, 1 + 1 + 4 + 1, 4.0)  # c at rate 0.5 weighs 2
        assert size.effective == pytest.approx(25 / 7)
        assert subject.store.sample_size(Query(subject.model, DAY1, outcome="failure")).rows == 1.0

    def test_crosstab_sums_squared_weights_per_combination(self, subject: Subject):
        q = Query(subject.model, DAY1, outcome="success")
        table = subject.store.crosstab(q, ["features.country"])
        rows = {r[0]: (r[1], r[2]) for r in table[["features.country", "count", "weight_sq"]].itertuples(index=False)}
        assert rows == {"DE": (3.0, 5.0), "FR": (1.0, 1.0)}  # DE: a (weight 1) and c (weight 2)

    def test_duplicate_prediction_ids_count_once(self, subject: Subject):
        rows = next(subject.store.rows(Query(subject.model, DAY1), columns=["prediction_id", "features.amount"]))
        assert sorted(rows["prediction_id"]) == ["a", "b", "c", "f"]
        assert rows.loc[rows["prediction_id"] == "a", "features.amount"].item() == 1.0  # first copy kept

    def test_feedback_from_later_days_is_joined_latest_wins(self, subject: Subject):
        store, q = subject.store, Query(subject.model, DAY1)
        rows = next(store.rows(q, columns=["prediction_id", "label"]))
        labels = dict(zip(rows["prediction_id"], rows["label"], strict=False))
        assert labels["a"] == 1
        assert labels["b"] == 0
        assert np.isnan(labels["c"])  # numeric column: NaN when missing
        assert store.count(q.with_(has_label=True)) == 2
        assert store.count(q.with_(has_label=False)) == 3

    def test_columns_kinds(self, subject: Subject):
        kinds = {c.name: c.kind for c in subject.store.columns(Query(subject.model, DAY1))}
        assert kinds["features.amount"] == "numeric"
        assert kinds["features.country"] == "categorical"
        assert kinds["groups.region"] == "categorical"
        assert kinds["score"] == "numeric"
        assert "label" in kinds

    def test_count_filters_on_groups(self, subject: Subject):
        assert subject.store.count(Query(subject.model, DAY1, groups={"region": ("US",)})) == 1

    def test_category_counts(self, subject: Subject):
        q = Query(subject.model, DAY1, outcome="success")
        assert subject.store.category_counts(q, "features.country") == {"DE": 3.0, "FR": 1.0}

    def test_histogram_counts_bins_underflow_and_overflow(self, subject: Subject):
        q = Query(subject.model, DAY1, outcome="success")
        hist = subject.store.histogram(q, "features.amount", [0, 1.5, 2.5, 10])
        assert hist.counts.tolist() == [1.0, 1.0, 2.0]
        assert hist.missing == 0
        hist = subject.store.histogram(q, "features.amount", [1.5, 2.5])
        assert (hist.underflow, hist.counts.tolist(), hist.overflow) == (1.0, [1.0], 2.0)

    def test_numeric_summary_is_weighted(self, subject: Subject):
        summary = subject.store.numeric_summary(Query(subject.model, DAY1, outcome="success"), "features.amount")
        assert summary.count == 4
        assert summary.mean == pytest.approx((1 + 2 + 3 * 2) / 4)

    def test_quantiles_span_the_values(self, subject: Subject):
        q = Query(subject.model, DAY1, outcome="success")
        low, mid, top = subject.store.quantiles(q, "features.amount", [0.0, 0.5, 1.0])  # may be approximate
        assert (low, top) == (1.0, 3.0)
        assert 1.0 <= mid <= 3.0

    def test_crosstab_counts_per_combination(self, subject: Subject):
        q = Query(subject.model, DAY1, outcome="success")
        tab = subject.store.crosstab(q, ["groups.region", "prediction", "label"])
        eu = tab[(tab["groups.region"] == "EU") & (tab["label"] == 1)]
        assert eu["count"].sum() == 1.0

    def test_volume_buckets_include_empty_ones(self, subject: Subject):
        vol = subject.store.volume(Query(subject.model, DAY1), timedelta(hours=6))
        assert vol["count"].tolist() == [5.0, 0.0, 0.0, 0.0]
        assert vol["failures"].tolist() == [1.0, 0.0, 0.0, 0.0]
        assert str(vol["start"].iloc[1]) == "2026-11-20 06:00:00+00:00"

    def test_bucketed_histograms_split_by_time_and_value(self, subject: Subject):
        q = Query(subject.model, DAY1, outcome="success")
        # a (01:00, amount 1, prediction 1), b (02:00, 2, 0), c (03:00, 3, 1, weight 2): buckets of two hours
        hist = subject.store.bucketed_histograms(
            q, "features.amount", [0, 1.5, 2.5], bucket=timedelta(hours=2), by="prediction"
        )
        assert hist.keys == [0, 1]
        assert hist.counts.shape == (12, 2, 4)
        assert str(hist.starts[1]) == "2026-11-20 02:00:00+00:00"
        assert hist.counts[0, 1].tolist() == [0.0, 1.0, 0.0, 0.0]  # a
        assert hist.counts[1, 0].tolist() == [0.0, 0.0, 1.0, 0.0]  # b
        assert hist.counts[1, 1].tolist() == [0.0, 0.0, 0.0, 2.0]  # c, weighted, above the last edge
        assert hist.weight_sq[1, 1].tolist() == [0.0, 0.0, 0.0, 4.0]  # c alone, logged at rate 0.5
        assert hist.counts[2:].sum() == 0.0
        assert hist.missing.sum() == 0.0

    def test_bucketed_histograms_without_by_hold_every_row(self, subject: Subject):
        hist = subject.store.bucketed_histograms(
            Query(subject.model, DAY1), "features.amount", [0, 1.5, 5], bucket=timedelta(days=1)
        )
        assert hist.keys == [None]
        assert hist.counts.tolist() == [[[0.0, 2.0, 3.0, 0.0]]]  # a's and f's 1, then b's 2 and c's 3 (weight 2)
        assert hist.missing.tolist() == [[0.0]]

    def test_bucketed_histograms_of_labelled_and_unlabelled_predictions(self, subject: Subject):
        store, q = subject.store, Query(subject.model, DAY1)
        edges, bucket = [0, 1.5, 5], timedelta(hours=3)
        # labelled: a (01:00, amount 1, label 1), b (02:00, 2, label 0); not: c (03:00, 3, weight 2), f (05:00, 1)
        labelled = store.bucketed_histograms(
            q.with_(has_label=True), "features.amount", edges, bucket=bucket, by="label"
        )
        assert labelled.keys == [0, 1]
        assert labelled.counts[0].tolist() == [[0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]]
        assert labelled.counts[1:].sum() == 0.0
        unlabelled = store.bucketed_histograms(
            q.with_(has_label=False), "features.amount", edges, bucket=bucket, by="prediction"
        )
        assert unlabelled.keys == [1]
        assert unlabelled.counts[:2, 0].tolist() == [[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 2.0, 0.0]]
        assert unlabelled.weight_sq[1, 0].tolist() == [0.0, 1.0, 4.0, 0.0]
        everyone = store.bucketed_histograms(q, "features.amount", edges, bucket=bucket, by="label")
        assert everyone.keys == [0, 1, None]
        assert everyone.counts[1, 2].tolist() == [0.0, 1.0, 2.0, 0.0]
        assert everyone.counts[0, :2].tolist() == labelled.counts[0].tolist()

    def test_sample_is_bounded_and_reproducible(self, subject: Subject):
        store, q = subject.store, Query(subject.model, DAY1)
        one = store.sample(q, 2, seed=3)
        assert len(one) == 2
        assert one["prediction_id"].tolist() == store.sample(q, 2, seed=3)["prediction_id"].tolist()
        assert len(store.sample(q, 100)) == 4

    def test_rows_are_chunked_ordered_with_the_documented_columns(self, subject: Subject):
        chunks = list(subject.store.rows(Query(subject.model, DAY1), chunk_size=2))
        assert [len(c) for c in chunks] == [2, 2]
        assert [p for c in chunks for p in c["prediction_id"]] == ["a", "b", "c", "f"]
        assert str(chunks[0]["timestamp"].dt.tz) == "UTC"
        assert list(chunks[0].columns) == [*ROW_COLUMNS, "features.amount", "features.country", "groups.region"]

    def test_findings_round_trip_and_idempotent(self, subject: Subject):
        store, model = subject.store, subject.model
        f = Finding(
            model,
            "drift",
            DAY1,
            "alert",
            DriftMetrics(n_cur=100, share_drifted=0.5),
            signals=[Signal("feature:amount", "drifted", value=0.3)],
        )
        store.write_findings([f])
        store.write_findings([f])
        back = store.read_findings(model=model)
        assert len(back) == 1
        assert back[0].signals[0].subject == "feature:amount"
        assert store.read_findings(model=model, job="ops") == []

    def test_state_optimistic_concurrency(self, subject: Subject):
        store, key = subject.store, f"alert:{subject.model}:drift:feature:amount"
        v1 = store.put_state(key, {"firing": True})
        with pytest.raises(ConflictError):
            store.put_state(key, {"firing": True})
        v2 = store.put_state(key, {"firing": False}, version=v1)
        with pytest.raises(ConflictError):
            store.put_state(key, {"x": 1}, version=v1)
        doc, version = store.get_state(key)
        assert doc == {"firing": False}
        assert version == v2
        assert list(store.list_state(f"alert:{subject.model}:")) == [key]
        store.delete_state(key, version=v2)
        assert store.get_state(key) is None

    def test_labelled_and_unlabelled_predictions_answer_every_question(self, subject: Subject):
        store, q = subject.store, Query(subject.model, DAY1)
        labelled, unlabelled = q.with_(has_label=True), q.with_(has_label=False)
        assert sorted(next(store.rows(unlabelled, columns=["prediction_id"]))["prediction_id"]) == ["c", "f"]
        assert sorted(store.sample(labelled, 10, columns=["prediction_id"])["prediction_id"]) == ["a", "b"]
        assert store.category_counts(unlabelled, "features.country") == {"DE": 3.0}  # c weighs 2
        assert store.histogram(unlabelled, "features.amount", [0, 10]).counts.tolist() == [3.0]
        tab = store.crosstab(labelled, ["prediction", "label"])
        cells = tab[["prediction", "label", "count"]].itertuples(index=False, name=None)
        assert {(p, y): c for p, y, c in cells} == {(1, 1): 1.0, (0, 0): 1.0}

    # ---- the value contract: the same lines give the same Python values from every store -------------------
    def test_booleans_stay_booleans(self, subject: Subject):
        counts = subject.store.category_counts(Query(subject.model, VALUES_DAY), "features.flag")
        assert counts == {True: 2.0, False: 1.0}
        assert {type(k) for k in counts} == {bool}

    def test_strings_that_look_like_numbers_stay_strings(self, subject: Subject):
        counts = subject.store.category_counts(Query(subject.model, VALUES_DAY), "features.code")
        assert counts == {"1": 2.0, "01234": 1.0}
        assert {type(k) for k in counts} == {str}

    def test_integer_categories_stay_integers(self, subject: Subject):
        counts = subject.store.category_counts(Query(subject.model, VALUES_DAY), "groups.tier")
        assert counts == {1: 2.0, 2: 1.0}
        assert {type(k) for k in counts} == {int}

    def test_integers_and_floats_are_numbers_and_equal_keys(self, subject: Subject):
        store, q = subject.store, Query(subject.model, VALUES_DAY)
        kinds = {c.name: c.kind for c in store.columns(q)}
        assert kinds["features.n_items"] == "numeric"
        assert kinds["features.ratio"] == "numeric"
        assert store.category_counts(q, "features.ratio") == {0.5: 1.0, 2: 1.0, 1.5: 1.0}
        assert store.numeric_summary(q, "features.ratio").max == 2.0

    def test_booleans_and_strings_make_categorical_columns(self, subject: Subject):
        kinds = {c.name: c.kind for c in subject.store.columns(Query(subject.model, VALUES_DAY))}
        assert kinds["features.flag"] == "categorical"
        assert kinds["features.code"] == "categorical"
        assert kinds["groups.tier"] == "categorical"
        assert kinds["prediction"] == "categorical"
        assert kinds["label"] == "categorical"

    def test_nulls_and_absent_values_are_none(self, subject: Subject):
        counts = subject.store.category_counts(Query(subject.model, VALUES_DAY), "features.note")
        assert counts == {None: 2.0, "x": 1.0}

    def test_arrays_are_their_compact_json_text(self, subject: Subject):
        store, q = subject.store, Query(subject.model, VALUES_DAY)
        assert store.category_counts(q, "features.tags") == {'["a","b"]': 1.0, '["c","d"]': 1.0, None: 1.0}
        rows = next(store.rows(q, columns=["prediction_id", "features.tags"]))
        assert rows["features.tags"].tolist() == ['["a","b"]', None, '["c","d"]']

    def test_rows_keep_the_logged_types(self, subject: Subject):
        columns = ["prediction_id", "features.flag", "features.code", "groups.tier", "prediction", "label"]
        rows = next(subject.store.rows(Query(subject.model, VALUES_DAY), columns=columns))
        assert rows["features.flag"].tolist() == [True, False, True]
        assert rows["features.code"].tolist() == ["1", "01234", "1"]
        assert rows["groups.tier"].tolist() == [1, 2, 1]
        assert rows["prediction"].tolist() == [True, False, False]
        assert rows["label"].tolist() == [True, False, None]
        assert [type(v) for v in rows["features.flag"]] == [bool, bool, bool]

    def test_boolean_predictions_and_labels_cross_as_booleans(self, subject: Subject):
        tab = subject.store.crosstab(Query(subject.model, VALUES_DAY), ["prediction", "label"])
        counts = {(p, y): c for p, y, c in tab[["prediction", "label", "count"]].itertuples(index=False, name=None)}
        assert counts == {(True, True): 1.0, (False, False): 1.0, (False, None): 1.0}

    # ---- the value contract ---------------------------------------------------------------
    def test_strings_numbers_and_booleans_keep_their_json_type(self, subject: Subject):
        store, q = subject.store, Query(subject.model, DAY3)
        codes = store.category_counts(q, "features.code")
        assert codes == {"1": 1.0, 1: 1.0, None: 1.0}  # "1" stays a string, 1 an int
        assert sorted(type(k).__name__ for k in codes if k is not None) == ["int", "str"]
        flags = store.category_counts(q, "features.flag")
        assert flags == {True: 1.0, False: 1.0, None: 1.0}
        assert all(isinstance(k, bool) for k in flags if k is not None)

    def test_arrays_and_objects_are_categories_of_their_compact_json(self, subject: Subject):
        store, q = subject.store, Query(subject.model, DAY3)
        assert store.category_counts(q, "features.tags") == {'["a","b"]': 1.0, '{"k":1}': 1.0, None: 1.0}
        assert {c.name: c.kind for c in store.columns(q)}["features.tags"] == "categorical"
        assert store.quality(q).reasons["nested value in features.tags"].count == 2

    def test_integers_and_fractions_are_equal_keys(self, subject: Subject):
        store, q = subject.store, Query(subject.model, DAY3)
        assert store.category_counts(q, "features.amount") == {1: 2.0, 2.5: 1.0}
        table = store.crosstab(q, ["prediction", "label"])
        cells = {(p, y): c for p, y, c in zip(table["prediction"], table["label"], table["count"], strict=True)}
        assert cells == {(1, 1): 2.0, (0, 0): 1.0}  # 1 and 1.0 never split a confusion matrix

    def test_quality_counts_the_lines_of_a_window(self, subject: Subject):
        report = subject.store.quality(Query(subject.model, DAY1))
        assert report.lines >= 5  # a, b, c, f and a's repeat (which Elasticsearch stores once)
        assert all(r.count > 0 for r in report.reasons.values())
        assert all(r.first is None or isinstance(r.first, str) for r in report.reasons.values())
        assert report.to_dict()["set_aside"] == sum(r.count for r in report.reasons.values())
