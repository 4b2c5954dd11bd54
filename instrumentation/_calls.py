"""One intercepted call, from its start to one finished ``UsageEvent``: shared by every instrumentor.

``start_call()`` reads, in the caller's context and before the request goes
out, what the event carries from the call's start: the tags in force, the
OpenTelemetry span and the clocks (and runs a budget preflight when one is
configured). ``finish_call()`` / ``fail_call()`` end the call once, with what the response
said, and hand it to the runtime, which queues it for the bus worker (the
worker builds its ``UsageEvent``). Nothing of the caller's (client,
request, response) is kept past the call. None of these raise into the caller
except a budget guardrail the user configured to.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from typing import Any

from .._api import active_runtime, get_runtime
from .._errors import LLMCostTrackerError
from .._events import Call, Reading, UsageSource
from .._spans import current_span_context
from .._stats import STATS
from .._suppress import SUPPRESSED
from .._tags import resolve_tags
from ._extraction import UNKNOWN, Extraction


def start_call(
    provider: str,
    operation: str,
    request_model: str | None,
    *,
    stream: bool = False,
    request: Mapping[str, Any] | None = None,
    preflight: bool = True,
) -> Call | None:
    """Begin recording a call; None when recording is off or an outer layer records it.

    ``request`` (the call's keyword arguments, or the parsed request body) is
    only passed to a configured budget preflight, which may raise
    BudgetExceededError to stop the call; ``preflight=False`` skips it (polls
    such as ``responses.retrieve`` that send no billed request).
    """
    if SUPPRESSED.get():
        return None
    try:
        runtime = get_runtime()
        if runtime is None:
            return None
        call = Call(
            provider,
            operation,
            request_model,
            stream,
            resolve_tags(runtime.defaults),
            current_span_context(),
        )
    except Exception:
        STATS.failure("errors.instrumentation.start", "could not start recording a call")
        return None
    before = runtime.before_call
    if before is not None and preflight:
        try:
            before(provider, request_model, request or {}, call.tags)
        except LLMCostTrackerError:
            raise  # a budget set to "block": the one deliberate raise
        except Exception:
            STATS.failure(
                "errors.budget.before_call", "the budget preflight failed; the call goes ahead"
            )
    return call


def finish_call(
    call: Call,
    found: Extraction | Reading | None = UNKNOWN,
    usage_source: UsageSource = "response",
    *,
    status: str = "ok",
    error_type: str | None = None,
) -> None:
    """Record ``call`` (once) with what its response said; ``found=None`` records nothing.

    ``found`` is what the caller's thread read, or a ``Reading`` (a body the
    bus worker parses).

    None means there is nothing to bill yet (a background response still
    running, a response id already recorded). Raises only a budget's
    BudgetExceededError in "raise" mode; every other failure is counted.
    """
    if call.finished:
        return
    if found is None:
        call.finished = True
        return
    try:
        runtime = get_runtime()
        if runtime is None:
            call.finished = True
            return
        call.finish(found, usage_source, "error" if status == "error" else "ok", error_type)
    except Exception:
        STATS.failure("errors.instrumentation.finish", "could not record a finished call")
        return
    runtime.deliver(call)


def fail_call(call: Call, error: BaseException) -> None:
    """Record ``call`` as failed with ``error``'s type; usage is unknown. Never raises."""
    try:
        finish_call(call, UNKNOWN, "unknown", status="error", error_type=type(error).__name__)
    except Exception:
        STATS.failure("errors.instrumentation.fail", "could not record a failed call")


DROPPED_COUNTER = "streams.dropped_unfinished"
"""Counted for each stream or body the caller let go of before its end without closing it."""


_generation = 0  # of this process: bumped in a child after fork()


def process_generation() -> int:
    """A number that changes in a forked child: what was made before the fork is the parent's."""
    return _generation


def _forked() -> None:
    global _generation
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def finish_dropped(end: Callable[[], object], generation: int) -> None:
    """Have the bus worker end a recording whose stream the caller dropped unfinished.

    Called from a ``__del__``, which may run while this thread holds any lock
    (garbage collection can start at any allocation): it takes none, and only
    hands ``end`` (which finishes the call with what was seen, as an early
    ``close()`` does) to the bus. The call is counted under ``DROPPED_COUNTER``.
    ``generation`` is ``process_generation()`` when the stream was made: a
    forked child dropping its copy of the parent's stream records nothing, the
    parent records the call.
    """
    if generation != _generation:
        return
    try:
        runtime = active_runtime()  # not get_runtime(): configuring takes a lock
        if runtime is not None:
            runtime.bus.defer(lambda: _end_dropped(end))
    except Exception:  # a finalizer must not raise (late in interpreter shutdown, say)
        return


def _end_dropped(end: Callable[[], object]) -> None:
    STATS.incr(DROPPED_COUNTER)
    # A budget in "raise" mode has no caller to raise into here (the call is recorded).
    with contextlib.suppress(LLMCostTrackerError):
        end()
