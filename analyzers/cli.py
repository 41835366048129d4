"""The ``predwatch`` command: one entry point, a subcommand per task.

Exit codes: 0 when everything ran, 1 when an alert fired and ``--fail-on-alert`` was given (or
``check-config`` found only warnings), 2 on errors (bad configuration, a job that failed, a store that
cannot be reached), 3 when a delivery failed and ``--fail-on-delivery`` was given.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson

EXIT_OK, EXIT_ALERT, EXIT_ERROR, EXIT_DELIVERY = 0, 1, 2, 3
# What the ``analyzers`` extra installs: a missing one means predwatch was installed lean (the logger only).
ANALYZER_MODULES = frozenset(
    [
        "numpy",
        "scipy",
        "pandas",
        "pyarrow",
        "duckdb",
        "pytz",
        "elasticsearch",
        "slack_sdk",
        "apscheduler",
        "pydantic",
        "yaml",
        "rich",
        "matplotlib",
    ]
)
# Sections whose secrets only delivery needs: commands that never deliver read the file without them.
DELIVERY_SECTIONS = frozenset(("slack", "webhooks", "kibana"))


class CommandError(RuntimeError):
    """A subcommand cannot run; the message says why and what to do."""


def _optional(module: str, what: str) -> Any:
    """Import a part of predwatch that a subcommand needs, with a clear error when it is not there."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CommandError(f"{what} is not available in this installation ({exc})") from exc


def _time(text: str) -> datetime:
    from analyzers.timeutil import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _load(args: argparse.Namespace, *, lenient: frozenset[str] = frozenset()) -> Any:
    from analyzers.config.loader import load_config

    return load_config(args.config, lenient=lenient)


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")


# ---- analyze ----------------------------------------------------------------------------------
def cmd_analyze(args: argparse.Namespace) -> int:
    from analyzers.findings.quality import quality_rows
    from analyzers.runner import run_jobs
    from analyzers.store import open_store
    from analyzers.terminal import print_findings, print_quality

    loaded = _load(args, lenient=DELIVERY_SECTIONS if args.dry_run else frozenset())
    with open_store(loaded.config, loaded.directory) as store, _job_progress(loaded.config, args) as progress:
        findings = run_jobs(
            store,
            loaded.config,
            models=args.model,
            jobs=args.job,
            at=args.at,
            base=loaded.directory,
            progress=progress,
            record=not args.dry_run,
        )
        delivery = _deliver(store, loaded, findings, output_format=args.format, dry_run=args.dry_run)
    if args.format == "json":
        _print_json({"findings": [f.to_dict() for f in findings]})
    else:
        print_findings(findings)
        rows = quality_rows(findings)
        if rows:
            print_quality(rows)
    for line in delivery.lines() if delivery is not None else []:
        print(line, file=sys.stderr)
    if any(f.status == "error" for f in findings):
        return EXIT_ERROR
    if args.fail_on_delivery and delivery is not None and delivery.failed:
        return EXIT_DELIVERY
    if args.fail_on_alert and any(f.status == "alert" for f in findings):
        return EXIT_ALERT
    return EXIT_OK


@contextlib.contextmanager
def _job_progress(config: Any, args: argparse.Namespace) -> Iterator[Callable[[str, str], None] | None]:
    """A progress bar on stderr (one step per job) when a person is watching; nothing otherwise."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    models = [m for m in config.models if not args.model or m in args.model]
    total = sum(1 for m in models for j in config.models[m].jobs() if not args.job or j in args.job)
    if not console.is_terminal or total == 0:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("analyzing", total=total)
        started = [False]

        def step(model: str, job: str) -> None:
            if started[0]:
                bar.advance(task)
            started[0] = True
            bar.update(task, description=f"{model}: {job}")

        yield step


def _deliver(store: Any, loaded: Any, findings: list[Any], *, output_format: str, dry_run: bool = False) -> Any:
    """Pass findings through alert rules, state and delivery; a dry run only prints what would be sent."""
    from analyzers.alerts import dispatch

    if dry_run:
        dispatch.preview(store, loaded.config, findings, quiet=output_format == "json")
        return None
    return dispatch.process(store, loaded.config, findings, quiet=output_format == "json")


# ---- check-config -----------------------------------------------------------------------------
def cmd_check_config(args: argparse.Namespace) -> int:
    from analyzers.checks import check

    loaded = _load(args)
    issues = check(loaded, file=args.config, days=args.days)
    for issue in issues:
        print(issue, file=sys.stderr)
    errors = sum(1 for i in issues if i.level == "error")
    warnings = len(issues) - errors
    config = loaded.config
    if errors:
        print(f"{args.config}: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
        return EXIT_ERROR
    jobs = sum(len(m.jobs()) for m in config.models.values())
    where = config.store.chosen()[1].describe()
    verdict = f"{warnings} warning(s)" if warnings else "OK"
    print(f"{args.config}: {verdict}: {len(config.models)} model(s), {jobs} job(s), store: {where}")
    return EXIT_ALERT if warnings else EXIT_OK


# ---- replay -----------------------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> int:
    from analyzers.store import Query, open_store
    from analyzers.terminal import print_replay
    from analyzers.timeutil import Window, parse_duration, utcnow

    replay = _optional("analyzers.jobs.replay", "replay")
    if os.getcwd() not in sys.path:  # --target mysvc.model:predict finds ./mysvc as `python -m` would
        sys.path.insert(0, os.getcwd())
    loaded = _load(args)
    end = args.at or utcnow()
    window = Window.ending(end, parse_duration(args.window)) if (args.window or args.at) else None
    with open_store(loaded.config, loaded.directory) as store:
        if args.export:
            export_window = window or Window.ending(end, replay.DEFAULT_LOOKBACK)
            query = Query(
                args.model,
                export_window,
                entity_ids=tuple(args.entity) or None,
                prediction_ids=tuple(args.id) or None,
            )
            count = replay.export_predictions(store, query, args.export)
            print(f"wrote {count} prediction(s) to {args.export}", file=sys.stderr)
            if not args.target:
                return EXIT_OK
        if not args.target:
            raise CommandError("give --target module:callable to replay, or --export FILE to export")
        finding = replay.replay(
            store,
            args.model,
            window=window,
            entity_id=tuple(args.entity) or None,
            prediction_ids=tuple(args.id) or None,
            target=args.target,
            atol=args.atol,
            rtol=replay.DEFAULT_RTOL if args.rtol is None else args.rtol,
        )
    if args.format == "json":
        _print_json({"findings": [finding.to_dict()]})
    else:
        print_replay(finding)
    if finding.status == "error":
        return EXIT_ERROR
    return EXIT_ALERT if args.fail_on_alert and finding.status == "alert" else EXIT_OK


# ---- setup, demo, report, run, status: parts with modules of their own ------------------------
def cmd_setup(args: argparse.Namespace) -> int:
    setup = _optional("analyzers.provision", "setup")
    loaded = _load(args)
    try:
        report = setup.run_setup(
            loaded.config,
            es_only=args.es_only,
            kibana_only=args.kibana_only,
            retention_days=args.retention_days,
            wait=args.wait,
        )
    except setup.SetupError as exc:
        raise CommandError(str(exc)) from exc
    for step in report.steps:
        print(f"{step.status:>8}  {step.name}  {step.detail}".rstrip())
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    demo = _optional("analyzers.demo", "the demo")
    return int(demo.run_demo(days=args.days, per_day=args.per_day, seed=args.seed, out=args.out) or 0)


def cmd_report(args: argparse.Namespace) -> int:
    from analyzers.store import open_store
    from analyzers.timeutil import parse_duration

    report = _optional("analyzers.report", "the HTML report")
    loaded = _load(args)
    window = parse_duration(args.window) if args.window else None
    span = parse_duration(args.span)
    models = args.model or list(loaded.config.models)
    if not models:
        raise CommandError(f"{args.config} configures no model: give --model NAME")
    paths = report.report_paths(args.out, models)  # a bad --out fails before any work
    with open_store(loaded.config, loaded.directory) as store:
        for model, out in paths.items():
            report.write_report(
                store, model, out, config=loaded.config, at=args.at, window=window, span=span, base=loaded.directory
            )
            print(f"wrote {out}", file=sys.stderr)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    scheduler = _optional("analyzers.scheduler", "the scheduler")
    return int(
        scheduler.run_scheduler(
            args.config,
            metrics_port=args.metrics_port,
            metrics_address=args.metrics_address,
            fail_on_delivery=args.fail_on_delivery,
        )
        or 0
    )


def cmd_status(args: argparse.Namespace) -> int:
    from analyzers.status import collect, print_status
    from analyzers.store import open_store
    from analyzers.timeutil import utcnow

    loaded = _load(args, lenient=DELIVERY_SECTIONS)
    with open_store(loaded.config, loaded.directory) as store:
        status = collect(store, loaded.config, utcnow())
    if args.format == "json":
        _print_json(status.to_dict())
    else:
        print_status(status)
    return EXIT_OK


# ---- silence ----------------------------------------------------------------------------------
def cmd_silence(args: argparse.Namespace) -> int:
    import difflib
    import getpass

    from analyzers.alerts import silences
    from analyzers.alerts.state import STATE_PREFIX
    from analyzers.store import open_store
    from analyzers.timeutil import format_time, parse_duration, utcnow

    loaded = _load(args, lenient=DELIVERY_SECTIONS)
    now = utcnow()
    models = list(loaded.config.models)
    with open_store(loaded.config, loaded.directory) as store:
        silences.expire(store, now)
        if args.list:
            active = silences.active(store, now)
            if args.format == "json":
                _print_json({"silences": [s.to_dict() for s in active]})
            else:
                print("\n".join(silences.describe(s) for s in active) or "no active silence")
            return EXIT_OK
        if args.remove:
            gone = silences.remove(store, args.remove)
            if not gone:
                raise CommandError(f"no silence with id or pattern {args.remove!r} (see predwatch silence --list)")
            for silence in gone:
                print(f"removed {silences.describe(silence)}")
            return EXIT_OK
        if not args.pattern:
            raise CommandError("give an alert key or pattern to silence (model:job:subject), or --list, or --remove")
        if not silences.names_models(args.pattern, models):
            model_part = args.pattern.split(":", 1)[0]
            close = difflib.get_close_matches(model_part, models, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (configured: {', '.join(models) or 'none'})"
            raise CommandError(f"{args.pattern!r} names no configured model{hint}; keys look like model:job:subject")
        if ":" not in args.pattern:
            raise CommandError(f"{args.pattern!r} is a model name: silence all its alerts with '{args.pattern}:*'")
        if not args.duration and not args.until:
            raise CommandError("say for how long: --for 7d, or --until 2026-12-01T00:00:00Z")
        until = args.until if args.until else now + parse_duration(args.duration)
        who = args.by or os.environ.get("PREDWATCH_USER") or getpass.getuser()
        silence = silences.add(store, args.pattern, until=until, reason=args.reason or "", created_by=who, now=now)
        firing = [
            doc["key"]
            for doc, _v in store.list_state(STATE_PREFIX).values()
            if doc.get("status") == "firing" and silence.matches(str(doc.get("key")))
        ]
    print(f"silenced {silence.pattern} until {format_time(silence.until)} (id {silence.id})")
    print(f"firing now and silenced: {', '.join(sorted(firing))}" if firing else "no alert matching it fires now")
    return EXIT_OK


# ---- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand, with help that explains each option."""
    from analyzers.jobs.registry import JOB_NAMES

    parser = argparse.ArgumentParser(
        prog="predwatch", description="Monitor ML models in production from their prediction logs."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", "-c", required=True, help="the predwatch YAML configuration file")

    def with_format(p: argparse.ArgumentParser) -> None:
        p.add_argument("--format", choices=("text", "json"), default="text", help="text for people, json for scripts")

    p = sub.add_parser("analyze", help="run the configured jobs once and print their findings")
    with_config(p)
    p.add_argument("--model", action="append", help="only this model (repeatable); default: every model")
    p.add_argument("--job", action="append", choices=JOB_NAMES, help="only this job (repeatable)")
    p.add_argument("--at", type=_time, help="analyse the windows that end at this ISO 8601 time (default: now)")
    with_format(p)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="read only: compute and print the findings and the alerts that would be sent, but store no "
        "finding, change no alert state and send nothing (no Slack or webhook secrets needed)",
    )
    p.add_argument("--fail-on-alert", action="store_true", help="exit with 1 when any alert fired")
    p.add_argument("--fail-on-delivery", action="store_true", help="exit with 3 when an alert could not be delivered")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser(
        "check-config",
        help="validate a configuration: every problem at once with file:line, paths, and the names it uses "
        "against the last days of logs",
    )
    with_config(p)
    p.add_argument("--days", type=int, default=7, help="how many days of logs to look for the configured names")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("replay", help="re-run logged predictions through a model and compare, or export them")
    with_config(p)
    p.add_argument("--model", required=True, help="the monitored model whose predictions to replay")
    p.add_argument("--target", help="the model to run, as module:callable (a function or an object with predict)")
    p.add_argument("--window", help="how far back from --at (e.g. 1d); default: every logged prediction")
    p.add_argument("--at", type=_time, help="end of the window (default: now)")
    p.add_argument("--entity", action="append", default=[], help="only this entity_id (repeatable)")
    p.add_argument("--id", action="append", default=[], help="only this prediction id (repeatable)")
    p.add_argument(
        "--atol",
        type=float,
        help="absolute difference that still matches (default: half a unit in the last decimal of the logged values)",
    )
    p.add_argument(
        "--rtol",
        type=float,
        help="relative difference that still matches (default 1e-9: the float noise of recomputing)",
    )
    p.add_argument("--fail-on-alert", action="store_true", help="exit with 1 when any prediction or score differs")
    p.add_argument("--export", help="also write the selected predictions to this .csv or .parquet file")
    with_format(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("setup", help="install Elasticsearch templates and policies, import Kibana objects")
    with_config(p)
    p.add_argument("--es-only", action="store_true", help="only Elasticsearch templates and lifecycle policies")
    p.add_argument("--kibana-only", action="store_true", help="only the Kibana saved objects")
    p.add_argument(
        "--retention-days",
        type=int,
        default=30,
        help="delete prediction, feedback and dead-letter indices this many days after their day",
    )
    p.add_argument("--wait", type=float, default=300.0, help="seconds to wait for each service to be ready")
    p.set_defaults(func=cmd_setup)

    p = sub.add_parser("demo", help="simulate traffic with incidents, analyse it, alert and write the report")
    p.add_argument("--days", type=int, default=14, help="simulated days (the first half is the reference)")
    p.add_argument("--per-day", type=int, default=2000, help="predictions per model per day")
    p.add_argument("--seed", type=int, default=7, help="random seed of the simulation")
    p.add_argument("--out", default="./predwatch-demo", help="directory for logs, state and the report")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("report", help="write a self-contained HTML report per model")
    with_config(p)
    p.add_argument("--model", action="append", help="only this model (repeatable)")
    p.add_argument("--at", type=_time, help="the time the report is as of: every window ends then (default: now)")
    p.add_argument(
        "--window",
        help="analyse every job over this window (e.g. 7d) instead of its configured one; default: each job's",
    )
    p.add_argument("--span", default="30d", help="how far back the trends reach (default 30d, from the first event)")
    p.add_argument(
        "--out",
        help="a file (one model) or a directory (<model>.html each; an existing one, or a path ending in /); "
        "default predwatch-report.html, or predwatch-report/ for several models",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("run", help="run every job on its schedule until SIGTERM or Ctrl-C")
    with_config(p)
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics on this port at /metrics (default: scheduler.metrics_port; none)",
    )
    p.add_argument(
        "--metrics-address",
        help="the address /metrics listens on (default: scheduler.metrics_address, 127.0.0.1; 0.0.0.0 for all)",
    )
    p.add_argument(
        "--fail-on-delivery",
        action="store_true",
        help="exit with 3 when stopped while alerts could not be delivered",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "status", help="jobs' last runs, firing alerts, undelivered messages, silences and the latest findings"
    )
    with_config(p)
    with_format(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("silence", help="silence alerts for a while (with a reason), list or remove silences")
    with_config(p)
    p.add_argument("pattern", nargs="?", help="alert key model:job:subject, or a glob such as 'fraud:fairness:*'")
    p.add_argument("--for", dest="duration", help="how long, e.g. 4h, 7d")
    p.add_argument("--until", type=_time, help="until this ISO 8601 time, instead of --for")
    p.add_argument("--reason", help="why (shown in status and to whoever is on call next)")
    p.add_argument("--by", help="who silences (default: $PREDWATCH_USER or your login)")
    p.add_argument("--list", action="store_true", help="list the active silences")
    p.add_argument("--remove", metavar="ID|PATTERN", help="end a silence now")
    with_format(p)
    p.set_defaults(func=cmd_silence)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``predwatch`` console script."""
    try:
        return _main(argv)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ANALYZER_MODULES:
            raise
        print(
            f"predwatch: this installation has the logger only (no {exc.name}); the predwatch command needs "
            "the analyzers: pip install 'predwatch[analyzers]'",
            file=sys.stderr,
        )
        return EXIT_ERROR


def _main(argv: Sequence[str] | None) -> int:
    from analyzers.config.loader import ConfigError
    from analyzers.store.base import StoreError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    except (CommandError, StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
