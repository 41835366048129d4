"""One thread for the numerical libraries inside a block: small fits and products run faster without the
threads of BLAS and OpenMP, which mostly wait on each other (and spin on a busy machine)."""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import ThreadpoolController


@functools.cache
def _controller() -> ThreadpoolController:
    """The thread pools loaded in this process, found once (finding them costs milliseconds per call)."""
    return ThreadpoolController()


def one_thread(user_api: str | None = None) -> AbstractContextManager[Any]:
    """A context in which the BLAS and OpenMP pools (or only ``user_api``'s) run one thread."""
    return _controller().limit(limits=1, user_api=user_api)
