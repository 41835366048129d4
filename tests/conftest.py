"""Shared test machinery: every request the Elasticsearch store and ``predwatch setup`` send to a local stand-in
is checked against Elasticsearch's official OpenAPI specification (``es_spec.py``), and counted; a Slack
stand-in per test; a local store over a test's folder."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from analyzers.store import LocalStore
from tests import es_spec
from tests.slack_server import FakeSlack


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


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A Slack stand-in on 127.0.0.1 for one test."""
    server = FakeSlack()
    yield server
    server.close()


def store_at(tmp_path: Path) -> LocalStore:
    """A local store over ``tmp_path/logs`` (created), its state in ``tmp_path/state``."""
    (tmp_path / "logs").mkdir(exist_ok=True)
    return LocalStore(tmp_path / "logs", tmp_path / "state")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if es_spec.validated():
        terminalreporter.write_line(
            f"Elasticsearch requests checked against the 8.17 OpenAPI specification: {es_spec.validated()}"
        )
