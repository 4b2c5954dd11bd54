"""Opening and migrating a ledger database by URL: sqlite3, psycopg 3 or PyMySQL.

The drivers for PostgreSQL and MySQL are extras, imported on first use; a
missing one raises ``ImportError`` naming the extra to install. Each dialect
serializes concurrent migrators its own way: ``BEGIN IMMEDIATE`` on SQLite, an
advisory transaction lock on PostgreSQL, ``GET_LOCK()`` on MySQL (whose DDL
commits by itself).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from .._errors import ConfigurationError
from ._migrations import apply_migrations
from ._schema import MYSQL, POSTGRES, SQLITE
from ._urls import dialect_name_for_url, redact_url, sqlite_path

if TYPE_CHECKING:
    import psycopg

# -- SQLite ---------------------------------------------------------------------


def sqlite_connect(url: str, *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open the SQLite database named by ``url`` with the settings the exporter relies on."""
    path = sqlite_path(url)
    if path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(
        path,
        timeout=timeout,
        check_same_thread=False,
        isolation_level=None,
        # The exporter prepares one multi-row INSERT per (table, NULL columns, row count).
        cached_statements=512,
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    # Index pages of a busy ledger outgrow the 2 MB default cache quickly;
    # 32 MB keeps batch inserts from re-reading them (measured in bench/).
    connection.execute("PRAGMA cache_size=-32768")
    # isolation_level=None: no implicit transactions; export() and the
    # migration runner issue BEGIN/COMMIT themselves.
    return connection


def sqlite_migrate(connection: sqlite3.Connection) -> list[str]:
    """Bring the schema up to date; return the migrations applied now."""
    # BEGIN IMMEDIATE takes the write lock, so concurrent processes migrate one at a time.
    return apply_migrations(connection, SQLITE, lock_sql="BEGIN IMMEDIATE")


# -- PostgreSQL -----------------------------------------------------------------

# Any constant will do: it only has to be the same for every process migrating this database.
_POSTGRES_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(7307261101)"


def import_psycopg() -> Any:
    """The psycopg module; ImportError naming the extra when it is not installed."""
    try:
        import psycopg
    except ImportError:
        raise ImportError(
            "PostgresExporter needs psycopg: pip install 'llm-cost-tracker[postgres]'"
        ) from None
    return psycopg


def _libpq_url(url: str) -> str:
    # SQLAlchemy spells the driver into the scheme; libpq knows postgresql:// and postgres://.
    scheme, sep, rest = url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.lower().startswith("postgres") else url


def postgres_connect(url: str, *, connect_timeout: int = 10) -> psycopg.Connection[Any]:
    """Open a psycopg connection to ``url`` (not in autocommit mode; UTC session time zone)."""
    connection: psycopg.Connection[Any] = import_psycopg().connect(
        _libpq_url(url),
        connect_timeout=connect_timeout,
        application_name="llm-cost-tracker",
        options="-c TimeZone=UTC",
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
        # Give up on a connection whose sent data goes unacknowledged for a minute
        # (a network partition) instead of waiting for the kernel's ~15 minutes.
        tcp_user_timeout=60_000,
    )
    return connection


def postgres_migrate(connection: psycopg.Connection[Any]) -> list[str]:
    """Bring the schema up to date; return the migrations applied now."""
    return apply_migrations(connection, POSTGRES, lock_sql=_POSTGRES_MIGRATION_LOCK)


# -- MySQL / MariaDB ------------------------------------------------------------

_MYSQL_SESSION_SETUP = (
    "SET time_zone = '+00:00', "
    "sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"
)
_MYSQL_MIGRATION_LOCK = "llm_cost_tracker_migrate"
# A re-run DDL statement whose work a cut-short earlier run already committed:
# table exists, duplicate column, duplicate index name.
_MYSQL_ALREADY_DONE = {1050, 1060, 1061}


def import_pymysql() -> Any:
    """The pymysql module; ImportError naming the extra when it is not installed."""
    try:
        import pymysql
    except ImportError:
        raise ImportError(
            "MySQLExporter needs PyMySQL: pip install 'llm-cost-tracker[mysql]'"
        ) from None
    return pymysql


def mysql_connect_kwargs(url: str) -> dict[str, Any]:
    """PyMySQL connect() arguments for ``mysql://user:password@host:port/db?unix_socket=...``."""
    parts = urlsplit(url)
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigurationError(
            f"MySQL URL {redact_url(url)!r} names no database: mysql://user@host/db"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    kwargs: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": parts.port or 3306,
        "user": unquote(parts.username) if parts.username else "root",
        "password": unquote(parts.password) if parts.password else "",
        "database": database,
        "charset": "utf8mb4",
        "autocommit": False,
        "connect_timeout": int(query.get("connect_timeout", 10)),
        "read_timeout": int(query.get("read_timeout", 60)),
        "write_timeout": int(query.get("write_timeout", 60)),
        "init_command": _MYSQL_SESSION_SETUP,
    }
    if "unix_socket" in query:
        kwargs["unix_socket"] = query["unix_socket"]
    if "ssl_ca" in query:
        kwargs["ssl"] = {"ca": query["ssl_ca"]}
    return kwargs


def mysql_connect(url: str) -> Any:
    """Open a PyMySQL connection to ``url`` (UTC, strict mode, utf8mb4, not autocommit)."""
    return import_pymysql().connect(**mysql_connect_kwargs(url))


def _mysql_already_done(error: Exception) -> bool:
    return bool(error.args) and error.args[0] in _MYSQL_ALREADY_DONE


def mysql_migrate(connection: Any) -> list[str]:
    """Bring the schema up to date; return the migrations applied now."""
    # MySQL DDL commits implicitly, so a session lock (not a transaction) serializes migrators.
    with connection.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, 60)", (_MYSQL_MIGRATION_LOCK,))
    try:
        return apply_migrations(connection, MYSQL, already_done=_mysql_already_done)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT RELEASE_LOCK(%s)", (_MYSQL_MIGRATION_LOCK,))


# -- by URL ---------------------------------------------------------------------

_CONNECT: dict[str, Callable[[str], Any]] = {
    "sqlite": sqlite_connect,
    "postgres": postgres_connect,
    "mysql": mysql_connect,
}
_MIGRATE: dict[str, Callable[[Any], list[str]]] = {
    "sqlite": sqlite_migrate,
    "postgres": postgres_migrate,
    "mysql": mysql_migrate,
}


def connect(url: str) -> Any:
    """Open a DB-API connection to the ledger at ``url``; the caller closes it."""
    return _CONNECT[dialect_name_for_url(url)](url)


def migrate_connection(connection: Any, dialect_name: str) -> list[str]:
    """Bring the schema of an open ``dialect_name`` connection up to date; return the names applied."""
    return _MIGRATE[dialect_name](connection)


def migrate(url: str) -> list[str]:
    """Create or upgrade the tables at ``url``; return the names of the migrations applied."""
    dialect_name = dialect_name_for_url(url)
    connection = _CONNECT[dialect_name](url)
    try:
        return migrate_connection(connection, dialect_name)
    finally:
        connection.close()
