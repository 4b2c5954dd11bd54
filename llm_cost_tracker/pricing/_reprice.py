"""Re-pricing stored calls on purpose: recompute unknown/partial (or all) calls in a date range.

Usage is rebuilt from the stored line items (every component is stored with
its quantity, priced or not). The new snapshot keeps the previous one under
``"previous"`` so every change is auditable. Calls with a provider-reported
cost or unknown usage are left alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from .. import ledger
from .._components import COMPONENTS
from .._events import Cost, TokenUsage
from ._catalog import Catalog
from ._price import price_usage


@dataclass
class RepriceResult:
    """What ``reprice`` examined, changed and left alone."""

    examined: int = 0
    changed: int = 0
    skipped: int = 0
    still_unknown: int = 0
    changes: list[tuple[str, str, str, Decimal | None, Decimal | None, str]] = field(
        default_factory=list
    )  # (id, provider, model, old total, new total, new status)


def _as_datetime(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _as_decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _as_json(value: Any) -> Any:
    if value is None or isinstance(value, (dict, list)):
        return value
    return json.loads(value)


def reprice(
    connection: Any,
    dialect: ledger.Dialect,
    catalog: Catalog,
    *,
    start: datetime,
    end: datetime | None,
    everything: bool,
    dry_run: bool,
    resolve_model: Callable[[str, str, str | None], str] | None = None,
) -> RepriceResult:
    """Re-price calls with ``start <= occurred_at < end``; only unknown/partial unless ``everything``."""
    ph = dialect.placeholder
    where = [f"occurred_at >= {ph}"]
    params: list[Any] = [dialect.convert_time(start)]
    if end is not None:
        where.append(f"occurred_at < {ph}")
        params.append(dialect.convert_time(end))
    if not everything:
        where.append("cost_status IN ('unknown', 'partial')")
    cursor = connection.cursor()
    cursor.execute(
        "SELECT id, occurred_at, provider, model, request_model, pricing_mode, total_cost,"
        f" cost_status, pricing_snapshot FROM {ledger.CALLS} WHERE {' AND '.join(where)}"
        " ORDER BY occurred_at",
        params,
    )
    calls = cursor.fetchall()
    result = RepriceResult()
    for (
        call_id,
        occurred,
        provider,
        model,
        request_model,
        mode,
        old_total,
        old_status,
        old_snap,
    ) in calls:
        result.examined += 1
        usage = _stored_usage(cursor, dialect, call_id)
        if usage is None:
            result.skipped += 1
            continue
        name = resolve_model(provider, model, request_model) if resolve_model else model
        cost = price_usage(catalog, provider, name, usage, mode, _as_datetime(occurred))
        old = _as_decimal(old_total)
        if cost.status == old_status and cost.total == old:
            if cost.status != "priced":
                result.still_unknown += 1
            continue
        result.changed += 1
        result.changes.append((str(call_id), provider, model, old, cost.total, cost.status))
        if not dry_run:
            previous = {
                "total": None if old is None else format(old, "f"),
                "status": old_status,
                "snapshot": _as_json(old_snap),
            }
            _store(cursor, dialect, call_id, cost, previous)
    if not dry_run:
        if result.changed:
            # Costs changed in place: the daily rollups (PostgreSQL, MySQL) that
            # budgets and reports read must change with them, in this transaction.
            ledger.rebuild_rollups(cursor, dialect, start, end)
        connection.commit()
    return result


def _stored_usage(cursor: Any, dialect: ledger.Dialect, call_id: Any) -> TokenUsage | None:
    """Rebuild a stored call's usage from its line items; None when it is not to be re-priced."""
    cursor.execute(
        f"SELECT component, quantity FROM {ledger.LINE_ITEMS} WHERE call_id = {dialect.placeholder}",
        (call_id,),
    )
    quantities = {str(c): Decimal(str(q)) for c, q in cursor.fetchall()}
    if not quantities or "reported_cost" in quantities:
        return None  # unknown usage, or the provider's own figure: nothing to recompute
    tokens = {
        c: int(q)
        for c, q in quantities.items()
        if COMPONENTS.get(c, None) and COMPONENTS[c].kind == "token"
    }
    services = {c: q for c, q in quantities.items() if c not in tokens}
    return TokenUsage(tokens=tokens, services=services)


def _store(
    cursor: Any, dialect: ledger.Dialect, call_id: Any, cost: Cost, previous: dict[str, Any]
) -> None:
    """Replace a stored call's cost and line items, keeping ``previous`` in its snapshot."""
    ph = dialect.placeholder
    snapshot = dict(cost.snapshot)
    snapshot["repriced_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    snapshot["previous"] = previous
    assignments = [
        f"total_cost = {ph}",
        f"cost_status = {ph}",
        f"pricing_snapshot = {ph}",
    ]
    values: list[Any] = [
        dialect.convert_decimal(cost.total),
        cost.status,
        dialect.convert_json(snapshot),
    ]
    if "total_cost_exact" in dialect.extra_call_columns:
        assignments.append(f"total_cost_exact = {ph}")
        values.append(None if cost.total is None else format(cost.total, "f"))
    cursor.execute(
        f"UPDATE {ledger.CALLS} SET {', '.join(assignments)} WHERE id = {ph}",
        (*values, call_id),
    )
    cursor.execute(f"DELETE FROM {ledger.LINE_ITEMS} WHERE call_id = {ph}", (call_id,))
    insert = dialect.insert_sql(ledger.LINE_ITEMS, ledger.LINE_ITEM_COLUMNS)
    for item in cost.line_items:
        cursor.execute(
            insert,
            (
                call_id,
                item.component,
                item.unit,
                dialect.convert_decimal(item.quantity),
                dialect.convert_decimal(item.unit_price),
                dialect.convert_decimal(item.cost),
            ),
        )


__all__ = ["RepriceResult", "reprice"]
