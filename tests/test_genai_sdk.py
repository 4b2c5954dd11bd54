"""The google-genai SDK, pointed at the stand-in server, is captured at the transport."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import types
from llm_cost_tracker.instrumentation._hosts import register_host, unregister_host

from llm_cost_tracker._events import UsageEvent
from llm_cost_tracker.cli._standin import StandInServer
from llm_cost_tracker.cli._standin.server import load_payloads
from llm_cost_tracker.pricing import price_event
from llm_cost_tracker.testing import capture_events

PAYLOADS = load_payloads()


@pytest.fixture
def events(standin: StandInServer) -> Iterator[list[UsageEvent]]:
    host = standin.url.removeprefix("http://")
    register_host(host, "google")
    try:
        with capture_events(instrument=["httpx", "aiohttp"]) as captured:
            yield captured
    finally:
        unregister_host(host)


_OPEN_CLIENTS: list[genai.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN_CLIENTS:
        _OPEN_CLIENTS.pop().close()


def client_for(standin: StandInServer, scenario_id: str, **options: Any) -> genai.Client:
    """A google-genai client whose every request goes to the stand-in scenario; closed after the test."""
    client = genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(
            base_url=standin.scenario_url(scenario_id), api_version="v1beta", **options
        ),
    )
    _OPEN_CLIENTS.append(client)
    return client


def assert_gemini(event: UsageEvent, scenario_id: str, *, stream: bool) -> None:
    expected = PAYLOADS[scenario_id]["expected"]
    assert event.provider == "google"
    assert event.operation == "generate_content"
    assert event.model == expected["model"]
    assert event.provider_response_id == expected["provider_response_id"]
    assert event.stream is stream
    assert event.usage_source == ("stream" if stream else "response")
    assert event.usage is not None
    assert event.usage.tokens.get("input", 0) == expected["input_tokens"]
    assert event.usage.tokens.get("cache_read", 0) == expected["cache_read_tokens"]
    assert event.usage.tokens.get("output", 0) == expected["output_tokens"]
    assert event.usage.reasoning_tokens == expected["reasoning_tokens"]


def test_generate_content(standin: StandInServer, events: list[UsageEvent]) -> None:
    client = client_for(standin, "gemini_generate_thinking_flash")
    response = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert response.usage_metadata is not None
    assert response.usage_metadata.thoughts_token_count == 1058  # the SDK's result is untouched
    assert len(events) == 1
    assert_gemini(events[0], "gemini_generate_thinking_flash", stream=False)


def test_generate_content_stream(standin: StandInServer, events: list[UsageEvent]) -> None:
    client = client_for(standin, "gemini_stream_no_thinking")
    texts = [
        chunk.text
        for chunk in client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
    ]
    assert "".join(t or "" for t in texts) == "1\n2\n3\n4\n5"
    assert len(events) == 1
    assert_gemini(events[0], "gemini_stream_no_thinking", stream=True)


async def test_async_generate_content_and_stream(
    standin: StandInServer, events: list[UsageEvent]
) -> None:
    plain = client_for(standin, "gemini_generate_thinking_flash")
    await plain.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    streaming = client_for(standin, "gemini_stream_no_thinking")
    async for _ in await streaming.aio.models.generate_content_stream(
        model="gemini-2.5-flash", contents="hi"
    ):
        pass
    await plain.aio.aclose()
    await streaming.aio.aclose()
    assert len(events) == 2
    assert_gemini(events[0], "gemini_generate_thinking_flash", stream=False)
    assert_gemini(events[1], "gemini_stream_no_thinking", stream=True)


def test_sdk_on_an_httpx_client(standin: StandInServer, events: list[UsageEvent]) -> None:
    with httpx.Client() as http:
        client = client_for(standin, "gemini_stream_no_thinking", httpx_client=http)
        for _ in client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"):
            pass
    assert len(events) == 1
    assert_gemini(events[0], "gemini_stream_no_thinking", stream=True)


def test_cached_content_tool_use_and_grounding(
    standin: StandInServer, events: list[UsageEvent]
) -> None:
    payload = copy.deepcopy(PAYLOADS["gemini_generate_thinking_flash"])
    response = payload["response"]
    response["usageMetadata"] = {
        "promptTokenCount": 1200,
        "cachedContentTokenCount": 1000,
        "toolUsePromptTokenCount": 150,
        "candidatesTokenCount": 40,
        "thoughtsTokenCount": 60,
        "totalTokenCount": 1450,
    }
    response["candidates"][0]["groundingMetadata"] = {
        "webSearchQueries": ["weather today", "weather tomorrow"],
    }
    payload["id"] = "gemini_cached_grounded"
    standin.add(payload)
    client = client_for(standin, "gemini_cached_grounded")
    result = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert result.usage_metadata is not None
    assert len(events) == 1
    usage = events[0].usage
    assert usage is not None
    assert dict(usage.tokens) == {"input": 350, "cache_read": 1000, "output": 100}
    assert usage.reasoning_tokens == 60
    assert usage.services == {"grounding": Decimal(2)}


def test_error_response_is_recorded_with_unknown_usage(
    standin: StandInServer, events: list[UsageEvent]
) -> None:
    standin.add(
        {
            "id": "gemini_429",
            "http_status": 429,
            "response": {
                "error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}
            },
        }
    )
    client = client_for(standin, "gemini_429", retry_options=types.HttpRetryOptions(attempts=1))
    with pytest.raises(genai.errors.ClientError):
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert len(events) == 1
    assert events[0].status == "error"
    assert events[0].error_type == "http_429"
    assert events[0].usage is None
    assert events[0].model == "gemini-2.5-flash"  # from the request path
    assert dict(events[0].tags) == {}


@pytest.mark.parametrize(
    ("tier", "rates"), [("flex", ("0.15", "1.25")), ("priority", ("0.54", "4.5"))]
)
def test_service_tier_is_read_and_priced(
    standin: StandInServer, events: list[UsageEvent], tier: str, rates: tuple[str, str]
) -> None:
    """A Flex or Priority call made with google-genai is recorded in that mode and priced at its rates."""
    payload = copy.deepcopy(PAYLOADS["gemini_generate_thinking_flash"])
    payload["response"]["usageMetadata"]["serviceTier"] = tier  # what the Gemini API answers
    payload["id"] = f"gemini_tier_{tier}"
    standin.add(payload)
    client = client_for(standin, payload["id"])
    config = types.GenerateContentConfig(service_tier=tier)
    result = client.models.generate_content(model="gemini-2.5-flash", contents="hi", config=config)
    assert result.usage_metadata is not None
    assert standin.requests[-1].json()["serviceTier"] == tier  # the SDK asked for the tier
    assert len(events) == 1
    event = events[0]
    assert event.pricing_mode == tier
    # gemini-2.5-flash: 5 input tokens, 877 + 1058 output tokens (thinking billed as output);
    # Flex = 50% of $0.30 / $2.50; Priority = 1.8x.
    priced = price_event(event)
    input_rate, output_rate = (Decimal(r) for r in rates)
    assert priced.cost.total == (5 * input_rate + (877 + 1058) * output_rate) / 1_000_000
