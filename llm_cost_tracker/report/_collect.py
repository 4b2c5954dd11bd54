"""Which of the report's queries run, in what order and on which connection, and the Report they fill."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from ._model import BudgetStatus, Period, Report, Spend, TagRow, TopCall, Totals
from ._prices import price_models
from ._queries import REPORT_DIALECTS, Progress, Queries, ReportDialect
from ._spend import tag_breakdown, total

_SideResult = tuple[list[tuple[list[TagRow], Spend]], list[TopCall]]


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
    q = Queries(connection, dialect, progress)
    keys = list(dict.fromkeys(group_by))

    def side_queries(side: Queries) -> _SideResult:
        return [side.tag_values(period, key, tag_limit) for key in keys], side.top_calls(
            period, top
        )

    # The tag and top-call queries need no result of the daily pass: with a
    # second connection they run beside it (the database works on two cores).
    join_side = (
        None
        if open_connection is None
        else _start_beside(open_connection, dialect, progress, side_queries)
    )
    models, daily, errors = q.grid(period)
    current = total(m.spend for m in models)
    totals = Totals(
        current=current,
        previous=q.spend(period.previous),
        errors=sum(m.errors for m in models),
        partial_calls=sum(m.partial_calls for m in models),
    )
    values, top_calls = side_queries(q) if join_side is None else join_side(q)
    tags = tuple(
        tag_breakdown(key, named, tagged, current)
        for key, (named, tagged) in zip(keys, values, strict=True)
    )
    models, prices, savings = price_models(q, period, models)
    statuses = _budget_statuses(q, period, budgets or {}, now)
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


def _start_beside(
    open_connection: Callable[[], Any],
    dialect: ReportDialect,
    progress: Progress | None,
    queries: Callable[[Queries], _SideResult],
) -> Callable[[Queries], _SideResult]:
    """Start ``queries`` on a second connection in a thread; return the function that joins it.

    Joining re-raises the thread's error in the caller's thread, and adds the
    thread's query timings to the caller's.
    """
    result: list[Any] = []

    def run_side() -> None:
        try:
            side_connection = open_connection()
            try:
                side = Queries(side_connection, dialect, progress)
                result.append(queries(side))
                result.append(side.timings)
            finally:
                side_connection.close()
        except BaseException as error:  # re-raised by join(), in the caller's thread
            result[:] = [error]

    thread = threading.Thread(target=run_side, name="llm-cost-tracker-report", daemon=True)
    thread.start()

    def join(main: Queries) -> _SideResult:
        thread.join()
        if len(result) == 1:
            raise result[0]
        found: _SideResult = result[0]
        timings: dict[str, float] = result[1]
        for name, seconds in timings.items():
            main.timings[name] = main.timings.get(name, 0.0) + seconds
        return found

    return join


def _budget_statuses(
    q: Queries, period: Period, budgets: Mapping[str, Decimal | None], now: datetime
) -> list[BudgetStatus]:
    """Month and day to date spend against their limits, and the period's calls over the per-call one."""
    statuses: list[BudgetStatus] = []
    for name, limit in budgets.items():
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
    return statuses
