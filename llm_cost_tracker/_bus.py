"""The in-process bus: a bounded queue of finished events, one background worker, stages, exporters.

``emit()`` is O(1) and never blocks: it appends a finished record to a deque
(an instrumented ``Call``, holding plain values only, and the bytes of a
JSON body still to parse, or a ``track()`` ``UsageEvent``), or drops and counts
it when the deque holds ``max_queue`` records or about ``max_queue_bytes`` of
them (bodies included). The worker drains it in batches, turns each ``Call``
into its immutable ``UsageEvent`` (reading a transport's body then), runs each event through
the stages in order, and hands the batch to every exporter (the shape of
OpenTelemetry's ``BatchSpanProcessor``, whose callers end spans and whose
worker turns them into export records).
``flush()`` puts a marker in the queue and waits until the worker has passed
it, so it returns exactly when everything emitted before it has been handed
over. ``defer()`` takes work found where no lock may be taken (a finalizer: a
stream the caller dropped unfinished); the worker runs it before its next
batch, and ``flush()`` before it waits.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from ._events import Call, Reading, UsageEvent
from ._stats import STATS
from ._suppress import suppressed

_logger = logging.getLogger(__name__)

Stage = Callable[[UsageEvent], "UsageEvent | None"]


@runtime_checkable
class Exporter(Protocol):
    """Receives batches of finished events on the bus worker thread."""

    def export(self, events: Sequence[UsageEvent]) -> None: ...

    def shutdown(self) -> None: ...


class CallableExporter:
    """Adapt a plain ``callable(event)`` into an exporter."""

    def __init__(self, func: Callable[[UsageEvent], object], name: str | None = None) -> None:
        self._func = func
        self.name = name or getattr(func, "__qualname__", None) or type(func).__name__

    def export(self, events: Sequence[UsageEvent]) -> None:
        for event in events:
            self._func(event)

    def shutdown(self) -> None:
        return None


def exporter_name(exporter: Exporter) -> str:
    name = getattr(exporter, "name", None)
    return name if isinstance(name, str) else type(exporter).__name__


def stage_name(stage: Stage) -> str:
    return getattr(stage, "__name__", None) or type(stage).__name__


EVENT_OVERHEAD_BYTES = 1024
"""About what an event with no tags holds in memory (its slots, usage, datetime, strings)."""


def approximate_size(record: UsageEvent | Call) -> int:
    """About how many bytes ``record`` keeps alive: a fixed overhead, its tags' text, a body to read."""
    size = EVENT_OVERHEAD_BYTES
    for key, value in record.tags.items():
        size += 50 + len(key) + len(value)  # two str headers and a dict slot
    if type(record) is Call and isinstance(record.found, Reading):
        size += record.found.nbytes
    return size


Record = UsageEvent | Call
"""What the queue holds: an instrumented call (built into its event by the worker) or an event."""


class _FlushMarker:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_BUSES: weakref.WeakSet[Bus] = weakref.WeakSet()


class Bus:
    """Deliver events from the caller's thread to the exporters, off the hot path.

    Args:
        stages: callables run in order on each event; each returns the (new)
            event, or None to drop it. A raising stage is counted under
            ``errors.stage.<name>`` and the event goes on unchanged.
        exporters: objects with ``export(events)`` and ``shutdown()``.
        max_queue: events held in memory at most; past it, events are dropped
            and counted as ``dropped.queue_full``.
        max_queue_bytes: the same bound in (approximate) bytes, so that events
            with many long tags cannot hold more memory than this.
        batch_size: events handed to exporters at a time.
        interval: seconds the worker waits for a batch to fill before exporting.
        synchronous: run stages and exporters in ``emit()`` itself (tests, scripts).
    """

    def __init__(
        self,
        *,
        stages: Sequence[Stage] = (),
        exporters: Sequence[Exporter] = (),
        max_queue: int = 100_000,
        max_queue_bytes: int = 64 * 1024 * 1024,
        batch_size: int = 512,
        interval: float = 1.0,
        synchronous: bool = False,
        exit_timeout: float = 5.0,
    ) -> None:
        if max_queue < 1 or max_queue_bytes < 1 or batch_size < 1 or interval <= 0:
            raise ValueError(
                "max_queue, max_queue_bytes and batch_size must be >= 1 and interval > 0"
            )
        self.stages = list(stages)
        self.exporters = list(exporters)
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.batch_size = batch_size
        self.interval = interval
        self.synchronous = synchronous
        self.exit_timeout = exit_timeout
        self._queue: collections.deque[Record | _FlushMarker] = collections.deque()
        self._queued_bytes = 0  # of the events in the queue; changed under _size_lock
        self._size_lock = threading.Lock()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._closed = False
        self._sync_lock = threading.Lock()
        self._deferred: collections.deque[Callable[[], object]] = collections.deque()
        _BUSES.add(self)

    # -- caller side -------------------------------------------------------

    def emit(self, event: Record) -> None:
        """Queue ``event`` (a finished ``Call`` or a ``UsageEvent``) for export, or process it at once in synchronous mode.

        Never blocks and never raises: a full queue drops the event and counts
        it as ``dropped.queue_full``.
        """
        if self._closed:
            STATS.incr("dropped.shutdown")
            return
        if self.synchronous:
            with self._sync_lock:
                self._process([event])
            STATS.incr("emitted")
            if self._deferred:
                self._run_deferred()
            return
        size = approximate_size(event)
        queue = self._queue
        with self._size_lock:
            if len(queue) >= self.max_queue or self._queued_bytes + size > self.max_queue_bytes:
                full = True
            else:
                full = False
                self._queued_bytes += size
                queue.append(event)
        if full:
            STATS.incr("dropped.queue_full")
            return
        if self._worker is None:
            self._start_worker()
        elif len(queue) >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    def defer(self, work: Callable[[], object]) -> None:
        """Have ``work`` run on the worker thread before its next batch (or in ``flush()``).

        For work found at a moment when no lock may be taken: a finalizer (a
        stream the caller dropped before its end) may run while this very
        thread holds any lock, ours or the caller's, so this only appends to
        a deque. ``work`` typically emits; what it raises is counted under
        ``errors.bus.deferred``.
        """
        self._deferred.append(work)

    def _run_deferred(self) -> None:
        deferred = self._deferred
        while deferred:
            try:
                work = deferred.popleft()
            except IndexError:  # another thread took the last one
                return
            try:
                work()
            except Exception:
                STATS.failure("errors.bus.deferred", "deferred work failed")

    def queued_bytes(self) -> int:
        """About how many bytes the events waiting in the queue hold."""
        return self._queued_bytes

    def pending(self) -> int:
        """Events queued in memory and not yet handed to the exporters."""
        return sum(1 for item in list(self._queue) if not isinstance(item, _FlushMarker))

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Hand every event emitted so far to the exporters; return whether that finished in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._deferred:
            self._run_deferred()  # what it emits is queued before the marker
        if not self.synchronous and self._worker is not None:
            marker = _FlushMarker()
            self._queue.append(marker)
            self._wake.set()
            if not marker.done.wait(timeout):
                return False
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._exporter_flush(remaining)

    def _exporter_flush(self, timeout: float | None) -> bool:
        ok = True
        for exporter in self.exporters:
            flush = getattr(exporter, "flush", None)
            if flush is None:
                continue
            try:
                ok = bool(flush(timeout)) and ok
            except Exception:
                STATS.failure(f"errors.exporter.{exporter_name(exporter)}", "exporter flush failed")
                ok = False
        return ok

    def shutdown(self, timeout: float | None = 5.0) -> bool:
        """Flush, stop the worker and shut the exporters down; return whether everything got out."""
        if self._closed:
            return True
        finished = self.flush(timeout)
        self._closed = True
        self._wake.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
        for exporter in self.exporters:
            try:
                with suppressed():
                    exporter.shutdown()
            except Exception:
                STATS.failure(
                    f"errors.exporter.{exporter_name(exporter)}", "exporter shutdown failed"
                )
                finished = False
        left = self.pending()
        if left:
            STATS.incr("dropped.shutdown", left)
            with self._size_lock:
                self._queue.clear()
                self._queued_bytes = 0
        return finished and not left

    # -- worker side -------------------------------------------------------

    def _start_worker(self) -> None:
        with self._lock:
            if self._worker is not None or self._closed:
                return
            worker = threading.Thread(target=self._run, name="llm-cost-tracker-export", daemon=True)
            worker.start()
            self._worker = worker

    def _run(self) -> None:
        with suppressed():
            while True:
                self._wake.wait(self.interval)
                self._wake.clear()
                self._drain()
                if self._closed:
                    self._drain()
                    return

    def _drain(self) -> None:
        if self._deferred:
            self._run_deferred()
        queue = self._queue
        while queue:
            batch: list[Record] = []
            markers: list[_FlushMarker] = []
            size = 0
            with self._size_lock:
                while queue and len(batch) < self.batch_size:
                    item = queue.popleft()
                    if isinstance(item, _FlushMarker):
                        markers.append(item)
                        break
                    batch.append(item)
                    size += approximate_size(item)
                self._queued_bytes -= size
            if batch:
                STATS.incr("emitted", len(batch))  # counted here, off the caller's thread
                self._process(batch)
            for marker in markers:
                marker.done.set()

    def _process(self, batch: Sequence[Record]) -> None:
        events = [e for e in map(self._run_stages, batch) if e is not None]
        if not events:
            return
        delivered = 0
        with suppressed():
            for exporter in self.exporters:
                try:
                    exporter.export(events)
                    delivered += 1
                except Exception:
                    name = exporter_name(exporter)
                    STATS.incr(f"export_failed.{name}", len(events))
                    STATS.failure(
                        f"errors.exporter.{name}",
                        f"exporter {name} failed on a batch of {len(events)} events",
                    )
        STATS.incr("exported", len(events))

    def _run_stages(self, record: Record) -> UsageEvent | None:
        if type(record) is Call:
            try:
                event = record.event()
            except Exception:
                STATS.incr("dropped.unreadable_call")
                STATS.failure("errors.instrumentation.event", "could not build a call's event")
                return None
        else:
            event = record  # type: ignore[assignment]
        for stage in self.stages:
            try:
                result = stage(event)
            except Exception:
                STATS.failure(
                    f"errors.stage.{stage_name(stage)}",
                    f"stage {stage_name(stage)} failed; the event goes on unchanged",
                )
                continue
            if result is None:
                STATS.incr(f"dropped.stage.{stage_name(stage)}")
                return None
            event = result
        return event

    # -- process lifecycle ---------------------------------------------------

    def _after_fork_in_child(self) -> None:
        # The parent still owns (and will export) what was queued before the fork;
        # the child starts empty, with fresh locks and no worker.
        self._queue = collections.deque()
        self._queued_bytes = 0
        self._size_lock = threading.Lock()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._deferred = collections.deque()
        self._worker = None
        for exporter in self.exporters:
            reset = getattr(exporter, "after_fork", None)
            if reset is not None:
                try:
                    reset()
                except Exception:
                    STATS.failure(
                        f"errors.exporter.{exporter_name(exporter)}", "exporter after_fork failed"
                    )


def _after_fork_in_child() -> None:
    for bus in list(_BUSES):
        bus._after_fork_in_child()


def _shutdown_all_at_exit() -> None:
    for bus in list(_BUSES):
        try:
            bus.shutdown(timeout=bus.exit_timeout)
        except Exception:
            _logger.warning("llm-cost-tracker: shutdown at exit failed", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_shutdown_all_at_exit)
