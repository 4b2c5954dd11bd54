"""What every transport shares: one LLM call seen on the wire, from request to response body.

``start_observation`` reads the model and ``stream`` flag out of a request body
and starts the call; an ``Observation`` routes the response body (read whole,
or chunk by chunk as the caller reads it, through the bounded readers of
``_sse``) to the route's parser and finishes the call exactly once. The httpx,
requests and aiohttp wrappers only adapt their library's request and response
objects to it.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from .._errors import LLMCostTrackerError
from .._events import UsageSource
from .._stats import STATS
from ._calls import UNKNOWN, Call, finish_call, start_call
from ._extraction import Extraction
from ._sse import BodyWindow, EventSplitter, LineSplitter, json_document
from .httpx._parsers import model_from_path, route_for
from .httpx._route import Route, StreamState

REQUEST_SCAN_BYTES = 64 * 1024
"""How much of a request body is searched for ``model`` and ``stream``."""

REQUEST_JSON_BYTES = 4 * 1024 * 1024
"""Request bodies up to this size are parsed when a budget preflight or a route needs them."""

_MODEL_RE = re.compile(rb'"model"\s*:\s*"([^"\\]{1,256})"')  # model names carry no escapes
_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
_JSON_OBJECT_START = re.compile(rb"\s{0,64}\{")


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
        "_decoder",
        "_first",
        "_reader",
        "_state",
        "_status",
        "_window",
        "call",
        "from_request",
        "route",
    )

    def __init__(self, call: Call, route: Route, from_request: Extraction | None) -> None:
        self.call = call
        self.route = route
        self.from_request = from_request  # usage the request itself implies (speech: characters)
        self._status = 0
        self._state: StreamState | None = None
        self._reader: EventSplitter | LineSplitter | None = None
        self._window: BodyWindow | None = None
        self._decoder: Any = None
        self._first = True
        self._broken = False

    # -- setup ------------------------------------------------------------------

    def prepare(self, response: Any, *, raw: bool) -> bool:
        """Choose how to read ``response``'s body; False when it holds no usage to read.

        ``raw`` bytes still carry their content encoding.
        """
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
            return False  # HTML error pages, audio, images: nothing to read usage from
        elif raw:
            self._window = BodyWindow()
        if raw:
            encoding = headers.get("content-encoding", "").strip().lower()
            if encoding and encoding != "identity":
                self._decoder = _decoder_for(response, encoding)
                if self._decoder is None:
                    STATS.incr("dropped.transport_unsupported_encoding")
                    self._broken = True
        return True

    # -- observing -----------------------------------------------------------------

    def read_whole(self, response: Any) -> None:
        """Record a response whose body the client already read (decoded)."""
        if not self.prepare(response, raw=False):
            self.finish()
        elif self._reader is not None:  # an event stream read whole
            self.feed(response.content)
            self.finish()
        else:
            document = json_document(response.content, self.route.usage_key)
            self.finish(found=UNKNOWN if document is None else self.route.parse(document))

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

    def finish(self, error: BaseException | None = None, found: Extraction | None = None) -> None:
        """Record the call (once). Raises only a budget's error in raise mode.

        ``found``: what a body read whole said; otherwise what the readers saw.
        """
        call = self.call
        if call.finished:
            return
        error_type = None if error is None else type(error).__name__
        if error_type is not None:
            status = "error"
        elif self._status >= 400:
            status, error_type = "error", f"http_{self._status}"
        else:
            status = "ok"
        if found is None:
            try:
                found = self._extraction()
            except Exception:
                STATS.failure("errors.transport.parse", "could not read usage from a response")
                found = UNKNOWN
        source: UsageSource = "stream" if call.stream else "response"
        if self.from_request is not None and found.usage is None and status == "ok":
            found, source = self.from_request, "estimated"
        self._state = self._reader = self._window = self._decoder = None
        finish_call(call, found, source, status=status, error_type=error_type)

    def _extraction(self) -> Extraction:
        if self._broken:
            return UNKNOWN
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
            return UNKNOWN if document is None else self.route.parse(document)
        return UNKNOWN


def _decoder_for(response: Any, encoding: str) -> Any:
    """The library's own content decoder for ``encoding`` (gzip, deflate, br, zstd), or None."""
    try:
        module = importlib.import_module(type(response).__module__.split(".")[0] + "._decoders")
        decoder = module.SUPPORTED_DECODERS.get(encoding)
    except (ImportError, AttributeError):
        return None
    return decoder() if decoder is not None else None


def start_observation(provider: str, request: Any, url: Any) -> Observation | None:
    """Start recording a request to ``provider``; None when the path is not billed or recording is off.

    Reads the model and the ``stream`` flag out of the request body (the first
    64 KiB); a budget preflight or a route that bills the request itself
    (speech) parses it whole.
    """
    if request.method != "POST":
        return None
    path = url.path
    route = route_for(provider, path)
    if route is None:
        return None
    try:
        data, model, stream = _request_fields(_request_body(request))
        model = model or model_from_path(path)
    except Exception:
        STATS.failure("errors.transport.request", "could not read an LLM request")
        data, model, stream = RequestJSON(b""), None, False
    call = start_call(provider, route.operation, model, stream=stream or route.stream, request=data)
    if call is None:
        return None
    try:
        from_request = route.from_request(data) if route.from_request is not None else None
    except Exception:
        STATS.failure("errors.transport.request", "could not read an LLM request")
        from_request = None
    return Observation(call, route, from_request)


def finish_observation(observation: Observation, error: BaseException | None) -> None:
    try:
        observation.finish(error)
    except LLMCostTrackerError:
        raise
    except Exception:
        STATS.failure("errors.transport.finish", "could not record an LLM response")
