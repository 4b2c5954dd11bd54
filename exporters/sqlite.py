"""The embedded default exporter: the ledger in a local SQLite file (WAL, one transaction per batch)."""

from __future__ import annotations

import logging
import operator
import os
import sqlite3
import struct
import threading
import weakref
from collections.abc import Sequence
from itertools import chain, compress, cycle
from pathlib import Path
from typing import Any

from .. import ledger
from .._events import UsageEvent
from ..ledger._drivers import sqlite_connect as connect
from ..ledger._drivers import sqlite_migrate as migrate

DEFAULT_URL = "sqlite:///llm_costs.db"

_logger = logging.getLogger("llm_cost_tracker.exporters.sqlite")


class SQLiteExporter:
    """Write events to a SQLite file: three contract tables, idempotent by event id.

    Args:
        url: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or ``sqlite://`` (memory).
        auto_migrate: create or upgrade the tables on first use.
    """

    name = "sqlite"

    def __init__(self, url: str = DEFAULT_URL, *, auto_migrate: bool = True) -> None:
        ledger.sqlite_path(url)  # validate now, so configure() reports a bad URL
        self.url = url
        self.auto_migrate = auto_migrate
        self._connection: sqlite3.Connection | None = None
        self._checkpointer: _Checkpointer | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        _EXPORTERS.add(self)

    @property
    def checkpoints(self) -> int:
        """WAL checkpoints run by this exporter's background checkpointer so far (this process)."""
        return 0 if self._checkpointer is None else self._checkpointer.checkpoints

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        connection = connect(self.url)
        if self.auto_migrate:
            migrate(connection)
        self._connection = connection
        self._pid = os.getpid()
        self._checkpointer = _Checkpointer.start(connection, self.url)
        return connection

    def export(self, events: Sequence[UsageEvent]) -> None:
        with self._lock:
            # Built under the lock too: building allocates, so the garbage collector
            # often runs here, and a sqlite3 object it finalizes closes inside
            # SQLite's global mutexes. A fork then (the lock is what a fork waits
            # for) would leave the child's first connect() waiting on them forever.
            rows = batch_rows(events)
            connection = self._connect()
            try:
                connection.execute("BEGIN")
                for table, present, values in rows:
                    write_rows(connection, table, present, values)
                connection.commit()
            except BaseException:
                connection.rollback()
                raise
            if self._checkpointer is not None:
                self._checkpointer.wake()

    def after_fork(self) -> None:
        # The parent's connection must not be used (or closed) by the child; its
        # checkpointer thread does not exist here.
        self._connection = None
        if self._checkpointer is not None:
            self._checkpointer.forget()
            self._checkpointer = None
        self._lock = threading.Lock()

    def _before_fork(self) -> None:
        self._lock.acquire()
        if self._checkpointer is not None:
            self._checkpointer.lock.acquire()

    def _after_fork_in_parent(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.lock.release()
        self._lock.release()

    def shutdown(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                if self._checkpointer is not None:
                    self._checkpointer.stop()
                if self._connection is not None:
                    self._connection.close()
            self._checkpointer = None
            self._connection = None


# -- checkpoints off the write path -------------------------------------------
# In WAL mode a commit appends pages to the -wal file, and a checkpoint copies
# them back into the database. By default the commit that takes the WAL past
# 1,000 pages runs that checkpoint itself, fsyncs included: about a fifth of
# the exporter's write time at full load (bench/bench_sqlite.py). Here a thread
# with its own connection checkpoints (PASSIVE: it never blocks the writer)
# whenever 500 pages wait to be copied; the sqlite3 module lets go of the GIL
# inside SQLite, so that work runs beside the writer, on another core.
#
# The writer keeps an automatic checkpoint at 2,000 pages as the backstop. A
# checkpoint that trails a busy writer never lets SQLite start the WAL over
# from its beginning (that needs every page copied when a write begins), so
# the backstop finishes the few pages left and the WAL stays a few MB. It also
# bounds the WAL if the thread cannot run. How many pages wait is read from the
# WAL index's header (the -shm file, https://sqlite.org/walformat.html); a
# database without one (not in WAL mode, or in memory) keeps SQLite's default,
# and so does Windows (no os.pread).

_CHECKPOINT_PAGES = 500
_BACKSTOP_PAGES = 2000
_WAL_INDEX = struct.Struct("=16xI76xI")  # mxFrame at byte 16, nBackfill at byte 96


class _Checkpointer:
    """Checkpoints the WAL of one database on a thread and connection of its own."""

    def __init__(self, url: str, shm: int) -> None:
        self.url = url
        self.checkpoints = 0
        self.lock = threading.Lock()  # held while checkpointing: what a fork waits for
        self._shm = shm
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="llm-cost-tracker-sqlite-checkpoint", daemon=True
        )

    @classmethod
    def start(cls, connection: sqlite3.Connection, url: str) -> _Checkpointer | None:
        path = ledger.sqlite_path(url)
        if (
            path == ":memory:"
            or not hasattr(os, "pread")  # Windows: SQLite's own checkpoints
            or connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal"
        ):
            return None
        try:
            shm = os.open(f"{Path(path).expanduser()}-shm", os.O_RDONLY)
        except OSError:
            return None
        checkpointer = cls(url, shm)
        try:
            checkpointer._pending()
        except (OSError, struct.error):
            os.close(shm)
            return None
        connection.execute(f"PRAGMA wal_autocheckpoint={_BACKSTOP_PAGES}")
        checkpointer._thread.start()
        return checkpointer

    def wake(self) -> None:
        self._wake.set()

    def _pending(self) -> int:
        """WAL pages not yet copied into the database."""
        frames: int
        backfilled: int
        frames, backfilled = _WAL_INDEX.unpack(os.pread(self._shm, _WAL_INDEX.size, 0))
        return max(frames - backfilled, 0)

    def _run(self) -> None:
        connection = None
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping.is_set():
                    return
                if self._pending() < _CHECKPOINT_PAGES:
                    continue
                with self.lock:
                    if self._stopping.is_set():
                        return
                    if connection is None:
                        connection = connect(self.url)
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
        except (OSError, sqlite3.Error, struct.error):
            # Nothing is lost: the writer's own checkpoint at 2,000 pages takes over.
            _logger.warning(
                "llm-cost-tracker: the SQLite checkpoint thread stopped; checkpoints run "
                "in the exporter from now on",
                exc_info=True,
            )
        finally:
            with self.lock:
                if connection is not None:
                    connection.close()
                os.close(self._shm)
                self._shm = -1

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def forget(self) -> None:
        """In a forked child: the thread is gone; release the file it had open, nothing else."""
        if self._shm >= 0 and not self._thread.is_alive():
            os.close(self._shm)
            self._shm = -1


# -- the write path -----------------------------------------------------------
# What a batch costs on SQLite is mostly per row and per bound value, so rows go
# in as multi-row INSERTs (one statement per up to 128 rows: executemany() pays
# a statement reset per row), and NULLs are bound as little as possible: the
# sqlite3 module adapts a bound None through its adapter registry, several
# times the cost of a number or a string. The rows are the shared builder's
# (ledger.batch_rows); here they are grouped by which nullable columns they
# leave NULL, and each group is written without those columns, so one failed
# or traced call does not make every other row of its batch bind a NULL. A
# column left out of the INSERT is NULL: the contract tables have no column
# DEFAULTs (a test keeps it so).

Table = tuple[str, tuple[str, ...]]  # name, columns
Present = tuple[bool, ...]  # per column of a table: is it in the INSERT?
Rows = tuple[Table, Present, list[Any]]  # table, columns present, values row after row

_CALLS: Table = (ledger.CALLS, ledger.call_columns(ledger.SQLITE))
_ITEMS: Table = (ledger.LINE_ITEMS, ledger.LINE_ITEM_COLUMNS)
_TAGS: Table = (ledger.TAGS, ledger.TAG_COLUMNS)
_ROWS_PER_STATEMENT = 128  # x 25 call columns stays far below SQLite's 32,766 variables

# The columns that can be NULL (the others never are), in sets that are NULL
# together: a row's shape says which sets hold a value.
_NULLABLE_CALL_COLUMNS: tuple[tuple[str, ...], ...] = (
    ("latency_ms",),
    ("request_model",),
    (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    ),  # usage unknown
    ("total_cost", "total_cost_exact"),
    ("pricing_snapshot",),
    ("error_type",),
    ("provider_response_id",),
    ("trace_id",),
    ("span_id",),
)
_NULLABLE_ITEM_COLUMNS: tuple[tuple[str, ...], ...] = (("unit_price",), ("cost",))


class _Shapes:
    """Groups a table's rows by their shape: which of its sets of nullable columns hold a value."""

    def __init__(self, table: Table, nullable: Sequence[tuple[str, ...]]) -> None:
        self.table = table
        self._sets = [[table[1].index(c) for c in columns] for columns in nullable]
        self._firsts = [operator.itemgetter(indexes[0]) for indexes in self._sets]
        self._present: dict[Present, Present] = {}

    def group(self, rows: list[tuple[Any, ...]]) -> dict[Present, list[tuple[Any, ...]]]:
        """``rows`` by shape (one flag per set of nullable columns), in row order within a shape.

        Most batches have one shape, found column by column: only the sets
        NULL in some rows and not in others are looked at row by row.
        """
        shape: list[bool] = []
        mixed: list[int] = []  # positions in ``shape`` that vary between rows
        for position, first in enumerate(self._firsts):
            nulls = operator.countOf(map(first, rows), None)
            shape.append(nulls < len(rows))
            if 0 < nulls < len(rows):
                mixed.append(position)
        if not mixed:
            return {tuple(shape): rows} if rows else {}
        groups: dict[tuple[bool, ...], list[tuple[Any, ...]]] = {}
        firsts = [self._firsts[p] for p in mixed]
        for row in rows:
            key = tuple([first(row) is not None for first in firsts])
            group = groups.get(key)
            if group is None:
                groups[key] = [row]
            else:
                group.append(row)
        shapes = {}
        for key, group in groups.items():
            for position, filled in zip(mixed, key, strict=True):
                shape[position] = filled
            shapes[tuple(shape)] = group
        return shapes

    def present(self, shape: Present) -> Present:
        """Which columns of the table a row of this shape fills."""
        present = self._present.get(shape)
        if present is None:
            null = {
                i
                for indexes, filled in zip(self._sets, shape, strict=True)
                if not filled
                for i in indexes
            }
            present = tuple(i not in null for i in range(len(self.table[1])))
            self._present[shape] = present
        return present

    def rows(self, rows: list[tuple[Any, ...]]) -> list[Rows]:
        """``rows`` grouped by shape, each group flattened without its NULL columns."""
        return [
            _flattened(self.table, self.present(shape), group)
            for shape, group in self.group(rows).items()
        ]


_CALL_SHAPES = _Shapes(_CALLS, _NULLABLE_CALL_COLUMNS)
_ITEM_SHAPES = _Shapes(_ITEMS, _NULLABLE_ITEM_COLUMNS)
_ALL_TAG_COLUMNS: Present = (True, True, True)


def _flattened(table: Table, present: Present, rows: list[Any]) -> Rows:
    values = chain.from_iterable(rows)
    if all(present):
        return table, present, list(values)
    return table, present, list(compress(values, cycle(present)))


def call_rows(events: Sequence[UsageEvent]) -> dict[Present, list[tuple[Any, ...]]]:
    """The contract call rows of ``events`` (``ledger.call_row``), grouped by NULL shape."""
    return _CALL_SHAPES.group(ledger.batch_rows(events, ledger.SQLITE).calls)


def call_present(shape: Present) -> Present:
    """Which call columns a row of this NULL shape (a key of ``call_rows``) fills."""
    return _CALL_SHAPES.present(shape)


def batch_rows(events: Sequence[UsageEvent]) -> list[Rows]:
    """The rows of ``events`` for the calls, line items and tags tables, ready for ``write_rows``."""
    rows = ledger.batch_rows(events, ledger.SQLITE)
    batch = _CALL_SHAPES.rows(rows.calls)
    batch += _ITEM_SHAPES.rows(rows.line_items)
    if rows.tags:
        batch.append((_TAGS, _ALL_TAG_COLUMNS, list(chain.from_iterable(rows.tags))))
    return batch


def write_rows(
    connection: sqlite3.Connection,
    table: Table,
    present: Present,
    values: list[Any],
) -> None:
    """Insert-or-skip the rows flattened in ``values``, filling the ``present`` columns of ``table``."""
    width = sum(present)
    rows = len(values) // width
    start = 0
    while rows:
        # 128 rows at a time, then the rest in powers of two: few distinct statements to prepare.
        count = _ROWS_PER_STATEMENT if rows >= _ROWS_PER_STATEMENT else 1 << (rows.bit_length() - 1)
        end = start + count * width
        connection.execute(_insert_sql(table, present, count), values[start:end])
        start = end
        rows -= count


_STATEMENTS: dict[tuple[str, Present, int], str] = {}


def _insert_sql(table: Table, present: Present, rows: int) -> str:
    key = (table[0], present, rows)
    sql = _STATEMENTS.get(key)
    if sql is None:
        columns = list(compress(table[1], present))
        one = f"({', '.join(['?'] * len(columns))})"
        names = ", ".join(ledger.SQLITE.quote(c) for c in columns)
        sql = f"INSERT OR IGNORE INTO {table[0]} ({names}) VALUES {', '.join([one] * rows)}"
        if len(_STATEMENTS) < 4096:
            _STATEMENTS[key] = sql
    return sql


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
