"""One intercepted call, from its start to one finished ``UsageEvent``: shared by every instrumentor.

``start_call()`` reads, in the caller's context and before the request goes
out, what the event carries from the call's start: the tags in force, the
OpenTelemetry span and the clocks (and runs a budget preflight when one is
configured). ``finish_call()`` / ``fail_call()`` end the call once: they build
the finished, immutable event from what the response said and hand it to the
runtime, which queues it for the bus worker. Nothing of the caller's (client,
request, response) is kept past the call. None of these raise into the caller
except a budget guardrail the user configured to.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .._api import get_runtime
from .._errors import LLMCostTrackerError
from .._events import UsageEvent, UsageSource
from .._spans import current_span_context, trace_ids
from .._stats import STATS
from .._suppress import is_suppressed
from .._tags import Tags, resolve_tags
from ._extraction import Extraction


class Call:
    """A call in flight: what was in force when it started. Finishes at most once."""

    __slots__ = (
        "finished",
        "occurred_at",
        "operation",
        "provider",
        "request_model",
        "span_context",
        "started",
        "stream",
        "tags",
    )

    def __init__(
        self, provider: str, operation: str, request_model: str | None, stream: bool, tags: Tags
    ) -> None:
        self.provider = provider
        self.operation = operation
        self.request_model = request_model
        self.stream = stream
        self.tags = tags
        self.span_context = current_span_context()
        self.occurred_at = datetime.now(timezone.utc)  # when the request started
        self.started = time.perf_counter()  # for the latency: monotonic
        self.finished = False

    def event(
        self,
        found: Extraction,
        usage_source: UsageSource,
        *,
        ended: float,
        status: str = "ok",
        error_type: str | None = None,
    ) -> UsageEvent:
        """The finished event for this call, from what its response said."""
        trace_id, span_id = trace_ids(self.span_context)
        usage = found.usage
        return UsageEvent(
            provider=self.provider,
            model=found.model or self.request_model or "unknown",
            operation=self.operation,
            usage=usage,
            occurred_at=self.occurred_at,
            latency_ms=(ended - self.started) * 1000.0,
            pricing_mode=found.pricing_mode,
            stream=self.stream,
            usage_source=usage_source if usage is not None else "unknown",
            status="error" if status == "error" else "ok",
            error_type=error_type,
            provider_response_id=found.response_id,
            request_model=self.request_model,
            trace_id=trace_id,
            span_id=span_id,
            tags=self.tags,
        )


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
    if is_suppressed():
        return None
    try:
        runtime = get_runtime()
        if runtime is None:
            return None
        call = Call(provider, operation, request_model, stream, resolve_tags(runtime.defaults))
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


UNKNOWN = Extraction(usage=None)
"""What a call whose response said nothing readable yields: usage (and cost) unknown."""


def finish_call(
    call: Call,
    found: Extraction | None = UNKNOWN,
    usage_source: UsageSource = "response",
    *,
    status: str = "ok",
    error_type: str | None = None,
) -> None:
    """Record ``call`` (once) with what its response said; ``found=None`` records nothing.

    None means there is nothing to bill yet (a background response still
    running, a response id already recorded). Raises only a budget's
    BudgetExceededError in "raise" mode; every other failure is counted.
    """
    if call.finished:
        return
    call.finished = True
    if found is None:
        return
    ended = time.perf_counter()
    try:
        runtime = get_runtime()
        if runtime is None:
            return
        event = call.event(found, usage_source, ended=ended, status=status, error_type=error_type)
    except Exception:
        STATS.failure("errors.instrumentation.finish", "could not record a finished call")
        return
    runtime.deliver(event)


def fail_call(call: Call, error: BaseException) -> None:
    """Record ``call`` as failed with ``error``'s type; usage is unknown. Never raises."""
    try:
        finish_call(call, UNKNOWN, "unknown", status="error", error_type=type(error).__name__)
    except Exception:
        STATS.failure("errors.instrumentation.fail", "could not record a failed call")
