"""The public entry points: configure(), track(), flush(), shutdown(), and the runtime behind them."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._bus import Bus
from ._config import (
    UNSET,
    Config,
    ExporterSpec,
    is_disabled,
    resolve,
)
from ._errors import LLMCostTrackerError
from ._events import Call, UsageEvent
from ._pipeline import build_exporters, build_instrumentors, build_stages, install_guard
from ._stats import STATS
from ._tags import DefaultTags, DefaultTagSource, Tags, resolve_tags

if TYPE_CHECKING:
    from .budgets import Budgets

_logger = logging.getLogger(__name__)


class Runtime:
    """What ``configure()`` built: the config, the bus, default tags and the active instrumentors."""

    def __init__(
        self, config: Config, bus: Bus, defaults: DefaultTagSource, instrumentors: list[Any]
    ) -> None:
        self.config = config
        self.bus = bus
        self.defaults = defaults
        self.instrumentors = instrumentors
        # Budget guardrails set these (llm_cost_tracker.budgets). before_call may
        # raise BudgetExceededError before a request is sent ("block");
        # after_call may raise it in the caller's thread once the call is
        # recorded ("raise"). Everything else they do must not raise.
        self.before_call: (
            Callable[[str, str | None, Mapping[str, Any], Tags | None], None] | None
        ) = None
        self.after_call: Callable[[UsageEvent], None] | None = None
        # Set with budgets: prices an event in the caller's thread, so after_call
        # sees its cost and the bus gets it already priced.
        self.price_event: Callable[[UsageEvent], UsageEvent] | None = None
        self.budget_guard: Any = None

    def set_hooks(
        self,
        *,
        before_call: Callable[[str, str | None, Mapping[str, Any], Tags | None], None]
        | None = None,
        after_call: Callable[[UsageEvent], None] | None = None,
        price_event: Callable[[UsageEvent], UsageEvent] | None = None,
    ) -> None:
        """Install the budget hooks (None removes one)."""
        self.before_call = before_call
        self.after_call = after_call
        self.price_event = price_event

    def deliver(self, record: UsageEvent | Call) -> None:
        """Hand a finished call (or a ``track()`` event) to the bus.

        Usually the bus worker builds, prices and exports the event. With a
        budget in "raise" or "block" mode the event is built and priced here,
        so that the budget check sees its cost in the caller's thread. Raises only a budget's
        BudgetExceededError ("raise" mode), after the event is on the bus; any
        other failure is counted.
        """
        after = self.after_call
        if after is None and self.price_event is None:
            self.bus.emit(record)
            return
        try:
            event = record.event() if isinstance(record, Call) else record
        except Exception:
            STATS.failure("errors.instrumentation.finish", "could not record a finished call")
            return
        if self.price_event is not None:
            # A budget needs the cost now: price here, and the bus keeps this price.
            try:
                event = self.price_event(event)
            except Exception:
                STATS.failure("errors.budget.price", "pricing a call for its budget failed")
        self.bus.emit(event)
        if after is None:
            return
        try:
            after(event)
        except LLMCostTrackerError:
            raise  # a budget set to "raise": the call is recorded, then this
        except Exception:
            STATS.failure("errors.budget.after_call", "the budget check failed")


_lock = threading.RLock()
_runtime: Runtime | None = None
_disabled_runtime: Runtime | None = None


def configure(
    *,
    database_url: str | None = UNSET,
    exporters: Sequence[ExporterSpec] | None = None,
    instrument: str | Sequence[str] | None = UNSET,
    disabled_instrumentations: Sequence[str] | None = None,
    default_tags: DefaultTags = None,
    prices_file: str | os.PathLike[str] | None = None,
    pricing_overrides: Mapping[str, Any] | None = None,
    azure_deployments: Mapping[str, str] | None = None,
    budgets: Budgets | None = None,
    queue_size: int | None = None,
    queue_max_bytes: int | None = None,
    batch_size: int = 512,
    export_interval: float = 1.0,
    synchronous: bool = False,
    stream_usage: bool = True,
    spool_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Set up llm-cost-tracker: where events go, what gets patched, tags, prices and budgets.

    Keyword-only. Calling it again with the same settings does nothing; with
    different settings it flushes and replaces the previous pipeline. See
    ``docs/configuration.md`` for every argument and its environment variable.
    An argument it does not know is a ``TypeError`` (and a type-checker error).
    """
    global _runtime
    config = resolve(
        database_url=database_url,
        exporters=exporters,
        instrument=instrument,
        disabled_instrumentations=disabled_instrumentations,
        default_tags=default_tags,
        prices_file=prices_file,
        pricing_overrides=pricing_overrides,
        azure_deployments=azure_deployments,
        budgets=budgets,
        queue_size=queue_size,
        queue_max_bytes=queue_max_bytes,
        batch_size=batch_size,
        export_interval=export_interval,
        synchronous=synchronous,
        stream_usage=stream_usage,
        spool_dir=spool_dir,
    )
    with _lock:
        if is_disabled():
            _logger.info(
                "llm-cost-tracker is disabled by LLM_COST_TRACKER_DISABLED; nothing is recorded"
            )
            _teardown_locked()
            return config
        if _runtime is not None and _runtime.config == config:
            return config
        # Build the new pipeline before tearing down the old one, so a bad
        # setting raises and leaves what worked in place.
        exporters = build_exporters(config)
        stages, guard = build_stages(config)
        bus = Bus(
            stages=stages,
            exporters=exporters,
            max_queue=config.queue_size,
            max_queue_bytes=config.queue_max_bytes,
            batch_size=config.batch_size,
            interval=config.export_interval,
            synchronous=config.synchronous,
        )
        defaults = DefaultTagSource(config.default_tags)
        _teardown_locked()
        instrumentors = build_instrumentors(config)
        _runtime = Runtime(config, bus, defaults, instrumentors)
        if guard is not None:
            install_guard(_runtime, guard)
        return config


def _teardown_locked(timeout: float = 5.0) -> None:
    global _runtime
    runtime, _runtime = _runtime, None
    if runtime is None:
        return
    for instrumentor in runtime.instrumentors:
        try:
            instrumentor.uninstrument()
        except Exception:
            STATS.failure("errors.uninstrument", "uninstrumenting failed")
    if runtime.budget_guard is not None:
        runtime.budget_guard.close()
    runtime.bus.shutdown(timeout)


def get_runtime() -> Runtime | None:
    """Return the active runtime, configuring from the environment on first use.

    Returns None when LLM_COST_TRACKER_DISABLED is set.
    """
    runtime = _runtime
    if runtime is not None:
        return runtime
    if is_disabled():
        return None
    with _lock:
        if _runtime is None:
            _logger.info("llm-cost-tracker: configuring from the environment on first use")
            configure()
        return _runtime


def active_runtime() -> Runtime | None:
    """The runtime in force, or None; never configures one, and takes no lock (finalizers call it)."""
    return _runtime


def get_config() -> Config | None:
    """Return the configuration in force, or None before ``configure()``."""
    runtime = _runtime
    return None if runtime is None else runtime.config


def current_call_tags(explicit: Mapping[str, str] | None = None) -> Tags:
    """Return the tags a call starting now carries: default < scoped < explicit."""
    runtime = get_runtime()
    if runtime is None:
        return resolve_tags(DefaultTagSource(None), explicit)
    return resolve_tags(runtime.defaults, explicit)


def flush(timeout: float | None = 5.0) -> bool:
    """Deliver every event recorded so far; return whether it all got out within ``timeout`` seconds.

    True means done: every event recorded before the call has been priced,
    budget-checked and exported, and any budget callback it triggered has run.
    """
    runtime = _runtime
    if runtime is None:
        return True
    deadline = None if timeout is None else time.monotonic() + timeout
    if not runtime.bus.flush(timeout):
        return False
    guard = runtime.budget_guard
    if guard is None:
        return True
    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
    return bool(guard.flush(remaining))


def shutdown(timeout: float | None = 5.0) -> bool:
    """Flush, stop the background worker, close exporters and remove patches."""
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
        if runtime is None:
            return True
        for instrumentor in runtime.instrumentors:
            try:
                instrumentor.uninstrument()
            except Exception:
                STATS.failure("errors.uninstrument", "uninstrumenting failed")
        if runtime.budget_guard is not None:
            runtime.budget_guard.close()
        return runtime.bus.shutdown(timeout)
