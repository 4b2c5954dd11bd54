"""``track()``: record a call made outside the instrumented SDKs, with its usage checked field by field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from ._api import current_call_tags, get_runtime
from ._components import COMPONENTS, TOKEN_COMPONENTS
from ._events import TokenUsage, UsageEvent
from ._spans import current_trace_ids
from ._tags import sanitize_tags

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
