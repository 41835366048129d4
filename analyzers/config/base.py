"""What every configuration model shares: unknown keys are errors, durations are parsed from text."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict

from analyzers.timeutil import parse_duration


class Strict(BaseModel):
    """A configuration section: an unknown key is an error, so a typo is caught when the file is loaded."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def duration(value: object) -> timedelta:
    """A duration from ``90s``, ``15m``, ``1h``, ``7d``, ``2w``, a number of seconds or a ``timedelta``."""
    return parse_duration(value if isinstance(value, (str, int, float, timedelta)) else str(value))
