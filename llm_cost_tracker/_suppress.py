"""Tell lower layers not to record a call the layer above records.

Two flags, either of which suppresses: a context variable (``suppressed()``,
the async SDK wrappers, everything that may interleave with other tasks on
one thread), and a per-thread flag the synchronous SDK wrappers raise around
the SDK call on their fastest path. A synchronous call runs to its end on the
thread that made it, with nothing else running there meanwhile, so a thread
flag means the same as the context variable there, at a fraction of the cost:
setting a context variable makes a new context mapping and a token, twice per
call, several microseconds in place inside a real SDK call (bench/).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_SUPPRESSED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "llm_cost_tracker_suppressed", default=False
)


class _ThreadFlag(threading.local):
    on = False  # each thread starts unsuppressed


_THREAD = _ThreadFlag()


@contextmanager
def suppressed() -> Iterator[None]:
    """Mark the enclosed code so that no instrumentation records it again."""
    token = _SUPPRESSED.set(True)
    try:
        yield
    finally:
        _SUPPRESSED.reset(token)


def is_suppressed() -> bool:
    """Return whether the current context is already being recorded by an outer layer."""
    return _SUPPRESSED.get() or _THREAD.on
