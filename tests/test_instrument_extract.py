"""The pure extractors on raw JSON bodies and SSE: every shared OpenAI/Anthropic-shaped payload yields its ``expected``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from llm_cost_tracker.instrumentation.anthropic._extract import (
    AnthropicStreamState,
    extract_anthropic,
    extract_batch_result,
    pricing_mode_for_usage,
    usage_from_anthropic,
)
from llm_cost_tracker.instrumentation.openai._extract import (
    ChatStreamState,
    Extraction,
    ResponsesStreamState,
    extract_openai,
    pricing_mode_for_tier,
    usage_from_openai,
)

from llm_cost_tracker._events import TokenUsage
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.cli._standin.server import load_payloads

PAYLOADS = load_payloads()
OPENAI_SHAPED = sorted(
    pid
    for pid, p in PAYLOADS.items()
    if p["api"].startswith(("openai", "openai_compatible")) and p.get("http_status", 200) == 200
)
ANTHROPIC_SHAPED = sorted(
    pid
    for pid, p in PAYLOADS.items()
    if p["api"].startswith("anthropic") and p.get("http_status", 200) == 200
)


def sse_events(text: str) -> list[tuple[str | None, Any]]:
    """Split an SSE body into (event name, parsed data) pairs, skipping [DONE]."""
    events: list[tuple[str | None, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data and data != ["[DONE]"]:
            events.append((name, json.loads("\n".join(data))))
    return events


def usage_as_expected(usage: TokenUsage | None) -> dict[str, Any]:
    """Project TokenUsage onto the payload README's ``expected`` token fields."""
    if usage is None:
        return {"usage_known": False}
    t = usage.tokens
    return {
        "usage_known": True,
        "input_tokens": t.get("input", 0),
        "cache_read_tokens": t.get("cache_read", 0),
        "cache_write_5m_tokens": t.get("cache_write_5m", 0),
        "cache_write_1h_tokens": t.get("cache_write_1h", 0),
        "output_tokens": t.get("output", 0),
        "reasoning_tokens": usage.reasoning_tokens,
        "audio_input_tokens": t.get("audio_input", 0),
        "audio_output_tokens": t.get("audio_output", 0),
        "web_search_requests": int(usage.services.get("web_search", 0)),
    }


def expected_view(expected: dict[str, Any]) -> dict[str, Any]:
    if not expected["usage_known"]:
        return {"usage_known": False}
    return {k: expected[k] for k in usage_as_expected(TokenUsage())}


def check(found: Extraction, expected: dict[str, Any]) -> None:
    assert usage_as_expected(found.usage) == expected_view(expected)
    assert found.model == expected["model"]
    assert found.response_id == expected["provider_response_id"]
    assert found.service_tier == expected["service_tier"]
    if "reported_cost_usd" in expected:
        assert found.usage is not None
        assert found.usage.reported_cost == Decimal(str(expected["reported_cost_usd"]))


def extract_openai_payload(payload: dict[str, Any]) -> Extraction:
    if not payload["stream"]:
        return extract_openai(payload["response"])
    if payload["api"].endswith("responses"):
        responses = ResponsesStreamState()
        for _, event in sse_events(payload["sse"]):
            responses.add(event)
        return responses.result()
    chat = ChatStreamState()
    for _, chunk in sse_events(payload["sse"]):
        chat.add(chunk)
    return chat.result()


@pytest.mark.parametrize("payload_id", OPENAI_SHAPED)
def test_openai_shaped_payloads_from_json(payload_id: str) -> None:
    payload = PAYLOADS[payload_id]
    check(extract_openai_payload(payload), payload["expected"])


@pytest.mark.parametrize("payload_id", ANTHROPIC_SHAPED)
def test_anthropic_payloads_from_json(payload_id: str) -> None:
    payload = PAYLOADS[payload_id]
    if payload["stream"]:
        state = AnthropicStreamState()
        for _, event in sse_events(payload["sse"]):
            state.add(event)
        found = state.result()
    else:
        found = extract_anthropic(payload["response"])
    check(found, payload["expected"])


def test_usage_null_is_unknown_not_zero() -> None:
    assert usage_from_openai(None) is None
    assert extract_openai({"id": "x", "model": "m", "usage": None}).usage is None
    assert usage_from_anthropic(None) is None


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -1, "completion_tokens": 3},
        {"prompt_tokens": 5, "completion_tokens": "3"},
        {"prompt_tokens": 5, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 9}},
        {"input_tokens": 3, "output_tokens": -2},
        {"unexpected": 1},
    ],
)
def test_invalid_openai_usage_is_unknown_and_counted(usage: dict[str, Any]) -> None:
    assert usage_from_openai(usage) is None
    assert STATS.get("dropped.usage_invalid") == 1


def test_invalid_anthropic_usage_is_unknown_and_counted() -> None:
    assert usage_from_anthropic({"input_tokens": -4, "output_tokens": 1}) is None
    assert usage_from_anthropic({"cache_read_input_tokens": 3}) is None
    assert STATS.get("dropped.usage_invalid") == 2


def test_openai_cache_write_and_image_tokens() -> None:
    chat = usage_from_openai(
        {
            "prompt_tokens": 100,
            "completion_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 50, "cache_write_tokens": 20},
        }
    )
    assert chat is not None
    assert dict(chat.tokens) == {"input": 30, "cache_read": 50, "cache_write_5m": 20, "output": 10}
    responses = usage_from_openai(
        {
            "input_tokens": 100,
            "output_tokens": 40,
            "input_tokens_details": {
                "cached_tokens": 10,
                "cache_write_tokens": 30,
                "cache_write_tokens_details": {"ttl_30m_tokens": 10, "ttl_12h_tokens": 20},
            },
            "output_tokens_details": {"reasoning_tokens": 25},
        }
    )
    assert responses is not None
    assert dict(responses.tokens) == {
        "input": 60,
        "cache_read": 10,
        "cache_write_5m": 10,
        "cache_write_1h": 20,
        "output": 40,
    }
    assert responses.reasoning_tokens == 25
    image = extract_openai(
        {
            "created": 1,
            "data": [{"b64_json": "..."}],
            "usage": {
                "input_tokens": 50,
                "output_tokens": 4160,
                "total_tokens": 4210,
                "input_tokens_details": {"text_tokens": 40, "image_tokens": 10},
            },
        }
    )
    assert image.usage is not None
    assert dict(image.usage.tokens) == {
        "input": 40,
        "image_input": 10,
        "output": 0,
        "image_output": 4160,
    }
    dalle = extract_openai({"created": 1, "data": [{"url": "u"}, {"url": "v"}]})
    assert dalle.usage is not None
    assert dalle.usage.services == {"image": Decimal(2)}


def test_openai_transcription_usage() -> None:
    tokens = usage_from_openai(
        {
            "type": "tokens",
            "input_tokens": 30,
            "output_tokens": 12,
            "total_tokens": 42,
            "input_token_details": {"audio_tokens": 25, "text_tokens": 5},
        }
    )
    assert tokens is not None
    assert dict(tokens.tokens) == {"input": 5, "audio_input": 25, "output": 12}
    seconds = usage_from_openai({"type": "duration", "seconds": 7.5})
    assert seconds is not None
    assert seconds.services == {"audio_second": Decimal("7.5")}


def test_responses_web_search_calls_are_counted() -> None:
    found = extract_openai(
        {
            "object": "response",
            "id": "resp_1",
            "model": "gpt-5",
            "output": [
                {"type": "web_search_call"},
                {"type": "message"},
                {"type": "web_search_call"},
            ],
            "usage": {"input_tokens": 5, "output_tokens": 6},
            "service_tier": "flex",
        }
    )
    assert found.usage is not None
    assert found.usage.services == {"web_search": Decimal(2)}
    assert found.pricing_mode == "flex"


@pytest.mark.parametrize(
    ("tier", "mode"),
    [
        ("default", "standard"),
        ("auto", "standard"),
        ("scale", "standard"),
        ("flex", "flex"),
        ("priority", "priority"),
        (None, "standard"),
    ],
)
def test_openai_pricing_mode(tier: str | None, mode: str) -> None:
    assert pricing_mode_for_tier(tier) == mode


@pytest.mark.parametrize(
    ("usage", "batch", "mode"),
    [
        ({"service_tier": "standard"}, False, "standard"),
        ({"service_tier": "priority", "speed": "fast"}, False, "priority+fast"),
        (
            {"service_tier": "standard", "speed": "fast", "inference_geo": "us"},
            False,
            "standard+fast+us_only",
        ),
        ({"service_tier": "standard", "inference_geo": "global"}, False, "standard"),
        ({"service_tier": "batch"}, False, "batch"),
        ({}, True, "batch"),
    ],
)
def test_anthropic_pricing_mode(usage: dict[str, Any], batch: bool, mode: str) -> None:
    assert pricing_mode_for_usage(usage, batch=batch) == mode


def test_anthropic_thinking_and_batch_results() -> None:
    message = {
        "id": "msg_1",
        "model": "claude-sonnet-4-5",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 300,
            "output_tokens_details": {"thinking_tokens": 200},
            "cache_creation_input_tokens": 40,
        },
    }
    found = extract_anthropic(message)
    assert found.usage is not None
    assert found.usage.reasoning_tokens == 200
    assert dict(found.usage.tokens) == {"input": 10, "cache_write_5m": 40, "output": 300}
    ok = extract_batch_result(
        {"custom_id": "a", "result": {"type": "succeeded", "message": message}}
    )
    assert ok is not None
    assert ok.pricing_mode == "batch"
    assert (
        extract_batch_result({"custom_id": "b", "result": {"type": "errored", "error": {}}}) is None
    )


def test_anthropic_stream_error_event_means_unknown_usage() -> None:
    state = AnthropicStreamState()
    state.add(
        {
            "type": "message_start",
            "message": {"id": "m", "model": "c", "usage": {"input_tokens": 3, "output_tokens": 1}},
        }
    )
    state.add({"type": "error", "error": {"type": "overloaded_error"}})
    result = state.result()
    assert result.usage is None
    assert result.response_id == "m"
