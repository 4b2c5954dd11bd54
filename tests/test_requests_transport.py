"""requests capture end to end: real requests sessions against the stand-in server.

The same payloads, expectations and custom parsers as ``test_httpx_transport.py``:
a call made with ``requests`` is recorded exactly like the httpx one.
"""

from __future__ import annotations

import gc
import gzip
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import requests
from llm_cost_tracker.instrumentation._calls import DROPPED_COUNTER
from llm_cost_tracker.instrumentation.requests import RequestsInstrumentor
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
    """Record synchronously into a list, with only the requests instrumentor on."""
    instrumentor = RequestsInstrumentor()
    with capture_events() as captured:
        assert instrumentor.instrument()
        try:
            yield captured
        finally:
            instrumentor.uninstrument()


READERS: dict[str, Callable[[requests.Response], bytes]] = {
    "content": lambda r: r.content,
    "iter_content": lambda r: b"".join(r.iter_content(chunk_size=None)),
    "iter_content_small": lambda r: b"".join(r.iter_content(chunk_size=3)),
    "iter_lines": lambda r: b"".join(line + b"\n" for line in r.iter_lines()),
    "raw_read": lambda r: r.raw.read(),
    "raw_read_chunks": lambda r: b"".join(iter(lambda: r.raw.read(5), b"")),
}


def fetch(url: str, request: dict[str, Any], streamed: bool, reader: str = "content") -> bytes:
    with requests.Session() as session:
        response = session.post(url, json=request, stream=streamed, timeout=10)
        with response:
            return READERS[reader](response)


@pytest.mark.parametrize("streamed", [False, True], ids=["read", "streamed"])
@pytest.mark.parametrize("scenario_id", sorted(PAYLOADS))
def test_payload(
    scenario_id: str,
    streamed: bool,
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS[scenario_id]
    route_standin(payload["provider"])
    body = fetch(payload_url(standin, scenario_id), payload["request"], streamed)
    assert body == body_of(payload)  # the caller's response is untouched
    assert len(events) == 1
    assert_matches(events[0], payload)


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize(
    "scenario_id",
    ["anthropic_stream_basic_2025_shape", "openai_chat_stream_include_usage", "openai_embeddings"],
)
def test_every_read_method(
    scenario_id: str,
    reader: str,
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS[scenario_id]
    route_standin(payload["provider"])
    body = fetch(payload_url(standin, scenario_id), payload["request"], True, reader)
    if reader != "iter_lines":
        assert body == body_of(payload)
    assert len(events) == 1
    assert_matches(events[0], payload)


def test_module_level_post_is_recorded(
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS["openai_chat_cached_gpt4omini"]
    route_standin("openai")
    response = requests.post(
        payload_url(standin, payload["id"]), json=payload["request"], timeout=10
    )
    assert response.json() == payload["response"]
    assert len(events) == 1
    assert_matches(events[0], payload)


def test_gzip_encoded_stream_is_decoded_for_usage(
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS["openai_chat_stream_include_usage"]
    standin.add(
        Scenario(
            id="requests_gzip_stream",
            status=200,
            body=gzip.compress(body_of(payload)),
            content_type="text/event-stream",
            headers={"content-encoding": "gzip"},
            chunk_size=50,
        )
    )
    route_standin("openai")
    url = standin.scenario_url("requests_gzip_stream", "/v1/chat/completions")
    assert fetch(url, {}, True, "iter_content") == body_of(payload)
    # Raw encoded bytes are handed on unchanged; their usage is unknown, and counted.
    with requests.post(url, json={}, stream=True, timeout=10) as response:
        raw = response.raw.read(decode_content=False)
    assert gzip.decompress(raw) == body_of(payload)
    assert len(events) == 2
    assert_matches(events[0], payload)
    assert events[1].usage is None
    assert STATS.snapshot().get("dropped.transport_unsupported_encoding") == 1


@pytest.mark.parametrize("how", ["closed", "dropped"])
def test_stream_left_half_way_is_recorded_once_with_what_was_seen(
    how: str,
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS["openai_chat_stream_include_usage"]
    route_standin("openai")
    response = requests.post(
        payload_url(standin, payload["id"]), json=payload["request"], stream=True, timeout=10
    )
    assert next(response.iter_lines()).startswith(b"data: ")
    assert events == []  # still being read
    if how == "closed":
        response.close()
    else:  # neither read to its end nor closed: finished when collected, by the next flush
        del response
        gc.collect()
        assert lct.flush(5)
    assert len(events) == 1
    event = events[0]
    assert (event.status, event.stream, event.model) == ("ok", True, "gpt-3.5-turbo-0125")
    assert event.usage is None  # the usage chunk never came: unknown, not zero
    assert event.usage_source == "unknown"
    assert STATS.get(DROPPED_COUNTER) == (1 if how == "dropped" else 0)


def test_truncated_stream_and_bad_bodies_have_unknown_usage(
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    sse = PAYLOADS["openai_chat_stream_include_usage"]["sse"]
    truncated = derived(
        standin,
        "openai_chat_stream_include_usage",
        "requests_truncated",
        sse=sse[: sse.rindex('"usage":{') - 30],
    )
    not_json = derived(
        standin, "openai_chat_cached_gpt4omini", "requests_not_json", response_raw="{not json"
    )
    no_usage = derived(standin, "edge_usage_null", "requests_usage_null")
    route_standin("openai")
    for payload, streamed in ((truncated, True), (not_json, False), (no_usage, False)):
        body = fetch(payload_url(standin, payload["id"], payload), payload["request"], streamed)
        assert body == body_of(payload)
    assert [e.usage for e in events] == [None, None, None]
    assert {e.usage_source for e in events} == {"unknown"}
    assert {e.status for e in events} == {"ok"}


def test_http_error_and_connection_error(
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
    closed_port: int,
) -> None:
    payload = PAYLOADS["anthropic_error_429_rate_limit"]
    route_standin("anthropic")
    response = requests.post(
        payload_url(standin, payload["id"]), json=payload["request"], timeout=10
    )
    assert response.status_code == 429
    lct.register_host(f"127.0.0.1:{closed_port}", "openai")
    try:
        with pytest.raises(requests.ConnectionError):
            requests.post(
                f"http://127.0.0.1:{closed_port}/v1/chat/completions",
                json={"model": "x"},
                timeout=5,
            )
    finally:
        from llm_cost_tracker.instrumentation._hosts import unregister_host

        unregister_host(f"127.0.0.1:{closed_port}")
    assert [(e.status, e.error_type) for e in events] == [
        ("error", "http_429"),
        ("error", "ConnectionError"),
    ]
    assert events[1].usage is None


def test_non_llm_requests_and_unbilled_paths_are_ignored(
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS["openai_chat_cached_gpt4omini"]
    requests.post(payload_url(standin, payload["id"]), json=payload["request"], timeout=10)
    assert events == []  # the stand-in's host is not an LLM host yet
    route_standin("openai")
    requests.get(payload_url(standin, payload["id"]), timeout=10)
    requests.post(standin.scenario_url(payload["id"], "/v1/files"), json={}, timeout=10)
    assert events == []


def test_a_call_an_outer_layer_records_is_not_recorded_again(
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    payload = PAYLOADS["openai_chat_cached_gpt4omini"]
    route_standin("openai")

    def handler(request: httpx.Request) -> httpx.Response:
        # An httpx transport that makes the real request with requests (nested transports).
        reply = requests.post(str(request.url), data=request.content, timeout=10)
        return httpx.Response(reply.status_code, headers=reply.headers, content=reply.content)

    with capture_events(instrument=["httpx", "requests"]) as both:
        with httpx.Client(transport=httpx.MockTransport(handler)) as client:
            client.post(payload_url(standin, payload["id"]), json=payload["request"])
        with lct.suppressed():
            requests.post(payload_url(standin, payload["id"]), json=payload["request"], timeout=10)
    assert len(both) == 1
    assert_matches(both[0], payload)


@pytest.mark.usefixtures("ollama_route")
def test_custom_parser_for_a_self_hosted_ndjson_stream(
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
    events: list[UsageEvent],
) -> None:
    body = b"".join(json.dumps(line).encode() + b"\n" for line in OLLAMA_LINES)
    standin.add(
        Scenario(
            id="requests_ollama",
            status=200,
            body=body,
            content_type="application/x-ndjson",
            chunk_size=20,
        )
    )
    route_standin("ollama")
    url = standin.scenario_url("requests_ollama", "/api/chat")
    assert fetch(url, {"model": "llama3.2"}, True, "iter_lines") == body
    assert len(events) == 1
    event = events[0]
    assert (event.provider, event.model, event.operation) == ("ollama", "llama3.2", "chat")
    assert event.usage is not None
    assert dict(event.usage.tokens) == {"input": 26, "output": 298}


def test_configure_all_turns_requests_capture_on_and_uninstrument_restores_send(
    standin: StandInServer,
    route_standin: Callable[[str], None],  # noqa: F811
) -> None:
    original = requests.Session.send
    payload = PAYLOADS["openai_embeddings"]
    route_standin("openai")
    with capture_events(instrument="all") as captured:
        assert requests.Session.send is not original
        requests.post(payload_url(standin, payload["id"]), json=payload["request"], timeout=10)
    assert len(captured) == 1
    RequestsInstrumentor().uninstrument()
    assert requests.Session.send is original


def test_a_host_registered_or_removed_between_requests_is_routed_afresh(
    standin: StandInServer, events: list[UsageEvent]
) -> None:
    """Hosts are remembered per origin; registering or removing one is seen by the next request."""
    from llm_cost_tracker.instrumentation._hosts import register_host, unregister_host

    payload = PAYLOADS["openai_chat_cached_gpt4omini"]
    url = payload_url(standin, payload["id"])
    host = standin.url.removeprefix("http://")
    fetch(url, payload["request"], False)  # not an LLM host yet: remembered as such
    assert events == []
    register_host(host, "openai")
    try:
        fetch(url, payload["request"], False)
        assert [e.provider for e in events] == ["openai"]
    finally:
        unregister_host(host)
    fetch(url, payload["request"], False)
    assert len(events) == 1
