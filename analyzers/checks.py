"""``predwatch check-config`` beyond the shape: paths exist, and the names the file uses appear in the logs.

The loader already rejects unknown keys, methods and percentiles.  This reads what a valid file points
at: the log directory and reference files must exist (errors); then, when the store can be read, the
last days of each model's predictions must hold every feature named under ``drift.features``, every
group attribute and reference group, and the ``positive_label`` (warnings, with "did you mean"), and
each drift override must fit its column's kind (an error: the drift job would fail on it).  Every
problem names the file, the line and the key.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from analyzers.config.loader import ConfigProblem, LoadedConfig
from analyzers.config.models import DriftConfig, FairnessConfig, LocalStoreConfig, ModelConfig, PerformanceConfig
from analyzers.stats.drift_methods import drift_test, effect_size
from analyzers.store import Query, open_store
from analyzers.store.base import ColumnInfo, PredictionReader, StoreError
from analyzers.timeutil import Window, utcnow

Level = Literal["error", "warning"]
OUTPUTS = ("prediction", "score", "label")


@dataclass(frozen=True)
class Issue(ConfigProblem):
    """One problem a check found: a configuration problem with how bad it is."""

    level: Level = "error"

    def __str__(self) -> str:
        return f"{self.level}: {super().__str__()}"


class _Report:
    def __init__(self, loaded: LoadedConfig, file: str) -> None:
        self.loaded, self.file, self.issues = loaded, file, list[Issue]()

    def add(self, level: Level, path: tuple[str | int, ...], message: str) -> None:
        key = ".".join(str(p) for p in path)
        self.issues.append(Issue(self.file, self.loaded.line_of(*path), key, message, level=level))


def _resolve(path: str, base: Path) -> Path:
    candidate = Path(os.path.expanduser(path))
    return candidate if candidate.is_absolute() else base / candidate


def _suggest(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'texture'?)`` for the closest candidate, or one that the name starts (``age_band``)."""
    known = sorted(set(candidates))
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    close = close or [c for c in known if name and (c.startswith(name) or name.startswith(c))][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def check(loaded: LoadedConfig, *, file: str, days: int = 7, now: datetime | None = None) -> list[Issue]:
    """Every problem found in a loaded configuration, errors and warnings, in file order."""
    report = _Report(loaded, file)
    config, base = loaded.config, loaded.directory
    kind, settings = config.store.chosen()
    readable = True
    if isinstance(settings, LocalStoreConfig):
        logs = _resolve(settings.path, base)
        if not logs.is_dir():
            report.add("error", ("store", "local", "path"), f"log directory {logs} does not exist")
            readable = False
    ca_certs = getattr(settings, "ca_certs", None)
    if ca_certs and not _resolve(ca_certs, base).is_file():
        missing = _resolve(ca_certs, base)
        report.add("error", ("store", kind, "ca_certs"), f"CA certificate file {missing} does not exist")
    for model, model_config in config.models.items():
        for name, job in model_config.jobs().items():
            reference = getattr(job, "reference", None)
            if reference is not None and reference.file and not _resolve(reference.file, base).is_file():
                path = ("models", model, name, "reference", "file")
                report.add("error", path, f"reference file {_resolve(reference.file, base)} does not exist")
    if readable and config.models:
        _check_data(report, days=days, now=now or utcnow())
    return sorted(report.issues, key=lambda i: (i.line or 0, i.key))


def _check_data(report: _Report, *, days: int, now: datetime) -> None:
    loaded = report.loaded
    try:
        store = open_store(loaded.config, loaded.directory)
    except (StoreError, OSError) as exc:
        report.add("warning", ("store",), f"cannot be read ({exc}): names were not checked against the logs")
        return
    with store:
        for model, model_config in loaded.config.models.items():
            try:
                _check_model(report, store, model, model_config, Window(now - timedelta(days=days), now), days)
            except StoreError as exc:
                report.add("warning", ("models", model), f"could not read its predictions: {exc}")


def _check_model(
    report: _Report, store: PredictionReader, model: str, config: ModelConfig, window: Window, days: int
) -> None:
    query = Query(model, window)
    columns = {c.name: c for c in store.columns(query)}
    if not columns:
        report.add(
            "warning",
            ("models", model),
            f"no predictions of model {model!r} in the last {days} days of logs: its features and groups "
            "were not checked",
        )
        return
    where = f"in the last {days} days of {model!r} logs"
    drift = config.job("drift")
    if isinstance(drift, DriftConfig):
        _check_drift(report, model, drift, columns, where)
    for name in ("fairness", "performance"):
        job = config.job(name)
        if isinstance(job, (FairnessConfig, PerformanceConfig)):
            _check_label(report, store, query, ("models", model, name, "positive_label"), job.positive_label, where)
    fairness = config.job("fairness")
    if isinstance(fairness, FairnessConfig):
        _check_groups(report, store, query, model, fairness, columns, where)


def _check_drift(report: _Report, model: str, drift: DriftConfig, columns: dict[str, ColumnInfo], where: str) -> None:
    known = {name.removeprefix("features."): info for name, info in columns.items() if not name.startswith("groups.")}
    for feature, override in drift.features.items():
        path = ("models", model, "drift", "features", feature)
        info = known.get(feature.removeprefix("features."))
        if info is None:
            features = [n for n in known if n not in OUTPUTS]
            report.add("warning", path, f"feature {feature!r} does not appear {where}{_suggest(feature, features)}")
            continue
        kind = override.kind or info.kind
        for key, lookup, name in (("method", effect_size, override.method), ("test", drift_test, override.test)):
            if name is None:
                continue
            try:
                lookup(name, kind)
            except (ValueError, NotImplementedError) as exc:
                report.add("error", (*path, key), f"{exc} ({feature!r} is {kind} {where})")


def _check_label(
    report: _Report,
    store: PredictionReader,
    query: Query,
    path: tuple[str, ...],
    positive: object,
    where: str,
) -> None:
    seen: set[str] = set()
    for column in ("label", "prediction"):
        try:
            seen.update(str(v) for v in store.category_counts(query, column) if v is not None)
        except (StoreError, KeyError, ValueError):
            continue
    if seen and str(positive) not in seen and not _same_number(positive, seen):
        values = ", ".join(repr(v) for v in sorted(seen)[:8])
        hint = _suggest(str(positive), seen)
        report.add(
            "warning", path, f"{positive!r} never appears as a label or prediction {where} (seen: {values}){hint}"
        )


def _same_number(value: object, seen: set[str]) -> bool:
    try:
        number = float(str(value))
    except ValueError:
        return False
    for text in seen:
        try:
            if float(text) == number:
                return True
        except ValueError:
            continue
    return False


def _check_groups(
    report: _Report,
    store: PredictionReader,
    query: Query,
    model: str,
    fairness: FairnessConfig,
    columns: dict[str, ColumnInfo],
    where: str,
) -> None:
    attributes = [name.removeprefix("groups.") for name in columns if name.startswith("groups.")]
    for i, group in enumerate(fairness.groups or []):
        if group not in attributes:
            path = ("models", model, "fairness", "groups", i)
            hint = _suggest(group, attributes)
            report.add("warning", path, f"group attribute {group!r} does not appear {where}{hint}")
    for attribute, value in fairness.reference_group.items():
        ref_path = ("models", model, "fairness", "reference_group", attribute)
        if attribute not in attributes:
            hint = _suggest(attribute, attributes)
            report.add("warning", ref_path, f"group attribute {attribute!r} does not appear {where}{hint}")
            continue
        values = [str(v) for v in store.category_counts(query, f"groups.{attribute}") if v is not None]
        if str(value) not in values:
            hint = _suggest(str(value), values)
            report.add("warning", ref_path, f"group {attribute}={value!r} does not appear {where}{hint}")
