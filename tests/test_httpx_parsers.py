"""The transport's pure parts: stream splitters, body windows, the Gemini parser, routes and hosts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from llm_cost_tracker.instrumentation import _hosts
from llm_cost_tracker.instrumentation._hosts import (
    provider_for_host,
    register_host,
    registered_hosts,
    unregister_host,
)
from llm_cost_tracker.instrumentation._sse import (
    BodyWindow,
    EventSplitter,
    LineSplitter,
    recover_document,
)
from llm_cost_tracker.instrumentation.httpx._gemini import (
    GeminiStreamState,
    extract_gemini,
    usage_from_gemini,
)
from llm_cost_tracker.instrumentation.httpx._parsers import (
    model_from_path,
    register_parser,
    route_for,
    unregister_parser,
)
from llm_cost_tracker.instrumentation.openai._extract import Extraction

from llm_cost_tracker._events import TokenUsage
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.cli._standin.server import load_payloads

PAYLOADS = load_payloads()

# -- EventSplitter ----------------------------------------------------------------------

SSE = (
    b": keep-alive comment\n"
    b"event: first\n"
    b'data: {"a":1}\n'
    b"\n"
    b'data: {"b":\r\n'
    b"data: 2}\r\n"
    b"\r\n"
    b"event: third\r"
    b"data: [DONE]\r"
    b"\r"
    b"data:no-space\n\n"
)
EXPECTED_EVENTS = [
    ("first", b'{"a":1}'),
    (None, b'{"b":\n2}'),
    ("third", b"[DONE]"),
    (None, b"no-space"),
]


def split_events(pieces: list[bytes], **options: Any) -> list[tuple[str | None, bytes]]:
    seen: list[tuple[str | None, bytes]] = []
    splitter = EventSplitter(lambda name, data: seen.append((name, data)), **options)
    for piece in pieces:
        splitter.feed(piece)
    splitter.close()
    return seen


def test_event_splitter_handles_every_line_ending_and_comment() -> None:
    assert split_events([SSE]) == EXPECTED_EVENTS


@pytest.mark.parametrize("cut", range(1, len(SSE)))
def test_event_splitter_gives_the_same_events_whatever_the_chunking(cut: int) -> None:
    assert split_events([SSE[:cut], SSE[cut:]]) == EXPECTED_EVENTS


def test_event_splitter_byte_by_byte() -> None:
    assert split_events([SSE[i : i + 1] for i in range(len(SSE))]) == EXPECTED_EVENTS


def test_event_splitter_drops_an_event_cut_off_by_the_end_of_the_stream() -> None:
    assert split_events([b'data: {"complete":1}\n\ndata: {"trunc']) == [(None, b'{"complete":1}')]
    assert split_events([b'data: {"complete":1}\n\ndata: {"whole line, no blank"}\n']) == [
        (None, b'{"complete":1}')
    ]


def test_event_splitter_skips_oversized_events_and_counts_them() -> None:
    big = b"data: " + b"x" * 500 + b"\n\n"
    pieces = [b'data: {"before":1}\n\n', big[:100], big[100:], b'data: {"after":1}\n\n']
    assert split_events(pieces, max_event_bytes=256) == [
        (None, b'{"before":1}'),
        (None, b'{"after":1}'),
    ]
    assert STATS.get("dropped.transport_sse_event_too_large") == 1


def test_event_splitter_bounds_a_line_without_end() -> None:
    seen: list[tuple[str | None, bytes]] = []
    splitter = EventSplitter(lambda name, data: seen.append((name, data)), max_event_bytes=64)
    for _ in range(100):
        splitter.feed(b"y" * 50)  # one endless line: never kept whole
        assert len(splitter._pending) <= 64 + 50
    splitter.feed(b'\n\ndata: {"ok":1}\n\n')
    assert seen == [(None, b'{"ok":1}')]


def test_event_splitter_skips_whole_chunks_without_the_pattern_only_at_event_boundaries() -> None:
    import re

    seen: list[tuple[str | None, bytes]] = []
    splitter = EventSplitter(lambda name, data: seen.append((name, data)))
    splitter.skip = re.compile(rb"usage")
    splitter.feed(
        b'data: {"text":"a"}\n\ndata: {"text":"b"}\n\n'
    )  # whole events, no match: skipped
    splitter.feed(b'data: {"text":"c"')  # an event begins ...
    splitter.feed(b"}\n\n")  # ... and ends in a chunk without the pattern: still delivered
    splitter.feed(b'data: {"usage":{}}\r\n\r\n')
    splitter.close()
    assert seen == [(None, b'{"text":"c"}'), (None, b'{"usage":{}}')]


# -- LineSplitter (NDJSON) ------------------------------------------------------------------

NDJSON = b'{"a":1}\n\n{"b":2}\r\n{"c":3}'


@pytest.mark.parametrize("cut", range(len(NDJSON)))
def test_line_splitter_whatever_the_chunking(cut: int) -> None:
    seen: list[bytes] = []
    splitter = LineSplitter(lambda name, data: seen.append(data))
    splitter.feed(NDJSON[:cut])
    splitter.feed(NDJSON[cut:])
    splitter.close()
    assert seen == [b'{"a":1}', b'{"b":2}', b'{"c":3}']


def test_line_splitter_skips_oversized_lines() -> None:
    seen: list[bytes] = []
    splitter = LineSplitter(lambda name, data: seen.append(data), max_event_bytes=16)
    splitter.feed(b'{"a":1}\n' + b"z" * 40)
    splitter.feed(b"z" * 40 + b'\n{"b":2}\n')
    splitter.close()
    assert seen == [b'{"a":1}', b'{"b":2}']
    assert STATS.get("dropped.transport_sse_event_too_large") == 1


# -- BodyWindow ------------------------------------------------------------------------------


def test_body_window_parses_small_bodies_whole() -> None:
    window = BodyWindow()
    body = json.dumps(PAYLOADS["openai_chat_cached_gpt4omini"]["response"]).encode()
    for start in range(0, len(body), 100):
        window.feed(body[start : start + 100])
    assert window.document("usage") == PAYLOADS["openai_chat_cached_gpt4omini"]["response"]
    assert not window.overflowed


def test_body_window_non_json_is_none() -> None:
    window = BodyWindow()
    window.feed(PAYLOADS["edge_502_html_body"]["response_raw"].encode())
    assert window.document("usage") is None


def test_body_window_keeps_head_and_tail_only_for_large_bodies() -> None:
    window = BodyWindow(full_limit=1000)
    window.feed(b'{"id":"emb-1","model":"text-embedding-3-small","data":[')
    for _ in range(5000):
        window.feed(b'{"embedding":"' + b"Q" * 1000 + b'"},')
    window.feed(b'{}],"usage":{"prompt_tokens":7,"total_tokens":7}}')
    assert window.overflowed
    assert len(window._head) + len(window._tail) < 3 * 1024 * 1024 + 64 * 1024
    assert window.document("usage") == {
        "id": "emb-1",
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }


def test_recover_document_takes_the_last_gemini_usage_in_an_array() -> None:
    tail = (
        b'{"usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 3},'
        b' "modelVersion": "gemini-2.5-flash", "responseId": "r1"},\r\n'
        b'{"usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 8},'
        b' "modelVersion": "gemini-2.5-flash", "responseId": "r1"}]'
    )
    document = recover_document(b"[", tail, "usageMetadata")
    assert document is not None
    found = extract_gemini(document)
    assert found.usage is not None
    assert dict(found.usage.tokens) == {"input": 8, "output": 8}
    assert found.model == "gemini-2.5-flash"
    assert found.response_id == "r1"


def test_recover_document_without_usage() -> None:
    assert recover_document(b'{"id":"x"', b"garbage", "usage") == {"id": "x"}
    assert recover_document(b"", b'"usage": nope', "usage") is None


# -- Gemini -----------------------------------------------------------------------------------


def test_gemini_thinking_payload() -> None:
    payload = PAYLOADS["gemini_generate_thinking_flash"]
    found = extract_gemini(payload["response"])
    assert found.usage is not None
    assert dict(found.usage.tokens) == {"input": 5, "output": 1935}
    assert found.usage.reasoning_tokens == 1058
    assert found.model == "gemini-2.5-flash"
    assert found.response_id == payload["expected"]["provider_response_id"]
    assert found.pricing_mode == "standard"


def test_gemini_audio_and_cached_modalities_are_split_out() -> None:
    usage = usage_from_gemini(
        {
            "promptTokenCount": 1000,
            "cachedContentTokenCount": 300,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 600},
                {"modality": "AUDIO", "tokenCount": 400},
            ],
            "cacheTokensDetails": [
                {"modality": "TEXT", "tokenCount": 200},
                {"modality": "AUDIO", "tokenCount": 100},
            ],
            "candidatesTokenCount": 50,
            "candidatesTokensDetails": [
                {"modality": "TEXT", "tokenCount": 20},
                {"modality": "AUDIO", "tokenCount": 30},
            ],
        }
    )
    assert usage is not None
    assert dict(usage.tokens) == {
        "input": 400,
        "cache_read": 200,
        "audio_input": 300,
        "audio_cache_read": 100,
        "output": 20,
        "audio_output": 30,
    }
    assert usage.input_tokens == 1000
    assert usage.output_tokens == 50


@pytest.mark.parametrize(
    "metadata",
    [
        {"promptTokenCount": -1, "candidatesTokenCount": 3},
        {"promptTokenCount": 5, "candidatesTokenCount": "3"},
        {"promptTokenCount": 5, "cachedContentTokenCount": 9},
    ],
)
def test_gemini_invalid_counts_are_unknown_not_zero(metadata: dict[str, Any]) -> None:
    assert usage_from_gemini(metadata) is None
    assert STATS.get("dropped.usage_invalid") == 1


def test_gemini_without_usage_metadata_is_unknown() -> None:
    found = extract_gemini({"candidates": [], "modelVersion": "gemini-2.0-flash"})
    assert found.usage is None
    assert found.model == "gemini-2.0-flash"
    assert extract_gemini("not a dict").usage is None
    assert extract_gemini({"usageMetadata": None}).usage is None


def test_gemini_stream_takes_the_last_usage_never_the_sum() -> None:
    sse = PAYLOADS["gemini_stream_no_thinking"]["sse"]
    chunks = [json.loads(line[6:]) for line in sse.splitlines() if line.startswith("data: ")]
    state = GeminiStreamState()
    for chunk in chunks:
        state.add(chunk)
    found = state.result()
    assert found.usage is not None
    assert dict(found.usage.tokens) == {"input": 8, "output": 8}
    assert extract_gemini(chunks).usage == found.usage  # the JSON-array form


def test_gemini_provisioned_throughput_tier() -> None:
    found = extract_gemini(
        {"usageMetadata": {"promptTokenCount": 1, "trafficType": "PROVISIONED_THROUGHPUT"}}
    )
    assert found.pricing_mode == "provisioned"
    assert found.service_tier == "PROVISIONED_THROUGHPUT"


@pytest.mark.parametrize(
    ("metadata", "mode"),
    [
        ({"serviceTier": "flex"}, "flex"),  # Gemini API (google-genai ServiceTier values)
        ({"serviceTier": "priority"}, "priority"),
        ({"serviceTier": "PRIORITY"}, "priority"),
        ({"serviceTier": "SERVICE_TIER_FLEX"}, "flex"),
        ({"serviceTier": "standard"}, "standard"),
        ({"serviceTier": "unspecified"}, "standard"),
        ({"trafficType": "ON_DEMAND_FLEX"}, "flex"),  # Vertex AI
        ({"trafficType": "ON_DEMAND_PRIORITY"}, "priority"),
        ({"trafficType": "ON_DEMAND"}, "standard"),
        ({"trafficType": "ON_DEMAND_OFFPEAK"}, "offpeak"),  # no published rates: unknown cost
        ({}, "standard"),
    ],
)
def test_gemini_service_tier_sets_the_pricing_mode(metadata: dict[str, Any], mode: str) -> None:
    body = {"usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 2, **metadata}}
    found = extract_gemini(body)
    assert found.pricing_mode == mode
    assert found.service_tier == next(iter(metadata.values()), None)
    assert found.usage is not None
    assert dict(found.usage.tokens) == {"input": 10, "output": 2}


def test_gemini_stream_keeps_the_service_tier_of_its_chunks() -> None:
    state = GeminiStreamState()
    state.add({"usageMetadata": {"promptTokenCount": 10, "serviceTier": "flex"}})
    state.add({"usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5}})
    found = state.result()
    assert found.pricing_mode == "flex"
    assert found.service_tier == "flex"


# -- routes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "path", "operation"),
    [
        ("openai", "/v1/chat/completions", "chat"),
        ("openai", "/v1/chat/completions/", "chat"),
        ("openai", "/v1/responses", "responses"),
        ("openai", "/v1/completions", "completions"),
        ("openai", "/v1/embeddings", "embeddings"),
        ("openai", "/v1/images/generations", "images"),
        ("openai", "/v1/audio/transcriptions", "transcriptions"),
        ("openai", "/v1/audio/translations", "translations"),
        ("openai", "/v1/audio/speech", "speech"),
        ("openai", "/v1/models", None),
        ("openai", "/v1/moderations", None),
        ("openai", "/v1/responses/resp_123", None),
        ("openai", "/v1/files", None),
        ("azure_openai", "/openai/deployments/gpt4o/chat/completions", "chat"),
        ("openrouter", "/api/v1/chat/completions", "chat"),
        ("groq", "/openai/v1/chat/completions", "chat"),
        ("deepseek", "/chat/completions", "chat"),
        ("vllm", "/v1/chat/completions", "chat"),
        ("anthropic", "/v1/messages", "messages"),
        ("anthropic", "/v1/messages/count_tokens", None),
        ("anthropic", "/v1/messages/batches", None),
        ("anthropic", "/v1/chat/completions", None),
        ("google", "/v1beta/models/gemini-2.5-flash:generateContent", "generate_content"),
        ("google", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "generate_content"),
        ("google", "/v1beta/models/gemini-2.5-flash:countTokens", None),
        ("google", "/v1beta/models/text-embedding-004:embedContent", "embeddings"),
        (
            "google_vertex",
            "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent",
            "generate_content",
        ),
        (
            "google_vertex",
            "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5:rawPredict",
            "messages",
        ),
        (
            "google_vertex",
            "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5:streamRawPredict",
            "messages",
        ),
    ],
)
def test_routes(provider: str, path: str, operation: str | None) -> None:
    route = route_for(provider, path)
    assert (route.operation if route else None) == operation


def test_gemini_stream_route_always_streams() -> None:
    route = route_for("google", "/v1beta/models/m:streamGenerateContent")
    assert route is not None
    assert route.stream


def test_model_from_path() -> None:
    assert model_from_path("/v1beta/models/gemini-2.5-flash:generateContent") == "gemini-2.5-flash"
    assert model_from_path("/v1/chat/completions") is None


@pytest.fixture
def custom_openai_route() -> Iterator[None]:
    def parse(body: Any) -> TokenUsage:
        return TokenUsage(tokens={"input": 1, "output": 2})

    register_parser("openai", "/chat/completions", parse, operation="custom_chat")
    yield
    unregister_parser("openai", "/chat/completions")


def test_user_routes_come_before_built_ins(custom_openai_route: None) -> None:
    route = route_for("openai", "/v1/chat/completions")
    assert route is not None
    assert route.operation == "custom_chat"
    found = route.parse({"anything": True})
    assert found.usage == TokenUsage(tokens={"input": 1, "output": 2})


def test_unregistering_restores_the_built_in() -> None:
    register_parser("openai", "/chat/completions", lambda body: None, operation="custom")
    unregister_parser("openai", "/chat/completions")
    route = route_for("openai", "/v1/chat/completions")
    assert route is not None
    assert route.operation == "chat"


def test_user_parser_results_are_checked() -> None:
    register_parser("weird", "/go", lambda body: {"input": 1})  # type: ignore[arg-type, return-value]
    try:
        route = route_for("weird", "/go")
        assert route is not None
        assert route.parse({}).usage is None
        assert STATS.get("errors.parser.weird/go") == 1
    finally:
        unregister_parser("weird", "/go")


def test_user_parser_stream_state_later_findings_override_earlier() -> None:
    def parse(body: Any) -> Extraction:
        usage = TokenUsage(tokens={"output": body["n"]}) if "n" in body else None
        return Extraction(usage=usage, model=body.get("model"))

    register_parser("stepper", "/gen", parse)
    try:
        route = route_for("stepper", "/gen")
        assert route is not None
        state = route.new_state()
        for event in ({"model": "m1"}, {"n": 1}, {"n": 5}, {}):
            state.add(event)
        found = state.result()
        assert found.model == "m1"
        assert found.usage == TokenUsage(tokens={"output": 5})
    finally:
        unregister_parser("stepper", "/gen")


# -- hosts ------------------------------------------------------------------------------------


@pytest.fixture
def clean_hosts() -> Iterator[None]:
    before = registered_hosts()
    yield
    for host in registered_hosts():
        if host not in before:
            unregister_host(host)


@pytest.mark.usefixtures("clean_hosts")
def test_host_lookup_built_ins_suffixes_and_registrations() -> None:
    assert provider_for_host("api.openai.com") == "openai"
    assert provider_for_host("API.Anthropic.com") == "anthropic"
    assert provider_for_host("myres.openai.azure.com", 443) == "azure_openai"
    assert provider_for_host("us-central1-aiplatform.googleapis.com") == "google_vertex"
    assert provider_for_host("example.com") is None
    assert provider_for_host("llm.internal", 8000) is None  # cached negative ...
    register_host("llm.internal:8000", "vllm")  # ... invalidated by a registration
    assert provider_for_host("llm.internal", 8000) == "vllm"
    assert provider_for_host("llm.internal", 9000) is None
    register_host("LLM.internal", "ollama")
    assert provider_for_host("llm.internal", 9000) == "ollama"
    assert provider_for_host("llm.internal", 8000) == "vllm"  # host:port beats host
    unregister_host("llm.internal:8000")
    assert provider_for_host("llm.internal", 8000) == "ollama"


@pytest.mark.usefixtures("clean_hosts")
def test_host_cache_is_bounded() -> None:
    for n in range(_hosts._CACHE_LIMIT + 10):
        provider_for_host(f"host{n}.example", None)
    assert len(_hosts._cache) <= _hosts._CACHE_LIMIT


def test_register_host_validates() -> None:
    with pytest.raises(ValueError):
        register_host("", "openai")
    with pytest.raises(ValueError):
        register_host("x", " ")


def test_services_are_decimals() -> None:
    found = extract_gemini(
        {
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1},
            "candidates": [{"groundingMetadata": {"webSearchQueries": ["a"]}}],
        }
    )
    assert found.usage is not None
    assert found.usage.services == {"grounding": Decimal(1)}
