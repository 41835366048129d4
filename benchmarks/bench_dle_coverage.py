"""How often direct loss estimation's interval holds the realized MAE and RMSE: a simulation with known truth.

A regression model ``ŷ = 3·x1 + x2`` whose errors are heavy-tailed (Student's t, 5 degrees of freedom) and grow
with ``x1``, ``|x2|`` and in segment ``c``. Each replicate draws a fresh labelled reference (``--reference`` rows),
fits the loss models on it, then draws ``--windows`` windows of each size for each scenario and compares each
window's interval with its realized MAE and RMSE:

- ``same``: the window's inputs come from the reference's distribution;
- ``shift``: covariate shift inside the reference's range (``x1`` piled up near its top, ``x2`` moved up, segment
  ``c`` 2.5 times as common), where the model errs more and the reference is thinner.

Both the intervals of this tree and those of an earlier commit (``--before``, by default main before the loss
models had a log link; read with ``git show``) are measured in the same run, on the same references and windows.
Coverage is printed with its binomial standard error over the chunks, and the standard error over references
(windows of one reference share its loss models, so their misses are not independent), with the mean width of the
MAE's interval.



Run: ``python benchmarks/bench_dle_coverage.py`` (``--references 40 --windows 5 --sizes 500 2000 10000``).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
BEFORE = "663db49"  # main before the loss models had a log link (Poisson deviance)
MODULE = "analyzers/stats/loss_estimation.py"
NUMERIC, CATEGORICAL = ["x1", "x2"], ["segment"]
SCENARIOS = ("same", "shift")


def simulate(n: int, rng: np.random.Generator, scenario: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``n`` predictions with their features and labels (see the module docstring)."""
    if scenario == "same":
        x1, x2 = rng.uniform(0.0, 1.0, n), rng.normal(0.0, 1.0, n)
        segment = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    else:
        x1, x2 = rng.beta(4.0, 1.5, n), rng.normal(0.8, 0.7, n)
        segment = rng.choice(["a", "b", "c"], n, p=[0.2, 0.3, 0.5])
    scale = 0.2 + x1 + 0.5 * (segment == "c") + 0.3 * np.abs(x2)
    noise = scale * rng.standard_t(5, n) / math.sqrt(5 / 3)
    prediction = 3 * x1 + x2
    return pd.DataFrame({"x1": x1, "x2": x2, "segment": segment}), prediction, prediction + noise


def load_before(commit: str) -> types.ModuleType:
    """The loss-estimation module as it was at ``commit``, loaded under a name of its own."""
    source = subprocess.run(
        ["git", "show", f"{commit}:{MODULE}"], capture_output=True, text=True, check=True, cwd=HERE.parent
    ).stdout
    module = types.ModuleType("loss_estimation_before")
    module.__file__ = f"{commit}:{MODULE}"
    sys.modules[module.__name__] = module  # dataclasses look their module up while they are built
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def run(
    implementations: dict[str, types.ModuleType], *, references: int, windows: int, sizes: list[int], n_reference: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    """One row per (implementation, replicate, scenario, size, window, metric): covered or not, and the width."""
    rows = []
    seconds = dict.fromkeys(implementations, 0.0)
    for replicate in range(references):
        rng = np.random.default_rng(1_000 + replicate)
        frame, prediction, label = simulate(n_reference, rng, "same")
        fits: dict[str, object] = {}
        for name, module in implementations.items():
            start = time.perf_counter()
            fits[name] = module.fit_loss_models(
                frame, prediction, label, numeric=NUMERIC, categorical=CATEGORICAL, seed=replicate
            )
            seconds[name] += time.perf_counter() - start
        for scenario in SCENARIOS:
            for size in sizes:
                for window in range(windows):
                    w_frame, w_prediction, w_label = simulate(size, rng, scenario)
                    error = w_label - w_prediction
                    truth = {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error**2)))}
                    for name, module in implementations.items():
                        fit = fits[name]
                        sums = module.LossSums()
                        sums.add(fit.nannies, fit.encoder.transform(w_frame, w_prediction), np.ones(size))
                        for metric, estimate in sums.estimates(confidence=0.95).items():
                            rows.append(
                                {
                                    "intervals": name,
                                    "replicate": replicate,
                                    "scenario": scenario,
                                    "size": size,
                                    "window": window,
                                    "metric": metric,
                                    "covered": estimate.lower <= truth[metric] <= estimate.upper,
                                    "width": estimate.upper - estimate.lower,
                                    "error": estimate.value - truth[metric],
                                    "z": (estimate.value - truth[metric]) / estimate.se if estimate.se else math.nan,
                                }
                            )
    return pd.DataFrame(rows), seconds


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Coverage with its binomial and by-reference standard errors, the mean width, the RMS error, the RMS of the
    error over its standard error (1 when the standard errors are right) and the intervals of no width, per cell."""

    def cell(group: pd.DataFrame) -> pd.Series:
        p = float(group["covered"].mean())
        by_reference = group.groupby("replicate")["covered"].mean()
        return pd.Series(
            {
                "chunks": len(group),
                "coverage": p,
                "se_binomial": math.sqrt(p * (1 - p) / len(group)),
                "se_by_reference": float(by_reference.std(ddof=1) / math.sqrt(len(by_reference))),
                "mean_width": float(group["width"].mean()),
                "rms_error": float(np.sqrt(np.mean(group["error"] ** 2))),
                "rms_z": float(np.sqrt(np.nanmean(group["z"] ** 2))),
                "zero_se": int(group["z"].isna().sum()),
            }
        )

    keys = ["metric", "scenario", "size", "intervals"]
    return results.groupby(keys, sort=True)[list(results.columns)].apply(cell)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--references", type=int, default=40, help="replicates, each with a fresh reference")
    parser.add_argument("--windows", type=int, default=5, help="windows per reference, scenario and size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2_000, 10_000])
    parser.add_argument("--reference", type=int, default=5_000, help="labelled reference rows")
    parser.add_argument("--before", default=BEFORE, help="the commit whose intervals are measured alongside")
    parser.add_argument("--skip-before", action="store_true", help="measure this tree's intervals only")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    from analyzers.stats import loss_estimation

    implementations: dict[str, types.ModuleType] = {"after": loss_estimation}
    if not args.skip_before:
        implementations = {"before": load_before(args.before), **implementations}
    load = os.getloadavg()
    results, seconds = run(
        implementations, references=args.references, windows=args.windows, sizes=args.sizes, n_reference=args.reference
    )
    table = summary(results)
    show: Callable[[float], str] = "{:.3f}".format
    print(
        f"direct loss estimation, 95% intervals: {args.references} references of {args.reference:,} rows,"
        f" {args.windows} windows per reference, scenario and size"
    )
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(table.to_string(float_format=show))
    for name, total in seconds.items():
        print(f"{name}: fitting the loss models took {total / args.references:.2f} s per reference")
    print(f"load average (1, 5, 15 min) at the start: {load}; at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
