"""The report's SQL: a handful of aggregations over the contract tables, dialect differences as data.

Every query filters on ``occurred_at`` (indexed) and groups in the database, so
the report reads a few hundred rows whatever the ledger's size. Money sums are
exact on PostgreSQL and MySQL (NUMERIC/DECIMAL); on SQLite they are 64-bit
float sums of the NUMERIC column, rounded to 12 decimal places.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from ..exporters import _sql
from ._model import (
    BudgetStatus,
    CacheSavings,
    DayRow,
    ModelRow,
    Period,
    PriceRow,
    Report,
    Spend,
    TagBreakdown,
    TagRow,
    TopCall,
    Totals,
)

Progress = Callable[[str], None]

CALLS = _sql.CALLS
ITEMS = _sql.LINE_ITEMS
TAGS = _sql.TAGS
_PLACES = Decimal("1e-12")


@dataclass(frozen=True)
class ReportDialect:
    """The few expressions that differ between databases."""

    sql: Any  # exporters._sql.Dialect
    day: str  # the UTC day of c.occurred_at as YYYY-MM-DD text
    as_text: str  # template turning a JSON or UUID column into comparable text
    exact_cost: str  # the exact per-call cost column, for display of single calls


REPORT_DIALECTS = {
    "sqlite": ReportDialect(
        sql=_sql.SQLITE,
        day="substr(c.occurred_at, 1, 10)",
        as_text="{}",
        exact_cost="c.total_cost_exact",
    ),
    "postgres": ReportDialect(
        sql=_sql.POSTGRES,
        day="to_char(c.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        as_text="CAST({} AS TEXT)",
        exact_cost="c.total_cost",
    ),
    "mysql": ReportDialect(
        sql=_sql.MYSQL,
        day="CAST(DATE(c.occurred_at) AS CHAR)",
        as_text="CAST({} AS CHAR)",
        exact_cost="c.total_cost",
    ),
}


def money(value: Any) -> Decimal:
    """A database sum or cost as an exact Decimal (NULL is 0; SQLite floats rounded to 12 places)."""
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value)).quantize(_PLACES).normalize()
    return Decimal(str(value))


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


class _Queries:
    def __init__(self, connection: Any, dialect: ReportDialect, progress: Progress | None) -> None:
        self.connection = connection
        self.d = dialect
        self.p = dialect.sql.placeholder
        self.progress = progress
        self.timings: dict[str, float] = {}

    def run(self, name: str, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        started = time.perf_counter()
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, tuple(params))
            rows = [tuple(r) for r in cursor.fetchall()]
        finally:
            cursor.close()
        elapsed = time.perf_counter() - started
        self.timings[name] = self.timings.get(name, 0.0) + elapsed
        if self.progress is not None:
            self.progress(f"{name}: {len(rows)} row(s) in {elapsed:.2f} s")
        return rows

    def window(self, period: Period) -> tuple[Any, Any]:
        convert = self.d.sql.convert_time
        return convert(period.start), convert(period.end)

    @property
    def in_period(self) -> str:
        return f"c.occurred_at >= {self.p} AND c.occurred_at < {self.p}"

    # -- the queries -------------------------------------------------------

    def spend(self, period: Period) -> Spend:
        rows = self.run(
            "totals (previous period)",
            f"""SELECT COUNT(*), SUM(c.total_cost), SUM(c.input_tokens), SUM(c.output_tokens),
                       SUM(CASE WHEN c.cost_status = 'unknown' THEN 1 ELSE 0 END)
                FROM {CALLS} c WHERE {self.in_period}""",
            self.window(period),
        )
        calls, cost, inp, out, unpriced = rows[0]
        return Spend(_int(calls), money(cost), _int(inp), _int(out), _int(unpriced))

    def models(self, period: Period) -> list[ModelRow]:
        snap = self.d.as_text.format("c.pricing_snapshot")
        rows = self.run(
            "spend by model",
            f"""SELECT c.provider, c.model, COUNT(*), SUM(c.total_cost),
                       SUM(c.input_tokens), SUM(c.output_tokens),
                       SUM(CASE WHEN c.cost_status = 'unknown' THEN 1 ELSE 0 END),
                       SUM(c.cache_read_tokens), SUM(c.reasoning_tokens),
                       SUM(CASE WHEN c.cost_status = 'partial' THEN 1 ELSE 0 END),
                       SUM(CASE WHEN c.status = 'error' THEN 1 ELSE 0 END),
                       SUM(CASE WHEN c.stream THEN 1 ELSE 0 END),
                       SUM(CASE WHEN c.stream AND c.status = 'ok' AND c.input_tokens IS NULL THEN 1 ELSE 0 END),
                       SUM(CASE WHEN c.status = 'ok' AND c.input_tokens IS NULL THEN 1 ELSE 0 END),
                       MIN({snap}), MAX({snap})
                FROM {CALLS} c WHERE {self.in_period}
                GROUP BY c.provider, c.model""",
            self.window(period),
        )
        result = []
        for r in rows:
            snapshots = tuple(dict.fromkeys(s for s in (r[14], r[15]) if s))
            result.append(
                ModelRow(
                    provider=str(r[0]),
                    model=str(r[1]),
                    spend=Spend(_int(r[2]), money(r[3]), _int(r[4]), _int(r[5]), _int(r[6])),
                    cache_read_tokens=_int(r[7]),
                    reasoning_tokens=_int(r[8]),
                    partial_calls=_int(r[9]),
                    errors=_int(r[10]),
                    streams=_int(r[11]),
                    streams_without_usage=_int(r[12]),
                    calls_without_usage=_int(r[13]),
                    snapshots=snapshots,
                )
            )
        result.sort(key=lambda m: (-m.spend.cost, -m.spend.calls, m.provider, m.model))
        return result

    def daily(self, period: Period) -> list[DayRow]:
        rows = self.run(
            "daily spend by provider",
            f"""SELECT {self.d.day} AS day, c.provider, SUM(c.total_cost), COUNT(*)
                FROM {CALLS} c WHERE {self.in_period}
                GROUP BY {self.d.day}, c.provider ORDER BY 1, 2""",
            self.window(period),
        )
        return [DayRow(str(r[0]), str(r[1]), money(r[2]), _int(r[3])) for r in rows]

    def tag_breakdown(self, period: Period, key: str, limit: int, total: Spend) -> TagBreakdown:
        q = self.d.sql.quote
        rows = self.run(
            f"spend by tag {key!r}",
            f"""SELECT t.{q("value")}, COUNT(*), SUM(c.total_cost), SUM(c.input_tokens),
                       SUM(c.output_tokens),
                       SUM(CASE WHEN c.cost_status = 'unknown' THEN 1 ELSE 0 END)
                FROM {CALLS} c
                LEFT JOIN {TAGS} t ON t.call_id = c.id AND t.{q("key")} = {self.p}
                WHERE {self.in_period}
                GROUP BY t.{q("value")}
                ORDER BY CASE WHEN t.{q("value")} IS NULL THEN 0 ELSE 1 END,
                         COALESCE(SUM(c.total_cost), 0) DESC, COUNT(*) DESC
                LIMIT {int(limit) + 1}""",
            (key, *self.window(period)),
        )
        tag_rows = [
            TagRow(
                None if r[0] is None else str(r[0]),
                Spend(_int(r[1]), money(r[2]), _int(r[3]), _int(r[4]), _int(r[5])),
            )
            for r in rows
        ]
        untagged = next((t.spend for t in tag_rows if t.value is None), Spend())
        named = [t for t in tag_rows if t.value is not None][:limit]
        shown = [t.spend for t in named] + [untagged]
        other = Spend(
            total.calls - sum(s.calls for s in shown),
            total.cost - sum((s.cost for s in shown), Decimal(0)),
            total.input_tokens - sum(s.input_tokens for s in shown),
            total.output_tokens - sum(s.output_tokens for s in shown),
            total.unpriced_calls - sum(s.unpriced_calls for s in shown),
        )
        ordered = ([TagRow(None, untagged)] if untagged.calls else []) + named
        return TagBreakdown(key, tuple(ordered), other, untagged)

    def top_calls(self, period: Period, limit: int) -> list[TopCall]:
        rows = self.run(
            "top expensive calls",
            f"""SELECT c.id, c.occurred_at, c.provider, c.model, c.operation,
                       c.input_tokens, c.output_tokens, {self.d.exact_cost}
                FROM {CALLS} c
                WHERE {self.in_period} AND c.total_cost IS NOT NULL
                ORDER BY c.total_cost DESC LIMIT {int(limit)}""",
            self.window(period),
        )
        tags: dict[str, dict[str, str]] = {str(r[0]): {} for r in rows}
        if rows:
            q = self.d.sql.quote
            marks = ", ".join([self.p] * len(rows))
            for call_id, key, value in self.run(
                "tags of the top calls",
                f"SELECT call_id, {q('key')}, {q('value')} FROM {TAGS} WHERE call_id IN ({marks}) ORDER BY 1, 2",
                [r[0] for r in rows],
            ):
                tags.setdefault(str(call_id), {})[str(key)] = str(value)
        return [
            TopCall(
                id=str(r[0]),
                occurred_at=_time_text(r[1]),
                provider=str(r[2]),
                model=str(r[3]),
                operation=str(r[4]),
                input_tokens=_opt_int(r[5]),
                output_tokens=_opt_int(r[6]),
                cost=money(r[7]),
                tags=tags.get(str(r[0]), {}),
            )
            for r in rows
        ]

    def cache_rows(self, period: Period) -> list[tuple[str, str, Any, Any, Decimal]]:
        rows = self.run(
            "cache reads",
            f"""SELECT c.provider, c.model, cr.unit_price, inp.unit_price, SUM(cr.quantity)
                FROM {CALLS} c
                JOIN {ITEMS} cr ON cr.call_id = c.id AND cr.component = 'cache_read'
                LEFT JOIN {ITEMS} inp ON inp.call_id = c.id AND inp.component = 'input'
                WHERE {self.in_period}
                GROUP BY c.provider, c.model, cr.unit_price, inp.unit_price""",
            self.window(period),
        )
        return [(str(r[0]), str(r[1]), r[2], r[3], money(r[4])) for r in rows]

    def sample_line_items(self, call_ids: Sequence[str]) -> list[tuple[str, str, str, Any]]:
        if not call_ids:
            return []
        marks = ", ".join([self.p] * len(call_ids))
        rows = self.run(
            "line items of sample calls",
            f"SELECT call_id, component, unit, unit_price FROM {ITEMS} WHERE call_id IN ({marks}) ORDER BY 1, 2",
            list(call_ids),
        )
        return [(str(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]

    def sample_priced_calls(self, period: Period) -> dict[tuple[str, str], str]:
        ident = self.d.as_text.format("c.id")
        rows = self.run(
            "one priced call per model",
            f"""SELECT c.provider, c.model, MAX({ident})
                FROM {CALLS} c
                WHERE {self.in_period} AND c.cost_status <> 'unknown'
                GROUP BY c.provider, c.model""",
            self.window(period),
        )
        return {(str(r[0]), str(r[1])): str(r[2]) for r in rows if r[2] is not None}

    def errors_by_type(self, period: Period) -> list[tuple[str, int]]:
        rows = self.run(
            "errors by type",
            f"""SELECT COALESCE(c.error_type, 'unknown'), COUNT(*) FROM {CALLS} c
                WHERE {self.in_period} AND c.status = 'error'
                GROUP BY COALESCE(c.error_type, 'unknown') ORDER BY 2 DESC""",
            self.window(period),
        )
        return [(str(r[0]), _int(r[1])) for r in rows]

    def untagged_calls(self, period: Period) -> int:
        rows = self.run(
            "calls without any tag",
            f"""SELECT COUNT(*) FROM {CALLS} c WHERE {self.in_period}
                AND NOT EXISTS (SELECT 1 FROM {TAGS} t WHERE t.call_id = c.id)""",
            self.window(period),
        )
        return _int(rows[0][0])

    def spent_since(self, start: datetime, end: datetime) -> Decimal:
        rows = self.run(
            "budget spend",
            f"SELECT SUM(c.total_cost) FROM {CALLS} c WHERE {self.in_period}",
            self.window(Period(start, end)),
        )
        return money(rows[0][0])

    def calls_over(self, period: Period, limit: Decimal) -> int:
        rows = self.run(
            "calls over the per-call budget",
            f"SELECT COUNT(*) FROM {CALLS} c WHERE {self.in_period} AND c.total_cost > {self.p}",
            (*self.window(period), self.d.sql.convert_decimal(limit)),
        )
        return _int(rows[0][0])


def _time_text(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        text: str = value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        return text
    return str(value)[:19]


# -- prices and cache savings from what was stored ---------------------------


def _snapshot(text: Any) -> Mapping[str, Any]:
    if not text:
        return {}
    try:
        data = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {}
    return data if isinstance(data, Mapping) else {}


def _snapshot_source(data: Mapping[str, Any]) -> str:
    """Where a stored snapshot's rates came from: catalog source, version, entry, mode, tier."""
    parts = []
    for key in ("source", "catalog_version", "entry", "mode", "tier", "effective_from", "period"):
        value = data.get(key)
        if isinstance(value, (str, int)) and str(value):
            parts.append(f"{key} {value}")
    return ", ".join(parts)


def _snapshot_rates(data: Mapping[str, Any]) -> list[tuple[str, str, Decimal]]:
    """(component, unit, price per single unit) from a snapshot's ``rates`` table."""
    rates = data.get("rates")
    if not isinstance(rates, Mapping):
        return []
    found = []
    for component, spec in rates.items():
        if not isinstance(spec, Mapping) or "rate" not in spec:
            continue
        try:
            per = Decimal(str(spec.get("per", 1)))
            found.append(
                (str(component), str(spec.get("unit", "token")), Decimal(str(spec["rate"])) / per)
            )
        except (ArithmeticError, ValueError):
            continue
    return found


def _per_million(rate: Decimal, unit: str) -> str | None:
    if unit != "token":
        return None
    return format((rate * 1_000_000).normalize(), "f")


def prices_used(
    models: Sequence[ModelRow],
    samples: Mapping[tuple[str, str], str],
    items: Sequence[tuple[str, str, str, Any]],
) -> list[PriceRow]:
    """The rates frozen with the calls: each model's latest snapshot, else a priced call's line items."""
    by_call: dict[str, list[tuple[str, str, Decimal]]] = {}
    for call_id, component, unit, rate in items:
        if rate is not None:
            by_call.setdefault(call_id, []).append((component, unit, money(rate)))
    snapshots = {(m.provider, m.model): m.snapshots for m in models}
    rows: list[PriceRow] = []
    for (provider, model), call_id in sorted(samples.items()):
        seen = snapshots.get((provider, model), ())
        latest = _snapshot(seen[-1] if seen else None)
        source = _snapshot_source(latest)
        if len(seen) > 1:
            source = (source + "; " if source else "") + "prices changed during the period"
        rates = _snapshot_rates(latest) or by_call.get(call_id, [])
        for component, unit, value in sorted(rates):
            rows.append(
                PriceRow(
                    provider,
                    model,
                    component,
                    unit,
                    format(value.normalize(), "f"),
                    _per_million(value, unit),
                    source,
                )
            )
    return rows


def cache_savings(
    raw: Sequence[tuple[str, str, Any, Any, Decimal]], prices: Sequence[PriceRow]
) -> list[CacheSavings]:
    """Savings = cache-read tokens x (input rate - cache-read rate), per model."""
    input_rate = {(p.provider, p.model): Decimal(p.rate) for p in prices if p.component == "input"}
    totals: dict[tuple[str, str], tuple[Decimal, Decimal | None]] = {}
    for provider, model, read_rate, in_rate, quantity in raw:
        key = (provider, model)
        tokens, saved = totals.get(key, (Decimal(0), Decimal(0)))
        full = money(in_rate) if in_rate is not None else input_rate.get(key)
        if read_rate is None or full is None or saved is None:
            saved = None
        else:
            saved += quantity * (full - money(read_rate))
        totals[key] = (tokens + quantity, saved)
    result = [CacheSavings(p, m, tokens, saved) for (p, m), (tokens, saved) in totals.items()]
    result.sort(key=lambda c: (-(c.saved or Decimal(0)), -c.cache_read_tokens))
    return result


def collect(
    connection: Any,
    dialect_name: str,
    *,
    database: str,
    period: Period,
    group_by: Sequence[str] = (),
    top: int = 20,
    tag_limit: int = 25,
    budgets: Mapping[str, Decimal | None] | None = None,
    dropped: Mapping[str, int] | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> Report:
    """Run every aggregation for ``period`` and return the filled Report."""
    now = now or datetime.now(timezone.utc)
    q = _Queries(connection, REPORT_DIALECTS[dialect_name], progress)
    models = q.models(period)
    current = Spend(
        sum(m.spend.calls for m in models),
        sum((m.spend.cost for m in models), Decimal(0)),
        sum(m.spend.input_tokens for m in models),
        sum(m.spend.output_tokens for m in models),
        sum(m.spend.unpriced_calls for m in models),
    )
    totals = Totals(
        current=current,
        previous=q.spend(period.previous),
        errors=sum(m.errors for m in models),
        partial_calls=sum(m.partial_calls for m in models),
    )
    daily = q.daily(period)
    tags = tuple(q.tag_breakdown(period, key, tag_limit, current) for key in group_by)
    top_calls = q.top_calls(period, top)
    samples = q.sample_priced_calls(period)
    prices = prices_used(models, samples, q.sample_line_items(list(samples.values())))
    savings = cache_savings(q.cache_rows(period), prices)
    statuses: list[BudgetStatus] = []
    for name, limit in (budgets or {}).items():
        if limit is None:
            continue
        if name == "monthly":
            start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            statuses.append(BudgetStatus(name, limit, q.spent_since(start, now), 0))
        elif name == "daily":
            start = now.replace(hour=0, minute=0, second=0, microsecond=0)
            statuses.append(BudgetStatus(name, limit, q.spent_since(start, now), 0))
        elif name == "per_call":
            statuses.append(BudgetStatus(name, limit, None, q.calls_over(period, limit)))
    errors = q.errors_by_type(period)
    untagged = q.untagged_calls(period)
    return Report(
        generated_at=now,
        database=database,
        dialect=dialect_name,
        period=period,
        group_by=tuple(group_by),
        totals=totals,
        daily=tuple(daily),
        models=tuple(models),
        tags=tags,
        top_calls=tuple(top_calls),
        cache_savings=tuple(savings),
        budgets=tuple(statuses),
        errors_by_type=tuple(errors),
        untagged_calls=untagged,
        dropped=dict(dropped or {}),
        prices=tuple(prices),
        timings=q.timings,
    )
