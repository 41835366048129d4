"""Baselines for ``bench_drift.py``: Evidently's DataDriftPreset or NannyML's UnivariateDriftCalculator.

Runs inside ``benchmarks/.venv-baselines`` (Evidently 0.7 needs pandas < 3) on the Parquet files the
benchmark wrote; loading them is not timed, the drift computation is.  Prints one JSON object:
seconds, peak resident memory (MiB) and the columns the tool flagged.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
from peak_memory import peak_rss_mib  # benchmarks/, on the path when run as a script


def evidently_drift(ref: pd.DataFrame, cur: pd.DataFrame, numeric: list[str], categorical: list[str]) -> list[str]:
    """Columns Evidently's DataDriftPreset (its default methods and thresholds) calls drifted."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
    )
    flagged = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        value, threshold = float(metric["value"]), float(config["threshold"])
        is_p_value = "p_value" in config["method"].lower().replace("-", "_")
        if (value < threshold) if is_p_value else (value >= threshold):
            flagged.append(config["column"])
    return sorted(flagged)


def nannyml_drift(ref: pd.DataFrame, cur: pd.DataFrame, numeric: list[str], categorical: list[str]) -> list[str]:
    """Columns NannyML's UnivariateDriftCalculator (default methods, 10 chunks) alerts on in any chunk."""
    import nannyml as nml

    calc = nml.UnivariateDriftCalculator(column_names=numeric + categorical, chunk_number=10)
    calc.fit(ref)
    frame = calc.calculate(cur).filter(period="analysis").to_df()
    flagged = set()
    for column in numeric + categorical:
        alerts = [c for c in frame.columns if c[0] == column and c[2] == "alert"]
        if any(frame[c].astype(bool).any() for c in alerts):
            flagged.add(column)
    return sorted(flagged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("tool", choices=["evidently", "nannyml"])
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    meta = json.loads((args.data / "meta.json").read_text())
    numeric, categorical = meta["numeric"], meta["categorical"]
    ref = pd.read_parquet(args.data / "reference.parquet")
    cur = pd.read_parquet(args.data / "current.parquet")
    for frame in (ref, cur):
        for column in categorical:
            frame[column] = frame[column].astype("category")
    loaded = peak_rss_mib()
    start = time.perf_counter()
    flagged = (evidently_drift if args.tool == "evidently" else nannyml_drift)(ref, cur, numeric, categorical)
    seconds = time.perf_counter() - start
    json.dump(
        {
            "tool": args.tool,
            "seconds": seconds,
            "peak_rss_mib": peak_rss_mib(),
            "rss_after_load_mib": loaded,
            "flagged": flagged,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
