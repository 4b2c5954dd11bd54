"""The contract's rows: what each column of the three tables holds for an event, per dialect.

One builder for every database: ``batch_rows(events, dialect)`` makes the rows
of the calls, line items and tags tables in column order, and the dialect's
conversions (time, decimals, JSON, booleans, extra columns) are the only thing
that differs. Work shared by the events of a batch is done once per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from .._components import COMPONENTS, INPUT_COMPONENTS, OUTPUT_COMPONENTS
from .._events import TokenUsage, UsageEvent
from ._schema import Dialect

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class BatchRows:
    """The rows of a batch of events, per table, in ``call_columns``/``LINE_ITEM_COLUMNS``/``TAG_COLUMNS`` order."""

    calls: list[Row]
    line_items: list[Row]
    tags: list[Row]


def batch_rows(events: Sequence[UsageEvent], dialect: Dialect) -> BatchRows:
    """Build the rows of ``events`` for ``dialect``.

    Line items are the cost breakdown; before pricing (or without a price) the
    usage components, unpriced, where a token count is bound as the integer it
    is (every dialect's numeric column stores it exactly). A unit price is
    converted once per batch: the pricing plans share them.
    """
    convert = dialect.convert_decimal
    units = _UNITS
    line_items: list[Row] = []
    tags: list[Row] = []
    prices: dict[int, Any] = {}
    for event in events:
        event_id = event.id
        priced = event.cost.line_items
        if priced:
            for li in priced:
                unit_price = li.unit_price
                price = prices.get(id(unit_price))
                if price is None:
                    price = prices[id(unit_price)] = convert(unit_price)
                line_items.append(
                    (event_id, li.component, li.unit, convert(li.quantity), price, convert(li.cost))
                )
        elif event.usage is not None:
            usage = event.usage
            line_items += [
                (event_id, name, units[name], n, None, None)
                for name, n in usage.tokens.items()
                if n
            ]
            if usage.services:
                line_items += [
                    (event_id, name, units[name], convert(q), None, None)
                    for name, q in usage.services.items()
                    if q
                ]
        if event.tags:
            tags += zip(repeat(event_id), event.tags.keys(), event.tags.values())
    return BatchRows(_call_rows(events, dialect), line_items, tags)


def call_row(event: UsageEvent, dialect: Dialect) -> Row:
    """The calls-table row of one event."""
    return _call_rows((event,), dialect)[0]


def line_item_rows(event: UsageEvent, dialect: Dialect) -> list[Row]:
    """The cost breakdown; before pricing (or without a price) the usage components, unpriced."""
    return batch_rows((event,), dialect).line_items


def tag_rows(event: UsageEvent) -> list[Row]:
    """One row per tag of ``event``."""
    return [(event.id, key, value) for key, value in event.tags.items()]


# Where a token component counts in the call row: 1 output; 2 input; 3 input and
# cache read; 4 input and cache write (TokenUsage's properties, in one pass).
_TOKEN_KIND: dict[str, int] = {
    **dict.fromkeys(INPUT_COMPONENTS, 2),
    **dict.fromkeys(OUTPUT_COMPONENTS, 1),
    "cache_read": 3,
    "audio_cache_read": 3,
    "cache_write_5m": 4,
    "cache_write_1h": 4,
}


def _token_totals(usage: TokenUsage) -> tuple[int, int, int, int, int]:
    """(input, output, cache read, cache write, reasoning): the usage properties, in one pass."""
    inputs = outputs = reads = writes = 0
    kinds = _TOKEN_KIND
    for name, count in usage.tokens.items():
        kind = kinds.get(name)
        if kind == 1:
            outputs += count
        elif kind is not None:
            inputs += count
            if kind == 3:
                reads += count
            elif kind == 4:
                writes += count
    return inputs, outputs, reads, writes, usage.reasoning_tokens


_UNITS = {name: component.unit for name, component in COMPONENTS.items()}
_NO_USAGE = (None, None, None, None, None)  # unknown usage: NULL, never zero


def _call_rows(events: Sequence[UsageEvent], dialect: Dialect) -> list[Row]:
    """The calls-table rows of ``events``.

    A priced call's pricing snapshot is a new mapping per call whose parts are
    shared by the calls priced by the same rates: its JSON text, the costliest
    value of the row, is made once per batch for each such set of parts (the
    key holds the parts' identities, valid while the batch holds the events).
    """
    to_time = dialect.convert_time
    to_decimal = dialect.convert_decimal
    to_bool = dialect.convert_bool
    # The one dialect-only column, SQLite's total_cost_exact, holds the exact
    # decimal text: what that dialect's convert_decimal makes of the total.
    exact_text = dialect.extra_call_columns == ("total_cost_exact",)
    snapshots: dict[tuple[Any, ...], Any] = {}
    rows: list[Row] = []
    for event in events:
        usage = event.usage
        cost = event.cost
        total = to_decimal(cost.total)
        snapshot = cost.snapshot
        snapshot_value = None
        if snapshot:
            key = (*snapshot, *map(id, snapshot.values()))
            snapshot_value = snapshots.get(key)
            if snapshot_value is None:
                snapshot_value = snapshots[key] = dialect.convert_json(dict(snapshot))
        inputs, outputs, reads, writes, reasoning = (
            _NO_USAGE if usage is None else _token_totals(usage)
        )
        row: Row = (
            event.id,
            to_time(event.occurred_at),
            event.latency_ms,
            event.provider,
            event.model,
            event.request_model,
            event.operation,
            inputs,
            outputs,
            reads,
            writes,
            reasoning,
            total,
            cost.currency,
            cost.status,
            event.pricing_mode,
            snapshot_value,
            to_bool(event.stream),
            event.usage_source,
            event.status,
            event.error_type,
            event.provider_response_id,
            event.trace_id,
            event.span_id,
        )
        rows.append(row + (total,) if exact_text else row)  # noqa: RUF005  (40 ns faster per row)
    return rows
