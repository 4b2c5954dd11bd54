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
from itertools import chain, compress, repeat
from pathlib import Path
from typing import Any

from .. import ledger
from .._components import COMPONENTS, INPUT_COMPONENTS, OUTPUT_COMPONENTS
from .._events import TokenUsage, UsageEvent
from ..ledger._drivers import sqlite_connect as connect
from ..ledger._drivers import sqlite_migrate as migrate
from ..ledger._schema import _decimal_text, _json_text, _sqlite_time

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
# times the cost of a number or a string. A column that is NULL in every row
# of the batch is left out of the INSERT, and so is NULL: the contract tables
# have no column DEFAULTs (a test keeps it so).

Present = tuple[bool, ...]  # per column of a table: is it in the INSERT?
Rows = tuple[
    tuple[str, tuple[str, ...]], Present, list[Any]
]  # table, columns, values row after row

_CALLS = (ledger.CALLS, ledger.call_columns(ledger.SQLITE))
_ITEMS = (ledger.LINE_ITEMS, ledger.LINE_ITEM_COLUMNS)
_TAGS = (ledger.TAGS, ledger.TAG_COLUMNS)
_ALL_TAG_COLUMNS: Present = (True, True, True)
_UNPRICED_ITEM: Present = (True, True, True, True, False, False)
_ROWS_PER_STATEMENT = 128  # x 25 call columns stays far below SQLite's 32,766 variables
_is_not = operator.is_not
_UNITS = {name: component.unit for name, component in COMPONENTS.items()}


def _filled(table: tuple[str, tuple[str, ...]], rows: list[tuple[Any, ...]]) -> Rows:
    """``rows`` flattened, without the columns that are NULL in all of them."""
    nones = repeat(None)
    present = tuple(any(map(_is_not, column, nones)) for column in zip(*rows, strict=True))
    return _flattened(table, present, rows)


def _flattened(table: tuple[str, tuple[str, ...]], present: Present, rows: list[Any]) -> Rows:
    if all(present):
        return table, present, list(chain.from_iterable(rows))
    kept = [i for i, p in enumerate(present) if p]
    if len(kept) == 1:
        return table, present, [row[kept[0]] for row in rows]
    return table, present, list(chain.from_iterable(map(operator.itemgetter(*kept), rows)))


# Where a token component counts in the call row: 1 output; 2 input; 3 input and
# cache read; 4 input and cache write (TokenUsage's properties, in one pass).
_TOKEN_KIND: dict[str, int] = {
    **dict.fromkeys(INPUT_COMPONENTS, 2),
    **dict.fromkeys(OUTPUT_COMPONENTS, 1),
    "cache_read": 3,
    "audio_cache_read": 3,
    "cache_write_5m": 4,
    "cache_write_1h": 4,
}


def _token_totals(usage: TokenUsage) -> tuple[int, int, int, int, int]:
    """(input, output, cache read, cache write, reasoning): the usage properties, in one pass."""
    inputs = outputs = reads = writes = 0
    kinds = _TOKEN_KIND
    for name, count in usage.tokens.items():
        kind = kinds.get(name)
        if kind == 1:
            outputs += count
        elif kind is not None:
            inputs += count
            if kind == 3:
                reads += count
            elif kind == 4:
                writes += count
    return inputs, outputs, reads, writes, usage.reasoning_tokens


# The call columns that can be NULL, by the bit a call row's NULL mask sets for
# them: latency, request model, the five token totals (usage unknown), the cost
# and its exact text, the pricing snapshot, error type, provider response id,
# trace id, span id. The other columns are never NULL.
_NULLABLE_CALL_COLUMNS: tuple[tuple[str, ...], ...] = (
    ("latency_ms",),
    ("request_model",),
    (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    ),
    ("total_cost", "total_cost_exact"),
    ("pricing_snapshot",),
    ("error_type",),
    ("provider_response_id",),
    ("trace_id",),
    ("span_id",),
)
_PRESENT_BY_MASK: dict[int, Present] = {}


def call_present(mask: int) -> Present:
    """Which call columns a row with this NULL mask fills (see ``call_rows``)."""
    present = _PRESENT_BY_MASK.get(mask)
    if present is None:
        null = {
            column
            for bit, columns in enumerate(_NULLABLE_CALL_COLUMNS)
            if mask >> bit & 1
            for column in columns
        }
        present = _PRESENT_BY_MASK[mask] = tuple(c not in null for c in _CALLS[1])
    return present


def call_rows(events: Sequence[UsageEvent]) -> dict[int, list[tuple[Any, ...]]]:
    """``ledger.call_row(event, SQLITE)`` for each event, faster, grouped by NULL mask.

    Each row is the contract row (tests/test_sqlite_exporter.py compares them);
    rows with NULL in the same nullable columns share a group, keyed by a mask
    with one bit per ``_NULLABLE_CALL_COLUMNS`` entry, so that each group is
    written without binding those NULLs (see ``write_rows``) however the batch mixes
    errors, traced and untraced calls.

    A priced call's pricing snapshot is a new mapping per call whose parts are
    shared by the calls priced by the same rates: its JSON text, the costliest
    value of the row, is made once per batch for each such set of parts (the
    key holds the parts' identities, valid while the batch holds the events).
    """
    to_time = _sqlite_time
    decimal_text = _decimal_text
    json_text = _json_text
    snapshots: dict[tuple[Any, ...], str | None] = {}
    groups: dict[int, list[tuple[Any, ...]]] = {}
    for event in events:
        usage = event.usage
        cost = event.cost
        total = cost.total
        exact = None if total is None else decimal_text(total)
        snapshot = cost.snapshot
        snapshot_text = None
        if snapshot:
            key = (*snapshot, *map(id, snapshot.values()))
            snapshot_text = snapshots.get(key)
            if snapshot_text is None:
                snapshot_text = snapshots[key] = json_text(dict(snapshot))
        if usage is None:  # unknown: NULL, never zero
            inputs = outputs = reads = writes = reasoning = None
        else:
            inputs, outputs, reads, writes, reasoning = _token_totals(usage)
        latency = event.latency_ms
        request_model = event.request_model
        error_type = event.error_type
        response_id = event.provider_response_id
        trace_id = event.trace_id
        span_id = event.span_id
        mask = (
            (latency is None)
            | (request_model is None) << 1
            | (usage is None) << 2
            | (exact is None) << 3
            | (snapshot_text is None) << 4
            | (error_type is None) << 5
            | (response_id is None) << 6
            | (trace_id is None) << 7
            | (span_id is None) << 8
        )
        row = (
            event.id,
            to_time(event.occurred_at),
            latency,
            event.provider,
            event.model,
            request_model,
            event.operation,
            inputs,
            outputs,
            reads,
            writes,
            reasoning,
            exact,
            cost.currency,
            cost.status,
            event.pricing_mode,
            snapshot_text,
            1 if event.stream else 0,
            event.usage_source,
            event.status,
            error_type,
            response_id,
            trace_id,
            span_id,
            exact,  # total_cost_exact
        )
        group = groups.get(mask)
        if group is None:
            groups[mask] = [row]
        else:
            group.append(row)
    return groups


def batch_rows(events: Sequence[UsageEvent]) -> list[Rows]:
    """The rows of ``events`` for the calls, line items and tags tables, ready for ``write_rows``.

    The values are those of ``ledger.call_row``, ``ledger.line_item_rows`` and
    ``ledger.tag_rows`` for SQLite (tests/test_sqlite_exporter.py compares
    them), built with fewer conversions: a token count is bound as an integer,
    which the NUMERIC column stores exactly as it stored the count's decimal text.
    A unit price is formatted once per batch (the pricing plans share them).
    """
    if not events:
        return []
    decimal_text = _decimal_text
    units = _UNITS
    batch = [
        _flattened(_CALLS, call_present(mask), rows) for mask, rows in call_rows(events).items()
    ]
    priced: list[tuple[Any, ...]] = []
    unpriced: list[Any] = []
    tags: list[Any] = []
    prices: dict[int, str | None] = {}
    for event in events:
        event_id = event.id
        line_items = event.cost.line_items
        if line_items:
            for li in line_items:
                unit_price = li.unit_price
                price = prices.get(id(unit_price))
                if price is None:
                    price = prices[id(unit_price)] = decimal_text(unit_price)
                priced.append(
                    (
                        event_id,
                        li.component,
                        li.unit,
                        decimal_text(li.quantity),
                        price,
                        decimal_text(li.cost),
                    )
                )
        elif event.usage is not None:
            usage = event.usage
            for name, n in usage.tokens.items():
                if n:
                    unpriced += (event_id, name, units[name], n)
            for name, q in usage.services.items():
                if q:
                    unpriced += (event_id, name, units[name], decimal_text(q))
        for key, value in event.tags.items():
            tags += (event_id, key, value)
    if priced:
        batch.append(_filled(_ITEMS, priced))
    if unpriced:
        batch.append((_ITEMS, _UNPRICED_ITEM, unpriced))
    if tags:
        batch.append((_TAGS, _ALL_TAG_COLUMNS, tags))
    return batch


def write_rows(
    connection: sqlite3.Connection,
    table: tuple[str, tuple[str, ...]],
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


def _insert_sql(table: tuple[str, tuple[str, ...]], present: Present, rows: int) -> str:
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
