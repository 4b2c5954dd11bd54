"""Spend arithmetic for the report: exact money from database values, sums of Spend, the daily grid, tag tables.

The queries return sums per slice; everything the report derives from them
(totals, per-model and per-day rows, "untagged" and "all other values") is
computed here, in Python, from those few rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from ._model import DayRow, ModelRow, Period, Spend, TagBreakdown, TagRow

_PLACES = Decimal("1e-12")


def money(value: Any) -> Decimal:
    """A database sum or cost as an exact Decimal (NULL is 0; SQLite floats rounded to 12 places)."""
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value)).quantize(_PLACES).normalize()
    return Decimal(str(value))


def count(value: Any) -> int:
    """A database count or sum of integers (NULL is 0)."""
    return 0 if value is None else int(value)


def spend_of(row: Sequence[Any]) -> Spend:
    """The Spend of five columns: calls, cost, input tokens, output tokens, unpriced calls."""
    return Spend(count(row[0]), money(row[1]), count(row[2]), count(row[3]), count(row[4]))


def add(a: Spend, b: Spend) -> Spend:
    return Spend(
        a.calls + b.calls,
        a.cost + b.cost,
        a.input_tokens + b.input_tokens,
        a.output_tokens + b.output_tokens,
        a.unpriced_calls + b.unpriced_calls,
    )


def minus(a: Spend, b: Spend) -> Spend:
    return Spend(
        a.calls - b.calls,
        a.cost - b.cost,
        a.input_tokens - b.input_tokens,
        a.output_tokens - b.output_tokens,
        a.unpriced_calls - b.unpriced_calls,
    )


def total(spends: Iterable[Spend]) -> Spend:
    result = Spend()
    for spend in spends:
        result = add(result, spend)
    return result


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


class DailyGrid:
    """The daily pass's running sums: per (provider, model), per (day, provider), failed calls per error type."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str], _ModelTotals] = {}
        self._daily: dict[tuple[str, str], Spend] = {}
        self._errors: dict[str, int] = {}

    def add(self, day: str, rows: Iterable[Sequence[Any]]) -> None:
        """Fold one day's rows: provider, model, error type, five spend sums, then seven counts."""
        for r in rows:
            provider, model, error_type = str(r[0]), str(r[1]), r[2]
            spend = spend_of(r[3:8])
            cache_read, reasoning, partial, failed, streams, silent, no_usage = map(count, r[8:15])
            if failed:
                kind = "unknown" if error_type is None else str(error_type)
                self._errors[kind] = self._errors.get(kind, 0) + failed
            m = self._models.setdefault((provider, model), _ModelTotals())
            m.spend = add(m.spend, spend)
            m.cache_read += cache_read
            m.reasoning += reasoning
            m.partial += partial
            m.errors += failed
            m.streams += streams
            m.streams_without_usage += silent
            m.without_usage += no_usage
            self._daily[(day, provider)] = add(self._daily.get((day, provider), Spend()), spend)

    def models(self) -> list[ModelRow]:
        """Spend by model, the most expensive first."""
        rows = [
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
            for (provider, model), m in self._models.items()
        ]
        rows.sort(key=lambda m: (-m.spend.cost, -m.spend.calls, m.provider, m.model))
        return rows

    def days(self) -> list[DayRow]:
        """Spend by (day, provider), in order."""
        return [
            DayRow(day, provider, spend.cost, spend.calls)
            for (day, provider), spend in sorted(self._daily.items())
        ]

    def errors(self) -> list[tuple[str, int]]:
        """Failed calls per error type, the most frequent first."""
        return sorted(self._errors.items(), key=lambda kv: (-kv[1], kv[0]))


def tag_breakdown(key: str, named: list[TagRow], tagged: Spend, whole: Spend) -> TagBreakdown:
    """Assemble one key's table: untagged (whole - tagged) first, the named values, the rest as other."""
    untagged = minus(whole, tagged)
    other = minus(tagged, total(v.spend for v in named))
    ordered = ([TagRow(None, untagged)] if untagged.calls else []) + named
    return TagBreakdown(key, tuple(ordered), other, untagged)
