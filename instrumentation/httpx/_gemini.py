"""Pure usage extraction for Google Gemini ``generateContent`` / ``streamGenerateContent`` bodies.

Buckets follow ``shared/provider-payloads/README.md``: input is
``promptTokenCount - cachedContentTokenCount + toolUsePromptTokenCount`` (audio
split out by modality), output is ``candidatesTokenCount + thoughtsTokenCount``.
``usageMetadata`` is cumulative across stream chunks: the last one wins, never a sum.
Search grounding queries become ``services["grounding"]``. The service tier
is read from ``usageMetadata``: ``serviceTier`` (Gemini API: ``flex``,
``priority``, ``standard``) or ``trafficType`` (Vertex AI: ``ON_DEMAND_FLEX``,
``ON_DEMAND_PRIORITY``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..._events import TokenUsage
from ..._stats import STATS
from .._extraction import (
    INVALID_USAGE_COUNTER,
    Extraction,
    InvalidUsage,
    get,
    text_or_none,
    token_count,
)

# usageMetadata.serviceTier (Gemini API) and .trafficType (Vertex AI), lowercased -> pricing mode.
_TIERS = {
    "standard": "standard",
    "unspecified": "standard",
    "service_tier_unspecified": "standard",
    "flex": "flex",
    "priority": "priority",
    "on_demand": "standard",
    "traffic_type_unspecified": "standard",
    "on_demand_flex": "flex",
    "on_demand_priority": "priority",
    "on_demand_offpeak": "offpeak",  # no published rates: priced unknown, never as standard
    "provisioned_throughput": "provisioned",
}


def service_tier(metadata: Any) -> str | None:
    """The tier a ``usageMetadata`` says served the call: ``serviceTier``, else ``trafficType``."""
    for key in ("serviceTier", "trafficType"):
        value = get(metadata, key)
        if isinstance(value, str) and value:
            return value
    return None


def pricing_mode(tier: str | None) -> str:
    """The pricing mode for a Gemini service tier or traffic type (case-insensitive)."""
    if tier is None:
        return "standard"
    name = tier.strip().lower()
    if name.startswith("service_tier_") and name != "service_tier_unspecified":
        name = name[len("service_tier_") :]
    return _TIERS.get(name, "standard")


def _modality_count(details: Any, modality: str) -> int:
    if not isinstance(details, list):
        return 0
    return sum(
        token_count(get(entry, "tokenCount"))
        for entry in details
        if isinstance(entry, Mapping) and entry.get("modality") == modality
    )


def usage_from_gemini(metadata: Any, *, grounding_queries: int = 0) -> TokenUsage | None:
    """Turn a Gemini ``usageMetadata`` dict into TokenUsage; None when absent or invalid."""
    if not isinstance(metadata, Mapping) or not metadata:
        return None
    try:
        prompt = token_count(metadata.get("promptTokenCount"))
        cached = token_count(metadata.get("cachedContentTokenCount"))
        tool_prompt = token_count(metadata.get("toolUsePromptTokenCount"))
        candidates = token_count(metadata.get("candidatesTokenCount"))
        thoughts = token_count(metadata.get("thoughtsTokenCount"))
        audio_in = _modality_count(metadata.get("promptTokensDetails"), "AUDIO")
        audio_cached = _modality_count(metadata.get("cacheTokensDetails"), "AUDIO")
        audio_out = _modality_count(metadata.get("candidatesTokensDetails"), "AUDIO")
        audio_uncached = audio_in - audio_cached
        text_in = prompt - cached + tool_prompt - audio_uncached
        text_cached = cached - audio_cached
        if min(audio_uncached, text_in, text_cached, candidates - audio_out) < 0:
            raise InvalidUsage
    except InvalidUsage:
        STATS.incr(INVALID_USAGE_COUNTER)
        return None
    tokens = {
        "input": text_in,
        "cache_read": text_cached,
        "audio_input": audio_uncached,
        "audio_cache_read": audio_cached,
        "output": candidates - audio_out + thoughts,
        "audio_output": audio_out,
    }
    return TokenUsage(
        tokens={k: v for k, v in tokens.items() if v or k in ("input", "output")},
        services={"grounding": Decimal(grounding_queries)} if grounding_queries else {},
        reasoning_tokens=thoughts,
    )


def grounding_queries(chunk: Any) -> int:
    """Count the search queries grounding ran for a response (or stream chunk); 0 when none."""
    candidates = get(chunk, "candidates")
    if not isinstance(candidates, list):
        return 0
    count = 0
    for candidate in candidates:
        queries = get(get(candidate, "groundingMetadata"), "webSearchQueries")
        if isinstance(queries, list):
            count = max(count, len(queries))
    return count


def extract_gemini(body: Any) -> Extraction:
    """Read usage, model (``modelVersion``), id (``responseId``) from a Gemini response body.

    Accepts one ``GenerateContentResponse`` or a list of them (a
    ``streamGenerateContent`` body without ``alt=sse``). Never raises.
    """
    if isinstance(body, list):
        state = GeminiStreamState()
        for chunk in body:
            state.add(chunk)
        return state.result()
    metadata = get(body, "usageMetadata")
    tier = service_tier(metadata)
    return Extraction(
        usage=usage_from_gemini(metadata, grounding_queries=grounding_queries(body)),
        model=text_or_none(get(body, "modelVersion")),
        response_id=text_or_none(get(body, "responseId")),
        pricing_mode=pricing_mode(tier),
        service_tier=tier,
    )


class GeminiStreamState:
    """Accumulate a ``streamGenerateContent`` stream: the last ``usageMetadata`` wins."""

    __slots__ = ("grounding", "metadata", "model", "response_id", "tier")

    def __init__(self) -> None:
        self.metadata: Any = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.tier: str | None = None
        self.grounding = 0

    def add(self, chunk: Any) -> None:
        """Take what ``chunk`` says about the call; never raises on a malformed chunk."""
        if not isinstance(chunk, Mapping):
            return
        metadata = chunk.get("usageMetadata")
        if isinstance(metadata, Mapping):
            self.metadata = metadata
            self.tier = service_tier(metadata) or self.tier
        self.model = text_or_none(chunk.get("modelVersion")) or self.model
        self.response_id = text_or_none(chunk.get("responseId")) or self.response_id
        self.grounding = max(self.grounding, grounding_queries(chunk))

    def result(self) -> Extraction:
        return Extraction(
            usage=usage_from_gemini(self.metadata, grounding_queries=self.grounding),
            model=self.model,
            response_id=self.response_id,
            pricing_mode=pricing_mode(self.tier),
            service_tier=self.tier,
        )


__all__ = [
    "GeminiStreamState",
    "extract_gemini",
    "grounding_queries",
    "pricing_mode",
    "service_tier",
    "usage_from_gemini",
]
