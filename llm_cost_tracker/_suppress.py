"""Tell lower layers not to record a call the layer above records.

One context variable: set by ``suppressed()``, by the SDK wrappers around the
SDK call (so the transport instrumentor skips the HTTP request beneath it),
and by the bus worker and exporters (so the library never records itself). A
context variable, not a thread-local, so that asyncio tasks interleaving on one
thread each keep their own.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

SUPPRESSED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "llm_cost_tracker_suppressed", default=False
)


@contextmanager
def suppressed() -> Iterator[None]:
    """Mark the enclosed code so that no instrumentation records it again."""
    token = SUPPRESSED.set(True)
    try:
        yield
    finally:
        SUPPRESSED.reset(token)


def is_suppressed() -> bool:
    """Return whether the current context is already being recorded by an outer layer."""
    return SUPPRESSED.get()
