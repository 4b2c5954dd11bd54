"""Durable delivery for the SQL server exporters: a writer thread, retries, the spool, quarantine.

``export()`` runs on the bus worker and only appends the batch to a bounded
in-memory queue (or, while the database is unreachable or the queue is full,
writes it to the on-disk spool); it never talks to the database. A writer
thread of the exporter's own writes queued batches, then spooled files, one
transaction per batch. A failure the database may get over (connection refused
or lost, timeouts, deadlocks) closes the connection, spills the batch and the
queue to the spool and retries after an exponential backoff with jitter; the
first batch that gets through starts replaying the spool. A batch the database
rejects for good (a value too long, a constraint) is split in halves until the
offending events are isolated; those go to the quarantine folder with the
database's reason, the rest are written.

Levels and counts in ``llm_cost_tracker.stats()`` (``<name>`` is ``postgres`` or ``mysql``):

- ``delivery.<name>.pending``: events in memory, not yet in the database (gauge)
- ``delivery.<name>.spooled``: events in the spool on disk, waiting for replay (gauge)
- ``delivery.<name>.written``: events written (counter); ``.duplicates``: already there
- ``delivery.<name>.replayed``: events written from the spool (counter)
- ``delivery.<name>.retries``: failed attempts that will be retried (counter)
- ``delivery.<name>.quarantined``: events the database rejected for good (counter)
- ``dropped.spool_full`` / ``dropped.spool_error``: events lost because memory and
  spool were both full, or the spool could not be written (counters)
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from .._events import UsageEvent
from .._stats import STATS
from .._suppress import suppressed
from ._spool import Spool, SpoolFullError

_logger = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 50_000


class BatchWriter(Protocol):
    """Writes one batch to one database in one transaction; owns the connection."""

    name: str

    def prepare(self, events: Sequence[UsageEvent]) -> object:
        """Build the rows for ``events`` (on the bus thread, overlapping the writer's I/O)."""
        ...

    def write(self, events: Sequence[UsageEvent], prepared: object = None) -> int:
        """Insert ``events`` (idempotently, by id) and return how many were new; raise on failure.

        ``prepared`` is what ``prepare(events)`` returned, or None to build the rows here.
        """
        ...

    def is_permanent(self, error: BaseException) -> bool:
        """Whether the database rejects this batch for good (retrying will not help)."""
        ...

    def reset(self) -> None:
        """Close the connection after a failure; the next write reconnects."""
        ...

    def forget(self) -> None:
        """In a forked child: drop the parent's connection without closing it."""
        ...

    def close(self) -> None: ...


class _Batch(list[UsageEvent]):
    """A queued batch, with the rows ``BatchWriter.prepare`` built for it."""

    prepared: object = None


class DurableExporter:
    """An exporter that never blocks the bus on its database and loses nothing within its bounds.

    Args:
        writer: the database side (connection, SQL, error classification).
        spool: the on-disk spool for this database.
        max_pending: events held in memory; past it, batches go straight to the spool.
        initial_backoff / max_backoff: seconds between retries, doubling from the first
            to the second (with +-20% jitter).
        shutdown_timeout: seconds ``shutdown()`` waits for a write in progress.
    """

    def __init__(
        self,
        writer: BatchWriter,
        *,
        spool: Spool,
        max_pending: int = DEFAULT_MAX_PENDING,
        initial_backoff: float = 0.25,
        max_backoff: float = 10.0,
        shutdown_timeout: float = 5.0,
    ) -> None:
        if max_pending < 1 or initial_backoff <= 0 or max_backoff < initial_backoff:
            raise ValueError("max_pending >= 1 and 0 < initial_backoff <= max_backoff are required")
        self.name = writer.name
        self.writer = writer
        self.spool = spool
        self.max_pending = max_pending
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.shutdown_timeout = shutdown_timeout
        self.replay_batch = 2000  # events per replay transaction
        self._stat = f"delivery.{self.name}."
        self._init_state()
        # Replay what an earlier process left in the spool even if this one never exports.
        recovered = spool.recover_claims()
        if recovered or spool.has_files():
            self._spool_hint = True
            self._publish_spooled()
            self._ensure_thread()

    def _init_state(self) -> None:
        self._cond = threading.Condition()
        self._queue: collections.deque[_Batch] = collections.deque()
        self._pending = 0  # events in _queue plus the batch being written from memory
        self._inflight: list[UsageEvent] | None = None
        self._busy = False
        self._unavailable = False
        self._failures = 0
        self._next_attempt = 0.0
        self._spool_hint = True  # the spool may hold files: look before idling
        self._spool_generation = 0  # bumped by every spill, so a concurrent spill is not missed
        self._closing = False
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- bus side ------------------------------------------------------------

    def export(self, events: Sequence[UsageEvent]) -> None:
        """Queue ``events`` for the writer thread, or spool them; never touches the database."""
        batch = _Batch(events)
        if not batch:
            return
        with self._cond:
            to_disk = (
                self._closed or self._unavailable or self._pending + len(batch) > self.max_pending
            )
        if not to_disk:
            try:
                batch.prepared = self.writer.prepare(batch)
            except Exception:
                # The writer builds the rows itself, and meets (and quarantines) the problem.
                batch.prepared = None
            with self._cond:
                self._enqueue(batch)
        else:
            self._spill([batch], keep_in_memory=not self._closed)
        self._ensure_thread()

    def _enqueue(self, batch: list[UsageEvent]) -> None:
        # Caller holds self._cond.
        self._queue.append(batch if isinstance(batch, _Batch) else _Batch(batch))
        self._pending += len(batch)
        STATS.set(self._stat + "pending", self._pending)
        self._cond.notify_all()

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every event handed over so far is in the database; return whether it is."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._ensure_thread()
        with self._cond:
            self._spool_hint = True
            self._next_attempt = min(self._next_attempt, time.monotonic())  # retry now
            self._cond.notify_all()
            while True:
                if not self._queue and not self._busy and self._pending == 0:
                    if not self._spool_hint and not self.spool.has_files():
                        return True
                    self._spool_hint = True
                    self._cond.notify_all()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(0.1 if remaining is None else min(remaining, 0.1))

    def shutdown(self) -> None:
        """Stop the writer; whatever is still in memory goes to the spool for the next process."""
        with self._cond:
            self._closing = True
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        alive = False
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.shutdown_timeout)
            alive = thread.is_alive()
        with self._cond:
            leftovers: list[list[UsageEvent]] = [*self._queue]
            self._queue.clear()
            if alive and self._inflight is not None:
                # Still being written: spool it too; the insert is idempotent, so it lands once.
                leftovers.append(self._inflight)
            self._pending = 0
            STATS.set(self._stat + "pending", 0)
        if leftovers:
            self._spill(leftovers, keep_in_memory=False)
        if not alive:
            with suppressed():
                self.writer.close()

    def after_fork(self) -> None:
        """In a forked child: start empty (the parent delivers its own queue), reconnect lazily."""
        self.writer.forget()
        self._init_state()

    # -- the writer thread ---------------------------------------------------

    def _ensure_thread(self) -> None:
        with self._cond:
            if self._thread is not None or self._closing:
                return
            thread = threading.Thread(
                target=self._run, name=f"llm-cost-tracker-{self.name}", daemon=True
            )
            self._thread = thread
        thread.start()

    def _run(self) -> None:
        with suppressed():
            while True:
                job = self._next_job()
                if job is None:
                    return
                try:
                    if isinstance(job, _Batch):
                        self._deliver(job)
                    else:
                        self._replay(job)
                except Exception:
                    # A bug of ours; the batch is already spooled or quarantined.
                    STATS.failure(self._stat + "writer_error", f"{self.name} writer failed")
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()

    def _next_job(self) -> _Batch | list[Path] | None:
        while True:
            with self._cond:
                while True:
                    if self._closing:
                        return None
                    now = time.monotonic()
                    if self._unavailable and now < self._next_attempt:
                        self._cond.wait(self._next_attempt - now)
                        continue
                    if self._queue:
                        batch = self._queue.popleft()
                        self._inflight = batch
                        self._busy = True
                        return batch
                    if self._spool_hint:
                        self._busy = True
                        generation = self._spool_generation
                        break
                    self._cond.wait()
            try:
                paths = self.spool.claim(self.replay_batch)
            except OSError:
                paths = []
                STATS.failure(self._stat + "spool_error", f"cannot read {self.spool.directory}")
            if paths:
                return paths
            with self._cond:
                if generation == self._spool_generation:
                    self._spool_hint = False
                self._busy = False
                self._cond.notify_all()
            self._publish_spooled(rescan=True)

    def _deliver(self, batch: list[UsageEvent]) -> None:
        try:
            self._write(batch)
        except Exception as error:
            if self.writer.is_permanent(error):
                self._isolate(batch, error)
                self._forget_inflight(batch, [])
                return
            self._transient(error)
            # The database is away: put this batch and the queue on disk, so a
            # crash during the outage loses nothing.
            with self._cond:
                queued = list(self._queue)
                self._queue.clear()
            self._forget_inflight(batch, queued)
            self._spill([batch, *queued], keep_in_memory=True)
            return
        self._forget_inflight(batch, [])

    def _forget_inflight(self, batch: list[UsageEvent], queued: Sequence[list[UsageEvent]]) -> None:
        with self._cond:
            self._inflight = None
            self._pending -= len(batch) + sum(len(b) for b in queued)
            STATS.set(self._stat + "pending", self._pending)

    def _replay(self, paths: list[Path]) -> None:
        """Write claimed spool files as one batch (small files from an outage add up)."""
        events: list[UsageEvent] = []
        readable: list[Path] = []
        for path in paths:
            try:
                events.extend(Spool.read(path))
            except (OSError, ValueError, KeyError, TypeError) as error:
                reason = f"unreadable spool file: {type(error).__name__}: {error}"
                STATS.failure(self._stat + "spool_corrupt", f"{path} is unreadable; quarantined")
                self.spool.quarantine_corrupt(path, reason)
                continue
            readable.append(path)
        if events:
            try:
                self._write(events)
            except Exception as error:
                if not self.writer.is_permanent(error):
                    self._transient(error)
                    for path in readable:
                        Spool.release(path)
                    return
                self._isolate(events, error)
            else:
                STATS.incr(self._stat + "replayed", len(events))
        for path in readable:
            self.spool.delete(path)
        self._publish_spooled()

    def _write(self, events: list[UsageEvent]) -> None:
        new = self.writer.write(events, getattr(events, "prepared", None))
        STATS.incr(self._stat + "written", new)
        if new != len(events):
            STATS.incr(self._stat + "duplicates", len(events) - new)
        with self._cond:
            if self._unavailable:
                _logger.warning(
                    "llm-cost-tracker: %s is reachable again; replaying the spool", self.name
                )
            self._unavailable = False
            self._failures = 0

    def _isolate(self, events: list[UsageEvent], error: BaseException) -> None:
        """Split a rejected batch until the rejected events are alone; quarantine those."""
        todo: list[tuple[list[UsageEvent], BaseException]] = [(events, error)]
        unwritten: list[list[UsageEvent]] = []
        while todo:
            part, reason = todo.pop()
            if unwritten:  # the database went away meanwhile: keep the rest for later
                unwritten.append(part)
                continue
            if len(part) == 1:
                self._quarantine(part, reason)
                continue
            middle = len(part) // 2
            for half in (part[middle:], part[:middle]):
                try:
                    self._write(half)
                except Exception as half_error:
                    if self.writer.is_permanent(half_error):
                        todo.append((half, half_error))
                    else:
                        self._transient(half_error)
                        unwritten.append(half)
        if unwritten:
            self._spill(unwritten, keep_in_memory=True)

    def _quarantine(self, events: list[UsageEvent], error: BaseException) -> None:
        reason = f"{type(error).__name__}: {error}".strip()
        try:
            self.spool.quarantine(events, reason)
        except OSError:
            STATS.incr("dropped.spool_error", len(events))
            STATS.failure(self._stat + "spool_error", "cannot write the quarantine folder")
            return
        STATS.incr(self._stat + "quarantined", len(events))
        STATS.failure(
            self._stat + "rejected",
            f"{self.name} rejected {len(events)} event(s) for good ({reason}); "
            f"quarantined in {self.spool.quarantine_dir}",
            exc_info=False,
        )

    def _transient(self, error: BaseException) -> None:
        with suppressed():
            self.writer.reset()
        with self._cond:
            self._failures += 1
            self._unavailable = True
            delay = min(self.max_backoff, self.initial_backoff * 2 ** (self._failures - 1))
            delay *= random.uniform(0.8, 1.2)
            self._next_attempt = time.monotonic() + delay
            self._spool_hint = True
        STATS.incr(self._stat + "retries")
        STATS.failure(
            f"errors.exporter.{self.name}",
            f"{self.name} write failed ({type(error).__name__}: {error}); "
            f"retrying in {delay:.1f} s, spooling to {self.spool.directory}",
            exc_info=False,
            interval=30.0,
        )

    # -- the spool -----------------------------------------------------------

    def _spill(self, batches: Sequence[list[UsageEvent]], *, keep_in_memory: bool) -> None:
        """Write batches to the spool; if it is full, keep them in memory while there is room."""
        for batch in batches:
            if not batch:
                continue
            try:
                self.spool.write(batch)
                continue
            except SpoolFullError:
                reason = "spool_full"
            except OSError:
                reason = "spool_error"
                STATS.failure(self._stat + "spool_error", f"cannot write {self.spool.directory}")
            with self._cond:
                if keep_in_memory and self._pending + len(batch) <= self.max_pending:
                    self._enqueue(batch)
                    continue
            STATS.incr(f"dropped.{reason}", len(batch))
            STATS.failure(
                self._stat + reason,
                f"{self.name}: dropped {len(batch)} event(s): memory queue and spool are full",
                exc_info=False,
            )
        with self._cond:
            self._spool_hint = True
            self._spool_generation += 1
            self._cond.notify_all()
        self._publish_spooled()

    def _publish_spooled(self, *, rescan: bool = False) -> None:
        if rescan:
            self.spool.rescan()
        STATS.set(self._stat + "spooled", self.spool.event_count())
