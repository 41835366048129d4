"""Replay: re-run logged inputs through a model and compare with what was logged; export logged predictions.

The model is ``"module:attribute"`` (dots after the colon reach into the module: ``pkg.mod:Model.load``) or
an object.  An object with ``predict`` is called with a DataFrame of the features (columns ordered as its
``feature_names_in_`` when it has them; a class with ``predict`` is first instantiated without
arguments) and, if it has ``predict_proba``, scored with the probability of
the second class (binary) or the largest probability (more classes).  A plain callable receives a DataFrame
of the features, or a list of dicts when ``features_as="records"``; with the default ``"auto"`` a callable
whose first parameter is annotated as a list/sequence gets records, any other gets a DataFrame and, should
that raise TypeError, KeyError, AttributeError or IndexError, records.  It returns one of: a sequence of
predictions; a sequence of ``(prediction, score)`` pairs or of dicts with ``prediction`` (or ``label``) and
``score``; a DataFrame with those columns; or a tuple ``(predictions, scores)``.  Predictions match when
equal as classes (``1``, ``1.0`` and ``True`` alike) or, for non-integral numbers, within the tolerance;
scores mismatch when they differ by more than it.

The tolerance is ``atol + rtol * |logged|``.  ``rtol`` (default ``DEFAULT_RTOL``) absorbs the float noise of
recomputing a value; ``atol`` defaults to half a unit in the last decimal place the logged values were written
with (the most decimals among a sample of them), so a service that logs scores rounded to 5 decimals is
compared within 5e-06.  The logger itself does not round: it writes each float's shortest exact form, so
for its scores ``atol`` is negligible and only ``rtol`` counts.
"""

from __future__ import annotations

import heapq
import importlib
import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analyzers.findings import Finding, ReplayMetrics, Signal, Status
from analyzers.findings.replay import Mismatch, Tolerance
from analyzers.jobs.base import error_finding
from analyzers.stats.performance import normalize_label
from analyzers.store.base import PredictionReader, Query
from analyzers.timeutil import Window, utcnow

JOB = "replay"
FEATURE_PREFIX = "features."
DEFAULT_LOOKBACK = timedelta(days=365)
EXAMPLES = 10
DEFAULT_RTOL = 1e-9  # relative float noise of recomputing a value (summation order, another BLAS)
PRECISION_SAMPLE = 2_000  # logged values looked at to tell how many decimals they were written with
EXPORT_COLUMNS = (
    "prediction_id",
    "timestamp",
    "model_version",
    "entity_id",
    "outcome",
    "prediction",
    "score",
    "label",
    "latency_ms",
    "error_type",
    "error_message",
)

Predictor = Callable[[pd.DataFrame], tuple[list[Any], np.ndarray | None]]


def replay(
    store: PredictionReader,
    model: str,
    window: Window | None = None,
    *,
    entity_id: str | Sequence[str] | None = None,
    prediction_ids: Sequence[str] | None = None,
    target: str | Any = "module:callable",
    atol: float | None = None,
    rtol: float = DEFAULT_RTOL,
    features_as: str = "auto",
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> Finding:
    """Re-run the selected logged predictions of ``model`` through ``target`` and report mismatches.

    Without a window, an entity or ids select from the last ``lookback``.  ``atol=None`` takes the absolute
    tolerance from the precision of the logged values (see the module docstring).  Never raises: a bad
    target or a failing model gives an ``error`` finding with the message.
    """
    span = window or Window(utcnow() - lookback, utcnow() + timedelta(minutes=1))
    try:
        if window is None and entity_id is None and not prediction_ids:
            raise ValueError("replay needs a window, an entity_id or prediction ids")
        if rtol < 0 or (atol is not None and atol < 0):
            raise ValueError("tolerances cannot be negative")
        query = _query(model, span, entity_id, prediction_ids)
        predictor = load_predictor(target, features_as)
        return _compare(store, query, predictor, _describe(target), tolerances(store, query, atol, rtol))
    except Exception as exc:  # replay reports its failure instead of raising
        return error_finding(model, JOB, span, exc)


def logged_decimals(values: Iterable[Any]) -> int | None:
    """The most decimal places among the finite numbers, each read in its shortest exact form (as logged)."""
    most: int | None = None
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        exponent = Decimal(repr(float(value))).as_tuple().exponent
        decimals = max(0, -int(exponent))
        most = decimals if most is None else max(most, decimals)
    return most


def tolerances(store: PredictionReader, query: Query, atol: float | None, rtol: float) -> dict[str, Tolerance]:
    """The score's and the (numeric) prediction's tolerance: ``atol`` when given, else from the logged precision."""
    if atol is not None:
        given = Tolerance(atol, rtol, "given")
        return {"score": given, "prediction": given}
    present = [c.name for c in store.columns(query) if c.name in ("score", "prediction") and c.kind == "numeric"]
    sample = store.sample(query, PRECISION_SAMPLE, columns=present) if present else None
    out = {}
    for column in ("score", "prediction"):
        values = sample[column].tolist() if sample is not None and column in sample else []
        decimals = logged_decimals(values)
        if decimals is None:
            out[column] = Tolerance(0.0, rtol, f"no numeric {column} logged")
        else:
            half_unit = 0.5 * 10.0**-decimals
            out[column] = Tolerance(half_unit, rtol, f"{column}s logged with at most {decimals} decimals")
    return out


def _query(model: str, window: Window, entity_id: Any, prediction_ids: Sequence[str] | None) -> Query:
    entities = None if entity_id is None else ((entity_id,) if isinstance(entity_id, str) else tuple(entity_id))
    ids = tuple(prediction_ids) if prediction_ids else None
    return Query(model=model, window=window, entity_ids=entities, prediction_ids=ids, outcome="success")


def _describe(target: Any) -> str:
    return target if isinstance(target, str) else f"{type(target).__module__}.{type(target).__qualname__}"


def resolve_target(target: str | Any) -> Any:
    """Import ``module:attribute[.attribute...]``; anything that is not a string is returned as is."""
    if not isinstance(target, str):
        return target
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"model target {target!r} must look like 'package.module:callable'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} of model target {target!r}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"model target {target!r}: {module_name} has no attribute {attr_path!r}") from None
    return obj


def load_predictor(target: str | Any, features_as: str = "auto") -> Predictor:
    """A function from a features DataFrame to (predictions, scores or None), whatever the target's kind."""
    if features_as not in ("auto", "frame", "records"):
        raise ValueError(f"features_as must be auto, frame or records, not {features_as!r}")
    obj = resolve_target(target)
    if inspect.isclass(obj) and hasattr(obj, "predict"):
        obj = obj()
    if hasattr(obj, "predict"):
        return _estimator(obj)
    if not callable(obj):
        raise ValueError(f"model target {_describe(target)!r} is neither callable nor has predict()")
    return _callable(obj, features_as)


def _estimator(est: Any) -> Predictor:
    names = getattr(est, "feature_names_in_", None)

    def predict(frame: pd.DataFrame) -> tuple[list[Any], np.ndarray | None]:
        x = frame[list(names)] if names is not None else frame
        labels = list(np.asarray(est.predict(x)).tolist())
        scores = None
        if hasattr(est, "predict_proba"):
            proba = np.asarray(est.predict_proba(x), dtype=float)
            scores = proba[:, 1] if proba.ndim == 2 and proba.shape[1] == 2 else proba.max(axis=1)
        return labels, scores

    return predict


def _callable(fn: Callable[..., Any], features_as: str) -> Predictor:
    mode = features_as if features_as != "auto" else _annotated_mode(fn)

    def predict(frame: pd.DataFrame) -> tuple[list[Any], np.ndarray | None]:
        def records() -> list[dict[str, Any]]:
            return [{k: (None if _is_missing(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]

        if mode == "records":
            out = fn(records())
        elif mode == "frame":
            out = fn(frame)
        else:
            try:
                out = fn(frame)
            except (TypeError, KeyError, AttributeError, IndexError):
                out = fn(records())
        return _outputs(out, len(frame))

    return predict


def _annotated_mode(fn: Callable[..., Any]) -> str:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return "auto"
    if not params or params[0].annotation is inspect.Parameter.empty:
        return "auto"
    text = str(params[0].annotation).lower()
    if "dataframe" in text:
        return "frame"
    if any(word in text for word in ("list", "sequence", "iterable", "dict")):
        return "records"
    return "auto"


def _outputs(out: Any, n: int) -> tuple[list[Any], np.ndarray | None]:
    """Predictions and scores from any of the documented return shapes."""
    if isinstance(out, pd.DataFrame):
        col = "prediction" if "prediction" in out else "label" if "label" in out else out.columns[0]
        scores = out["score"].to_numpy(dtype=float, na_value=np.nan) if "score" in out else None
        return _check(list(out[col]), scores, n)
    if isinstance(out, pd.Series):
        return _check(out.tolist(), None, n)
    if isinstance(out, tuple) and len(out) == 2 and all(_is_seq(x) and len(x) == n for x in out):
        return _check(list(out[0]), np.asarray(out[1], dtype=float), n)
    values = list(np.asarray(out, dtype=object).tolist()) if isinstance(out, np.ndarray) else list(out)
    if values and all(isinstance(v, dict) for v in values):
        preds = [v.get("prediction", v.get("label")) for v in values]
        scores = np.array([_float(v.get("score")) for v in values])
        return _check(preds, scores if np.isfinite(scores).any() else None, n)
    if values and all(isinstance(v, (tuple, list)) and len(v) == 2 for v in values):
        return _check([v[0] for v in values], np.array([_float(v[1]) for v in values]), n)
    return _check(values, None, n)


def _check(preds: list[Any], scores: np.ndarray | None, n: int) -> tuple[list[Any], np.ndarray | None]:
    if len(preds) != n or (scores is not None and len(scores) != n):
        raise ValueError(f"the model returned {len(preds)} predictions for {n} inputs")
    return preds, scores


def _is_seq(value: Any) -> bool:
    return isinstance(value, (list, np.ndarray, pd.Series))


def _float(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


@dataclass
class _Tally:
    n: int = 0
    prediction_mismatches: int = 0
    score_mismatches: int = 0
    mismatched_rows: int = 0
    scores_compared: int = 0
    abs_diff_sum: float = 0.0
    max_diff: float | None = None


def _same_prediction(logged: Any, replayed: Any, tolerance: Tolerance) -> bool:
    a, b = normalize_label(logged), normalize_label(replayed)
    if isinstance(a, float) or isinstance(b, float):  # a regression output: equal within the tolerance
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and tolerance.matches(float(a), float(b))
    return a == b or str(a) == str(b)


def _compare(
    store: PredictionReader, query: Query, predictor: Predictor, target: str, tolerance: dict[str, Tolerance]
) -> Finding:
    tally = _Tally()
    largest: list[tuple[float, int, Mismatch]] = []
    examples: list[Mismatch] = []
    for chunk in store.rows(query):
        features = chunk[[c for c in chunk.columns if c.startswith(FEATURE_PREFIX)]]
        features = features.rename(columns=lambda c: c[len(FEATURE_PREFIX) :]).reset_index(drop=True)
        preds, scores = predictor(features)
        logged_scores = (
            pd.to_numeric(chunk["score"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            if "score" in chunk
            else np.full(len(chunk), np.nan)
        )
        for i, row in enumerate(chunk[["prediction_id", "entity_id", "timestamp", "prediction"]].itertuples(False)):
            tally.n += 1
            same = _same_prediction(row.prediction, preds[i], tolerance["prediction"])
            diff = None
            score_bad = False
            if scores is not None and np.isfinite(logged_scores[i]) and np.isfinite(scores[i]):
                diff = abs(float(scores[i]) - float(logged_scores[i]))
                tally.scores_compared += 1
                tally.abs_diff_sum += diff
                tally.max_diff = diff if tally.max_diff is None else max(tally.max_diff, diff)
                score_bad = not tolerance["score"].matches(float(logged_scores[i]), float(scores[i]))
            tally.prediction_mismatches += not same
            tally.score_mismatches += score_bad
            if same and not score_bad:
                continue
            tally.mismatched_rows += 1
            record = Mismatch(
                prediction_id=row.prediction_id,
                entity_id=row.entity_id,
                timestamp=row.timestamp,
                logged=row.prediction,
                replayed=preds[i],
                logged_score=None if np.isnan(logged_scores[i]) else float(logged_scores[i]),
                replayed_score=None if scores is None or np.isnan(scores[i]) else float(scores[i]),
                score_difference=diff,
            )
            if len(examples) < EXAMPLES and not same:
                examples.append(record)
            if diff is not None and score_bad:
                entry = (diff, tally.n, record)
                if len(largest) < EXAMPLES:
                    heapq.heappush(largest, entry)
                else:
                    heapq.heappushpop(largest, entry)
    metrics = ReplayMetrics(
        target=target,
        entity_ids=list(query.entity_ids) if query.entity_ids is not None else None,
        prediction_ids=list(query.prediction_ids) if query.prediction_ids is not None else None,
        n=tally.n,
        mismatches=tally.mismatched_rows,
        mismatch_rate=tally.mismatched_rows / tally.n if tally.n else None,
        prediction_mismatches=tally.prediction_mismatches,
        score_mismatches=tally.score_mismatches,
        scores_compared=tally.scores_compared,
        max_score_difference=tally.max_diff,
        mean_abs_score_difference=tally.abs_diff_sum / tally.scores_compared if tally.scores_compared else None,
        tolerance=tolerance,
        largest_differences=[r for _, _, r in sorted(largest, key=lambda e: (-e[0], e[1]))],
        examples=examples,
    )
    if tally.n == 0:
        return Finding(query.model, JOB, query.window, "insufficient_data", metrics, {"logged": "no predictions"})
    signals = []
    if tally.mismatched_rows:
        signals.append(
            Signal(
                subject="metric:mismatch_rate",
                message=(
                    f"replay through {target}: {tally.mismatched_rows} of {tally.n} predictions differ from the "
                    f"log ({tally.prediction_mismatches} predictions, {tally.score_mismatches} scores beyond "
                    f"{_describe_tolerance(tolerance['score'])})"
                ),
                value=metrics.mismatch_rate,
                threshold=0.0,
            )
        )
    status: Status = "alert" if signals else "ok"
    return Finding(query.model, JOB, query.window, status, metrics, {"logged": "predictions as logged"}, signals)


def _describe_tolerance(tolerance: Tolerance) -> str:
    return f"{tolerance.atol:.3g} + {tolerance.rtol:.3g} x |score|"


def export_predictions(store: PredictionReader, query: Query, path: str | Path) -> int:
    """Write the query's logged predictions (every column, features and groups included) to CSV or Parquet,
    chosen by the file suffix; returns the number of rows written."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ValueError(f"cannot export to {out}: the file name must end in .csv or .parquet")
    extra = sorted(c.name for c in store.columns(query) if c.name.startswith(("features.", "groups.")))
    columns = list(dict.fromkeys([*EXPORT_COLUMNS, *extra]))
    written = 0
    if suffix == ".csv":
        with out.open("w", encoding="utf-8", newline="") as fh:
            for i, chunk in enumerate(store.rows(query, columns=columns)):
                chunk.reindex(columns=columns).to_csv(fh, index=False, header=i == 0)
                written += len(chunk)
            if written == 0:
                pd.DataFrame(columns=columns).to_csv(fh, index=False)
        return written
    return _write_parquet(store.rows(query, columns=columns), columns, out)


def _write_parquet(chunks: Any, columns: list[str], out: Path) -> int:
    """Arrow tables per chunk, types unified (columns of conflicting types become strings), one file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pa.Table.from_pandas(_arrow_safe(c.reindex(columns=columns)), preserve_index=False) for c in chunks]
    if not tables:
        pq.write_table(pa.Table.from_pandas(pd.DataFrame(columns=columns), preserve_index=False), out)
        return 0
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        kinds: dict[str, set[str]] = {}
        for t in tables:
            for f in t.schema:
                if not pa.types.is_null(f.type):
                    kinds.setdefault(f.name, set()).add(str(f.type))
        clash = {name for name, types in kinds.items() if len(types) > 1}
        for name in clash:
            tables = [
                t.set_column(t.schema.get_field_index(name), name, t.column(name).cast(pa.string())) for t in tables
            ]
        table = pa.concat_tables(tables, promote_options="permissive")
    pq.write_table(table, out)
    return table.num_rows


def _arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns mixing kinds of values (numbers and text) become text so Arrow can type them."""
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == object:
            kinds = {type(v) for v in out[name] if not _is_missing(v)}
            if len(kinds) > 1:
                out[name] = out[name].map(lambda v: None if _is_missing(v) else str(v))
    return out
