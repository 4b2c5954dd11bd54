"""Named counters: what was emitted, exported, dropped (by reason) and what failed (by name).

Everything the library gives up on is counted here, so ``stats()``, ``doctor``
and the report can show it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

_logger = logging.getLogger(__name__)


class Stats:
    """Thread-safe named counters, plus rate-limited logging of the failures they count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}

    def incr(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def set(self, name: str, value: int) -> None:
        """Set a gauge, a level rather than a running total (``delivery.postgres.pending``)."""
        with self._lock:
            self._counts[name] = value

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._last_logged.clear()

    def failure(
        self, name: str, message: str, *, exc_info: bool = True, interval: float = 60.0
    ) -> None:
        """Count a failure under ``name`` and log it at most once per ``interval`` seconds."""
        now = time.monotonic()
        with self._lock:
            self._counts[name] += 1
            last = self._last_logged.get(name)
            if last is not None and now - last < interval:
                return
            self._last_logged[name] = now
        _logger.warning("llm-cost-tracker: %s (counted as %r)", message, name, exc_info=exc_info)


STATS = Stats()


def stats() -> dict[str, int]:
    """Return a copy of every counter: ``emitted``, ``exported``, ``dropped.<reason>``, ``errors.<name>``, ..."""
    return STATS.snapshot()
