"""Wrappers for ``Client.send`` / ``AsyncClient.send`` of httpx and httpx2, and the body observer.

A request to a host that is not an LLM provider costs one cached dict lookup.
For an LLM endpoint, the call is started before the request is sent; a body
already read is parsed at once, and a streamed body is observed chunk by chunk
as the caller reads it (the response's ``stream`` is wrapped), then the call is
finished exactly once: at the end of the body, on close, or on a read error.
Bodies are parsed for usage only and never kept beyond the bounded windows of
``_sse.py``.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from ..._errors import LLMCostTrackerError
from ..._events import UsageSource
from ..._stats import STATS
from ..._suppress import is_suppressed, suppressed
from .._calls import Call, finish_call, start_call
from .._hosts import provider_for_host
from ..openai._extract import Extraction
from ._parsers import Route, StreamState, model_from_path, route_for
from ._sse import BodyWindow, EventSplitter, LineSplitter

REQUEST_JSON_BYTES = 64 * 1024
"""Request bodies up to this size are parsed for ``model``; larger ones are searched for it."""

_MODEL_RE = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.){1,256})"')
_JSON_TYPES = ("application/json", "text/json", "application/problem+json")


def _request_json(request: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Return the request's JSON object (small bodies only) and the model it asks for."""
    try:
        body = request.content
    except Exception:  # a streaming request body that was not read: nothing to learn
        return None, None
    if not body:
        return None, None
    if len(body) <= REQUEST_JSON_BYTES and body[:1] == b"{":
        try:
            data = json.loads(body)
        except ValueError:
            return None, None
        if not isinstance(data, dict):
            return None, None
        model = data.get("model")
        return data, (model if isinstance(model, str) and model else None)
    match = _MODEL_RE.search(body, 0, REQUEST_JSON_BYTES)
    return None, (match.group(1).decode("utf-8", "replace") if match else None)


class Observation:
    """One LLM call seen at the transport: routes the response body to its parser, finishes once."""

    __slots__ = (
        "_broken",
        "_decoder",
        "_first",
        "_reader",
        "_state",
        "_status",
        "_window",
        "call",
        "from_request",
        "request_model",
        "route",
    )

    def __init__(self, call: Call, route: Route, request_model: str | None) -> None:
        self.call = call
        self.route = route
        self.request_model = request_model
        self._status = 0
        self._state: StreamState | None = None
        self._reader: EventSplitter | LineSplitter | None = None
        self._window: BodyWindow | None = None
        self._decoder: Any = None
        self._first = True
        self._broken = False
        self.from_request: Extraction | None = None

    # -- setup ------------------------------------------------------------------

    def prepare(self, response: Any, *, raw: bool) -> None:
        """Choose how to read ``response``'s body; ``raw`` bytes still carry their content encoding."""
        self._status = response.status_code
        headers = response.headers
        content_type = headers.get("content-type", "").lower()
        if "text/event-stream" in content_type:
            self.call.stream = True
            self._state = self.route.new_state()
            self._reader = EventSplitter(self._event)
        elif "ndjson" in content_type or "jsonl" in content_type:
            self.call.stream = True
            self._state = self.route.new_state()
            self._reader = LineSplitter(self._event)
        elif any(t in content_type for t in _JSON_TYPES) or content_type.endswith("+json"):
            self._window = BodyWindow()
        else:
            return  # HTML error pages, audio, images: nothing to read usage from
        if raw:
            encoding = headers.get("content-encoding", "").strip().lower()
            if encoding and encoding != "identity":
                self._decoder = _decoder_for(response, encoding)
                if self._decoder is None:
                    STATS.incr("dropped.transport_unsupported_encoding")
                    self._broken = True

    # -- observing -----------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        """Take a chunk of the body as the caller reads it. Never raises."""
        if self._broken:
            return
        try:
            if self._decoder is not None:
                decoded = self._decoder.decode(chunk)  # httpx: bytes; httpx2: an iterator of bytes
                chunk = decoded if isinstance(decoded, bytes) else b"".join(decoded)
            if self._reader is not None:
                self._reader.feed(chunk)
            elif self._window is not None:
                self._window.feed(chunk)
        except Exception:
            self._broken = True
            STATS.failure("errors.transport.observe", "could not observe a response body")

    def _event(self, name: str | None, data: bytes) -> None:
        needle = self.route.needle
        if not self._first and needle is not None and needle.search(data) is None:
            return
        self._first = False
        if data == b"[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            STATS.incr("dropped.transport_bad_event")
            return
        assert self._state is not None
        self._state.add(event)

    # -- finishing -------------------------------------------------------------------

    def finish(self, error: BaseException | None = None) -> None:
        """Record the call (once) from what the body said. Raises only a budget's error in raise mode."""
        if self.call.finished:
            return
        try:
            found = self._extraction()
        except Exception:
            STATS.failure("errors.transport.parse", "could not read usage from a response")
            found = Extraction(usage=None)
        if error is not None:
            status, error_type = "error", type(error).__name__
        elif self._status >= 400:
            status, error_type = "error", f"http_{self._status}"
        else:
            status, error_type = "ok", None
        source: UsageSource = "stream" if self.call.stream else "response"
        if self.from_request is not None and found.usage is None and status == "ok":
            found, source = self.from_request, "estimated"
        finish_call(
            self.call,
            usage=found.usage,
            model=found.model or self.request_model,
            usage_source=source,
            pricing_mode=found.pricing_mode,
            provider_response_id=found.response_id,
            status=status,
            error_type=error_type,
        )

    def _extraction(self) -> Extraction:
        if self._broken:
            return Extraction(usage=None)
        if self._decoder is not None:
            self._decoder = None  # what a decoder still holds at the end is a partial chunk
        if self._reader is not None:
            self._reader.close()
            assert self._state is not None
            return self._state.result()
        if self._window is not None:
            if self._window.overflowed:
                STATS.incr("transport.body_recovered_from_tail")
            document = self._window.document(self.route.usage_key)
            if document is None:
                return Extraction(usage=None)
            return self.route.parse(document)
        return Extraction(usage=None)


def _decoder_for(response: Any, encoding: str) -> Any:
    """The library's own content decoder for ``encoding`` (gzip, deflate, br, zstd), or None."""
    try:
        module = importlib.import_module(type(response).__module__.split(".")[0] + "._decoders")
        decoder = module.SUPPORTED_DECODERS.get(encoding)
    except (ImportError, AttributeError):
        return None
    return decoder() if decoder is not None else None


def start_observation(provider: str, request: Any, url: Any) -> Observation | None:
    """Start recording a request to ``provider``; None when the path is not billed or recording is off."""
    if request.method != "POST":
        return None
    path = url.path
    route = route_for(provider, path)
    if route is None:
        return None
    try:
        data, model = _request_json(request)
        if model is None:
            model = model_from_path(path)
    except Exception:
        STATS.failure("errors.transport.request", "could not read an LLM request")
        data, model = None, None
    stream = route.stream or (data is not None and data.get("stream") is True)
    call = start_call(provider, route.operation, model, stream=stream, request=data or {})
    if call is None:
        return None
    observation = Observation(call, route, model)
    if route.from_request is not None:
        observation.from_request = route.from_request(data or {})
    return observation


def _attach(observation: Observation, response: Any, streamed: bool, stream_class: Any) -> None:
    """Read an already-read body now, or wrap the response's stream to observe it as it is read."""
    try:
        observation.prepare(response, raw=streamed)
        if not streamed:
            observation.feed(response.content)
        else:
            response.stream = stream_class(response.stream, observation)
            return
    except Exception:
        STATS.failure("errors.transport.attach", "could not observe an LLM response")
    observation.finish()


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
                _finish(observation, error)
                raise
            _finish(observation, None)

        def close(self) -> None:
            try:
                self._stream.close()
            finally:
                _finish(self._observation, None)

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
                _finish(observation, error)
                raise
            finally:  # as httpx2 does: close the inner generator now, not at garbage collection
                if isinstance(iterator, AsyncGenerator):
                    await iterator.aclose()
            _finish(observation, None)

        async def aclose(self) -> None:
            try:
                await self._stream.aclose()
            finally:
                _finish(self._observation, None)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.__dict__["_stream"], name)

    return ObservedStream, AsyncObservedStream


def _finish(observation: Observation, error: BaseException | None) -> None:
    try:
        observation.finish(error)
    except LLMCostTrackerError:
        raise
    except Exception:
        STATS.failure("errors.transport.finish", "could not record an LLM response")


def send_wrapper(stream_class: type[Any]) -> Callable[..., Any]:
    """Wrapper for ``Client.send``: LLM endpoints are recorded, every other request passes straight on."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        request: Any = args[0] if args else kwargs.get("request")
        try:
            url = request.url
            provider = provider_for_host(url.host, url.port)
        except Exception:
            provider = None
        if provider is None or is_suppressed():
            return wrapped(*args, **kwargs)
        observation = start_observation(provider, request, url)
        if observation is None:
            return wrapped(*args, **kwargs)
        try:
            with suppressed():
                response = wrapped(*args, **kwargs)
        except Exception as error:
            _finish(observation, error)
            raise
        _attach(observation, response, bool(kwargs.get("stream")), stream_class)
        return response

    return wrapper


def async_send_wrapper(stream_class: type[Any]) -> Callable[..., Any]:
    """Wrapper for ``AsyncClient.send``: returns the coroutine untouched for non-LLM requests."""

    async def observe(
        observation: Observation, wrapped: Callable[..., Awaitable[Any]], args: Any, kwargs: Any
    ) -> Any:
        try:
            with suppressed():
                response = await wrapped(*args, **kwargs)
        except Exception as error:
            _finish(observation, error)
            raise
        _attach(observation, response, bool(kwargs.get("stream")), stream_class)
        return response

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        request: Any = args[0] if args else kwargs.get("request")
        try:
            url = request.url
            provider = provider_for_host(url.host, url.port)
        except Exception:
            provider = None
        if provider is None or is_suppressed():
            return wrapped(*args, **kwargs)
        observation = start_observation(provider, request, url)
        if observation is None:
            return wrapped(*args, **kwargs)
        return observe(observation, wrapped, args, kwargs)

    return wrapper
