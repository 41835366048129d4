"""``predwatch run``: every configured job on its schedule, with catch-up, heartbeats and a clean stop.

Each run analyses the window that ends at its scheduled fire time less the model's ingest delay
(so a late run still analyses the right window and lines not yet shipped are not missed), writes
its finding, passes it through the alerts, and records a heartbeat (``heartbeat:<model>:<job>``)
that ``predwatch status`` shows.  After a restart the windows missed since the last heartbeat are
run first (at most ``scheduler.catch_up`` per job), oldest fire time first.

One message per model per tick: the alerts of a model's jobs that fire at the same time are delivered
together once all of them have finished (or ``scheduler.group_wait`` after the first, for a slow job);
undelivered ones are retried every ``scheduler.outbox_every``.  Each delivery is logged ("sent 1
message to Slack channel #ml-alerts", or why it was kept).  SIGTERM and SIGINT stop it within seconds:
a job still running is abandoned (its window is caught up after the restart) and a delivery waiting to
retry stops waiting (the outbox keeps the message).  Its own events are JSON lines (logshipper's
formatter) on stderr.

While the store cannot be reached (Elasticsearch restarting, say) the daemon stays up: the runs go on and
fail fast (each within its job's timeout), one monitoring problem is logged and sent (alert state and the
outbox live in the store, so this notice goes straight to the routed channels), and when the store answers
again a resolved notice follows and the windows missed meanwhile are caught up.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler

from analyzers.alerts import dispatch
from analyzers.alerts.channels import Sender, open_channels
from analyzers.alerts.dispatch import DeliveryReport
from analyzers.alerts.message import build_message
from analyzers.alerts.pacing import Pacing
from analyzers.alerts.routing import Routing
from analyzers.alerts.rules import MONITORING, alert_key
from analyzers.alerts.state import Kind, Notification
from analyzers.config.loader import LoadedConfig, load_config
from analyzers.config.models import Config, JobConfig, ModelConfig
from analyzers.findings import Finding
from analyzers.runner import run_job, with_paths_resolved
from analyzers.store import open_store
from analyzers.store.base import ConflictError, Store, StoreUnavailable
from analyzers.timeutil import format_time, parse_time, utcnow
from analyzers.triggers import fire_times, latest_fire_time, make_trigger
from analyzers.windows import job_window

log = logging.getLogger("predwatch.scheduler")
HEARTBEAT_PREFIX = "heartbeat:"
EXIT_DELIVERY = 3
_JOIN_SLICE_S = 0.2  # how often a waiting run checks whether the scheduler is stopping


def configure_logging(stream: Any = None) -> None:
    """predwatch's and APScheduler's own events as ECS JSON lines (logshipper.JsonFormatter)."""
    from logshipper import JsonFormatter

    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service="predwatch-scheduler"))
    for name, level in (("predwatch", logging.INFO), ("apscheduler", logging.WARNING), ("slack_sdk", logging.WARNING)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def heartbeat_key(model: str, job: str) -> str:
    return f"{HEARTBEAT_PREFIX}{model}:{job}"


def write_heartbeat(store: Store, model: str, job: str, doc: dict[str, Any]) -> None:
    """Record how a run ended; a later window already recorded is never replaced by an earlier one."""
    key = heartbeat_key(model, job)
    for _ in range(5):
        current = store.get_state(key)
        if current is not None and current[0].get("window_end", "") > doc["window_end"]:
            return
        try:
            store.put_state(key, doc, current[1] if current is not None else None)
            return
        except ConflictError:
            continue


class StoreOutage:
    """Whether the store answers, and one notice of each change: a problem when it stops, resolved when it is
    back.  The notices go straight to the routed channels, since alert state and the outbox live in the store."""

    def __init__(self, config: Config, senders: dict[str, Sender], on_recovery: Callable[[], None]) -> None:
        self.config = config
        self.senders = senders
        self.on_recovery = on_recovery
        self.since: datetime | None = None
        self.reason = ""
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.since is not None

    def down(self, exc: Exception) -> None:
        """The store did not answer: the first time, log and send one monitoring problem."""
        with self._lock:
            if self.since is not None:
                return
            self.since, self.reason = utcnow(), str(exc)
        log.error("monitoring problem: the store cannot be reached", extra={"predwatch": {"error": self.reason}})
        self._notify("firing", self.since, f"the store cannot be reached, no job can run: {self.reason}")

    def up(self) -> None:
        """The store answered: after an outage, log and send that it is resolved, then catch up."""
        with self._lock:
            if self.since is None:
                return
            since, self.since = self.since, None
        log.info("the store answers again", extra={"predwatch": {"down_since": format_time(since)}})
        self._notify("resolved", since, f"the store could not be reached from {format_time(since)}")
        self.on_recovery()

    def _notify(self, kind: Kind, since: datetime, message: str) -> None:
        alert = {
            "key": alert_key("predwatch", "store", MONITORING),
            "model": "predwatch",
            "job": "store",
            "subject": MONITORING,
            "severity": "critical",
            "message": message,
        }
        window = {"start": format_time(since), "end": format_time(utcnow())}
        note = Notification(kind, alert, window, finding_id="store-outage", since=format_time(since))
        for name in Routing(self.config).channels(alert, kind):
            sender = self.senders.get(name)
            if sender is None:
                continue
            try:
                sender.send(build_message([note], self.config))
            except Exception:
                log.exception("the store outage notice could not be delivered", extra={"predwatch": {"channel": name}})


class Scheduler:
    """Runs the configured jobs of one configuration against one store."""

    def __init__(self, loaded: LoadedConfig, store: Store, *, senders: dict[str, Sender] | None = None) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.store = store
        self.stopping = threading.Event()
        self.pacing = Pacing.from_config(self.config.delivery, stop=self.stopping)
        self.senders = senders if senders is not None else open_channels(self.config, pacing=self.pacing, quiet=True)
        self.delivery_failed = False
        self._running: dict[tuple[str, str], threading.Thread] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._ticks: dict[tuple[str, datetime], set[str]] = {}
        self._timers: dict[tuple[str, datetime], threading.Timer] = {}
        self._scheduler: BlockingScheduler | None = None
        self.outage = StoreOutage(self.config, self.senders, self._catch_up_soon)

    def _catch_up_soon(self) -> None:
        """After an outage: the windows missed meanwhile, run by the daemon's scheduler as soon as it can."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.add_job(self.catch_up, id="catch-up", replace_existing=True)

    def jobs(self) -> list[tuple[str, ModelConfig, str, JobConfig]]:
        return [(m, mc, name, job) for m, mc in self.config.models.items() for name, job in mc.jobs().items()]

    # ---- one run -------------------------------------------------------------------------
    def run_once(self, model: str, name: str, scheduled: datetime, *, tick: bool = True) -> Finding | None:
        """Analyse the window tied to one fire time, store and alert on it, and record the heartbeat; with
        ``tick`` the model's alerts go out once every job of the model fired at that time has finished."""
        model_config = self.config.models[model]
        configured = model_config.job(name)
        if configured is None:
            raise ValueError(f"model {model!r} has no {name} job configured")
        job = with_paths_resolved(configured, self.loaded.directory)
        window = job_window(model_config, job, now=scheduled)
        previous = self._running.get((model, name))
        if previous is not None and previous.is_alive():
            log.warning("skipped: the previous run is still going", extra={"predwatch": {"model": model, "job": name}})
            return None
        started = time.monotonic()
        result: list[Finding] = []
        # a daemon thread: a run that never ends is reported and abandoned, and cannot block the stop
        worker = threading.Thread(
            target=lambda: result.append(
                run_job(self.store, model, name, job, window, quality=self.config.quality_for(model))
            ),
            name=f"predwatch-{model}-{name}",
            daemon=True,
        )
        self._running[(model, name)] = worker
        worker.start()
        deadline = started + job.timeout.total_seconds()
        while worker.is_alive() and time.monotonic() < deadline and not self.stopping.is_set():
            worker.join(min(_JOIN_SLICE_S, max(deadline - time.monotonic(), 0.0)))
        if not result and self.stopping.is_set():
            return None  # abandoned on stop: no heartbeat, so the window is caught up after the restart
        if result:
            finding = result[0]
        else:
            finding = Finding(model, name, window, "error", error=f"timed out after {job.timeout.total_seconds():g} s")
        duration = time.monotonic() - started
        self._record(model, name, finding, scheduled=scheduled, duration=duration)
        if tick:
            self._tick_done(model, name, scheduled)
        return finding

    def _record(self, model: str, name: str, finding: Finding, *, scheduled: datetime, duration: float) -> None:
        delivered: dict[str, Any] = {}
        try:
            self.store.write_findings([finding])
            self.outage.up()
            recorded = dispatch.record(self.store, self.config, [finding])
            delivered = {"alerts_created": recorded.created, "alerts_silenced": recorded.silenced}
        except StoreUnavailable as exc:  # nothing can be stored or alerted on: one monitoring problem, then wait
            self.outage.down(exc)
            log.info(
                "job finished, its finding not stored",
                extra={"predwatch": {"model": model, "job": name, "status": finding.status, "error": str(exc)}},
            )
            return
        except Exception as exc:
            log.exception("storing or alerting failed", extra={"predwatch": {"model": model, "job": name}})
            finding = Finding(model, name, finding.window, "error", error=f"{type(exc).__name__}: {exc}")
        heartbeat = {
            "model": model,
            "job": name,
            "ran_at": format_time(utcnow()),
            "scheduled": format_time(scheduled),
            "window_start": format_time(finding.window.start),
            "window_end": format_time(finding.window.end),
            "status": finding.status,
            "duration_s": round(duration, 3),
            "error": finding.error,
        }
        try:
            write_heartbeat(self.store, model, name, heartbeat)
        except StoreUnavailable as exc:
            self.outage.down(exc)
        failed = finding.status == "error"  # a failed run (its store, its job, a timeout) is logged as an error
        log.log(
            logging.ERROR if failed else logging.INFO,
            "job failed" if failed else "job finished",
            extra={
                "predwatch": {
                    "model": model,
                    "job": name,
                    "status": finding.status,
                    "window": finding.window.to_dict(),
                    "duration_s": round(duration, 3),
                    **({"error": finding.error} if failed else {}),
                    **delivered,
                }
            },
        )

    def fire(self, model: str, name: str) -> None:
        """What APScheduler calls: the run for the latest fire time (the one it was scheduled for)."""
        job = self.config.models[model].job(name)
        if job is None:
            return
        scheduled = latest_fire_time(make_trigger(job.schedule), utcnow())
        if scheduled is not None and not self.stopping.is_set():
            self.run_once(model, name, scheduled)

    # ---- catching up ------------------------------------------------------------------------
    def missed(self, model: str, model_config: ModelConfig, name: str, job: JobConfig, now: datetime) -> list[datetime]:
        """Fire times since the last recorded window (just the latest one on a first start)."""
        trigger = make_trigger(job.schedule)
        current = self.store.get_state(heartbeat_key(model, name))
        if current is None:
            latest = latest_fire_time(trigger, now)
            return [latest] if latest is not None else []
        last_scheduled = parse_time(current[0]["window_end"]) + model_config.ingest_delay
        return fire_times(trigger, last_scheduled, now, self.config.scheduler.catch_up)

    def catch_up(self, rounds: int = 3) -> int:
        """Run every missed window, oldest fire time first, again for fire times that passed meanwhile;
        the alerts of each fire time go out together.  Returns how many runs there were."""
        ran = 0
        for _ in range(rounds):
            now, before = utcnow(), ran
            try:
                runs = sorted(
                    (scheduled, model, name)
                    for model, model_config, name, job in self.jobs()
                    for scheduled in self.missed(model, model_config, name, job, now)
                )
            except StoreUnavailable as exc:  # caught up when the store answers again
                self.outage.down(exc)
                return ran
            for i, (scheduled, model, name) in enumerate(runs):
                if self.stopping.is_set():
                    return ran
                self.run_once(model, name, scheduled, tick=False)
                ran += 1
                if i + 1 == len(runs) or runs[i + 1][0] != scheduled:
                    self.deliver({m for t, m, _ in runs if t == scheduled})
            if ran == before:
                break
        return ran

    # ---- delivery: one message per model per tick ----------------------------------------------
    def _expected(self, model: str, scheduled: datetime) -> set[str]:
        """The model's jobs that fire at ``scheduled``: the ones its message waits for."""
        out = set()
        for name, job in self.config.models[model].jobs().items():
            if latest_fire_time(make_trigger(job.schedule), scheduled) == scheduled:
                out.add(name)
        return out

    def _tick_done(self, model: str, name: str, scheduled: datetime) -> None:
        """A run of a tick finished: deliver the model's alerts when it was the last, else wait at most
        ``scheduler.group_wait`` for the others."""
        tick = (model, scheduled)
        with self._lock:
            waiting = self._ticks.setdefault(tick, self._expected(model, scheduled) | {name})
            waiting.discard(name)
            done = not waiting
            if done:
                self._ticks.pop(tick, None)
                timer = self._timers.pop(tick, None)
                if timer is not None:
                    timer.cancel()
            elif tick not in self._timers:
                timer = threading.Timer(self.config.scheduler.group_wait.total_seconds(), self._give_up_waiting, [tick])
                timer.daemon = True
                self._timers[tick] = timer
                timer.start()
        if done:
            self.deliver({model})

    def _give_up_waiting(self, tick: tuple[str, datetime]) -> None:
        with self._lock:
            self._timers.pop(tick, None)
            self._ticks.pop(tick, None)
        self.deliver({tick[0]})

    def deliver(self, models: set[str] | None = None) -> DeliveryReport | None:
        """Deliver what waits in the outbox (for ``models``, or all) and log each delivery."""
        if self.stopping.is_set() or self.outage.active:
            return None  # the outbox lives in the store: delivered when it answers again
        try:
            with self._flush_lock:
                report = dispatch.flush(
                    self.store,
                    self.config,
                    senders=self.senders,
                    pacing=self.pacing,
                    wanted=None if models is None else (lambda n: n.model in models),
                )
        except StoreUnavailable as exc:
            self.outage.down(exc)
            return None
        except Exception:
            log.exception("alert delivery failed")
            self.delivery_failed = True
            return None
        for channel in report.channels.values():
            for line in DeliveryReport(channels={channel.channel: channel}, retry_every=report.retry_every).lines():
                level = logging.ERROR if channel.failed else logging.INFO
                details = {"channel": channel.channel, "sent": channel.sent, "failed": channel.failed}
                log.log(level, line, extra={"predwatch": {**details, "pending": report.pending}})
        self.delivery_failed = report.failed > 0 and report.pending > 0
        return report

    def flush_outbox(self) -> None:
        """Every ``scheduler.outbox_every``: retry what waits, except for models whose tick is still running."""
        with self._lock:
            busy = {model for model, _ in self._ticks}
        try:  # also how an outage is seen to end when no job runs meanwhile
            unconfigured = self._unconfigured()
        except StoreUnavailable as exc:
            self.outage.down(exc)
            return
        self.outage.up()
        self.deliver({m for m in self.config.models if m not in busy} | unconfigured)

    def _unconfigured(self) -> set[str]:
        """Models with undelivered alerts that are no longer configured (still delivered)."""
        from analyzers.alerts.outbox import pending

        models = {str(doc["notification"]["alert"]["model"]) for doc in pending(self.store).values()}
        return models - set(self.config.models)

    # ---- the daemon -------------------------------------------------------------------------
    def serve(self) -> int:
        """Catch up, then run on schedule until SIGTERM or SIGINT; 0 after a clean stop."""
        scheduler = BlockingScheduler(
            timezone="UTC",
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(self.config.scheduler.misfire_grace.total_seconds()),
            },
        )

        def stop(signum: int, _frame: Any) -> None:
            log.info("stopping", extra={"predwatch": {"signal": signal.Signals(signum).name}})
            self.stopping.set()
            with self._lock:
                for timer in self._timers.values():
                    timer.cancel()
            if scheduler.running:
                scheduler.shutdown(wait=True)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self._scheduler = scheduler
        jobs = self.jobs()
        log.info(
            "started",
            extra={"predwatch": {"config": str(self.loaded.path), "jobs": [f"{m}:{n}" for m, _, n, _ in jobs]}},
        )
        self.catch_up()
        if self.stopping.is_set():
            return self._finish()
        for model, _, name, job in jobs:
            scheduler.add_job(self.fire, make_trigger(job.schedule), args=[model, name], id=f"{model}:{name}")
        every = self.config.scheduler.outbox_every.total_seconds()
        scheduler.add_job(self.flush_outbox, "interval", seconds=every, id="outbox")
        # A signal between the check above and the start finds no running scheduler to shut down: the scheduler
        # stops itself as it starts.
        scheduler.add_listener(lambda _event: self._stop_if_asked(scheduler), EVENT_SCHEDULER_STARTED)
        scheduler.start()
        return self._finish()

    def _stop_if_asked(self, scheduler: BlockingScheduler) -> None:
        if self.stopping.is_set() and scheduler.running:
            with contextlib.suppress(SchedulerNotRunningError):  # the signal's own handler stopped it in between
                scheduler.shutdown(wait=False)

    def _finish(self) -> int:
        abandoned = sorted(f"{m}:{n}" for (m, n), worker in self._running.items() if worker.is_alive())
        if abandoned:
            log.warning("stopped with runs still going (abandoned)", extra={"predwatch": {"jobs": abandoned}})
        log.info("stopped")
        return 0


def run_scheduler(
    config_path: str | Path,
    *,
    metrics_port: int | None = None,
    metrics_address: str | None = None,
    fail_on_delivery: bool = False,
) -> int:
    """Entry point of ``predwatch run``.  With a metrics port (here or ``scheduler.metrics_port``) it also serves
    Prometheus metrics on ``/metrics`` while it runs; with ``fail_on_delivery`` it exits with 3 when it stops
    while its last delivery failed and alerts are still waiting in the outbox."""
    from analyzers.metrics.server import metrics_server

    configure_logging()
    loaded = load_config(config_path)
    settings = loaded.config.scheduler
    port = metrics_port if metrics_port is not None else settings.metrics_port
    address = metrics_address or settings.metrics_address
    with (
        open_store(loaded.config, loaded.directory) as store,
        metrics_server(store, store, loaded.config, port=port, address=address),
    ):
        scheduler = Scheduler(loaded, store)
        code = scheduler.serve()
        return EXIT_DELIVERY if fail_on_delivery and code == 0 and scheduler.delivery_failed else code
