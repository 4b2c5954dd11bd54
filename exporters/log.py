"""The log exporter: one JSON line per event through the standard ``logging`` module."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from .._events import UsageEvent

_logger = logging.getLogger("llm_cost_tracker.events")


def event_to_dict(event: UsageEvent) -> dict[str, Any]:
    """Return a JSON-ready dict of ``event``: counts, costs as decimal strings, tags. No content."""
    usage = event.usage
    cost = event.cost
    return {
        "id": event.id,
        "occurred_at": event.occurred_at.isoformat(),
        "provider": event.provider,
        "model": event.model,
        "request_model": event.request_model,
        "operation": event.operation,
        "usage": None
        if usage is None
        else {
            "tokens": dict(usage.tokens),
            "services": {k: format(v, "f") for k, v in usage.services.items()},
            "reasoning_tokens": usage.reasoning_tokens,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
        },
        "total_cost": None if cost.total is None else format(cost.total, "f"),
        "currency": cost.currency,
        "cost_status": cost.status,
        "pricing_mode": event.pricing_mode,
        "latency_ms": event.latency_ms,
        "stream": event.stream,
        "usage_source": event.usage_source,
        "status": event.status,
        "error_type": event.error_type,
        "provider_response_id": event.provider_response_id,
        "trace_id": event.trace_id,
        "span_id": event.span_id,
        "tags": dict(event.tags),
    }


class LogExporter:
    """Log each event as one JSON object on the ``llm_cost_tracker.events`` logger at INFO."""

    name = "log"

    def __init__(self, *, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self._logger = logger or _logger
        self._level = level

    def export(self, events: Sequence[UsageEvent]) -> None:
        if not self._logger.isEnabledFor(self._level):
            return
        for event in events:
            self._logger.log(self._level, json.dumps(event_to_dict(event), separators=(",", ":")))

    def shutdown(self) -> None:
        return None
