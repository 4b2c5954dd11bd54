"""The wrapper for ``aiohttp.ClientSession._request`` and the proxy that watches the body.

A request to a host that is not an LLM provider costs a split of its URL and
one cached dict lookup. For an LLM endpoint the call starts before the
request is sent; ``response.content`` (the ``StreamReader`` every way of
reading the body goes through: ``read()``, ``json()``, ``text()``,
``content.iter_chunked()``, ``iter_any()``, ``readline()``, ``async for``) is
replaced by a proxy that shows each chunk to the observation on its way to the
caller, unchanged. The call finishes once: when the caller has read the body
to its end, when the response is released or closed (early included), or on a
read error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import wrapt

from ..._errors import LLMCostTrackerError
from ..._stats import STATS
from ..._suppress import SUPPRESSED, is_suppressed
from .._transport import (
    Observation,
    finish_if_dropped,
    finish_observation,
    provider_for,
    split_url,
    start_observation,
)
from ..httpx._parsers import route_for


def _target(instance: Any, str_or_url: Any) -> tuple[str, int | None, str] | None:
    """``(host, port, path)`` the request goes to, as ``ClientSession`` will resolve it."""
    if isinstance(str_or_url, str) and getattr(instance, "_base_url", None) is None:
        return split_url(str_or_url)
    url = instance._build_url(str_or_url)
    return url.host or "", url.port, url.path


def observe_request(
    instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Observation | None:
    """Start recording a session request to a billed endpoint; None for any other request."""
    try:
        method = args[0] if args else kwargs["method"]
        if method != "POST" and method.upper() != "POST":
            return None
        target = _target(instance, args[1] if len(args) > 1 else kwargs["str_or_url"])
        if target is None:
            return None
        host, port, path = target
        provider = provider_for(host, port)
    except Exception:  # not a request we can route: aiohttp itself will say what is wrong
        return None
    if provider is None or is_suppressed():
        return None
    route = route_for(provider, path)
    if route is None:
        return None
    body: Any = kwargs.get("json")
    if not isinstance(body, Mapping):
        body = kwargs.get("data")
        if isinstance(body, str):
            body = body.encode("utf-8", "replace")
        elif not isinstance(body, (bytes, bytearray)):
            body = b""  # a form, a file, a stream: nothing to learn from it
    return start_observation(
        provider, route, path, body if isinstance(body, Mapping) else bytes(body)
    )


class ObservedContent(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A response's ``StreamReader``: every read is shown to the observation, unchanged."""

    def __init__(self, content: Any, observation: Observation) -> None:
        super().__init__(content)
        self._self_observation = observation

    def _self_seen(self, data: bytes) -> bytes:
        observation = self._self_observation
        if data:
            observation.feed(data)
        if self.__wrapped__.at_eof():
            finish_observation(observation, None)
        return data

    async def _self_read(self, read: Awaitable[Any]) -> Any:
        try:
            return await read
        except Exception as error:
            finish_observation(self._self_observation, error)
            raise

    async def read(self, n: int = -1) -> bytes:
        return self._self_seen(await self._self_read(self.__wrapped__.read(n)))

    async def readany(self) -> bytes:
        return self._self_seen(await self._self_read(self.__wrapped__.readany()))

    async def readline(self, **kwargs: Any) -> bytes:
        return self._self_seen(await self._self_read(self.__wrapped__.readline(**kwargs)))

    async def readuntil(self, *args: Any, **kwargs: Any) -> bytes:
        return self._self_seen(await self._self_read(self.__wrapped__.readuntil(*args, **kwargs)))

    async def readexactly(self, n: int) -> bytes:
        return self._self_seen(await self._self_read(self.__wrapped__.readexactly(n)))

    async def readchunk(self) -> tuple[bytes, bool]:
        data, end_of_chunk = await self._self_read(self.__wrapped__.readchunk())
        return self._self_seen(data), end_of_chunk

    def read_nowait(self, n: int = -1) -> bytes:
        return self._self_seen(self.__wrapped__.read_nowait(n))

    def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        return _streams().AsyncStreamIterator(lambda: self.read(n))  # type: ignore[no-any-return]

    def iter_any(self) -> AsyncIterator[bytes]:
        return _streams().AsyncStreamIterator(self.readany)  # type: ignore[no-any-return]

    def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        return _streams().ChunkTupleAsyncStreamIterator(self)  # type: ignore[no-any-return]

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _streams().AsyncStreamIterator(self.readline)  # type: ignore[no-any-return]

    def set_exception(self, *args: Any, **kwargs: Any) -> None:
        # aiohttp calls this when the response is released or closed: what was read is all there is.
        try:
            self.__wrapped__.set_exception(*args, **kwargs)
        finally:
            finish_observation(self._self_observation, None)

    def __del__(self) -> None:  # the response was dropped before its body ended
        finish_if_dropped(self._self_observation)


def _streams() -> Any:
    import aiohttp.streams

    return aiohttp.streams


def _attach(observation: Observation, response: Any, decoded: bool) -> None:
    """Watch ``response.content`` as the caller reads it."""
    try:
        headers = response.headers
        # A body with no usage (an HTML error page) is still timed to its end.
        observation.prepare(response.status, headers, incremental=True)
        encoding = headers.get("content-encoding", "").strip().lower()
        if not decoded and encoding not in ("", "identity"):
            observation.give_up("dropped.transport_unsupported_encoding")
        response.content = ObservedContent(response.content, observation)
        return
    except LLMCostTrackerError:
        raise
    except Exception:
        STATS.failure("errors.transport.attach", "could not observe an LLM response")
    observation.finish()


def request_wrapper() -> Callable[..., Any]:
    """Wrapper for ``ClientSession._request``: returns the coroutine untouched for non-LLM requests."""

    async def observe(
        observation: Observation,
        wrapped: Callable[..., Awaitable[Any]],
        instance: Any,
        args: Any,
        kwargs: Any,
    ) -> Any:
        token = SUPPRESSED.set(True)  # what the request calls must not record it again
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as error:  # asyncio.CancelledError, a timeout: the attempt happened
            finish_observation(observation, error)
            raise
        finally:
            SUPPRESSED.reset(token)
        decoded = kwargs.get("auto_decompress")
        if decoded is None:
            decoded = getattr(instance, "auto_decompress", True)
        _attach(observation, response, bool(decoded))
        return response

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        observation = observe_request(instance, args, kwargs)
        if observation is None:
            return wrapped(*args, **kwargs)
        return observe(observation, wrapped, instance, args, kwargs)

    return wrapper
