"""Prediction and feedback events as in docs/event-schema.md, written where the logger writes them.

Tests that need exact control over every field (bad values, duplicates, fixed ids) build events
here rather than through ``PredictionLogger``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from analyzers.timeutil import format_time


def event(
    ts: datetime | str,
    pid: str,
    ml: dict[str, Any],
    dataset: str = "ml.prediction",
    outcome: str = "success",
    model: str = "m",
) -> dict[str, Any]:
    """One event of ``model`` (version v1) from service ``svc``; ``ml`` adds to or overrides its ``ml`` object."""
    return {
        "@timestamp": format_time(ts),
        "log.level": "error" if outcome == "failure" else "info",
        "message": "prediction" if dataset == "ml.prediction" else "feedback",
        "ecs.version": "8.11.0",
        "event": {"dataset": dataset, "kind": "event", "outcome": outcome},
        "service": {"name": "svc", "version": "1", "environment": "test"},
        "ml": {"prediction_id": pid, "model": {"name": model, "version": "v1"}, **ml},
    }


def write_events(log_dir: Path, events: list[dict[str, Any]], service: str = "svc") -> None:
    """Append events as JSON lines to the daily file of their UTC day, as the logger writes them."""
    for ev in events:
        path = log_dir / service / f"predictions-{ev['@timestamp'][:10]}.ndjson"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(ev) + "\n")
