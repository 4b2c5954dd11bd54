"""``doctor``'s budget checks: the limits in force, where their totals come from, and the spend so far.

Inside an app with budgets configured, the checks report that process's own
view of them; otherwise the budgets the environment sets, with the spend read
from the database the way every process's budget thread reads it.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._check import Check

if TYPE_CHECKING:
    from ..budgets._model import Budgets, BudgetType, TagLimits

_OVER_HINTS = {
    "notify": "notify only: calls go ahead; the callback fired once for this crossing",
    "raise": "each call raises BudgetExceededError once it is recorded, until the period ends",
    "block": "new requests are refused before they are sent, until the period ends",
}

_PERIODIC: tuple[BudgetType, ...] = ("monthly", "daily")
_Totals = dict[tuple[str, str, str], Decimal]  # (budget type, period, scope) -> spent


@dataclass(frozen=True)
class _SpendView:
    """Where the budget totals come from, and what they are (None, and why, when unknown)."""

    shared_url: str | None  # the database the totals are shared through; None: in-process
    export_interval: float
    spent: _Totals | None
    why: str
    now: datetime  # the moment whose day and month the totals are for
    source: str  # "as this process sees it" or "from the database"


def check_budgets(url: str, config: Any, connection: Any, now: datetime) -> list[Check]:
    """The budgets in force: limits, mode, per-tag keys, where totals come from, current spend."""
    from .. import _api
    from ..budgets._guard import guard_of
    from ..budgets._model import day_of, month_of

    runtime = _api._runtime
    guard = None if runtime is None else guard_of(runtime)
    budgets = guard.budgets if guard is not None else None if config is None else config.budgets
    if budgets is None:
        return [
            Check(
                "info",
                "budgets",
                "none configured",
                "set LLM_COST_TRACKER_MONTHLY_BUDGET / _DAILY_BUDGET / _PER_CALL_BUDGET or "
                "configure(budgets=Budgets(...)); see docs/budgets.md",
            )
        ]
    now = now.astimezone(timezone.utc)
    tag_keys = sorted(budgets.per_tag)
    if guard is not None and runtime is not None:
        view = _SpendView(
            shared_url=None if guard.shared is None else guard.shared.url,
            export_interval=runtime.config.export_interval,
            spent={(v.budget_type, v.period, v.scope): v.spent for v in guard.views()},
            why="",
            now=datetime.now(timezone.utc),  # the guard's own periods
            source="as this process sees it",
        )
    else:
        view = _spend_from_environment(url, config, connection, tag_keys, now)
    periods = {"monthly": month_of(view.now), "daily": day_of(view.now)}
    checks = [_overview(budgets, view)]
    checks += _global_limits(budgets, view, periods)
    if budgets.per_call is not None:
        checks.append(_per_call(budgets.per_call))
    for tag_key in tag_keys:
        checks.append(_per_tag(tag_key, budgets.per_tag[tag_key], view, periods))
    return checks


def _spend_from_environment(
    url: str, config: Any, connection: Any, tag_keys: list[str], now: datetime
) -> _SpendView:
    """The totals every process shares through ``url``; none for an in-memory SQLite database."""
    from .. import ledger

    in_memory = (
        ledger.dialect_name_for_url(url) == "sqlite" and ledger.sqlite_path(url) == ":memory:"
    )
    shared_url = None if in_memory else url
    spent: _Totals | None
    if shared_url is None:
        spent, why = None, "in-process totals are only visible inside the app"
    else:
        spent, why = _spend_from_database(connection, url, tag_keys, now)
    return _SpendView(shared_url, config.export_interval, spent, why, now, "from the database")


def _spend_from_database(
    connection: Any, url: str, tag_keys: list[str], now: datetime
) -> tuple[_Totals | None, str]:
    """Month- and day-to-date spend as the budget thread reads it; (None, why) when unreadable."""
    from .. import ledger
    from ..budgets._shared import SpendQueries

    if connection is None:
        return None, "no ledger yet: nothing recorded"
    cursor = connection.cursor()
    try:
        dialect = ledger.DIALECTS[ledger.dialect_name_for_url(url)]
        return SpendQueries(dialect).read(cursor, tag_keys, now), ""
    except Exception as error:
        with suppress(Exception):
            connection.rollback()
        return None, f"cannot read the spend: {error}"
    finally:
        cursor.close()


def _overview(budgets: Budgets, view: _SpendView) -> Check:
    """What happens on exceed, and how soon one process's spend reaches the others."""
    from .. import ledger

    if view.shared_url is None:
        where = "in-process (no SQL database): each process counts only its own spend"
    else:
        staleness = view.export_interval + budgets.refresh_interval
        where = (
            f"shared through {ledger.redact_url(view.shared_url)}, read every {budgets.refresh_interval:g} s "
            f"(another process's spend shows here within about {staleness:g} s)"
        )
    return Check("ok", "budgets", f"on exceed: {budgets.on_exceed}; totals {where}")


def _global_limits(budgets: Budgets, view: _SpendView, periods: dict[str, str]) -> list[Check]:
    """The monthly and daily limits against the spend of the current month and day."""
    from .._errors import format_money
    from ..budgets._model import GLOBAL_SCOPE

    checks = []
    for budget_type in _PERIODIC:
        limit = budgets.limits(budget_type)
        if limit is None:
            continue
        period = periods[budget_type]
        if view.spent is None:
            checks.append(
                Check(
                    "ok",
                    f"budget {budget_type}",
                    f"limit {format_money(limit)}; spend unknown: {view.why}",
                )
            )
            continue
        total = view.spent.get((budget_type, period, GLOBAL_SCOPE), Decimal(0))
        over = total > limit
        detail = f"{format_money(total)} of {format_money(limit)} spent in {period} {view.source}"
        checks.append(
            Check(
                "warn" if over else "ok",
                f"budget {budget_type}",
                detail
                + (": over the limit" if over else f" ({total / limit:.0%})" if limit else ""),
                _OVER_HINTS[budgets.on_exceed] if over else "",
            )
        )
    return checks


def _per_call(limit: Decimal) -> Check:
    from .._errors import format_money

    return Check("ok", "budget per_call", f"limit {format_money(limit)} per call")


def _per_tag(tag_key: str, limits: TagLimits, view: _SpendView, periods: dict[str, str]) -> Check:
    """One per-tag budget: how many of the key's values spent this period, and which are over."""
    from .._errors import format_money

    each = ", ".join(
        f"{t} {format_money(getattr(limits, t))}"
        for t in ("monthly", "daily")
        if getattr(limits, t) is not None
    )
    name = f"budget per tag {tag_key}"
    if view.spent is None:
        return Check("ok", name, f"{each} for each value; spend unknown: {view.why}")
    prefix = f"{tag_key}="
    values: set[str] = set()
    over_list: list[str] = []
    for (budget_type, period, scope), total in sorted(view.spent.items()):
        if not scope.startswith(prefix) or period != periods[budget_type]:
            continue
        values.add(scope)
        limit = getattr(limits, budget_type)
        if limit is not None and total > limit:
            over_list.append(
                f"{scope} {format_money(total)} of {format_money(limit)} ({budget_type})"
            )
    detail = f"{each} for each value; {len(values)} value(s) with spend this period"
    if not over_list:
        return Check("ok", name, f"{detail}, none over")
    shown = "; ".join(over_list[:5]) + (
        f"; and {len(over_list) - 5} more" if len(over_list) > 5 else ""
    )
    return Check("warn", name, f"{detail}, {len(over_list)} over: {shown}")
