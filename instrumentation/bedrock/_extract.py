"""Pure usage extraction for Bedrock Runtime responses: Converse, InvokeModel bodies, their streams.

Converse (and Amazon Nova's InvokeModel body) report ``usage.inputTokens``
without the cache reads and writes, which come in ``cacheReadInputTokens`` /
``cacheWriteInputTokens`` (writes split by ``cacheDetails`` TTL, all 5-minute
when there is no breakdown). InvokeModel bodies are read by model family:
Anthropic Messages (the anthropic instrumentor's parser), Nova, Meta Llama
(``prompt_token_count`` / ``generation_token_count``), Mistral chat
(``usage.prompt_tokens``), Cohere (``meta.billed_units``) and Amazon Titan
Embeddings (``inputTextTokenCount``); a body none of these recognizes (Cohere
Embed's among them) falls back to the ``x-amzn-bedrock-*-token-count`` response
headers, and a stream to the last chunk's ``amazon-bedrock-invocationMetrics``.
Nothing here raises on a malformed payload: what cannot be read is unknown
(None), never zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._events import TokenUsage
from ..._stats import STATS
from .._bedrock_models import model_of, pricing_mode_of, tier_name
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
from .._sse import parse_json
from ..anthropic._extract import AnthropicStreamState, usage_from_anthropic

METRICS_KEY = "amazon-bedrock-invocationMetrics"
HEADER_PREFIX = "x-amzn-bedrock-"


def _cache_writes(usage: Mapping[str, Any], written: int) -> tuple[int, int]:
    """(5-minute, 1-hour) cache writes: from ``cacheDetails`` when given, else all 5-minute."""
    details = usage.get("cacheDetails")
    if not isinstance(details, list) or not details:
        return written, 0
    write_5m = write_1h = 0
    for detail in details:
        count = token_count(get(detail, "inputTokens"))
        if get(detail, "ttl") == "1h":
            write_1h += count
        else:
            write_5m += count
    if write_5m + write_1h < written:
        write_5m += written - write_5m - write_1h
    return write_5m, write_1h


def usage_from_converse(usage: Any) -> TokenUsage | None:
    """Read a Converse / Nova ``usage`` (camelCase); None when absent or invalid."""
    if usage is None:
        return None
    usage = fields(usage)  # one mapping, read field by field
    try:
        input_tokens, output_tokens = usage.get("inputTokens"), usage.get("outputTokens")
        if input_tokens is None and output_tokens is None:
            raise InvalidUsage
        read = usage.get("cacheReadInputTokens")
        if read is None:
            read = usage.get("cacheReadInputTokenCount")  # Nova's InvokeModel body
        written = usage.get("cacheWriteInputTokens")
        if written is None:
            written = usage.get("cacheWriteInputTokenCount")
        write_5m, write_1h = _cache_writes(usage, token_count(written))
        return build_usage(
            {
                "input": token_count(input_tokens),
                "cache_read": token_count(read),
                "cache_write_5m": write_5m,
                "cache_write_1h": write_1h,
                "output": token_count(output_tokens),
            }
        )
    except InvalidUsage:
        STATS.incr(INVALID_USAGE_COUNTER)
        return None


def _counts(
    input_tokens: Any, output_tokens: Any, read: Any = None, written: Any = None
) -> TokenUsage | None:
    """Usage from plain counts (Llama, Mistral, Cohere, metrics, headers); None when both are absent."""
    if input_tokens is None and output_tokens is None:
        return None
    try:
        return build_usage(
            {
                "input": token_count(input_tokens),
                "cache_read": token_count(read),
                "cache_write_5m": token_count(written),
                "output": token_count(output_tokens),
            }
        )
    except InvalidUsage:
        STATS.incr(INVALID_USAGE_COUNTER)
        return None


def usage_from_metrics(metrics: Any) -> TokenUsage | None:
    """Read an ``amazon-bedrock-invocationMetrics`` object (the last chunk of an InvokeModel stream)."""
    return _counts(
        get(metrics, "inputTokenCount"),
        get(metrics, "outputTokenCount"),
        get(metrics, "cacheReadInputTokenCount"),
        get(metrics, "cacheWriteInputTokenCount"),
    )


COUNT_HEADERS = tuple(
    HEADER_PREFIX + count
    for count in (
        "input-token-count",
        "output-token-count",
        "cache-read-input-token-count",
        "cache-write-input-token-count",
    )
)
INVOKE_HEADERS = (*COUNT_HEADERS, "x-amzn-requestid")
"""The response headers ``extract_invoke`` reads: the token counts, and the request id."""


def _header_count(headers: Mapping[str, Any], name: str) -> Any:
    value = headers.get(name)
    if isinstance(value, str):
        value = value.strip()
        return int(value) if value.isdigit() else -1  # not a count: the usage is invalid
    return value


def usage_from_headers(headers: Any) -> TokenUsage | None:
    """Read the ``x-amzn-bedrock-input-token-count`` / ``-output-token-count`` (and cache) headers."""
    if not isinstance(headers, Mapping):
        return None
    return _counts(*(_header_count(headers, name) for name in COUNT_HEADERS))


def usage_from_body(document: Any) -> TokenUsage | None:
    """Read an InvokeModel response body by its model family's shape; None for a shape we do not know."""
    if not isinstance(document, dict):
        return None
    usage = document.get("usage")
    if isinstance(usage, dict):
        if "input_tokens" in usage or "output_tokens" in usage:  # Anthropic Messages
            return usage_from_anthropic(usage)
        if "inputTokens" in usage or "outputTokens" in usage:  # Amazon Nova
            return usage_from_converse(usage)
        if "prompt_tokens" in usage or "completion_tokens" in usage:  # Mistral chat
            return _counts(usage.get("prompt_tokens"), usage.get("completion_tokens"))
    if "prompt_token_count" in document or "generation_token_count" in document:  # Meta Llama
        return _counts(document.get("prompt_token_count"), document.get("generation_token_count"))
    if "inputTextTokenCount" in document:  # Amazon Titan Embeddings (no output tokens)
        return _counts(document.get("inputTextTokenCount"), 0)
    billed = get(get(document, "meta"), "billed_units")  # Cohere
    if isinstance(billed, dict):
        return _counts(billed.get("input_tokens"), billed.get("output_tokens"))
    return None


def response_id_of(response: Any) -> str | None:
    """The AWS request id (``x-amzn-requestid``), to find the call in Bedrock's invocation logs."""
    return text_or_none(get(get(response, "ResponseMetadata"), "RequestId"))


def headers_of(response: Any) -> Mapping[str, Any]:
    headers = get(get(response, "ResponseMetadata"), "HTTPHeaders")
    return headers if isinstance(headers, Mapping) else {}


def served_tier(response: Any) -> Any:
    """The service tier the response says served the call, or None.

    Recent botocore parses the ``X-Amzn-Bedrock-Service-Tier`` header into
    ``serviceTier``; older releases (the botocore aioboto3 pins) leave it in
    the response's HTTP headers only.
    """
    tier = get(response, "serviceTier")
    if tier is None:
        tier = headers_of(response).get("x-amzn-bedrock-service-tier")
    return tier


def extract_converse(response: Any, model: str, model_id: str | None) -> Extraction:
    """Read a Converse response: usage, the tier used, the AWS request id. Never raises.

    A prompt router names the model it chose (``trace.promptRouter.invokedModelId``): that
    model is reported instead of the router.
    """
    tier = served_tier(response)
    invoked = text_or_none(get(get(get(response, "trace"), "promptRouter"), "invokedModelId"))
    if invoked is not None:
        model, model_id = model_of(invoked), invoked
    return Extraction(
        usage=usage_from_converse(get(response, "usage")),
        model=model,
        response_id=response_id_of(response),
        pricing_mode=pricing_mode_of(model_id, tier),
        service_tier=tier_name(tier),
    )


def extract_invoke(
    document: Any, headers: Mapping[str, Any], model: str, model_id: str | None, tier: Any
) -> Extraction:
    """Read an InvokeModel body (parsed JSON, or None) and its response headers. Never raises."""
    usage = usage_from_body(document)
    if usage is None:
        usage = usage_from_headers(headers)
    response_id = text_or_none(get(document, "id")) if isinstance(document, dict) else None
    return Extraction(
        usage=usage,
        model=model,
        response_id=response_id or text_or_none(headers.get("x-amzn-requestid")),
        pricing_mode=pricing_mode_of(model_id, tier),
        service_tier=tier_name(tier),
    )


class ConverseStreamState:
    """Follow a ConverseStream: the ``metadata`` event carries the usage and the tier used."""

    __slots__ = ("complete", "tier", "usage")

    def __init__(self) -> None:
        self.usage: TokenUsage | None = None
        self.tier: Any = None
        self.complete = False

    def add(self, event: Any) -> None:
        metadata = event.get("metadata") if type(event) is dict else None
        if metadata is None:
            return
        self.usage = usage_from_converse(get(metadata, "usage"))
        self.tier = get(metadata, "serviceTier") or self.tier
        self.complete = True

    def result(self, model: str, model_id: str | None, tier: Any) -> tuple[Extraction, bool]:
        used = self.tier or tier
        found = Extraction(
            usage=self.usage,
            model=model,
            pricing_mode=pricing_mode_of(model_id, used),
            service_tier=tier_name(used),
        )
        return found, self.complete and self.usage is not None


class InvokeStreamState:
    """Follow an InvokeModelWithResponseStream: each ``chunk`` is one JSON document of the model's own.

    Only chunks that mention tokens are parsed (a copy of their bytes; the
    caller's chunk is untouched). Anthropic chunks go to the anthropic stream
    state; Nova's ``metadata``, Llama's counts, Mistral's and Cohere's usage are
    kept as the body's usage; the ``amazon-bedrock-invocationMetrics`` of the
    last chunk is the fallback.
    """

    __slots__ = ("anthropic", "body_usage", "llama", "metrics", "response_id")

    def __init__(self) -> None:
        self.anthropic: AnthropicStreamState | None = None
        self.body_usage: TokenUsage | None = None
        self.llama: tuple[Any, Any] | None = None  # (prompt, generation) counts seen so far
        self.metrics: TokenUsage | None = None
        self.response_id: str | None = None

    def add(self, event: Any) -> None:
        chunk = event.get("chunk") if type(event) is dict else None
        data = get(chunk, "bytes")
        if not isinstance(data, (bytes, bytearray)) or b"oken" not in data:
            return  # no token counts in this chunk: not parsed
        try:
            document = parse_json(data)
        except ValueError:
            STATS.incr("dropped.stream_event_unparsable")
            return
        if not isinstance(document, dict):
            return
        metrics = document.get(METRICS_KEY)
        if metrics is not None:
            self.metrics = usage_from_metrics(metrics)
        if "type" in document:
            if self.anthropic is None:
                self.anthropic = AnthropicStreamState()
            self.anthropic.add(document)
        elif "metadata" in document:  # Nova
            self.body_usage = usage_from_converse(get(document["metadata"], "usage"))
        elif "prompt_token_count" in document or "generation_token_count" in document:
            self._add_llama(document)
        elif "usage" in document or "meta" in document:  # Mistral chat, Cohere
            self.body_usage = usage_from_body(document) or self.body_usage

    def _add_llama(self, document: dict[str, Any]) -> None:
        prompt, generated = self.llama or (None, None)
        prompt = document.get("prompt_token_count") or prompt
        generated = document.get("generation_token_count") or generated
        self.llama = (prompt, generated)
        if document.get("stop_reason") is not None:
            self.body_usage = _counts(prompt, generated)

    def result(self, model: str, model_id: str | None, tier: Any) -> tuple[Extraction, bool]:
        """What the stream said, and whether its usage is final (else a lower bound or unknown)."""
        usage: TokenUsage | None = None
        complete = False
        mode = pricing_mode_of(model_id, tier)
        response_id = None
        anthropic = self.anthropic
        if anthropic is not None:
            found = anthropic.result()
            response_id = found.response_id
            if anthropic.complete and found.usage is not None:
                usage, complete = found.usage, True
        if usage is None and self.body_usage is not None:
            usage, complete = self.body_usage, True
        if usage is None and self.metrics is not None:
            usage, complete = self.metrics, True
        if usage is None and anthropic is not None and not anthropic.errored:
            usage = anthropic.result().usage  # cut short: what message_start said, a lower bound
        if usage is None and self.llama is not None:
            usage = _counts(*self.llama)
        found = Extraction(
            usage=usage,
            model=model,
            response_id=response_id,
            pricing_mode=mode,
            service_tier=tier_name(tier),
        )
        return found, complete


__all__ = [
    "ConverseStreamState",
    "InvokeStreamState",
    "extract_converse",
    "extract_invoke",
    "headers_of",
    "response_id_of",
    "usage_from_body",
    "usage_from_converse",
    "usage_from_headers",
    "usage_from_metrics",
]
