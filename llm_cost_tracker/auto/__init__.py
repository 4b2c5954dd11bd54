"""Auto-instrumentation: turn cost tracking on for a program that never imports llm_cost_tracker.

``llm-cost-instrument`` puts a ``sitecustomize`` on ``PYTHONPATH`` that calls
``initialize()``; the ``opentelemetry_instrumentor`` entry point calls it too,
under ``opentelemetry-instrument``. Everything comes from the
``LLM_COST_TRACKER_*`` environment. ``initialize()`` never breaks the program:
a failure is logged and the program runs uninstrumented.
"""

from __future__ import annotations

import logging
import threading

_logger = logging.getLogger(__name__)

_lock = threading.Lock()
_initialized = False


class _ForkHook:
    """Registered with multiprocessing: its children deliver their events before ``os._exit``."""

    def __call__(self, _: object) -> None:
        from multiprocessing import util

        from .._api import flush

        # multiprocessing ends a forked child with os._exit(), which skips atexit;
        # its finalizers still run, so flush from one.
        util.Finalize(None, flush, kwargs={"timeout": 5.0}, exitpriority=100)


_FORK_HOOK = _ForkHook()


def initialize() -> bool:
    """Configure llm-cost-tracker from the environment, once; return whether it is now active.

    Never raises: a bad setting or a failing plugin is logged, and the program
    goes on uninstrumented.
    """
    global _initialized
    with _lock:
        if _initialized:
            return _is_active()
        _initialized = True
        try:
            from .._config import is_disabled

            if is_disabled():
                _logger.info("llm-cost-tracker: disabled by LLM_COST_TRACKER_DISABLED")
                return False
            from .. import configure

            configure()
            _register_fork_hook()
        except Exception:
            _logger.warning(
                "llm-cost-tracker: auto-instrumentation failed; the program runs without cost tracking",
                exc_info=True,
            )
            _give_up()
            return False
        return _is_active()


def _is_active() -> bool:
    from .._api import get_config

    return get_config() is not None


def _register_fork_hook() -> None:
    from multiprocessing import util

    util.register_after_fork(_FORK_HOOK, _FORK_HOOK)


def _give_up() -> None:
    try:
        from .. import shutdown

        shutdown(timeout=1.0)
    except Exception:
        _logger.debug("llm-cost-tracker: cleanup after a failed start failed too", exc_info=True)


def reset() -> None:
    """Forget that ``initialize()`` ran, so a later call configures again (after ``shutdown()``)."""
    global _initialized
    with _lock:
        _initialized = False


__all__ = ["initialize", "reset"]
