"""The Prometheus collector: at every scrape, the store's latest findings, heartbeats, alerts, outbox and delivery
counts.

Everything is read through the store's ports at scrape time (``FindingStore`` for findings, ``StateStore``
for the rest), so the numbers are the stored ones, whichever process wrote them (the scheduler, or
``predwatch analyze`` from a cron job).  The latest finding of each configured job is read once over
``FINDINGS_LOOKBACK``, then only from the window end already seen, so a scrape costs a small read per job.
A store that cannot be read gives ``predwatch_store_up 0`` and the rest of what could be read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from analyzers.alerts.outbox import OUTBOX_PREFIX
from analyzers.alerts.routing import channel_names
from analyzers.alerts.state import STATE_PREFIX
from analyzers.alerts.tally import TALLY_PREFIX, tallies
from analyzers.config.models import Config
from analyzers.findings import Finding
from analyzers.metrics.catalogue import METRICS
from analyzers.metrics.samples import (
    Limits,
    Sample,
    alert_samples,
    delivery_samples,
    finding_samples,
    heartbeat_samples,
    outbox_samples,
    sample,
    versions_left_out,
)
from analyzers.store.base import FindingStore, StateStore, StoreError
from analyzers.timeutil import utcnow

log = logging.getLogger("predwatch.metrics")
HEARTBEAT_PREFIX = "heartbeat:"  # the scheduler's heartbeat documents (analyzers.scheduler.heartbeat_key)
FINDINGS_LOOKBACK = timedelta(days=30)  # how far back the first scrape looks for a job's latest finding


def predwatch_version() -> str:
    """The installed predwatch's version."""
    try:
        return version("predwatch")
    except PackageNotFoundError:
        return "unknown"


class PredwatchCollector(Collector):
    """Turns the stored state into metric families on each scrape (see the module docstring)."""

    def __init__(self, findings: FindingStore, state: StateStore, config: Config, limits: Limits) -> None:
        self.findings = findings
        self.state = state
        self.config = config
        self.limits = limits
        self._latest: dict[tuple[str, str], Finding] = {}
        self._lock = threading.Lock()

    def jobs(self) -> list[tuple[str, str]]:
        """(model, job) of every configured, enabled job."""
        return [(model, job) for model, mc in self.config.models.items() for job in mc.jobs()]

    def latest(self, model: str, job: str) -> Finding | None:
        """The job's latest stored finding (by window end), read from where the last scrape left off."""
        known = self._latest.get((model, job))
        since = known.window.end if known is not None else utcnow() - FINDINGS_LOOKBACK
        for finding in self.findings.read_findings(model, job, since=since):
            if known is None or (finding.window.end, finding.created_at) >= (known.window.end, known.created_at):
                known = finding
        if known is not None:
            self._latest[(model, job)] = known
        return known

    def samples(self) -> list[Sample]:
        """Every sample of one scrape."""
        out = sample("predwatch_build_info", 1, version=predwatch_version())
        up = 1.0
        try:
            findings = [f for f in (self.latest(model, job) for model, job in self.jobs()) if f is not None]
            for finding in findings:
                out += finding_samples(finding, self.limits)
            out += versions_left_out(findings, self.limits)
            out += heartbeat_samples(doc for doc, _v in self.state.list_state(HEARTBEAT_PREFIX).values())
            out += alert_samples((doc for doc, _v in self.state.list_state(STATE_PREFIX).values()), self.jobs())
            out += outbox_samples((doc for doc, _v in self.state.list_state(OUTBOX_PREFIX).values()), utcnow())
            counts = tallies(doc for doc, _v in self.state.list_state(TALLY_PREFIX).values())
            out += delivery_samples(counts, channel_names(self.config))
        except (StoreError, OSError) as exc:
            log.warning("metrics: the store could not be read", extra={"predwatch": {"error": str(exc)}})
            up = 0.0
        return [*out, *sample("predwatch_store_up", up)]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            samples = self.samples()
        gauges: dict[str, GaugeMetricFamily] = {}
        counters: dict[str, CounterMetricFamily] = {}
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for s in samples:
            if (s.name, s.labels) in seen:  # e.g. a feature named like an output: one series, never two
                continue
            seen.add((s.name, s.labels))
            spec = METRICS[s.name]  # a name missing from the catalogue is a bug: fail loudly
            labels = dict(s.labels)
            if set(labels) != set(spec.labels):
                raise ValueError(f"metric {s.name} got labels {sorted(labels)}, declared {list(spec.labels)}")
            values = [labels[name] for name in spec.labels]
            if spec.type == "counter":
                counter = counters.get(s.name)
                if counter is None:
                    counter = counters[s.name] = CounterMetricFamily(s.name, spec.help, labels=list(spec.labels))
                counter.add_metric(values, s.value, created=s.created)
                continue
            gauge = gauges.get(s.name)
            if gauge is None:
                gauge = gauges[s.name] = GaugeMetricFamily(s.name, spec.help, labels=list(spec.labels))
            gauge.add_metric(values, s.value)
        yield from gauges.values()
        yield from counters.values()
