"""Names of a model's daily prediction indices: those of a window's days, or the wildcard over all of them."""

from __future__ import annotations

from analyzers.store.elastic import limits
from analyzers.timeutil import Window
from logshipper.schema import PREDICTIONS_INDEX_PREFIX, predictions_index


def daily_indices(model: str, days: list[str]) -> str:
    """The indices of these ``YYYY.MM.DD`` days, comma-separated; a wildcard when there are too many to list."""
    if not days:
        return predictions_index(model, "none")
    if len(days) > limits.MAX_LISTED_DAYS:
        return f"{PREDICTIONS_INDEX_PREFIX}{model}-*"
    return ",".join(predictions_index(model, d) for d in days)


def window_indices(model: str, window: Window) -> str:
    """The daily indices the window's predictions live in."""
    return daily_indices(model, [d.strftime("%Y.%m.%d") for d in window.days()])


def feedback_indices(model: str) -> str:
    """Every daily index of the model: feedback may land any day after the window (clocks differ too).

    The ``@timestamp`` lower bound lets Elasticsearch skip the older indices' shards before searching.
    """
    return f"{PREDICTIONS_INDEX_PREFIX}{model}-*"
