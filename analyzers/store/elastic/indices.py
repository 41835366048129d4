"""Which indices a model's reads touch: one wildcard per model and kind, made exact by filters.

``ml-predictions-fraud-*`` also matches ``ml-predictions-fraud-v2-…``; every read therefore filters on
``ml.model.name`` (a ``constant_keyword``, so an index of another model is skipped before it is searched)
and on ``@timestamp`` (indices outside the window are skipped the same way).  The URL names one pattern
whatever the window, so the request line stays short (never the list of 45 daily indices of old).
"""

from __future__ import annotations

from logshipper.schema import FEEDBACK_INDEX_PREFIX, PREDICTIONS_INDEX_PREFIX


def predictions_pattern(model: str) -> str:
    """Every daily prediction index of the model (and of models whose name extends it: filter on the model)."""
    return f"{PREDICTIONS_INDEX_PREFIX}{model.lower()}-*"


def feedback_pattern(model: str) -> str:
    """Every daily feedback index of the model (and of models whose name extends it: filter on the model)."""
    return f"{FEEDBACK_INDEX_PREFIX}{model.lower()}-*"


def both_patterns(model: str) -> str:
    """Predictions and feedback of the model, for one search that looks at both."""
    return f"{predictions_pattern(model)},{feedback_pattern(model)}"
