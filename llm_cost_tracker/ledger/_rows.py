"""The contract's rows: what each column of the three tables holds for an event, per dialect."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .._components import COMPONENTS
from .._events import UsageEvent
from ._schema import Dialect, _decimal_text


def call_row(event: UsageEvent, dialect: Dialect) -> tuple[Any, ...]:
    usage = event.usage
    cost = event.cost
    row: tuple[Any, ...] = (
        event.id,
        dialect.convert_time(event.occurred_at),
        event.latency_ms,
        event.provider,
        event.model,
        event.request_model,
        event.operation,
        None if usage is None else usage.input_tokens,
        None if usage is None else usage.output_tokens,
        None if usage is None else usage.cache_read_tokens,
        None if usage is None else usage.cache_write_tokens,
        None if usage is None else usage.reasoning_tokens,
        dialect.convert_decimal(cost.total),
        cost.currency,
        cost.status,
        event.pricing_mode,
        dialect.convert_json(dict(cost.snapshot)) if cost.snapshot else None,
        dialect.convert_bool(event.stream),
        event.usage_source,
        event.status,
        event.error_type,
        event.provider_response_id,
        event.trace_id,
        event.span_id,
    )
    if dialect.extra_call_columns:
        row += (_decimal_text(cost.total),)
    return row


def line_item_rows(event: UsageEvent, dialect: Dialect) -> list[tuple[Any, ...]]:
    """The cost breakdown; before pricing (or without a price) the usage components, unpriced."""
    convert = dialect.convert_decimal
    if event.cost.line_items:
        return [
            (
                event.id,
                li.component,
                li.unit,
                convert(li.quantity),
                convert(li.unit_price),
                convert(li.cost),
            )
            for li in event.cost.line_items
        ]
    usage = event.usage
    if usage is None:
        return []
    rows = [
        (event.id, name, COMPONENTS[name].unit, convert(Decimal(n)), None, None)
        for name, n in usage.tokens.items()
        if n
    ]
    rows.extend(
        (event.id, name, COMPONENTS[name].unit, convert(q), None, None)
        for name, q in usage.services.items()
        if q
    )
    return rows


def tag_rows(event: UsageEvent) -> list[tuple[str, str, str]]:
    return [(event.id, key, value) for key, value in event.tags.items()]
