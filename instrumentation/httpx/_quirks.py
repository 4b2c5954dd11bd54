"""OpenAI-compatible provider quirks that the shared OpenAI extractor does not cover.

Perplexity reports what a call cost as an object, ``usage.cost.total_cost``
(USD, search request fees included); it is kept as ``TokenUsage.reported_cost``
as OpenRouter's numeric ``usage.cost`` is. (DeepSeek's cache hits, Groq's
``x_groq.usage`` and OpenRouter's cost are read by ``openai/_extract.py``.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from .._extraction import Extraction, get
from ._route import Route, StreamState


def reported_total_cost(body: Any) -> Decimal | None:
    """``usage.cost.total_cost`` of a body or stream event (a Responses event's response too)."""
    if isinstance(get(body, "type"), str) and get(body, "response") is not None:
        body = get(body, "response")
    cost = get(get(get(body, "usage"), "cost"), "total_cost")
    if isinstance(cost, bool) or not isinstance(cost, (int, float, str)):
        return None
    try:
        value = Decimal(str(cost))
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None


def with_reported_cost(found: Extraction, cost: Decimal | None) -> Extraction:
    """``found`` with ``cost`` as its usage's reported cost (when usage is known and has none)."""
    usage = found.usage
    if usage is None or cost is None or usage.reported_cost is not None:
        return found
    return dataclasses.replace(found, usage=dataclasses.replace(usage, reported_cost=cost))


class ReportedCostState:
    """A stream state that also keeps the last ``usage.cost.total_cost`` an event carried."""

    __slots__ = ("_cost", "_inner")

    def __init__(self, inner: StreamState) -> None:
        self._inner = inner
        self._cost: Decimal | None = None

    def add(self, event: Any) -> object:
        cost = reported_total_cost(event)
        if cost is not None:
            self._cost = cost
        return self._inner.add(event)

    def result(self) -> Extraction:
        return with_reported_cost(self._inner.result(), self._cost)


def with_reported_costs(routes: tuple[tuple[str, Route], ...]) -> tuple[tuple[str, Route], ...]:
    """The same routes, each also reading ``usage.cost.total_cost`` (Perplexity)."""

    def parse_with_cost(parse: Callable[[Any], Extraction]) -> Callable[[Any], Extraction]:
        return lambda body: with_reported_cost(parse(body), reported_total_cost(body))

    def state_with_cost(new_state: Callable[[], StreamState]) -> Callable[[], StreamState]:
        return lambda: ReportedCostState(new_state())

    return tuple(
        (
            suffix,
            dataclasses.replace(
                route,
                parse=parse_with_cost(route.parse),
                new_state=state_with_cost(route.new_state),
            ),
        )
        for suffix, route in routes
    )
