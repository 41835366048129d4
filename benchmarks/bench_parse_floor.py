"""What reading JSON lines exactly costs over DuckDB's declared reader, on one daily file of the store benchmark.

DuckDB's reader with every column declared is the fastest reader ``bench_store.py`` sets the cold parse beside.
It is not exact: a number column silently takes ``"2.5"`` as 2.5 and ``true`` as 1.0, and a key it was not
told of is dropped.  The store's contract keeps ``"1"``, ``1`` and ``true`` apart and never drops a feature, so
the cold parse needs an exact read.  This benchmark measures, in one process, alternating rounds, page cache
warm and every module imported before the clocks:

- ``declared``: the declared reader (numbers as ``DOUBLE``), the speed to match;
- ``declared_json_features``: the same read with the numeric features as ``JSON`` text, the cheapest way DuckDB
  keeps a number and a string apart (the store's strict read does this, then casts);
- ``declared_numbered``: the declared read with each row's line number (``row_number() OVER ()``), which the
  store needs to name the lines it sets aside;
- ``declared_numbered_parquet``: that read written to Parquet, as the store keeps it: the least any store of
  numbered lines in Parquet does with DuckDB, exact or not, with no line checked;
- ``msgspec_check``: a separate exact check of the numeric features' types (msgspec, strict), the cheapest
  exact check found, to add to ``declared``;
- ``pyarrow_exact``: pyarrow's reader with the schema given and unknown fields refused (exact types);
- ``predwatch_cold``: the store's whole cold parse of the file (JSON to Parquet, lines checked and numbered).

Run: ``python benchmarks/bench_parse_floor.py [--rounds 3]`` (generates the store benchmark's data if missing).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.json as pa_json
from bench_store import DATA, declared_columns, generate  # benchmarks/, on the path when run as a script

from analyzers.store import LocalStore, Query
from analyzers.timeutil import Window

DAY = "2026-11-01"


def _pyarrow_schema() -> pa.Schema:
    """The generated lines' fields as pyarrow types (the same declaration as ``declared_columns``)."""
    text = pa.string()
    features = [pa.field(f"n{j}", pa.float64()) for j in range(15)] + [pa.field(f"c{j}", text) for j in range(5)]
    ml = pa.struct(
        [
            ("prediction_id", text),
            ("model", pa.struct([("name", text), ("version", text)])),
            ("features", pa.struct(features)),
            ("prediction", pa.struct([("label", pa.int64()), ("score", pa.float64())])),
            ("groups", pa.struct([("region", text)])),
            ("latency_ms", pa.float64()),
        ]
    )
    fields = [("@timestamp", text), ("log.level", text), ("message", text), ("ecs.version", text)]
    event = pa.struct([("dataset", text), ("kind", text), ("outcome", text)])
    return pa.schema([*fields, ("event", event), ("service", pa.struct([("name", text)])), ("ml", ml)])


def _msgspec_decoder() -> msgspec.json.Decoder:
    """A strict decoder of the numeric features alone: a string, a boolean or a fraction in the wrong place fails."""
    features = msgspec.defstruct("Features", [(f"n{j}", float | None, None) for j in range(15)], gc=False)
    ml = msgspec.defstruct("Ml", [("features", features | None, None)], gc=False)
    return msgspec.json.Decoder(msgspec.defstruct("Line", [("ml", ml | None, None)], gc=False))


def measurements(path: Path, folder: Path) -> dict[str, Callable[[], int]]:
    """Each measurement as a function of no arguments returning the rows it read."""
    con = duckdb.connect(config={"threads": os.cpu_count() or 1})

    def duck(numbers: str, numbered: bool = False, parquet: bool = False) -> Callable[[], int]:
        extra = "row_number() OVER () AS line_no, " if numbered else ""
        columns = declared_columns(numbers)
        sql = f"SELECT {extra}* FROM read_json('{path}', format='newline_delimited', columns={columns})"
        if parquet:
            copy = f"COPY ({sql}) TO '{folder / 'declared.parquet'}' (FORMAT parquet)"
            return lambda: con.execute(copy).fetchall()[0][0]
        return lambda: con.sql(sql).to_arrow_table().num_rows

    decoder = _msgspec_decoder()
    options = pa_json.ParseOptions(explicit_schema=_pyarrow_schema(), unexpected_field_behavior="error")
    query = Query("fraud", Window(f"{DAY}T00:00:00Z", "2026-11-02T00:00:00Z"))

    def predwatch() -> int:
        state = folder / "state"
        shutil.rmtree(state, ignore_errors=True)
        with LocalStore(folder / "logs", state) as store:
            return store.count(query)

    return {
        "declared": duck("DOUBLE"),
        "declared_json_features": duck("JSON"),
        "declared_numbered": duck("DOUBLE", numbered=True),
        "declared_numbered_parquet": duck("DOUBLE", numbered=True, parquet=True),
        "msgspec_check": lambda: len(decoder.decode_lines(path.read_bytes())),
        "pyarrow_exact": lambda: pa_json.read_json(path, parse_options=options).num_rows,
        "predwatch_cold": predwatch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    source = generate(1_000_000) / "fraud-api" / f"predictions-{DAY}.ndjson"
    folder = DATA / "floor"
    path = folder / "logs" / "fraud-api" / source.name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
    now = time.time()
    os.utime(path, (now, now))  # as if still written: the cold parse is the parse alone, nothing compacted
    path.read_bytes()  # the page cache holds the file for every reader alike
    size_mib = path.stat().st_size / 2**20
    load = os.getloadavg()
    print(f"{path.name}: {size_mib:.0f} MiB; {os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f}")
    runs = measurements(path, folder)
    best: dict[str, tuple[float, float]] = {}
    rows: dict[str, int] = {}
    for _ in range(args.rounds):  # alternating: every measurement once per round
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            rows[name] = int(run())
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            old = best.get(name, (wall, cpu))
            best[name] = (min(old[0], wall), min(old[1], cpu))
    base_wall, base_cpu = best["declared"]
    print(f"best of {args.rounds} rounds, against the declared reader in the same run:")
    print(f"  {'measurement':<24} {'wall s':>7} {'cpu s':>7} {'wall ratio':>10} {'cpu ratio':>10} {'rows':>8}")
    for name, (wall, cpu) in best.items():
        print(f"  {name:<26} {wall:7.2f} {cpu:7.2f} {base_wall / wall:10.2f} {base_cpu / cpu:10.2f} {rows[name]:>8,}")
    check_wall, check_cpu = best["msgspec_check"]
    print(
        "  declared + msgspec_check (the exact check as a second pass):"
        f" wall ratio {base_wall / (base_wall + check_wall):.2f}, cpu ratio {base_cpu / (base_cpu + check_cpu):.2f}"
    )
    floor = max(
        base_cpu / best["declared_json_features"][1],
        base_cpu / (base_cpu + check_cpu),
        base_cpu / best["pyarrow_exact"][1],
    )
    print(f"  the cheapest exact read bounds an exact parse (before numbering, checks, Parquet): cpu ratio {floor:.2f}")


if __name__ == "__main__":
    main()
