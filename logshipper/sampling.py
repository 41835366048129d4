"""Sampling that keeps a prediction and its feedback together, decided from the prediction id alone.

A prediction is kept when its id's 62 random bits, read as a fraction of 2**62, fall below the sample
rate.  Sampling by entity draws those bits below the rate when the entity is kept (its hash below the
rate) and above it otherwise, so the id carries the entity's decision.  Feedback, from this process or
any other that has only the id, asks the id: a kept prediction's feedback is always kept and a dropped
one's always dropped.  Ids that are not UUIDs are decided by a hash of the id.
"""

from __future__ import annotations

import hashlib
import math

from logshipper.ids import RANDOM_BITS, RANDOM_SPAN, random_bits

_TWO_64 = float(2**64)


def fraction(key: str) -> float:
    """A stable number in [0, 1) for a key: the same entity is always kept or always dropped."""
    digest = hashlib.blake2b(key.encode("utf-8", "backslashreplace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _TWO_64


def threshold(rate: float) -> int:
    """The random-bits value below which an id is kept at ``rate`` (a share of 2**62 equal to the rate)."""
    return min(math.ceil(rate * RANDOM_SPAN), RANDOM_SPAN)


def id_kept(prediction_id: str, rate: float) -> bool:
    """Whether the prediction (and so its feedback) with this id is kept at ``rate``."""
    bits = random_bits(prediction_id)
    if bits is None:
        digest = hashlib.blake2b(prediction_id.encode("utf-8", "backslashreplace"), digest_size=8).digest()
        bits = int.from_bytes(digest, "big") >> (64 - RANDOM_BITS)
    return bits < threshold(rate)


def entity_range(entity_id: object, rate: float) -> tuple[bool, tuple[int, int]]:
    """Whether an entity is kept at ``rate``, and the range of random bits that writes it into an id."""
    cut = threshold(rate)
    if fraction(str(entity_id)) < rate:
        return True, (0, cut)
    return False, (cut, RANDOM_SPAN)
