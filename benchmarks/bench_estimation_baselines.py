"""Baseline for ``bench_estimation.py``: NannyML 0.13.1's CBPE and DataReconstructionDriftCalculator.

Runs inside ``benchmarks/.venv-baselines`` on the Parquet files the benchmark wrote; loading them is not
timed, fitting and estimating are.  Prints one JSON object: seconds, peak resident memory (MiB), each
chunk's estimated ROC AUC and accuracy, and whether each chunk's reconstruction error alerted; chunks of
5,000 (``--chunking hourly``) or the whole analysis period as one chunk (``--chunking whole``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
from peak_memory import peak_rss_mib  # benchmarks/, on the path when run as a script

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


def main() -> None:
    import nannyml as nml

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--chunking", choices=["hourly", "whole"], default="hourly")
    args = parser.parse_args()
    chunking = {"chunk_size": CHUNK} if args.chunking == "hourly" else {"chunk_number": 1}
    reference = pd.read_parquet(args.data / "reference.parquet")
    analysis = pd.read_parquet(args.data / "analysis.parquet").drop(columns=["work_home_actual"])
    loaded = peak_rss_mib()
    start = time.perf_counter()
    estimator = nml.CBPE(
        y_pred_proba="y_pred_proba",
        y_pred="y_pred",
        y_true="work_home_actual",
        timestamp_column_name="timestamp",
        metrics=["roc_auc", "accuracy"],
        **chunking,
        problem_type="classification_binary",
    )
    estimator.fit(reference)
    estimated = estimator.estimate(analysis).filter(period="analysis").to_df()
    cbpe = time.perf_counter()
    calculator = nml.DataReconstructionDriftCalculator(
        column_names=FEATURES, timestamp_column_name="timestamp", **chunking
    )
    calculator.fit(reference)
    reconstructed = calculator.calculate(analysis).filter(period="analysis").to_df()
    done = time.perf_counter()
    json.dump(
        {
            "estimation_seconds": cbpe - start,
            "multivariate_seconds": done - cbpe,
            "peak_rss_mib": peak_rss_mib(),
            "rss_after_load_mib": loaded,
            "estimates": {
                "roc_auc": [float(v) for v in estimated[("roc_auc", "value")]],
                "accuracy": [float(v) for v in estimated[("accuracy", "value")]],
            },
            "drifted": [bool(v) for v in reconstructed[("reconstruction_error", "alert")]],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
