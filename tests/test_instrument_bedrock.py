"""The Bedrock instrumentor: real boto3 clients against the stand-in's Bedrock Runtime.

Every result is compared with the same call made without instrumentation: the
caller must get the same response, the same events and the same bytes.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import boto3
import botocore.client
import botocore.session
import pytest
import wrapt
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError
from llm_cost_tracker.instrumentation.bedrock import BedrockInstrumentor

import llm_cost_tracker as lct
from llm_cost_tracker._events import UsageEvent
from llm_cost_tracker._suppress import suppressed
from llm_cost_tracker.cli._standin import StandInServer
from llm_cost_tracker.cli._standin.server import load_payloads
from llm_cost_tracker.testing import capture_events

PAYLOADS = {pid: p for pid, p in load_payloads().items() if pid.startswith("bedrock_")}
OK_PAYLOADS = sorted(
    pid
    for pid, p in PAYLOADS.items()
    if p["http_status"] == 200 and not any("exception" in e for e in p.get("eventstream", []))
)
MESSAGES = [{"role": "user", "content": [{"text": "hi"}]}]
# Payloads whose usage is read but that the bundled catalog cannot price: their cost
# stays unknown (never an invented zero) until the catalog has the rate.
UNPRICED = {
    "bedrock_converse_flex_global": "amazon.nova-2-lite is not in the catalog",
    "bedrock_invoke_nova": "amazon.nova-micro has no priority-tier rate",
    "bedrock_invoke_stream_llama": "meta.llama3-2-3b-instruct is not in the catalog",
}


def client(standin: StandInServer, path: str, region: str = "us-east-1") -> Any:
    return boto3.client(
        "bedrock-runtime",
        region_name=region,
        endpoint_url=standin.url + path,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )


def model_id_of(payload: dict[str, Any]) -> str:
    """The model id the payload's URL names (``/model/<id>/<operation>``), decoded."""
    from urllib.parse import unquote

    return unquote(payload["url"].split("/model/", 1)[1].rsplit("/", 1)[0])


def call(c: Any, payload: dict[str, Any]) -> Any:
    """Make the payload's call and return what the caller sees, read whole (bytes, events)."""
    api, model_id = payload["api"], model_id_of(payload)
    if api == "bedrock.converse":
        return strip(c.converse(modelId=model_id, messages=MESSAGES))
    if api == "bedrock.converse_stream":
        response = c.converse_stream(modelId=model_id, messages=MESSAGES)
        return strip(response), list(response["stream"])
    body = json.dumps(payload["request"])
    if api == "bedrock.invoke_model":
        response = c.invoke_model(modelId=model_id, body=body)
        return strip(response), response["body"].read()
    response = c.invoke_model_with_response_stream(modelId=model_id, body=body)
    return strip(response), list(response["body"])


def strip(response: dict[str, Any]) -> dict[str, Any]:
    """The response without what differs per request (the Date header) or cannot be compared (streams)."""
    kept = {k: v for k, v in response.items() if k not in ("stream", "body")}
    meta = dict(kept["ResponseMetadata"])
    meta["HTTPHeaders"] = {k: v for k, v in meta["HTTPHeaders"].items() if k != "date"}
    kept["ResponseMetadata"] = meta
    return kept


def drain(stream: Any, seen: list[Any]) -> None:
    """Read ``stream`` to its end (or its error), keeping each event in ``seen``."""
    seen.extend(iter(stream))


def _modelled(shape: str, member: str) -> bool:
    """Whether the installed botocore's Bedrock Runtime model has ``member`` in ``shape``."""
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    return member in model.shape_for(shape).members


def expected_of(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload's expected event, as far as the installed botocore can tell it.

    botocore drops the response fields its model lacks before anyone sees them:
    the botocore aioboto3 pins (1.40) knows neither Converse's ``serviceTier`` nor
    ``usage.cacheDetails`` (a caller on it cannot ask for either), so there a
    flex call reads as standard and every cache write as a 5-minute one.
    """
    expected = dict(payload["expected"])
    response = payload.get("response")
    if payload["api"] != "bedrock.converse" or not isinstance(response, dict):
        return expected
    if "serviceTier" in response and not _modelled("ConverseResponse", "serviceTier"):
        _, plus, qualifiers = expected["pricing_mode"].partition("+")
        expected["pricing_mode"] = "standard" + plus + qualifiers
        expected["service_tier"] = None
    usage = response.get("usage", {})
    if "cacheDetails" in usage and not _modelled("TokenUsage", "cacheDetails"):
        expected["cache_write_5m_tokens"] = usage["cacheWriteInputTokens"]
        expected["cache_write_1h_tokens"] = 0
    return expected


def assert_expected(event: UsageEvent, payload: dict[str, Any]) -> None:
    expected = expected_of(payload)
    assert event.provider == "aws_bedrock"
    assert event.model == expected["model"]
    assert event.request_model == model_id_of(payload)
    assert event.operation == ("converse" if "converse" in payload["api"] else "invoke_model")
    assert event.stream is payload["stream"]
    assert event.pricing_mode == expected["pricing_mode"]
    assert event.provider_response_id == expected["provider_response_id"]
    assert event.tags["cloud.region"] == "us-east-1"
    assert event.usage_source == expected["usage_source"]
    priced = expected["usage_known"] and payload["id"] not in UNPRICED
    assert (event.cost.status == "priced", event.cost.total is not None) == (priced, priced)
    if not expected["usage_known"]:
        assert event.usage is None
        return
    assert event.usage is not None
    tokens = event.usage.tokens
    assert tokens["input"] == expected["input_tokens"]
    assert tokens["output"] == expected["output_tokens"]
    assert tokens.get("cache_read", 0) == expected["cache_read_tokens"]
    assert tokens.get("cache_write_5m", 0) == expected["cache_write_5m_tokens"]
    assert tokens.get("cache_write_1h", 0) == expected["cache_write_1h_tokens"]


@pytest.fixture
def bare(standin: StandInServer) -> Iterator[None]:
    """No instrumentation at all: what the caller gets without us."""
    BedrockInstrumentor().uninstrument()
    return


@pytest.mark.parametrize("payload_id", OK_PAYLOADS)
def test_payload_gives_the_same_result_and_the_expected_event(
    standin: StandInServer, bare: None, payload_id: str
) -> None:
    payload = PAYLOADS[payload_id]
    path = standin.scenario_url(payload_id)[len(standin.url) :]
    without = call(client(standin, path), payload)
    with capture_events(instrument=["bedrock"]) as events:
        instrumented = call(client(standin, path), payload)
    assert instrumented == without  # every field, event and byte as without us
    assert len(events) == 1
    assert_expected(events[0], payload)


def test_one_client_routed_by_model_family(standin: StandInServer) -> None:
    with capture_events(instrument=["bedrock"]) as events:
        c = client(standin, "/bedrock", region="eu-west-3")
        c.converse(modelId="amazon.nova-pro-v1:0", messages=MESSAGES)
        for model in ("meta.llama3-1-70b-instruct-v1:0", "cohere.command-r-plus-v1:0"):
            c.invoke_model(modelId=model, body=b"{}")["body"].read()
    assert [(e.model, e.usage is not None) for e in events] == [
        ("amazon.nova-pro", True),
        ("meta.llama3-1-70b-instruct", True),
        ("cohere.command-r-plus", True),
    ]
    assert {e.tags["cloud.region"] for e in events} == {"eu-west-3"}


@pytest.mark.parametrize(
    ("model_id", "model", "per_million"),
    [
        ("amazon.titan-embed-text-v2:0", "amazon.titan-embed-text-v2", "0.02"),
        ("amazon.titan-embed-text-v1", "amazon.titan-embed-text-v1", "0.1"),
        ("amazon.titan-embed-text-v1:2:8k", "amazon.titan-embed-text", "0.1"),
        ("cohere.embed-english-v3", "cohere.embed-english-v3", "0.1"),
        ("us.cohere.embed-v4:0", "cohere.embed-v4", "0.12"),
    ],
)
def test_embeddings_models_are_told_apart_and_priced(
    standin: StandInServer, model_id: str, model: str, per_million: str
) -> None:
    """Titan Embeddings v2 is not v1 (a fifth of its price): an undated "-v2" stays in the name."""
    with capture_events(instrument=["bedrock"]) as events:
        body = (
            client(standin, "/s/bedrock_invoke_titan_embed")
            .invoke_model(modelId=model_id, body=b'{"inputText": "Hello"}')["body"]
            .read()
        )
    assert json.loads(body)["inputTextTokenCount"] == 2  # every byte still reaches the caller
    (event,) = events
    assert (event.model, event.request_model) == (model, model_id)
    assert event.usage is not None
    assert dict(event.usage.tokens) == {"input": 2, "output": 0}
    assert event.cost.total == 2 * Decimal(per_million) / 1_000_000


def test_the_callers_region_tag_wins(standin: StandInServer) -> None:
    with capture_events(instrument=["bedrock"]) as events:
        c = client(standin, "/s/bedrock_converse_nova")
        with lct.with_tags(**{"cloud.region": "primary", "feature": "chat"}):
            c.converse(modelId="amazon.nova-pro-v1:0", messages=MESSAGES)
    assert dict(events[0].tags) == {"cloud.region": "primary", "feature": "chat"}


@pytest.mark.parametrize(
    ("payload_id", "error_code"),
    [
        ("bedrock_error_throttling", "ThrottlingException"),
        ("bedrock_error_validation", "ValidationException"),
    ],
)
def test_a_bedrock_error_is_recorded_and_reraised_untouched(
    standin: StandInServer, bare: None, payload_id: str, error_code: str
) -> None:
    path = f"/s/{payload_id}"
    with pytest.raises(ClientError) as bare_error:
        client(standin, path).converse(modelId="amazon.nova-pro-v1:0", messages=MESSAGES)
    with capture_events(instrument=["bedrock"]) as events, pytest.raises(ClientError) as caught:
        client(standin, path).converse(modelId="amazon.nova-pro-v1:0", messages=MESSAGES)
    assert type(caught.value).__name__ == error_code
    assert str(caught.value) == str(bare_error.value)
    assert caught.value.response["Error"] == bare_error.value.response["Error"]
    (event,) = events
    assert (event.status, event.error_type, event.usage) == ("error", error_code, None)
    assert (event.model, event.request_model) == ("amazon.nova-pro", "amazon.nova-pro-v1:0")
    assert event.usage_source == "unknown"


def test_an_error_in_the_middle_of_a_stream_reaches_the_caller_and_is_recorded(
    standin: StandInServer,
) -> None:
    with capture_events(instrument=["bedrock"]) as events:
        response = client(standin, "/s/bedrock_converse_stream_throttled").converse_stream(
            modelId="us.amazon.nova-lite-v1:0", messages=MESSAGES
        )
        seen = []
        with pytest.raises(EventStreamError) as caught:
            drain(response["stream"], seen)
    assert caught.value.response["Error"]["Code"] == "throttlingException"
    assert [list(e) for e in seen] == [["messageStart"], ["contentBlockDelta"]]
    (event,) = events
    assert (event.status, event.error_type, event.usage) == ("error", "EventStreamError", None)


def test_a_stream_closed_early_is_recorded_once(standin: StandInServer) -> None:
    with capture_events(instrument=["bedrock"]) as events:
        response = client(
            standin, "/s/bedrock_invoke_stream_anthropic"
        ).invoke_model_with_response_stream(
            modelId="us.anthropic.claude-haiku-4-5-20251001-v1:0", body=b"{}"
        )
        stream = response["body"]
        next(iter(stream))  # message_start: the input side and the first output token
        stream.close()
        stream.close()
        del stream, response
        gc.collect()
    (event,) = events
    assert event.usage is not None
    assert event.usage_source == "estimated"  # a lower bound: the stream was cut short
    assert (event.usage.tokens["input"], event.usage.tokens["output"]) == (30, 1)


def test_a_stream_the_caller_abandons_is_recorded_when_dropped(standin: StandInServer) -> None:
    with capture_events(instrument=["bedrock"]) as events:
        response = client(standin, "/s/bedrock_converse_stream").converse_stream(
            modelId="us.amazon.nova-lite-v1:0", messages=MESSAGES
        )
        for _ in response["stream"]:
            break  # the caller walks away without closing the stream
        assert events == []
        del response, _
        gc.collect()
        assert lct.flush()  # the dropped stream is recorded by the bus, by this flush at the latest
        assert len(events) == 1
    (event,) = events
    assert (event.status, event.usage, event.usage_source) == ("ok", None, "unknown")
    assert event.model == "amazon.nova-lite"


def test_a_response_never_read_is_recorded_when_dropped(standin: StandInServer) -> None:
    with capture_events(instrument=["bedrock"]) as events:
        response = client(
            standin, "/s/bedrock_invoke_stream_llama"
        ).invoke_model_with_response_stream(modelId="us.meta.llama3-2-3b-instruct-v1:0", body=b"{}")
        connection = response["body"].__wrapped__  # kept only to close the socket afterwards
        del response
        gc.collect()
        connection.close()
        assert lct.flush()
    assert [(e.usage, e.usage_source) for e in events] == [(None, "unknown")]


def test_the_stream_is_still_an_event_stream(standin: StandInServer) -> None:
    from botocore.eventstream import EventStream

    with capture_events(instrument=["bedrock"]):
        response = client(standin, "/s/bedrock_converse_stream").converse_stream(
            modelId="us.amazon.nova-lite-v1:0", messages=MESSAGES
        )
        assert isinstance(response["stream"], EventStream)
        list(response["stream"])


def test_invoke_body_every_way_of_reading_it(standin: StandInServer, bare: None) -> None:
    path = "/s/bedrock_invoke_anthropic"
    raw = (
        client(standin, path)
        .invoke_model(modelId="anthropic.claude-x-v1:0", body=b"{}")["body"]
        .read()
    )
    with capture_events(instrument=["bedrock"]) as events:
        c = client(standin, path)
        reads = {
            "read": lambda body: body.read(),
            "read_in_pieces": lambda body: b"".join(iter(lambda: body.read(7), b"")),
            "iter_chunks": lambda body: b"".join(body.iter_chunks(5)),
            "iter_lines": lambda body: b"\n".join(body.iter_lines()),
        }
        for name, read in reads.items():
            body = c.invoke_model(modelId="anthropic.claude-x-v1:0", body=b"{}")["body"]
            assert read(body) == raw, name
    assert len(events) == len(reads)


def test_other_operations_and_services_pass_through(standin: StandInServer) -> None:
    with capture_events(instrument=["bedrock"]) as events:
        c = client(standin, "/s/bedrock_converse_nova")
        c.apply_guardrail(guardrailIdentifier="g", guardrailVersion="1", source="INPUT", content=[])
        sts = boto3.client(
            "sts",
            region_name="us-east-1",
            endpoint_url=standin.url + "/s/bedrock_error_validation",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="not-a-secret",
            config=Config(retries={"total_max_attempts": 1}),
        )
        with pytest.raises(Exception, match="invalid XML"):
            sts.get_caller_identity()  # a JSON error where STS speaks XML: botocore's own error
    assert events == []


def test_nothing_is_recorded_inside_suppressed(standin: StandInServer) -> None:
    with capture_events(instrument=["bedrock"]) as events, suppressed():
        client(standin, "/s/bedrock_converse_nova").converse(modelId="m", messages=MESSAGES)
    assert events == []


def test_instrument_and_uninstrument_restore_botocore() -> None:
    original = botocore.client.BaseClient.__dict__["_make_api_call"]
    instrumentor = BedrockInstrumentor()
    instrumentor.uninstrument()
    assert instrumentor.instrument()
    assert isinstance(botocore.client.BaseClient.__dict__["_make_api_call"], wrapt.FunctionWrapper)
    instrumentor.uninstrument()
    assert botocore.client.BaseClient.__dict__["_make_api_call"] is original


def test_instrument_all_turns_bedrock_on(standin: StandInServer) -> None:
    with capture_events(instrument=["all"]) as events:
        client(standin, "/s/bedrock_converse_nova").converse(
            modelId="amazon.nova-pro-v1:0", messages=MESSAGES
        )
    assert [e.provider for e in events] == ["aws_bedrock"]


def test_anthropic_bedrock_client_is_one_event_with_every_layer_on(standin: StandInServer) -> None:
    """AnthropicBedrock signs with botocore but sends with httpx: the anthropic instrumentor records it."""
    with capture_events(instrument=["anthropic", "bedrock", "httpx"]) as events:
        c = anthropic.AnthropicBedrock(
            aws_access_key="AKIDEXAMPLE",
            aws_secret_key="not-a-secret",
            aws_region="us-east-1",
            base_url=standin.scenario_url("bedrock_invoke_anthropic"),
            max_retries=0,
        )
        with c:
            c.messages.create(
                model="anthropic.claude-sonnet-4-5-20250929-v1:0",
                max_tokens=64,
                messages=[{"role": "user", "content": "hi"}],
            )
        client(standin, "/s/bedrock_converse_nova").converse(
            modelId="amazon.nova-pro-v1:0", messages=MESSAGES
        )
    assert [(e.provider, e.operation) for e in events] == [
        ("aws_bedrock", "messages"),
        ("aws_bedrock", "converse"),
    ]
    assert events[0].usage is not None
    assert events[0].usage.tokens["cache_read"] == 4096


def test_a_corrupt_frame_reaches_the_caller_as_botocores_error_and_is_recorded(
    standin: StandInServer,
) -> None:
    from botocore.eventstream import ChecksumMismatch

    from llm_cost_tracker.cli._standin.bedrock import CONTENT_TYPE, encode_events
    from llm_cost_tracker.cli._standin.server import Scenario

    body = bytearray(
        encode_events([{"event": "messageStart", "payload": {"role": "assistant"}}] * 2)
    )
    body[-6] ^= 0xFF  # the second frame's payload no longer matches its CRC
    standin.add(
        Scenario(
            id="bedrock_corrupt_frame", status=200, body=bytes(body), content_type=CONTENT_TYPE
        )
    )
    with capture_events(instrument=["bedrock"]) as events:
        response = client(standin, "/s/bedrock_corrupt_frame").converse_stream(
            modelId="amazon.nova-lite-v1:0", messages=MESSAGES
        )
        seen = []
        with pytest.raises(ChecksumMismatch):
            drain(response["stream"], seen)
    assert seen == [{"messageStart": {"role": "assistant"}}]
    assert [(e.status, e.error_type, e.usage) for e in events] == [
        ("error", "ChecksumMismatch", None)
    ]


@pytest.mark.parametrize("payload_id", ["bedrock_converse_stream", "bedrock_invoke_stream_llama"])
def test_a_stream_looped_over_straight_from_the_response_is_recorded_whole(
    standin: StandInServer, payload_id: str
) -> None:
    """Only the loop holds the stream: it must not count as abandoned while it runs."""
    c = client(standin, f"/s/{payload_id}")
    with capture_events(instrument=["bedrock"]) as events:
        if payload_id == "bedrock_converse_stream":
            seen = list(c.converse_stream(modelId="m-v1:0", messages=MESSAGES)["stream"])
        else:
            seen = list(c.invoke_model_with_response_stream(modelId="m-v1:0", body=b"{}")["body"])
        gc.collect()
    assert len(seen) > 1
    assert [(e.usage_source, e.usage is not None) for e in events] == [("stream", True)]


def test_doctor_self_tests_bedrock_capture() -> None:
    from llm_cost_tracker.cli._doctor_bedrock import check_bedrock

    lct.shutdown()
    (check,) = check_bedrock()
    assert (check.level, check.name) == ("ok", "bedrock capture")
    assert "Converse, ConverseStream and InvokeModel" in check.detail
    assert not BedrockInstrumentor().is_instrumented  # the self-test leaves nothing patched
    with capture_events():
        (inside_an_app,) = check_bedrock()
    assert inside_an_app.level == "info"  # a process that records already is not reconfigured


@pytest.mark.parametrize(
    ("model_id", "mode", "cost"),
    [
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "standard+regional", "0.00998778"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "standard+regional", "0.00998778"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "standard", "0.0090798"),
    ],
)
def test_anthropic_bedrock_client_prices_the_endpoint_it_named(
    model_id: str, mode: str, cost: str, standin: StandInServer
) -> None:
    """The anthropic SDK's AnthropicBedrock: the profile the call named decides the regional premium.

    Claude Sonnet 4.5 list prices per 1M tokens: input $3, 5-minute cache write $3.75,
    cache read $0.30, output $15. The payload: 12 input, 2,048 written, 4,096 read, 9 output:
    12 x 3 + 2048 x 3.75 + 4096 x 0.30 + 9 x 15 = 9,079.8 per 1M = $0.0090798 on a global
    profile; in-region and geographic profiles cost 10% more: $0.00998778.
    """
    with capture_events(instrument=["anthropic", "bedrock", "httpx"]) as events:
        c = anthropic.AnthropicBedrock(
            aws_access_key="AKIDEXAMPLE",
            aws_secret_key="not-a-secret",
            aws_region="us-east-1",
            base_url=standin.scenario_url("bedrock_invoke_anthropic"),
            max_retries=0,
        )
        with c:
            c.messages.create(
                model=model_id, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
            )
    (event,) = events
    assert (event.provider, event.request_model) == ("aws_bedrock", model_id)
    assert event.pricing_mode == mode
    assert event.cost.status == "priced"
    assert event.cost.total == Decimal(cost)
    assert event.cost.snapshot["entry"] == "aws_bedrock/anthropic.claude-sonnet-4-5"
