"""The ``predwatch`` command: one entry point, a subcommand per task.

Exit codes: 0 when everything ran, 1 when an alert fired and ``--fail-on-alert`` was given,
2 on errors (bad configuration, a job that failed, a store that cannot be reached).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

EXIT_OK, EXIT_ALERT, EXIT_ERROR = 0, 1, 2


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


def _load(args: argparse.Namespace) -> Any:
    from analyzers.config.loader import load_config

    return load_config(args.config)


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")


# ---- analyze ----------------------------------------------------------------------------------
def cmd_analyze(args: argparse.Namespace) -> int:
    from analyzers.report_text import print_findings
    from analyzers.runner import run_jobs
    from analyzers.store import open_store

    loaded = _load(args)
    with open_store(loaded.config, loaded.directory) as store, _job_progress(loaded.config, args) as progress:
        findings = run_jobs(
            store, loaded.config, models=args.model, jobs=args.job, at=args.at, base=loaded.directory, progress=progress
        )
        _deliver(store, loaded, findings, args.format, dry_run=args.dry_run)
    if args.format == "json":
        _print_json({"findings": [f.to_dict() for f in findings]})
    else:
        print_findings(findings)
    if any(f.status == "error" for f in findings):
        return EXIT_ERROR
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


def _deliver(store: Any, loaded: Any, findings: list[Any], output_format: str, dry_run: bool = False) -> None:
    """Pass findings through alert rules, state and delivery (a dry run only prints the alerts)."""
    try:
        alerting = importlib.import_module("analyzers.alerts.pipeline")
    except ImportError:
        return
    if dry_run:
        alerting.preview(store, loaded.config, findings, quiet=output_format == "json")
        return
    alerting.process(store, loaded.config, findings, quiet=output_format == "json")


# ---- check-config -----------------------------------------------------------------------------
def cmd_check_config(args: argparse.Namespace) -> int:
    loaded = _load(args)
    config = loaded.config
    jobs = sum(len(m.jobs()) for m in config.models.values())
    where = "Elasticsearch" if config.store.elasticsearch else f"local files in {config.store.local.path}"
    print(f"{args.config}: OK: {len(config.models)} model(s), {jobs} job(s), store: {where}")
    return EXIT_OK


# ---- replay -----------------------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> int:
    from analyzers.report_text import print_findings
    from analyzers.store import Query, open_store
    from analyzers.timeutil import Window, parse_duration, utcnow

    replay = _optional("analyzers.jobs.replay", "replay")
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
            tolerance=args.tolerance,
        )
    if args.format == "json":
        _print_json({"findings": [finding.to_dict()]})
    else:
        print_findings([finding])
    return EXIT_ERROR if finding.status == "error" else EXIT_OK


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
    from analyzers.timeutil import Window, parse_duration, utcnow

    report = _optional("analyzers.report", "the HTML report")
    loaded = _load(args)
    window = Window.ending(args.at or utcnow(), parse_duration(args.window))
    models = args.model or list(loaded.config.models)
    with open_store(loaded.config, loaded.directory) as store:
        for model in models:
            out = Path(args.out) / f"{model}.html" if len(models) > 1 else Path(args.out)
            report.write_report(store, model, window, out, config=loaded.config)
            print(f"wrote {out}", file=sys.stderr)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    scheduler = _optional("analyzers.scheduler", "the scheduler")
    return int(scheduler.run_scheduler(args.config) or 0)


def cmd_status(args: argparse.Namespace) -> int:
    from analyzers.report_text import print_status
    from analyzers.store import open_store

    loaded = _load(args)
    with open_store(loaded.config, loaded.directory) as store:
        heartbeats = store.list_state("heartbeat:")
        latest = {}
        for finding in store.read_findings():
            latest[(finding.model, finding.job)] = finding
    if args.format == "json":
        _print_json(
            {
                "heartbeats": {k: doc for k, (doc, _v) in heartbeats.items()},
                "latest": [f.to_dict() for f in latest.values()],
            }
        )
    else:
        print_status(heartbeats, list(latest.values()))
    return EXIT_OK


# ---- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand, with help that explains each option."""
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
    p.add_argument("--job", action="append", choices=("drift", "fairness", "performance", "ops"), help="only this job")
    p.add_argument("--at", type=_time, help="analyse the windows that end at this ISO 8601 time (default: now)")
    with_format(p)
    p.add_argument("--dry-run", action="store_true", help="compute and print, but send and record no alert")
    p.add_argument("--fail-on-alert", action="store_true", help="exit with 1 when any alert fired")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("check-config", help="validate a configuration and report every problem at once")
    with_config(p)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("replay", help="re-run logged predictions through a model and compare, or export them")
    with_config(p)
    p.add_argument("--model", required=True, help="the monitored model whose predictions to replay")
    p.add_argument("--target", help="the model to run, as module:callable (a function or an object with predict)")
    p.add_argument("--window", help="how far back from --at (e.g. 1d); default: every logged prediction")
    p.add_argument("--at", type=_time, help="end of the window (default: now)")
    p.add_argument("--entity", action="append", default=[], help="only this entity_id (repeatable)")
    p.add_argument("--id", action="append", default=[], help="only this prediction id (repeatable)")
    p.add_argument("--tolerance", type=float, default=1e-6, help="largest score difference that still matches")
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
    p.add_argument("--window", default="1d", help="length of the window the report covers (e.g. 1d, 7d)")
    p.add_argument("--at", type=_time, help="end of the window (default: now)")
    p.add_argument("--out", default="predwatch-report.html", help="the file (one model) or directory (several)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("run", help="run every job on its schedule until SIGTERM or Ctrl-C")
    with_config(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="when each job last ran, how it ended, and the latest findings")
    with_config(p)
    with_format(p)
    p.set_defaults(func=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``predwatch`` console script."""
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
