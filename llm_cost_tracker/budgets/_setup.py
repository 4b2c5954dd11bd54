"""Building a budget guard for a pipeline, and keeping the live ones right across ``fork()``."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable

from .._errors import ConfigurationError
from .._events import UsageEvent
from ._estimate import CostEstimator
from ._guard import BudgetGuard
from ._model import Budgets

_GUARDS: weakref.WeakSet[BudgetGuard] = weakref.WeakSet()


def _before_fork() -> None:
    for guard in list(_GUARDS):
        if guard.shared is not None:
            guard.shared.before_fork()


def _after_fork_in_parent() -> None:
    for guard in list(_GUARDS):
        if guard.shared is not None:
            guard.shared.after_fork_in_parent()


def _after_fork_in_child() -> None:
    for guard in list(_GUARDS):
        guard._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


def build_guard(
    budgets: Budgets, *, database_url: str | None, price: Callable[[UsageEvent], UsageEvent] | None
) -> BudgetGuard:
    """Build the guard for ``budgets``, sharing totals through ``database_url``; raise on a bad setting.

    ``price`` is the pricing stage (with ``estimate()``), which prices a call
    in the caller's thread when a budget must see its cost there.
    """
    if not isinstance(budgets, Budgets):
        raise ConfigurationError(
            f"budgets: expected llm_cost_tracker.Budgets(...), got {type(budgets).__name__}"
        )
    estimate = getattr(price, "estimate", None)
    estimator = CostEstimator(estimate) if estimate is not None else None
    guard = BudgetGuard(budgets, price=price, estimator=estimator)  # activate() sets its tags
    if database_url is not None:
        from .. import ledger
        from ._shared import SharedTotals

        in_memory = (
            ledger.dialect_name_for_url(database_url) == "sqlite"
            and ledger.sqlite_path(database_url) == ":memory:"
        )
        if not in_memory:
            guard.attach(SharedTotals(guard, database_url, interval=budgets.refresh_interval))
    _GUARDS.add(guard)
    return guard
