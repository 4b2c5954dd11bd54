"""aiohttp capture end to end: real aiohttp sessions against the stand-in server.

The same payloads, expectations and custom parsers as ``test_httpx_transport.py``:
a call made with aiohttp is recorded exactly like the httpx one.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from llm_cost_tracker.instrumentation._calls import DROPPED_COUNTER
from llm_cost_tracker.instrumentation._hosts import register_host, unregister_host
from llm_cost_tracker.instrumentation.aiohttp import AiohttpInstrumentor
from test_httpx_transport import (
    OLLAMA_LINES,
    PAYLOADS,
    assert_matches,
    body_of,
    derived,
    ollama_route,  # noqa: F401 (a fixture)
    payload_url,
    route_standin,  # noqa: F401 (a fixture)
)

import llm_cost_tracker as lct
from llm_cost_tracker._events import UsageEvent
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.cli._standin import StandInServer
from llm_cost_tracker.cli._standin.server import Scenario
from llm_cost_tracker.testing import capture_events


@pytest.fixture
def events() -> Iterator[list[UsageEvent]]:
    """Record synchronously into a list, with only the aiohttp instrumentor on."""
    instrumentor = AiohttpInstrumentor()
    with capture_events() as captured:
        assert instrumentor.instrument()
        try:
            yield captured
        finally:
            instrumentor.uninstrument()


async def _lines(r: aiohttp.ClientResponse) -> bytes:
    return b"".join([line async for line in r.content])


async def _readline(r: aiohttp.ClientResponse) -> bytes:
    parts = []
    while line := await r.content.readline():
        parts.append(line)
    return b"".join(parts)


async def _chunks(r: aiohttp.ClientResponse) -> bytes:
    return b"".join([data async for data, _ in r.content.iter_chunks()])


READERS: dict[str, Callable[[aiohttp.ClientResponse], Awaitable[bytes]]] = {
    "read": lambda r: r.read(),
    "text": lambda r: _encoded(r.text()),
    "iter_chunked": lambda r: _joined(r.content.iter_chunked(5)),
    "iter_any": lambda r: _joined(r.content.iter_any()),
    "iter_chunks": _chunks,
    "async_for_lines": _lines,
    "readline": _readline,
    "content_read": lambda r: r.content.read(),
}


async def _encoded(text: Awaitable[str]) -> bytes:
    return (await text).encode()


async def _joined(chunks: Any) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def fetch(url: str, request: dict[str, Any], reader: str = "read") -> bytes:
    async with aiohttp.ClientSession() as session, session.post(url, json=request) as response:
        return await READERS[reader](response)


@pytest.mark.parametrize("scenario_id", sorted(PAYLOADS))
async def test_payload(
    scenario_id: str,
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS[scenario_id]
    route_standin(payload["provider"])
    body = await fetch(payload_url(standin, scenario_id), payload["request"], "iter_any")
    assert body == body_of(payload)  # the caller's response is untouched
    assert len(events) == 1
    assert_matches(events[0], payload)


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize(
    "scenario_id",
    ["gemini_stream_no_thinking", "openai_chat_stream_include_usage", "openai_embeddings"],
)
async def test_every_read_method(
    scenario_id: str,
    reader: str,
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS[scenario_id]
    route_standin(payload["provider"])
    assert await fetch(payload_url(standin, scenario_id), payload["request"], reader) == body_of(
        payload
    )
    assert len(events) == 1
    assert_matches(events[0], payload)


async def test_json_and_data_request_bodies_name_the_model(
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    payload = derived(
        standin, "openai_chat_stream_without_usage", "aiohttp_no_usage_model"
    )  # no usage in the stream: the event's model is the request's
    route_standin("openai")
    url = payload_url(standin, payload["id"], payload)
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"model": "gpt-from-json", "stream": True}) as r:
            await r.read()
        body = json.dumps({"model": "gpt-from-data", "stream": True})
        async with session.post(url, data=body) as r:
            await r.read()
    assert [(e.stream, e.usage) for e in events] == [(True, None), (True, None)]
    assert all(e.model for e in events)


@pytest.mark.parametrize("how", ["released", "dropped"])
async def test_stream_left_half_way_is_recorded_once_with_what_was_seen(
    how: str,
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS["openai_chat_stream_include_usage"]
    route_standin("openai")
    async with aiohttp.ClientSession() as session:
        response = await session.post(payload_url(standin, payload["id"]), json=payload["request"])
        assert (await response.content.readline()).startswith(b"data: ")
        assert events == []
        if how == "released":
            response.release()  # finished with what was read
        else:  # neither read to its end nor released: finished when collected, by the next flush
            del response
            gc.collect()
            assert lct.flush(5)
        assert len(events) == 1
    event = events[0]
    assert (event.status, event.stream, event.usage, event.usage_source) == (
        "ok",
        True,
        None,
        "unknown",
    )
    assert STATS.get(DROPPED_COUNTER) == (1 if how == "dropped" else 0)


async def test_truncated_stream_and_bad_bodies_have_unknown_usage(
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    sse = PAYLOADS["openai_chat_stream_include_usage"]["sse"]
    truncated = derived(
        standin,
        "openai_chat_stream_include_usage",
        "aiohttp_truncated",
        sse=sse[: sse.rindex('"usage":{') - 30],
    )
    not_json = derived(
        standin, "openai_chat_cached_gpt4omini", "aiohttp_not_json", response_raw="{not json"
    )
    html = PAYLOADS["edge_502_html_body"]
    route_standin("openai")
    for payload in (truncated, not_json):
        body = await fetch(payload_url(standin, payload["id"], payload), payload["request"])
        assert body == body_of(payload)
    route_standin(html["provider"])
    assert await fetch(payload_url(standin, html["id"]), html["request"], "text") == body_of(html)
    assert [e.usage for e in events] == [None, None, None]
    assert [e.status for e in events] == ["ok", "ok", "error"]
    assert events[2].error_type == "http_502"


async def test_connection_error_is_recorded_and_propagates(
    events: list[UsageEvent], closed_port: int
) -> None:
    register_host(f"127.0.0.1:{closed_port}", "openai")
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.post(
                    f"http://127.0.0.1:{closed_port}/v1/chat/completions", json={"model": "m"}
                )
    finally:
        unregister_host(f"127.0.0.1:{closed_port}")
    assert len(events) == 1
    assert (events[0].status, events[0].usage) == ("error", None)
    assert events[0].error_type is not None
    assert "Connect" in events[0].error_type


async def test_non_llm_requests_are_ignored_and_suppression_is_honoured(
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS["openai_chat_cached_gpt4omini"]
    await fetch(payload_url(standin, payload["id"]), payload["request"])
    assert events == []  # not an LLM host
    route_standin("openai")
    async with aiohttp.ClientSession() as session:
        async with session.get(payload_url(standin, payload["id"])) as r:
            await r.read()
        with lct.suppressed():
            async with session.post(payload_url(standin, payload["id"]), json={}) as r:
                await r.read()
    assert events == []


async def test_session_base_url_is_resolved(
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS["anthropic_cache_read"]
    route_standin("anthropic")
    async with (
        aiohttp.ClientSession(base_url=standin.url) as session,
        session.post(f"/s/{payload['id']}/v1/messages", json=payload["request"]) as r,
    ):
        assert await r.json() == payload["response"]
    assert len(events) == 1
    assert_matches(events[0], payload)


@pytest.mark.usefixtures("ollama_route")
async def test_custom_parser_for_a_self_hosted_ndjson_stream(
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    body = b"".join(json.dumps(line).encode() + b"\n" for line in OLLAMA_LINES)
    standin.add(
        Scenario(
            id="aiohttp_ollama",
            status=200,
            body=body,
            content_type="application/x-ndjson",
            chunk_size=20,
        )
    )
    route_standin("ollama")
    url = standin.scenario_url("aiohttp_ollama", "/api/chat")
    assert await fetch(url, {"model": "llama3.2"}, "async_for_lines") == body
    assert len(events) == 1
    event = events[0]
    assert (event.provider, event.model, event.operation) == ("ollama", "llama3.2", "chat")
    assert event.usage is not None
    assert dict(event.usage.tokens) == {"input": 26, "output": 298}


def test_uninstrument_restores_request() -> None:
    original = aiohttp.ClientSession._request
    instrumentor = AiohttpInstrumentor()
    assert instrumentor.instrument()
    assert aiohttp.ClientSession._request is not original
    instrumentor.uninstrument()
    assert aiohttp.ClientSession._request is original
    assert asyncio.iscoroutinefunction(aiohttp.ClientSession._request)
