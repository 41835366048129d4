"""Shared test machinery: every request the Elasticsearch store and ``predwatch setup`` send to a local stand-in
is checked against Elasticsearch's official OpenAPI specification (``es_spec.py``), and counted."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from tests import es_spec


class SentRequest(Protocol):
    method: str
    path: str
    params: dict[str, str]
    body: Any


def check_requests(requests: Iterable[SentRequest]) -> None:
    """Fail with every way these requests depart from the specification."""
    spec = es_spec.shared()
    problems = [p for r in list(requests) for p in spec.check(r.method, r.path, r.params, r.body)]
    assert not problems, "requests the Elasticsearch specification does not allow:\n" + "\n".join(problems[:20])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if es_spec.validated():
        terminalreporter.write_line(
            f"Elasticsearch requests checked against the 8.17 OpenAPI specification: {es_spec.validated()}"
        )
