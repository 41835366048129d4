"""``/metrics`` over HTTP: prometheus-client's server on its own registry, started and stopped with the scheduler."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from analyzers.config.models import Config
from analyzers.metrics.collector import PredwatchCollector
from analyzers.metrics.samples import Limits
from analyzers.store.base import FindingStore, StateStore

log = logging.getLogger("predwatch.metrics")


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint: where it listens, and how to stop it."""

    server: WSGIServer
    thread: Thread
    address: str

    @property
    def port(self) -> int:
        """The port it listens on (the one the system chose when 0 was asked for)."""
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(
    findings: FindingStore, state: StateStore, config: Config, *, port: int, address: str
) -> MetricsServer:
    """Serve predwatch's metrics (and the process's own ``process_*``) on ``address:port``; ``ValueError``
    names the setting when the port or address cannot be used."""
    registry = CollectorRegistry(auto_describe=False)
    settings = config.scheduler
    limits = Limits(
        max_columns=settings.metrics_max_columns,
        max_groups=settings.metrics_max_groups,
        max_versions=settings.metrics_max_versions,
    )
    registry.register(PredwatchCollector(findings, state, config, limits))
    ProcessCollector(registry=registry)
    try:
        server, thread = start_http_server(port, addr=address, registry=registry)
    except OSError as exc:  # a port in use, an address not of this host: say which setting
        raise ValueError(
            f"cannot serve metrics on {address}:{port} (scheduler.metrics_address, scheduler.metrics_port): {exc}"
        ) from exc
    served = MetricsServer(server, thread, address)
    log.info("serving metrics", extra={"predwatch": {"url": served.url}})
    return served


@contextlib.contextmanager
def metrics_server(
    findings: FindingStore, state: StateStore, config: Config, *, port: int | None, address: str
) -> Iterator[MetricsServer | None]:
    """A metrics server for the duration of a ``with`` block, or nothing when ``port`` is ``None``."""
    if port is None:
        yield None
        return
    served = start_metrics_server(findings, state, config, port=port, address=address)
    try:
        yield served
    finally:
        served.close()
