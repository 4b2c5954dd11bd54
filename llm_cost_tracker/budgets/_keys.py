"""Which budget totals a call counts against: the period (UTC month, day) and scope (global, tag=value).

A key is ``(budget_type, period, scope)``. The preflight looks keys up on
every request, so the current period keeps the keys for each combination of
budgeted tag values it has seen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal

from ._model import GLOBAL_SCOPE, Budgets, BudgetType

Key = tuple[str, str, str]  # (budget_type, period, scope)
KeyEntry = tuple[Key, BudgetType, str, Decimal]  # (key, budget_type, scope, limit)
MAX_TAG_COMBINATIONS = 10_000  # cached preflight keys per period; past it the cache starts over


def floor_float(amount: Decimal) -> float:
    """Return a float no greater than ``amount`` (float() rounds to nearest: step one below)."""
    return math.nextafter(float(amount), -math.inf)


class Period:
    """The current UTC month and day and the preflight keys that depend on them.

    Replaced as a whole when the day changes, so a preflight that read it
    never mixes one day's keys with the next day's.
    """

    __slots__ = ("by_values", "day", "global_keys", "last_tags", "month", "until")

    def __init__(self, until: float, month: str, day: str, global_keys: list[KeyEntry]) -> None:
        self.until = until
        self.month = month
        self.day = day
        self.global_keys = global_keys
        # Keys for each combination of budgeted tag values seen this period.
        self.by_values: dict[tuple[str | None, ...], list[KeyEntry]] = {}
        # The last tags mapping seen and its keys: a with_tags() scope hands
        # out the same mapping object for every call inside it.
        self.last_tags: tuple[object, list[KeyEntry]] = (None, global_keys)


class BudgetKeys:
    """The period budgets of one ``Budgets``, and the keys a call with given tags counts against."""

    __slots__ = ("limits", "tag_keys")

    def __init__(self, budgets: Budgets) -> None:
        self.tag_keys = tuple(budgets.per_tag)
        # (budget_type, limit, tag key or None), daily before monthly, global before per tag.
        self.limits: list[tuple[BudgetType, Decimal, str | None]] = []
        for budget_type in ("daily", "monthly"):
            limit = budgets.limits(budget_type)
            if limit is not None:
                self.limits.append((budget_type, limit, None))
            for tag_key in budgets.per_tag:
                limit = budgets.limits(budget_type, tag_key)
                if limit is not None:
                    self.limits.append((budget_type, limit, tag_key))

    def for_tags(self, month: str, day: str, tags: Mapping[str, str]) -> list[KeyEntry]:
        """The keys of a call in ``month`` and ``day`` carrying ``tags``."""
        keys: list[KeyEntry] = []
        for budget_type, limit, tag_key in self.limits:
            if tag_key is None:
                scope = GLOBAL_SCOPE
            else:
                value = tags.get(tag_key)
                if value is None:
                    continue
                scope = f"{tag_key}={value}"
            period = day if budget_type == "daily" else month
            keys.append(((budget_type, period, scope), budget_type, scope, limit))
        return keys

    def tagged(self, period: Period, tags: Mapping[str, str]) -> list[KeyEntry]:
        """The preflight keys for a call carrying ``tags``: global ones plus its per-tag budgets."""
        last = period.last_tags
        if last[0] is tags:
            return last[1]
        values = tuple(map(tags.get, self.tag_keys))
        keys = period.by_values.get(values)
        if keys is None:
            keys = self.for_tags(period.month, period.day, tags)
            if len(period.by_values) >= MAX_TAG_COMBINATIONS:
                period.by_values.clear()
            period.by_values[values] = keys
        period.last_tags = (tags, keys)
        return keys
