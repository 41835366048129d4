"""Direct loss estimation benchmark: predwatch's estimation job on a regression model against NannyML 0.13.1's DLE.

Data: NannyML's own regression sample (``regression_synthetic_reference.csv``, ``regression_synthetic_analysis.csv``
and ``regression_synthetic_analysis_targets.csv``: used-car prices), taken from the wheel that
``pip download nannyml==0.13.1 --no-deps`` fetches.  Setup (not timed) writes it through predwatch's
``PredictionLogger``: the 60,000 reference predictions with their labels, then the 60,000 analysis predictions
without labels, each chunk of 6,000 (NannyML's tutorial chunking) one hour.

Measured, each tool in its own process: predwatch's estimation job over every hour in one call
(``run_windows``), through the ``LocalStore`` reading the log files; NannyML's ``DLE`` (MAE and RMSE,
``chunk_size=6000``, no hyperparameter tuning), fit and estimate timed on DataFrames already in memory, run from
``benchmarks/.venv-baselines`` (see ``bench_estimation.py`` for how to create it).

Error: the mean absolute difference between each chunk's estimated and realized MAE and RMSE (realized from the
targets file), how many chunks' realized value falls inside the estimate's interval, and the interval's mean
half-width (predwatch's at 95%; NannyML's is three of its sampling standard deviations).

Run: ``python benchmarks/bench_dle.py`` (``--skip-baselines``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from peak_memory import peak_rss_mib  # benchmarks/, on the path when run as a script

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "dle"
WHEELS = HERE / "data" / "estimation" / "nannyml-sample" / "wheel"
BASELINES_PYTHON = HERE / ".venv-baselines" / "bin" / "python"
NANNYML = "nannyml==0.13.1"
SAMPLE = (
    "regression_synthetic_reference.csv",
    "regression_synthetic_analysis.csv",
    "regression_synthetic_analysis_targets.csv",
)
FEATURES = ["car_age", "km_driven", "price_new", "accident_count", "door_count", "fuel", "transmission"]
CATEGORICAL = ("fuel", "transmission")
CHUNK = 6_000
REFERENCE_START = datetime(2026, 1, 1, tzinfo=timezone.utc)
ANALYSIS_START = datetime(2026, 1, 2, tzinfo=timezone.utc)
MODEL = "cars"
METRICS = ["mae", "rmse"]


def fetch(folder: Path) -> dict[str, pd.DataFrame]:
    """NannyML's regression sample, extracted from its wheel (downloaded once with pip)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not all((folder / name).exists() for name in SAMPLE):
        if not list(WHEELS.glob("nannyml-*.whl")):
            command = [sys.executable, "-m", "pip", "download", NANNYML, "--no-deps", "-d", str(WHEELS), "-q"]
            subprocess.run(command, check=True)
        (wheel,) = WHEELS.glob("nannyml-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for name in SAMPLE:
                (folder / name).write_bytes(archive.read(f"nannyml/datasets/data/{name}"))
    return {name: pd.read_csv(folder / name) for name in SAMPLE}


def frames(sample: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference spread over a day, the analysis (with its targets) one chunk per hour."""
    reference = sample["regression_synthetic_reference.csv"].copy()
    analysis = sample["regression_synthetic_analysis.csv"].merge(
        sample["regression_synthetic_analysis_targets.csv"], on="id"
    )
    reference["timestamp"] = pd.Timestamp(REFERENCE_START) + pd.to_timedelta(
        np.arange(len(reference)) * (80_000.0 / len(reference)), unit="s"
    )
    index = np.arange(len(analysis))
    offsets = (index // CHUNK) * 3_600.0 + (index % CHUNK) * (3_000.0 / CHUNK)
    analysis["timestamp"] = pd.Timestamp(ANALYSIS_START) + pd.to_timedelta(offsets, unit="s")
    return reference, analysis


def write_logs(log_dir: Path, reference: pd.DataFrame, analysis: pd.DataFrame) -> None:
    from logshipper import PredictionLogger, configure, flush, shutdown

    configure(service="cars-api", log_dir=log_dir)
    plog = PredictionLogger(model=MODEL, version="v1")
    try:
        for frame, labelled in ((reference, True), (analysis, False)):
            features = frame[FEATURES].to_dict("records")
            stamps = frame["timestamp"].dt.to_pydatetime()
            predictions = frame["y_pred"].to_numpy(dtype=float)
            labels = frame["y_true"].to_numpy(dtype=float)
            for i in range(len(frame)):
                pid = plog.prediction(features[i], float(predictions[i]), timestamp=stamps[i])
                if labelled:
                    plog.feedback(pid, float(labels[i]), timestamp=stamps[i] + timedelta(seconds=1))
                if i % 10_000 == 9_999 and not flush(timeout=60):
                    raise RuntimeError("the logger did not write its queue within a minute")
    finally:
        shutdown()


def setup() -> None:
    meta = {"chunk": CHUNK, "features": FEATURES, "version": 1}
    if (DATA / "meta.json").exists() and json.loads((DATA / "meta.json").read_text()) == meta:
        return
    shutil.rmtree(DATA, ignore_errors=True)
    DATA.mkdir(parents=True)
    reference, analysis = frames(fetch(DATA / "nannyml-sample"))
    reference.to_parquet(DATA / "reference.parquet")
    analysis.to_parquet(DATA / "analysis.parquet")
    write_logs(DATA / "logs", reference, analysis)
    (DATA / "meta.json").write_text(json.dumps(meta))


def run_ours() -> dict:
    from analyzers.config.models import EstimationConfig
    from analyzers.jobs.estimation import run_windows
    from analyzers.store import LocalStore, Query
    from analyzers.timeutil import Window

    chunks = len(pd.read_parquet(DATA / "analysis.parquet", columns=["id"])) // CHUNK
    windows = [
        Window(ANALYSIS_START + timedelta(hours=h), ANALYSIS_START + timedelta(hours=h + 1)) for h in range(chunks)
    ]
    reference = Window(REFERENCE_START, REFERENCE_START + timedelta(days=1))
    config = EstimationConfig(reference={"start": reference.start, "end": reference.end}, window="1h")
    with LocalStore(DATA / "logs", DATA / "state") as store:
        store.count(Query(model=MODEL, window=Window(reference.start, windows[-1].end)))  # the scan, timed apart
        start = time.perf_counter()
        findings = [f.to_dict() for f in run_windows(store, MODEL, config, windows)]
        seconds = time.perf_counter() - start
    out: dict[str, list] = {m: [] for m in METRICS}
    bounds: dict[str, list] = {m: [] for m in METRICS}
    for finding in findings:
        if finding["status"] == "error":
            raise RuntimeError(finding["error"])
        for entry in finding["metrics"]:
            out[entry["name"]].append(entry["estimated"])
            bounds[entry["name"]].append([entry["lower"], entry["upper"]])
    return {"tool": "predwatch", "seconds": seconds, "peak_rss_mib": peak_rss_mib(), "estimates": out, "bounds": bounds}


def run_nannyml() -> dict:
    import nannyml as nml

    reference = pd.read_parquet(DATA / "reference.parquet")
    analysis = pd.read_parquet(DATA / "analysis.parquet").drop(columns=["y_true"])
    for frame in (reference, analysis):
        for column in CATEGORICAL:
            frame[column] = frame[column].astype("category")
    start = time.perf_counter()
    estimator = nml.DLE(
        feature_column_names=FEATURES,
        y_pred="y_pred",
        y_true="y_true",
        timestamp_column_name="timestamp",
        metrics=METRICS,
        chunk_size=CHUNK,
        tune_hyperparameters=False,
    )
    estimator.fit(reference)
    result = estimator.estimate(analysis).filter(period="analysis").to_df()
    seconds = time.perf_counter() - start
    return {
        "tool": "nannyml",
        "seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
        "estimates": {m: [float(v) for v in result[(m, "value")]] for m in METRICS},
        "bounds": {
            m: [
                [float(a), float(b)]
                for a, b in zip(
                    result[(m, "lower_confidence_boundary")], result[(m, "upper_confidence_boundary")], strict=True
                )
            ]
            for m in METRICS
        },
    }


def realized() -> dict[str, list[float]]:
    analysis = pd.read_parquet(DATA / "analysis.parquet")
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for start in range(0, len(analysis), CHUNK):
        part = analysis.iloc[start : start + CHUNK]
        error = part["y_true"].to_numpy(dtype=float) - part["y_pred"].to_numpy(dtype=float)
        out["mae"].append(float(np.mean(np.abs(error))))
        out["rmse"].append(float(np.sqrt(np.mean(error**2))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--part", choices=["ours", "nannyml"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    if args.part is not None:
        print(json.dumps(run_ours() if args.part == "ours" else run_nannyml()))
        return
    load = os.getloadavg()
    setup()
    commands = [[sys.executable, __file__, "--part", "ours"]]
    if not args.skip_baselines and BASELINES_PYTHON.exists():
        commands.append([str(BASELINES_PYTHON), __file__, "--part", "nannyml"])
    environment = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
    results = []
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
        if done.returncode != 0:
            print(f"{command[0]}: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    truth = realized()
    print(
        f"direct loss estimation of {len(truth['mae'])} chunks of {CHUNK:,} unlabelled predictions (NannyML's sample)"
    )
    print(
        f"{'tool':<10} {'MAE of MAE':>10} {'MAE of RMSE':>11} {'inside (mae, rmse)':>19}"
        f" {'half-width (mae, rmse)':>23} {'seconds':>8} {'peak MiB':>9}"
    )
    for r in results:
        errors, inside, widths = [], [], []
        for m in METRICS:
            est, real = np.array(r["estimates"][m], dtype=float), np.array(truth[m])
            errors.append(float(np.mean(np.abs(est - real))))
            low, high = np.array(r["bounds"][m], dtype=float).T
            inside.append(int(np.sum((low <= real) & (real <= high))))
            widths.append(float(np.mean(high - low)) / 2)
        covered = f"{inside[0]}, {inside[1]} of {len(truth['mae'])}"
        half = f"{widths[0]:.1f}, {widths[1]:.1f}"
        print(
            f"{r['tool']:<10} {errors[0]:10.2f} {errors[1]:11.2f} {covered:>19} {half:>23}"
            f" {r['seconds']:8.2f} {r['peak_rss_mib']:9.0f}"
        )
    print("realized per chunk:", {m: [round(v) for v in truth[m]] for m in METRICS})
    for r in results:
        print(f"{r['tool']} per chunk:", {m: [round(v) for v in r["estimates"][m]] for m in METRICS})
    print(f"load average (1, 5, 15 min) at the start: {load}; at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
