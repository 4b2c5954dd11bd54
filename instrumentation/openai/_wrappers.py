"""Wrapper factories for Stainless-generated SDK methods (openai, anthropic): record, then return untouched.

A ``Surface`` says what one billed method is (operation name, how to read its
result, how to follow its stream). ``sync_wrapper`` / ``async_wrapper`` turn a
surface into a wrapt wrapper: start the call (tags and clock snapshotted),
run the SDK inside ``suppressed()`` so the transport layer does not record it
again, then record from the result, or hand back a stream / raw-response proxy
that records once the caller is done with it. SDK exceptions are recorded and
re-raised unmodified; our own failures are counted and never reach the caller.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from contextvars import Context, copy_context
from dataclasses import dataclass, field
from time import perf_counter, time_ns
from typing import Any

from ... import _api
from ..._api import current_call_tags, get_runtime
from ..._errors import LLMCostTrackerError
from ..._events import UsageEvent, UsageSource
from ..._stats import STATS
from ..._suppress import _SUPPRESSED, _THREAD, is_suppressed
from ..._tags import DefaultTagSource, resolve_tags
from .. import _hosts
from .._calls import Call, fail_call, finish_call, finish_later, start_call
from .._hosts import provider_for_host
from .._streams import (
    AsyncRawResponseProxy,
    AsyncStreamProxy,
    SyncRawResponseProxy,
    SyncStreamProxy,
    sse_json_events,
)
from ._extract import Extraction

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

    def seen(self, response_id: str) -> bool:
        with self._lock:
            return response_id in self._ids


@dataclass(frozen=True)
class SdkContext:
    """What every wrapper of one SDK shares: its types, default provider and settings."""

    default_provider: str
    stream_types: tuple[type, ...]
    async_stream_types: tuple[type, ...]
    raw_types: tuple[type, ...]  # bodies already read: LegacyAPIResponse
    lazy_raw_types: tuple[type, ...]  # bodies read later: APIResponse (with_streaming_response)
    async_lazy_raw_types: tuple[type, ...]
    provider_of_client: Callable[[Any], str | None] = lambda client: None
    stream_usage: bool = True
    recorded: RecordedIds = field(default_factory=RecordedIds)
    # id(client) -> (client, its base URL, host registry generation, provider)
    providers: dict[int, tuple[Any, Any, int, str]] = field(default_factory=dict)
    # result type -> True when it is a plain result (not a stream or raw response)
    plain_types: dict[type, bool] = field(default_factory=dict)


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
    speech counts its input's characters); other surfaces never get them, so
    a finished call queued for the worker does not keep the prompt alive.
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


_HOSTS: dict[int, tuple[Any, str | None, int | None]] = {}  # id(url) -> (url, host, port)


def _host_and_port(url: Any) -> tuple[str | None, int | None]:
    """A client URL's host and port, remembered per URL object (parsing them is not free)."""
    cached = _HOSTS.get(id(url))
    if cached is not None and cached[0] is url:
        return cached[1], cached[2]
    host = getattr(url, "host", None)
    port = getattr(url, "port", None)
    found = (host if isinstance(host, str) else None, port if isinstance(port, int) else None)
    if len(_HOSTS) >= 1024:  # clients are few; bounded all the same
        _HOSTS.clear()
    _HOSTS[id(url)] = (url, *found)  # the URL is kept, so its id cannot be reused meanwhile
    return found


def provider_of(ctx: SdkContext, instance: Any) -> str:
    """The provider a resource's client talks to: its class (Bedrock, Vertex), else its base URL's host.

    Remembered per client, its base URL object and the host registry's generation.
    """
    client = getattr(instance, "_client", None)
    if client is None:
        return ctx.default_provider
    return provider_for(ctx, client, getattr(client, "_base_url", None))


def provider_for(ctx: SdkContext, client: Any, url: Any) -> str:
    """``provider_of`` for a client whose base URL object (``client._base_url``) was ``url``."""
    if client is None:
        return ctx.default_provider
    generation = _hosts._generation
    cached = ctx.providers.get(id(client))
    if cached is not None and cached[0] is client and cached[1] is url and cached[2] == generation:
        return cached[3]
    provider = _provider_of_client(ctx, client)
    if len(ctx.providers) >= 1024:  # clients are few; bounded all the same
        ctx.providers.clear()
    ctx.providers[id(client)] = (client, url, generation, provider)  # kept: its id stays unique
    return provider


def _provider_of_client(ctx: SdkContext, client: Any) -> str:
    named = ctx.provider_of_client(client)
    if named is not None:
        return named
    # Stainless clients keep it in _base_url; the public property can be slow (openai 3.x imports per call)
    url = getattr(client, "_base_url", None) or getattr(client, "base_url", None)
    host, port = _host_and_port(url)
    if host is None:
        return ctx.default_provider
    return provider_for_host(host, port) or ctx.default_provider


def _requested_model(kwargs: dict[str, Any]) -> str | None:
    model = kwargs.get("model")
    return model if isinstance(model, str) else None


def begin_call(
    ctx: SdkContext, surface: Surface, instance: Any, kwargs: dict[str, Any]
) -> Call | None:
    """Start recording (None when off or already recorded by an outer layer); only a budget may raise."""
    if is_suppressed():
        return None
    try:
        provider = provider_of(ctx, instance)
        stream = kwargs.get("stream") is True
        if not surface.preflight:
            if get_runtime() is None:
                return None
            return Call(
                provider, surface.operation, _requested_model(kwargs), stream, current_call_tags()
            )
    except Exception:
        STATS.failure("errors.instrumentation.start", "could not start recording a call")
        return None
    return start_call(
        provider, surface.operation, _requested_model(kwargs), stream=stream, request=kwargs
    )


# Providers whose chat streams accept ``stream_options.include_usage``. Others (Mistral
# sends usage anyway; unknown gateways are "openai" and do accept it) are left alone, so
# that asking for usage can never turn a working call into a 400.
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


def _with_usage_requested(
    ctx: SdkContext, surface: Surface, call: Call, instance: Any, kwargs: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Ask a chat-style stream for its usage when the caller did not; return (kwargs, injected)."""
    if not (surface.inject_usage and ctx.stream_usage and kwargs.get("stream") is True):
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


def _event(
    ctx: SdkContext,
    surface: Surface,
    call: Call,
    found: Extraction | None,
    usage_source: UsageSource,
) -> UsageEvent | None:
    """The event for what ``surface.extract`` found; None when there is nothing (more) to record."""
    if found is None:
        return None
    if (
        surface.dedupe
        and found.response_id is not None
        and not ctx.recorded.claim(found.response_id)
    ):
        return None
    return call.event(
        usage=found.usage,
        model=found.model,
        usage_source=usage_source,
        pricing_mode=found.pricing_mode,
        provider_response_id=found.response_id,
    )


_NO_REQUEST: dict[str, Any] = {}

ResultSource = tuple[SdkContext, Surface, Any, dict[str, Any]]


def _read_result(call: Call, source: ResultSource) -> UsageEvent | None:
    """Read a finished SDK result (on the bus worker, unless a budget needs it now)."""
    ctx, surface, result, kwargs = source
    return _event(ctx, surface, call, surface.extract(result, kwargs), surface.usage_source)


def _read_body(call: Call, source: ResultSource) -> UsageEvent | None:
    """Read a raw response's JSON body (bytes) the same way."""
    import json

    ctx, surface, content, kwargs = source
    return _event(
        ctx, surface, call, surface.extract(json.loads(content), kwargs), surface.usage_source
    )


def _finish_result(
    ctx: SdkContext, surface: Surface, call: Call, result: Any, kwargs: dict[str, Any]
) -> None:
    """Record a finished result: only the clock stops here, the worker reads the result."""
    request = kwargs if surface.reads_request else _NO_REQUEST
    finish_later(call, _read_result, (ctx, surface, result, request))


def _read_stream(call: Call, recorder: CallRecorder) -> UsageEvent | None:
    """Read what a finished stream's state accumulated (on the bus worker)."""
    found: Extraction = recorder.state.result()
    complete = getattr(recorder.state, "complete", found.usage is not None)
    if not complete and recorder.surface.dedupe and recorder.kwargs.get("background") is True:
        return None  # a background response keeps running: a later retrieve records it
    source: UsageSource = recorder.surface.stream_usage_source if complete else "estimated"
    return _event(recorder.ctx, recorder.surface, call, found, source)


def _show(item: Any) -> bool:
    return False


def _shown(add: Callable[[Any], object]) -> Callable[[Any], bool]:
    """Observe with ``add`` but never hide (the caller asked for the trailer); no reference to the recorder."""

    def observe(item: Any) -> bool:
        add(item)
        return False

    return observe


class CallRecorder:
    """Follows one call's stream or raw response and records it exactly once (a StreamObserver)."""

    __slots__ = ("call", "ctx", "done", "hide_trailer", "kwargs", "observe", "state", "surface")

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
        self.kwargs = kwargs
        self.hide_trailer = hide_trailer
        self.state: Any = surface.new_state() if surface.new_state is not None else None
        self.done = False
        # StreamObserver.observe, bound once: a state's add() returns True only for
        # the include_usage trailer, which is hidden only when we asked for it
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
        finish_later(self.call, _read_stream, self)

    # -- RawObserver
    def parsed(self, value: Any) -> Any:
        if isinstance(value, self.ctx.stream_types):
            self.call.stream = True
            return SyncStreamProxy(value, self)
        if isinstance(value, self.ctx.async_stream_types):
            self.call.stream = True
            return AsyncStreamProxy(value, self)
        if not self.done:
            self.done = True
            _finish_result(self.ctx, self.surface, self.call, value, self.kwargs)
        return value

    def body(self, content: bytes) -> None:
        if self.done:
            return
        if content.lstrip()[:1] in (b"{", b"["):
            self.done = True
            request = self.kwargs if self.surface.reads_request else _NO_REQUEST
            finish_later(self.call, _read_body, (self.ctx, self.surface, content, request))
        elif self.state is not None:
            for event in sse_json_events(content):
                self.state.add(event)
            self.finish(None, exhausted=True)

    def closed(self) -> None:
        if self.done:
            return
        self.done = True
        finish_call(self.call, usage=None, model=None, usage_source="unknown")


def _record_result(
    ctx: SdkContext,
    surface: Surface,
    call: Call,
    result: Any,
    kwargs: dict[str, Any],
    hide_trailer: bool,
) -> Any:
    """Record a finished SDK result, or wrap a stream / raw response; return what the caller gets."""
    if isinstance(result, ctx.stream_types):
        call.stream = True
        return SyncStreamProxy(result, CallRecorder(ctx, surface, call, kwargs, hide_trailer))
    if isinstance(result, ctx.async_stream_types):
        call.stream = True
        return AsyncStreamProxy(result, CallRecorder(ctx, surface, call, kwargs, hide_trailer))
    if isinstance(result, ctx.raw_types):
        recorder = CallRecorder(ctx, surface, call, kwargs, hide_trailer)
        if kwargs.get("stream") is True:
            return SyncRawResponseProxy(result, recorder)
        raw: Any = result
        recorder.body(raw.http_response.content)
        return result
    if isinstance(result, ctx.lazy_raw_types):
        return SyncRawResponseProxy(result, CallRecorder(ctx, surface, call, kwargs, hide_trailer))
    if isinstance(result, ctx.async_lazy_raw_types):
        return AsyncRawResponseProxy(result, CallRecorder(ctx, surface, call, kwargs, hide_trailer))
    _finish_result(ctx, surface, call, result, kwargs)
    return result


def _safely_record(
    record: Callable[..., Any],
    ctx: SdkContext,
    surface: Surface,
    call: Call,
    result: Any,
    kwargs: dict[str, Any],
    hide_trailer: bool,
) -> Any:
    """``record(...)`` the result; our failures are counted and the caller gets the result."""
    try:
        return record(ctx, surface, call, result, kwargs, hide_trailer)
    except LLMCostTrackerError:
        raise  # a budget in "raise" mode
    except Exception:
        STATS.failure("errors.instrumentation.record", "could not record an SDK call")
        return result


def _lean_call(
    ctx: SdkContext, surface: Surface, instance: Any, kwargs: dict[str, Any]
) -> Call | None:
    """Start a call on the lean path: a plain (not streamed) call with no budget hook in the way.

    None means "take the general path" (recording off or suppressed, a stream,
    a budget preflight, a budget that prices in the caller's thread).
    """
    runtime = _api._runtime
    if (
        runtime is None
        or not runtime.lean
        or kwargs.get("stream") is True
        or not surface.preflight
        or _SUPPRESSED.get()
        or _THREAD.on
    ):
        return None
    model = kwargs.get("model")
    defaults = runtime.defaults
    if defaults.dynamic:  # a default_tags callable runs in the caller's thread
        return Call(
            provider_of(ctx, instance),
            surface.operation,
            model if type(model) is str else None,
            False,
            resolve_tags(defaults),
        )
    return Call.lean(
        provider_of(ctx, instance),
        surface.operation,
        model if type(model) is str else None,
        defaults,
    )


def _is_plain(ctx: SdkContext, result: Any) -> bool:
    """Whether ``result`` is a finished SDK object, not a stream or raw response (per type, cached)."""
    kind = type(result)
    plain = ctx.plain_types.get(kind)
    if plain is None:
        plain = not issubclass(
            kind,
            ctx.stream_types
            + ctx.async_stream_types
            + ctx.raw_types
            + ctx.lazy_raw_types
            + ctx.async_lazy_raw_types,
        )
        ctx.plain_types[kind] = plain
    return plain


def _finish_lean(
    ctx: SdkContext,
    surface: Surface,
    call: Call,
    result: Any,
    kwargs: dict[str, Any],
    hide_trailer: bool,
) -> Any:
    """Record a lean call's result: a plain result is queued for the worker without further checks."""
    if not _is_plain(ctx, result):
        return _record_result(ctx, surface, call, result, kwargs, hide_trailer)
    _finish_result(ctx, surface, call, result, kwargs)
    return result


def _build_plain(
    ctx: SdkContext,
    surface: Surface,
    client: Any,
    url: Any,
    model: str | None,
    defaults: DefaultTagSource,
    context: Context,
    started_ns: int,
    started: float,
    ended: float,
    result: Any,
    request: dict[str, Any],
) -> UsageEvent | None:
    """On the bus worker: the event of a plain result the fastest path queued as a tuple.

    The provider is worked out here, from the client and the base URL object it
    had when the call returned (a later change of ``base_url`` does not count).
    """
    provider = provider_for(ctx, client, url)
    call = Call.resumed(provider, surface.operation, model, defaults, context, started_ns, started)
    call.ended = ended
    call.finished = True
    return _read_result(call, (ctx, surface, result, request))


def _queued(
    ctx: SdkContext,
    surface: Surface,
    runtime: _api.Runtime,
    instance: Any,
    model: str | None,
    defaults: DefaultTagSource,
    context: Context,
    started_ns: int,
    started: float,
    result: Any,
    kwargs: dict[str, Any],
) -> Any:
    """Finish the fastest path: queue a plain result as one tuple; return what the caller gets.

    The client and its base URL are read now, right after the SDK has used
    them (so they are in the CPU caches), and turned into a provider on the
    worker. A stream, a raw response or a result type not seen yet gets its
    Call now and the general recording.
    """
    try:
        client = getattr(instance, "_client", None)
        url = getattr(client, "_base_url", None)
        if ctx.plain_types.get(type(result)) is True:
            runtime.bus.defer(
                (
                    _build_plain,
                    ctx,
                    surface,
                    client,
                    url,
                    model,
                    defaults,
                    context,
                    started_ns,
                    started,
                    perf_counter(),
                    result,
                    kwargs if surface.reads_request else _NO_REQUEST,
                )
            )
            return result
        provider = provider_for(ctx, client, url)
    except Exception:
        STATS.failure("errors.instrumentation.record", "could not record an SDK call")
        return result
    call = Call.resumed(provider, surface.operation, model, defaults, context, started_ns, started)
    return _safely_record(_finish_lean, ctx, surface, call, result, kwargs, False)


def _failed(
    ctx: SdkContext,
    surface: Surface,
    instance: Any,
    model: str | None,
    defaults: DefaultTagSource,
    context: Context,
    started_ns: int,
    started: float,
    error: BaseException,
) -> None:
    """The fastest path's SDK call raised: record it as failed (never raises)."""
    try:
        provider = provider_of(ctx, instance)
    except Exception:
        STATS.failure("errors.instrumentation.fail", "could not record a failed call")
        return
    fail_call(
        Call.resumed(provider, surface.operation, model, defaults, context, started_ns, started),
        error,
    )


# The fastest path, taken by most calls (not streamed, recording on and not
# suppressed, no budget hook, default tags not from a callable): the caller's
# thread copies the context, reads the clocks, calls the SDK, and queues one
# tuple for the worker, which makes the Call and reads the result. Anything
# else, including a result that turns out to be a stream or a raw response,
# goes through a Call made at once, as below.


def sync_wrapper(ctx: SdkContext, surface: Surface) -> Callable[..., Any]:
    """A wrapt wrapper recording a synchronous SDK method described by ``surface``."""
    fast = surface.preflight

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        runtime = _api._runtime
        if (
            fast
            and runtime is not None
            and (defaults := runtime.lean_defaults) is not None
            and kwargs.get("stream") is not True
            and not _THREAD.on
            and not _SUPPRESSED.get()
        ):
            model = kwargs.get("model")
            if type(model) is not str:
                model = None
            context = copy_context()
            started_ns = time_ns()
            started = perf_counter()
            _THREAD.on = True  # suppressed, for this thread (see llm_cost_tracker/_suppress.py)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as error:
                _failed(
                    ctx, surface, instance, model, defaults, context, started_ns, started, error
                )
                raise
            finally:
                _THREAD.on = False
            return _queued(
                ctx,
                surface,
                runtime,
                instance,
                model,
                defaults,
                context,
                started_ns,
                started,
                result,
                kwargs,
            )
        try:
            call = _lean_call(ctx, surface, instance, kwargs)
        except Exception:
            STATS.failure("errors.instrumentation.start", "could not start recording a call")
            return wrapped(*args, **kwargs)
        if call is not None:
            sent, injected, record = kwargs, False, _finish_lean
        else:
            call = begin_call(ctx, surface, instance, kwargs)
            if call is None:
                return wrapped(*args, **kwargs)
            sent, injected = _with_usage_requested(ctx, surface, call, instance, kwargs)
            record = _record_result
        token = _SUPPRESSED.set(True)  # suppressed(), without a generator on the hot path
        try:
            result = wrapped(*args, **sent)
        except BaseException as error:
            fail_call(call, error)
            raise
        finally:
            _SUPPRESSED.reset(token)
        return _safely_record(record, ctx, surface, call, result, kwargs, injected)

    return wrapper


def async_wrapper(ctx: SdkContext, surface: Surface) -> Callable[..., Any]:
    """A wrapt wrapper recording an ``async def`` SDK method described by ``surface``."""
    fast = surface.preflight

    async def wrapper(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        runtime = _api._runtime
        if (
            fast
            and runtime is not None
            and (defaults := runtime.lean_defaults) is not None
            and kwargs.get("stream") is not True
            and not _SUPPRESSED.get()
            and not _THREAD.on
        ):
            model = kwargs.get("model")
            if type(model) is not str:
                model = None
            context = copy_context()
            started_ns = time_ns()
            started = perf_counter()
            token = _SUPPRESSED.set(True)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as error:
                _failed(
                    ctx, surface, instance, model, defaults, context, started_ns, started, error
                )
                raise
            finally:
                _SUPPRESSED.reset(token)
            return _queued(
                ctx,
                surface,
                runtime,
                instance,
                model,
                defaults,
                context,
                started_ns,
                started,
                result,
                kwargs,
            )
        try:
            call = _lean_call(ctx, surface, instance, kwargs)
        except Exception:
            STATS.failure("errors.instrumentation.start", "could not start recording a call")
            return await wrapped(*args, **kwargs)
        if call is not None:
            sent, injected, record = kwargs, False, _finish_lean
        else:
            call = begin_call(ctx, surface, instance, kwargs)
            if call is None:
                return await wrapped(*args, **kwargs)
            sent, injected = _with_usage_requested(ctx, surface, call, instance, kwargs)
            record = _record_result
        token = _SUPPRESSED.set(True)
        try:
            result = await wrapped(*args, **sent)
        except BaseException as error:
            fail_call(call, error)
            raise
        finally:
            _SUPPRESSED.reset(token)
        return _safely_record(record, ctx, surface, call, result, kwargs, injected)

    return wrapper


def unknown_usage(result: Any, kwargs: dict[str, Any]) -> Extraction:
    """For results that carry no usage at all: the call is recorded with usage unknown."""
    return Extraction(usage=None, model=None)


def sdk_types(module: str, *names: str) -> tuple[type, ...]:
    """The classes ``names`` of ``module`` that this SDK version has (none if the module is missing)."""
    import importlib

    try:
        loaded = importlib.import_module(module)
    except ImportError:
        return ()
    return tuple(t for name in names if isinstance(t := getattr(loaded, name, None), type))


__all__ = [
    "CallRecorder",
    "RecordedIds",
    "SdkContext",
    "Surface",
    "async_wrapper",
    "begin_call",
    "provider_for",
    "provider_of",
    "sdk_types",
    "sync_wrapper",
    "unknown_usage",
]
