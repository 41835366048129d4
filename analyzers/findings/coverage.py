"""How much of a span held predictions: the ``coverage`` entry of the drift, fairness and performance payloads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from analyzers.timeutil import Window


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """The ``slots`` equal slots a span is cut into, how many hold data, and the weighted count of predictions.

    ``first`` and ``last`` (where the data starts and ends) are known when measured, for the reason a verdict
    is withheld; they are not written to the finding.
    """

    window: Window
    slot: timedelta
    slots: int
    filled: int
    count: float
    first: datetime | None = None
    last: datetime | None = None

    @property
    def share(self) -> float:
        return self.filled / self.slots if self.slots else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.to_dict(),
            "share": self.share,
            "slots_with_data": self.filled,
            "slots": self.slots,
            "slot_s": self.slot.total_seconds(),
            "n": self.count,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Coverage:
        return cls(
            window=Window.from_dict(data["window"]),
            slot=timedelta(seconds=float(data["slot_s"])),
            slots=int(data["slots"]),
            filled=int(data["slots_with_data"]),
            count=float(data["n"]),
        )


def coverage_to_dict(measured: Mapping[str, Coverage]) -> dict[str, dict[str, Any]]:
    """The ``coverage`` entry of a payload: each named span's coverage."""
    return {name: c.to_dict() for name, c in measured.items()}


def coverage_from_dict(data: Mapping[str, Any] | None) -> dict[str, Coverage] | None:
    """The ``coverage`` entry read back (``None`` when the finding has none)."""
    return None if data is None else {name: Coverage.from_dict(c) for name, c in data.items()}
