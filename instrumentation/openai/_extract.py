"""Pure usage extraction for OpenAI-shaped bodies: chat, responses, completions, embeddings, images, audio.

Every function accepts either a parsed JSON dict or the ``openai`` SDK's typed
object (fields are read with :func:`get`), so the SDK instrumentor and the
httpx transport instrumentor share them. They never raise on a malformed
payload: what cannot be read is unknown (``None``), never zero. Token buckets
are disjoint (see ``shared/provider-payloads/README.md``).

OpenAI-compatible providers are covered too: DeepSeek ``prompt_cache_hit_tokens``,
Groq ``x_groq.usage``, OpenRouter ``usage.cost``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from ..._events import TokenUsage
from ..._stats import STATS
from .._extraction import (
    INVALID_USAGE_COUNTER,
    Extraction,
    InvalidUsage,
    build_usage,
    decimal_or_none,
    fields,
    get,
    text_or_none,
    token_count,
)

_TIER_MODES = {
    "default": "standard",
    "auto": "standard",
    "scale": "standard",
    "standard": "standard",
    "flex": "flex",
    "priority": "priority",
    "batch": "batch",
    "fast": "standard+fast",
}


def pricing_mode_for_tier(service_tier: Any) -> str:
    """Map OpenAI's ``service_tier`` (the tier actually used) to a pricing mode; unknown -> standard."""
    if not isinstance(service_tier, str):
        return "standard"
    return _TIER_MODES.get(service_tier.lower(), "standard")


# -- usage objects -------------------------------------------------------------


def _chat_usage(usage: Mapping[str, Any]) -> TokenUsage:
    """``prompt_tokens``/``completion_tokens`` usage (chat, completions, embeddings, compatibles)."""
    prompt = token_count(usage.get("prompt_tokens"))
    completion = token_count(usage.get("completion_tokens"))
    prompt_details = fields(usage.get("prompt_tokens_details"))
    completion_details = fields(usage.get("completion_tokens_details"))
    cached = token_count(prompt_details.get("cached_tokens"))
    deepseek_hit = usage.get("prompt_cache_hit_tokens")
    if deepseek_hit is not None:  # DeepSeek reports the hit twice; count it once
        cached = token_count(deepseek_hit)
    cache_write = token_count(prompt_details.get("cache_write_tokens"))
    audio_in = token_count(prompt_details.get("audio_tokens"))
    audio_out = token_count(completion_details.get("audio_tokens"))
    reasoning = token_count(completion_details.get("reasoning_tokens"))
    text_in = prompt - cached - cache_write - audio_in
    text_out = completion - audio_out
    if text_in < 0 or text_out < 0:
        raise InvalidUsage
    return build_usage(
        {
            "input": text_in,
            "cache_read": cached,
            "cache_write_5m": cache_write,
            "audio_input": audio_in,
            "output": text_out,
            "audio_output": audio_out,
        },
        reasoning=reasoning,
        reported_cost=decimal_or_none(usage.get("cost")),
    )


def _cache_writes(details: Mapping[str, Any]) -> dict[str, int]:
    """Responses ``cache_write_tokens``: 30-minute retention -> cache_write_5m, 12-hour -> cache_write_1h."""
    total = token_count(details.get("cache_write_tokens"))
    breakdown = details.get("cache_write_tokens_details")
    if breakdown is None:
        return {"cache_write_5m": total}
    short = token_count(get(breakdown, "ttl_30m_tokens"))
    long = token_count(get(breakdown, "ttl_12h_tokens"))
    if short + long != total and total:
        short += max(total - short - long, 0)
    return {"cache_write_5m": short, "cache_write_1h": long}


def _responses_usage(usage: Mapping[str, Any], *, images: bool = False) -> TokenUsage:
    """``input_tokens``/``output_tokens`` usage (Responses API, gpt-image, token-billed transcription)."""
    total_in = token_count(usage.get("input_tokens"))
    total_out = token_count(usage.get("output_tokens"))
    in_details = fields(usage.get("input_tokens_details") or usage.get("input_token_details"))
    raw_out_details = usage.get("output_tokens_details")
    out_details = fields(raw_out_details)
    cached = token_count(in_details.get("cached_tokens"))
    writes = _cache_writes(in_details)
    image_in = token_count(in_details.get("image_tokens"))
    audio_in = token_count(in_details.get("audio_tokens"))
    image_out = token_count(out_details.get("image_tokens"))
    reasoning = token_count(out_details.get("reasoning_tokens"))
    if images and raw_out_details is None:
        # gpt-image without an output breakdown: every output token is an image token
        image_out = total_out
    text_in = total_in - cached - sum(writes.values()) - image_in - audio_in
    text_out = total_out - image_out
    if text_in < 0 or text_out < 0:
        raise InvalidUsage
    return build_usage(
        {
            "input": text_in,
            "cache_read": cached,
            **writes,
            "image_input": image_in,
            "audio_input": audio_in,
            "output": text_out,
            "image_output": image_out,
        },
        reasoning=reasoning,
        reported_cost=decimal_or_none(usage.get("cost")),
    )


def usage_from_openai(usage: Any, *, images: bool = False) -> TokenUsage | None:
    """Turn any OpenAI ``usage`` object or dict into TokenUsage; None when absent or invalid.

    Recognizes chat-style (``prompt_tokens``), Responses/images-style
    (``input_tokens``) and duration-billed transcription (``{"type": "duration",
    "seconds": ...}`` -> ``services["audio_second"]``). Negative or non-integer
    counts make the usage unknown and are counted in ``dropped.usage_invalid``.
    ``images=True`` (an images API body) bills output without a breakdown as image output.
    """
    if usage is None:
        return None
    usage = fields(usage)
    try:
        if usage.get("prompt_tokens") is not None or usage.get("completion_tokens") is not None:
            return _chat_usage(usage)
        if usage.get("input_tokens") is not None or usage.get("output_tokens") is not None:
            return _responses_usage(usage, images=images)
        if usage.get("type") == "duration":
            seconds = decimal_or_none(usage.get("seconds"))
            if seconds is None:
                raise InvalidUsage
            return TokenUsage(services={"audio_second": seconds})
    except InvalidUsage:
        STATS.incr(INVALID_USAGE_COUNTER)
        return None
    if type(usage) is dict and not usage:
        return None
    STATS.incr(INVALID_USAGE_COUNTER)
    return None


def _with_services(usage: TokenUsage | None, services: Mapping[str, Decimal]) -> TokenUsage | None:
    if usage is None or not services:
        return usage
    merged = dict(usage.services)
    for name, quantity in services.items():
        merged[name] = merged.get(name, Decimal(0)) + quantity
    return TokenUsage(
        tokens=usage.tokens,
        services=merged,
        reasoning_tokens=usage.reasoning_tokens,
        reported_cost=usage.reported_cost,
    )


def count_web_search_calls(output: Any) -> int:
    """Count ``web_search_call`` items in a Responses ``output`` list (each is one billed search)."""
    if not isinstance(output, Iterable) or isinstance(output, (str, bytes, Mapping)):
        return 0
    return sum(1 for item in output if get(item, "type") == "web_search_call")


# -- whole bodies ---------------------------------------------------------------


def extract_openai(body: Any) -> Extraction:
    """Read usage, model, response id and tier from any OpenAI-shaped response body.

    Accepts a chat completion (or a stream chunk), a legacy completion, an
    embedding list, a Responses ``Response`` or a ``response.completed`` /
    ``response.incomplete`` / ``response.failed`` stream event, an images
    response and a transcription. Groq's ``x_groq.usage`` is used when ``usage``
    is absent. Never raises.
    """
    body = fields(body)
    if body.get("response") is not None and isinstance(body.get("type"), str):
        body = fields(body.get("response"))  # a Responses stream event wrapping the Response
    usage_obj = body.get("usage")
    if usage_obj is None:
        usage_obj = get(body.get("x_groq"), "usage")
    kind = body.get("object")
    images = kind is None and body.get("created") is not None
    usage = usage_from_openai(usage_obj, images=images)
    data = body.get("data")
    if images and usage is None and isinstance(data, list):
        # DALL-E: no token usage; billed per generated image
        usage = TokenUsage(services={"image": Decimal(len(data))})
    if kind == "response":
        searches = count_web_search_calls(body.get("output"))
        if searches:
            usage = _with_services(usage, {"web_search": Decimal(searches)})
    tier = body.get("service_tier")
    return Extraction(
        usage,
        text_or_none(body.get("model")),
        text_or_none(body.get("id")),
        pricing_mode_for_tier(tier),
        tier if isinstance(tier, str) else None,
    )


class ChatStreamState:
    """Accumulate a chat-completions (or legacy completions) stream: feed every chunk to ``add()``.

    Usage comes from the ``include_usage`` trailer, DeepSeek's last content
    chunk or Groq's ``x_groq.usage``; the last one seen wins. Model and id
    come from the first chunk that carries them, the tier from the last.

    ``add()`` runs on the caller's thread for every chunk, so for SDK chunk
    objects it only checks for usage and keeps references to the first, the
    last and the usage-carrying chunk; ``result()`` reads the rest from those.
    """

    __slots__ = (
        "first",
        "images",
        "last",
        "model",
        "response_id",
        "service_tier",
        "usage_chunk",
        "usage_obj",
    )

    def __init__(self, *, images: bool = False) -> None:
        self.images = images  # an images stream: output tokens are image tokens
        self.model: str | None = None
        self.response_id: str | None = None
        self.service_tier: str | None = None
        self.usage_obj: Any = None
        self.first: Any = None
        self.last: Any = None
        self.usage_chunk: Any = None

    def add(self, chunk: Any) -> bool:
        """Take what ``chunk`` says about the call; return whether it is the usage-only trailer.

        Never raises on a malformed chunk.
        """
        if type(chunk) is dict:
            return self._add_values(chunk)
        self.last = chunk
        if self.first is None:
            self.first = chunk
        usage = getattr(chunk, "usage", None)
        if usage is None:
            return False  # Groq's x_groq.usage rides on the last chunk: result() reads it there
        self.usage_obj = usage
        self.usage_chunk = chunk
        choices = getattr(chunk, "choices", None)
        return type(choices) is list and not choices

    def _add_values(self, values: Mapping[str, Any]) -> bool:
        """A chunk as parsed JSON (raw responses): read its fields now."""
        if self.response_id is None or self.model is None:
            self.response_id = self.response_id or text_or_none(values.get("id"))
            self.model = self.model or text_or_none(values.get("model"))
        tier = values.get("service_tier")
        if tier is not None and type(tier) is str:
            self.service_tier = tier
        usage = values.get("usage")
        if usage is None:
            usage = get(values.get("x_groq"), "usage")
            if usage is None:
                return False
        self.usage_obj = usage
        choices = values.get("choices")
        return type(choices) is list and not choices

    def _from_chunks(self) -> tuple[str | None, str | None, str | None]:
        """(model, response id, tier), from the chunk objects kept by ``add()``."""
        model, response_id, tier = self.model, self.response_id, self.service_tier
        kept = [c for c in (self.first, self.usage_chunk, self.last) if c is not None]
        for chunk in kept:
            if model is not None and response_id is not None:
                break
            model = model or text_or_none(get(chunk, "model"))
            response_id = response_id or text_or_none(get(chunk, "id"))
        for chunk in reversed(kept):
            if tier is not None:
                break
            value = get(chunk, "service_tier")
            tier = value if type(value) is str else None
        return model, response_id, tier

    def result(self) -> Extraction:
        """What the stream said so far; usage None when no chunk carried usage."""
        model, response_id, tier = self._from_chunks()
        usage = self.usage_obj
        if usage is None and self.last is not None:
            usage = get(get(self.last, "x_groq"), "usage")
        return Extraction(
            usage=usage_from_openai(usage, images=self.images),
            model=model,
            response_id=response_id,
            pricing_mode=pricing_mode_for_tier(tier),
            service_tier=tier,
        )


_RESPONSES_FINAL_EVENTS = frozenset(
    {"response.completed", "response.incomplete", "response.failed"}
)


class ResponsesStreamState:
    """Accumulate a Responses API event stream; usage comes only from the final response event.

    The tier is read from ``response.completed`` (not ``response.created``,
    which says what was requested). ``done`` tells whether a final event came.
    """

    __slots__ = ("done", "final", "model", "response_id")

    def __init__(self) -> None:
        self.model: str | None = None
        self.response_id: str | None = None
        self.final: Any = None
        self.done = False

    def add(self, event: Any) -> None:
        """Take what ``event`` says about the call; never raises on a malformed event."""
        response = get(event, "response")
        if response is None:
            return
        if self.response_id is None:
            self.response_id = text_or_none(get(response, "id"))
        if self.model is None:
            self.model = text_or_none(get(response, "model"))
        if get(event, "type") in _RESPONSES_FINAL_EVENTS:
            self.final = response
            self.done = True

    @property
    def complete(self) -> bool:
        """Whether a final response event arrived."""
        return self.done

    def result(self) -> Extraction:
        if self.final is None:
            return Extraction(usage=None, model=self.model, response_id=self.response_id)
        found = extract_openai(self.final)
        return Extraction(
            usage=found.usage,
            model=found.model or self.model,
            response_id=found.response_id or self.response_id,
            pricing_mode=found.pricing_mode,
            service_tier=found.service_tier,
        )


__all__ = [
    "ChatStreamState",
    "ResponsesStreamState",
    "count_web_search_calls",
    "extract_openai",
    "pricing_mode_for_tier",
    "usage_from_openai",
]
