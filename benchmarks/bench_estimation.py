"""Estimation benchmark: predwatch's estimation job and PCA multivariate drift against NannyML 0.13.1.

Data: NannyML's own binary-classification sample (``synthetic_sample_reference.csv``,
``synthetic_sample_analysis.csv``, ``synthetic_sample_analysis_gt.csv``), taken from the wheel that
``pip download nannyml==0.13.1 --no-deps`` fetches.  Setup (not timed) writes it through predwatch's
``PredictionLogger``: the 50,000 reference predictions with their labels (feedback), then the 50,000
analysis predictions without labels, repeated to ``--rows`` (1,000,000 by default) and cut into chunks
of 5,000, one hour each; Parquet copies go to the baselines.

Measured, each tool in its own process:

* predwatch: the estimation job (ROC AUC and accuracy, calibration ``auto``) over every hour, through
  the ``LocalStore`` reading the log files; and the drift job's multivariate step (``pca``) over every
  hour.  "predwatch" judges all hours in one call (``run_windows``, ``multivariate_windows``: a fixed number
  of store queries, the hours' rows read in one pass), as NannyML judges its chunks; "one window" is the
  whole period as one window (aggregates); ``--per-hour`` adds one job run per hour, as a scheduler runs
  them (five store queries each).  Cold: the JSON lines are parsed (nothing kept from an earlier run);
  warm: the days the cold run parsed are read back as Parquet, as a scheduler's later runs do.
* NannyML: ``CBPE`` (same metrics, ``chunk_size=5000``) and ``DataReconstructionDriftCalculator``
  (``chunk_size=5000``), fit and estimate timed on DataFrames already in memory, run from
  ``benchmarks/.venv-baselines`` (see ``bench_estimation_baselines.py``).

Error: the mean absolute difference between each chunk's estimated and realized ROC AUC and accuracy
(realized from ``synthetic_sample_analysis_gt.csv``).  The repeated chunks hold the same predictions,
so the error over all chunks is the error over the sample's ten.

Run: ``python benchmarks/bench_estimation.py`` (``--rows 50000`` for the sample alone; ``--skip-baselines``;
``--repeat N`` runs each tool N times and keeps its fastest run, 3 by default, since machines are shared).
Create the baselines' environment once with ``python -m venv benchmarks/.venv-baselines`` and
``benchmarks/.venv-baselines/bin/pip install nannyml==0.13.1 statsmodels "pandas<3"``.
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
DEFAULT_DATA = HERE / "data" / "estimation"
BASELINES_PYTHON = HERE / ".venv-baselines" / "bin" / "python"
NANNYML = "nannyml==0.13.1"
SAMPLE = ("synthetic_sample_reference.csv", "synthetic_sample_analysis.csv", "synthetic_sample_analysis_gt.csv")
FEATURES = [
    "distance_from_office",
    "salary_range",
    "gas_price_per_litre",
    "public_transportation_cost",
    "wfh_prev_workday",
    "workday",
    "tenure",
]
CHUNK = 5_000
REFERENCE_START = datetime(2026, 1, 1, tzinfo=timezone.utc)
ANALYSIS_START = datetime(2026, 1, 2, tzinfo=timezone.utc)
MODEL = "wfh"
METRICS = ["roc_auc", "accuracy"]


# ---- data ---------------------------------------------------------------------------------------
def fetch_sample(folder: Path) -> dict[str, pd.DataFrame]:
    """NannyML's three sample files, extracted from its wheel (downloaded once with pip)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not all((folder / name).exists() for name in SAMPLE):
        wheels = folder / "wheel"
        command = [sys.executable, "-m", "pip", "download", NANNYML, "--no-deps", "-d", str(wheels), "-q"]
        subprocess.run(command, check=True)
        (wheel,) = wheels.glob("nannyml-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for name in SAMPLE:
                (folder / name).write_bytes(archive.read(f"nannyml/datasets/data/{name}"))
    return {name: pd.read_csv(folder / name) for name in SAMPLE}


def analysis_frame(sample: dict[str, pd.DataFrame], rows: int) -> pd.DataFrame:
    """The analysis sample with its labels, repeated to ``rows``; each chunk of 5,000 is one hour."""
    analysis = sample["synthetic_sample_analysis.csv"].merge(sample["synthetic_sample_analysis_gt.csv"], on="id")
    repeats = -(-rows // len(analysis))
    frame = pd.concat([analysis] * repeats, ignore_index=True).iloc[:rows].copy()
    index = np.arange(rows)
    offsets = (index // CHUNK) * 3_600.0 + (index % CHUNK) * (3_000.0 / CHUNK)
    frame["timestamp"] = pd.Timestamp(ANALYSIS_START) + pd.to_timedelta(offsets, unit="s")
    frame["id"] = [f"a{i}" for i in index]
    return frame


def reference_frame(sample: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The reference sample, its predictions spread over the hours of ``REFERENCE_START``'s day."""
    frame = sample["synthetic_sample_reference.csv"].copy()
    frame["timestamp"] = pd.Timestamp(REFERENCE_START) + pd.to_timedelta(
        np.arange(len(frame)) * (80_000.0 / len(frame)), unit="s"
    )
    frame["id"] = [f"r{i}" for i in range(len(frame))]
    return frame


def write_logs(log_dir: Path, reference: pd.DataFrame, analysis: pd.DataFrame) -> None:
    """Both periods through PredictionLogger; feedback (the label) for the reference only."""
    from logshipper import PredictionLogger, configure, flush, shutdown

    configure(service="wfh-api", log_dir=log_dir)
    plog = PredictionLogger(model=MODEL, version="v1")
    try:
        for frame, labelled in ((reference, True), (analysis, False)):
            features = frame[FEATURES].to_dict("records")
            stamps = frame["timestamp"].dt.to_pydatetime()
            scores = frame["y_pred_proba"].to_numpy(dtype=float)
            predictions = frame["y_pred"].to_numpy(dtype=int)
            labels = frame["work_home_actual"].to_numpy(dtype=int)
            for i in range(len(frame)):
                pid = plog.prediction(features[i], int(predictions[i]), score=float(scores[i]), timestamp=stamps[i])
                if labelled:
                    plog.feedback(pid, int(labels[i]), timestamp=stamps[i] + timedelta(seconds=1))
                if i % 10_000 == 9_999 and not flush(timeout=60):  # the logger drops what its queue cannot hold
                    raise RuntimeError("the logger did not write its queue within a minute")
    finally:
        shutdown()


def setup(data: Path, rows: int) -> None:
    """Fetch the sample, write the logs and the baselines' Parquet files unless they exist for this size."""
    meta = {"rows": rows, "chunk": CHUNK, "features": FEATURES, "version": 2}
    meta_path = data / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()) == meta:
        return
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    started = time.perf_counter()
    sample = fetch_sample(data.parent / "nannyml-sample")
    reference, analysis = reference_frame(sample), analysis_frame(sample, rows)
    reference.to_parquet(data / "reference.parquet")
    analysis.to_parquet(data / "analysis.parquet")
    write_logs(data / "logs", reference, analysis)
    meta_path.write_text(json.dumps(meta))
    print(f"setup: logged {len(reference) + len(analysis):,} predictions in {time.perf_counter() - started:.0f} s")


def realized(data: Path) -> dict[str, list[float]]:
    """Each chunk's realized ROC AUC and accuracy from the ground truth."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    analysis = pd.read_parquet(data / "analysis.parquet")
    out: dict[str, list[float]] = {"roc_auc": [], "accuracy": []}
    for start in range(0, len(analysis), CHUNK):
        part = analysis.iloc[start : start + CHUNK]
        out["roc_auc"].append(float(roc_auc_score(part["work_home_actual"], part["y_pred_proba"])))
        out["accuracy"].append(float(accuracy_score(part["work_home_actual"], part["y_pred"])))
    return out


# ---- predwatch ----------------------------------------------------------------------------------
def run_ours(data: Path, part: str) -> dict:
    """The estimation job, then the PCA multivariate step, over every hour: one job run per hour (``hourly``, as
    a scheduler runs them), all hours in one call (``batch``: ``run_windows`` and ``multivariate_windows``, as a
    backfill or the report's trend), or the whole analysis period as one window (``whole``)."""
    from analyzers.config.models import DriftConfig, EstimationConfig
    from analyzers.jobs.estimation import run as estimate
    from analyzers.jobs.estimation import run_windows
    from analyzers.jobs.multivariate import multivariate_drift, multivariate_windows
    from analyzers.store import LocalStore, Query
    from analyzers.timeutil import Window

    hours = -(-json.loads((data / "meta.json").read_text())["rows"] // CHUNK)
    windows = [
        Window(ANALYSIS_START + timedelta(hours=h), ANALYSIS_START + timedelta(hours=h + 1)) for h in range(hours)
    ]
    if part == "whole":
        windows = [Window(windows[0].start, windows[-1].end)]
    reference = Window(REFERENCE_START, REFERENCE_START + timedelta(days=1))
    fixed = {"start": reference.start, "end": reference.end}
    estimation = EstimationConfig(reference=fixed, window=windows[0].length, metrics=METRICS)
    drift = DriftConfig(reference=fixed, multivariate={"method": "pca"})
    estimates: dict[str, list[float | None]] = {m: [] for m in METRICS}
    start = time.perf_counter()
    with LocalStore(data / "logs", data / "state") as store:
        ref_query = Query(model=MODEL, window=reference, outcome="success")
        store.count(ref_query)  # the store's scan of the reference day, timed apart
        scanned = time.perf_counter()
        if part == "batch":
            findings = run_windows(store, MODEL, estimation, windows)
        else:
            findings = [estimate(store, MODEL, estimation, window) for window in windows]
        for finding in findings:
            if finding.status == "error":
                raise RuntimeError(finding.error)
            for entry in finding.to_dict()["metrics"]:
                estimates[entry["name"]].append(entry["estimated"])
        estimated = time.perf_counter()
        columns = {c.name: c.kind for c in store.columns(ref_query) if c.name.startswith("features.")}
        described = {"window": reference.to_dict(), "n": store.count(ref_query)}
        queries = [Query(model=MODEL, window=window, outcome="success") for window in windows]
        if part == "batch":
            joint = multivariate_windows((store, ref_query), store, queries, columns, drift, reference=described)
        else:
            joint = [
                multivariate_drift((store, ref_query), (store, q), columns, drift, reference=described)[0]
                for q in queries
            ]
        reconstructed = time.perf_counter()
    last = findings[-1].to_dict()
    return {
        "tool": {"hourly": "predwatch, per hour", "batch": "predwatch", "whole": "predwatch, one window"}[part],
        "windows": len(windows),
        "reference_scan_seconds": scanned - start,
        "estimation_seconds": estimated - scanned,
        "multivariate_seconds": reconstructed - estimated,
        "peak_rss_mib": peak_rss_mib(),
        "estimates": estimates,
        "drifted": [j.drifted for j in joint],
        "calibration": (last.get("calibration") or {}).get("method"),
        "window_read": last.get("window_read"),
    }


def settle(log_dir: Path) -> None:
    """Date the log files an hour back: a finished day's file, which the store parses once and keeps."""
    settled = time.time() - 3_600
    for path in log_dir.rglob("*.ndjson"):
        os.utime(path, (settled, settled))


# ---- driver -------------------------------------------------------------------------------------
def subprocess_json(command: list[str]) -> dict:
    environment = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}  # NannyML reports usage over the network
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="analysis predictions (the sample repeated)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the fastest counts (a shared machine)")
    parser.add_argument("--part", choices=["hourly", "batch", "whole"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--per-hour", action="store_true", help="also time one job run per hour (slow: ~5 queries each)"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))  # the repository, when run as a script from anywhere
    if args.part is not None:
        print(json.dumps(run_ours(args.data, args.part)))
        return
    data = args.data / str(args.rows)
    load = os.getloadavg()  # the machine is shared: the other load is reported with the times
    setup(data, args.rows)
    settle(data / "logs")
    shutil.rmtree(data / "state", ignore_errors=True)  # cold: nothing parsed yet

    def ours(part: str, repeat: int = args.repeat) -> dict:
        return fastest([sys.executable, __file__, "--part", part, "--data", str(data)], repeat)

    cold = ours("batch", repeat=1)
    results = [ours("batch"), {**cold, "tool": "predwatch, cold"}, ours("whole")]
    if args.per_hour:
        results.append(ours("hourly", repeat=1))
    if not args.skip_baselines:
        script = str(HERE / "bench_estimation_baselines.py")
        for chunking in ("hourly", "whole"):
            if BASELINES_PYTHON.exists():
                command = [str(BASELINES_PYTHON), script, "--data", str(data), "--chunking", chunking]
                measured = fastest(command, args.repeat)
            else:
                measured = {"error": f"{BASELINES_PYTHON} missing (see --help)"}
            results.append({"tool": "nannyml" if chunking == "hourly" else "nannyml, one chunk", **measured})
    report(results, realized(data), args.rows)
    print(f"load average (1, 5, 15 min) at the start: {load}; at the end: {os.getloadavg()}")


def fastest(command: list[str], repeat: int) -> dict:
    """The run of ``command`` with the least estimation plus multivariate time among ``repeat`` runs."""
    runs = [subprocess_json(command) for _ in range(max(repeat, 1))]
    done = [r for r in runs if "error" not in r]
    if not done:
        return runs[0]
    best = min(done, key=lambda r: r["estimation_seconds"] + r["multivariate_seconds"])
    return {**best, "runs": len(done)}


def _mae(estimates: list[float | None], truth: list[float]) -> float:
    pairs = [(e, t) for e, t in zip(estimates, truth, strict=True) if e is not None]
    return float(np.mean([abs(e - t) for e, t in pairs])) if pairs else float("nan")


def report(results: list[dict], truth: dict[str, list[float]], rows: int) -> None:
    chunks = len(truth["roc_auc"])
    print(f"estimation of {rows:,} unlabelled predictions in {chunks} chunks of {CHUNK:,} (NannyML's sample)")
    header = f"{'tool':<22} {'chunks':>6} {'MAE roc_auc':>11} {'MAE accuracy':>12} {'CBPE s':>8} {'PCA drift s':>11}"
    print(header + f" {'peak MiB':>9}")
    for r in results:
        if "error" in r:
            print(f"{r.get('tool', '?'):<22} error: {r['error']}")
            continue
        chunked = len(r["estimates"]["roc_auc"]) == chunks
        errors = [_mae(r["estimates"][m], truth[m]) if chunked else float("nan") for m in METRICS]
        print(
            f"{r['tool']:<22} {len(r['estimates']['roc_auc']):>6} {errors[0]:11.6f} {errors[1]:12.6f}"
            f" {r['estimation_seconds']:8.2f} {r['multivariate_seconds']:11.2f} {r['peak_rss_mib']:9.0f}"
        )
    by_tool = {r["tool"]: r for r in results if "error" not in r}
    pairs = (
        ("predwatch", "nannyml"),
        ("predwatch, one window", "nannyml, one chunk"),
        ("predwatch, per hour", "nannyml"),
    )
    for ours, theirs in pairs:
        if ours in by_tool and theirs in by_tool:
            a, b = by_tool[ours], by_tool[theirs]
            speed = {k: b[k] / a[k] for k in ("estimation_seconds", "multivariate_seconds")}
            agree = sum(x == y for x, y in zip(a["drifted"], b["drifted"], strict=False))
            print(
                f"{theirs} seconds / {ours} seconds: estimation {speed['estimation_seconds']:.2f}x, multivariate"
                f" {speed['multivariate_seconds']:.2f}x; drift verdicts agree on {agree} of {len(a['drifted'])}"
            )
    print(
        "(predwatch reads the log files through its store, the reference's day scanned first and timed apart;"
        " 'cold' parses the JSON lines, the others read the days it kept as Parquet."
        " NannyML's time excludes loading its DataFrames.)"
    )
    print(json.dumps([{k: v for k, v in r.items() if k not in ("estimates", "drifted")} for r in results], indent=1))


if __name__ == "__main__":
    main()
