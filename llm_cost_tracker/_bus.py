"""The in-process bus: a bounded queue, one background worker, stages, exporter fan-out.

``emit()`` is O(1) and never blocks: it appends to a deque (or drops and counts
when the deque is full). The worker drains it in batches, runs each event
through the stages in order, and hands the batch to every exporter. ``flush()``
puts a marker in the queue and waits until the worker has passed it, so it
returns exactly when everything emitted before it has been handed over.
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
from typing import Any, Protocol, runtime_checkable

from ._events import UsageEvent
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


class Pending(Protocol):
    """A finished call whose event is built on the worker: ``build()`` returns it, or None.

    Instrumentation hands these to ``Bus.defer()`` so that reading usage out of
    a response and building the event happen off the caller's thread. None
    means there is nothing to record (a background response still running, a
    response id already recorded).
    """

    def build(self) -> UsageEvent | None: ...


# The cheapest pending call to make on a caller's thread: a plain tuple
# ``(build, *args)`` (one allocation, no attribute writes); the worker runs
# ``build(*args)``, which returns the event or None like ``Pending.build()``.
Deferred = tuple[Any, ...]


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
        batch_size: int = 512,
        interval: float = 1.0,
        synchronous: bool = False,
        exit_timeout: float = 5.0,
    ) -> None:
        if max_queue < 1 or batch_size < 1 or interval <= 0:
            raise ValueError("max_queue and batch_size must be >= 1 and interval > 0")
        self.stages = list(stages)
        self.exporters = list(exporters)
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.interval = interval
        self.synchronous = synchronous
        self.exit_timeout = exit_timeout
        self._queue: collections.deque[_Item] = collections.deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._closed = False
        self._sync_lock = threading.Lock()
        self._pid = os.getpid()
        _BUSES.add(self)

    # -- caller side -------------------------------------------------------

    def emit(self, event: UsageEvent) -> None:
        """Queue ``event`` for export. Never blocks and never raises."""
        if self._put(event):
            STATS.incr("emitted")

    def _put(self, item: UsageEvent | Pending | Deferred) -> bool:
        """Queue ``item`` (or process it at once in synchronous mode); False when it was dropped."""
        if self._closed:
            STATS.incr("dropped.shutdown")
            return False
        if self.synchronous:
            with self._sync_lock:
                self._process([item])
            return True
        queue = self._queue
        if len(queue) >= self.max_queue:
            STATS.incr("dropped.queue_full")
            return False
        queue.append(item)
        if self._worker is None:
            self._start_worker()
        elif len(queue) >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    # Queue a finished call whose event the worker builds (``pending.build()``, or
    # ``build(*args)`` for a ``(build, *args)`` tuple); False when it was dropped.
    # Never raises. Cheaper than ``emit()`` on the caller's thread: no event is
    # built and no counter lock is taken; ``emitted`` is counted when the worker
    # builds it. ``_put`` itself, so that the hot path makes one call, not two.
    defer = _put

    def pending(self) -> int:
        """Events queued in memory and not yet handed to the exporters."""
        return sum(1 for item in list(self._queue) if not isinstance(item, _FlushMarker))

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Hand every event emitted so far to the exporters; return whether that finished in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
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
            self._queue.clear()
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
        queue = self._queue
        while queue:
            batch: list[UsageEvent | Pending | Deferred] = []
            markers: list[_FlushMarker] = []
            while queue and len(batch) < self.batch_size:
                item = queue.popleft()
                if isinstance(item, _FlushMarker):
                    markers.append(item)
                    break
                batch.append(item)
            if batch:
                self._process(batch)
            for marker in markers:
                marker.done.set()

    def _process(self, batch: Sequence[UsageEvent | Pending | Deferred]) -> None:
        events = [e for e in (self._run_stages(event) for event in _built(batch)) if e is not None]
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

    def _run_stages(self, event: UsageEvent) -> UsageEvent | None:
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
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._worker = None
        self._pid = os.getpid()
        for exporter in self.exporters:
            reset = getattr(exporter, "after_fork", None)
            if reset is not None:
                try:
                    reset()
                except Exception:
                    STATS.failure(
                        f"errors.exporter.{exporter_name(exporter)}", "exporter after_fork failed"
                    )


_Item = UsageEvent | Pending | Deferred | _FlushMarker


def _built(batch: Sequence[UsageEvent | Pending | Deferred]) -> list[UsageEvent]:
    """The batch as events: deferred calls are built here, on the worker, and counted as emitted."""
    events: list[UsageEvent] = []
    built = 0
    for item in batch:
        if isinstance(item, UsageEvent):
            events.append(item)
            continue
        try:
            event = item[0](*item[1:]) if isinstance(item, tuple) else item.build()
        except Exception:
            STATS.failure("errors.instrumentation.finish", "could not record a finished call")
            continue
        if event is not None:
            events.append(event)
            built += 1
    if built:
        STATS.incr("emitted", built)
    return events


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
