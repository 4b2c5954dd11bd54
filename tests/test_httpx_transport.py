"""Transport capture end to end: real httpx / httpx2 clients against the stand-in server."""

from __future__ import annotations

import copy
import gc
import gzip
import json
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import httpx2
import pytest
from llm_cost_tracker.instrumentation._calls import DROPPED_COUNTER
from llm_cost_tracker.instrumentation._hosts import register_host, unregister_host
from llm_cost_tracker.instrumentation.httpx import (
    HttpxInstrumentor,
    register_parser,
    unregister_parser,
)
from llm_cost_tracker.instrumentation.openai._extract import Extraction

import llm_cost_tracker as lct
from llm_cost_tracker._events import TokenUsage, UsageEvent
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.cli._standin import StandInServer
from llm_cost_tracker.cli._standin.server import Scenario, load_payloads
from llm_cost_tracker.testing import capture_events

# Bedrock's payloads are botocore's (event-stream framing, SigV4): test_instrument_bedrock.py covers them.
PAYLOADS = {pid: p for pid, p in load_payloads().items() if not pid.startswith("bedrock_")}
LIBRARIES = {"httpx": httpx, "httpx2": httpx2}
TIER_MODES = {"priority": "priority", "flex": "flex"}


@pytest.fixture
def events() -> Iterator[list[UsageEvent]]:
    """Record synchronously into a list, with only the transport instrumentor on."""
    instrumentor = HttpxInstrumentor()
    with capture_events() as captured:
        assert instrumentor.instrument()
        try:
            yield captured
        finally:
            instrumentor.uninstrument()


@pytest.fixture
def route_standin(standin: StandInServer) -> Iterator[Callable[[str], None]]:
    """Attribute the stand-in server's host:port to a provider for the test's duration."""
    host = standin.url.removeprefix("http://")

    def route(provider: str) -> None:
        register_host(host, provider)

    yield route
    unregister_host(host)


def payload_url(
    standin: StandInServer, scenario_id: str, payload: dict[str, Any] | None = None
) -> str:
    """The stand-in URL serving ``scenario_id`` under the provider's own path and query."""
    parts = urlsplit((payload or PAYLOADS[scenario_id])["url"])
    url = standin.scenario_url(scenario_id, parts.path)
    return f"{url}?{parts.query}" if parts.query else url


def body_of(payload: dict[str, Any]) -> bytes:
    if "sse" in payload:
        return str(payload["sse"]).encode()
    if payload.get("response_raw") is not None:
        return str(payload["response_raw"]).encode()
    return json.dumps(payload["response"]).encode()


def assert_matches(event: UsageEvent, payload: dict[str, Any]) -> None:
    """The event says exactly what the payload's ``expected`` block says."""
    expected = payload["expected"]
    assert event.provider == payload["provider"]
    if expected["model"] is not None:
        assert event.model == expected["model"]
    assert event.provider_response_id == expected["provider_response_id"]
    assert event.status == ("ok" if payload["http_status"] < 400 else "error")
    # a mode the payload states (a regional endpoint's "+regional"), else the one its tier maps to
    mode = expected.get("pricing_mode") or TIER_MODES.get(expected["service_tier"], "standard")
    assert event.pricing_mode == mode
    assert event.stream is bool(payload["stream"])
    if not expected["usage_known"]:
        assert event.usage is None
        assert event.usage_source == "unknown"
        return
    usage = event.usage
    assert usage is not None
    assert event.usage_source == ("stream" if payload["stream"] else "response")
    tokens = usage.tokens
    assert tokens.get("input", 0) == expected["input_tokens"]
    assert tokens.get("cache_read", 0) == expected["cache_read_tokens"]
    assert tokens.get("cache_write_5m", 0) == expected["cache_write_5m_tokens"]
    assert tokens.get("cache_write_1h", 0) == expected["cache_write_1h_tokens"]
    assert tokens.get("output", 0) == expected["output_tokens"]
    assert tokens.get("audio_input", 0) == expected["audio_input_tokens"]
    assert tokens.get("audio_output", 0) == expected["audio_output_tokens"]
    assert usage.reasoning_tokens == expected["reasoning_tokens"]
    assert usage.services.get("web_search", Decimal(0)) == expected["web_search_requests"]
    if "reported_cost_usd" in expected:
        assert usage.reported_cost == Decimal(str(expected["reported_cost_usd"]))
    else:
        assert usage.reported_cost is None


def fetch_sync(library: Any, url: str, request: dict[str, Any], streamed: bool) -> bytes:
    with library.Client() as client:
        if not streamed:
            return bytes(client.post(url, json=request).content)
        with client.stream("POST", url, json=request) as response:
            return b"".join(response.iter_bytes())


async def fetch_async(library: Any, url: str, request: dict[str, Any], streamed: bool) -> bytes:
    async with library.AsyncClient() as client:
        if not streamed:
            return bytes((await client.post(url, json=request)).content)
        async with client.stream("POST", url, json=request) as response:
            return b"".join([chunk async for chunk in response.aiter_bytes()])


# -- every shared payload, four clients, read whole or streamed ------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["read", "streamed"])
@pytest.mark.parametrize("library", sorted(LIBRARIES))
@pytest.mark.parametrize("scenario_id", sorted(PAYLOADS))
def test_payload_sync_client(
    scenario_id: str,
    library: str,
    streamed: bool,
    standin: StandInServer,
    route_standin: Callable[[str], None],
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS[scenario_id]
    route_standin(payload["provider"])
    body = fetch_sync(
        LIBRARIES[library], payload_url(standin, scenario_id), payload["request"], streamed
    )
    assert body == body_of(payload)  # the caller's response is untouched
    assert len(events) == 1
    assert_matches(events[0], payload)


@pytest.mark.parametrize("streamed", [False, True], ids=["read", "streamed"])
@pytest.mark.parametrize("library", sorted(LIBRARIES))
@pytest.mark.parametrize("scenario_id", sorted(PAYLOADS))
async def test_payload_async_client(
    scenario_id: str,
    library: str,
    streamed: bool,
    standin: StandInServer,
    route_standin: Callable[[str], None],
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS[scenario_id]
    route_standin(payload["provider"])
    body = await fetch_async(
        LIBRARIES[library], payload_url(standin, scenario_id), payload["request"], streamed
    )
    assert body == body_of(payload)
    assert len(events) == 1
    assert_matches(events[0], payload)


# -- every way of reading a stream -----------------------------------------------------

READ_METHODS: dict[str, Callable[[Any], bytes]] = {
    "iter_bytes": lambda r: b"".join(r.iter_bytes()),
    "iter_bytes_small": lambda r: b"".join(r.iter_bytes(chunk_size=3)),
    "iter_raw": lambda r: b"".join(r.iter_raw()),
    "iter_text": lambda r: "".join(r.iter_text()).encode(),
    "iter_lines": lambda r: "".join(line + "\n" for line in r.iter_lines()).encode(),
    "read": lambda r: bytes(r.read()),
}


@pytest.mark.parametrize("method", sorted(READ_METHODS))
@pytest.mark.parametrize("library", sorted(LIBRARIES))
@pytest.mark.parametrize(
    "scenario_id", ["anthropic_stream_basic_2025_shape", "openai_chat_stream_include_usage"]
)
def test_every_sync_read_method(
    scenario_id: str,
    library: str,
    method: str,
    standin: StandInServer,
    route_standin: Callable[[str], None],
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS[scenario_id]
    route_standin(payload["provider"])
    with (
        LIBRARIES[library].Client() as client,
        client.stream("POST", payload_url(standin, scenario_id), json=payload["request"]) as r,
    ):
        body = READ_METHODS[method](r)
    if method != "iter_lines":
        assert body == body_of(payload)
    assert len(events) == 1
    assert_matches(events[0], payload)


ASYNC_READ_METHODS = ["aiter_bytes", "aiter_raw", "aiter_text", "aiter_lines", "aread"]


@pytest.mark.parametrize("method", ASYNC_READ_METHODS)
@pytest.mark.parametrize("library", sorted(LIBRARIES))
async def test_every_async_read_method(
    library: str,
    method: str,
    standin: StandInServer,
    route_standin: Callable[[str], None],
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS["openai_responses_stream_completed_event"]
    route_standin("openai")
    url = payload_url(standin, payload["id"])
    async with (
        LIBRARIES[library].AsyncClient() as client,
        client.stream("POST", url, json=payload["request"]) as r,
    ):
        if method == "aread":
            await r.aread()
        else:
            async for _ in getattr(r, method)():
                pass
        assert len(events) == 1  # finished when the body ends, before the close
    assert len(events) == 1
    assert_matches(events[0], payload)


# -- stream shapes: separators, chunking, encodings, early close, truncation ------------------


def derived(standin: StandInServer, source: str, new_id: str, **changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(PAYLOADS[source])
    payload.update(changes, id=new_id)
    standin.add(payload)
    return payload


@pytest.mark.parametrize("library", sorted(LIBRARIES))
@pytest.mark.parametrize(
    "source",
    [
        "gemini_stream_no_thinking",
        "anthropic_stream_cache_write",
        "openai_responses_stream_completed_event",
        "groq_stream_usage_in_x_groq",
    ],
)
def test_crlf_separators_and_tiny_chunks(
    source: str,
    library: str,
    standin: StandInServer,
    route_standin: Callable[[str], None],
    events: list[UsageEvent],
) -> None:
    original = PAYLOADS[source]
    payload = derived(
        standin,
        source,
        f"{source}_crlf",
        sse=original["sse"].replace("\n", "\r\n"),
        chunk_size=7,
    )
    route_standin(payload["provider"])
    body = fetch_sync(
        LIBRARIES[library], payload_url(standin, payload["id"], original), payload["request"], True
    )
    assert body == body_of(payload)
    assert len(events) == 1
    assert_matches(events[0], original)


def test_gzip_encoded_stream_is_decoded_for_usage(
    standin: StandInServer, route_standin: Callable[[str], None], events: list[UsageEvent]
) -> None:
    payload = PAYLOADS["openai_chat_stream_include_usage"]
    standin.add(
        Scenario(
            id="gzip_chat_stream",
            status=200,
            body=gzip.compress(body_of(payload)),
            content_type="text/event-stream",
            headers={"content-encoding": "gzip"},
            chunk_size=50,
        )
    )
    route_standin("openai")
    body = fetch_sync(
        httpx2, standin.scenario_url("gzip_chat_stream", "/v1/chat/completions"), {}, True
    )
    assert body == body_of(payload)
    assert len(events) == 1
    assert_matches(events[0], payload)


@pytest.mark.parametrize("how", ["closed", "dropped"])
@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_stream_left_early_finishes_once(
    library: str,
    how: str,
    standin: StandInServer,
    route_standin: Callable[[str], None],
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS["openai_chat_stream_include_usage"]
    route_standin("openai")
    with LIBRARIES[library].Client() as client:
        request = client.build_request(
            "POST", payload_url(standin, payload["id"]), json=payload["request"]
        )
        response = client.send(request, stream=True)
        assert next(response.iter_lines()).startswith("data: ")
        if how == "closed":
            response.close()
        else:  # neither read to its end nor closed: finished when collected, by the next flush
            del response
            gc.collect()
            assert lct.flush(5)
        assert len(events) == 1
    event = events[0]
    assert (event.status, event.stream, event.model) == ("ok", True, "gpt-3.5-turbo-0125")
    if event.usage is None:  # the usage chunk had not arrived yet: unknown, never zero
        assert event.usage_source == "unknown"
    else:  # the first read held the whole (short) body: its usage, exactly
        assert_matches(event, payload)
    # httpx2 closes the response when its abandoned line iterator is collected (a close,
    # like any other); httpx leaves the response open, and the dropped body is ours to end.
    assert STATS.get(DROPPED_COUNTER) == (1 if how == "dropped" and library == "httpx" else 0)


@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_stream_closed_before_its_usage_chunk_has_unknown_usage(
    library: str, events: list[UsageEvent]
) -> None:
    lib = LIBRARIES[library]
    sse = PAYLOADS["openai_chat_stream_include_usage"]["sse"]
    pieces = [event + "\n\n" for event in sse.split("\n\n") if event]

    class OneEventPerChunk(lib.SyncByteStream):  # type: ignore[misc, name-defined]
        def __iter__(self) -> Iterator[bytes]:
            for piece in pieces:
                yield piece.encode()

    def handler(request: Any) -> Any:
        return lib.Response(
            200, headers={"content-type": "text/event-stream"}, stream=OneEventPerChunk()
        )

    with (
        lib.Client(transport=lib.MockTransport(handler)) as client,
        client.stream("POST", "https://api.openai.com/v1/chat/completions", json={}) as r,
    ):
        assert next(r.iter_lines()).startswith("data: ")
    assert len(events) == 1
    event = events[0]
    assert event.usage is None
    assert event.usage_source == "unknown"
    assert event.status == "ok"
    assert event.stream is True
    assert event.model == "gpt-3.5-turbo-0125"  # the first chunk still identifies the call


async def test_async_stream_closed_early_finishes_once(
    standin: StandInServer, route_standin: Callable[[str], None], events: list[UsageEvent]
) -> None:
    payload = PAYLOADS["anthropic_stream_basic_2025_shape"]
    route_standin("anthropic")
    async with (
        httpx2.AsyncClient() as client,
        client.stream("POST", payload_url(standin, payload["id"]), json=payload["request"]) as r,
    ):
        async for _ in r.aiter_lines():
            break
    assert len(events) == 1
    assert events[0].provider_response_id == "msg_015vYx5y1ygzx5WM3FSMKpqQ"


def test_truncated_stream_has_unknown_usage(
    standin: StandInServer, route_standin: Callable[[str], None], events: list[UsageEvent]
) -> None:
    sse = PAYLOADS["gemini_stream_no_thinking"]["sse"]
    cut = sse.index("\n\n") + 2 + 40  # the first event, then half a line of the second
    payload = derived(standin, "gemini_stream_no_thinking", "gemini_truncated", sse=sse[:cut])
    route_standin("google")
    fetch_sync(httpx, payload_url(standin, payload["id"], payload), payload["request"], True)
    assert len(events) == 1
    # The first chunk's usageMetadata is the last complete one: cumulative, so it stands.
    assert events[0].usage is not None
    assert events[0].usage.tokens["output"] == 3

    openai_sse = PAYLOADS["openai_chat_stream_include_usage"]["sse"]
    payload = derived(
        standin,
        "openai_chat_stream_include_usage",
        "openai_truncated",
        sse=openai_sse[: openai_sse.rindex('"usage":{') - 30],
    )
    route_standin("openai")
    fetch_sync(httpx, payload_url(standin, payload["id"], payload), payload["request"], True)
    assert len(events) == 2
    assert events[1].usage is None
    assert events[1].usage_source == "unknown"


def test_stream_read_error_is_recorded_and_reraised(events: list[UsageEvent]) -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b'data: {"id":"x","model":"gpt-4o"}\n\n'
            raise httpx.ReadError("connection lost")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Broken())

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(httpx.ReadError, match="connection lost"),
        client.stream(
            "POST", "https://api.openai.com/v1/chat/completions", json={"model": "m"}
        ) as r,
    ):
        for _ in r.iter_bytes():
            pass
    assert len(events) == 1
    assert events[0].status == "error"
    assert events[0].error_type == "ReadError"
    assert events[0].usage is None
    assert events[0].model == "gpt-4o"


def test_stream_keeps_response_elapsed(
    standin: StandInServer, route_standin: Callable[[str], None], events: list[UsageEvent]
) -> None:
    payload = PAYLOADS["openai_chat_stream_include_usage"]
    route_standin("openai")
    with httpx2.Client() as client:
        with client.stream("POST", payload_url(standin, payload["id"]), json={}) as r:
            r.read()
        assert r.elapsed.total_seconds() >= 0
    assert len(events) == 1


# -- other bodies: Gemini JSON arrays, huge bodies, bad input -------------------------------


def test_gemini_stream_as_json_array(
    standin: StandInServer, route_standin: Callable[[str], None], events: list[UsageEvent]
) -> None:
    source = PAYLOADS["gemini_stream_no_thinking"]
    chunks = [
        json.loads(line[6:]) for line in source["sse"].splitlines() if line.startswith("data: ")
    ]
    payload = copy.deepcopy(source)
    payload.update(
        id="gemini_stream_array",
        url=source["url"].split("?")[0],
        response_raw="[" + ",\r\n".join(json.dumps(c, indent=2) for c in chunks) + "]",
        content_type="application/json",
        chunk_size=64,
    )
    del payload["sse"]
    standin.add(payload)
    route_standin("google")
    fetch_sync(httpx2, payload_url(standin, payload["id"], payload), payload["request"], True)
    assert len(events) == 1
    assert_matches(events[0], source)


def test_huge_json_body_recovers_usage_from_its_tail(
    standin: StandInServer, route_standin: Callable[[str], None], events: list[UsageEvent]
) -> None:
    source = PAYLOADS["openai_embeddings"]
    response = copy.deepcopy(source["response"])
    response["data"] = [
        {"object": "embedding", "index": i, "embedding": "A" * 4096} for i in range(600)
    ]
    payload = derived(standin, "openai_embeddings", "embeddings_huge", response=response)
    assert len(json.dumps(response)) > 2 * 1024 * 1024
    route_standin("openai")
    fetch_sync(httpx, payload_url(standin, payload["id"], source), source["request"], True)
    assert len(events) == 1
    assert_matches(events[0], source)
    assert STATS.get("transport.body_recovered_from_tail") == 1


@pytest.mark.parametrize("streamed", [False, True])
def test_float_vectors_are_not_parsed_and_usage_is_exact(
    streamed: bool,
    standin: StandInServer,
    route_standin: Callable[[str], None],
    events: list[UsageEvent],
) -> None:
    source = PAYLOADS["openai_embeddings"]
    response = copy.deepcopy(source["response"])
    response["data"] = [
        {"object": "embedding", "index": i, "embedding": [(-1) ** d * d / 7e3 for d in range(1536)]}
        for i in range(3)
    ]  # what the API sends for encoding_format="float" (the SDK asks for base64)
    payload = derived(standin, "openai_embeddings", "embeddings_float", response=response)
    route_standin("openai")
    body = fetch_sync(
        httpx, payload_url(standin, payload["id"], source), source["request"], streamed
    )
    assert json.loads(body) == response  # the caller's body is untouched
    assert len(events) == 1
    assert_matches(events[0], source)


def test_negative_counts_make_usage_unknown(
    standin: StandInServer, route_standin: Callable[[str], None], events: list[UsageEvent]
) -> None:
    response = copy.deepcopy(PAYLOADS["openai_chat_cached_gpt4omini"]["response"])
    response["usage"]["completion_tokens"] = -3
    payload = derived(standin, "openai_chat_cached_gpt4omini", "negative", response=response)
    route_standin("openai")
    fetch_sync(httpx, payload_url(standin, payload["id"], payload), payload["request"], False)
    assert len(events) == 1
    assert events[0].usage is None
    assert events[0].model == "gpt-4o-mini-2024-07-18"
    assert STATS.get("dropped.usage_invalid") == 1


def test_non_json_success_body_is_unknown_usage_not_zero(
    standin: StandInServer, route_standin: Callable[[str], None], events: list[UsageEvent]
) -> None:
    standin.add(
        Scenario(id="garbage", status=200, body=b"{not json", content_type="application/json")
    )
    route_standin("openai")
    with httpx.Client() as client:
        response = client.post(
            standin.scenario_url("garbage", "/v1/chat/completions"), json={"model": "gpt-4o"}
        )
    assert response.content == b"{not json"
    assert len(events) == 1
    assert events[0].usage is None
    assert events[0].status == "ok"
    assert events[0].model == "gpt-4o"


def test_connection_error_is_recorded_and_reraised(
    route_standin: Callable[[str], None], events: list[UsageEvent], closed_port: int
) -> None:
    host = f"127.0.0.1:{closed_port}"  # nothing listens there
    register_host(host, "openai")
    try:
        with httpx2.Client() as client, pytest.raises(httpx2.ConnectError):
            client.post(f"http://{host}/v1/chat/completions", json={"model": "gpt-4o"})
    finally:
        unregister_host(host)
    assert len(events) == 1
    assert events[0].status == "error"
    assert events[0].error_type == "ConnectError"
    assert events[0].usage is None


# -- what is not recorded -----------------------------------------------------------------


def test_non_llm_requests_and_unbilled_paths_are_ignored(
    standin: StandInServer, route_standin: Callable[[str], None], events: list[UsageEvent]
) -> None:
    url = payload_url(standin, "openai_chat_cached_gpt4omini")
    with httpx.Client() as client:
        client.post(url, json={})  # host not registered: not an LLM host
        route_standin("openai")
        client.get(url)  # GET is never billed
        client.post(standin.scenario_url("openai_embeddings", "/v1/models"), json={})
        client.post(standin.scenario_url("anthropic_cache_read", "/v1/messages/count_tokens"))
    route_standin("anthropic")
    with httpx.Client() as client:
        client.post(standin.scenario_url("anthropic_cache_read", "/v1/messages/count_tokens"))
    assert events == []


def test_suppressed_calls_are_not_recorded_again(
    standin: StandInServer, route_standin: Callable[[str], None], events: list[UsageEvent]
) -> None:
    route_standin("openai")
    url = payload_url(standin, "openai_chat_cached_gpt4omini")
    with lct.suppressed(), httpx2.Client() as client:
        client.post(url, json={})
    assert events == []
    with httpx2.Client() as client:
        client.post(url, json={})
    assert len(events) == 1


def test_uninstrument_restores_send(
    standin: StandInServer, route_standin: Callable[[str], None]
) -> None:
    instrumentor = HttpxInstrumentor()
    with capture_events() as captured:
        assert instrumentor.instrument()
        assert instrumentor.instrument()  # idempotent
        instrumentor.uninstrument()
        assert not instrumentor.is_instrumented
        route_standin("openai")
        with httpx.Client() as client:
            client.post(payload_url(standin, "openai_chat_cached_gpt4omini"), json={})
    assert captured == []


def test_configure_instrument_httpx_by_entry_point(
    standin: StandInServer, route_standin: Callable[[str], None]
) -> None:
    route_standin("openai")
    with capture_events(instrument=["httpx"]) as captured:
        with httpx.Client() as client:
            client.post(payload_url(standin, "openai_chat_cached_gpt4omini"), json={})
        assert len(captured) == 1
    assert not HttpxInstrumentor().is_instrumented  # shutdown() uninstrumented it


# -- the real SDKs (on httpx2): transport alone, and no double counting with the SDK layer ------


EXPECTED_SDK_EVENTS = [
    ("openai", "openai_chat_cached_gpt4omini"),
    ("openai", "openai_chat_stream_include_usage"),
    ("anthropic", "anthropic_cache_read"),
    ("anthropic", "anthropic_stream_basic_2025_shape"),
]


@pytest.mark.parametrize(
    "instrument",
    [["httpx"], ["openai", "anthropic", "httpx"]],
    ids=["transport_only", "sdk_and_transport"],
)
def test_real_sdks_are_recorded_once(
    instrument: list[str], standin: StandInServer, route_standin: Callable[[str], None]
) -> None:
    with capture_events(instrument=instrument) as captured:
        import anthropic
        import openai

        host = standin.url.removeprefix("http://")
        # One host serves both providers here: attribute it per client before each pair of calls.
        register_host(host, "openai")
        chat = openai.OpenAI(
            api_key="sk-test", base_url=standin.scenario_url("openai_chat_cached_gpt4omini", "/v1")
        )
        chat.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        streaming = openai.OpenAI(
            api_key="sk-test",
            base_url=standin.scenario_url("openai_chat_stream_include_usage", "/v1"),
        )
        for _ in streaming.chat.completions.create(
            model="gpt-3.5-turbo",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        ):
            pass
        register_host(host, "anthropic")
        claude = anthropic.Anthropic(
            api_key="sk-test", base_url=standin.scenario_url("anthropic_cache_read")
        )
        claude.messages.create(
            model="claude-opus-4-6",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
        )
        claude_stream = anthropic.Anthropic(
            api_key="sk-test", base_url=standin.scenario_url("anthropic_stream_basic_2025_shape")
        )
        with claude_stream.messages.stream(
            model="claude-opus-4-6",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
        ) as stream:
            for _ in stream:
                pass
        for client in (chat, streaming, claude, claude_stream):
            client.close()
    assert len(captured) == 4
    for event, (provider, scenario_id) in zip(captured, EXPECTED_SDK_EVENTS, strict=True):
        payload = PAYLOADS[scenario_id]
        assert event.provider == provider
        assert_matches(event, payload)


async def test_real_async_sdk_through_transport_only(
    standin: StandInServer, route_standin: Callable[[str], None]
) -> None:
    import openai

    route_standin("openai")
    with capture_events(instrument=["httpx"]) as captured:
        client = openai.AsyncOpenAI(
            api_key="sk-test",
            base_url=standin.scenario_url("openai_responses_stream_completed_event", "/v1"),
        )
        stream = await client.responses.create(model="gpt-4.1-nano", input="hi", stream=True)
        async for _ in stream:
            pass
        await client.close()
    assert len(captured) == 1
    assert_matches(captured[0], PAYLOADS["openai_responses_stream_completed_event"])


# -- custom hosts and parsers -------------------------------------------------------------


def parse_ollama(body: Any) -> Extraction | None:
    """Ollama's native /api/chat: prompt_eval_count and eval_count, on the final (done) object."""
    if not isinstance(body, dict):
        return None
    usage = None
    if body.get("done") is True:
        usage = TokenUsage(
            tokens={
                "input": int(body.get("prompt_eval_count", 0)),
                "output": int(body.get("eval_count", 0)),
            }
        )
    return Extraction(usage=usage, model=body.get("model"))


@pytest.fixture
def ollama_route() -> Iterator[None]:
    register_parser("ollama", "/api/chat", parse_ollama, operation="chat")
    yield
    unregister_parser("ollama", "/api/chat")


OLLAMA_LINES = [
    {"model": "llama3.2", "message": {"role": "assistant", "content": "Hel"}, "done": False},
    {"model": "llama3.2", "message": {"role": "assistant", "content": "lo"}, "done": False},
    {"model": "llama3.2", "done": True, "prompt_eval_count": 26, "eval_count": 298},
]


@pytest.mark.usefixtures("ollama_route")
def test_custom_parser_for_a_self_hosted_ndjson_stream(
    standin: StandInServer, route_standin: Callable[[str], None], events: list[UsageEvent]
) -> None:
    body = b"".join(json.dumps(line).encode() + b"\n" for line in OLLAMA_LINES)
    standin.add(
        Scenario(
            id="ollama_stream",
            status=200,
            body=body,
            content_type="application/x-ndjson",
            chunk_size=20,
        )
    )
    standin.add(
        Scenario(
            id="ollama_json",
            status=200,
            body=json.dumps(OLLAMA_LINES[-1]).encode(),
            content_type="application/json",
        )
    )
    route_standin("ollama")
    with httpx.Client() as client:
        with client.stream(
            "POST", standin.scenario_url("ollama_stream", "/api/chat"), json={"model": "llama3.2"}
        ) as r:
            assert b"".join(r.iter_bytes()) == body
        client.post(standin.scenario_url("ollama_json", "/api/chat"), json={"model": "llama3.2"})
        client.post(
            standin.scenario_url("ollama_json", "/api/tags"), json={}
        )  # not a registered path
    assert [(e.provider, e.model, e.operation, e.stream) for e in events] == [
        ("ollama", "llama3.2", "chat", True),
        ("ollama", "llama3.2", "chat", False),
    ]
    for event in events:
        assert event.usage is not None
        assert dict(event.usage.tokens) == {"input": 26, "output": 298}


def test_registered_host_speaks_openai_compatible_api_by_default(
    standin: StandInServer, route_standin: Callable[[str], None], events: list[UsageEvent]
) -> None:
    route_standin("vllm")
    payload = PAYLOADS["openai_chat_stream_include_usage"]
    fetch_sync(httpx2, payload_url(standin, payload["id"], payload), payload["request"], True)
    assert len(events) == 1
    assert events[0].provider == "vllm"
    assert events[0].usage is not None
    assert events[0].usage.tokens["output"] == 5


def test_failing_custom_parser_is_counted_and_logs_no_url(
    standin: StandInServer,
    route_standin: Callable[[str], None],
    events: list[UsageEvent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(body: Any) -> Extraction:
        raise KeyError("boom")

    register_parser("selfhosted", "/generate", broken, operation="completions")
    try:
        route_standin("selfhosted")
        with caplog.at_level(logging.DEBUG), httpx.Client() as client:
            url = (
                standin.scenario_url("openai_completions_legacy_davinci", "/generate")
                + "?key=s3cret"
            )
            response = client.post(url, json={"model": "mine"})
        assert response.json()["id"] == "cmpl-8wq42D1Socatcl1rCmgYZOFX7dFZw"
    finally:
        unregister_parser("selfhosted", "/generate")
    assert len(events) == 1
    assert events[0].usage is None
    assert events[0].model == "mine"
    assert STATS.get("errors.parser.selfhosted/generate") == 1
    ours = [r for r in caplog.records if r.name.startswith("llm_cost_tracker")]
    assert ours  # the failure was logged ...
    assert all("s3cret" not in r.getMessage() and "/s/" not in r.getMessage() for r in ours)


def test_register_parser_validates_its_arguments() -> None:
    with pytest.raises(ValueError):
        register_parser("", "/x", parse_ollama)
    with pytest.raises(TypeError):
        register_parser("p", "/x", "not callable")  # type: ignore[arg-type]


def test_docs_transport_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "transport.md").read_text(encoding="utf-8")
    blocks = text.split("```python\n")[1:]
    example = next(block.split("```")[0] for block in blocks if "fake_ollama" in block)
    try:
        exec(compile(example, "docs/transport.md", "exec"), {"__name__": "docs_example"})
    finally:
        unregister_parser("ollama", "/api/chat")
        unregister_host("ollama.internal:11434")
    assert capsys.readouterr().out == "ollama llama3.2 chat {'input': 26, 'output': 298}\n"


# -- budgets: the transport honours raise (after the call) and block (before sending) ---------


def test_budget_raise_mode_raises_after_the_recorded_call(
    standin: StandInServer, route_standin: Callable[[str], None]
) -> None:
    route_standin("openai")
    url = payload_url(standin, "openai_chat_cached_gpt4omini")
    budgets = lct.Budgets(per_call="0.0000001", on_exceed="raise")
    with capture_events(instrument=["httpx"], budgets=budgets) as captured:
        with httpx2.Client() as client, pytest.raises(lct.BudgetExceededError) as raised:
            client.post(url, json=PAYLOADS["openai_chat_cached_gpt4omini"]["request"])
        assert not raised.value.blocked
        assert len(captured) == 1  # the call happened and is recorded
        assert captured[0].total_cost is not None
        assert captured[0].total_cost > Decimal("0.0000001")


async def test_budget_block_mode_stops_the_request_before_it_is_sent(
    standin: StandInServer, route_standin: Callable[[str], None]
) -> None:
    route_standin("openai")
    url = payload_url(standin, "openai_chat_cached_gpt4omini")
    request = {
        "model": "gpt-4o-mini",
        "max_tokens": 100_000,
        "messages": [{"role": "user", "content": "hi " * 20_000}],
    }
    sent_before = len(standin.requests)
    budgets = lct.Budgets(per_call="0.0001", on_exceed="block")
    with capture_events(instrument=["httpx"], budgets=budgets) as captured:
        async with httpx.AsyncClient() as client:
            with pytest.raises(lct.BudgetExceededError) as raised:
                await client.post(url, json=request)
        assert raised.value.blocked
        assert raised.value.estimate is not None
        assert captured == []
    assert len(standin.requests) == sent_before  # never sent


async def test_async_stream_read_error_is_recorded_and_reraised(events: list[UsageEvent]) -> None:
    class Broken(httpx2.AsyncByteStream):  # type: ignore[misc]
        async def __aiter__(self) -> Any:
            yield b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","model":"claude-x"}}\n\n'
            raise httpx2.ReadError("connection lost")

    def handler(request: Any) -> Any:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=Broken())

    async def read_all(client: Any) -> None:
        async with client.stream("POST", "https://api.anthropic.com/v1/messages", json={}) as r:
            async for _ in r.aiter_lines():
                pass

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
        with pytest.raises(httpx2.ReadError, match="connection lost"):
            await read_all(client)
    assert len(events) == 1
    assert events[0].status == "error"
    assert events[0].error_type == "ReadError"
    assert events[0].provider_response_id == "msg_1"
    assert events[0].usage is None


async def test_cancelled_request_is_recorded_and_the_cancellation_propagates(
    events: list[UsageEvent],
) -> None:
    import asyncio

    started = asyncio.Event()

    async def handler(request: Any) -> Any:
        started.set()
        await asyncio.sleep(30)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        task = asyncio.create_task(
            client.post("https://api.openai.com/v1/chat/completions", json={"model": "gpt-4o"})
        )
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(events) == 1
    assert events[0].status == "error"
    assert events[0].error_type == "CancelledError"
    assert events[0].usage is None


PERPLEXITY_USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 300,
    "total_tokens": 312,
    "search_context_size": "low",
    "citation_tokens": 0,
    "num_search_queries": 1,
    "cost": {
        "input_tokens_cost": 0.000012,
        "output_tokens_cost": 0.0003,
        "request_cost": 0.005,
        "total_cost": 0.005312,
    },
}


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
def test_perplexity_reported_cost_object(
    streamed: bool,
    standin: StandInServer,
    route_standin: Callable[[str], None],
    events: list[UsageEvent],
) -> None:
    body = {
        "id": "pplx-1",
        "model": "sonar",
        "object": "chat.completion",
        "choices": [],
        "usage": PERPLEXITY_USAGE,
    }
    payload: dict[str, Any] = {"id": f"perplexity_{streamed}", "http_status": 200}
    if streamed:
        first = {**body, "object": "chat.completion.chunk", "usage": None}
        payload["sse"] = (
            f"data: {json.dumps(first)}\n\ndata: {json.dumps(body)}\n\ndata: [DONE]\n\n"
        )
    else:
        payload["response"] = body
    standin.add(payload)
    route_standin("perplexity")
    fetch_sync(
        httpx,
        standin.scenario_url(payload["id"], "/chat/completions"),
        {"model": "sonar"},
        streamed,
    )
    assert len(events) == 1
    usage = events[0].usage
    assert usage is not None
    assert dict(usage.tokens) == {"input": 12, "output": 300}
    assert usage.reported_cost == Decimal("0.005312")
    assert events[0].provider == "perplexity"
    assert events[0].model == "sonar"


# -- the other OpenAI surfaces: images, audio -------------------------------------------------

_IMAGE_TOKENS = {
    "created": 1713833628,
    "data": [{"b64_json": "aGk="}],
    "usage": {
        "input_tokens": 50,
        "output_tokens": 4160,
        "total_tokens": 4210,
        "input_tokens_details": {"text_tokens": 40, "image_tokens": 10},
    },
}
_DALLE = {"created": 1713833628, "data": [{"url": "https://x/1.png"}, {"url": "https://x/2.png"}]}
_VERBOSE_TRANSCRIPT = {"task": "transcribe", "language": "english", "duration": 12.5, "text": "hi"}


@pytest.mark.parametrize(
    ("path", "response", "operation", "tokens", "services"),
    [
        (
            "/v1/images/generations",
            _IMAGE_TOKENS,
            "images",
            {"input": 40, "image_input": 10, "image_output": 4160},
            {},
        ),
        ("/v1/images/generations", _DALLE, "images", {}, {"image": Decimal(2)}),
        (
            "/v1/audio/transcriptions",
            _VERBOSE_TRANSCRIPT,
            "transcriptions",
            {},
            {"audio_second": Decimal("12.5")},
        ),
    ],
    ids=["gpt-image", "dall-e", "whisper-verbose"],
)
def test_images_and_transcriptions(
    path: str,
    response: dict[str, Any],
    operation: str,
    tokens: dict[str, int],
    services: dict[str, Decimal],
    standin: StandInServer,
    route_standin: Callable[[str], None],
    events: list[UsageEvent],
) -> None:
    scenario = f"surface_{operation}_{len(tokens)}"
    standin.add({"id": scenario, "http_status": 200, "response": response})
    route_standin("openai")
    with httpx2.Client() as client:
        client.post(standin.scenario_url(scenario, path), json={"model": "gpt-image-1"})
    assert len(events) == 1
    usage = events[0].usage
    assert usage is not None
    assert events[0].operation == operation
    assert {k: v for k, v in usage.tokens.items() if v} == tokens
    assert dict(usage.services) == services


def test_speech_is_billed_by_the_characters_of_the_request(
    standin: StandInServer, route_standin: Callable[[str], None], events: list[UsageEvent]
) -> None:
    standin.add(
        Scenario(id="speech_mp3", status=200, body=b"ID3\x00fake-mp3", content_type="audio/mpeg")
    )
    route_standin("openai")
    with httpx.Client() as client:
        response = client.post(
            standin.scenario_url("speech_mp3", "/v1/audio/speech"),
            json={"model": "tts-1", "input": "Hello there!", "voice": "alloy"},
        )
    assert response.content == b"ID3\x00fake-mp3"
    assert len(events) == 1
    assert events[0].operation == "speech"
    assert events[0].model == "tts-1"
    assert events[0].usage_source == "estimated"
    assert events[0].usage is not None
    assert dict(events[0].usage.services) == {"character": Decimal(12)}


@pytest.mark.parametrize("where", ["before", "after"])
def test_the_model_and_stream_flag_of_a_long_request_are_read_at_either_end(where: str) -> None:
    """Only the first and last few KiB of a request are searched, so a long prompt costs no more."""
    from llm_cost_tracker.instrumentation._transport import REQUEST_SCAN_BYTES, request_fields

    messages = [{"role": "user", "content": "lorem ipsum " * 20_000}]  # 240 KB
    keys = {"model": "gpt-4o-mini", "stream": True}
    ordered = (
        {**keys, "messages": messages} if where == "before" else {"messages": messages, **keys}
    )
    body = json.dumps(ordered).encode()
    assert len(body) > 50 * REQUEST_SCAN_BYTES
    data, model, stream = request_fields(body)
    assert (model, stream) == ("gpt-4o-mini", True)
    assert data["messages"] == messages  # the whole body is still there for a preflight

    # a key in the middle, past both windows, is not found here: the response tells instead
    middle = json.dumps({"messages": messages, "model": "m", "tools": messages}).encode()
    assert request_fields(middle)[1] is None
