"""The MySQL/MariaDB exporter (PyMySQL): multi-row INSERT per batch, one transaction, durable delivery.

A batch is written as multi-row ``INSERT`` statements into the three contract
tables plus an ``INSERT ... ON DUPLICATE KEY UPDATE`` of the daily rollups, in
one transaction (``_server.ServerWriter``). Plain ``INSERT`` rather than
``INSERT IGNORE``: IGNORE would also turn a too-long or invalid value into a
silent truncation, where we want the error (and the event quarantined with its
reason); a duplicate event id is error 1062.

Sessions run in UTC (``time_zone = '+00:00'``) with strict SQL mode.
"""

from __future__ import annotations

from typing import Any

from .. import ledger
from ..ledger._drivers import import_pymysql
from ..ledger._drivers import mysql_connect as connect
from ..ledger._drivers import mysql_connect_kwargs as connect_kwargs
from ..ledger._drivers import mysql_migrate as migrate
from ._server import Prepared, ServerExporter

DIALECT = ledger.MYSQL
_DUPLICATE_KEY = 1062
# MySQL error codes worth retrying although PyMySQL files them under other classes.
_RETRYABLE = {1205, 1213}  # lock wait timeout, deadlock

_INSERTS = tuple(
    f"INSERT INTO {table} ({', '.join(DIALECT.quote(c) for c in columns)}) "
    f"VALUES ({', '.join(['%s'] * len(columns))})"
    for table, columns in (
        (ledger.CALLS, ledger.call_columns(DIALECT)),
        (ledger.LINE_ITEMS, ledger.LINE_ITEM_COLUMNS),
        (ledger.TAGS, ledger.TAG_COLUMNS),
    )
)
_ROLLUP_UPSERT = (
    f"INSERT INTO {ledger.ROLLUPS} ({', '.join(ledger.ROLLUP_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(ledger.ROLLUP_COLUMNS))}) ON DUPLICATE KEY UPDATE "
    + ", ".join(f"{c} = {c} + VALUES({c})" for c in ledger.ROLLUP_SUMS)
)


def _code(error: BaseException) -> int | None:
    return error.args[0] if error.args and isinstance(error.args[0], int) else None


class MySQLDriver:
    """PyMySQL: multi-row INSERT (executemany), error 1062, DataError/IntegrityError permanent."""

    name = "mysql"
    dialect = DIALECT

    def load(self) -> Any:
        return import_pymysql()

    def check_url(self, url: str) -> None:
        connect_kwargs(url)

    def connect(self, url: str) -> Any:
        return connect(url)

    def migrate(self, connection: Any) -> list[str]:
        return migrate(connection)

    def is_open(self, connection: Any) -> bool:
        return True  # a lost connection fails the write, and the writer reconnects

    def insert(self, connection: Any, rows: Prepared) -> None:
        tables, rollups = rows
        with connection.cursor() as cursor:
            # PyMySQL folds executemany() of an INSERT ... VALUES into multi-row statements.
            for sql, table_rows in zip(
                (*_INSERTS, _ROLLUP_UPSERT),
                (tables.calls, tables.line_items, tables.tags, rollups),
                strict=True,
            ):
                if table_rows:
                    cursor.executemany(sql, table_rows)

    def existing_ids(self, cursor: Any, ids: list[str]) -> set[str]:
        cursor.execute(
            f"SELECT id FROM {ledger.CALLS} WHERE id IN ({', '.join(['%s'] * len(ids))})", ids
        )
        return {row[0] for row in cursor.fetchall()}

    def is_duplicate(self, error: BaseException) -> bool:
        return (
            isinstance(error, import_pymysql().err.IntegrityError)
            and _code(error) == _DUPLICATE_KEY
        )

    def is_permanent(self, error: BaseException) -> bool:
        pymysql = import_pymysql()
        if not isinstance(error, pymysql.err.Error):
            return not isinstance(error, OSError)
        code = _code(error)
        if code == _DUPLICATE_KEY or code in _RETRYABLE:
            return False
        # DataError: too long, out of range, invalid value; IntegrityError: NOT NULL, ...
        return isinstance(error, (pymysql.err.DataError, pymysql.err.IntegrityError))


class MySQLExporter(ServerExporter):
    """Write events to MySQL or MariaDB: the contract tables, daily rollups, never blocking the bus.

    Args:
        url: ``mysql://user:password@host:3306/db`` (``mariadb://`` and
            ``mysql+pymysql://`` work too; ``?unix_socket=/path``, ``?ssl_ca=/path``).

    The other keyword arguments (``spool_dir``, ``max_pending``,
    ``max_spool_bytes``, ``auto_migrate``, ``initial_backoff``, ``max_backoff``)
    are ``ServerExporter``'s.
    """

    driver = MySQLDriver()


__all__ = ["MySQLExporter", "connect", "connect_kwargs", "migrate"]
