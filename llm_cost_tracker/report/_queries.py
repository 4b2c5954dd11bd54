"""The report's SQL: a few aggregations over the contract tables, dialect differences as data.

Every query filters on ``occurred_at`` and groups in the database, so the report
reads a few hundred rows whatever the ledger's size. The main pass runs once
per UTC day of the period and groups by (provider, model), which the
``(provider, model, occurred_at)`` index serves without sorting; spend by model,
daily spend and the totals are sums of that grid. Money sums are exact on
PostgreSQL and MySQL (NUMERIC/DECIMAL); on SQLite they are 64-bit float sums of
the NUMERIC column, rounded to 12 decimal places.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from .. import ledger
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

CALLS = ledger.CALLS
ITEMS = ledger.LINE_ITEMS
TAGS = ledger.TAGS
_PLACES = Decimal("1e-12")


@dataclass(frozen=True)
class ReportDialect:
    """What differs between databases for the report: session settings, exact-cost column."""

    sql: Any  # ledger.Dialect
    exact_cost: str  # the per-call cost column shown for single calls
    session: tuple[str, ...] = ()  # run once on the report's connection


REPORT_DIALECTS = {
    "sqlite": ReportDialect(
        sql=ledger.SQLITE,
        exact_cost="c.total_cost_exact",
        # Group-by sorts in memory, and a larger cache for one big read.
        session=("PRAGMA temp_store = MEMORY", "PRAGMA cache_size = -262144"),
    ),
    "postgres": ReportDialect(
        sql=ledger.POSTGRES,
        exact_cost="c.total_cost",
        # JIT compilation costs more than it saves on these short aggregations.
        session=("SET jit = off", "SET work_mem = '64MB'"),
    ),
    "mysql": ReportDialect(sql=ledger.MYSQL, exact_cost="c.total_cost"),
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


def _add(a: Spend, b: Spend) -> Spend:
    return Spend(
        a.calls + b.calls,
        a.cost + b.cost,
        a.input_tokens + b.input_tokens,
        a.output_tokens + b.output_tokens,
        a.unpriced_calls + b.unpriced_calls,
    )


def _minus(a: Spend, b: Spend) -> Spend:
    return Spend(
        a.calls - b.calls,
        a.cost - b.cost,
        a.input_tokens - b.input_tokens,
        a.output_tokens - b.output_tokens,
        a.unpriced_calls - b.unpriced_calls,
    )


def _sum(spends: Iterable[Spend]) -> Spend:
    total = Spend()
    for spend in spends:
        total = _add(total, spend)
    return total


def utc_days(period: Period) -> list[tuple[str, Period]]:
    """Split ``period`` at UTC midnights: (day, slice) pairs in order."""
    slices = []
    start = period.start
    while start < period.end:
        midnight = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
        end = min(midnight + timedelta(days=1), period.end)
        slices.append((start.strftime("%Y-%m-%d"), Period(start, end)))
        start = end
    return slices


_SPEND = """COUNT(*), SUM(c.total_cost), SUM(c.input_tokens), SUM(c.output_tokens),
    SUM(CASE WHEN c.cost_status = 'unknown' THEN 1 ELSE 0 END)"""


def _spend(row: Sequence[Any]) -> Spend:
    return Spend(_int(row[0]), money(row[1]), _int(row[2]), _int(row[3]), _int(row[4]))


@dataclass
class _ModelTotals:
    """Running sums for one (provider, model) across the day slices."""

    spend: Spend = field(default_factory=Spend)
    cache_read: int = 0
    reasoning: int = 0
    partial: int = 0
    errors: int = 0
    streams: int = 0
    streams_without_usage: int = 0
    without_usage: int = 0


class _Queries:
    def __init__(self, connection: Any, dialect: ReportDialect, progress: Progress | None) -> None:
        self.connection = connection
        self.d = dialect
        self.p = dialect.sql.placeholder
        self.progress = progress
        self.timings: dict[str, float] = {}
        for statement in dialect.session:
            self.run("session", statement, (), quiet=True, fetch=False)

    def run(
        self,
        name: str,
        sql: str,
        params: Sequence[Any],
        *,
        quiet: bool = False,
        fetch: bool = True,
    ) -> list[tuple[Any, ...]]:
        started = time.perf_counter()
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, tuple(params))
            rows = [tuple(r) for r in cursor.fetchall()] if fetch else []
        finally:
            cursor.close()
        elapsed = time.perf_counter() - started
        self.timings[name] = self.timings.get(name, 0.0) + elapsed
        if self.progress is not None and not quiet:
            self.progress(f"{name}: {len(rows)} row(s) in {elapsed:.2f} s")
        return rows

    def window(self, period: Period) -> tuple[Any, Any]:
        convert = self.d.sql.convert_time
        return convert(period.start), convert(period.end)

    @property
    def in_period(self) -> str:
        return f"c.occurred_at >= {self.p} AND c.occurred_at < {self.p}"

    # -- the main pass -----------------------------------------------------

    def grid(self, period: Period) -> tuple[list[ModelRow], list[DayRow], list[tuple[str, int]]]:
        """Spend by model, by (day, provider), and errors by type: one grouped query per UTC day."""
        models: dict[tuple[str, str], _ModelTotals] = {}
        daily: dict[tuple[str, str], Spend] = {}
        errors: dict[str, int] = {}
        days = utc_days(period)
        started = time.perf_counter()
        for index, (day, piece) in enumerate(days):
            rows = self.run(
                "daily spend by model",
                f"""SELECT c.provider, c.model, c.error_type, {_SPEND},
                           SUM(c.cache_read_tokens), SUM(c.reasoning_tokens),
                           SUM(CASE WHEN c.cost_status = 'partial' THEN 1 ELSE 0 END),
                           SUM(CASE WHEN c.status = 'error' THEN 1 ELSE 0 END),
                           SUM(CASE WHEN c.stream THEN 1 ELSE 0 END),
                           SUM(CASE WHEN c.stream AND c.status = 'ok' AND c.input_tokens IS NULL THEN 1 ELSE 0 END),
                           SUM(CASE WHEN c.status = 'ok' AND c.input_tokens IS NULL THEN 1 ELSE 0 END)
                    FROM {CALLS} c WHERE {self.in_period}
                    GROUP BY c.provider, c.model, c.error_type""",
                self.window(piece),
                quiet=True,
            )
            for r in rows:
                provider, model, error_type = str(r[0]), str(r[1]), r[2]
                spend = _spend(r[3:8])
                cache_read, reasoning, partial, failed, streams, silent, no_usage = map(
                    _int, r[8:15]
                )
                if failed:
                    kind = "unknown" if error_type is None else str(error_type)
                    errors[kind] = errors.get(kind, 0) + failed
                m = models.setdefault((provider, model), _ModelTotals())
                m.spend = _add(m.spend, spend)
                m.cache_read += cache_read
                m.reasoning += reasoning
                m.partial += partial
                m.errors += failed
                m.streams += streams
                m.streams_without_usage += silent
                m.without_usage += no_usage
                daily[(day, provider)] = _add(daily.get((day, provider), Spend()), spend)
            if self.progress is not None and (index + 1) % 7 == 0 and index + 1 < len(days):
                self.progress(f"daily spend by model: {index + 1} of {len(days)} days")
        if self.progress is not None:
            self.progress(
                f"daily spend by model: {len(days)} day(s) in {time.perf_counter() - started:.2f} s"
            )
        model_rows = [
            ModelRow(
                provider=provider,
                model=model,
                spend=m.spend,
                cache_read_tokens=m.cache_read,
                reasoning_tokens=m.reasoning,
                partial_calls=m.partial,
                errors=m.errors,
                streams=m.streams,
                streams_without_usage=m.streams_without_usage,
                calls_without_usage=m.without_usage,
                snapshots=(),
            )
            for (provider, model), m in models.items()
        ]
        model_rows.sort(key=lambda m: (-m.spend.cost, -m.spend.calls, m.provider, m.model))
        day_rows = [
            DayRow(day, provider, spend.cost, spend.calls)
            for (day, provider), spend in sorted(daily.items())
        ]
        by_count = sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))
        return model_rows, day_rows, by_count

    def spend(self, period: Period) -> Spend:
        rows = self.run(
            "totals (previous period)",
            f"SELECT {_SPEND} FROM {CALLS} c WHERE {self.in_period}",
            self.window(period),
        )
        return _spend(rows[0])

    # -- tags --------------------------------------------------------------

    def tag_breakdowns(
        self, period: Period, keys: Sequence[str], limit: int, total: Spend
    ) -> list[TagBreakdown]:
        """Spend per value of each tag key (one query per key); calls without it are its untagged bucket."""
        return [tag_breakdown(key, *self.tag_values(period, key, limit), total) for key in keys]

    def tag_values(self, period: Period, key: str, limit: int) -> tuple[list[TagRow], Spend]:
        """The ``limit`` most expensive values of tag ``key``, and the spend of every call tagged with it.

        Window functions carry the key's tagged total alongside the top values,
        so "all other values" and "untagged" need no second query. (One query
        per key beats ``key IN (...)``: SQLite probes and sorts less.)
        """
        q = self.d.sql.quote
        key_sum = ", ".join(
            f"SUM({part}) OVER (PARTITION BY t.{q('key')}) AS {alias}"
            for part, alias in (
                ("COUNT(*)", "key_n"),
                ("SUM(c.total_cost)", "key_cost"),
                ("SUM(c.input_tokens)", "key_input"),
                ("SUM(c.output_tokens)", "key_output"),
                ("SUM(CASE WHEN c.cost_status = 'unknown' THEN 1 ELSE 0 END)", "key_unpriced"),
            )
        )
        rows = self.run(
            f"spend by tag {key!r}",
            f"""SELECT tag_key, tag_value, n, cost, input_tokens, output_tokens, unpriced,
                       key_n, key_cost, key_input, key_output, key_unpriced
                FROM (
                    SELECT t.{q("key")} AS tag_key, t.{q("value")} AS tag_value,
                           COUNT(*) AS n, SUM(c.total_cost) AS cost, SUM(c.input_tokens) AS input_tokens,
                           SUM(c.output_tokens) AS output_tokens,
                           SUM(CASE WHEN c.cost_status = 'unknown' THEN 1 ELSE 0 END) AS unpriced,
                           ROW_NUMBER() OVER (
                               PARTITION BY t.{q("key")}
                               ORDER BY COALESCE(SUM(c.total_cost), 0) DESC, COUNT(*) DESC, t.{q("value")}
                           ) AS rank_in_key,
                           {key_sum}
                    FROM {CALLS} c JOIN {TAGS} t ON t.call_id = c.id AND t.{q("key")} = {self.p}
                    WHERE {self.in_period}
                    GROUP BY t.{q("key")}, t.{q("value")}
                ) ranked
                WHERE rank_in_key <= {int(limit)}
                ORDER BY tag_key, rank_in_key""",
            (key, *self.window(period)),
        )
        named = [TagRow(str(r[1]), _spend(r[2:7])) for r in rows]
        return named, _spend(rows[0][7:12]) if rows else Spend()

    def untagged_calls(self, period: Period) -> int:
        rows = self.run(
            "calls without any tag",
            f"""SELECT COUNT(*) FROM {CALLS} c WHERE {self.in_period}
                AND NOT EXISTS (SELECT 1 FROM {TAGS} t WHERE t.call_id = c.id)""",
            self.window(period),
        )
        return _int(rows[0][0])

    # -- single calls ------------------------------------------------------

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

    def snapshots(self, period: Period, provider: str, model: str) -> tuple[str | None, Any, Any]:
        """(a priced call's id, the first and the last pricing snapshot) of one model in the period."""
        found: list[tuple[Any, Any]] = []
        for order in ("ASC", "DESC"):
            rows = self.run(
                "pricing snapshots",
                f"""SELECT c.id, c.pricing_snapshot FROM {CALLS} c
                    WHERE c.provider = {self.p} AND c.model = {self.p} AND {self.in_period}
                      AND c.cost_status <> 'unknown'
                    ORDER BY c.occurred_at {order} LIMIT 1""",
                (provider, model, *self.window(period)),
                quiet=True,
            )
            if rows:
                found.append((rows[0][0], rows[0][1]))
        if not found:
            return None, None, None
        return str(found[-1][0]), found[0][1], found[-1][1]

    def line_items(self, call_ids: Sequence[str]) -> list[tuple[str, str, str, Any]]:
        if not call_ids:
            return []
        marks = ", ".join([self.p] * len(call_ids))
        rows = self.run(
            "line items of sample calls",
            f"SELECT call_id, component, unit, unit_price FROM {ITEMS} WHERE call_id IN ({marks}) ORDER BY 1, 2",
            list(call_ids),
        )
        return [(str(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]

    def cache_reads(self, period: Period, provider: str, model: str) -> Decimal | None:
        """Savings of one model from its calls' own line items (when its rates changed mid-period)."""
        rows = self.run(
            f"cache reads of {provider}/{model}",
            f"""SELECT SUM(cr.quantity * (inp.unit_price - cr.unit_price)),
                       SUM(CASE WHEN inp.unit_price IS NULL OR cr.unit_price IS NULL THEN 1 ELSE 0 END)
                FROM {CALLS} c
                JOIN {ITEMS} cr ON cr.call_id = c.id AND cr.component = 'cache_read'
                LEFT JOIN {ITEMS} inp ON inp.call_id = c.id AND inp.component = 'input'
                WHERE c.provider = {self.p} AND c.model = {self.p} AND {self.in_period}
                  AND c.cache_read_tokens > 0""",
            (provider, model, *self.window(period)),
        )
        saved, unpriced = rows[0]
        if _int(unpriced):
            return None
        return money(saved)

    # -- data quality and budgets -----------------------------------------

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


def tag_breakdown(key: str, named: list[TagRow], tagged: Spend, total: Spend) -> TagBreakdown:
    """Assemble one key's table: untagged (total - tagged) first, the named values, the rest as other."""
    untagged = _minus(total, tagged)
    other = _minus(tagged, _sum(v.spend for v in named))
    ordered = ([TagRow(None, untagged)] if untagged.calls else []) + named
    return TagBreakdown(key, tuple(ordered), other, untagged)


def _time_text(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        text: str = value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        return text
    return str(value)[:19]


# -- prices and cache savings from what was stored ---------------------------


def _snapshot(value: Any) -> Mapping[str, Any]:
    if not value:
        return {}
    try:
        data = json.loads(value) if isinstance(value, (str, bytes)) else value
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
            rate = Decimal(str(spec["rate"])) / per
        except (ArithmeticError, ValueError):
            continue
        found.append((str(component), str(spec.get("unit", "token")), rate))
    return found


def _per_million(rate: Decimal, unit: str) -> str | None:
    if unit != "token":
        return None
    return format((rate * 1_000_000).normalize(), "f")


@dataclass(frozen=True)
class _Prices:
    rows: list[PriceRow]
    constant: bool  # the first and last snapshot of the period carry the same rates
    rates: dict[str, Decimal]


def _prices(
    provider: str, model: str, first: Any, last: Any, items: Sequence[tuple[str, str, Decimal]]
) -> _Prices:
    latest, earliest = _snapshot(last), _snapshot(first)
    rates = _snapshot_rates(latest)
    constant = bool(rates) and rates == _snapshot_rates(earliest)
    source = _snapshot_source(latest)
    if rates and not constant:
        source = (source + "; " if source else "") + "prices changed during the period"
    used = rates or list(items)
    rows = [
        PriceRow(
            provider,
            model,
            component,
            unit,
            format(value.normalize(), "f"),
            _per_million(value, unit),
            source,
        )
        for component, unit, value in sorted(used)
    ]
    return _Prices(rows, constant, {component: value for component, _, value in used})


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
    open_connection: Callable[[], Any] | None = None,
) -> Report:
    """Run every aggregation for ``period`` and return the filled Report.

    With ``open_connection`` (a factory for a second connection to the same
    database) the tag and top-call queries run on it in a thread, beside the
    daily pass.
    """
    now = now or datetime.now(timezone.utc)
    dialect = REPORT_DIALECTS[dialect_name]
    q = _Queries(connection, dialect, progress)
    keys = list(dict.fromkeys(group_by))

    def side_queries(side: _Queries) -> tuple[list[tuple[list[TagRow], Spend]], list[TopCall]]:
        return [side.tag_values(period, key, tag_limit) for key in keys], side.top_calls(
            period, top
        )

    # The tag and top-call queries need no result of the daily pass: with a
    # second connection they run beside it (the database works on two cores).
    side_result: list[Any] = []
    side_thread: threading.Thread | None = None
    if open_connection is not None:

        def run_side() -> None:
            try:
                side_connection = open_connection()
                try:
                    side = _Queries(side_connection, dialect, progress)
                    side_result.append(side_queries(side))
                    side_result.append(side.timings)
                finally:
                    side_connection.close()
            except BaseException as error:  # re-raised below, in the caller's thread
                side_result[:] = [error]

        side_thread = threading.Thread(target=run_side, name="llm-cost-tracker-report", daemon=True)
        side_thread.start()
    models, daily, errors = q.grid(period)
    current = _sum(m.spend for m in models)
    totals = Totals(
        current=current,
        previous=q.spend(period.previous),
        errors=sum(m.errors for m in models),
        partial_calls=sum(m.partial_calls for m in models),
    )
    if side_thread is not None:
        side_thread.join()
        if len(side_result) == 1:
            raise side_result[0]
        (values, top_calls), timings = side_result
        for name, seconds in timings.items():
            q.timings[name] = q.timings.get(name, 0.0) + seconds
    else:
        values, top_calls = side_queries(q)
    tags = tuple(
        tag_breakdown(key, named, tagged, current)
        for key, (named, tagged) in zip(keys, values, strict=True)
    )

    samples = {
        (m.provider, m.model): q.snapshots(period, m.provider, m.model)
        for m in models
        if m.spend.calls > m.spend.unpriced_calls
    }
    items: dict[str, list[tuple[str, str, Decimal]]] = {}
    for call_id, component, unit, rate in q.line_items(
        [s[0] for s in samples.values() if s[0] is not None]
    ):
        if rate is not None:
            items.setdefault(call_id, []).append((component, unit, money(rate)))
    prices: list[PriceRow] = []
    savings: list[CacheSavings] = []
    snapshots: dict[tuple[str, str], tuple[str, ...]] = {}
    for m in models:
        key = (m.provider, m.model)
        if key not in samples:
            if m.cache_read_tokens:
                savings.append(
                    CacheSavings(m.provider, m.model, Decimal(m.cache_read_tokens), None)
                )
            continue
        sample_id, first, last = samples[key]
        found = _prices(m.provider, m.model, first, last, items.get(sample_id or "", []))
        prices.extend(found.rows)
        snapshots[key] = tuple(
            dict.fromkeys(json.dumps(_snapshot(s), sort_keys=True) for s in (first, last) if s)
        )
        if not m.cache_read_tokens:
            continue
        full, cached = found.rates.get("input"), found.rates.get("cache_read")
        if found.constant and full is not None and cached is not None:
            saved: Decimal | None = m.cache_read_tokens * (full - cached)
        else:
            saved = q.cache_reads(period, m.provider, m.model)
        savings.append(CacheSavings(m.provider, m.model, Decimal(m.cache_read_tokens), saved))
    savings.sort(key=lambda c: (-(c.saved or Decimal(0)), -c.cache_read_tokens))
    models = [_with_snapshots(m, snapshots.get((m.provider, m.model), ())) for m in models]

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
    # With --group-by, "untagged" is per key (free); without, count calls carrying no tag at all.
    untagged = tags[0].untagged.calls if tags else q.untagged_calls(period)
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
        untagged_key=group_by[0] if group_by else None,
        dropped=dict(dropped or {}),
        prices=tuple(prices),
        timings=q.timings,
    )


def _with_snapshots(model: ModelRow, snapshots: tuple[str, ...]) -> ModelRow:
    return replace(model, snapshots=snapshots)
