"""Pure usage extraction for Anthropic Messages bodies, stream events and batch results.

Every function accepts either a parsed JSON dict or the ``anthropic`` SDK's
typed object, so the SDK instrumentor and the httpx transport instrumentor
share them. They never raise on a malformed payload: what cannot be read is
unknown (``None``), never zero. Token buckets are disjoint (see
``shared/provider-payloads/README.md``): ``usage.input_tokens`` is already
uncached; cache writes split into 5-minute and 1-hour (all 5-minute when the
``cache_creation`` breakdown is absent).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..._events import TokenUsage
from ..._stats import STATS
from .._extraction import (
    INVALID_USAGE_COUNTER,
    Extraction,
    InvalidUsage,
    build_usage,
    fields,
    get,
    text_or_none,
    token_count,
)

_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cache_creation",
    "server_tool_use",
    "service_tier",
    "speed",
    "inference_geo",
    "output_tokens_details",
)


def usage_from_anthropic(usage: Any) -> TokenUsage | None:
    """Turn an Anthropic ``usage`` object or dict into TokenUsage; None when absent or invalid.

    ``server_tool_use.web_search_requests`` becomes ``services["web_search"]``;
    thinking tokens (``output_tokens_details.thinking_tokens``) are reported as
    ``reasoning_tokens`` (already inside ``output``). Negative or non-integer
    counts make the usage unknown and are counted in ``dropped.usage_invalid``.
    """
    if usage is None:
        return None
    usage = fields(usage)
    try:
        if usage.get("input_tokens") is None and usage.get("output_tokens") is None:
            raise InvalidUsage
        written = token_count(usage.get("cache_creation_input_tokens"))
        breakdown = usage.get("cache_creation")
        if breakdown is not None:
            write_5m = token_count(get(breakdown, "ephemeral_5m_input_tokens"))
            write_1h = token_count(get(breakdown, "ephemeral_1h_input_tokens"))
            if write_5m + write_1h < written:
                write_5m += written - write_5m - write_1h
        else:
            write_5m, write_1h = written, 0
        searches = token_count(get(usage.get("server_tool_use"), "web_search_requests"))
        thinking = token_count(get(usage.get("output_tokens_details"), "thinking_tokens"))
        tokens = {
            "input": token_count(usage.get("input_tokens")),
            "cache_read": token_count(usage.get("cache_read_input_tokens")),
            "cache_write_5m": write_5m,
            "cache_write_1h": write_1h,
            "output": token_count(usage.get("output_tokens")),
        }
    except InvalidUsage:
        STATS.incr(INVALID_USAGE_COUNTER)
        return None
    return build_usage(
        tokens, reasoning=thinking, services={"web_search": Decimal(searches)} if searches else None
    )


def is_us_only(inference_geo: Any) -> bool:
    """Whether ``inference_geo`` says inference ran only in the United States (``"us"``, ``"us-..."``)."""
    if not isinstance(inference_geo, str):
        return False
    geo = inference_geo.strip().lower()
    return geo == "us" or geo.startswith(("us-", "us_"))


def pricing_mode_for_usage(usage: Any, *, batch: bool = False) -> str:
    """Pricing mode from ``usage.service_tier``, ``speed`` and ``inference_geo``, e.g. ``"priority+fast"``.

    ``batch=True`` (a message batch result) forces the ``batch`` base tier.
    """
    usage = fields(usage)
    tier = usage.get("service_tier")
    if batch or tier == "batch":
        mode = "batch"
    elif tier == "priority":
        mode = "priority"
    else:
        mode = "standard"
    if usage.get("speed") == "fast":
        mode += "+fast"
    geo = usage.get("inference_geo")
    if geo is not None and is_us_only(geo):
        mode += "+us_only"
    return mode


def extract_anthropic(message: Any, *, batch: bool = False) -> Extraction:
    """Read usage, model, id and pricing mode from a Messages response (``Message`` or dict). Never raises."""
    message = fields(message)
    usage_obj = message.get("usage")
    tier = get(usage_obj, "service_tier")
    return Extraction(
        usage_from_anthropic(usage_obj),
        text_or_none(message.get("model")),
        text_or_none(message.get("id")),
        pricing_mode_for_usage(usage_obj, batch=batch),
        tier if isinstance(tier, str) else None,
    )


def extract_batch_result(entry: Any) -> Extraction | None:
    """Read one message-batch result line (``{"custom_id", "result": {"type", "message"}}``).

    Returns the extraction (priced as ``batch``) for a ``succeeded`` result,
    None for errored / canceled / expired results, which are not billed.
    """
    result = get(entry, "result")
    if get(result, "type") != "succeeded":
        return None
    return extract_anthropic(get(result, "message"), batch=True)


class AnthropicStreamState:
    """Accumulate a Messages event stream: feed every event to ``add()``.

    ``message_start`` gives id, model and the initial usage; each
    ``message_delta`` usage is cumulative and overrides the fields it carries
    (the others keep their ``message_start`` value). An ``error`` event means
    there is no final usage.
    """

    __slots__ = ("complete", "errored", "model", "response_id", "usage", "usage_seen")

    def __init__(self) -> None:
        self.model: str | None = None
        self.response_id: str | None = None
        self.usage: dict[str, Any] = {}
        self.usage_seen = False
        self.errored = False
        self.complete = False  # a message_delta (the final, cumulative usage) arrived

    def add(self, event: Any) -> None:
        """Take what ``event`` says about the call; never raises on a malformed event."""
        kind = get(event, "type")
        if kind == "message_start":
            message = get(event, "message")
            self.response_id = text_or_none(get(message, "id")) or self.response_id
            self.model = text_or_none(get(message, "model")) or self.model
            self._merge(get(message, "usage"))
        elif kind == "message_delta":
            self._merge(get(event, "usage"))
            self.complete = True
        elif kind == "error":
            self.errored = True

    def _merge(self, usage: Any) -> None:
        if usage is None:
            return
        self.usage_seen = True
        for name in _USAGE_FIELDS:
            value = get(usage, name)
            if value is not None:
                self.usage[name] = value

    def result(self) -> Extraction:
        """What the stream said; usage None when it errored or carried no usage."""
        if self.errored or not self.usage_seen:
            return Extraction(usage=None, model=self.model, response_id=self.response_id)
        tier = self.usage.get("service_tier")
        return Extraction(
            usage=usage_from_anthropic(self.usage),
            model=self.model,
            response_id=self.response_id,
            pricing_mode=pricing_mode_for_usage(self.usage),
            service_tier=tier if isinstance(tier, str) else None,
        )


__all__ = [
    "AnthropicStreamState",
    "extract_anthropic",
    "extract_batch_result",
    "is_us_only",
    "pricing_mode_for_usage",
    "usage_from_anthropic",
]
