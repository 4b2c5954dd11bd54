"""What a report holds: plain frozen records filled by the queries and read by the renderers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from .._errors import ConfigurationError

_DURATION_RE = re.compile(r"^\s*(\d+)\s*([hdwm])\s*$", re.IGNORECASE)
_UNIT_DAYS = {"h": 1 / 24, "d": 1, "w": 7, "m": 30}


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open UTC time range ``[start, end)``."""

    start: datetime
    end: datetime

    @property
    def previous(self) -> Period:
        """The period of the same length that ends where this one starts."""
        return Period(self.start - (self.end - self.start), self.start)

    @property
    def days(self) -> list[str]:
        """Every UTC day (``YYYY-MM-DD``) the period touches, in order."""
        first = self.start.date()
        last = (self.end - timedelta(microseconds=1)).date()
        return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def parse_duration(text: str) -> timedelta:
    """``30d`` -> 30 days; also ``12h``, ``2w``, ``3m`` (30-day months)."""
    match = _DURATION_RE.match(text)
    if match is None:
        raise ConfigurationError(
            f"cannot read the duration {text!r}: use a number and a unit, like 30d, 12h, 2w or 3m"
        )
    amount = int(match.group(1))
    if amount < 1:
        raise ConfigurationError(f"the duration {text!r} must be at least 1")
    return timedelta(days=amount * _UNIT_DAYS[match.group(2).lower()])


def parse_instant(text: str, *, name: str) -> datetime:
    """A date (``2026-01-31``, midnight UTC) or an ISO time; naive times are UTC."""
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigurationError(
            f"{name}: cannot read {text!r} as a date (YYYY-MM-DD) or an ISO time"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def resolve_period(
    *,
    since: str | None,
    start: str | None,
    end: str | None,
    now: datetime | None = None,
) -> Period:
    """Turn ``--since`` / ``--from`` / ``--to`` into a Period (default: the last 30 days)."""
    now = now or datetime.now(timezone.utc)
    if since is not None and start is not None:
        raise ConfigurationError("use either --since or --from/--to, not both")
    until = parse_instant(end, name="--to") if end else now
    if start is not None:
        begin = parse_instant(start, name="--from")
    else:
        begin = until - parse_duration(since or "30d")
    if begin >= until:
        raise ConfigurationError("the report period is empty: --from must be before --to")
    return Period(begin, until)


@dataclass(frozen=True, slots=True)
class Spend:
    """Calls and money over some slice of the ledger."""

    calls: int = 0
    cost: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    unpriced_calls: int = 0  # cost_status = unknown: their cost is not in ``cost``


@dataclass(frozen=True, slots=True)
class Totals:
    current: Spend
    previous: Spend
    errors: int
    partial_calls: int


@dataclass(frozen=True, slots=True)
class ModelRow:
    provider: str
    model: str
    spend: Spend
    cache_read_tokens: int
    reasoning_tokens: int
    partial_calls: int
    errors: int
    streams: int
    streams_without_usage: int
    calls_without_usage: int
    snapshots: tuple[str, ...]  # distinct pricing snapshots seen (JSON text), at most two


@dataclass(frozen=True, slots=True)
class DayRow:
    day: str
    provider: str
    cost: Decimal
    calls: int


@dataclass(frozen=True, slots=True)
class TagRow:
    value: str | None  # None: calls without this tag ("untagged")
    spend: Spend


@dataclass(frozen=True, slots=True)
class TagBreakdown:
    key: str
    rows: tuple[TagRow, ...]  # untagged first when present, then by cost
    other: Spend  # values past the limit, summed
    untagged: Spend


@dataclass(frozen=True, slots=True)
class TopCall:
    id: str
    occurred_at: str
    provider: str
    model: str
    operation: str
    input_tokens: int | None
    output_tokens: int | None
    cost: Decimal
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class CacheSavings:
    provider: str
    model: str
    cache_read_tokens: Decimal
    saved: Decimal | None  # None: no rates for this model


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    name: str  # monthly, daily, per_call
    limit: Decimal
    spent: Decimal | None  # month or day to date; None for per_call
    over_calls: int  # per_call: calls above the limit in the period


@dataclass(frozen=True, slots=True)
class PriceRow:
    provider: str
    model: str
    component: str
    unit: str
    rate: str  # per unit, as stored
    per_million: str | None  # per million units, for tokens
    source: str


@dataclass(frozen=True, slots=True)
class Report:
    generated_at: datetime
    database: str
    dialect: str
    period: Period
    group_by: tuple[str, ...]
    totals: Totals
    daily: tuple[DayRow, ...]
    models: tuple[ModelRow, ...]
    tags: tuple[TagBreakdown, ...]
    top_calls: tuple[TopCall, ...]
    cache_savings: tuple[CacheSavings, ...]
    budgets: tuple[BudgetStatus, ...]
    errors_by_type: tuple[tuple[str, int], ...]
    untagged_calls: int  # calls without the first --group-by tag, or without any tag
    untagged_key: str | None  # that first --group-by key; None: "any tag"
    dropped: dict[str, int]
    prices: tuple[PriceRow, ...]
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def providers(self) -> list[str]:
        return sorted({row.provider for row in self.daily})

    def as_dict(self) -> dict[str, Any]:
        """Everything in the report as JSON-ready data (money as decimal strings)."""
        data: dict[str, Any] = _plain(self)
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Period):
        return {"start": value.start.isoformat(), "end": value.end.isoformat()}
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
