"""Wrappers for ``Client.send`` / ``AsyncClient.send`` of httpx and httpx2.

A request to a host that is not an LLM provider costs one cached dict lookup.
For an LLM endpoint, the call is started before the request is sent (its
model and ``stream`` flag read from the request body, ``.._transport``); a
streamed body is observed chunk by chunk as the caller reads it (the
response's ``stream`` is wrapped), and the call is finished exactly once: at
the end of the body, on close, or on a read error. A body the client had
already read is parsed at once. Either way one finished event goes to the bus
and neither the request nor the response is kept.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from ..._errors import LLMCostTrackerError
from ..._stats import STATS
from ..._suppress import SUPPRESSED, is_suppressed
from .. import _hosts
from .._transport import (
    Observation,
    finish_if_dropped,
    finish_observation,
    start_observation,
)
from ._parsers import route_for


def _attach(observation: Observation, response: Any, streamed: bool, stream_class: Any) -> None:
    """Read an already-read body now, or wrap the response's stream to observe it as it is read."""
    try:
        # A transport may hand back a body it already loaded (MockTransport, caches).
        if not streamed or response.is_stream_consumed:
            observation.read_whole(response.status_code, response.headers, response.content)
            return
        # A body with no usage is still timed to its end.
        observation.prepare(
            response.status_code,
            response.headers,
            incremental=True,
            decoder_for=lambda encoding: _decoder_for(response, encoding),
        )
        response.stream = stream_class(response.stream, observation)
        return
    except LLMCostTrackerError:
        raise
    except Exception:
        STATS.failure("errors.transport.attach", "could not observe an LLM response")
    observation.finish()


def _decoder_for(response: Any, encoding: str) -> Any:
    """The library's own content decoder for ``encoding`` (gzip, deflate, br, zstd), or None."""
    try:
        module = importlib.import_module(type(response).__module__.split(".")[0] + "._decoders")
        decoder = module.SUPPORTED_DECODERS.get(encoding)
    except (ImportError, AttributeError):
        return None
    return decoder() if decoder is not None else None


def observe_request(provider: str, request: Any) -> Observation | None:
    """Start recording ``request`` when it goes to a billed endpoint; None otherwise."""
    if request.method != "POST":
        return None
    path = request.url.path
    route = route_for(provider, path)
    if route is None:
        return None
    try:
        body: bytes = request.content
    except Exception:  # a streaming request body that was not read: nothing to learn
        body = b""
    return start_observation(provider, route, path, body)


def stream_classes(library: Any) -> tuple[type[Any], type[Any]]:
    """Stream wrappers deriving from ``library``'s own byte-stream bases, so its type checks pass."""

    class ObservedStream(library.SyncByteStream):  # type: ignore[misc]
        """The response's byte stream, each chunk shown to the observation on its way to the caller."""

        def __init__(self, stream: Any, observation: Observation) -> None:
            self._stream = stream
            self._observation = observation

        def __iter__(self) -> Iterator[bytes]:
            observation = self._observation
            try:
                for chunk in self._stream:
                    observation.feed(chunk)
                    yield chunk
            except Exception as error:
                finish_observation(observation, error)
                raise
            finish_observation(observation, None)

        def close(self) -> None:
            try:
                self._stream.close()
            finally:
                finish_observation(self._observation, None)

        def __del__(self) -> None:  # the response was dropped before its body ended
            finish_if_dropped(self._observation)

        def __getattr__(self, name: str) -> Any:  # e.g. httpx2's stream.elapsed
            return getattr(self.__dict__["_stream"], name)

    class AsyncObservedStream(library.AsyncByteStream):  # type: ignore[misc]
        """The async response byte stream, each chunk shown to the observation on its way to the caller."""

        def __init__(self, stream: Any, observation: Observation) -> None:
            self._stream = stream
            self._observation = observation

        async def __aiter__(self) -> AsyncIterator[bytes]:
            observation = self._observation
            iterator = self._stream.__aiter__()
            try:
                async for chunk in iterator:
                    observation.feed(chunk)
                    yield chunk
            except Exception as error:
                finish_observation(observation, error)
                raise
            finally:  # as httpx2 does: close the inner generator now, not at garbage collection
                if isinstance(iterator, AsyncGenerator):
                    await iterator.aclose()
            finish_observation(observation, None)

        async def aclose(self) -> None:
            try:
                await self._stream.aclose()
            finally:
                finish_observation(self._observation, None)

        def __del__(self) -> None:
            finish_if_dropped(self._observation)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.__dict__["_stream"], name)

    return ObservedStream, AsyncObservedStream


def provider_of_request(request: Any) -> str | None:
    """The provider whose host ``request`` goes to, or None: on the hot path of every request."""
    try:
        url = request.url
        host = url.host
        provider = _hosts.cached_provider(host)  # a known host: one string-keyed dict lookup
        if provider is _hosts.MISSING:
            return _hosts.provider_for_host(host, url.port)
    except Exception:  # not an httpx URL: nothing we can route
        return None
    return provider  # type: ignore[return-value]


def send_wrapper(stream_class: type[Any]) -> Callable[..., Any]:
    """Wrapper for ``Client.send``: LLM endpoints are recorded, every other request passes straight on."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        request: Any = args[0] if args else kwargs.get("request")
        provider = provider_of_request(request)
        if provider is None or is_suppressed():
            return wrapped(*args, **kwargs)
        observation = observe_request(provider, request)
        if observation is None:
            return wrapped(*args, **kwargs)
        token = SUPPRESSED.set(True)  # what send() calls must not record this request again
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as error:  # a timeout, a cancellation: the attempt still happened
            finish_observation(observation, error)
            raise
        finally:
            SUPPRESSED.reset(token)
        _attach(observation, response, bool(kwargs.get("stream")), stream_class)
        return response

    return wrapper


def async_send_wrapper(stream_class: type[Any]) -> Callable[..., Any]:
    """Wrapper for ``AsyncClient.send``: returns the coroutine untouched for non-LLM requests."""

    async def observe(
        observation: Observation, wrapped: Callable[..., Awaitable[Any]], args: Any, kwargs: Any
    ) -> Any:
        token = SUPPRESSED.set(True)
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as error:  # asyncio.CancelledError included
            finish_observation(observation, error)
            raise
        finally:
            SUPPRESSED.reset(token)
        _attach(observation, response, bool(kwargs.get("stream")), stream_class)
        return response

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        request: Any = args[0] if args else kwargs.get("request")
        provider = provider_of_request(request)
        if provider is None or is_suppressed():
            return wrapped(*args, **kwargs)
        observation = observe_request(provider, request)
        if observation is None:
            return wrapped(*args, **kwargs)
        return observe(observation, wrapped, args, kwargs)

    return wrapper
