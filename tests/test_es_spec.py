"""The specification check itself: what it lets through and what it stops (``es_spec.py``)."""

from __future__ import annotations

import pytest

from analyzers.store.elastic import templates
from tests.es_spec import Spec


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec()


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"aggregations": {"a": {"terms": {"field": "x", "sizee": 3}}}}, "'sizee' was unexpected"),
        ({"aggregations": {"a": {"termz": {"field": "x"}}}}, "['aggregations']['a']"),
        ({"query": {"bool": {"filtre": []}}}, "'filtre' was unexpected"),
        ({"aggregations": {"r": {"range": {"field": "y", "ranges": [{"from": 1, "too": 2}]}}}}, "'too' was unexpected"),
        ({"sort": [{"a": {"order": "asc"}}], "collaps": {"field": "a"}}, "'collaps' was unexpected"),
    ],
)
def test_a_misspelled_key_fails(spec: Spec, body: dict, where: str) -> None:
    problems = spec.check("POST", "/ml-predictions-fraud-*/_search", {}, body)
    assert any(where in p for p in problems), problems


def test_an_unknown_parameter_or_operation_fails(spec: Spec) -> None:
    assert spec.check("POST", "/i/_search", {"ignore_unavailible": "true"}, {"size": 0})
    assert spec.check("POST", "/i/_search", {"allow_partial_search_results": "perhaps"}, {"size": 0})
    assert spec.check("POST", "/i/_searchh", {}, {"size": 0})


def test_the_generated_templates_and_policies_conform(spec: Spec) -> None:
    for name, body in templates.index_templates().items():
        assert spec.check("PUT", f"/_index_template/{name}", {}, body) == []
    for name, body in templates.policies().items():
        assert spec.check("PUT", f"/_ilm/policy/{name}", {}, body) == []
    bad = templates.index_template()
    bad["template"]["mappings"]["dynamic_templates"][0]["ml_cells_strings"]["match_mapping_typ"] = "string"
    assert spec.check("PUT", "/_index_template/ml-predictions", {}, bad)
