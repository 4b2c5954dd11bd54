"""Turning one intercepted call into a UsageEvent: shared by the SDK and transport instrumentors.

``start_call()`` snapshots everything that must be read in the caller's context
when the call starts (tags, trace ids, the clock); ``finish_call()`` and
``fail_call()`` build the event and hand it to the bus. None of them raise into
the caller except a budget guardrail the user configured to raise or block.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .._api import current_call_tags, current_trace_ids, get_runtime
from .._errors import LLMCostTrackerError
from .._events import TokenUsage, UsageEvent, UsageSource
from .._stats import STATS
from .._suppress import is_suppressed
from .._tags import Tags


class Call:
    """A call in flight: what was known when it started. Finishes at most once."""

    __slots__ = (
        "finished",
        "occurred_at",
        "operation",
        "provider",
        "request_model",
        "span_id",
        "started",
        "stream",
        "tags",
        "trace_id",
    )

    def __init__(
        self, provider: str, operation: str, request_model: str | None, stream: bool, tags: Tags
    ) -> None:
        self.provider = provider
        self.operation = operation
        self.request_model = request_model
        self.stream = stream
        self.tags = tags
        self.trace_id, self.span_id = current_trace_ids()
        self.occurred_at = datetime.now(timezone.utc)
        self.started = time.perf_counter()
        self.finished = False


def start_call(
    provider: str,
    operation: str,
    request_model: str | None,
    *,
    stream: bool = False,
    request: Mapping[str, Any] | None = None,
) -> Call | None:
    """Begin recording a call; None when recording is off or an outer layer records it.

    ``request`` (the call's keyword arguments) is only passed to a configured
    budget preflight, which may raise BudgetExceededError to stop the call.
    """
    if is_suppressed():
        return None
    try:
        runtime = get_runtime()
        if runtime is None:
            return None
        call = Call(provider, operation, request_model, stream, current_call_tags())
    except Exception:
        STATS.failure("errors.instrumentation.start", "could not start recording a call")
        return None
    before = runtime.before_call
    if before is not None:
        try:
            before(provider, request_model, request or {})
        except LLMCostTrackerError:
            raise  # a budget set to "block": the one deliberate raise
        except Exception:
            STATS.failure(
                "errors.budget.before_call", "the budget preflight failed; the call goes ahead"
            )
    return call


def finish_call(
    call: Call,
    *,
    usage: TokenUsage | None,
    model: str | None,
    usage_source: UsageSource,
    pricing_mode: str = "standard",
    provider_response_id: str | None = None,
    status: str = "ok",
    error_type: str | None = None,
    provider: str | None = None,
) -> None:
    """Record ``call`` as finished (once); raises only a budget's BudgetExceededError in "raise" mode."""
    if call.finished:
        return
    call.finished = True
    try:
        event = UsageEvent(
            provider=provider or call.provider,
            model=model or call.request_model or "unknown",
            operation=call.operation,
            usage=usage,
            occurred_at=call.occurred_at,
            latency_ms=(time.perf_counter() - call.started) * 1000.0,
            pricing_mode=pricing_mode,
            stream=call.stream,
            usage_source=usage_source if usage is not None else "unknown",
            status="error" if status == "error" else "ok",
            error_type=error_type,
            provider_response_id=provider_response_id,
            request_model=call.request_model,
            trace_id=call.trace_id,
            span_id=call.span_id,
            tags=call.tags,
        )
        runtime = get_runtime()
        if runtime is None:
            return
    except Exception:
        STATS.failure("errors.instrumentation.finish", "could not record a finished call")
        return
    runtime.deliver(event)


def fail_call(call: Call, error: BaseException, *, provider_response_id: str | None = None) -> None:
    """Record ``call`` as failed with ``error``'s type; usage is unknown. Never raises."""
    try:
        finish_call(
            call,
            usage=None,
            model=None,
            usage_source="unknown",
            status="error",
            error_type=type(error).__name__,
            provider_response_id=provider_response_id,
        )
    except Exception:
        STATS.failure("errors.instrumentation.fail", "could not record a failed call")
