"""The budget checks that run in the caller's thread: running totals, crossings, raise and block.

A ``BudgetGuard`` keeps, per budget and period, the spend this process sees:
with a SQL database, the last totals read from it (``_budget_shared``) plus this
process's spend not yet seen there; without one, everything spent in-process.
``after_call`` adds a priced call and reports crossings; ``before_call`` refuses
a request whose estimate does not fit in ``on_exceed="block"`` mode. Both read
memory only: no database round trip ever happens on the caller's thread.

The preflight is on every request's path, so it decides in floats when the
answer is clear: each budget's room (limit minus spent) is kept as a float
rounded down and the model's rates as floats rounded up. When every room could
take twice the most any request to the model can cost, the request is not even
measured; when twice its estimate fits, it goes ahead. Anything closer is
decided exactly, in Decimal, with the pricing engine's own estimate.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._errors import BudgetExceededError
from .._events import UsageEvent
from .._stats import STATS
from .._tags import Tags
from ._estimate import (
    CostEstimator,
)
from ._keys import BudgetKeys, Key, KeyEntry, Period, floor_float
from ._model import (
    GLOBAL_SCOPE,
    BudgetAlert,
    Budgets,
    BudgetType,
    BudgetView,
    day_of,
    month_of,
    notify,
)

if TYPE_CHECKING:
    from .._api import Runtime
    from ._shared import SharedTotals

_logger = logging.getLogger(__name__)

_ZERO = Decimal(0)
MAX_PENDING = 200_000  # local events awaiting their database row; past it the oldest are forgotten


class BudgetGuard:
    """Check calls against ``budgets``; shared with other processes when ``shared`` is given."""

    def __init__(
        self,
        budgets: Budgets,
        *,
        price: Callable[[UsageEvent], UsageEvent] | None = None,
        estimator: CostEstimator | None = None,
        tags: Callable[[], Tags] | None = None,
    ) -> None:
        self.budgets = budgets
        self.price = price
        self.estimator = estimator
        self._tags = tags
        self.shared: SharedTotals | None = None
        self._lock = threading.Lock()
        # Spend this process added: all of it in-process; with a database, only
        # what the last read did not include yet (``_pending`` says which calls).
        self._local: dict[Key, Decimal] = {}
        self._db: dict[Key, Decimal] = {}
        # event id -> (cost, keys) once counted; None while reserved by prepare()
        # (priced, about to be emitted, not counted yet).
        self._pending: dict[str, tuple[Decimal, tuple[Key, ...]] | None] = {}
        # Reserved calls a database read already included before they were counted.
        self._in_db_early: set[str] = set()
        self._alerted: set[Key] = set()
        self._last_event: dict[Key, UsageEvent] = {}
        # Room left under each budget (limit - spent) as a float rounded down,
        # for the preflight's quick test. Only ever written under ``_lock``, by
        # whatever changes the totals; a key missing here is filled on demand.
        self._room: dict[Key, float] = {}
        self.unpriced_calls = 0
        self.refreshed_at: datetime | None = None
        self.keys = BudgetKeys(budgets)
        self._per_call_floor = None if budgets.per_call is None else floor_float(budgets.per_call)
        self._period = Period(0.0, "", "", [])

    # -- shared plumbing ------------------------------------------------------

    def attach(self, shared: SharedTotals) -> None:
        self.shared = shared

    def stages(self) -> list[Callable[[UsageEvent], UsageEvent | None]]:
        """The bus stages this guard needs after pricing: in "notify" mode it counts there."""
        if self.budgets.on_exceed != "notify":
            return []

        def budgets(event: UsageEvent) -> UsageEvent:
            self.after_call(event)
            return event

        return [budgets]

    def _spent(self, key: Key) -> Decimal:
        return self._db.get(key, _ZERO) + self._local.get(key, _ZERO)

    def _current_period(self) -> Period:
        period = self._period
        now = time.time()
        if now >= period.until:
            # Rolled every hour: the cached rates go too, since prices can
            # change on the hour (time-of-day periods, a new catalog version).
            moment = datetime.fromtimestamp(now, timezone.utc)
            month, day = month_of(moment), day_of(moment)
            next_hour = (now // 3600 + 1) * 3600
            new = Period(next_hour, month, day, self.keys.for_tags(month, day, {}))
            self._period = new
            if self.estimator is not None:
                self.estimator.forget()
            if day != period.day:
                self._forget_past_periods(month, day)
            period = new
        return period

    def _current_periods(self) -> tuple[str, str]:
        period = self._current_period()
        return period.month, period.day

    def _forget_past_periods(self, month: str, day: str) -> None:
        # Once a day: totals of finished periods can no longer trip anything.
        with self._lock:
            for table in (self._local, self._db, self._last_event):
                for key in [k for k in table if k[1] not in (month, day)]:
                    del table[key]
            self._alerted = {k for k in self._alerted if k[1] in (month, day)}
            self._room.clear()

    # -- after a call ---------------------------------------------------------

    def after_call(self, event: UsageEvent) -> None:
        """Add a recorded call's cost; report crossings; in "raise" mode raise when over a limit."""
        cost = event.cost.total
        if cost is None:
            # Unknown cost never draws a budget down, but it is reported (a
            # failed call without usage is not billed, so it is not counted).
            if event.usage is not None or event.status == "ok":
                with self._lock:
                    self.unpriced_calls += 1
                STATS.incr("budget.unpriced_calls")
            return
        budgets = self.budgets
        moment = event.occurred_at.astimezone(timezone.utc)
        current = self._current_periods()
        # Only the running month and day are budgeted: a backfilled call from an
        # earlier period is recorded but checks nothing.
        keys = [
            k
            for k in self.keys.for_tags(month_of(moment), day_of(moment), event.tags)
            if k[0][1] in current
        ]
        exceeded: list[tuple[BudgetType, str, Decimal, Decimal]] = []
        crossed: list[BudgetAlert] = []
        if budgets.per_call is not None and cost > budgets.per_call:
            exceeded.append(("per_call", GLOBAL_SCOPE, cost, budgets.per_call))
            crossed.append(
                BudgetAlert(
                    "per_call",
                    GLOBAL_SCOPE,
                    event.id,
                    cost,
                    budgets.per_call,
                    event,
                    budgets.on_exceed,
                )
            )
        shared = self.shared is not None
        with self._lock:
            # A reserved call the database already counted must not be added again.
            in_db = shared and event.id in self._in_db_early
            if in_db:
                self._in_db_early.discard(event.id)
            self._pending.pop(event.id, None)
            for key, budget_type, scope, limit in keys:
                if in_db:
                    total = self._spent(key)
                else:
                    total = self._spent(key) + cost
                    self._local[key] = self._local.get(key, _ZERO) + cost
                    self._room[key] = floor_float(limit - total)
                if shared:
                    self._last_event[key] = event
                if total > limit:
                    exceeded.append((budget_type, scope, total, limit))
                    if key not in self._alerted:
                        self._alerted.add(key)
                        crossed.append(
                            BudgetAlert(
                                budget_type, scope, key[1], total, limit, event, budgets.on_exceed
                            )
                        )
            if shared and keys and not in_db:
                self._remember_pending(event.id, cost, tuple(k[0] for k in keys))
        if crossed:
            if self.shared is not None:
                self.shared.claim(crossed)
            else:
                for alert in crossed:
                    notify(self.budgets, alert)
        if exceeded and budgets.on_exceed == "raise":
            budget_type, scope, total, limit = exceeded[0]
            STATS.incr("budget.raised")
            raise BudgetExceededError(
                budget_type=budget_type, scope=scope, spent=total, limit=limit, event=event
            )

    def prepare(self, event: UsageEvent) -> UsageEvent:
        """Price ``event`` before it is emitted and, with shared totals, reserve its pending slot.

        Reserving before the bus can export it means a database read that
        already includes the call is always matched with it: never counted twice.
        """
        if self.price is not None:
            event = self.price(event)
        if self.shared is not None and event.cost.total is not None:
            with self._lock:
                self._pending[event.id] = None
        return event

    def _remember_pending(self, event_id: str, cost: Decimal, keys: tuple[Key, ...]) -> None:
        pending = self._pending
        pending[event_id] = (cost, keys)
        if len(pending) > MAX_PENDING:
            oldest = next(iter(pending))
            self._forget_locked(oldest)
            STATS.incr("budget.pending_forgotten")

    def _forget_locked(self, event_id: str) -> None:
        entry = self._pending.pop(event_id)
        if entry is None:
            return
        cost, keys = entry
        for key in keys:
            self._room.pop(key, None)
            left = self._local.get(key, _ZERO) - cost
            if left:
                self._local[key] = left
            else:
                self._local.pop(key, None)

    # -- before a call ----------------------------------------------------------

    def before_call(
        self,
        provider: str,
        model: str | None,
        request: Mapping[str, Any],
        tags: Tags | None = None,
    ) -> None:
        """Raise BudgetExceededError when a request's estimated cost does not fit ("block" mode).

        ``tags``: the tags the call carries (instrumentation passes the ones it
        snapshotted); when None, those in force now are read.

        Three steps, each only when the one before cannot answer: (1) every
        budget has room for twice the most any request to this model can cost
        (its largest input, tiers included, plus the request's output cap), so
        the request is not even measured; (2) twice the request's quick estimate
        fits in every room; (3) the exact decision, in Decimal, with the
        pricing engine's own estimate. Steps 1 and 2 compare floats rounded
        towards blocking; step 3 is the documented rule.
        """
        period = self._period
        if time.time() >= period.until:
            period = self._current_period()
        reader = self._tags
        if tags is None and self.keys.tag_keys and reader is not None:
            tags = reader()
        if self.keys.tag_keys and tags is not None:
            keys = self.keys.tagged(period, tags)
        else:
            keys = period.global_keys
        per_call = self._per_call_floor
        if not keys and per_call is None:
            return
        least = math.inf if per_call is None else per_call  # the smallest room of all
        room = self._room
        for entry in keys:
            left = room.get(entry[0])
            if left is None:
                left = self._fill_room(entry[0], entry[3])
            if left < least:
                least = left
        estimator = self.estimator
        if estimator is None or not model:
            fits, estimate = (
                least > 0.0,
                None,
            )  # no price: only a budget already over its limit blocks
        else:
            fits, estimate = estimator.bound(provider, model, request, least)
        if not fits:
            self._check_exactly(keys, estimate)

    def _fill_room(self, key: Key, limit: Decimal) -> float:
        with self._lock:
            left = floor_float(limit - self._spent(key))
            self._room[key] = left
        return left

    def _check_exactly(self, keys: list[KeyEntry], estimate: Decimal | None) -> None:
        """Block when ``estimate > per_call`` or ``spent + estimate > limit``, in exact Decimal.

        ``estimate`` is the pricing engine's own (tiers applied); None when the
        model has no known price, which blocks only a budget already over its limit.
        """
        per_call = self.budgets.per_call
        if per_call is not None and estimate is not None and estimate > per_call:
            self._block("per_call", GLOBAL_SCOPE, estimate, per_call, estimate)
        cost = _ZERO if estimate is None else estimate
        db, local = self._db, self._local
        for key, budget_type, scope, limit in keys:
            spent = db.get(key, _ZERO) + local.get(key, _ZERO)
            if spent + cost > limit:
                self._block(budget_type, scope, spent, limit, estimate)

    def _block(
        self,
        budget_type: BudgetType,
        scope: str,
        spent: Decimal,
        limit: Decimal,
        estimate: Decimal | None,
    ) -> None:
        STATS.incr("budget.blocked")
        raise BudgetExceededError(
            budget_type=budget_type,
            scope=scope,
            spent=spent,
            limit=limit,
            estimate=estimate,
            blocked=True,
        )

    # -- the shared totals ------------------------------------------------------

    def pending_ids(self) -> list[str]:
        with self._lock:
            return list(self._pending)

    def apply_totals(self, totals: dict[Key, Decimal], confirmed: list[str]) -> None:
        """Install totals read from the database; ``confirmed`` calls are in them now, so drop them locally."""
        month, day = self._current_periods()
        alerts: list[BudgetAlert] = []
        with self._lock:
            self._db = totals
            self._room.clear()
            for event_id in confirmed:
                if event_id not in self._pending:
                    continue
                if self._pending[event_id] is None:
                    # Read before its after_call counted it: tell after_call not to.
                    if len(self._in_db_early) >= MAX_PENDING:
                        self._in_db_early.clear()
                    self._in_db_early.add(event_id)
                self._forget_locked(event_id)
            # Calls of a period that is over no longer count against anything.
            stale = [
                event_id
                for event_id, entry in self._pending.items()
                if entry is not None and all(k[1] not in (month, day) for k in entry[1])
            ]
            for event_id in stale:
                self._forget_locked(event_id)
            self.refreshed_at = datetime.now(timezone.utc)
            # A crossing every process saw only from the database (each call
            # looked under the limit when it was made) is still reported once.
            for key, event in list(self._last_event.items()):
                if key[1] not in (month, day):
                    del self._last_event[key]
                    continue
                limit = self._limit_of(key)
                if limit is None or key in self._alerted:
                    continue
                total = self._spent(key)
                if total > limit:
                    self._alerted.add(key)
                    alerts.append(
                        BudgetAlert(
                            key[0],  # type: ignore[arg-type]
                            key[2],
                            key[1],
                            total,
                            limit,
                            event,
                            self.budgets.on_exceed,
                        )
                    )
        if alerts and self.shared is not None:
            self.shared.claim(alerts)

    def _limit_of(self, key: Key) -> Decimal | None:
        budget_type, _, scope = key
        if scope == GLOBAL_SCOPE:
            return self.budgets.limits(budget_type)  # type: ignore[arg-type]
        tag_key = scope.partition("=")[0]
        return self.budgets.limits(budget_type, tag_key)  # type: ignore[arg-type]

    def views(self) -> list[BudgetView]:
        """Every period budget with spend seen now (per-tag: each value seen so far)."""
        month, day = self._current_periods()
        with self._lock:
            keys = set(self._db) | set(self._local)
            keys |= {
                (t, day if t == "daily" else month, GLOBAL_SCOPE)
                for t, _, k in self.keys.limits
                if k is None
            }
            result = []
            for key in sorted(keys):
                if key[1] not in (month, day):
                    continue
                limit = self._limit_of(key)
                if limit is None:
                    continue
                result.append(
                    BudgetView(
                        key[0],  # type: ignore[arg-type]
                        key[2],
                        key[1],
                        self._spent(key),
                        limit,
                        self.unpriced_calls,
                        self.shared is not None,
                        self.refreshed_at,
                    )
                )
        return result

    def activate(self, tags: Callable[[], Tags]) -> None:
        """Become the guard ``status()`` and ``check()`` answer for; read calls' tags with ``tags()``."""
        global _active
        _active = self
        self._tags = tags
        if self.shared is not None:
            self.shared.start()

    def flush(self, timeout: float | None) -> bool:
        """Wait until every crossing found so far has been claimed and its callback run."""
        return True if self.shared is None else self.shared.flush(timeout)

    def close(self) -> None:
        global _active
        if _active is self:
            _active = None
        if self.shared is not None:
            self.shared.stop()

    def _after_fork_in_child(self) -> None:
        # The parent reports its own pending calls; the child starts with fresh locks.
        self._lock = threading.Lock()
        if self.shared is not None:
            self._pending.clear()
            self._local.clear()
            self._room.clear()
            self.shared.after_fork()


def guard_of(runtime: Runtime) -> BudgetGuard | None:
    """Return the guard installed on ``runtime``, if budgets are configured."""
    guard = getattr(runtime, "budget_guard", None)
    return guard if isinstance(guard, BudgetGuard) else None


_active: BudgetGuard | None = None


def active_guard() -> BudgetGuard | None:
    """The guard of the pipeline ``configure()`` built, if it has budgets (``status()``, ``check()``)."""
    return _active
