"""The normalized record of one LLM call: ``UsageEvent`` and its parts.

Events are immutable. They hold counts, identifiers and attribution, never
prompt or completion content: no field is meant for free text from a call.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from random import getrandbits as _getrandbits
from types import MappingProxyType
from typing import Any, Literal

from ._components import INPUT_COMPONENTS, OUTPUT_COMPONENTS

UsageSource = Literal["response", "stream", "manual", "estimated", "unknown"]
CostStatus = Literal["priced", "partial", "unknown"]
Status = Literal["ok", "error"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


@dataclass(frozen=True, slots=True)
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


_LOW_62 = (1 << 62) - 1


def new_event_id() -> str:
    """Return a fresh event id: a UUIDv7 (RFC 9562) in canonical text form.

    Time-ordered ids keep database indexes append-mostly (random UUID4 keys
    scatter every insert across the primary-key B-tree, several times slower on
    SQLite and PostgreSQL alike) while staying unique across processes: 74
    random bits per millisecond. The ``random`` module reseeds itself in a
    forked child, so parent and child never share a sequence.
    """
    rand = _getrandbits(74)
    value = (
        (time.time_ns() // 1_000_000) << 80
        | 0x7 << 76
        | (rand >> 62) << 64
        | 0x2 << 62
        | (rand & _LOW_62)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
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

    @property
    def total_cost(self) -> Decimal | None:
        return self.cost.total
