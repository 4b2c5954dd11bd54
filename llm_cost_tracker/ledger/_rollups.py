"""The daily rollups (PostgreSQL, MySQL): one row per UTC day, provider, model and currency.

Exporters keep them in the same transaction as the calls they sum.
``unpriced_calls`` counts calls whose cost_status is not "priced"; ``total_cost``
sums the known costs. SQLite has none: its reports read the calls directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from .._events import UsageEvent
from ._schema import CALLS, ROLLUPS, Dialect

ROLLUP_KEY = ("day", "provider", "model", "currency")
ROLLUP_SUMS = (
    "calls",
    "unpriced_calls",
    "total_cost",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)
ROLLUP_COLUMNS = ROLLUP_KEY + ROLLUP_SUMS

# The UTC day of occurred_at, per dialect with rollups.
ROLLUP_DAY = {
    "postgres": "(occurred_at AT TIME ZONE 'UTC')::date",
    "mysql": "DATE(occurred_at)",
}
# Rollup rows summed from the calls table ({day}: a ROLLUP_DAY expression, {where}: a filter).
ROLLUP_FROM_CALLS = (
    f"INSERT INTO {ROLLUPS} ({', '.join(ROLLUP_COLUMNS)}) "
    "SELECT {day}, provider, model, currency, count(*), "
    "sum(CASE WHEN cost_status <> 'priced' THEN 1 ELSE 0 END), coalesce(sum(total_cost), 0), "
    "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), "
    "coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0) "
    f"FROM {CALLS}{{where}} GROUP BY 1, 2, 3, 4"
)


def rollup_rows(events: Iterable[UsageEvent]) -> list[tuple[Any, ...]]:
    """Sum ``events`` per (UTC day, provider, model, currency), in ROLLUP_COLUMNS order."""
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for event in events:
        key = (
            event.occurred_at.astimezone(timezone.utc).date(),
            event.provider,
            event.model,
            event.cost.currency,
        )
        row = sums.get(key)
        if row is None:
            row = sums[key] = [0, 0, Decimal(0), 0, 0, 0, 0]
        row[0] += 1
        if event.cost.status != "priced":
            row[1] += 1
        if event.cost.total is not None:
            row[2] += event.cost.total
        usage = event.usage
        if usage is not None:
            row[3] += usage.input_tokens
            row[4] += usage.output_tokens
            row[5] += usage.cache_read_tokens
            row[6] += usage.cache_write_tokens
    return [(*key, *row) for key, row in sums.items()]


# Taken first, so exporters writing meanwhile add their calls after the rebuild.
_ROLLUP_LOCK = {"postgres": f"LOCK TABLE {ROLLUPS} IN EXCLUSIVE MODE"}


def rebuild_rollups(cursor: Any, dialect: Dialect, start: datetime, end: datetime | None) -> None:
    """Recompute the rollups of the UTC days from ``start`` to ``end`` from the calls table.

    For code that changes stored calls in place (re-pricing): run it in the same
    transaction, after the change. A no-op on SQLite, which has no rollups.
    """
    day = ROLLUP_DAY.get(dialect.name)
    if day is None:
        return
    p = dialect.placeholder
    first = start.astimezone(timezone.utc).date()
    lock = _ROLLUP_LOCK.get(dialect.name)
    if lock:
        cursor.execute(lock)
    where, params = [f"day >= {p}"], [first]
    call_where = [f"occurred_at >= {p}"]
    call_params: list[Any] = [
        dialect.convert_time(datetime(first.year, first.month, first.day, tzinfo=timezone.utc))
    ]
    if end is not None:
        last = end.astimezone(timezone.utc).date()
        where.append(f"day <= {p}")
        params.append(last)
        after = datetime(last.year, last.month, last.day, tzinfo=timezone.utc) + timedelta(days=1)
        call_where.append(f"occurred_at < {p}")
        call_params.append(dialect.convert_time(after))
    cursor.execute(f"DELETE FROM {ROLLUPS} WHERE {' AND '.join(where)}", params)
    cursor.execute(
        ROLLUP_FROM_CALLS.format(day=day, where=f" WHERE {' AND '.join(call_where)}"),
        call_params,
    )
