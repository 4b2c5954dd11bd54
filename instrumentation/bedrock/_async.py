"""The wrapper of aiobotocore's ``AioBaseClient._make_api_call`` (and so aioboto3's clients).

The same calls, checks and recording as the botocore wrapper (``_wrappers.py``);
what differs is only what is awaited:

- ``InvokeModel``: the body is aiobotocore's async ``StreamingBody``; it is read
  whole with ``await body.read()``, a copy is parsed, and the caller gets a body
  of the same class over the same bytes (every async read method, ``async with``,
  ``close``/``aclose`` as the original); a body that fails to read gives the
  caller the same error when it reads.
- ``ConverseStream`` / ``InvokeModelWithResponseStream``: the ``AioEventStream``
  is put behind a proxy read with ``async for`` that records once at the end,
  on an error, on ``close()``, or when the caller drops it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import wrapt

from ..._events import Call
from ..._suppress import SUPPRESSED
from .._streams import AsyncItems, Finisher, StreamObserver
from ._wrappers import bedrock_call, begin, fail, record_response


class AsyncEventStreamProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """An aiobotocore ``AioEventStream``: every event reaches the caller unchanged, recorded once.

    ``AioEventStream.__anext__`` is an async generator function, not an awaitable
    step, so the proxy loops over what ``__aiter__()`` returns. The loop handed
    to ``async for`` holds the proxy, so a stream looped over straight from the
    response is not taken as dropped while the loop runs. ``close()`` stays
    synchronous, as aiobotocore's is.
    """

    def __init__(self, wrapped: Any, observer: StreamObserver) -> None:
        super().__init__(wrapped)
        self._self_finalize = Finisher(observer)
        self._self_items = AsyncItems(wrapped.__aiter__(), observer.observe, self._self_finalize)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._self_events()

    async def _self_events(self) -> AsyncIterator[Any]:
        async for item in self._self_items:
            yield item

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_finalize(None)


class _Content:
    """What aiobotocore's aiohttp body reads (``ClientResponse.content``), over bytes in memory."""

    __slots__ = ("_data", "_error", "_position")

    def __init__(self, data: bytes, error: BaseException | None) -> None:
        self._data = data
        self._error = error
        self._position = 0

    async def read(self, n: int = -1) -> bytes:
        if self._error is not None:
            raise self._error
        start = self._position
        end = len(self._data) if n < 0 else min(len(self._data), start + n)
        self._position = end
        return self._data[start:end]

    def at_eof(self) -> bool:
        return self._position >= len(self._data)

    def whole(self) -> bytes:
        """Every byte, wherever reading stands (httpx's ``aread()`` returns them each time)."""
        if self._error is not None:
            raise self._error
        return self._data


class _BufferedResponse:
    """The raw response under a replacement body: what the aiohttp and httpx bodies read.

    The bytes come from memory; any other attribute (``url``, ``status``,
    ``headers``, ...) is the original response's, which aiobotocore 2.x's bodies
    (proxies of that response) hand the caller straight through.
    """

    __slots__ = ("_original", "content")

    def __init__(self, data: bytes, original: Any, error: BaseException | None = None) -> None:
        self._original = original
        self.content = _Content(data, error)

    def __getattr__(self, name: str) -> Any:
        if name == "_original":  # not set yet: no original to ask
            raise AttributeError(name)
        return getattr(self._original, name)

    async def aiter_raw(self) -> AsyncIterator[bytes]:  # aiobotocore 3.x's httpx body reads this
        data = await self.content.read()
        if data:
            yield data

    async def aread(self) -> bytes:
        """aiobotocore 2.x's httpx body reads this: the whole body, every time, as httpx's does."""
        return self.content.whole()

    # aiobotocore 2.x's aiohttp body hands ``async with`` to the aiohttp response it
    # wraps, which enters as itself and reads whole with ``read()``.
    async def __aenter__(self) -> _BufferedResponse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def read(self) -> bytes:
        return await self.content.read()

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _raw_of(body: Any) -> Any:
    """The HTTP response under an aiobotocore body: the one 2.x proxies, or 3.x's ``_raw_stream``."""
    if isinstance(body, wrapt.ObjectProxy):
        return body.__wrapped__
    return getattr(body, "_raw_stream", None)


def _body_like(body: Any, raw: _BufferedResponse, length: int | None) -> Any:
    """A body of the caller's body's class over ``raw``: one of aiobotocore's, or its aiohttp one.

    aiobotocore 3.x's bodies take the response and its length; 2.x's httpx body
    (a proxy of the httpx response) takes the response alone.
    """
    from aiobotocore import response

    known = tuple(
        getattr(response, name)
        for name in ("AioStreamingBody", "AioHttpxStreamingBody", "StreamingBody")
        if hasattr(response, name)
    )
    legacy_httpx = getattr(response, "HttpxStreamingBody", None)
    if legacy_httpx is not None and legacy_httpx not in known and type(body) is legacy_httpx:
        return legacy_httpx(raw)
    kind = type(body) if type(body) in known else response.StreamingBody
    return kind(raw, length)


async def read_body(call: Call, response: Any) -> bytes | None:
    """Read the InvokeModel body whole and give the caller an equivalent one; None if it failed."""
    body = response.get("body") if isinstance(response, dict) else None
    if body is None or not hasattr(body, "read"):
        return None
    raw = _raw_of(body)
    try:
        content = await body.read()
    except BaseException as error:  # asyncio.CancelledError too: the call is recorded either way
        response["body"] = _body_like(body, _BufferedResponse(b"", raw, error), None)
        fail(call, error)
        if not isinstance(error, Exception):
            raise
        return None
    if not isinstance(content, bytes):
        return None  # not aiobotocore's StreamingBody: nothing to hand back in its place
    response["body"] = _body_like(body, _BufferedResponse(content, raw), len(content))
    return content


def async_make_api_call_wrapper() -> Callable[..., Any]:
    """Wrap ``AioBaseClient._make_api_call(operation_name, api_params)`` for Bedrock Runtime."""

    async def record(
        wrapped: Any,
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        operation_name: str,
        params: Any,
    ) -> Any:
        call = begin(instance, operation_name, params)
        if call is None:
            return await wrapped(*args, **kwargs)
        token = SUPPRESSED.set(True)  # a transport instrumentor must not record this call again
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as error:  # asyncio.CancelledError, a timeout: the attempt happened
            fail(call, error)
            raise
        finally:
            SUPPRESSED.reset(token)
        content = await read_body(call, response) if operation_name == "InvokeModel" else None
        record_response(call, operation_name, params, response, content, AsyncEventStreamProxy)
        return response

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        target = bedrock_call(instance, args, kwargs)
        if target is None:
            return wrapped(*args, **kwargs)  # the coroutine, untouched
        return record(wrapped, instance, args, kwargs, *target)

    return wrapper


__all__ = ["AsyncEventStreamProxy", "async_make_api_call_wrapper", "read_body"]
