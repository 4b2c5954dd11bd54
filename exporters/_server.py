"""What the PostgreSQL and MySQL exporters share: one writer, one exporter base, a driver per database.

A batch is written into the three contract tables plus an upsert of the daily
rollups, in one transaction. A batch that hits a row already there (a replay)
is rolled back and written again with only the events the table lacks, so a
retried batch never duplicates a row and never counts twice in the rollups.
What genuinely differs between the two databases (how rows are sent, which
error is a duplicate key, which errors are permanent) is a ``ServerDriver``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

from .. import ledger
from .._events import UsageEvent
from ..ledger import spool_dir_for
from ._delivery import DEFAULT_MAX_PENDING, DurableExporter
from ._spool import DEFAULT_MAX_SPOOL_BYTES, Spool

# The rows of one batch: the contract tables', then the rollups'.
Prepared = tuple[ledger.BatchRows, list[tuple[Any, ...]]]


class ServerDriver(Protocol):
    """How one database server is talked to: the parts of writing a batch that differ."""

    name: str  # "postgres" or "mysql": the dialect, the stats' and the spool's name
    dialect: ledger.Dialect

    def load(self) -> Any:
        """The driver module; ImportError naming the extra when it is not installed."""
        ...

    def check_url(self, url: str) -> None:
        """Raise ConfigurationError now for a URL that can never connect."""
        ...

    def connect(self, url: str) -> Any: ...

    def migrate(self, connection: Any) -> list[str]: ...

    def is_open(self, connection: Any) -> bool:
        """Whether an existing connection can still be used."""
        ...

    def insert(self, connection: Any, rows: Prepared) -> None:
        """Send the rows of one batch (no commit); raise on a duplicate event id."""
        ...

    def existing_ids(self, cursor: Any, ids: list[str]) -> set[str]:
        """Which of ``ids`` the calls table already holds."""
        ...

    def is_duplicate(self, error: BaseException) -> bool:
        """Whether ``error`` is a duplicate key: some events of the batch are already there."""
        ...

    def is_permanent(self, error: BaseException) -> bool:
        """Whether the database rejects this batch for good (retrying will not help)."""
        ...


# Connections inherited across fork: kept referenced so the child never closes them.
_INHERITED: list[Any] = []


class ServerWriter:
    """The database side of a server exporter: one connection, idempotent batches (a ``BatchWriter``)."""

    def __init__(self, url: str, driver: ServerDriver, *, auto_migrate: bool) -> None:
        driver.check_url(url)  # so configure() reports a bad URL
        self.name = driver.name
        self.url = url
        self.driver = driver
        self.auto_migrate = auto_migrate
        self._connection: Any = None
        self._pid = os.getpid()
        self._migrated = False
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        connection = self._connection
        if connection is not None and self._pid == os.getpid() and self.driver.is_open(connection):
            return connection
        connection = self.driver.connect(self.url)
        if self.auto_migrate and not self._migrated:
            self.driver.migrate(connection)
            self._migrated = True
        self._connection = connection
        self._pid = os.getpid()
        return connection

    def prepare(self, events: Sequence[UsageEvent]) -> Prepared:
        """Build the rows of ``events`` (on the bus thread, overlapping the writer's I/O)."""
        return ledger.batch_rows(events, self.driver.dialect), ledger.rollup_rows(events)

    def write(self, events: Sequence[UsageEvent], prepared: object = None) -> int:
        """Insert ``events`` in one transaction; return how many were new."""
        rows: Prepared = prepared if prepared is not None else self.prepare(events)  # type: ignore[assignment]
        with self._lock:
            connection = self._connect()
            try:
                self.driver.insert(connection, rows)
            except BaseException as error:
                _rollback(connection)
                if not self.driver.is_duplicate(error):
                    raise
                # Some events are already there (a replayed batch): write only the rest.
                return self._write_missing(connection, events)
            connection.commit()
            return len(events)

    def _write_missing(self, connection: Any, events: Sequence[UsageEvent]) -> int:
        try:
            with connection.cursor() as cursor:
                present = self.driver.existing_ids(cursor, [e.id for e in events])
            missing = [e for e in events if e.id not in present]
            if missing:
                # Another process inserting the same ids now makes this raise a
                # duplicate key again: transient, retried later.
                self.driver.insert(connection, self.prepare(missing))
        except BaseException:
            _rollback(connection)
            raise
        connection.commit()
        return len(missing)

    def is_permanent(self, error: BaseException) -> bool:
        return self.driver.is_permanent(error)

    def reset(self) -> None:
        connection, self._connection = self._connection, None
        self._migrated = False  # check the schema again on reconnecting (a restored database)
        if connection is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):  # already broken: nothing more to release
                connection.close()

    def forget(self) -> None:
        # Closing the parent's connection in the child could end the parent's
        # session (PyMySQL sends COM_QUIT); keep it referenced, never closed.
        _INHERITED.append(self._connection)
        self._connection = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.reset()


def _rollback(connection: Any) -> None:
    # On a broken connection the rollback fails too; the first error is the one to report.
    with contextlib.suppress(Exception):
        connection.rollback()


class ServerExporter(DurableExporter):
    """A durable exporter writing through a ``ServerDriver``; subclasses name the driver.

    Args:
        url: the database URL.
        spool_dir: where undelivered batches wait on disk (default: the user's
            cache folder, ``~/.cache/llm-cost-tracker/spool``); one subfolder per database.
        max_pending: events held in memory before batches go straight to the spool.
        max_spool_bytes: the spool's bound on disk; past it (and a full memory queue)
            events are dropped and counted as ``dropped.spool_full``.
        auto_migrate: create or upgrade the tables on the first connection.
        initial_backoff / max_backoff: the first and the longest wait, in seconds,
            between retries.
    """

    driver: ClassVar[ServerDriver]

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
        self.driver.load()  # fail at configure() time when the driver is missing
        self.url = url
        super().__init__(
            ServerWriter(url, self.driver, auto_migrate=auto_migrate),
            spool=Spool(spool_dir_for(url, spool_dir), max_bytes=max_spool_bytes),
            max_pending=max_pending,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
        )
