"""A context variable that tells lower layers not to record a call the layer above records."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_SUPPRESSED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "llm_cost_tracker_suppressed", default=False
)


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
    return _SUPPRESSED.get()
