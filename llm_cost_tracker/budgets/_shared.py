"""Budget totals shared through the SQL database, read by one background thread per process.

Every ``refresh_interval`` seconds the thread reads month-to-date and
day-to-date spend (overall and per budgeted tag) from the contract tables, plus
which of this process's recent calls those totals already include, in one
snapshot transaction; the guard then adds only the rest. It also claims each
crossing in ``llm_cost_tracker_budget_alerts`` (insert-or-skip on a key of
budget, scope, period and limit), so one callback fires per crossing across
every process sharing the database.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import ledger
from .._stats import STATS
from .._suppress import suppressed
from ._model import GLOBAL_SCOPE, BudgetAlert, day_of, month_of, notify, period_bounds

if TYPE_CHECKING:
    from ._guard import BudgetGuard
    from ._keys import Key

_logger = logging.getLogger(__name__)

ALERTS = ledger.BUDGET_ALERTS
ALERT_COLUMNS = (
    "id",
    "budget_type",
    "scope",
    "period",
    "limit_amount",
    "total",
    "event_id",
    "fired_at",
)
ALERTS_TABLE_SQL = ledger.BUDGET_ALERTS_TABLE_SQL
_PLACES = Decimal("0.000000000001")
ID_CHUNK = 500  # event ids per "which of these are in the table" query
# Dialects whose exporter keeps llm_cost_tracker_daily_rollups in the same
# transaction as the calls (llm_cost_tracker/ledger/_rollups.py, migration 0005_daily_rollups).
ROLLUP_DIALECTS = frozenset({"postgres", "mysql"})

# How each dialect opens a read-only snapshot transaction on an autocommit connection.
SNAPSHOT_BEGIN = {
    "sqlite": "BEGIN",
    "postgres": "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    "mysql": "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
}


def _autocommit(connection: Any, dialect: str) -> None:
    if dialect == "postgres":
        connection.autocommit = True
    elif dialect == "mysql":
        connection.autocommit(True)
    # sqlite: ledger.connect() already opens in autocommit mode.


def _decimal(value: object) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    # SQLite sums NUMERIC as a float (about 15 significant digits): round to the
    # 12 decimals the other databases store.
    return Decimal(str(value)).quantize(_PLACES)


class SpendQueries:
    """The SQL that reads month-to-date and day-to-date spend, overall and per value of a tag.

    Overall totals come from the daily rollups where the exporter keeps them
    (one row per day and model, so the read costs the same all month long),
    else from the calls themselves. Per-tag totals always come from the calls.
    """

    def __init__(self, dialect: ledger.Dialect) -> None:
        self.dialect = dialect
        p = dialect.placeholder
        key, value = dialect.quote("key"), dialect.quote("value")
        self.uses_rollups = dialect.name in ROLLUP_DIALECTS
        if self.uses_rollups:
            self.global_sql = (
                f"SELECT SUM(total_cost), SUM(CASE WHEN day >= {p} THEN total_cost END) "
                f"FROM {ledger.ROLLUPS} WHERE day >= {p} AND day < {p}"
            )
        else:
            self.global_sql = (
                f"SELECT SUM(total_cost), SUM(CASE WHEN occurred_at >= {p} THEN total_cost END) "
                f"FROM {ledger.CALLS} WHERE occurred_at >= {p} AND occurred_at < {p} "
                "AND total_cost IS NOT NULL"
            )
        self.tag_sql = (
            f"SELECT t.{value}, SUM(c.total_cost), "
            f"SUM(CASE WHEN c.occurred_at >= {p} THEN c.total_cost END) "
            f"FROM {ledger.CALLS} c JOIN {ledger.TAGS} t ON t.call_id = c.id "
            f"WHERE t.{key} = {p} AND c.occurred_at >= {p} AND c.occurred_at < {p} "
            f"AND c.total_cost IS NOT NULL GROUP BY t.{value}"
        )

    def read(self, cursor: Any, tag_keys: Sequence[str], now: datetime) -> dict[Key, Decimal]:
        """Return the spend of the month and day around ``now``: overall, and per value of each tag key."""
        totals: dict[Key, Decimal] = {}
        month_start, next_month, day_start, _ = period_bounds(now)
        month, day = month_of(now), day_of(now)
        convert = self.dialect.convert_time
        if self.uses_rollups:
            bounds: tuple[Any, ...] = (day_start.date(), month_start.date(), next_month.date())
        else:
            bounds = (convert(day_start), convert(month_start), convert(next_month))
        cursor.execute(self.global_sql, bounds)
        row = cursor.fetchone()
        if row is not None:
            totals[("monthly", month, GLOBAL_SCOPE)] = _decimal(row[0])
            totals[("daily", day, GLOBAL_SCOPE)] = _decimal(row[1])
        for tag_key in tag_keys:
            cursor.execute(
                self.tag_sql,
                (convert(day_start), tag_key, convert(month_start), convert(next_month)),
            )
            for value, month_total, day_total in cursor.fetchall():
                scope = f"{tag_key}={value}"
                totals[("monthly", month, scope)] = _decimal(month_total)
                totals[("daily", day, scope)] = _decimal(day_total)
        return totals


def alert_id(alert: BudgetAlert) -> str:
    """The claim key: one row per budget, scope, period and limit, whoever crosses it first."""
    raw = f"{alert.budget_type}\x1f{alert.scope}\x1f{alert.period}\x1f{alert.limit}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]


class SharedTotals:
    """Keep ``guard``'s database totals fresh and claim crossings, on one daemon thread."""

    def __init__(
        self,
        guard: BudgetGuard,
        url: str,
        *,
        interval: float,
    ) -> None:
        self.guard = guard
        self.url = url
        self.interval = interval
        self.dialect = ledger.DIALECTS[ledger.dialect_name_for_url(url)]
        self._connection: Any = None
        self._claims: collections.deque[BudgetAlert] = collections.deque(maxlen=10_000)
        # claims queued / settled (claimed and fired, or lost) so far: flush() waits on them
        self._claims_queued = 0
        self._claims_settled = 0
        self._settled = threading.Condition()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._io_held_for_fork = False
        self._alerts_ready = False
        self.refreshes = 0
        self._begun = 0  # number of the refresh started last
        self._completed = 0  # number of the last refresh that completed
        self.last_refresh_seconds = 0.0
        self._refreshed = threading.Condition()
        self._tag_keys = sorted(guard.budgets.per_tag)
        self._queries = SpendQueries(self.dialect)
        self._insert_alert = self.dialect.insert_sql(ALERTS, ALERT_COLUMNS)

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (idempotent; configure() calls it)."""
        with self._start_lock:
            if self._thread is not None or self._stopped:
                return
            thread = threading.Thread(
                target=self._run, name="llm-cost-tracker-budgets", daemon=True
            )
            thread.start()
            self._thread = thread

    def stop(self, timeout: float = 2.0) -> None:
        self._stopped = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                return  # still in a query: the thread closes the connection when it ends
        self._close()

    def before_fork(self) -> None:
        # SQLite keeps its file-lock bookkeeping per process: forking while this
        # thread is inside a read leaves the child's own connections waiting on
        # a lock nobody in the child holds. Wait (briefly) for the read to end.
        if self.dialect.name == "sqlite":
            self._io_held_for_fork = self._io_lock.acquire(timeout=2.0)

    def after_fork_in_parent(self) -> None:
        if self._io_held_for_fork:
            self._io_held_for_fork = False
            self._io_lock.release()

    def after_fork(self) -> None:
        # The parent's thread and connection do not exist in the child: start over.
        self._io_lock = threading.Lock()
        self._io_held_for_fork = False
        self._connection = None
        self._thread = None
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._refreshed = threading.Condition()
        self._settled = threading.Condition()
        self._claims.clear()
        self._claims_queued = self._claims_settled = 0
        if not self._stopped:
            self.start()

    def claim(self, alerts: Sequence[BudgetAlert]) -> None:
        """Queue crossings to claim in the database; the thread fires the ones this process wins."""
        with self._settled:
            dropped = max(0, len(self._claims) + len(alerts) - (self._claims.maxlen or 0))
            self._claims.extend(alerts)
            self._claims_queued += len(alerts)
            self._claims_settled += dropped  # pushed out of the full deque: never claimed
        if dropped:
            STATS.incr("dropped.budget_claims", dropped)
        self._wake.set()

    def flush(self, timeout: float | None) -> bool:
        """Wait until the crossings queued so far are claimed and their callbacks have run."""
        with self._settled:
            target = self._claims_queued
            if self._claims_settled >= target:
                return True
            self._wake.set()
            return self._settled.wait_for(lambda: self._claims_settled >= target, timeout)

    def _settle(self, count: int) -> None:
        with self._settled:
            self._claims_settled += count
            self._settled.notify_all()

    def wait_for_refresh(self, timeout: float) -> bool:
        """Block until a refresh that starts after this call completes; return whether one did.

        For tests and diagnostics: it waits, so never call it on a hot path.
        """
        with self._refreshed:
            after = self._begun
            return self._refreshed.wait_for(lambda: self._completed > after, timeout)

    # -- the thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._close()

    def _loop(self) -> None:
        with suppressed():
            next_refresh = 0.0
            while not self._stopped:
                now = time.monotonic()
                if now >= next_refresh:
                    self._step(
                        self._refresh, "errors.budget.refresh", "reading budget totals failed"
                    )
                    next_refresh = time.monotonic() + self.interval
                if self._claims:
                    self._step(
                        self._claim_pending, "errors.budget.claim", "claiming a crossing failed"
                    )
                self._wake.wait(max(0.0, next_refresh - time.monotonic()))
                self._wake.clear()

    def _step(self, work: Callable[[], None], counter: str, message: str) -> None:
        # Held while this thread talks to the database: a fork waits for it
        # (see _before_fork), so a child never inherits a SQLite lock mid-read.
        with self._io_lock:
            try:
                work()
            except Exception:
                STATS.failure(counter, message)
                self._close()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                STATS.incr("errors.budget.close")

    def _cursor(self) -> Any:
        """A cursor on this thread's connection; None while a SQLite ledger does not exist yet."""
        if self._connection is None:
            if self.dialect.name == "sqlite":
                # A plain reader: creating the file, switching it to WAL and
                # migrating it are the exporter's job, and racing it for them
                # would make its first batch fail with "database is locked".
                path = ledger.sqlite_path(self.url)
                if not os.path.exists(path):
                    return None
                connection: Any = sqlite3.connect(
                    path, timeout=30.0, isolation_level=None, check_same_thread=False
                )
            else:
                connection = ledger.connect(self.url)
                try:
                    # The exporter creates the tables on its first batch; this
                    # process may read before it has written anything.
                    ledger.migrate_connection(connection, self.dialect.name)
                    _autocommit(connection, self.dialect.name)
                except BaseException:
                    connection.close()
                    raise
            self._connection = connection
        return self._connection.cursor()

    def _has_tables(self, cursor: Any) -> bool:
        if self.dialect.name != "sqlite":
            return True  # migrated in _cursor()
        cursor.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)",
            (ledger.CALLS, ledger.TAGS),
        )
        row = cursor.fetchone()
        return row is not None and row[0] == 2

    def _refresh(self) -> None:
        started = time.perf_counter()
        with self._refreshed:
            self._begun += 1
            number = self._begun
        totals: dict[Key, Decimal] = {}
        confirmed: list[str] = []
        cursor = self._cursor()
        if cursor is not None:  # None: no ledger yet, nothing spent anywhere
            try:
                cursor.execute(SNAPSHOT_BEGIN[self.dialect.name])
                try:
                    if self._has_tables(cursor):
                        self._read(cursor, totals, confirmed)
                finally:
                    cursor.execute("COMMIT")
            finally:
                cursor.close()
        self.guard.apply_totals(totals, confirmed)
        self.last_refresh_seconds = time.perf_counter() - started
        with self._refreshed:
            self.refreshes += 1
            self._completed = number
            self._refreshed.notify_all()

    def _read(self, cursor: Any, totals: dict[Key, Decimal], confirmed: list[str]) -> None:
        """Read the totals, then which pending calls they include, inside one snapshot."""
        totals.update(self._queries.read(cursor, self._tag_keys, datetime.now(timezone.utc)))
        # Read after the totals, inside the same snapshot: every call reserved
        # before the snapshot began is asked about.
        pending = self.guard.pending_ids()
        p = self.dialect.placeholder
        for start in range(0, len(pending), ID_CHUNK):
            chunk = pending[start : start + ID_CHUNK]
            marks = ", ".join([p] * len(chunk))
            cursor.execute(f"SELECT id FROM {ledger.CALLS} WHERE id IN ({marks})", chunk)
            confirmed.extend(str(r[0]) for r in cursor.fetchall())

    def _claim_pending(self) -> None:
        cursor = self._cursor()
        if cursor is None:
            return  # no ledger yet: claim once the exporter has created it
        try:
            if not self._alerts_ready:
                try:
                    cursor.execute(ALERTS_TABLE_SQL.format(**self.dialect.types))
                except Exception:
                    # Two processes creating it at once: on PostgreSQL the loser's
                    # CREATE fails even with IF NOT EXISTS, and the table is there.
                    _logger.debug("creating %s raced with another process", ALERTS, exc_info=True)
                self._alerts_ready = True
            convert_time = self.dialect.convert_time
            convert_decimal = self.dialect.convert_decimal
            while self._claims:
                alert = self._claims.popleft()
                try:
                    cursor.execute(
                        self._insert_alert,
                        (
                            alert_id(alert),
                            alert.budget_type,
                            alert.scope,
                            alert.period,
                            convert_decimal(alert.limit),
                            convert_decimal(alert.total),
                            alert.event.id,
                            convert_time(datetime.now(timezone.utc)),
                        ),
                    )
                except BaseException:
                    self._claims.appendleft(alert)  # try again after reconnecting
                    raise
                try:
                    if cursor.rowcount == 1:
                        notify(self.guard.budgets, alert)
                    else:
                        STATS.incr("budget.crossings_claimed_elsewhere")
                finally:
                    self._settle(1)
        finally:
            cursor.close()
