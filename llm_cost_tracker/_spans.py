"""The OpenTelemetry span a call runs under: read when the call starts, as W3C ids on its event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# opentelemetry's get_current() and get_current_span(), imported on first use
_get_current: Callable[[], Any] | None = None
_get_current_span: Callable[[Any], Any] | None = None


def current_span_context() -> Any:
    """The span context in force now (an immutable value), or None when no valid span is current.

    Cheap enough for every call's start: an empty OpenTelemetry context (no
    span, nothing else) is answered at once, and turning a span context into
    hex ids waits for ``trace_ids()``. OpenTelemetry is imported on the first
    call, not when ``llm_cost_tracker`` is.
    """
    if _get_current is None:
        _import_opentelemetry()
    context = _get_current()  # type: ignore[misc]
    if not context:
        return None
    span_context = _get_current_span(context).get_span_context()  # type: ignore[misc]
    return span_context if span_context.is_valid else None


def _import_opentelemetry() -> None:
    global _get_current, _get_current_span
    from opentelemetry.context import get_current
    from opentelemetry.trace import get_current_span

    _get_current_span = get_current_span
    _get_current = get_current


def trace_ids(span_context: Any) -> tuple[str | None, str | None]:
    """(trace_id, span_id) of a span context from ``current_span_context()``, in W3C hex form."""
    if span_context is None:
        return None, None
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


def current_trace_ids() -> tuple[str | None, str | None]:
    """Return (trace_id, span_id) in W3C hex form when an OpenTelemetry span is recording."""
    return trace_ids(current_span_context())
