"""Anthropic-only wrappers: ``messages.stream()`` managers and message-batch results.

``messages.create`` / ``parse`` use the shared Stainless wrappers in
``..openai._wrappers``. The ``stream()`` helper sends its request when the
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

from ..._api import current_call_tags, get_runtime
from ..._stats import STATS
from ..._suppress import is_suppressed, suppressed
from .._calls import Call, fail_call, finish_call
from .._streams import AsyncStreamProxy, SyncStreamProxy
from ..openai._wrappers import CallRecorder, SdkContext, Surface, begin_call, provider_of
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
    found = extract_anthropic(snapshot) if snapshot is not None else None
    finish_call(
        recorder.call,
        usage=found.usage if found else None,
        model=found.model if found else None,
        usage_source="stream",
        pricing_mode=found.pricing_mode if found else "standard",
        provider_response_id=found.response_id if found else None,
    )


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


def stream_manager_wrapper(
    ctx: SdkContext, surface: Surface, *, is_async: bool
) -> Callable[..., Any]:
    """Wrap ``messages.stream()``: return the SDK's manager behind a proxy that records on enter/exit."""
    manager_proxy = AsyncStreamManagerProxy if is_async else SyncStreamManagerProxy

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        if is_suppressed():
            return manager

        def start() -> CallRecorder | None:
            call = begin_call(ctx, surface, instance, {**kwargs, "stream": True})
            if call is None:
                return None
            return CallRecorder(ctx, surface, call, kwargs, False)

        return manager_proxy(manager, start, ctx)

    return wrapper


class BatchResultsRecorder:
    """A StreamObserver over batch result lines: one event per succeeded result, each message once."""

    __slots__ = ("ctx", "operation", "provider", "tags")

    def __init__(self, ctx: SdkContext, provider: str, operation: str) -> None:
        self.ctx = ctx
        self.provider = provider
        self.operation = operation
        self.tags = current_call_tags()

    def observe(self, item: Any) -> bool:
        found = extract_batch_result(item)
        if found is None or get_runtime() is None:
            return False
        if found.response_id is not None and not self.ctx.recorded.claim(found.response_id):
            return False
        call = Call(self.provider, self.operation, found.model, False, self.tags)
        finish_call(
            call,
            usage=found.usage,
            model=found.model,
            usage_source="response",
            pricing_mode=found.pricing_mode,
            provider_response_id=found.response_id,
        )
        return False

    def finish(self, error: BaseException | None, *, exhausted: bool) -> None:
        return None


def batch_results_wrapper(ctx: SdkContext, *, is_async: bool) -> Callable[..., Any]:
    """Wrap ``messages.batches.results()``: record each succeeded result as the caller reads it."""

    def start(instance: Any) -> BatchResultsRecorder | None:
        if is_suppressed() or get_runtime() is None:
            return None
        try:
            return BatchResultsRecorder(ctx, provider_of(ctx, instance), "messages")
        except Exception:
            STATS.failure("errors.instrumentation.start", "could not start recording batch results")
            return None

    if is_async:

        async def async_wrapper(
            wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            recorder = start(instance)
            with suppressed():
                results = await wrapped(*args, **kwargs)
            return results if recorder is None else AsyncStreamProxy(results, recorder)

        return async_wrapper

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        recorder = start(instance)
        with suppressed():
            results = wrapped(*args, **kwargs)
        return results if recorder is None else SyncStreamProxy(results, recorder)

    return wrapper


__all__ = [
    "AsyncStreamManagerProxy",
    "BatchResultsRecorder",
    "SyncStreamManagerProxy",
    "batch_results_wrapper",
    "stream_manager_wrapper",
]
