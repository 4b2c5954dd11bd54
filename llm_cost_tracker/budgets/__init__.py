"""Budgets: spending guardrails per month, per day, per call and per tag value.

``Budgets`` is the setting passed to ``configure(budgets=...)``; ``BudgetAlert``
is what a notify callback receives; ``status()`` reports the totals a process
currently sees and ``check()`` runs the preflight for a call you record
yourself. The checks live in ``_guard``, the totals shared between processes
in ``_shared``. A budget is a guardrail, not a transactional quota: see
``docs/budgets.md`` for the limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import BudgetExceededError
from ._guard import active_guard
from ._model import BudgetAlert, Budgets, BudgetView, TagLimits


def status() -> list[BudgetView]:
    """Return every budget this process tracks now, with the spend it sees (empty when none is configured)."""
    guard = active_guard()
    return [] if guard is None else guard.views()


def check(provider: str, model: str | None, request: Mapping[str, Any] | None = None) -> None:
    """Raise BudgetExceededError if a request like ``request`` would not fit the budgets now.

    The same preflight ``on_exceed="block"`` runs before every instrumented
    request, for calls you make yourself and record with ``track()``. It runs
    whatever ``on_exceed`` is. ``request`` holds the call's keyword arguments
    (``messages``, ``max_tokens``, ...); only their size is looked at. Does
    nothing when no budget is configured.
    """
    guard = active_guard()
    if guard is not None:
        guard.before_call(provider, model, request or {})


__all__ = [
    "BudgetAlert",
    "BudgetExceededError",
    "BudgetView",
    "Budgets",
    "TagLimits",
    "check",
    "status",
]
