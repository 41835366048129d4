"""Prediction ids: UUID version 7 (RFC 9562), time-ordered and unique across threads and processes.

48 bits of Unix milliseconds, a 12-bit counter that keeps ids from one process ordered within a
millisecond, and 62 random bits drawn per id from a generator that is re-seeded in every forked
child (gunicorn workers), so two processes never share a sequence.  Sampling may draw those random
bits from part of their range (:mod:`logshipper.sampling`): the id then carries its sampling decision.
"""

from __future__ import annotations

import os
import random
import threading
import time

RANDOM_BITS = 62
RANDOM_SPAN = 1 << RANDOM_BITS
_lock = threading.Lock()
_rng = random.Random()
_state = {"ms": 0, "seq": 0}


def _reseed() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    _rng.seed(os.urandom(16))
    _state["ms"] = 0


_reseed()
os.register_at_fork(after_in_child=_reseed)


def new_prediction_id(time_ns: int | None = None, *, random_range: tuple[int, int] | None = None) -> str:
    """A new UUIDv7 string; ``time_ns`` (Unix nanoseconds) sets its time part, default now.

    ``random_range`` (``(low, high)``, within ``[0, 2**62)``) draws the 62 random bits from that range.
    """
    ms = (time.time_ns() if time_ns is None else time_ns) // 1_000_000
    with _lock:
        if ms <= _state["ms"] and time_ns is None:
            ms = _state["ms"]
            seq = _state["seq"] + 1
            if seq > 0xFFF:  # more than 4096 ids in one millisecond: borrow the next one
                ms += 1
                seq = 0
        else:
            seq = _rng.getrandbits(11)  # start low in the range so the counter has room
        _state["ms"], _state["seq"] = max(ms, _state["ms"]), seq
        rand = _rng.getrandbits(RANDOM_BITS)
    if random_range is not None:
        low, high = random_range
        rand = low + rand % (high - low)
    value = (ms & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | seq << 64 | 0b10 << 62 | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def prediction_id_time_ms(prediction_id: str) -> int:
    """The Unix milliseconds a UUIDv7 prediction id carries."""
    return int(prediction_id.replace("-", "")[:12], 16)


def random_bits(prediction_id: str) -> int | None:
    """The 62 random bits of an RFC 9562 UUID (any version, with or without hyphens); None for any other id."""
    if len(prediction_id) == 36:
        low_hex = prediction_id[19:23] + prediction_id[24:]
    elif len(prediction_id) == 32:
        low_hex = prediction_id[16:]
    else:
        return None
    try:
        low = int(low_hex, 16)
    except ValueError:
        return None
    if low >> RANDOM_BITS != 0b10:  # not the RFC 9562 variant: its last 62 bits need not be random
        return None
    return low & (RANDOM_SPAN - 1)
