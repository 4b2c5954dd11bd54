"""The public entry points: configure(), track(), flush(), shutdown(), and the runtime behind them."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from ._bus import Bus
from ._components import COMPONENTS, TOKEN_COMPONENTS
from ._config import (
    UNSET,
    Config,
    ExporterSpec,
    build_exporters,
    build_stages,
    is_disabled,
    resolve,
)
from ._errors import LLMCostTrackerError
from ._events import TokenUsage, UsageEvent
from ._stats import STATS
from ._tags import DefaultTags, DefaultTagSource, Tags, resolve_tags, sanitize_tags
from .budgets._guard import build_guard, install_guard

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

    def deliver(self, event: UsageEvent) -> None:
        """Hand a finished call to the bus, pricing and budget-checking it first when budgets ask.

        Raises only a budget's BudgetExceededError ("raise" mode), after the
        event is on the bus; any other failure is counted.
        """
        if self.price_event is not None:
            # A budget needs the cost now: price here, and the bus keeps this price.
            try:
                event = self.price_event(event)
            except Exception:
                STATS.failure("errors.budget.price", "pricing a call for its budget failed")
        self.bus.emit(event)
        after = self.after_call
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
        stages = build_stages(config)
        guard = build_guard(config)
        if guard is not None:
            stages += guard.stages()
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
        instrumentors = _instrument(config)
        _runtime = Runtime(config, bus, defaults, instrumentors)
        if guard is not None:
            install_guard(_runtime, guard)
        return config


def _instrument(config: Config) -> list[Any]:
    if config.instrument is None:
        return []
    from .instrumentation import load_instrumentors

    active = []
    for instrumentor in load_instrumentors(config.instrument, config.disabled_instrumentations):
        try:
            instrumentor.instrument(config=config)
        except Exception:
            STATS.failure(
                f"errors.instrumentor.{type(instrumentor).__name__}",
                "instrumenting failed; that library is not tracked",
            )
            continue
        active.append(instrumentor)
    return active


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


def _current_span_reader() -> Callable[[], Any]:
    """A function returning the current OpenTelemetry span, or None.

    With OpenTelemetry's default contextvars runtime context (the usual case) it
    reads the context variable directly, which is what ``get_current_span()``
    does through four calls; with any other runtime context, the public API.
    """
    from opentelemetry import trace

    try:
        from opentelemetry import context as otel_context
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
        from opentelemetry.trace.propagation import _SPAN_KEY

        runtime_context = otel_context._RUNTIME_CONTEXT
        if type(runtime_context) is ContextVarsRuntimeContext:
            current = runtime_context._current_context.get
            span_type = trace.Span

            def read() -> Any:
                span = current().get(_SPAN_KEY)
                if span is None:
                    return None  # no span: skip the (ABC) isinstance check
                return span if isinstance(span, span_type) else None

            return read
    except (ImportError, AttributeError):
        pass
    return trace.get_current_span


_current_span: Callable[[], Any] | None = None


def current_span_context() -> Any:
    """The OpenTelemetry span context in force now (an immutable value), or None when there is none.

    Cheap enough for every call's start; turning it into hex ids can wait
    (``trace_ids()``), off the caller's thread.
    """
    global _current_span
    if _current_span is None:
        _current_span = _current_span_reader()
    span = _current_span()
    if span is None:
        return None
    context = span.get_span_context()
    return context if context.is_valid else None


def trace_ids(span_context: Any) -> tuple[str | None, str | None]:
    """(trace_id, span_id) of a span context from ``current_span_context()``, in W3C hex form."""
    if span_context is None:
        return None, None
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


def current_trace_ids() -> tuple[str | None, str | None]:
    """Return (trace_id, span_id) in W3C hex form when an OpenTelemetry span is recording."""
    return trace_ids(current_span_context())


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


# -- manual tracking ----------------------------------------------------------

_USAGE_ALIASES = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "cache_read",
    "cache_write_tokens": "cache_write_5m",
    "cache_write_5m_tokens": "cache_write_5m",
    "cache_write_1h_tokens": "cache_write_1h",
    "cache_write": "cache_write_5m",
    "audio_input_tokens": "audio_input",
    "audio_output_tokens": "audio_output",
    "web_search_requests": "web_search",
}


def _validate_usage(usage: Mapping[str, object], reasoning_tokens: object) -> TokenUsage:
    if not isinstance(usage, Mapping):
        raise TypeError(
            f"usage must be a mapping of component to count, not {type(usage).__name__}"
        )
    tokens: dict[str, int] = {}
    services: dict[str, Decimal] = {}
    for raw_name, value in usage.items():
        name = _USAGE_ALIASES.get(raw_name, raw_name)
        if name not in COMPONENTS:
            known = ", ".join(sorted(COMPONENTS))
            raise ValueError(
                f"usage[{raw_name!r}]: unknown usage component; known components: {known}"
            )
        if name in TOKEN_COMPONENTS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(
                    f"usage[{raw_name!r}]: token counts must be integers, got {value!r}"
                )
            if value < 0:
                raise ValueError(f"usage[{raw_name!r}]: must not be negative, got {value}")
            tokens[name] = tokens.get(name, 0) + value
        else:
            if isinstance(value, bool) or not isinstance(value, (int, Decimal, str, float)):
                raise ValueError(f"usage[{raw_name!r}]: must be a number, got {value!r}")
            try:
                quantity = Decimal(str(value))
            except InvalidOperation:
                raise ValueError(f"usage[{raw_name!r}]: must be a number, got {value!r}") from None
            if not quantity.is_finite() or quantity < 0:
                raise ValueError(
                    f"usage[{raw_name!r}]: must be a finite, non-negative number, got {value!r}"
                )
            services[name] = services.get(name, Decimal(0)) + quantity
    if reasoning_tokens is None:
        reasoning = 0
    elif (
        isinstance(reasoning_tokens, bool)
        or not isinstance(reasoning_tokens, int)
        or reasoning_tokens < 0
    ):
        raise ValueError(
            f"reasoning_tokens: must be a non-negative integer, got {reasoning_tokens!r}"
        )
    else:
        reasoning = reasoning_tokens
    if reasoning > tokens.get("output", 0):
        raise ValueError(
            "reasoning_tokens: is a subset of output tokens and cannot exceed usage['output']"
        )
    return TokenUsage(tokens=tokens, services=services, reasoning_tokens=reasoning)


def _require_text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: must be a non-empty string, got {value!r}")
    return value


def track(
    *,
    provider: str,
    model: str,
    usage: Mapping[str, object] | None,
    operation: str = "chat",
    tags: Mapping[str, object] | None = None,
    pricing_mode: str = "standard",
    reasoning_tokens: int | None = None,
    latency_ms: float | None = None,
    occurred_at: datetime | None = None,
    provider_response_id: str | None = None,
    status: str = "ok",
    error_type: str | None = None,
    stream: bool = False,
) -> UsageEvent:
    """Record a call made outside the instrumented SDKs and return its event.

    ``usage`` maps components (``input``, ``output``, ``cache_read``,
    ``cache_write_5m``, ``cache_write_1h``, ``audio_input``, ``web_search``, ...)
    to counts; the long forms ``input_tokens``/``output_tokens`` are accepted
    too. ``usage=None`` records a call whose usage is unknown. Raises ValueError
    naming the bad field: manual calls are the one place the library raises.
    """
    provider = _require_text("provider", provider)
    model = _require_text("model", model)
    operation = _require_text("operation", operation)
    pricing_mode = _require_text("pricing_mode", pricing_mode)
    if status not in ("ok", "error"):
        raise ValueError(f"status: must be 'ok' or 'error', got {status!r}")
    token_usage = None if usage is None else _validate_usage(usage, reasoning_tokens)
    if latency_ms is not None and (
        isinstance(latency_ms, bool) or not isinstance(latency_ms, (int, float)) or latency_ms < 0
    ):
        raise ValueError(f"latency_ms: must be a non-negative number, got {latency_ms!r}")
    if occurred_at is None:
        occurred_at = datetime.now(timezone.utc)
    elif occurred_at.tzinfo is None:
        raise ValueError("occurred_at: must be timezone-aware (use datetime.now(timezone.utc))")
    else:
        occurred_at = occurred_at.astimezone(timezone.utc)
    explicit = sanitize_tags(tags) if tags else None
    trace_id, span_id = current_trace_ids()
    event = UsageEvent(
        provider=provider,
        model=model,
        operation=operation,
        usage=token_usage,
        occurred_at=occurred_at,
        latency_ms=None if latency_ms is None else float(latency_ms),
        pricing_mode=pricing_mode,
        stream=stream,
        usage_source="manual" if token_usage is not None else "unknown",
        status="ok" if status == "ok" else "error",
        error_type=error_type,
        provider_response_id=provider_response_id,
        trace_id=trace_id,
        span_id=span_id,
        tags=current_call_tags(explicit),
    )
    runtime = get_runtime()
    if runtime is None:
        return event
    runtime.deliver(event)
    return event
