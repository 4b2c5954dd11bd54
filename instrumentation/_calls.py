"""Turning one intercepted call into a UsageEvent: shared by the SDK and transport instrumentors.

``start_call()`` snapshots everything that must be read in the caller's context
when the call starts (tags, the OpenTelemetry span, the clock). A call ends in
one of two ways:

- ``finish_later(call, read, source)``, the hot path: the caller's thread only
  stops the clock and queues the call; the bus worker later runs
  ``read(call, source)`` to read usage out of the response and build the event.
  Nothing is parsed or built on the caller's thread.
- ``finish_call()`` / ``fail_call()``: the event is built at once from fields
  already known (errors, streams read to the end, manual paths).

When a budget must see the cost in the caller's thread (``on_exceed`` "raise"
or "block"), ``finish_later`` reads and prices at once instead. None of these
raise into the caller except a budget guardrail the user configured to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import Context, copy_context
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from .._api import current_call_tags, current_span_context, get_runtime, trace_ids
from .._errors import LLMCostTrackerError
from .._events import TokenUsage, UsageEvent, UsageSource
from .._stats import STATS
from .._suppress import is_suppressed
from .._tags import DefaultTagSource, Tags, resolve_tags

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

S = TypeVar("S")

Reader = Callable[["Call", Any], "UsageEvent | None"]


class Call:
    """A call in flight: what was known when it started. Finishes at most once.

    Also what the bus queues for a call finished with ``finish_later``: its
    ``build()`` runs the reader on the worker.
    """

    __slots__ = (
        "_context",
        "_defaults",
        "_read",
        "_source",
        "ended",
        "finished",
        "operation",
        "provider",
        "request_model",
        "span_context",
        "started",
        "started_ns",
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
        self.tags: Tags | None = tags
        self.span_context = current_span_context()
        self.started_ns = time.time_ns()
        self.started = time.perf_counter()
        self.ended = 0.0
        self.finished = False
        self._read: Reader | None = None
        self._source: Any = None
        self._context: Context | None = None
        self._defaults: DefaultTagSource | None = None

    @classmethod
    def lean(
        cls,
        provider: str,
        operation: str,
        request_model: str | None,
        defaults: DefaultTagSource,
    ) -> Call:
        """A call whose tags and span are read later, from a copy of the caller's context.

        Copying the context is one C call; reading the tag scopes and the
        OpenTelemetry span out of it waits for ``event()``, on the bus worker.
        ``defaults`` must not be a callable source (those run in the caller's thread).
        """
        return cls.resumed(
            provider,
            operation,
            request_model,
            defaults,
            copy_context(),
            time.time_ns(),
            time.perf_counter(),
        )

    @classmethod
    def resumed(
        cls,
        provider: str,
        operation: str,
        request_model: str | None,
        defaults: DefaultTagSource,
        context: Context,
        started_ns: int,
        started: float,
    ) -> Call:
        """The lean call of a wrapper that took the context copy and the clocks itself.

        The SDK wrappers' fastest path keeps only those on the caller's thread
        and makes the ``Call`` later (on the worker, or when the result turns
        out to be a stream, a raw response or an error).
        """
        call = cls.__new__(cls)
        call.provider = provider
        call.operation = operation
        call.request_model = request_model
        call.stream = False
        call.tags = None
        call.span_context = None
        call._context = context
        call._defaults = defaults
        call.started_ns = started_ns
        call.started = started
        call.ended = 0.0
        call.finished = False
        call._read = None
        call._source = None
        return call

    @property
    def occurred_at(self) -> datetime:
        """When the request started, in UTC, to the microsecond."""
        return _EPOCH + timedelta(microseconds=self.started_ns // 1000)

    def event(
        self,
        *,
        usage: TokenUsage | None,
        model: str | None,
        usage_source: UsageSource,
        pricing_mode: str = "standard",
        provider_response_id: str | None = None,
        status: str = "ok",
        error_type: str | None = None,
        provider: str | None = None,
    ) -> UsageEvent:
        """The event for this call, with what its response said. The call must have ended."""
        context = self._context
        if context is not None:  # a lean call: what the caller's context held when it started
            self._context = None
            self.tags, self.span_context = context.run(_snapshot, self._defaults or _NO_DEFAULTS)
        trace_id, span_id = trace_ids(self.span_context)
        return UsageEvent(
            provider=provider or self.provider,
            model=model or self.request_model or "unknown",
            operation=self.operation,
            usage=usage,
            occurred_at=self.occurred_at,
            latency_ms=(self.ended - self.started) * 1000.0,
            pricing_mode=pricing_mode,
            stream=self.stream,
            usage_source=usage_source if usage is not None else "unknown",
            status="error" if status == "error" else "ok",
            error_type=error_type,
            provider_response_id=provider_response_id,
            request_model=self.request_model,
            trace_id=trace_id,
            span_id=span_id,
            tags=self.tags if self.tags is not None else {},
        )

    def build(self) -> UsageEvent | None:
        """Run the reader ``finish_later`` left (on the bus worker)."""
        read, source = self._read, self._source
        self._read = self._source = None  # the response goes as soon as it has been read
        if read is None:
            return None
        return read(self, source)


_NO_DEFAULTS = DefaultTagSource(None)


def _snapshot(defaults: DefaultTagSource) -> tuple[Tags, Any]:
    return resolve_tags(defaults), current_span_context()


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
            before(provider, request_model, request or {}, call.tags)
        except LLMCostTrackerError:
            raise  # a budget set to "block": the one deliberate raise
        except Exception:
            STATS.failure(
                "errors.budget.before_call", "the budget preflight failed; the call goes ahead"
            )
    return call


def finish_later(call: Call, read: Callable[[Call, S], UsageEvent | None], source: S) -> None:
    """Record ``call`` (once): the bus worker builds its event with ``read(call, source)``.

    On the caller's thread this only stops the clock and queues the call.
    ``source`` (a response object or body) is held until the worker has read
    it, never stored. When a budget needs the cost now, reads at once; raises
    only a budget's BudgetExceededError in "raise" mode.
    """
    if call.finished:
        return
    call.finished = True
    call.ended = time.perf_counter()
    runtime = get_runtime()
    if runtime is None:
        return
    if runtime.lean:  # no budget needs the cost in this thread
        call._read = read
        call._source = source
        runtime.bus.defer(call)
        return
    try:
        event = read(call, source)
    except Exception:
        STATS.failure("errors.instrumentation.finish", "could not record a finished call")
        return
    if event is not None:
        runtime.deliver(event)


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
    call.ended = time.perf_counter()
    try:
        event = call.event(
            usage=usage,
            model=model,
            usage_source=usage_source,
            pricing_mode=pricing_mode,
            provider_response_id=provider_response_id,
            status=status,
            error_type=error_type,
            provider=provider,
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
