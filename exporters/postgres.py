"""The PostgreSQL exporter (psycopg 3): COPY per batch, one transaction, durable delivery.

A batch is written with ``COPY ... FROM STDIN`` into the three contract tables
plus an ``INSERT ... ON CONFLICT DO UPDATE`` of the daily rollups, in one
transaction (``_server.ServerWriter``); a duplicate event id raises
``UniqueViolation``, and SQLSTATE classes 22 and 23 are permanent rejections.
"""

from __future__ import annotations

from typing import Any

from .. import ledger
from ..ledger._drivers import import_psycopg
from ..ledger._drivers import postgres_connect as connect
from ..ledger._drivers import postgres_migrate as migrate
from ._server import Prepared, ServerExporter

DIALECT = ledger.POSTGRES

_COPY = tuple(
    f"COPY {table} ({', '.join(DIALECT.quote(c) for c in columns)}) FROM STDIN"
    for table, columns in (
        (ledger.CALLS, ledger.call_columns(DIALECT)),
        (ledger.LINE_ITEMS, ledger.LINE_ITEM_COLUMNS),
        (ledger.TAGS, ledger.TAG_COLUMNS),
    )
)
_EXISTING_IDS = f"SELECT id::text FROM {ledger.CALLS} WHERE id = ANY(%s::uuid[])"
_ROLLUP_UPSERT = (
    f"INSERT INTO {ledger.ROLLUPS} AS r ({', '.join(ledger.ROLLUP_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(ledger.ROLLUP_COLUMNS))}) "
    f"ON CONFLICT ({', '.join(ledger.ROLLUP_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = r.{c} + EXCLUDED.{c}" for c in ledger.ROLLUP_SUMS)
)


class PostgresDriver:
    """psycopg 3: COPY, UniqueViolation, SQLSTATE classes 22/23 permanent."""

    name = "postgres"
    dialect = DIALECT

    def load(self) -> Any:
        return import_psycopg()

    def check_url(self, url: str) -> None:
        pass  # libpq accepts what it can parse, and says why at connect time

    def connect(self, url: str) -> Any:
        return connect(url)

    def migrate(self, connection: Any) -> list[str]:
        return migrate(connection)

    def is_open(self, connection: Any) -> bool:
        return not connection.closed

    def insert(self, connection: Any, rows: Prepared) -> None:
        tables, rollups = rows
        with connection.cursor() as cursor:
            for sql, table_rows in zip(
                _COPY, (tables.calls, tables.line_items, tables.tags), strict=True
            ):
                if table_rows:
                    with cursor.copy(sql) as copy:
                        for row in table_rows:
                            copy.write_row(row)
            cursor.executemany(_ROLLUP_UPSERT, rollups)

    def existing_ids(self, cursor: Any, ids: list[str]) -> set[str]:
        cursor.execute(_EXISTING_IDS, (ids,))
        return {row[0] for row in cursor.fetchall()}

    def is_duplicate(self, error: BaseException) -> bool:
        return isinstance(error, import_psycopg().errors.UniqueViolation)

    def is_permanent(self, error: BaseException) -> bool:
        psycopg = import_psycopg()
        if isinstance(error, OSError):
            return False
        if isinstance(error, psycopg.errors.UniqueViolation):
            return False  # a concurrent writer of the same ids: try again
        if isinstance(error, (psycopg.DataError, psycopg.IntegrityError)):
            return True  # SQLSTATE classes 22 and 23: this data will never fit
        # Connection trouble, timeouts, deadlocks, a missing table: worth retrying.
        return not isinstance(error, psycopg.Error)


class PostgresExporter(ServerExporter):
    """Write events to PostgreSQL: the contract tables, daily rollups, never blocking the bus.

    Args:
        url: ``postgresql://user:password@host:5432/db`` (``postgres://`` and
            ``postgresql+psycopg://`` work too; libpq query parameters pass through).

    The other keyword arguments (``spool_dir``, ``max_pending``,
    ``max_spool_bytes``, ``auto_migrate``, ``initial_backoff``, ``max_backoff``)
    are ``ServerExporter``'s.
    """

    driver = PostgresDriver()


__all__ = ["PostgresExporter", "connect", "migrate"]
