"""What a budget is: the ``Budgets`` setting, the alerts and views it produces, and its periods."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Literal, cast

from .._errors import ConfigurationError, format_money
from .._events import UsageEvent
from .._stats import STATS
from .._tags import TAG_KEY_RE

_logger = logging.getLogger(__name__)

Amount = Decimal | int | str | float
OnExceed = Literal["notify", "raise", "block"]
BudgetType = Literal["per_call", "daily", "monthly"]

ON_EXCEED = ("notify", "raise", "block")
TAG_PERIODS = ("daily", "monthly")
GLOBAL_SCOPE = "global"
DEFAULT_REFRESH_INTERVAL = 1.0


def _amount(name: str, value: object) -> Decimal | None:
    """Turn a limit into an exact Decimal; floats go through ``str()`` so 2.5 means Decimal('2.5')."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str, float)):
        raise TypeError(
            f"{name}: a budget is an amount of money (Decimal, int, str or float), "
            f"got {type(value).__name__}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigurationError(f"{name}: must be a finite amount, got {value!r}")
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ConfigurationError(f"{name}: not a decimal number: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ConfigurationError(f"{name}: must be a finite, non-negative amount, got {value!r}")
    return amount


@dataclass(frozen=True, slots=True)
class TagLimits:
    """The limits each value of one tag gets: ``per_tag={"tenant_id": {"monthly": 100}}``."""

    monthly: Decimal | None = None
    daily: Decimal | None = None


def _tag_limits(per_tag: object) -> Mapping[str, TagLimits]:
    if per_tag is None:
        return MappingProxyType({})
    if not isinstance(per_tag, Mapping):
        raise TypeError(
            'per_tag: expected a mapping like {"tenant_id": {"monthly": 100}}, '
            f"got {type(per_tag).__name__}"
        )
    result: dict[str, TagLimits] = {}
    for key, limits in per_tag.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigurationError(f"per_tag: tag keys must be non-empty strings, got {key!r}")
        if not TAG_KEY_RE.match(key):
            raise ConfigurationError(
                f"per_tag: {key!r} can never match a tag: tag keys are 1-64 letters, digits, "
                "'_', '.' or '-'"
            )
        if not isinstance(limits, Mapping):
            raise TypeError(
                f"per_tag[{key!r}]: expected a mapping like {{'monthly': 100, 'daily': 10}}, "
                f"got {type(limits).__name__}"
            )
        unknown = sorted(str(k) for k in limits if k not in TAG_PERIODS)
        if unknown:
            raise ConfigurationError(
                f"per_tag[{key!r}]: unknown period(s) {', '.join(unknown)}; "
                "use 'monthly' and/or 'daily'"
            )
        monthly = _amount(f"per_tag[{key!r}]['monthly']", limits.get("monthly"))
        daily = _amount(f"per_tag[{key!r}]['daily']", limits.get("daily"))
        if monthly is None and daily is None:
            raise ConfigurationError(f"per_tag[{key!r}]: give a 'monthly' and/or 'daily' limit")
        result[key] = TagLimits(monthly=monthly, daily=daily)
    return MappingProxyType(result)


class Budgets:
    """Spending limits and what to do when one is reached.

    Args:
        monthly: limit for the UTC calendar month, across every call.
        daily: limit for the UTC day, across every call.
        per_call: limit for the cost of a single call.
        per_tag: per-tag-value limits, e.g. ``{"tenant_id": {"monthly": 100}}``:
            every value of ``tenant_id`` gets its own monthly budget of 100.
        on_exceed: ``"notify"`` (call ``callback`` once per crossing; never
            raise), ``"raise"`` (record the call, then raise
            BudgetExceededError in the caller's thread) or ``"block"`` (refuse
            to send a request whose estimated cost does not fit).
        callback: ``callback(alert: BudgetAlert)``, called once each time a
            limit is crossed, in every mode. Its exceptions are counted
            (``errors.budget.callback``), never raised.
        refresh_interval: seconds between reads of the shared totals when a
            SQL database is configured: the bound on how stale another
            process's spend can be.

    Amounts are exact: Decimal, int or str; a float goes through ``str()``,
    so ``2.5`` means ``Decimal("2.5")``. Limits are in the catalog currency (USD).
    """

    __slots__ = (
        "callback",
        "daily",
        "monthly",
        "on_exceed",
        "per_call",
        "per_tag",
        "refresh_interval",
    )

    def __init__(
        self,
        *,
        monthly: Amount | None = None,
        daily: Amount | None = None,
        per_call: Amount | None = None,
        per_tag: Mapping[str, Mapping[str, Amount]] | None = None,
        on_exceed: OnExceed = "notify",
        callback: Callable[[BudgetAlert], object] | None = None,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
    ) -> None:
        self.monthly = _amount("monthly", monthly)
        self.daily = _amount("daily", daily)
        self.per_call = _amount("per_call", per_call)
        self.per_tag = _tag_limits(per_tag)
        if on_exceed not in ON_EXCEED:
            raise ConfigurationError(
                f"on_exceed: expected 'notify', 'raise' or 'block', got {on_exceed!r}"
            )
        self.on_exceed: OnExceed = on_exceed
        if callback is not None and not callable(callback):
            raise TypeError(f"callback: must be callable, got {type(callback).__name__}")
        self.callback = callback
        if (
            isinstance(refresh_interval, bool)
            or not isinstance(refresh_interval, (int, float))
            or not 0.05 <= refresh_interval <= 3600
        ):
            raise ConfigurationError(
                f"refresh_interval: must be a number of seconds from 0.05 to 3600, "
                f"got {refresh_interval!r}"
            )
        self.refresh_interval = float(refresh_interval)
        if self.monthly is None and self.daily is None and self.per_call is None and not per_tag:
            raise ConfigurationError(
                "Budgets: set at least one of monthly, daily, per_call or per_tag"
            )

    def _key(self) -> tuple[object, ...]:
        return (
            self.monthly,
            self.daily,
            self.per_call,
            tuple(sorted(self.per_tag.items())),
            self.on_exceed,
            self.callback,
            self.refresh_interval,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Budgets):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        parts = [
            f"{name}={getattr(self, name)!r}"
            for name in ("monthly", "daily", "per_call")
            if getattr(self, name) is not None
        ]
        if self.per_tag:
            tags = {
                k: {p: getattr(v, p) for p in TAG_PERIODS if getattr(v, p) is not None}
                for k, v in self.per_tag.items()
            }
            parts.append(f"per_tag={tags!r}")
        parts.append(f"on_exceed={self.on_exceed!r}")
        if self.callback is not None:
            parts.append(f"callback={self.callback!r}")
        return f"Budgets({', '.join(parts)})"

    def limits(self, budget_type: BudgetType, tag_key: str | None = None) -> Decimal | None:
        """Return the limit of ``budget_type`` for the global scope, or for each value of ``tag_key``."""
        owner: object = self if tag_key is None else self.per_tag.get(tag_key)
        if owner is None or (tag_key is not None and budget_type == "per_call"):
            return None
        return cast("Decimal | None", getattr(owner, budget_type))


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """What a budget callback receives when a limit is crossed.

    ``budget_type`` is ``per_call``, ``daily`` or ``monthly``; ``scope`` is
    ``"global"`` or ``"<tag>=<value>"``; ``period`` is ``"2026-11"`` (monthly),
    ``"2026-11-23"`` (daily) or the event id (per call); ``total`` is the spend
    this process saw right after the crossing call (for ``per_call``, that call's
    cost); ``event`` is the call that crossed.
    """

    budget_type: BudgetType
    scope: str
    period: str
    total: Decimal
    limit: Decimal
    event: UsageEvent
    on_exceed: OnExceed


@dataclass(frozen=True, slots=True)
class BudgetView:
    """One budget as this process sees it now (``llm_cost_tracker.budgets.status()``)."""

    budget_type: BudgetType
    scope: str
    period: str
    spent: Decimal
    limit: Decimal
    unpriced_calls: int
    shared: bool
    refreshed_at: datetime | None


def month_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def day_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"


def period_bounds(moment: datetime) -> tuple[datetime, datetime, datetime, datetime]:
    """Return (month start, next month start, day start, next day start) around ``moment`` (UTC)."""
    moment = moment.astimezone(timezone.utc)
    day_start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = day_start.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    return month_start, next_month, day_start, day_start + timedelta(days=1)


def notify(budgets: Budgets, alert: BudgetAlert) -> None:
    """Report one crossing: a warning in the log, then the user's callback (never raises)."""
    STATS.incr("budget.crossings")
    where = "" if alert.scope == GLOBAL_SCOPE else f" for {alert.scope}"
    _logger.warning(
        "llm-cost-tracker: %s budget%s crossed (%s): %s of %s",
        alert.budget_type,
        where,
        alert.period,
        format_money(alert.total),
        format_money(alert.limit),
    )
    callback = budgets.callback
    if callback is None:
        return
    try:
        callback(alert)
    except Exception:
        STATS.failure("errors.budget.callback", "the budget callback raised")
