"""False drift columns without drift: the demo's two services logged for 30 days with nothing changed.

For each seed, ``analyzers.demo.traffic.simulate`` logs 30 days of the fraud classifier and the eta
regressor (2,000 predictions per model per day, feedback as it arrives) with no incident, through the
logger into daily files.  The drift job then judges every day that has a full default reference
(``window: 1d``, ``reference: {last: 7d}``, ``alpha: 0.05``, BH correction), for both models, through
the ``LocalStore``: every column it calls drifted is a false alarm.

Two rules are counted on the same findings (a baseline in the same run):

* ``significance and threshold``: adjusted p-value below alpha and effect size above its threshold
  (the rule before the effect size's sampling noise was taken into account);
* ``job`` (the drift job's verdict, ``drifted``): adjusted p-value below alpha and effect size, less
  the effect size sampling alone gives at these sample sizes (``effect_size_noise``), above its threshold.

The goal: false columns per run (one model's drift job on one day) at or below alpha.

Run: ``python benchmarks/bench_false_alarms.py`` (``--seeds 20`` for more; ``--json out.json``).
It takes a few seconds per run of the drift job on a shared machine, about two minutes per seed.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from analyzers.config.models import DriftConfig
from analyzers.demo.traffic import MODELS, simulate
from analyzers.jobs import drift
from analyzers.store import LocalStore
from analyzers.timeutil import Window, parse_time

END = parse_time("2026-12-01T00:00:00Z")
REFERENCE_DAYS = 7  # the default reference, {last: 7d}: days before it are not judged


@dataclass
class Tally:
    """Runs of the drift job and the columns each rule called drifted (all false: nothing changed)."""

    runs: int = 0
    columns: int = 0
    by_rule: dict[str, int] = field(default_factory=lambda: {"significance and threshold": 0, "job": 0})
    runs_with_any: dict[str, int] = field(default_factory=lambda: {"significance and threshold": 0, "job": 0})
    examples: list[dict[str, Any]] = field(default_factory=list)


def old_rule(feature: dict[str, Any], alpha: float) -> bool:
    """Adjusted p-value below alpha and effect size above its threshold (or the missing rate drifted)."""
    p, effect, threshold = feature.get("p_value_adjusted"), feature.get("effect_size"), feature.get("threshold")
    distribution = p is not None and effect is not None and threshold is not None and p < alpha and effect > threshold
    return bool(distribution or feature.get("missing_drifted"))


def judge_seed(seed: int, *, days: int, per_day: int, config: DriftConfig, tally: Tally) -> dict[str, int]:
    """Simulate one seed, run the drift job on every judged day of both models, count false columns."""
    root = Path(tempfile.mkdtemp(prefix="predwatch-false-alarms-"))
    found = {"significance and threshold": 0, "job": 0}
    try:
        simulate(root / "logs", days=days, per_day=per_day, seed=seed, end=END, injected=[])
        with LocalStore(root / "logs", root / "state") as store:
            for model in MODELS:
                for day in range(REFERENCE_DAYS, days):
                    window = Window(END - timedelta(days=days - day), END - timedelta(days=days - day - 1))
                    finding = drift.run(store, model, config, window).to_dict()
                    if finding["status"] not in ("ok", "alert"):
                        raise RuntimeError(f"seed {seed} {model} day {day}: {finding['status']} {finding}")
                    tally.runs += 1
                    tally.columns += len(finding["features"])
                    flagged = {
                        "significance and threshold": [f for f in finding["features"] if old_rule(f, config.alpha)],
                        "job": [f for f in finding["features"] if f["drifted"]],
                    }
                    for rule, features in flagged.items():
                        found[rule] += len(features)
                        tally.by_rule[rule] += len(features)
                        tally.runs_with_any[rule] += bool(features)
                    for f in flagged["significance and threshold"]:
                        tally.examples.append(
                            {
                                "seed": seed,
                                "model": model,
                                "day": day,
                                "column": f["name"],
                                "effect": f"{f['effect_size_method']} {f['effect_size']:.4f}",
                                "noise": f.get("effect_size_noise"),
                                "threshold": f["threshold"],
                                "p_adjusted": round(f["p_value_adjusted"], 4),
                                "job says drifted": f["drifted"],
                            }
                        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return found


def _interval(count: int, runs: int) -> str:
    """The mean per run with a normal 95% interval from the Poisson count."""
    mean = count / runs
    half = 1.96 * math.sqrt(max(count, 1)) / runs
    return f"{mean:.4f} (95% CI {max(0.0, mean - half):.4f} to {mean + half:.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=2000)
    parser.add_argument(
        "--alpha", type=float, default=DriftConfig().alpha, help="the drift job's alpha (the demo's: 0.01)"
    )
    parser.add_argument("--json", type=Path, help="write the counts and the false columns here")
    args = parser.parse_args()
    config = DriftConfig(window="1d", alpha=args.alpha)
    tally = Tally()
    started = time.monotonic()
    print(f"{'seed':>5} {'runs':>5} {'significance and threshold':>27} {'job':>5}")
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        before = tally.runs
        found = judge_seed(seed, days=args.days, per_day=args.per_day, config=config, tally=tally)
        print(f"{seed:>5} {tally.runs - before:>5} {found['significance and threshold']:>27} {found['job']:>5}")
    print(
        f"\n{args.seeds} seeds x {args.days} days, {tally.runs} runs of the drift job "
        f"({tally.columns / tally.runs:.1f} columns each), alpha {config.alpha}, "
        f"{time.monotonic() - started:.0f} s"
    )
    for rule in tally.by_rule:
        print(
            f"  {rule:<27} false columns per run {_interval(tally.by_rule[rule], tally.runs)}; "
            f"runs with any {tally.runs_with_any[rule] / tally.runs:.4f}"
        )
    if tally.examples:
        print("\nfalse columns under significance and threshold:")
        for example in tally.examples:
            print("  " + ", ".join(f"{k} {v}" for k, v in example.items()))
    if args.json is not None:
        summary = {
            "seeds": args.seeds,
            "days": args.days,
            "per_day": args.per_day,
            "runs": tally.runs,
            "columns": tally.columns,
            "alpha": config.alpha,
            "false_columns": tally.by_rule,
            "runs_with_any": tally.runs_with_any,
            "examples": tally.examples,
        }
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
