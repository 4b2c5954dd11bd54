"""The PostgreSQL exporter (psycopg 3): COPY per batch, one transaction, durable delivery.

A batch is written with ``COPY ... FROM STDIN`` into the three contract tables
plus an upsert of the daily rollups, in one transaction. A batch that hits a
row already there (a replay) is rolled back and written again with only the
events the table lacks, so a retried batch never duplicates a row and never
counts twice in the rollups.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import ledger
from .._events import UsageEvent
from ..ledger._drivers import import_psycopg as _psycopg
from ..ledger._drivers import postgres_connect as connect
from ..ledger._drivers import postgres_migrate as migrate
from ._delivery import DEFAULT_MAX_PENDING, DurableExporter
from ._spool import DEFAULT_MAX_SPOOL_BYTES, Spool, spool_dir_for

if TYPE_CHECKING:
    import psycopg


DIALECT = ledger.POSTGRES

_COPY_CALLS = f"COPY {ledger.CALLS} ({', '.join(ledger.call_columns(DIALECT))}) FROM STDIN"
_COPY_ITEMS = f"COPY {ledger.LINE_ITEMS} ({', '.join(ledger.LINE_ITEM_COLUMNS)}) FROM STDIN"
_COPY_TAGS = (
    f"COPY {ledger.TAGS} ({', '.join(DIALECT.quote(c) for c in ledger.TAG_COLUMNS)}) FROM STDIN"
)
# (calls, line items, tags, rollups): the rows of one batch.
_Rows = tuple[
    list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]
]
_EXISTING_IDS = f"SELECT id::text FROM {ledger.CALLS} WHERE id = ANY(%s::uuid[])"
_ROLLUP_UPSERT = (
    f"INSERT INTO {ledger.ROLLUPS} AS r ({', '.join(ledger.ROLLUP_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(ledger.ROLLUP_COLUMNS))}) "
    f"ON CONFLICT ({', '.join(ledger.ROLLUP_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = r.{c} + EXCLUDED.{c}" for c in ledger.ROLLUP_SUMS)
)


# Connections inherited across fork: kept referenced so the child never closes them.
_INHERITED: list[Any] = []


class _PostgresWriter:
    """The database side of PostgresExporter: one connection, COPY, error classification."""

    name = "postgres"

    def __init__(self, url: str, *, auto_migrate: bool) -> None:
        self.url = url
        self.auto_migrate = auto_migrate
        self._connection: psycopg.Connection[Any] | None = None
        self._pid = os.getpid()
        self._migrated = False
        self._lock = threading.Lock()

    def _connect(self) -> psycopg.Connection[Any]:
        connection = self._connection
        if connection is not None and not connection.closed and self._pid == os.getpid():
            return connection
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
        psycopg = _psycopg()
        rows = prepared if prepared is not None else self.prepare(events)
        with self._lock:
            connection = self._connect()
            try:
                self._copy(connection, rows)  # type: ignore[arg-type]
            except psycopg.errors.UniqueViolation:
                # Some events are already there (a replayed batch): write only the rest.
                connection.rollback()
                return self._write_missing(connection, events)
            except BaseException:
                connection.rollback()
                raise
            connection.commit()
            return len(events)

    def _write_missing(
        self, connection: psycopg.Connection[Any], events: Sequence[UsageEvent]
    ) -> int:
        try:
            with connection.cursor() as cursor:
                cursor.execute(_EXISTING_IDS, ([e.id for e in events],))
                present = {row[0] for row in cursor.fetchall()}
            missing = [e for e in events if e.id not in present]
            if missing:
                # Another process inserting the same ids now makes this raise
                # UniqueViolation again: transient, retried later.
                self._copy(connection, self.prepare(missing))
        except BaseException:
            connection.rollback()
            raise
        connection.commit()
        return len(missing)

    @staticmethod
    def _copy(connection: psycopg.Connection[Any], rows: _Rows) -> None:
        calls, items, tags, rollups = rows
        with connection.cursor() as cursor:
            for sql, table_rows in ((_COPY_CALLS, calls), (_COPY_ITEMS, items), (_COPY_TAGS, tags)):
                if table_rows:
                    with cursor.copy(sql) as copy:
                        for row in table_rows:
                            copy.write_row(row)
            cursor.executemany(_ROLLUP_UPSERT, rollups)

    def is_permanent(self, error: BaseException) -> bool:
        psycopg = _psycopg()
        if isinstance(error, OSError):
            return False
        if isinstance(error, psycopg.errors.UniqueViolation):
            return False  # a concurrent writer of the same ids: try again
        if isinstance(error, (psycopg.DataError, psycopg.IntegrityError)):
            return True  # SQLSTATE classes 22 and 23: this data will never fit
        # Connection trouble, timeouts, deadlocks, a missing table: worth retrying.
        return not isinstance(error, psycopg.Error)

    def reset(self) -> None:
        connection, self._connection = self._connection, None
        self._migrated = False  # check the schema again on reconnecting (a restored database)
        if connection is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):  # already broken: nothing more to release
                connection.close()

    def forget(self) -> None:
        _INHERITED.append(self._connection)  # never closed nor collected in the child
        # psycopg does not close a connection inherited across fork; just drop it.
        self._connection = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.reset()


class PostgresExporter(DurableExporter):
    """Write events to PostgreSQL: the contract tables, daily rollups, never blocking the bus.

    Args:
        url: ``postgresql://user:password@host:5432/db`` (``postgres://`` and
            ``postgresql+psycopg://`` work too; libpq query parameters pass through).
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
        _psycopg()  # fail at configure() time when the driver is missing
        self.url = url
        super().__init__(
            _PostgresWriter(url, auto_migrate=auto_migrate),
            spool=Spool(spool_dir_for(url, spool_dir), max_bytes=max_spool_bytes),
            max_pending=max_pending,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
        )
