"""The embedded default exporter: the ledger in a local SQLite file (WAL, one transaction per batch)."""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._events import UsageEvent
from . import _sql

if TYPE_CHECKING:
    from .._config import Config

DEFAULT_URL = "sqlite:///llm_costs.db"


def connect(url: str, *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open the SQLite database named by ``url`` with the settings the exporter relies on."""
    path = _sql.sqlite_path(url)
    if path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(
        path, timeout=timeout, check_same_thread=False, isolation_level=None
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    # Index pages of a busy ledger outgrow the 2 MB default cache quickly;
    # 32 MB keeps batch inserts from re-reading them (measured in bench/).
    connection.execute("PRAGMA cache_size=-32768")
    # isolation_level=None: no implicit transactions; export() and the
    # migration runner issue BEGIN/COMMIT themselves.
    return connection


def migrate(connection: sqlite3.Connection) -> list[str]:
    """Bring the schema up to date; return the migrations applied now."""
    # BEGIN IMMEDIATE takes the write lock, so concurrent processes migrate one at a time.
    return _sql.apply_migrations(connection, _sql.SQLITE, lock_sql="BEGIN IMMEDIATE")


class SQLiteExporter:
    """Write events to a SQLite file: three contract tables, idempotent by event id.

    Args:
        url: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or ``sqlite://`` (memory).
        auto_migrate: create or upgrade the tables on first use.
    """

    name = "sqlite"

    def __init__(self, url: str = DEFAULT_URL, *, auto_migrate: bool = True) -> None:
        _sql.sqlite_path(url)  # validate now, so configure() reports a bad URL
        self.url = url
        self.auto_migrate = auto_migrate
        self._connection: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        _EXPORTERS.add(self)
        dialect = _sql.SQLITE
        self._insert_call = dialect.insert_sql(_sql.CALLS, _sql.call_columns(dialect))
        self._insert_item = dialect.insert_sql(_sql.LINE_ITEMS, _sql.LINE_ITEM_COLUMNS)
        self._insert_tag = dialect.insert_sql(_sql.TAGS, _sql.TAG_COLUMNS)

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        connection = connect(self.url)
        if self.auto_migrate:
            migrate(connection)
        self._connection = connection
        self._pid = os.getpid()
        return connection

    def export(self, events: Sequence[UsageEvent]) -> None:
        dialect = _sql.SQLITE
        calls = [_sql.call_row(e, dialect) for e in events]
        items = [row for e in events for row in _sql.line_item_rows(e, dialect)]
        tags = [row for e in events for row in _sql.tag_rows(e)]
        with self._lock:
            connection = self._connect()
            try:
                connection.execute("BEGIN")
                connection.executemany(self._insert_call, calls)
                if items:
                    connection.executemany(self._insert_item, items)
                if tags:
                    connection.executemany(self._insert_tag, tags)
                connection.commit()
            except BaseException:
                connection.rollback()
                raise

    def after_fork(self) -> None:
        # The parent's connection must not be used (or closed) by the child.
        self._connection = None
        self._lock = threading.Lock()

    def _before_fork(self) -> None:
        self._lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._lock.release()

    def shutdown(self) -> None:
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None


def create_exporter(url: str, config: Config | None) -> SQLiteExporter:
    """Create the exporter for ``configure(database_url=...)``."""
    return SQLiteExporter(url)


# SQLite keeps per-file lock state in process memory: a child forked in the
# middle of a write inherits a "locked" state no connection of its own can
# clear, and its first write hangs. So a fork waits for a batch in progress to
# commit (the exporter lock is held exactly while a transaction is open).
_EXPORTERS: weakref.WeakSet[SQLiteExporter] = weakref.WeakSet()


def _before_fork() -> None:
    for exporter in list(_EXPORTERS):
        exporter._before_fork()


def _after_fork_in_parent() -> None:
    for exporter in list(_EXPORTERS):
        exporter._after_fork_in_parent()


def _after_fork_in_child() -> None:
    for exporter in list(_EXPORTERS):
        exporter.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
