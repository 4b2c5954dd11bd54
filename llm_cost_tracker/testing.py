"""Test helpers for users and for our own tests: an in-memory exporter and ``capture_events()``."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ._events import UsageEvent
from ._stats import STATS


class InMemoryExporter:
    """Keep exported events in a bounded list (oldest first); events past ``max_events`` are counted, not kept."""

    name = "memory"

    def __init__(self, *, max_events: int = 100_000) -> None:
        self.max_events = max_events
        self._events: list[UsageEvent] = []
        self._lock = threading.Lock()
        self.dropped = 0

    def export(self, events: Sequence[UsageEvent]) -> None:
        with self._lock:
            room = self.max_events - len(self._events)
            self._events.extend(events[: max(room, 0)])
            if len(events) > room:
                cut = len(events) - max(room, 0)
                self.dropped += cut
                STATS.incr("dropped.memory_exporter_full", cut)

    @property
    def events(self) -> list[UsageEvent]:
        """A copy of the events exported so far."""
        with self._lock:
            return list(self._events)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def shutdown(self) -> None:
        return None


@contextmanager
def capture_events(**configure_kwargs: Any) -> Iterator[list[UsageEvent]]:
    """Record into a list for the duration of the block, synchronously, with no database.

    Yields a list that fills as calls are recorded (priced and budget-checked as
    configured). The previous configuration is shut down first; afterwards the
    library is left unconfigured. ``configure_kwargs`` go to ``configure()``
    (``instrument`` defaults to ``None`` here: patch explicitly or pass it).
    """
    from ._api import configure, shutdown

    captured: list[UsageEvent] = []
    configure_kwargs.setdefault("database_url", None)
    configure_kwargs.setdefault("instrument", None)
    configure_kwargs.setdefault("synchronous", True)
    exporters = list(configure_kwargs.pop("exporters", []))
    exporters.append(captured.append)
    shutdown()
    configure(exporters=exporters, **configure_kwargs)
    try:
        yield captured
    finally:
        shutdown()


__all__ = ["InMemoryExporter", "capture_events"]
