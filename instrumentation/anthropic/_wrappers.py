"""Anthropic-only wrappers: ``messages.stream()`` managers and message-batch results.

``messages.create`` / ``parse`` use the shared Stainless wrappers in
``.._sdk``. The ``stream()`` helper sends its request when the
manager is entered; its ``MessageStream`` reads a raw SSE stream, which we
swap for a recording proxy so every way of consuming it (iteration,
``text_stream``, ``get_final_message()``, ``until_done()``) is seen once.
Batch results are recorded one event per succeeded result, in batch mode,
each provider message id once.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

import wrapt

from ..._events import Call
from ..._stats import STATS
from ..._suppress import is_suppressed, suppressed
from .._calls import fail_call, finish_call, start_call
from .._extraction import UNKNOWN
from .._sdk import CallRecorder, SdkContext, Surface, begin_call, provider_of_client
from .._streams import AsyncStreamProxy, SyncStreamProxy
from ._extract import extract_anthropic, extract_batch_result


def _attach(ctx: SdkContext, stream: Any, recorder: CallRecorder, proxy_type: type) -> bool:
    """Put a recording proxy between a MessageStream and its raw SSE stream; False if it has none."""
    raw = getattr(stream, "_raw_stream", None)
    if not isinstance(raw, ctx.stream_types + ctx.async_stream_types):
        return False
    stream._raw_stream = proxy_type(raw, recorder)
    return True


def _finish_from_snapshot(recorder: CallRecorder, stream: Any, error: BaseException | None) -> None:
    """Fallback when the stream had no swappable raw stream: read the SDK's own accumulated message."""
    if recorder.done:
        return
    recorder.done = True
    if error is not None:
        fail_call(recorder.call, error)
        return
    snapshot = getattr(stream, "_current_snapshot_or_none", lambda: None)()
    found = extract_anthropic(snapshot) if snapshot is not None else UNKNOWN
    finish_call(recorder.call, found, "stream")


def _finish_manager(recorder: CallRecorder | None, attached: bool, stream: Any) -> None:
    """Record a stream manager's call when its block exits, if the stream did not already."""
    if recorder is None or recorder.done:
        return
    try:
        if attached:
            recorder.finish(None, exhausted=False)
        else:
            _finish_from_snapshot(recorder, stream, None)
    except Exception:
        STATS.failure("errors.instrumentation.stream_finish", "could not record a message stream")


class SyncStreamManagerProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A ``MessageStreamManager``: the call starts (and is recorded) when it is entered."""

    def __init__(
        self, wrapped: Any, start: Callable[[], CallRecorder | None], ctx: SdkContext
    ) -> None:
        super().__init__(wrapped)
        self._self_start = start
        self._self_ctx = ctx
        self._self_recorder: CallRecorder | None = None
        self._self_stream: Any = None
        self._self_attached = False

    def __enter__(self) -> Any:
        recorder = self._self_start()
        if recorder is None:
            return self.__wrapped__.__enter__()
        try:
            with suppressed():
                stream = self.__wrapped__.__enter__()
        except BaseException as error:
            fail_call(recorder.call, error)
            raise
        self._self_recorder, self._self_stream = recorder, stream
        try:
            self._self_attached = _attach(self._self_ctx, stream, recorder, SyncStreamProxy)
        except Exception:
            STATS.failure(
                "errors.instrumentation.stream_attach", "could not follow a message stream"
            )
        return stream

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            _finish_manager(self._self_recorder, self._self_attached, self._self_stream)


class AsyncStreamManagerProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """An ``AsyncMessageStreamManager``: the call starts when it is entered."""

    def __init__(
        self, wrapped: Any, start: Callable[[], CallRecorder | None], ctx: SdkContext
    ) -> None:
        super().__init__(wrapped)
        self._self_start = start
        self._self_ctx = ctx
        self._self_recorder: CallRecorder | None = None
        self._self_stream: Any = None
        self._self_attached = False

    async def __aenter__(self) -> Any:
        recorder = self._self_start()
        if recorder is None:
            return await self.__wrapped__.__aenter__()
        try:
            with suppressed():
                stream = await self.__wrapped__.__aenter__()
        except BaseException as error:
            fail_call(recorder.call, error)
            raise
        self._self_recorder, self._self_stream = recorder, stream
        try:
            self._self_attached = _attach(self._self_ctx, stream, recorder, AsyncStreamProxy)
        except Exception:
            STATS.failure(
                "errors.instrumentation.stream_attach", "could not follow a message stream"
            )
        return stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            _finish_manager(self._self_recorder, self._self_attached, self._self_stream)


def _manager_wrapper(ctx: SdkContext, surface: Surface, proxy: type) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        if is_suppressed():
            return manager

        def start() -> CallRecorder | None:
            call = begin_call(ctx, surface, instance, {**kwargs, "stream": True})
            if call is None:
                return None
            return CallRecorder(ctx, surface, call, kwargs, False)

        return proxy(manager, start, ctx)

    return wrapper


def stream_manager_wrapper(ctx: SdkContext, surface: Surface) -> Callable[..., Any]:
    """Wrap ``messages.stream()``: the SDK's manager behind a proxy that records on enter/exit."""
    return _manager_wrapper(ctx, surface, SyncStreamManagerProxy)


def async_stream_manager_wrapper(ctx: SdkContext, surface: Surface) -> Callable[..., Any]:
    """Wrap ``AsyncMessages.stream()`` the same way."""
    return _manager_wrapper(ctx, surface, AsyncStreamManagerProxy)


class BatchResultsRecorder:
    """A StreamObserver over batch result lines: one event per succeeded result, each message once.

    Each result is a call of its own, made when the batch ran: recorded in
    batch mode with the tags in force when the caller asked for the results.
    """

    __slots__ = ("call", "ctx")

    def __init__(self, ctx: SdkContext, call: Call) -> None:
        self.ctx = ctx
        self.call = call  # the template: provider, operation, tags, span

    def observe(self, item: Any) -> bool:
        found = extract_batch_result(item)
        if found is None:
            return False
        if found.response_id is not None and not self.ctx.recorded.claim(found.response_id):
            return False
        template = self.call
        call = Call(
            template.provider,
            template.operation,
            found.model,
            False,
            template.tags,
            template.span_context,
        )
        finish_call(call, found, "response")
        return False

    def finish(self, error: BaseException | None, *, exhausted: bool) -> None:
        return None


def _results_recorder(ctx: SdkContext, instance: Any) -> BatchResultsRecorder | None:
    if is_suppressed():
        return None
    try:
        provider = provider_of_client(ctx, getattr(instance, "_client", None))
    except Exception:
        STATS.failure("errors.instrumentation.start", "could not start recording batch results")
        return None
    call = start_call(provider, "messages", None, preflight=False)
    return None if call is None else BatchResultsRecorder(ctx, call)


def batch_results_wrapper(ctx: SdkContext) -> Callable[..., Any]:
    """Wrap ``messages.batches.results()``: record each succeeded result as the caller reads it."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        recorder = _results_recorder(ctx, instance)
        with suppressed():
            results = wrapped(*args, **kwargs)
        return results if recorder is None else SyncStreamProxy(results, recorder)

    return wrapper


def async_batch_results_wrapper(ctx: SdkContext) -> Callable[..., Any]:
    """Wrap ``AsyncBatches.results()`` the same way."""

    async def wrapper(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = _results_recorder(ctx, instance)
        with suppressed():
            results = await wrapped(*args, **kwargs)
        return results if recorder is None else AsyncStreamProxy(results, recorder)

    return wrapper


__all__ = [
    "AsyncStreamManagerProxy",
    "BatchResultsRecorder",
    "SyncStreamManagerProxy",
    "async_batch_results_wrapper",
    "async_stream_manager_wrapper",
    "batch_results_wrapper",
    "stream_manager_wrapper",
]
