"""Aggregation keys as the Python values the logs held.

The templates map each JSON type to its own field type, so a key's type says what was logged: a
``keyword`` key is the string, a ``boolean`` key (``1``/``0`` in ``terms``, ``true``/``false`` in
``composite``) is a bool, a ``double`` key is a number, given back as an ``int`` when it is whole (the
mapping keeps no difference between ``1`` and ``1.0``, which are the same key).
"""

from __future__ import annotations

from typing import Any

_TRUE = (True, 1, "true")
_FALSE = (False, 0, "false")


def key_value(key: Any, es_type: str) -> Any:
    """The value an aggregation key of a field of ``es_type`` stands for (``None`` for the missing bucket)."""
    if key is None:
        return None
    if es_type == "boolean":
        if key in _TRUE and not (isinstance(key, float) and key != 1.0):
            return True
        if key in _FALSE:
            return False
        return key
    if es_type == "double" and isinstance(key, (int, float)) and not isinstance(key, bool):
        number = float(key)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return key
