"""The one registry of billable components: what each is called, its unit and rate basis.

Token components are disjoint: a token is counted in exactly one of them, so
line items never overlap and their costs add up to the call's cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Component:
    """A billable component: quantities are counted in ``unit`` and priced per ``per`` units."""

    name: str
    unit: str
    per: Decimal
    kind: str  # "token" (TokenUsage.tokens), "service" (TokenUsage.services) or "reported"
    description: str
    input_side: bool = False  # counts toward the inclusive input_tokens column
    output_side: bool = False  # counts toward the inclusive output_tokens column


_MILLION = Decimal(1_000_000)
_THOUSAND = Decimal(1_000)

COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component("input", "token", _MILLION, "token", "uncached text input", input_side=True),
        Component(
            "cache_read",
            "token",
            _MILLION,
            "token",
            "input read from the prompt cache",
            input_side=True,
        ),
        Component(
            "cache_write_5m",
            "token",
            _MILLION,
            "token",
            "input written to a 5-minute cache",
            input_side=True,
        ),
        Component(
            "cache_write_1h",
            "token",
            _MILLION,
            "token",
            "input written to a 1-hour cache",
            input_side=True,
        ),
        Component(
            "audio_input", "token", _MILLION, "token", "uncached audio input", input_side=True
        ),
        Component(
            "audio_cache_read",
            "token",
            _MILLION,
            "token",
            "audio input read from the cache",
            input_side=True,
        ),
        Component(
            "image_input",
            "token",
            _MILLION,
            "token",
            "image input billed at its own rate",
            input_side=True,
        ),
        Component(
            "output",
            "token",
            _MILLION,
            "token",
            "text output, reasoning included",
            output_side=True,
        ),
        Component("audio_output", "token", _MILLION, "token", "audio output", output_side=True),
        Component("image_output", "token", _MILLION, "token", "image output", output_side=True),
        Component("web_search", "request", _THOUSAND, "service", "web search tool requests"),
        Component("file_search", "call", _THOUSAND, "service", "file search tool calls"),
        Component("grounding", "query", _THOUSAND, "service", "search grounding queries"),
        Component(
            "code_execution", "session_hour", Decimal(1), "service", "code execution container time"
        ),
        Component("image", "image", Decimal(1), "service", "generated images billed per image"),
        Component("audio_second", "second", Decimal(1), "service", "audio billed per second"),
        Component(
            "character", "character", _MILLION, "service", "characters billed (text-to-speech)"
        ),
        Component("request", "request", Decimal(1), "service", "flat per-request fee"),
        # Not usage: the cost a provider reported for the call (OpenRouter usage.cost),
        # recorded as its own line item that is the call's total.
        Component("reported_cost", "usd", Decimal(1), "reported", "cost reported by the provider"),
    )
}

TOKEN_COMPONENTS = frozenset(n for n, c in COMPONENTS.items() if c.kind == "token")
INPUT_COMPONENTS = frozenset(n for n, c in COMPONENTS.items() if c.input_side)
OUTPUT_COMPONENTS = frozenset(n for n, c in COMPONENTS.items() if c.output_side)
