"""The MySQL/MariaDB exporter (PyMySQL): multi-row INSERT per batch, one transaction, durable delivery.

A batch is written as multi-row ``INSERT`` statements into the three contract
tables plus an upsert of the daily rollups, in one transaction. A batch that
hits a row already there (a replay) is rolled back and written again with only
the events the table lacks. Plain ``INSERT`` rather than ``INSERT IGNORE``:
IGNORE would also turn a too-long or invalid value into a silent truncation,
where we want the error (and the event quarantined with its reason).

Sessions run in UTC (``time_zone = '+00:00'``) with strict SQL mode.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from typing import Any

from .. import ledger
from .._events import UsageEvent
from ..ledger._drivers import import_pymysql as _pymysql
from ..ledger._drivers import mysql_connect as connect
from ..ledger._drivers import mysql_connect_kwargs as connect_kwargs
from ..ledger._drivers import mysql_migrate as migrate
from ._delivery import DEFAULT_MAX_PENDING, DurableExporter
from ._spool import DEFAULT_MAX_SPOOL_BYTES, Spool, spool_dir_for

DIALECT = ledger.MYSQL
_DUPLICATE_KEY = 1062
# MySQL error codes worth retrying although PyMySQL files them under other classes.
_RETRYABLE = {1205, 1213}  # lock wait timeout, deadlock

_INSERT_CALLS = DIALECT.insert_sql(ledger.CALLS, ledger.call_columns(DIALECT)).replace(
    "INSERT IGNORE", "INSERT"
)
_INSERT_ITEMS = DIALECT.insert_sql(ledger.LINE_ITEMS, ledger.LINE_ITEM_COLUMNS).replace(
    "INSERT IGNORE", "INSERT"
)
_INSERT_TAGS = DIALECT.insert_sql(ledger.TAGS, ledger.TAG_COLUMNS).replace(
    "INSERT IGNORE", "INSERT"
)
_ROLLUP_UPSERT = (
    f"INSERT INTO {ledger.ROLLUPS} ({', '.join(ledger.ROLLUP_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(ledger.ROLLUP_COLUMNS))}) ON DUPLICATE KEY UPDATE "
    + ", ".join(f"{c} = {c} + VALUES({c})" for c in ledger.ROLLUP_SUMS)
)
# (calls, line items, tags, rollups): the rows of one batch.
_Rows = tuple[
    list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]
]
# Connections inherited across fork: kept referenced so the child never closes them.
_INHERITED: list[Any] = []


class _MySQLWriter:
    """The database side of MySQLExporter: one connection, multi-row inserts, error classification."""

    name = "mysql"

    def __init__(self, url: str, *, auto_migrate: bool) -> None:
        connect_kwargs(url)  # validate now, so configure() reports a bad URL
        self.url = url
        self.auto_migrate = auto_migrate
        self._connection: Any = None
        self._pid = os.getpid()
        self._migrated = False
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        connection = connect(self.url)
        if self.auto_migrate and not self._migrated:
            migrate(connection)
            self._migrated = True
        self._connection = connection
        self._pid = os.getpid()
        return connection

    @staticmethod
    def prepare(events: Sequence[UsageEvent]) -> _Rows:
        rows = ledger.batch_rows(events, DIALECT)
        return rows.calls, rows.line_items, rows.tags, ledger.rollup_rows(events)

    def write(self, events: Sequence[UsageEvent], prepared: object = None) -> int:
        pymysql = _pymysql()
        rows = prepared if prepared is not None else self.prepare(events)
        with self._lock:
            connection = self._connect()
            try:
                self._insert(connection, rows)  # type: ignore[arg-type]
            except pymysql.err.IntegrityError as error:
                connection.rollback()
                if error.args[0] != _DUPLICATE_KEY:
                    raise
                # Some events are already there (a replayed batch): write only the rest.
                return self._write_missing(connection, events)
            except BaseException:
                with contextlib.suppress(Exception):
                    connection.rollback()
                raise
            connection.commit()
            return len(events)

    def _write_missing(self, connection: Any, events: Sequence[UsageEvent]) -> int:
        try:
            with connection.cursor() as cursor:
                ids = [e.id for e in events]
                cursor.execute(
                    f"SELECT id FROM {ledger.CALLS} WHERE id IN ({', '.join(['%s'] * len(ids))})",
                    ids,
                )
                present = {row[0] for row in cursor.fetchall()}
            missing = [e for e in events if e.id not in present]
            if missing:
                # A concurrent writer of the same ids makes this raise 1062 again: retried later.
                self._insert(connection, self.prepare(missing))
        except BaseException:
            with contextlib.suppress(Exception):
                connection.rollback()
            raise
        connection.commit()
        return len(missing)

    @staticmethod
    def _insert(connection: Any, rows: _Rows) -> None:
        calls, items, tags, rollups = rows
        with connection.cursor() as cursor:
            for sql, table_rows in (
                (_INSERT_CALLS, calls),
                (_INSERT_ITEMS, items),
                (_INSERT_TAGS, tags),
                (_ROLLUP_UPSERT, rollups),
            ):
                if table_rows:
                    cursor.executemany(sql, table_rows)

    def is_permanent(self, error: BaseException) -> bool:
        pymysql = _pymysql()
        if not isinstance(error, pymysql.err.Error):
            return not isinstance(error, OSError)
        code = error.args[0] if error.args and isinstance(error.args[0], int) else None
        if code == _DUPLICATE_KEY or code in _RETRYABLE:
            return False
        # DataError: too long, out of range, invalid value; IntegrityError: NOT NULL, ...
        return isinstance(error, (pymysql.err.DataError, pymysql.err.IntegrityError))

    def reset(self) -> None:
        connection, self._connection = self._connection, None
        self._migrated = False  # check the schema again on reconnecting (a restored database)
        if connection is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):  # already broken: nothing more to release
                connection.close()

    def forget(self) -> None:
        _INHERITED.append(self._connection)  # never closed nor collected in the child
        # Closing would send COM_QUIT on the parent's socket; just drop it.
        self._connection = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.reset()


class MySQLExporter(DurableExporter):
    """Write events to MySQL or MariaDB: the contract tables, daily rollups, never blocking the bus.

    Args:
        url: ``mysql://user:password@host:3306/db`` (``mariadb://`` and
            ``mysql+pymysql://`` work too; ``?unix_socket=/path``, ``?ssl_ca=/path``).
        spool_dir: where undelivered batches wait on disk (default: the user's
            cache folder, ``~/.cache/llm-cost-tracker/spool``); one subfolder per database.
        max_pending: events held in memory before batches go straight to the spool.
        max_spool_bytes: the spool's bound on disk; past it (and a full memory queue)
            events are dropped and counted as ``dropped.spool_full``.
        auto_migrate: create or upgrade the tables on the first connection.
        max_backoff: the longest wait, in seconds, between retries.
    """

    def __init__(
        self,
        url: str,
        *,
        spool_dir: str | os.PathLike[str] | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_spool_bytes: int = DEFAULT_MAX_SPOOL_BYTES,
        auto_migrate: bool = True,
        initial_backoff: float = 0.25,
        max_backoff: float = 10.0,
    ) -> None:
        _pymysql()  # fail at configure() time when the driver is missing
        self.url = url
        super().__init__(
            _MySQLWriter(url, auto_migrate=auto_migrate),
            spool=Spool(spool_dir_for(url, spool_dir), max_bytes=max_spool_bytes),
            max_pending=max_pending,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
        )
