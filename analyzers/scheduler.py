"""``predwatch run``: every configured job on its schedule, with catch-up, heartbeats and a clean stop.

Each run analyses the window that ends at its scheduled fire time less the model's ingest delay
(so a late run still analyses the right window and lines not yet shipped are not missed), writes
its finding, passes it through the alerts, and records a heartbeat (``heartbeat:<model>:<job>``)
that ``predwatch status`` shows.  After a restart the windows missed since the last heartbeat are
run first (at most ``scheduler.catch_up`` per job).  SIGTERM and SIGINT stop it after the running
job.  Its own events are JSON lines (logshipper's formatter) on stderr.

While the store cannot be reached (Elasticsearch restarting, say) the daemon stays up: the runs go on and
fail fast, one monitoring problem is logged and sent (alert state lives in the store, so this notice is
sent straight through the configured channel), and when the store answers again a resolved notice follows
and the windows missed meanwhile are caught up.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler

from analyzers.config.loader import LoadedConfig, load_config
from analyzers.config.models import JobConfig, ModelConfig
from analyzers.findings import Finding
from analyzers.runner import run_job, with_paths_resolved
from analyzers.schedule import fire_times, latest_fire_time, make_trigger
from analyzers.store import open_store
from analyzers.store.base import ConflictError, Store, StoreError
from analyzers.timeutil import Window, format_time, parse_time, utcnow

log = logging.getLogger("predwatch.scheduler")
HEARTBEAT_PREFIX = "heartbeat:"


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
    """Whether the store is reachable, and the one notice of each change: problem when it goes, resolved when
    it is back.  The notices go straight through the alert channel, since alert state lives in the store."""

    def __init__(self, config: Any, on_recovery: Any) -> None:
        self.config = config
        self.on_recovery = on_recovery
        self.since: datetime | None = None
        self.reason = ""
        self._lock = threading.Lock()

    def down(self, exc: Exception) -> None:
        with self._lock:
            if self.since is not None:
                return
            self.since, self.reason = utcnow(), str(exc)
        log.error("monitoring problem: the store cannot be reached", extra={"predwatch": {"error": self.reason}})
        self._notify("firing", f"the store cannot be reached, no job can run: {self.reason}")

    def up(self) -> None:
        with self._lock:
            if self.since is None:
                return
            since, self.since = self.since, None
        log.info("the store answers again", extra={"predwatch": {"down_since": format_time(since)}})
        self._notify("resolved", f"the store could not be reached from {format_time(since)}")
        self.on_recovery()

    def _notify(self, kind: str, message: str) -> None:
        from analyzers.alerts.pipeline import sender_for
        from analyzers.alerts.render import build_message
        from analyzers.alerts.state import Notification

        now = format_time(utcnow())
        alert = {"key": "predwatch:store:monitoring", "model": "predwatch", "job": "store", "subject": "monitoring"}
        alert |= {"severity": "critical", "message": message}
        start = format_time(self.since) if self.since is not None else now
        note = Notification(kind, alert, {"start": start, "end": now}, finding_id="store-outage")  # type: ignore[arg-type]
        try:
            sender_for(self.config, quiet=True).send(build_message([note], self.config))
        except Exception:
            log.exception("the store outage notice could not be delivered")


class Scheduler:
    """Runs the configured jobs of one configuration against one store."""

    def __init__(self, loaded: LoadedConfig, store: Store) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.store = store
        self.stopping = threading.Event()
        self._running: dict[tuple[str, str], threading.Thread] = {}
        self._scheduler: BlockingScheduler | None = None
        self.outage = StoreOutage(self.config, self._catch_up_soon)

    def _catch_up_soon(self) -> None:
        """After an outage: the windows missed meanwhile, run by the daemon's scheduler as soon as it can."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.add_job(self.catch_up, id="catch-up", replace_existing=True)

    def jobs(self) -> list[tuple[str, ModelConfig, str, JobConfig]]:
        return [(m, mc, name, job) for m, mc in self.config.models.items() for name, job in mc.jobs().items()]

    # ---- one run -------------------------------------------------------------------------
    def run_once(self, model: str, name: str, scheduled: datetime) -> Finding | None:
        """Analyse the window tied to one fire time, store and alert on it, and record the heartbeat."""
        model_config = self.config.models[model]
        job = with_paths_resolved(getattr(model_config, name), self.loaded.directory)
        window = Window.ending(scheduled - model_config.ingest_delay, job.window)
        previous = self._running.get((model, name))
        if previous is not None and previous.is_alive():
            log.warning("skipped: the previous run is still going", extra={"predwatch": {"model": model, "job": name}})
            return None
        started = time.monotonic()
        result: list[Finding] = []
        # a daemon thread: a run that never ends is reported and abandoned, and cannot block the stop
        worker = threading.Thread(
            target=lambda: result.append(run_job(self.store, model, name, job, window)),
            name=f"predwatch-{model}-{name}",
            daemon=True,
        )
        self._running[(model, name)] = worker
        worker.start()
        worker.join(job.timeout.total_seconds())
        if result:
            finding = result[0]
        else:
            finding = Finding(model, name, window, "error", error=f"timed out after {job.timeout.total_seconds():g} s")
        duration = time.monotonic() - started
        self._record(model, name, finding, scheduled, duration)
        return finding

    def _record(self, model: str, name: str, finding: Finding, scheduled: datetime, duration: float) -> None:
        from analyzers.alerts.pipeline import process

        delivered: dict[str, Any] = {}
        try:
            self.store.write_findings([finding])
        except StoreError as exc:  # nothing can be stored or alerted on: one monitoring problem, then wait
            self.outage.down(exc)
            log.debug("finding not stored", extra={"predwatch": {"model": model, "job": name, "error": str(exc)}})
            return
        self.outage.up()
        try:
            report = process(self.store, self.config, [finding], quiet=True)
            delivered = {"alerts_created": report.created, "sent": report.sent, "pending": report.pending}
            if report.errors:
                log.error("alert delivery failed", extra={"predwatch": {"errors": report.errors, **delivered}})
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
        except StoreError as exc:
            self.outage.down(exc)
        log.info(
            "job finished",
            extra={
                "predwatch": {
                    "model": model,
                    "job": name,
                    "status": finding.status,
                    "window": finding.window.to_dict(),
                    "duration_s": round(duration, 3),
                    **delivered,
                }
            },
        )

    def fire(self, model: str, name: str) -> None:
        """What APScheduler calls: the run for the latest fire time (the one it was scheduled for)."""
        job = getattr(self.config.models[model], name)
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
        """Run every missed window, oldest first, again for fire times that passed meanwhile; how many ran."""
        ran = 0
        for _ in range(rounds):
            now, before = utcnow(), ran
            for model, model_config, name, job in self.jobs():
                try:
                    missed = self.missed(model, model_config, name, job, now)
                except StoreError as exc:  # caught up when the store answers again
                    self.outage.down(exc)
                    return ran
                for scheduled in missed:
                    if self.stopping.is_set():
                        return ran
                    self.run_once(model, name, scheduled)
                    ran += 1
            if ran == before:
                break
        return ran

    def flush_outbox(self) -> None:
        from analyzers.alerts.pipeline import flush

        try:
            report = flush(self.store, self.config, quiet=True)
            if report.sent or report.failed:
                log.info(
                    "outbox",
                    extra={"predwatch": {"sent": report.sent, "failed": report.failed, "pending": report.pending}},
                )
        except Exception:
            log.exception("outbox delivery failed")

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
            log.info("stopping after the running job", extra={"predwatch": {"signal": signal.Signals(signum).name}})
            self.stopping.set()
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
        scheduler.start()
        return self._finish()

    def _finish(self) -> int:
        abandoned = sorted(f"{m}:{n}" for (m, n), worker in self._running.items() if worker.is_alive())
        if abandoned:
            log.warning("stopped with timed-out runs still going", extra={"predwatch": {"jobs": abandoned}})
        log.info("stopped")
        return 0


def run_scheduler(config_path: str | Path) -> int:
    """Entry point of ``predwatch run``."""
    configure_logging()
    loaded = load_config(config_path)
    with open_store(loaded.config, loaded.directory) as store:
        return Scheduler(loaded, store).serve()
