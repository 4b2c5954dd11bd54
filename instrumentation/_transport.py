"""What every transport shares: one LLM call seen on the wire, from request to response body.

``start_observation`` reads the model and ``stream`` flag out of a request body
and starts the call; an ``Observation`` follows the response body (read whole,
or chunk by chunk as the caller reads it, through the bounded readers of
``_sse``) and finishes the call exactly once. Stream events are read as they
pass; a JSON body is kept as bytes (a ``BodyReading``) and parsed by the bus
worker, so the caller's thread does not pay for parsing it. The httpx,
requests and aiohttp wrappers only adapt their library's request and response
objects to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .._errors import LLMCostTrackerError
from .._events import Call, UsageSource
from .._stats import STATS
from . import _hosts
from ._calls import finish_call, finish_dropped, process_generation, start_call
from ._extraction import UNKNOWN, Extraction
from ._sse import BodyReading, BodyWindow, EventSplitter, LineSplitter, parse_json

if TYPE_CHECKING:
    from .httpx._route import Route, StreamState

REQUEST_SCAN_BYTES = 4 * 1024
"""How much of a request body's head, then its tail, is searched for ``model`` and ``stream``.

Top-level keys sit before or after the long parts of a request (messages,
tools), so the caller's cost does not grow with the prompt. A flag missed
there is still found: the model from the response, a stream from its
content type."""

REQUEST_JSON_BYTES = 4 * 1024 * 1024
"""Request bodies up to this size are parsed when a budget preflight or a route needs them."""

_MODEL_RE = re.compile(rb'"model"\s*:\s*"([^"\\]{1,256})"')  # model names carry no escapes
_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
_JSON_OBJECT_START = re.compile(rb"\s{0,64}\{")


class RequestJSON(Mapping[str, Any]):
    """A request's JSON object, parsed only if someone reads it (a budget preflight, a route).

    ``body`` is the request's JSON text (bytes or str); anything else (a file
    being streamed up) reads as an empty object. The text is dropped once parsed.
    """

    __slots__ = ("_body", "_data")

    def __init__(self, body: object) -> None:
        self._body = body
        self._data: dict[str, Any] | None = None

    def _parsed(self) -> dict[str, Any]:
        if self._data is None:
            self._data = {}
            body, self._body = self._body, b""
            if isinstance(body, (bytes, bytearray, str)) and len(body) <= REQUEST_JSON_BYTES:
                try:
                    data = parse_json(body)
                except ValueError:
                    data = None
                if isinstance(data, dict):
                    self._data = data
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._parsed()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())


def request_fields(body: bytes) -> tuple[RequestJSON, str | None, bool]:
    """Return the request body (lazily parsed), the model it names and whether it asks to stream."""
    if not body or _JSON_OBJECT_START.match(body) is None:
        return RequestJSON(b""), None, False
    match = _search(_MODEL_RE, body)
    model = match.group(1).decode("utf-8", "replace") if match else None
    return RequestJSON(body), model, _search(_STREAM_RE, body) is not None


def _search(pattern: re.Pattern[bytes], body: bytes) -> re.Match[bytes] | None:
    """``pattern`` in the head of ``body``, else in its tail (see ``REQUEST_SCAN_BYTES``)."""
    found = pattern.search(body, 0, REQUEST_SCAN_BYTES)
    if found is None and len(body) > REQUEST_SCAN_BYTES:
        found = pattern.search(body, max(REQUEST_SCAN_BYTES, len(body) - REQUEST_SCAN_BYTES))
    return found


class Observation:
    """One LLM call seen at the transport: follows the response body, finishes the call once."""

    __slots__ = (
        "_body",
        "_broken",
        "_decoder",
        "_first",
        "_reader",
        "_state",
        "_status",
        "_window",
        "call",
        "from_request",
        "generation",
        "route",
    )

    def __init__(self, call: Call, route: Route, from_request: Extraction | None) -> None:
        self.call = call
        self.route = route
        self.from_request = from_request  # usage the request itself implies (speech: characters)
        self._body: bytes | None = None  # a JSON body read whole, for the worker to parse
        self._status = 0
        self._state: StreamState | None = None
        self._reader: EventSplitter | LineSplitter | None = None
        self._window: BodyWindow | None = None
        self._decoder: Any = None
        self._first = True
        self._broken = False
        self.generation = process_generation()  # a forked child's copy is the parent's to record

    # -- setup ------------------------------------------------------------------

    def prepare(
        self,
        status: int,
        headers: Mapping[str, str],
        *,
        incremental: bool,
        decoder_for: Callable[[str], Any] | None = None,
    ) -> bool:
        """Choose how to read a response body; False when it holds no usage to read.

        ``incremental``: the body will be fed chunk by chunk. ``decoder_for``:
        the chunks still carry their content encoding, and this returns the
        library's decoder for one (None for an encoding it cannot decode).
        """
        self._status = status
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
        elif incremental:
            self._window = BodyWindow()
        if decoder_for is not None:
            encoding = headers.get("content-encoding", "").strip().lower()
            if encoding and encoding != "identity":
                self._decoder = decoder_for(encoding)
                if self._decoder is None:
                    STATS.incr("dropped.transport_unsupported_encoding")
                    self._broken = True
        return True

    # -- observing -----------------------------------------------------------------

    def give_up(self, counter: str) -> None:
        """Stop reading the body (usage unknown), counting why under ``counter``."""
        if not self._broken:
            self._broken = True
            STATS.incr(counter)

    def read_whole(self, status: int, headers: Mapping[str, str], content: bytes) -> None:
        """Record a response whose body the client already read (decoded)."""
        if self.prepare(status, headers, incremental=False):
            if self._reader is not None:  # an event stream read whole
                self.feed(content)
            elif isinstance(content, bytes):
                self._body = content  # parsed by the bus worker
        self.finish()

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
            event = parse_json(data)
        except ValueError:
            STATS.incr("dropped.transport_bad_event")
            return
        assert self._state is not None
        self._state.add(event)

    # -- finishing -------------------------------------------------------------------

    def finish(self, error: BaseException | None = None) -> None:
        """Record the call (once) with what the body said. Raises only a budget's error in raise mode."""
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
        source: UsageSource = "stream" if call.stream else "response"
        fallback = self.from_request if status == "ok" else None
        found: Extraction | BodyReading
        try:
            found = self._found(source, fallback)
        except Exception:
            STATS.failure("errors.transport.parse", "could not read usage from a response")
            found = UNKNOWN
        if fallback is not None and isinstance(found, Extraction) and found.usage is None:
            found, source = fallback, "estimated"
        self._state = self._reader = self._window = self._decoder = self._body = None
        finish_call(call, found, source, status=status, error_type=error_type)

    def _reading(
        self, body: bytes | BodyWindow, source: UsageSource, fallback: Extraction | None
    ) -> BodyReading:
        route = self.route
        return BodyReading(
            body,
            route.read,
            usage_key=route.usage_key,
            vectors=route.vectors,
            source=source,
            fallback=fallback,
        )

    def _found(self, source: UsageSource, fallback: Extraction | None) -> Extraction | BodyReading:
        """What the readers saw, or the JSON body for the worker to read."""
        if self._broken:
            return UNKNOWN
        if self._body is not None:
            return self._reading(self._body, source, fallback)
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
            return self._reading(self._window, source, fallback)
        return UNKNOWN


def split_url(url: str) -> tuple[str, int | None, str] | None:
    """``(host, port, path)`` of an absolute URL string, or None: cheaper than ``urlsplit``."""
    start = url.find("://")
    if start < 0:
        return None
    start += 3
    end = len(url)
    for separator in "/?#":
        found = url.find(separator, start, end)
        if found >= 0:
            end = found
    netloc = url[start:end]
    if "@" in netloc:
        netloc = netloc.rpartition("@")[2]
    if netloc.startswith("["):  # [IPv6]:port
        host, _, rest = netloc[1:].partition("]")
        port_text = rest[1:]
    else:
        host, _, port_text = netloc.partition(":")
    path = url[end:]
    for separator in "?#":
        cut = path.find(separator)
        if cut >= 0:
            path = path[:cut]
    return host, int(port_text) if port_text.isdigit() else None, path


_ORIGINS: dict[str, tuple[int, str | None]] = {}
_MAX_ORIGINS = 4096


def route_url(url: str) -> tuple[str, str] | None:
    """``(provider, path)`` of an absolute URL string to an LLM host, or None.

    Every request a ``requests`` session sends comes through here, most to other
    hosts: the answer is remembered per origin (``scheme://host:port``) and the
    host registry's generation, so a host seen before costs one slice and one
    dict lookup (and an LLM host a second slice, its path). Origins that carry
    credentials (``user:password@``) are not remembered.
    """
    start = url.find("://")
    if start < 0:
        return None
    cut = url.find("/", start + 3)
    origin = url if cut < 0 else url[:cut]
    generation = _hosts.generation()
    cached = _ORIGINS.get(origin)
    if cached is None or cached[0] != generation:
        parts = split_url(url)
        if parts is None:
            return None
        host, port, _ = parts
        provider = provider_for(host, port)
        if "@" not in origin:
            if len(_ORIGINS) >= _MAX_ORIGINS:
                _ORIGINS.clear()
            _ORIGINS[origin] = (generation, provider)
    else:
        provider = cached[1]
    if provider is None:
        return None
    path = url[cut:] if cut >= 0 else ""
    for separator in "?#":
        found = path.find(separator)
        if found >= 0:
            path = path[:found]
    return provider, path


def provider_for(host: str, port: int | None) -> str | None:
    """The provider ``host`` belongs to, or None: one cached dict lookup for a host seen before."""
    provider = _hosts.cached_provider(host)
    if provider is _hosts.MISSING:
        return _hosts.provider_for_host(host, port)
    return provider  # type: ignore[return-value]


def start_observation(
    provider: str, route: Route, path: str, body: bytes | Mapping[str, Any]
) -> Observation | None:
    """Start recording a request to ``route`` on ``provider``; None when recording is off.

    ``body`` is the request's bytes (the model and the ``stream`` flag are
    searched for in its first and last 4 KiB) or its JSON object already parsed
    (aiohttp's ``json=``). A budget preflight or a route that bills the
    request itself (speech) reads it whole. A model named in the URL path
    (Gemini, Vertex AI) is the request's model when the body names none; the
    model the response names wins, as everywhere.
    """
    try:
        if isinstance(body, Mapping):
            data: Mapping[str, Any] = body
            model = body.get("model") if isinstance(body.get("model"), str) else None
            stream = body.get("stream") is True
        else:
            data, model, stream = request_fields(body)
        model = model or model_from_path(path)
    except Exception:
        STATS.failure("errors.transport.request", "could not read an LLM request")
        data, model, stream = RequestJSON(b""), None, False
    call = start_call(provider, route.operation, model, stream=stream or route.stream, request=data)
    if call is None:
        return None
    if route.mode_suffix is not None:
        call.mode_suffix = route.mode_suffix(path)
    try:
        from_request = route.from_request(data) if route.from_request is not None else None
    except Exception:
        STATS.failure("errors.transport.request", "could not read an LLM request")
        from_request = None
    return Observation(call, route, from_request)


_PATH_MODEL_RE = re.compile(r"/models/([^/:]+):")


def model_from_path(path: str) -> str | None:
    """The model a Gemini-style path names (``.../models/gemini-2.5-flash:generateContent``)."""
    match = _PATH_MODEL_RE.search(path)
    return match.group(1) if match else None


def finish_observation(observation: Observation, error: BaseException | None) -> None:
    """Finish ``observation`` (once); only a budget's error in raise mode reaches the caller."""
    try:
        observation.finish(error)
    except LLMCostTrackerError:
        raise
    except Exception:
        STATS.failure("errors.transport.finish", "could not record an LLM response")


def finish_if_dropped(observation: Observation) -> None:
    """From a body wrapper's ``__del__``: a body let go of before its end is recorded with what was seen.

    The bus worker does it (``finish_dropped``): a finalizer may run while this
    thread holds a lock.
    """
    if not observation.call.finished:
        finish_dropped(lambda: finish_observation(observation, None), observation.generation)
