"""Stream proxies: forward every item unchanged and finalize the recording exactly once.

``SyncStreamProxy`` / ``AsyncStreamProxy`` wrap an SDK stream (``wrapt.ObjectProxy``,
so ``isinstance`` checks and every attribute still work). Each item goes to an
observer first; the observer may ask to hide an item the caller did not ask for
(the ``include_usage`` trailer we requested). The recording is finalized on
exhaustion, an error, ``close()``, or context-manager exit, whichever comes
first, guarded by a shared once-only finisher. A stream the caller lets go of
before any of these (a ``break`` out of the loop, then nothing) is finished
when the finisher is collected, as an early ``close()`` would have.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, Protocol

import wrapt

from .._errors import LLMCostTrackerError
from .._stats import STATS
from ._calls import finish_dropped, process_generation


class StreamObserver(Protocol):
    """What a stream proxy reports to: every item, then the end, once."""

    def observe(self, item: Any) -> bool:
        """Look at ``item``; return True to hide it from the caller."""
        ...

    def finish(self, error: BaseException | None, *, exhausted: bool) -> None:
        """Record the call: the stream ended (``exhausted``), failed (``error``) or was closed early."""
        ...


def _finish(observer: StreamObserver, error: BaseException | None, *, exhausted: bool) -> None:
    try:
        observer.finish(error, exhausted=exhausted)
    except LLMCostTrackerError:
        if error is None:
            raise  # a budget in "raise" mode; never replaces the caller's own exception
    except Exception:
        STATS.failure("errors.instrumentation.stream_finish", "could not record a finished stream")


class Finisher:
    """Finalize a stream's recording once. Shared by a proxy and its item loop, referring to neither,
    so no reference cycle keeps a finished stream (and its response) alive until garbage collection.

    When the proxy and its loop are both dropped before the stream ended (the
    caller broke out of its loop and let the stream go), the finisher is
    collected unfinished: the bus worker then records the call with what was
    seen, as an early ``close()`` does (``finish_dropped``).
    """

    __slots__ = ("done", "generation", "observer")

    def __init__(self, observer: StreamObserver) -> None:
        self.observer = observer
        self.done = False
        self.generation = process_generation()

    def __call__(self, error: BaseException | None, *, exhausted: bool = False) -> None:
        if self.done:
            return
        self.done = True
        _finish(self.observer, error, exhausted=exhausted)

    def __del__(self) -> None:
        if not self.done:
            self.done = True
            observer = self.observer
            finish_dropped(lambda: _finish(observer, None, exhausted=False), self.generation)


def _items(wrapped: Any, observe: Any, finalize: Any) -> Iterator[Any]:
    """The per-item loop of a stream proxy: a generator, the cheapest way to resume per item.

    Closing it (garbage collection of a stream the caller dropped) does not
    finalize the recording here: the shared finisher, collected with it, does.
    """
    try:
        for item in wrapped:
            try:
                hide = observe(item)
            except Exception:
                STATS.failure("errors.instrumentation.stream_item", "could not read a stream item")
                hide = False
            if not hide:
                yield item
    except GeneratorExit:
        raise
    except BaseException as error:
        finalize(error)
        raise
    finalize(None, exhausted=True)


def _iterator(wrapped: Any) -> Any:
    """The object to loop over: SDK streams are their own iterators (nothing is read yet)."""
    return wrapped if hasattr(wrapped, "__next__") else iter(wrapped)


class AsyncItems:
    """The per-item loop of an async stream proxy."""

    __slots__ = ("_finalize", "_observe", "_step")

    def __init__(self, wrapped: Any, observe: Any, finalize: Any) -> None:
        step = getattr(wrapped, "__anext__", None)
        self._step = step if step is not None else wrapped.__aiter__().__anext__
        self._observe = observe
        self._finalize = finalize

    def __aiter__(self) -> AsyncItems:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                item = await self._step()
            except StopAsyncIteration:
                self._finalize(None, exhausted=True)
                raise
            except BaseException as error:
                self._finalize(error)
                raise
            try:
                hide = self._observe(item)
            except Exception:
                STATS.failure("errors.instrumentation.stream_item", "could not read a stream item")
                hide = False
            if not hide:
                return item


class SyncStreamProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A synchronous SDK stream, recorded once it ends, fails or is closed."""

    def __init__(self, wrapped: Any, observer: StreamObserver) -> None:
        super().__init__(wrapped)
        self._self_finalize = Finisher(observer)
        self._self_items = _items(_iterator(wrapped), observer.observe, self._self_finalize)

    def __iter__(self) -> Iterator[Any]:
        return self._self_items

    def __next__(self) -> Any:
        return next(self._self_items)

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_finalize(None)

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            # an exception here is the caller's, not the call's: the stream just ended early
            self._self_finalize(None)


class AsyncStreamProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """An asynchronous SDK stream, recorded once it ends, fails or is closed."""

    def __init__(self, wrapped: Any, observer: StreamObserver) -> None:
        super().__init__(wrapped)
        self._self_finalize = Finisher(observer)
        self._self_items = AsyncItems(wrapped, observer.observe, self._self_finalize)

    def __aiter__(self) -> AsyncItems:
        return self._self_items

    async def __anext__(self) -> Any:
        return await self._self_items.__anext__()

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_finalize(None)

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            # an exception here is the caller's, not the call's: the stream just ended early
            self._self_finalize(None)


class RawObserver(Protocol):
    """What a raw-response proxy reports to (``with_raw_response`` / ``with_streaming_response``)."""

    done: bool  # the call is recorded

    def parsed(self, value: Any) -> Any:
        """Record from what ``parse()`` returned; return what the caller gets (a stream is proxied)."""
        ...

    def body(self, content: bytes) -> None:
        """Record from the body the caller read with ``read()`` / ``text()`` / ``json()``."""
        ...

    def closed(self) -> None:
        """The response was closed; record it (usage unknown) if nothing was recorded yet."""
        ...


def _guarded(action: Any, *args: Any) -> Any:
    try:
        return action(*args)
    except LLMCostTrackerError:
        raise
    except Exception:
        STATS.failure("errors.instrumentation.raw_response", "could not read a raw response")
        return None


def _raw_dropped(observer: RawObserver, parsed: dict[Any, Any], generation: int) -> None:
    """A raw response let go of unread and unclosed: recorded with usage unknown.

    One that handed out a parsed stream leaves it to that stream's finisher.
    """
    if not observer.done and not parsed:
        finish_dropped(lambda: _guarded(observer.closed), generation)


class SyncRawResponseProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """An SDK raw response whose body is not read yet: recorded when the caller reads or closes it."""

    def __init__(self, wrapped: Any, observer: RawObserver) -> None:
        super().__init__(wrapped)
        self._self_observer = observer
        self._self_parsed: dict[Any, Any] = {}
        self._self_generation = process_generation()

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        value = self.__wrapped__.parse(*args, **kwargs)
        key = id(value)
        if key not in self._self_parsed:
            shown = _guarded(self._self_observer.parsed, value)
            self._self_parsed[key] = value if shown is None else shown
        return self._self_parsed[key]

    def read(self) -> Any:
        content = self.__wrapped__.read()
        _guarded(self._self_observer.body, content)
        return content

    def text(self) -> Any:
        text = self.__wrapped__.text()
        _guarded(self._self_observer.body, self.__wrapped__.http_response.content)
        return text

    def json(self) -> Any:
        value = self.__wrapped__.json()
        _guarded(self._self_observer.body, self.__wrapped__.http_response.content)
        return value

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            _guarded(self._self_observer.closed)

    def __del__(self) -> None:
        _raw_dropped(self._self_observer, self._self_parsed, self._self_generation)


class AsyncRawResponseProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """The async form of SyncRawResponseProxy (``AsyncAPIResponse``)."""

    def __init__(self, wrapped: Any, observer: RawObserver) -> None:
        super().__init__(wrapped)
        self._self_observer = observer
        self._self_parsed: dict[Any, Any] = {}
        self._self_generation = process_generation()

    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        value = await self.__wrapped__.parse(*args, **kwargs)
        key = id(value)
        if key not in self._self_parsed:
            shown = _guarded(self._self_observer.parsed, value)
            self._self_parsed[key] = value if shown is None else shown
        return self._self_parsed[key]

    async def read(self) -> Any:
        content = await self.__wrapped__.read()
        _guarded(self._self_observer.body, content)
        return content

    async def text(self) -> Any:
        text = await self.__wrapped__.text()
        _guarded(self._self_observer.body, self.__wrapped__.http_response.content)
        return text

    async def json(self) -> Any:
        value = await self.__wrapped__.json()
        _guarded(self._self_observer.body, self.__wrapped__.http_response.content)
        return value

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            _guarded(self._self_observer.closed)

    def __del__(self) -> None:
        _raw_dropped(self._self_observer, self._self_parsed, self._self_generation)


__all__ = [
    "AsyncItems",
    "AsyncRawResponseProxy",
    "AsyncStreamProxy",
    "Finisher",
    "RawObserver",
    "StreamObserver",
    "SyncRawResponseProxy",
    "SyncStreamProxy",
]
