"""Wrapper factories for Stainless-generated SDK methods (openai, anthropic): record, then return untouched.

A ``Surface`` says what one billed method is (operation name, how to read its
result, how to follow its stream). ``method_wrapper`` / ``async_method_wrapper``
turn a surface into a wrapt wrapper with one recording path: start the call
(tags, span and clocks read in the caller's context), run the SDK inside the
suppression flag so the transport layer does not record it again, then read
the usage out of the finished result at once, or hand back a stream /
raw-response proxy that reads it as the caller consumes it. Either way one
finished event goes to the bus and no SDK object (client, response, request)
is kept afterwards. SDK exceptions are recorded and re-raised unmodified; our
own failures are counted and never reach the caller.
"""

from __future__ import annotations

import importlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._errors import LLMCostTrackerError
from .._events import Call, UsageSource
from .._stats import STATS
from .._suppress import SUPPRESSED
from . import _hosts
from ._calls import fail_call, finish_call, start_call
from ._extraction import Extraction
from ._sse import json_document, sse_json_events
from ._streams import AsyncRawResponseProxy, AsyncStreamProxy, SyncRawResponseProxy, SyncStreamProxy

Extractor = Callable[[Any, dict[str, Any]], "Extraction | None"]


class RecordedIds:
    """A bounded set of provider response ids already recorded (background responses, batch results)."""

    def __init__(self, limit: int = 50_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def claim(self, response_id: str) -> bool:
        """Return True the first time ``response_id`` is seen (it is then remembered)."""
        with self._lock:
            if response_id in self._ids:
                return False
            self._ids[response_id] = None
            if len(self._ids) > self._limit:
                self._ids.popitem(last=False)
            return True


# What a method's result is, decided once per result type.
PLAIN, STREAM, ASYNC_STREAM, READ_RAW, LAZY_RAW, ASYNC_LAZY_RAW = range(6)


@dataclass(frozen=True)
class SdkContext:
    """What every wrapper of one SDK shares: its types, default provider and settings.

    The client -> provider cache holds clients weakly: a client the caller
    drops is collected as if we were not there.
    """

    default_provider: str
    stream_types: tuple[type, ...]
    async_stream_types: tuple[type, ...]
    raw_types: tuple[type, ...]  # bodies already read: LegacyAPIResponse
    lazy_raw_types: tuple[type, ...]  # bodies read later: APIResponse (with_streaming_response)
    async_lazy_raw_types: tuple[type, ...]
    provider_by_client_class: Callable[[Any], str | None] = lambda client: None
    # (provider, client, model asked for) -> a pricing qualifier the request implies
    # ("+regional" for a regional Bedrock / Vertex AI endpoint), or "" (None: never any)
    mode_suffix_of: Callable[[str, Any, str | None], str] | None = None
    stream_usage: bool = True
    recorded: RecordedIds = field(default_factory=RecordedIds)
    # id(client) -> (weak references to the client and its base URL object, host registry
    # generation, provider): nothing here keeps a client alive, and an entry whose client
    # or URL is gone never matches again
    providers: dict[int, tuple[Callable[[], Any], Callable[[], Any], int, str]] = field(
        default_factory=dict
    )
    kinds: dict[type, int] = field(default_factory=dict)

    def kind_of(self, result: Any) -> int:
        """PLAIN, STREAM, ... for ``result``'s type (remembered per type)."""
        cls = type(result)
        kind = self.kinds.get(cls)
        if kind is None:
            kind = PLAIN
            for candidate, types in (
                (STREAM, self.stream_types),
                (ASYNC_STREAM, self.async_stream_types),
                (READ_RAW, self.raw_types),
                (LAZY_RAW, self.lazy_raw_types),
                (ASYNC_LAZY_RAW, self.async_lazy_raw_types),
            ):
                if issubclass(cls, types):
                    kind = candidate
                    break
            if len(self.kinds) < 1024:  # result types are few; bounded all the same
                self.kinds[cls] = kind
        return kind


@dataclass(frozen=True)
class Surface:
    """One billed SDK method.

    ``extract(result, kwargs)`` reads a finished result (an SDK object or a
    parsed JSON dict); returning None means "not billed yet, record nothing"
    (a queued background response). ``new_state`` follows a stream.
    ``inject_usage`` asks chat-style streams for usage (``include_usage``).
    ``dedupe`` records each provider response id once. ``preflight`` runs the
    budget preflight (off for polls such as ``responses.retrieve``).
    ``reads_request``: ``extract`` reads the call's keyword arguments (text to
    speech counts its input's characters); other surfaces get none.
    """

    operation: str
    extract: Extractor
    new_state: Callable[[], Any] | None = None
    inject_usage: bool = False
    dedupe: bool = False
    preflight: bool = True
    usage_source: UsageSource = "response"
    stream_usage_source: UsageSource = "stream"
    reads_request: bool = False


def provider_of_client(ctx: SdkContext, client: Any) -> str:
    """The provider a client talks to: its class (Bedrock, Vertex), else its base URL's host.

    Remembered per client (weakly), its base URL object and the host registry's generation.
    """
    if client is None:
        return ctx.default_provider
    # Stainless clients keep it in _base_url; the public property can be slow (openai 3.x imports per call)
    url = getattr(client, "_base_url", None)
    cached = ctx.providers.get(id(client))
    if (
        cached is not None
        and cached[0]() is client
        and cached[1]() is url
        and cached[2] == _hosts.generation()
    ):
        return cached[3]
    generation = _hosts.generation()
    provider = ctx.provider_by_client_class(client)
    if provider is None:
        host, port = getattr(url, "host", None), getattr(url, "port", None)
        found = _hosts.provider_for_host(host, port) if isinstance(host, str) else None
        provider = found or ctx.default_provider
    try:
        client_ref: Callable[[], Any] = weakref.ref(client)
    except TypeError:  # a client without weak references: not remembered, never held
        return provider
    if len(ctx.providers) >= _MAX_CLIENTS:
        ctx.providers.clear()  # dead entries pile up as clients come and go; start again
    ctx.providers[id(client)] = (client_ref, _weak(url), generation, provider)
    return provider


_MAX_CLIENTS = 4096


def _weak(value: Any) -> Callable[[], Any]:
    try:
        return weakref.ref(value)
    except TypeError:  # None, or a type without weak references: compared by value
        return lambda: value


def begin_call(
    ctx: SdkContext, surface: Surface, instance: Any, kwargs: dict[str, Any]
) -> Call | None:
    """Start recording (None when off or already recorded by an outer layer); only a budget may raise."""
    if SUPPRESSED.get():
        return None
    try:
        provider = provider_of_client(ctx, getattr(instance, "_client", None))
    except Exception:
        STATS.failure("errors.instrumentation.start", "could not start recording a call")
        return None
    model = kwargs.get("model")
    model = model if isinstance(model, str) else None
    call = start_call(
        provider,
        surface.operation,
        model,
        stream=kwargs.get("stream") is True,
        request=kwargs,
        preflight=surface.preflight,
    )
    if call is not None and ctx.mode_suffix_of is not None:
        try:
            call.mode_suffix = ctx.mode_suffix_of(
                provider, getattr(instance, "_client", None), model
            )
        except Exception:
            STATS.failure("errors.instrumentation.start", "could not read a client's endpoint")
    return call


# Providers whose chat streams accept ``stream_options.include_usage``; Mistral and the
# others send usage anyway or refuse the option, so they are left alone. A host we do not
# know is counted as "openai" and asked too: OpenAI-compatible servers (vLLM, llama.cpp,
# Ollama, LiteLLM) accept it. One that refuses it answers 400: register its host under
# another provider name, or configure stream_usage=False.
_ACCEPTS_INCLUDE_USAGE = frozenset(
    {"openai", "azure_openai", "deepseek", "openrouter", "xai", "together", "fireworks", "groq"}
)
_AZURE_INCLUDE_USAGE_SINCE = "2024-09-01"  # api-version that introduced stream_options


def _accepts_include_usage(provider: str, instance: Any) -> bool:
    if provider not in _ACCEPTS_INCLUDE_USAGE:
        return False
    if provider == "azure_openai":
        version = getattr(getattr(instance, "_client", None), "_api_version", None)
        return isinstance(version, str) and version >= _AZURE_INCLUDE_USAGE_SINCE
    return True


def with_usage_requested(
    ctx: SdkContext, surface: Surface, call: Call, instance: Any, kwargs: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Ask a chat-style stream for its usage when the caller did not; return (kwargs, injected)."""
    if not (surface.inject_usage and ctx.stream_usage and call.stream):
        return kwargs, False
    if not _accepts_include_usage(call.provider, instance):
        return kwargs, False
    options = kwargs.get("stream_options")
    if isinstance(options, dict):
        if "include_usage" in options:
            return kwargs, False  # the caller decided
        return {**kwargs, "stream_options": {**options, "include_usage": True}}, True
    if options is None or type(options).__name__ in ("Omit", "NotGiven"):
        return {**kwargs, "stream_options": {"include_usage": True}}, True
    return kwargs, False


def record(
    ctx: SdkContext,
    surface: Surface,
    call: Call,
    found: Extraction | None,
    usage_source: UsageSource,
) -> None:
    """Finish ``call`` with what ``surface.extract`` found; nothing when there is nothing (more) to bill."""
    if (
        found is not None
        and surface.dedupe
        and found.response_id is not None
        and not ctx.recorded.claim(found.response_id)
    ):
        found = None  # recorded already (a background response polled again)
    finish_call(call, found, usage_source)


_NO_REQUEST: dict[str, Any] = {}


def _request_for(surface: Surface, kwargs: dict[str, Any]) -> dict[str, Any]:
    return kwargs if surface.reads_request else _NO_REQUEST


class CallRecorder:
    """Follows one call's stream or raw response and records it exactly once.

    Holds the call and the stream's running state (counts, ids), never the
    stream, the response or the request.
    """

    __slots__ = ("background", "call", "ctx", "done", "observe", "request", "state", "surface")

    def __init__(
        self,
        ctx: SdkContext,
        surface: Surface,
        call: Call,
        kwargs: dict[str, Any],
        hide_trailer: bool,
    ) -> None:
        self.ctx = ctx
        self.surface = surface
        self.call = call
        self.request = _request_for(surface, kwargs)
        self.background = kwargs.get("background") is True
        self.state: Any = surface.new_state() if surface.new_state is not None else None
        self.done = False
        # StreamObserver.observe: a state's add() returns True only for the
        # include_usage trailer, which is hidden only when we asked for it
        self.observe: Callable[[Any], bool]
        if self.state is None:
            self.observe = _show
        elif hide_trailer:
            self.observe = self.state.add
        else:
            self.observe = _shown(self.state.add)

    # -- StreamObserver (``observe`` is set per instance, above)

    def finish(self, error: BaseException | None, *, exhausted: bool) -> None:
        if self.done:
            return
        self.done = True
        if error is not None and not isinstance(error, GeneratorExit):
            fail_call(self.call, error)
            return
        if self.state is None:
            finish_call(self.call)
            return
        found: Extraction = self.state.result()
        complete = getattr(self.state, "complete", found.usage is not None)
        if not complete and self.surface.dedupe and self.background:
            finish_call(self.call, None)  # a background response runs on: a retrieve records it
            return
        source = self.surface.stream_usage_source if complete else "estimated"
        record(self.ctx, self.surface, self.call, found, source)

    # -- RawObserver

    def parsed(self, value: Any) -> Any:
        kind = self.ctx.kind_of(value)
        if kind in (STREAM, ASYNC_STREAM):
            self.call.stream = True
            proxy = SyncStreamProxy if kind == STREAM else AsyncStreamProxy
            return proxy(value, self)
        if not self.done:
            self.done = True
            found = self.surface.extract(value, self.request)
            record(self.ctx, self.surface, self.call, found, self.surface.usage_source)
        return value

    def body(self, content: bytes) -> None:
        if self.done:
            return
        if content.lstrip()[:1] in (b"{", b"["):
            self.done = True
            document = json_document(content, "usage")
            found = None if document is None else self.surface.extract(document, self.request)
            record(self.ctx, self.surface, self.call, found or _UNREADABLE, "response")
        elif self.state is not None:
            for event in sse_json_events(content):
                self.state.add(event)
            self.finish(None, exhausted=True)

    def closed(self) -> None:
        if self.done:
            return
        self.done = True
        finish_call(self.call, _UNREADABLE, "unknown")


_UNREADABLE = Extraction(usage=None)


def _show(item: Any) -> bool:
    return False


def _shown(add: Callable[[Any], object]) -> Callable[[Any], bool]:
    """Observe with ``add`` but never hide (the caller asked for the trailer)."""

    def observe(item: Any) -> bool:
        add(item)
        return False

    return observe


def record_result(
    ctx: SdkContext,
    surface: Surface,
    call: Call,
    result: Any,
    kwargs: dict[str, Any],
    hide_trailer: bool,
) -> Any:
    """Record a finished SDK result, or wrap a stream / raw response; return what the caller gets.

    Raises only a budget's BudgetExceededError ("raise" mode); every other
    failure of ours is counted and the caller gets the SDK's result.
    """
    try:
        kind = ctx.kind_of(result)
        if kind == PLAIN:
            found = surface.extract(result, _request_for(surface, kwargs))
            record(ctx, surface, call, found, surface.usage_source)
            return result
        recorder = CallRecorder(ctx, surface, call, kwargs, hide_trailer)
        if kind in (STREAM, ASYNC_STREAM):
            call.stream = True
            return (SyncStreamProxy if kind == STREAM else AsyncStreamProxy)(result, recorder)
        if kind == READ_RAW and not call.stream:
            recorder.body(result.http_response.content)  # the SDK has read it already
            return result
        if kind == ASYNC_LAZY_RAW:
            return AsyncRawResponseProxy(result, recorder)
        return SyncRawResponseProxy(result, recorder)
    except LLMCostTrackerError:
        raise  # a budget in "raise" mode
    except Exception:
        STATS.failure("errors.instrumentation.record", "could not record an SDK call")
        return result


def method_wrapper(ctx: SdkContext, surface: Surface) -> Callable[..., Any]:
    """A wrapt wrapper recording a synchronous SDK method described by ``surface``."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = begin_call(ctx, surface, instance, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        sent, injected = with_usage_requested(ctx, surface, call, instance, kwargs)
        token = SUPPRESSED.set(True)  # the transport layer must not record this call again
        try:
            result = wrapped(*args, **sent)
        except BaseException as error:
            fail_call(call, error)
            raise
        finally:
            SUPPRESSED.reset(token)
        return record_result(ctx, surface, call, result, kwargs, injected)

    return wrapper


def async_method_wrapper(ctx: SdkContext, surface: Surface) -> Callable[..., Any]:
    """A wrapt wrapper recording an ``async def`` SDK method described by ``surface``."""

    async def wrapper(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = begin_call(ctx, surface, instance, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        sent, injected = with_usage_requested(ctx, surface, call, instance, kwargs)
        token = SUPPRESSED.set(True)
        try:
            result = await wrapped(*args, **sent)
        except BaseException as error:
            fail_call(call, error)
            raise
        finally:
            SUPPRESSED.reset(token)
        return record_result(ctx, surface, call, result, kwargs, injected)

    return wrapper


def sdk_types(module: str, *names: str) -> tuple[type, ...]:
    """The classes ``names`` of ``module`` that this SDK version has (none if the module is missing)."""
    try:
        loaded = importlib.import_module(module)
    except ImportError:
        return ()
    return tuple(t for name in names if isinstance(t := getattr(loaded, name, None), type))
