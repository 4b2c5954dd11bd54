"""The OpenTelemetry span a call runs under: read when the call starts, as W3C ids on its event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_get_current_span: Callable[[], Any] | None = None  # opentelemetry's, imported on first use


def current_span_context() -> Any:
    """The span context in force now (an immutable value), or None when no valid span is current.

    Cheap enough for every call's start; turning it into hex ids waits for
    ``trace_ids()``. OpenTelemetry is imported on the first call, not when
    ``llm_cost_tracker`` is.
    """
    global _get_current_span
    if _get_current_span is None:
        from opentelemetry.trace import get_current_span

        _get_current_span = get_current_span
    context = _get_current_span().get_span_context()
    return context if context.is_valid else None


def trace_ids(span_context: Any) -> tuple[str | None, str | None]:
    """(trace_id, span_id) of a span context from ``current_span_context()``, in W3C hex form."""
    if span_context is None:
        return None, None
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


def current_trace_ids() -> tuple[str | None, str | None]:
    """Return (trace_id, span_id) in W3C hex form when an OpenTelemetry span is recording."""
    return trace_ids(current_span_context())
