"""Vertex AI end to end: Gemini and Claude on Vertex, through google-genai, the anthropic SDK and plain clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import google.oauth2.credentials
import httpx
import pytest
import requests
from google import genai
from google.genai import types
from llm_cost_tracker.instrumentation._hosts import (
    provider_for_host,
    register_host,
    unregister_host,
)
from llm_cost_tracker.instrumentation.httpx._parsers import route_for
from test_httpx_transport import assert_matches, body_of

from llm_cost_tracker._events import UsageEvent
from llm_cost_tracker.cli._standin import StandInServer
from llm_cost_tracker.testing import capture_events

FIXTURES = Path(__file__).parent / "fixtures" / "payloads"
VERTEX = {
    path.stem: json.loads(path.read_text(encoding="utf-8"))
    for path in sorted(FIXTURES.glob("vertex_*.json"))
}


@pytest.fixture
def vertex_standin(standin: StandInServer) -> Iterator[StandInServer]:
    """The stand-in server, serving the Vertex payloads, attributed to ``google_vertex``."""
    for payload in VERTEX.values():
        standin.add(payload)
    host = standin.url.removeprefix("http://")
    register_host(host, "google_vertex")
    yield standin
    unregister_host(host)


@pytest.fixture
def events(vertex_standin: StandInServer) -> Iterator[list[UsageEvent]]:
    """Every installed instrumentor on, as ``instrument="all"`` does: each call recorded once."""
    with capture_events(instrument="all") as captured:
        yield captured


def vertex_url(standin: StandInServer, scenario_id: str) -> str:
    """The stand-in URL with the Vertex path of the payload (project, location, publisher, model)."""
    path = VERTEX[scenario_id]["url"].split("googleapis.com", 1)[1]
    return standin.scenario_url(scenario_id, path)


@pytest.mark.parametrize(
    ("host", "provider"),
    [
        ("aiplatform.googleapis.com", "google_vertex"),
        ("us-central1-aiplatform.googleapis.com", "google_vertex"),
        ("europe-west4-aiplatform.googleapis.com", "google_vertex"),
        ("generativelanguage.googleapis.com", "google"),
        ("aiplatform.googleapis.com.example.com", None),
    ],
)
def test_vertex_hosts_are_a_provider_of_their_own(host: str, provider: str | None) -> None:
    assert provider_for_host(host) == provider


@pytest.mark.parametrize(
    ("path", "operation", "stream"),
    [
        (
            "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-pro:generateContent",
            "generate_content",
            False,
        ),
        (
            "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-pro:streamGenerateContent",
            "generate_content",
            True,
        ),
        (
            "/v1/projects/p/locations/l/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict",
            "messages",
            False,
        ),
        (
            "/v1/projects/p/locations/l/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict",
            "messages",
            True,
        ),
    ],
)
def test_vertex_routes(path: str, operation: str, stream: bool) -> None:
    route = route_for("google_vertex", path)
    assert route is not None
    assert (route.operation, route.stream) == (operation, stream)
    assert (
        route_for("google_vertex", path.replace(":", ":count")) is None
    )  # countTokens is not billed


# -- plain clients: httpx, requests, aiohttp -------------------------------------------------


def fetch_httpx(url: str, request: dict[str, Any]) -> bytes:
    with httpx.Client() as client, client.stream("POST", url, json=request) as response:
        return b"".join(response.iter_bytes())


def fetch_requests(url: str, request: dict[str, Any]) -> bytes:
    with requests.post(url, json=request, stream=True, timeout=10) as response:
        return b"".join(response.iter_content(chunk_size=7))


def fetch_aiohttp(url: str, request: dict[str, Any]) -> bytes:
    import asyncio

    async def fetch() -> bytes:
        async with aiohttp.ClientSession() as session, session.post(url, json=request) as response:
            return b"".join([chunk async for chunk in response.content.iter_any()])

    return asyncio.run(fetch())


FETCHERS = {"httpx": fetch_httpx, "requests": fetch_requests, "aiohttp": fetch_aiohttp}


@pytest.mark.parametrize("client", sorted(FETCHERS))
@pytest.mark.parametrize("scenario_id", sorted(VERTEX))
def test_plain_clients_record_vertex_calls_with_the_model_in_the_path(
    scenario_id: str, client: str, vertex_standin: StandInServer, events: list[UsageEvent]
) -> None:
    payload = VERTEX[scenario_id]
    body = FETCHERS[client](vertex_url(vertex_standin, scenario_id), payload["request"])
    assert body == body_of(payload)  # the caller's bytes are untouched
    assert len(events) == 1
    assert_matches(events[0], payload)  # model: the response's; the URL's is the request model


# -- google-genai with vertexai=True ---------------------------------------------------------


def genai_vertex_client(standin: StandInServer, scenario_id: str) -> genai.Client:
    """A Vertex AI google-genai client (project, location, an access token) aimed at the stand-in."""
    return genai.Client(
        vertexai=True,
        project="demo-project",
        location="us-central1",
        credentials=google.oauth2.credentials.Credentials(token="test-token"),  # type: ignore[no-untyped-call]
        http_options=types.HttpOptions(base_url=standin.scenario_url(scenario_id)),
    )


def assert_vertex_gemini(event: UsageEvent) -> None:
    assert_matches(event, VERTEX["vertex_gemini_generate"])
    assert event.operation == "generate_content"


def test_genai_vertex_generate_content(
    vertex_standin: StandInServer, events: list[UsageEvent]
) -> None:
    client = genai_vertex_client(vertex_standin, "vertex_gemini_generate")
    try:
        result = client.models.generate_content(model="gemini-2.5-pro", contents="hi")
    finally:
        client.close()
    assert result.text == "Hi there."
    assert (
        "/publishers/google/models/gemini-2.5-pro:generateContent"
        in vertex_standin.requests[-1].path
    )
    assert len(events) == 1
    assert_vertex_gemini(events[0])


async def test_genai_vertex_async_runs_on_aiohttp_and_is_recorded_once(
    vertex_standin: StandInServer, events: list[UsageEvent]
) -> None:
    client = genai_vertex_client(vertex_standin, "vertex_gemini_generate")
    try:
        result = await client.aio.models.generate_content(model="gemini-2.5-pro", contents="hi")
    finally:
        await client.aio.aclose()
        client.close()
    assert result.usage_metadata is not None
    assert result.usage_metadata.thoughts_token_count == 115
    assert len(events) == 1  # aiohttp and httpx both instrumented: one layer records it
    assert_vertex_gemini(events[0])


# -- Claude on Vertex through the anthropic SDK -----------------------------------------------


def anthropic_vertex(standin: StandInServer, scenario_id: str) -> anthropic.AnthropicVertex:
    return anthropic.AnthropicVertex(
        region="us-east5",
        project_id="demo-project",
        access_token="test-token",
        base_url=standin.scenario_url(scenario_id),
    )


def test_anthropic_vertex_is_recorded_once_as_google_vertex(
    vertex_standin: StandInServer, events: list[UsageEvent]
) -> None:
    with anthropic_vertex(vertex_standin, "vertex_claude_raw_predict") as client:
        message = client.messages.create(
            model="claude-sonnet-4-5@20250929",
            max_tokens=256,
            messages=[{"role": "user", "content": "hi"}],
        )
    assert message.usage.cache_read_input_tokens == 1024
    assert vertex_standin.requests[-1].path.endswith(
        "/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
    )
    assert len(events) == 1
    event = events[0]
    assert (event.provider, event.operation) == ("google_vertex", "messages")
    assert event.usage is not None
    assert dict(event.usage.tokens) == {"input": 21, "cache_read": 1024, "output": 9}


def test_anthropic_vertex_stream_is_recorded_once(
    vertex_standin: StandInServer, events: list[UsageEvent]
) -> None:
    with (
        anthropic_vertex(vertex_standin, "vertex_claude_stream_raw_predict") as client,
        client.messages.stream(
            model="claude-sonnet-4-5@20250929",
            max_tokens=256,
            messages=[{"role": "user", "content": "hi"}],
        ) as stream,
    ):
        text = "".join(stream.text_stream)
    assert text == "Hello!"
    assert len(events) == 1
    event = events[0]
    assert (event.provider, event.stream, event.usage_source) == ("google_vertex", True, "stream")
    assert event.usage is not None
    assert dict(event.usage.tokens) == {"input": 21, "output": 12}


def test_anthropic_vertex_records_the_models_as_the_transport_does(
    vertex_standin: StandInServer, events: list[UsageEvent]
) -> None:
    with anthropic_vertex(vertex_standin, "vertex_claude_raw_predict") as client:
        client.messages.create(
            model="claude-sonnet-4-5@20250929",
            max_tokens=256,
            messages=[{"role": "user", "content": "hi"}],
        )
    # the model the response names, as every layer records it; the one the call named beside it
    assert events[0].model == "claude-sonnet-4-5-20250929"
    assert events[0].request_model == "claude-sonnet-4-5@20250929"


@pytest.mark.parametrize(
    ("region", "mode", "cost"),
    [("us-east5", "standard+regional", "0.00055572"), ("global", "standard", "0.0005052")],
)
def test_anthropic_vertex_prices_a_regional_endpoint_at_its_premium(
    region: str, mode: str, cost: str, vertex_standin: StandInServer, events: list[UsageEvent]
) -> None:
    """Claude 4.5 on a regional Vertex AI endpoint costs 10% more than on the global one.

    Claude Sonnet 4.5 list prices per 1M tokens: input $3, cache read $0.30, output $15.
    The payload: 21 input, 1,024 read, 9 output: 21 x 3 + 1024 x 0.30 + 9 x 15 = 505.2
    per 1M = $0.0005052 on the global endpoint; x 1.1 = $0.00055572 on a regional one.
    """
    client = anthropic.AnthropicVertex(
        region=region,
        project_id="demo-project",
        access_token="test-token",
        base_url=vertex_standin.scenario_url("vertex_claude_raw_predict"),
    )
    with client:
        client.messages.create(
            model="claude-sonnet-4-5@20250929",
            max_tokens=256,
            messages=[{"role": "user", "content": "hi"}],
        )
    (event,) = events
    assert event.pricing_mode == mode
    assert event.cost.status == "priced"
    assert event.cost.total == Decimal(cost)


@pytest.mark.parametrize(
    ("location", "mode"), [("us-east5", "standard+regional"), ("global", "standard")]
)
def test_a_plain_client_on_a_regional_claude_endpoint_is_priced_with_the_premium(
    location: str, mode: str, vertex_standin: StandInServer, events: list[UsageEvent]
) -> None:
    payload = VERTEX["vertex_claude_raw_predict"]
    url = vertex_url(vertex_standin, "vertex_claude_raw_predict").replace(
        "/locations/us-east5/", f"/locations/{location}/"
    )
    assert f"/locations/{location}/publishers/anthropic/" in url
    fetch_httpx(url, payload["request"])
    (event,) = events
    assert event.pricing_mode == mode
    # 505.2 per 1M tokens at list (see above), 10% more on a regional endpoint
    assert event.cost.total == Decimal("0.00055572" if location != "global" else "0.0005052")
