"""The normalized record of one LLM call: ``UsageEvent`` and its parts.

Events are immutable. They hold counts, identifiers and attribution, never
prompt or completion content: no field is meant for free text from a call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from decimal import Decimal
from random import getrandbits as _getrandbits
from time import perf_counter as _perf_counter
from time import time as _time
from types import MappingProxyType
from typing import Any, Literal, Protocol

from ._components import INPUT_COMPONENTS, OUTPUT_COMPONENTS

UsageSource = Literal["response", "stream", "manual", "estimated", "unknown"]
CostStatus = Literal["priced", "partial", "unknown"]
Status = Literal["ok", "error"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


@dataclass(frozen=True, slots=True, init=False)
class TokenUsage:
    """What a call consumed, by disjoint billable component.

    ``tokens`` maps token components (``input``, ``cache_read``, ``cache_write_5m``,
    ``cache_write_1h``, ``output``, ``audio_input``, ...) to counts; each token is in
    exactly one. ``services`` maps service components (``web_search`` requests,
    ``code_execution`` session-hours, ...) to quantities. ``reasoning_tokens`` is a
    subset of ``output``, kept for information. ``reported_cost`` is a cost the
    provider itself reported for the call (OpenRouter's ``usage.cost``).
    """

    tokens: Mapping[str, int] = field(default_factory=_empty)
    services: Mapping[str, Decimal] = field(default_factory=_empty)
    reasoning_tokens: int = 0
    reported_cost: Decimal | None = None

    def __init__(
        self,
        tokens: Mapping[str, int] = _EMPTY,
        services: Mapping[str, Decimal] = _EMPTY,
        reasoning_tokens: int = 0,
        reported_cost: Decimal | None = None,
    ) -> None:
        # Set through the slot descriptors, as UsageEvent does (see there): every
        # instrumented call makes one, on the caller's thread.
        _set_tokens(self, tokens)
        _set_services(self, services)
        _set_reasoning_tokens(self, reasoning_tokens)
        _set_reported_cost(self, reported_cost)

    @property
    def input_tokens(self) -> int:
        """Every input token the provider counted: uncached, cached, cache writes, all modalities."""
        return sum(n for c, n in self.tokens.items() if c in INPUT_COMPONENTS)

    @property
    def output_tokens(self) -> int:
        """Every output token billed, reasoning and audio included."""
        return sum(n for c, n in self.tokens.items() if c in OUTPUT_COMPONENTS)

    @property
    def cache_read_tokens(self) -> int:
        return self.tokens.get("cache_read", 0) + self.tokens.get("audio_cache_read", 0)

    @property
    def cache_write_tokens(self) -> int:
        return self.tokens.get("cache_write_5m", 0) + self.tokens.get("cache_write_1h", 0)


@dataclass(frozen=True, slots=True)
class LineItem:
    """One priced component of a call: ``quantity`` x ``unit_price`` = ``cost``.

    ``unit_price`` is per single unit (per token, per request). ``cost`` and
    ``unit_price`` are None when no rate is known for the component.
    """

    component: str
    unit: str
    quantity: Decimal
    unit_price: Decimal | None
    cost: Decimal | None


@dataclass(frozen=True, slots=True)
class Cost:
    """The priced result attached by the pricing stage; frozen with the rates it used."""

    total: Decimal | None
    status: CostStatus
    currency: str = "USD"
    line_items: tuple[LineItem, ...] = ()
    snapshot: Mapping[str, Any] = field(default_factory=_empty)


UNKNOWN_COST = Cost(total=None, status="unknown")


_LOW_48 = (1 << 48) - 1
_UUID_FORMAT = "%08x-%04x-%04x-%04x-%012x"


def new_event_id() -> str:
    """Return a fresh event id: a UUIDv7 (RFC 9562) in canonical text form.

    Time-ordered ids keep database indexes append-mostly (random UUID4 keys
    scatter every insert across the primary-key B-tree, several times slower on
    SQLite and PostgreSQL alike) while staying unique across processes: 74
    random bits per millisecond. The ``random`` module reseeds itself in a
    forked child, so parent and child never share a sequence.
    """
    ms = time.time_ns() // 1_000_000
    rand = _getrandbits(74)
    return _UUID_FORMAT % (
        ms >> 16,  # unix_ts_ms, high 32 bits
        ms & 0xFFFF,  # unix_ts_ms, low 16 bits
        0x7000 | rand >> 62,  # version 7, rand_a (12 bits)
        0x8000 | (rand >> 48) & 0x3FFF,  # variant 0b10, rand_b's first 14 bits
        rand & _LOW_48,  # rand_b's last 48 bits
    )


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True, init=False)
class UsageEvent:
    """One LLM call, normalized. ``usage`` is None when the provider did not say (unknown is not zero)."""

    provider: str
    model: str
    operation: str
    usage: TokenUsage | None
    id: str = field(default_factory=new_event_id)
    occurred_at: datetime = field(default_factory=utc_now)
    latency_ms: float | None = None
    pricing_mode: str = "standard"
    stream: bool = False
    usage_source: UsageSource = "response"
    status: Status = "ok"
    error_type: str | None = None
    provider_response_id: str | None = None
    request_model: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=_empty)
    cost: Cost = UNKNOWN_COST

    def __init__(
        self,
        provider: str,
        model: str,
        operation: str,
        usage: TokenUsage | None,
        id: str | None = None,
        occurred_at: datetime | None = None,
        latency_ms: float | None = None,
        pricing_mode: str = "standard",
        stream: bool = False,
        usage_source: UsageSource = "response",
        status: Status = "ok",
        error_type: str | None = None,
        provider_response_id: str | None = None,
        request_model: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        tags: Mapping[str, str] = _EMPTY,
        cost: Cost = UNKNOWN_COST,
    ) -> None:
        # The same fields and defaults as the generated __init__ would have
        # (``id`` and ``occurred_at`` are made when not given), set through the
        # slot descriptors: twice as fast as a frozen dataclass's
        # object.__setattr__ per field, and every event pays it.
        _set_provider(self, provider)
        _set_model(self, model)
        _set_operation(self, operation)
        _set_usage(self, usage)
        _set_id(self, new_event_id() if id is None else id)
        _set_occurred_at(self, utc_now() if occurred_at is None else occurred_at)
        _set_latency_ms(self, latency_ms)
        _set_pricing_mode(self, pricing_mode)
        _set_stream(self, stream)
        _set_usage_source(self, usage_source)
        _set_status(self, status)
        _set_error_type(self, error_type)
        _set_provider_response_id(self, provider_response_id)
        _set_request_model(self, request_model)
        _set_trace_id(self, trace_id)
        _set_span_id(self, span_id)
        _set_tags(self, tags)
        _set_cost(self, cost)

    @property
    def total_cost(self) -> Decimal | None:
        return self.cost.total


class Found(Protocol):
    """What a call's response said (``instrumentation.Extraction`` is one)."""

    @property
    def usage(self) -> TokenUsage | None: ...
    @property
    def model(self) -> str | None: ...
    @property
    def response_id(self) -> str | None: ...
    @property
    def pricing_mode(self) -> str: ...


class Reading:
    """What a response said, still to be read: a response body the bus worker parses.

    A transport keeps the bytes of a JSON body it saw (immutable ``bytes``, or
    the bounded window of a body it watched being read), never the caller's
    response, and the worker reads the usage out of them when it builds the
    call's event. ``nbytes`` is about what it keeps alive, which counts against
    the bus's memory bound.
    """

    __slots__ = ()

    nbytes: int  # set once by the subclass: what it keeps alive, read or not

    def read(self) -> tuple[Found, UsageSource]:
        """What the body says and where the usage came from. Once; never raises."""
        raise NotImplementedError


class Call:
    """One intercepted call, recorded on the caller's thread; the bus worker turns it into its ``UsageEvent``.

    Started with what was in force when the request went out (provider,
    operation, the model asked for, tags, the OpenTelemetry span context, the
    clocks); finished once, with what the response said (``found``: an
    immutable ``Extraction``, or the ``Reading`` of a body the worker parses)
    and how it ended. It holds plain values (and bytes) only, never the
    caller's client, request or response, and is not changed once finished.
    Building the event (its id, timestamps, trace ids) is left to
    ``event()``, which the bus worker runs: the caller's thread pays for what
    only it can read.
    """

    __slots__ = (
        "ended",
        "error_type",
        "finished",
        "found",
        "mode_suffix",
        "occurred_at",
        "operation",
        "provider",
        "request_model",
        "span_context",
        "started",
        "status",
        "stream",
        "tags",
        "usage_source",
    )

    def __init__(
        self,
        provider: str,
        operation: str,
        request_model: str | None,
        stream: bool,
        tags: Mapping[str, str],
        span_context: Any = None,
    ) -> None:
        self.provider = provider
        self.operation = operation
        self.request_model = request_model
        self.stream = stream
        self.tags = tags
        self.span_context = span_context  # an immutable OpenTelemetry SpanContext, or None
        self.occurred_at = _time()  # when the request started (epoch seconds)
        self.started = _perf_counter()  # for the latency: monotonic
        self.finished = False
        self.ended = self.started
        self.found: Found | Reading | None = None
        self.usage_source: UsageSource = "unknown"
        self.status: Status = "ok"
        self.error_type: str | None = None
        # A pricing qualifier the request itself implies, such as "+regional" for a regional
        # endpoint or inference profile (Bedrock, Vertex AI); added to what the response says.
        self.mode_suffix = ""

    def finish(
        self,
        found: Found | Reading,
        usage_source: UsageSource,
        status: Status,
        error_type: str | None,
    ) -> None:
        """Record how the call ended (once: the caller checks ``finished``)."""
        self.ended = _perf_counter()
        self.found = found
        self.usage_source = usage_source
        self.status = status
        self.error_type = error_type
        self.finished = True

    def event(self) -> UsageEvent:
        """The finished call's ``UsageEvent``: call it once (a new id each time; a ``Reading`` is read once)."""
        found = self.found
        if found is None:
            raise ValueError("the call has not finished")
        usage_source = self.usage_source
        if isinstance(found, Reading):
            found, usage_source = found.read()
        span_context = self.span_context
        trace_id = span_id = None
        if span_context is not None:
            trace_id = f"{span_context.trace_id:032x}"
            span_id = f"{span_context.span_id:016x}"
        usage = found.usage
        mode = found.pricing_mode
        suffix = self.mode_suffix
        if suffix and suffix not in mode:
            mode += suffix
        return UsageEvent(
            provider=self.provider,
            model=found.model or self.request_model or "unknown",
            operation=self.operation,
            usage=usage,
            occurred_at=datetime.fromtimestamp(self.occurred_at, timezone.utc),
            latency_ms=(self.ended - self.started) * 1000.0,
            pricing_mode=mode,
            stream=self.stream,
            usage_source=usage_source if usage is not None else "unknown",
            status=self.status,
            error_type=self.error_type,
            provider_response_id=found.response_id,
            request_model=self.request_model,
            trace_id=trace_id,
            span_id=span_id,
            tags=self.tags,
        )


def _setter(name: str, cls: type = UsageEvent) -> Callable[[Any, Any], None]:
    setter: Callable[[Any, Any], None] = cls.__dict__[name].__set__
    return setter


_set_tokens = _setter("tokens", TokenUsage)
_set_services = _setter("services", TokenUsage)
_set_reasoning_tokens = _setter("reasoning_tokens", TokenUsage)
_set_reported_cost = _setter("reported_cost", TokenUsage)


_set_provider = _setter("provider")
_set_model = _setter("model")
_set_operation = _setter("operation")
_set_usage = _setter("usage")
_set_id = _setter("id")
_set_occurred_at = _setter("occurred_at")
_set_latency_ms = _setter("latency_ms")
_set_pricing_mode = _setter("pricing_mode")
_set_stream = _setter("stream")
_set_usage_source = _setter("usage_source")
_set_status = _setter("status")
_set_error_type = _setter("error_type")
_set_provider_response_id = _setter("provider_response_id")
_set_request_model = _setter("request_model")
_set_trace_id = _setter("trace_id")
_set_span_id = _setter("span_id")
_set_tags = _setter("tags")
_set_cost = _setter("cost")
assert {f"_set_{f.name}" for f in fields(UsageEvent)} <= set(globals()), "a field has no setter"
