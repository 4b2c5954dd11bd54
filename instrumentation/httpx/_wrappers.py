"""Wrappers for ``Client.send`` / ``AsyncClient.send`` of httpx and httpx2, and the body observer.

A request to a host that is not an LLM provider costs one cached dict lookup.
For an LLM endpoint, the call is started before the request is sent; a streamed
body is observed chunk by chunk as the caller reads it (the response's
``stream`` is wrapped), then the call is finished exactly once: at the end of
the body, on close, or on a read error. Parsing is left to the bus worker: a
body the client already read, and the request body (model, ``stream``), are
held by reference until the worker has read their usage fields, then dropped;
a streamed body is never kept beyond the bounded windows of ``_sse.py``. A
budget preflight reads the request at once, because it must decide before the
request is sent.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
)
from typing import Any

from ..._api import get_runtime
from ..._errors import LLMCostTrackerError
from ..._events import UsageEvent, UsageSource
from ..._stats import STATS
from ..._suppress import _SUPPRESSED, is_suppressed
from .._calls import Call, finish_later, start_call
from .._hosts import _cache as _host_cache
from .._hosts import provider_for_host
from ..openai._extract import Extraction
from ._parsers import Route, StreamState, model_from_path, route_for
from ._sse import (
    FULL_BODY_BYTES,
    HEAD_BYTES,
    TAIL_BYTES,
    BodyWindow,
    EventSplitter,
    LineSplitter,
    recover_document,
)

REQUEST_SCAN_BYTES = 64 * 1024
"""How much of a request body is searched for ``model`` and ``stream``."""

REQUEST_JSON_BYTES = 4 * 1024 * 1024
"""Request bodies up to this size are parsed when a budget preflight or a route needs them."""

_MODEL_RE = re.compile(rb'"model"\s*:\s*"([^"\\]{1,256})"')  # model names carry no escapes
_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
_JSON_OBJECT_START = re.compile(rb"\s{0,64}\{")
_UNREAD = object()


class RequestJSON(Mapping[str, Any]):
    """A request's JSON object, parsed only if someone reads it (a budget preflight, a route)."""

    __slots__ = ("_body", "_data")

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._data: dict[str, Any] | None = None

    def _parsed(self) -> dict[str, Any]:
        if self._data is None:
            self._data = {}
            if len(self._body) <= REQUEST_JSON_BYTES:
                try:
                    data = json.loads(self._body)
                except ValueError:
                    data = None
                if isinstance(data, dict):
                    self._data = data
            self._body = b""
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._parsed()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())


def _request_body(request: Any) -> bytes:
    try:
        body: bytes = request.content
    except Exception:  # a streaming request body that was not read: nothing to learn
        return b""
    return body


def _request_fields(body: bytes) -> tuple[RequestJSON, str | None, bool]:
    """Return the request body (lazily parsed), the model it names and whether it asks to stream."""
    if not body or _JSON_OBJECT_START.match(body) is None:
        return RequestJSON(b""), None, False
    match = _MODEL_RE.search(body, 0, REQUEST_SCAN_BYTES)
    model = match.group(1).decode("utf-8", "replace") if match else None
    return RequestJSON(body), model, _STREAM_RE.search(body, 0, REQUEST_SCAN_BYTES) is not None


class Observation:
    """One LLM call seen at the transport: routes the response body to its parser, finishes once."""

    __slots__ = (
        "_broken",
        "_content",
        "_decoder",
        "_document",
        "_first",
        "_reader",
        "_request_body",
        "_response",
        "_state",
        "_status",
        "_window",
        "call",
        "from_request",
        "path",
        "request_model",
        "route",
    )

    def __init__(self, call: Call, route: Route, request_model: str | None, path: str = "") -> None:
        self.call = call
        self.route = route
        self.request_model = request_model
        self.path = path
        self._request_body: bytes | None = None  # read on the worker: model, stream, from_request
        self._content: bytes | None = None  # a body read whole, parsed on the worker
        self._response: Any = None  # a response the client already read, looked at on the worker
        self._status = 0
        self._state: StreamState | None = None
        self._reader: EventSplitter | LineSplitter | None = None
        self._window: BodyWindow | None = None
        self._decoder: Any = None
        self._first = True
        self._broken = False
        self._document: Any = _UNREAD
        self.from_request: Extraction | None = None

    # -- setup ------------------------------------------------------------------

    def prepare(self, response: Any, *, raw: bool) -> None:
        """Choose how to read ``response``'s body; ``raw`` bytes still carry their content encoding."""
        self._status = response.status_code
        headers = response.headers
        content_type = headers.get("content-type", "").lower()
        if "event-stream" in content_type:
            self.call.stream = True
            self._state = self.route.new_state()
            self._reader = EventSplitter(self._event)
        elif "ndjson" in content_type or "jsonl" in content_type:
            self.call.stream = True
            self._state = self.route.new_state()
            self._reader = LineSplitter(self._event)
        elif "json" not in content_type:
            return  # HTML error pages, audio, images: nothing to read usage from
        elif not raw:
            self._document = None  # read_whole() parses the body the client already holds
            return
        else:
            self._window = BodyWindow()
        if raw:
            encoding = headers.get("content-encoding", "").strip().lower()
            if encoding and encoding != "identity":
                self._decoder = _decoder_for(response, encoding)
                if self._decoder is None:
                    STATS.incr("dropped.transport_unsupported_encoding")
                    self._broken = True

    # -- observing -----------------------------------------------------------------

    def read_whole(self, content: bytes) -> None:
        """Take a body the client already read: a JSON body is kept by reference, parsed later."""
        if self._document is _UNREAD:
            self.feed(content)  # an event stream read whole, or a body with no usage to read
            return
        self._content = content

    def _parse_whole(self, content: bytes) -> Any:
        if len(content) <= FULL_BODY_BYTES:
            try:
                return json.loads(content)
            except ValueError:
                return None
        STATS.incr("transport.body_recovered_from_tail")
        return recover_document(content[:HEAD_BYTES], content[-TAIL_BYTES:], self.route.usage_key)

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
        if self._first:
            self._first = False
            if isinstance(self._reader, EventSplitter):
                self._reader.skip = needle  # from now on, whole chunks without it are not split
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

    def finish(self, error: BaseException | None = None, response: Any = None) -> None:
        """Record the call (once); the worker reads it. Raises only a budget's error in raise mode.

        ``response``: one the client already read whole, whose headers and body
        the worker looks at instead of this thread.
        """
        if self.call.finished:
            return
        self._response = response
        error_type = None if error is None else type(error).__name__
        finish_later(self.call, _read_observation, (self, error_type))

    def event(self, error_type: str | None) -> UsageEvent:
        """The call's event from what the request and the body said (on the bus worker)."""
        call = self.call
        response, self._response = self._response, None
        if response is not None:
            try:
                self.prepare(response, raw=False)
                self.read_whole(response.content)
            except Exception:
                STATS.failure("errors.transport.attach", "could not observe an LLM response")
        if error_type is not None:
            status = "error"
        elif self._status >= 400:
            status, error_type = "error", f"http_{self._status}"
        else:
            status = "ok"
        body, self._request_body = self._request_body, None
        if body is not None:  # read here rather than on the caller's thread
            try:
                data, model, stream = _request_fields(body)
                self.request_model = call.request_model = model or model_from_path(self.path)
                call.stream = call.stream or stream
                if self.route.from_request is not None:
                    self.from_request = self.route.from_request(data)
            except Exception:
                STATS.failure("errors.transport.request", "could not read an LLM request")
        try:
            found = self._extraction()
        except Exception:
            STATS.failure("errors.transport.parse", "could not read usage from a response")
            found = Extraction(usage=None)
        source: UsageSource = "stream" if call.stream else "response"
        if self.from_request is not None and found.usage is None and status == "ok":
            found, source = self.from_request, "estimated"
        return call.event(
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
        if self._document is not _UNREAD:
            content, self._content = self._content, None
            document = self._document if content is None else self._parse_whole(content)
            return Extraction(usage=None) if document is None else self.route.parse(document)
        if self._decoder is not None:
            decoder, self._decoder = self._decoder, None
            try:
                rest = decoder.flush()  # httpx: bytes; httpx2: an iterator of bytes
                self.feed(rest if isinstance(rest, bytes) else b"".join(rest))
            except (
                Exception
            ):  # a body cut short (early close) cannot be flushed: keep what was seen
                pass
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


def _read_observation(call: Call, source: tuple[Observation, str | None]) -> UsageEvent:
    observation, error_type = source
    return observation.event(error_type)


def start_observation(provider: str, request: Any, url: Any) -> Observation | None:
    """Start recording a request to ``provider``; None when the path is not billed or recording is off.

    Only a budget preflight reads the request body here (it must decide before
    the request goes out); otherwise the body is read on the bus worker.
    """
    if request.method != "POST":
        return None
    reference = getattr(url, "_uri_reference", None)  # the raw path, without URL.path's unquoting
    path = reference.path if reference is not None and "%" not in reference.path else url.path
    route = route_for(provider, path)
    if route is None:
        return None
    runtime = get_runtime()
    if runtime is not None and runtime.before_call is None:
        if runtime.defaults.dynamic:  # a default_tags callable runs in the caller's thread
            call = start_call(provider, route.operation, None, stream=route.stream)
            if call is None:
                return None
        else:  # the wrapper has checked suppression; tags and span are read on the worker
            call = Call.lean(provider, route.operation, None, runtime.defaults)
            call.stream = route.stream
        observation = Observation(call, route, None, path)
        observation._request_body = _request_body(request)
        return observation
    try:
        data, model, stream = _request_fields(_request_body(request))
        if model is None:
            model = model_from_path(path)
    except Exception:
        STATS.failure("errors.transport.request", "could not read an LLM request")
        data, model, stream = RequestJSON(b""), None, False
    call = start_call(provider, route.operation, model, stream=stream or route.stream, request=data)
    if call is None:
        return None
    observation = Observation(call, route, model, path)
    if route.from_request is not None:
        observation.from_request = route.from_request(data)
    return observation


def _attach(observation: Observation, response: Any, streamed: bool, stream_class: Any) -> None:
    """Read an already-read body now, or wrap the response's stream to observe it as it is read."""
    try:
        # A transport may hand back a body it already loaded (MockTransport, caches): the
        # worker reads it, with its headers.
        if not streamed or response.is_stream_consumed:
            observation.finish(response=response)
            return
        observation.prepare(response, raw=True)
        response.stream = stream_class(response.stream, observation)
        return
    except LLMCostTrackerError:
        raise
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


def provider_of(request: Any) -> str | None:
    """The provider whose host ``request`` goes to, or None: on the hot path of every request."""
    try:
        # The parsed URL's fields, read directly: a known host costs one string-keyed dict lookup.
        reference = request.url._uri_reference
        provider = _host_cache.get(reference.host, _UNREAD)
        if provider is _UNREAD:
            return provider_for_host(reference.host, reference.port)
    except AttributeError:  # a URL type without the parsed reference
        try:
            url = request.url
            return provider_for_host(url.host, url.port)
        except Exception:
            return None
    return provider  # type: ignore[return-value]


def send_wrapper(stream_class: type[Any]) -> Callable[..., Any]:
    """Wrapper for ``Client.send``: LLM endpoints are recorded, every other request passes straight on."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        request: Any = args[0] if args else kwargs.get("request")
        provider = provider_of(request)
        if provider is None or is_suppressed():
            return wrapped(*args, **kwargs)
        observation = start_observation(provider, request, request.url)
        if observation is None:
            return wrapped(*args, **kwargs)
        token = _SUPPRESSED.set(True)  # what send() calls must not record this request again
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as error:  # a timeout, a cancellation: the attempt still happened
            _finish(observation, error)
            raise
        finally:
            _SUPPRESSED.reset(token)
        _attach(observation, response, bool(kwargs.get("stream")), stream_class)
        return response

    return wrapper


def async_send_wrapper(stream_class: type[Any]) -> Callable[..., Any]:
    """Wrapper for ``AsyncClient.send``: returns the coroutine untouched for non-LLM requests."""

    async def observe(
        observation: Observation, wrapped: Callable[..., Awaitable[Any]], args: Any, kwargs: Any
    ) -> Any:
        token = _SUPPRESSED.set(True)
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as error:  # asyncio.CancelledError included
            _finish(observation, error)
            raise
        finally:
            _SUPPRESSED.reset(token)
        _attach(observation, response, bool(kwargs.get("stream")), stream_class)
        return response

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        request: Any = args[0] if args else kwargs.get("request")
        provider = provider_of(request)
        if provider is None or is_suppressed():
            return wrapped(*args, **kwargs)
        observation = start_observation(provider, request, request.url)
        if observation is None:
            return wrapped(*args, **kwargs)
        return observe(observation, wrapped, args, kwargs)

    return wrapper
