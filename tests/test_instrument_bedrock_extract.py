"""Bedrock's pure parts: model ids, pricing modes, usage readers, the stand-in's event-stream framing."""

from __future__ import annotations

import base64
import io
import json
import struct
from typing import Any

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from botocore.response import StreamingBody
from llm_cost_tracker.instrumentation._bedrock_models import model_of, pricing_mode_of
from llm_cost_tracker.instrumentation.bedrock._extract import (
    ConverseStreamState,
    InvokeStreamState,
    served_tier,
    usage_from_body,
    usage_from_converse,
    usage_from_headers,
    usage_from_metrics,
)

from llm_cost_tracker._stats import STATS
from llm_cost_tracker.cli._standin.bedrock import encode_events, encode_frame, route


@pytest.mark.parametrize(
    ("model_id", "model", "mode"),
    [
        (
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-5-20250929",
            "standard+regional",
        ),
        ("amazon.nova-pro-v1:0", "amazon.nova-pro", "standard+regional"),
        (
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-5-20250929",
            "standard",
        ),
        ("eu.amazon.nova-lite-v1:0", "amazon.nova-lite", "standard+regional"),
        ("apac.meta.llama3-2-1b-instruct-v1:0", "meta.llama3-2-1b-instruct", "standard+regional"),
        (
            "jp.anthropic.claude-haiku-4-5-20251001-v1:0",
            "anthropic.claude-haiku-4-5-20251001",
            "standard+regional",
        ),
        (
            "us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "anthropic.claude-3-5-sonnet-20240620",
            "standard+regional",
        ),
        ("mistral.mistral-7b-instruct-v0:2", "mistral.mistral-7b-instruct", "standard+regional"),
        (
            "anthropic.claude-3-haiku-20240307-v1:0:200k",
            "anthropic.claude-3-haiku-20240307",
            "standard+regional",
        ),
        ("amazon.titan-embed-text-v1", "amazon.titan-embed-text-v1", "standard+regional"),
        ("amazon.titan-embed-text-v2:0", "amazon.titan-embed-text-v2", "standard+regional"),
        ("global.cohere.embed-v4:0", "cohere.embed-v4", "standard"),
        (
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "anthropic.claude-3-5-sonnet-20241022",
            "standard+regional",
        ),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
            "anthropic.claude-3-5-haiku-20241022",
            "standard+regional",
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.amazon.nova-2-lite-v1:0",
            "amazon.nova-2-lite",
            "standard",
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
            "application-inference-profile/a1b2c3",
            "standard+regional",
        ),
        (
            "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/p9q8",
            "provisioned-model/p9q8",
            "standard+regional",
        ),
    ],
)
def test_model_ids_are_normalized(model_id: str, model: str, mode: str) -> None:
    assert model_of(model_id) == model
    assert pricing_mode_of(model_id, None) == mode


@pytest.mark.parametrize(
    ("tier", "mode"),
    [
        ({"type": "flex"}, "flex+regional"),
        ("priority", "priority+regional"),
        ({"type": "default"}, "standard+regional"),
        ("reserved", "reserved+regional"),
    ],
)
def test_the_service_tier_is_the_base_mode(tier: Any, mode: str) -> None:
    assert pricing_mode_of("amazon.nova-pro-v1:0", tier) == mode
    assert pricing_mode_of("global.amazon.nova-2-lite-v1:0", tier) == mode.split("+")[0]


def test_converse_usage_keeps_cache_tokens_apart_and_splits_writes_by_ttl() -> None:
    usage = usage_from_converse(
        {
            "inputTokens": 10,
            "outputTokens": 5,
            "cacheReadInputTokens": 100,
            "cacheWriteInputTokens": 50,
            "cacheDetails": [{"ttl": "1h", "inputTokens": 20}],
        }
    )
    assert usage is not None
    assert dict(usage.tokens) == {
        "input": 10,
        "cache_read": 100,
        "cache_write_5m": 30,
        "cache_write_1h": 20,
        "output": 5,
    }
    plain = usage_from_converse({"inputTokens": 10, "outputTokens": 5, "cacheWriteInputTokens": 7})
    assert plain is not None
    assert plain.tokens["cache_write_5m"] == 7


@pytest.mark.parametrize(
    "usage",
    [
        None,
        {},
        {"totalTokens": 5},
        {"inputTokens": -1, "outputTokens": 2},
        {"inputTokens": "many", "outputTokens": 2},
        {"inputTokens": 1.5, "outputTokens": 2},
    ],
)
def test_bad_converse_usage_is_unknown_never_zero(usage: Any) -> None:
    assert usage_from_converse(usage) is None


@pytest.mark.parametrize(
    ("document", "tokens"),
    [
        (
            {"usage": {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": 8}},
            {"input": 3, "cache_read": 8, "output": 4},
        ),
        (
            {
                "usage": {
                    "inputTokens": 5,
                    "outputTokens": 6,
                    "cacheReadInputTokenCount": 2,
                    "cacheWriteInputTokenCount": 0,
                }
            },
            {"input": 5, "cache_read": 2, "output": 6},
        ),
        (
            {"generation": "x", "prompt_token_count": 18, "generation_token_count": 52},
            {"input": 18, "output": 52},
        ),
        (
            {
                "choices": [],
                "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
            },
            {"input": 9, "output": 1},
        ),
        (
            {"text": "x", "meta": {"billed_units": {"input_tokens": 7, "output_tokens": 2}}},
            {"input": 7, "output": 2},
        ),
        (
            {"embedding": [0.1, -0.2], "inputTextTokenCount": 11},
            {"input": 11, "output": 0},
        ),
    ],
    ids=["anthropic", "nova", "llama", "mistral_chat", "cohere", "titan_embeddings"],
)
def test_invoke_bodies_by_model_family(document: dict[str, Any], tokens: dict[str, int]) -> None:
    usage = usage_from_body(document)
    assert usage is not None
    assert dict(usage.tokens) == tokens


@pytest.mark.parametrize(
    "document", [None, [], "text", {"outputs": [{"text": "x"}]}, {"usage": "n/a"}]
)
def test_an_unknown_body_has_no_usage(document: Any) -> None:
    assert usage_from_body(document) is None


def test_token_count_headers() -> None:
    usage = usage_from_headers(
        {
            "x-amzn-bedrock-input-token-count": "12",
            "x-amzn-bedrock-output-token-count": "9",
            "x-amzn-bedrock-cache-read-input-token-count": "4",
        }
    )
    assert usage is not None
    assert dict(usage.tokens) == {"input": 12, "cache_read": 4, "output": 9}
    assert usage_from_headers({"content-type": "application/json"}) is None
    before = STATS.snapshot().get("dropped.usage_invalid", 0)
    assert usage_from_headers({"x-amzn-bedrock-input-token-count": "twelve"}) is None
    assert STATS.snapshot().get("dropped.usage_invalid", 0) == before + 1


def test_invocation_metrics() -> None:
    usage = usage_from_metrics(
        {"inputTokenCount": 30, "outputTokenCount": 21, "invocationLatency": 803}
    )
    assert usage is not None
    assert dict(usage.tokens) == {"input": 30, "output": 21}
    assert usage_from_metrics({"invocationLatency": 803}) is None


def chunk(document: Any) -> dict[str, Any]:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return {"chunk": {"bytes": raw}}


def test_invoke_stream_state_prefers_the_models_own_final_usage() -> None:
    state = InvokeStreamState()
    state.add(
        chunk(
            {
                "type": "message_start",
                "message": {"id": "m1", "usage": {"input_tokens": 5, "output_tokens": 1}},
            }
        )
    )
    found, complete = state.result("anthropic.x", "anthropic.x-v1:0", None)
    assert not complete
    assert found.usage is not None
    assert found.usage.tokens["output"] == 1
    state.add(chunk({"type": "message_delta", "usage": {"output_tokens": 40}}))
    state.add(
        chunk(
            {
                "type": "message_stop",
                "amazon-bedrock-invocationMetrics": {"inputTokenCount": 5, "outputTokenCount": 40},
            }
        )
    )
    found, complete = state.result("anthropic.x", "anthropic.x-v1:0", None)
    assert complete
    assert found.usage is not None
    assert (found.usage.tokens["input"], found.usage.tokens["output"], found.response_id) == (
        5,
        40,
        "m1",
    )


def test_invoke_stream_state_skips_chunks_it_cannot_read() -> None:
    state = InvokeStreamState()
    for item in (
        chunk(b"not json, but tokens"),
        chunk(b"[1, 2, 3] token"),
        {"chunk": {}},
        {"other": 1},
        chunk({"no": "counts"}),
    ):
        state.add(item)
    found, complete = state.result("m", "m", None)
    assert (found.usage, complete) == (None, False)


def test_invoke_stream_state_falls_back_to_invocation_metrics() -> None:
    state = InvokeStreamState()
    state.add(chunk({"event_type": "text-generation", "text": "hi"}))
    state.add(
        chunk(
            {
                "is_finished": True,
                "amazon-bedrock-invocationMetrics": {"inputTokenCount": 7, "outputTokenCount": 3},
            }
        )
    )
    found, complete = state.result("cohere.command-r", "cohere.command-r-v1:0", "flex")
    assert complete
    assert found.usage is not None
    assert dict(found.usage.tokens) == {"input": 7, "output": 3}
    assert (found.pricing_mode, found.service_tier) == ("flex+regional", "flex")


def test_nova_stream_metadata_chunk() -> None:
    state = InvokeStreamState()
    state.add(chunk({"metadata": {"usage": {"inputTokens": 4, "outputTokens": 8}}}))
    found, complete = state.result("amazon.nova-lite", "amazon.nova-lite-v1:0", None)
    assert complete
    assert found.usage is not None
    assert dict(found.usage.tokens) == {"input": 4, "output": 8}


def test_converse_stream_state_reads_the_metadata_event_and_its_tier() -> None:
    state = ConverseStreamState()
    state.add({"messageStart": {"role": "assistant"}})
    assert state.result("m", "m-v1:0", None)[1] is False
    state.add(
        {
            "metadata": {
                "usage": {"inputTokens": 2, "outputTokens": 3},
                "serviceTier": {"type": "priority"},
            }
        }
    )
    found, complete = state.result("m", "m-v1:0", None)
    assert complete
    assert found.pricing_mode == "priority+regional"
    assert found.service_tier == "priority"


def decode(body: bytes) -> list[Any]:
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    return list(buffer)


def test_the_standin_frames_decode_with_botocores_own_parser() -> None:
    body = encode_events(
        [
            {"event": "messageStart", "payload": {"role": "assistant"}},
            {"event": "chunk", "chunk": {"a": 1}},
        ]
    )
    first, second = decode(body)
    assert first.headers == {
        ":event-type": "messageStart",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert json.loads(first.payload) == {"role": "assistant"}
    assert json.loads(base64.b64decode(json.loads(second.payload)["bytes"])) == {"a": 1}
    # the prelude: total length and headers length, big-endian
    total, headers = struct.unpack(">II", body[:8])
    assert total == len(encode_frame(first.headers, first.payload))
    assert headers == len(body[12 : 12 + headers])


def test_a_truncated_last_frame_is_left_unread_and_a_bad_crc_is_refused() -> None:
    body = encode_events([{"event": "a", "payload": {}}, {"event": "b", "payload": {}}], cut=5)
    assert [m.headers[":event-type"] for m in decode(body)] == ["a"]
    corrupt = bytearray(encode_events([{"event": "a", "payload": {"x": 1}}]))
    corrupt[-6] ^= 0xFF
    with pytest.raises(ChecksumMismatch):
        decode(bytes(corrupt))


@pytest.mark.parametrize(
    ("parts", "scenario"),
    [
        (["model", "amazon.nova-pro-v1%3A0", "converse"], "bedrock_converse_nova"),
        (
            ["model", "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0", "converse"],
            "bedrock_converse_claude_cache",
        ),
        (
            [
                "model",
                "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.meta.llama3-2-3b-instruct-v1%3A0",
                "invoke-with-response-stream",
            ],
            "bedrock_invoke_stream_llama",
        ),
        (["model", "cohere.command-r-plus-v1%3A0", "invoke"], "bedrock_invoke_cohere"),
        (["elsewhere"], None),
    ],
)
def test_the_standin_routes_by_family_and_operation(parts: list[str], scenario: str | None) -> None:
    assert route(parts) == scenario


def test_a_body_that_fails_to_read_fails_the_same_way_for_the_caller() -> None:
    from llm_cost_tracker.instrumentation._calls import Call
    from llm_cost_tracker.instrumentation.bedrock._wrappers import read_body

    from llm_cost_tracker.testing import capture_events

    class Broken(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise ConnectionResetError("peer reset")

    with capture_events() as events:
        call = Call("aws_bedrock", "invoke_model", "amazon.nova-pro-v1:0", False, {})
        response: dict[str, Any] = {"body": StreamingBody(Broken(), 10)}
        assert read_body(call, response) is None
        with pytest.raises(ConnectionResetError, match="peer reset"):
            response["body"].read()
    assert [(e.status, e.error_type, e.model) for e in events] == [
        ("error", "ConnectionResetError", "amazon.nova-pro")
    ]


def test_an_invoke_model_request_body_is_read_lazily_whatever_its_type() -> None:
    """The budget preflight reads InvokeModel's JSON body as a mapping, as for a transport's request."""
    import io

    from llm_cost_tracker.instrumentation._transport import RequestJSON

    text = '{"max_tokens": 256, "messages": []}'
    for body in (text, text.encode(), bytearray(text.encode())):
        request = RequestJSON(body)
        assert request.get("max_tokens") == 256
        assert dict(request) == {"max_tokens": 256, "messages": []}
    # a file being streamed up, a body that is not JSON, JSON that is not an object: empty
    for body in (io.BytesIO(text.encode()), b"not json", b"[1, 2]", None):
        assert dict(RequestJSON(body)) == {}


def test_the_served_tier_falls_back_to_the_header_older_botocore_leaves_unparsed() -> None:
    headers = {"ResponseMetadata": {"HTTPHeaders": {"x-amzn-bedrock-service-tier": "priority"}}}
    assert served_tier(headers) == "priority"  # botocore 1.40: the header only
    assert served_tier({**headers, "serviceTier": "flex"}) == "flex"  # parsed: the field wins
    assert served_tier({"ResponseMetadata": {"HTTPHeaders": {}}}) is None
