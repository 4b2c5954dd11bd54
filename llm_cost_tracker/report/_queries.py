"""The report's SQL: one method per aggregation over the contract tables, dialect differences as data.

Every query filters on ``occurred_at`` and groups in the database, so the report
reads a few hundred rows whatever the ledger's size. The main pass runs once
per UTC day of the period and groups by (provider, model), which the
``(provider, model, occurred_at)`` index serves without sorting; spend by model,
daily spend and the totals are sums of that grid. Money sums are exact on
PostgreSQL and MySQL (NUMERIC/DECIMAL); on SQLite they are 64-bit float sums of
the NUMERIC column, rounded to 12 decimal places. What the rows add up to is
computed in ``_spend``; which queries run, and in what order, in ``_collect``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from .. import ledger
from ._model import DayRow, ModelRow, Period, Spend, TagBreakdown, TagRow, TopCall
from ._spend import DailyGrid, count, money, spend_of, tag_breakdown, utc_days

Progress = Callable[[str], None]

CALLS = ledger.CALLS
ITEMS = ledger.LINE_ITEMS
TAGS = ledger.TAGS


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


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


_SPEND = """COUNT(*), SUM(c.total_cost), SUM(c.input_tokens), SUM(c.output_tokens),
    SUM(CASE WHEN c.cost_status = 'unknown' THEN 1 ELSE 0 END)"""


class Queries:
    """The report's queries on one connection, each timed under its name and reported to ``progress``."""

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
        grid = DailyGrid()
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
            grid.add(day, rows)
            if self.progress is not None and (index + 1) % 7 == 0 and index + 1 < len(days):
                self.progress(f"daily spend by model: {index + 1} of {len(days)} days")
        if self.progress is not None:
            self.progress(
                f"daily spend by model: {len(days)} day(s) in {time.perf_counter() - started:.2f} s"
            )
        return grid.models(), grid.days(), grid.errors()

    def spend(self, period: Period) -> Spend:
        rows = self.run(
            "totals (previous period)",
            f"SELECT {_SPEND} FROM {CALLS} c WHERE {self.in_period}",
            self.window(period),
        )
        return spend_of(rows[0])

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
        named = [TagRow(str(r[1]), spend_of(r[2:7])) for r in rows]
        return named, spend_of(rows[0][7:12]) if rows else Spend()

    def untagged_calls(self, period: Period) -> int:
        rows = self.run(
            "calls without any tag",
            f"""SELECT COUNT(*) FROM {CALLS} c WHERE {self.in_period}
                AND NOT EXISTS (SELECT 1 FROM {TAGS} t WHERE t.call_id = c.id)""",
            self.window(period),
        )
        return count(rows[0][0])

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
        if count(unpriced):
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
        return count(rows[0][0])


def _time_text(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        text: str = value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        return text
    return str(value)[:19]
