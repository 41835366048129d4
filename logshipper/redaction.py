"""Redaction by configuration: named fields are hashed with a keyed hash or dropped before writing.

Fields are named as ``features.<name>``, ``groups.<name>`` or ``entity_id``.  Hashing uses
HMAC-SHA256 with a key read from the environment (never from code or config files), so equal
values still group together for fairness and joins while the raw value cannot be recovered by
guessing without the key.  The paths that were redacted are listed in ``ml.redacted``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_KEY_ENV = "PREDWATCH_REDACTION_KEY"
HASH_PREFIX = "hmac:"
_HASH_HEX = 32  # 128 bits of the HMAC: ample against collisions, short in the index


class RedactionError(ValueError):
    """Redaction cannot work as configured (a bad field name, or the key missing from the environment)."""


def _check(name: str) -> str:
    if name == "entity_id" or (name.startswith(("features.", "groups.")) and len(name.split(".", 1)[1]) > 0):
        return name
    raise RedactionError(f"cannot redact {name!r}: name fields as features.<name>, groups.<name> or entity_id")


@dataclass(frozen=True)
class Redactor:
    """Which fields to hash and which to drop, and the key (bytes) hashing uses."""

    hash_fields: frozenset[str] = field(default_factory=frozenset)
    drop_fields: frozenset[str] = field(default_factory=frozenset)
    key: bytes = field(default=b"", repr=False)

    @classmethod
    def from_config(
        cls, hash: Iterable[str] = (), drop: Iterable[str] = (), key_env: str = DEFAULT_KEY_ENV
    ) -> Redactor | None:
        """A redactor for these fields, or ``None`` when nothing is to be redacted.

        Raises :class:`RedactionError` naming the environment variable when hashing is asked for
        and the key is not set, so a misconfigured service fails at start, not by leaking values.
        """
        hash_fields = frozenset(_check(n) for n in hash)
        drop_fields = frozenset(_check(n) for n in drop)
        if not hash_fields and not drop_fields:
            return None
        both = hash_fields & drop_fields
        if both:
            raise RedactionError(f"fields both hashed and dropped: {', '.join(sorted(both))}")
        key = os.environ.get(key_env, "")
        if hash_fields and not key:
            raise RedactionError(
                f"hashing {', '.join(sorted(hash_fields))} needs a key in the environment variable {key_env}"
            )
        return cls(hash_fields, drop_fields, key.encode("utf-8"))

    def digest(self, value: Any) -> str:
        """The keyed hash of a value's text form: ``hmac:`` and 32 hex digits."""
        text = value if isinstance(value, str) else str(value)
        mac = hmac.new(self.key, text.encode("utf-8", "backslashreplace"), hashlib.sha256).hexdigest()
        return HASH_PREFIX + mac[:_HASH_HEX]

    def apply(self, ml: dict[str, Any]) -> list[str]:
        """Redact an event's ``ml`` object in place; returns the dotted paths that were changed."""
        done: list[str] = []
        for name in self.drop_fields:
            if self._pop(ml, name):
                done.append(f"ml.{name}")
        for name in self.hash_fields:
            container, key = self._locate(ml, name)
            if container is not None and key in container and container[key] is not None:
                container[key] = self.digest(container[key])
                done.append(f"ml.{name}")
        return sorted(done)

    @staticmethod
    def _locate(ml: dict[str, Any], name: str) -> tuple[dict[str, Any] | None, str]:
        if name == "entity_id":
            return ml, "entity_id"
        section, key = name.split(".", 1)
        container = ml.get(section)
        return (container if isinstance(container, dict) else None), key

    def _pop(self, ml: dict[str, Any], name: str) -> bool:
        container, key = self._locate(ml, name)
        return container is not None and container.pop(key, _MISSING) is not _MISSING


_MISSING = object()
