"""The Bedrock instrumentor on aiobotocore: real async clients against the stand-in's Bedrock Runtime.

Every result is compared with the same call made without instrumentation: the
caller must get the same response, the same events and the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiobotocore.client
import aiobotocore.response
import aiohttp
import pytest
import wrapt
from aiobotocore.config import AioConfig
from aiobotocore.eventstream import AioEventStream
from aiobotocore.httpxsession import HttpxSession
from aiobotocore.session import get_session
from botocore.exceptions import ClientError, EventStreamError, ResponseStreamingError
from llm_cost_tracker.instrumentation._hosts import unregister_host
from llm_cost_tracker.instrumentation.bedrock import BedrockInstrumentor
from llm_cost_tracker.instrumentation.httpx._parsers import unregister_parser
from test_instrument_bedrock import (
    MESSAGES,
    OK_PAYLOADS,
    PAYLOADS,
    assert_expected,
    model_id_of,
    strip,
)

import llm_cost_tracker as lct
from llm_cost_tracker._events import Call
from llm_cost_tracker._suppress import suppressed
from llm_cost_tracker.cli._standin import StandInServer
from llm_cost_tracker.testing import capture_events

# aiobotocore 3.x names its body AioStreamingBody; 2.x (the one aioboto3 pins) StreamingBody.
AioStreamingBody: Any = getattr(aiobotocore.response, "AioStreamingBody", None) or (
    aiobotocore.response.StreamingBody
)


@contextlib.asynccontextmanager
async def client(
    standin: StandInServer, path: str, region: str = "us-east-1", *, over_httpx: bool = False
) -> AsyncIterator[Any]:
    """An aiobotocore client to the stand-in, sending with aiohttp (its default) or httpx."""
    sessions = {"http_session_cls": HttpxSession} if over_httpx else {}
    async with get_session().create_client(
        "bedrock-runtime",
        region_name=region,
        endpoint_url=standin.url + path,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret",
        config=AioConfig(retries={"total_max_attempts": 1}, **sessions),
    ) as c:
        yield c


async def call(c: Any, payload: dict[str, Any]) -> Any:
    """Make the payload's call and return what the caller sees, read whole (bytes, events)."""
    api, model_id = payload["api"], model_id_of(payload)
    if api == "bedrock.converse":
        return strip(await c.converse(modelId=model_id, messages=MESSAGES))
    if api == "bedrock.converse_stream":
        response = await c.converse_stream(modelId=model_id, messages=MESSAGES)
        return strip(response), [event async for event in response["stream"]]
    body = json.dumps(payload["request"])
    if api == "bedrock.invoke_model":
        response = await c.invoke_model(modelId=model_id, body=body)
        return strip(response), await response["body"].read()
    response = await c.invoke_model_with_response_stream(modelId=model_id, body=body)
    return strip(response), [event async for event in response["body"]]


async def drain(stream: Any, seen: list[Any]) -> None:
    """Read ``stream`` to its end (or its error), keeping each event in ``seen``."""
    async for event in stream:
        seen.append(event)


@pytest.fixture
def bare(standin: StandInServer) -> Iterator[None]:
    """No instrumentation at all: what the caller gets without us."""
    BedrockInstrumentor().uninstrument()
    return


async def assert_same_result_and_one_event(
    make_client: Any, standin: StandInServer, payload_id: str, instrument: list[str]
) -> None:
    """The payload's call with and without us: the same result, and its one expected event."""
    payload = PAYLOADS[payload_id]
    path = standin.scenario_url(payload_id)[len(standin.url) :]
    async with make_client(standin, path) as c:
        without = await call(c, payload)
    with capture_events(instrument=instrument) as events:
        async with make_client(standin, path) as c:
            instrumented = await call(c, payload)
    assert instrumented == without  # every field, event and byte as without us
    assert len(events) == 1  # the transport layer under the client does not record it again
    assert_expected(events[0], payload)


@pytest.mark.parametrize("payload_id", OK_PAYLOADS)
async def test_payload_gives_the_same_result_and_the_expected_event(
    standin: StandInServer, bare: None, payload_id: str
) -> None:
    await assert_same_result_and_one_event(client, standin, payload_id, ["bedrock", "aiohttp"])


async def test_one_client_routed_by_model_family(standin: StandInServer) -> None:
    with capture_events(instrument=["bedrock"]) as events:
        async with client(standin, "/bedrock", region="eu-west-3") as c:
            await c.converse(modelId="amazon.nova-pro-v1:0", messages=MESSAGES)
            response = await c.converse_stream(modelId="amazon.nova-lite-v1:0", messages=MESSAGES)
            await drain(response["stream"], [])
            response = await c.invoke_model(modelId="meta.llama3-1-70b-instruct-v1:0", body=b"{}")
            await response["body"].read()
    assert [(e.operation, e.stream, e.model, e.usage is not None) for e in events] == [
        ("converse", False, "amazon.nova-pro", True),
        ("converse", True, "amazon.nova-lite", True),
        ("invoke_model", False, "meta.llama3-1-70b-instruct", True),
    ]
    assert {e.tags["cloud.region"] for e in events} == {"eu-west-3"}


async def test_the_callers_region_tag_wins(standin: StandInServer) -> None:
    with capture_events(instrument=["bedrock"]) as events:
        async with client(standin, "/s/bedrock_converse_nova") as c:
            with lct.with_tags(**{"cloud.region": "primary", "feature": "chat"}):
                await c.converse(modelId="amazon.nova-pro-v1:0", messages=MESSAGES)
    assert dict(events[0].tags) == {"cloud.region": "primary", "feature": "chat"}


async def test_a_throttling_error_is_recorded_and_reraised_untouched(
    standin: StandInServer, bare: None
) -> None:
    path = "/s/bedrock_error_throttling"
    async with client(standin, path) as c:
        with pytest.raises(ClientError) as bare_error:
            await c.converse(modelId="amazon.nova-pro-v1:0", messages=MESSAGES)
    with capture_events(instrument=["bedrock"]) as events:
        async with client(standin, path) as c:
            with pytest.raises(ClientError) as caught:
                await c.converse(modelId="amazon.nova-pro-v1:0", messages=MESSAGES)
    assert type(caught.value).__name__ == "ThrottlingException"
    assert str(caught.value) == str(bare_error.value)
    assert caught.value.response["Error"] == bare_error.value.response["Error"]
    (event,) = events
    assert (event.status, event.error_type, event.usage) == ("error", "ThrottlingException", None)
    assert (event.model, event.request_model) == ("amazon.nova-pro", "amazon.nova-pro-v1:0")
    assert event.usage_source == "unknown"


async def test_an_error_in_the_middle_of_a_stream_reaches_the_caller_and_is_recorded(
    standin: StandInServer,
) -> None:
    seen: list[Any] = []
    with capture_events(instrument=["bedrock"]) as events:
        async with client(standin, "/s/bedrock_converse_stream_throttled") as c:
            response = await c.converse_stream(
                modelId="us.amazon.nova-lite-v1:0", messages=MESSAGES
            )
            with pytest.raises(EventStreamError) as caught:
                await drain(response["stream"], seen)
    assert caught.value.response["Error"]["Code"] == "throttlingException"
    assert [list(e) for e in seen] == [["messageStart"], ["contentBlockDelta"]]
    (event,) = events
    assert (event.status, event.error_type, event.usage) == ("error", "EventStreamError", None)


async def test_a_stream_closed_early_is_recorded_once(standin: StandInServer) -> None:
    with capture_events(instrument=["bedrock"]) as events:
        async with client(standin, "/s/bedrock_invoke_stream_anthropic") as c:
            response = await c.invoke_model_with_response_stream(
                modelId="us.anthropic.claude-haiku-4-5-20251001-v1:0", body=b"{}"
            )
            stream = response["body"]
            async for _ in stream:
                break  # message_start: the input side and the first output token
            stream.close()  # aiobotocore's close() is synchronous; so is the proxy's
            stream.close()
            del stream, response
            gc.collect()
    (event,) = events
    assert event.usage is not None
    assert event.usage_source == "estimated"  # a lower bound: the stream was cut short
    assert (event.usage.tokens["input"], event.usage.tokens["output"]) == (30, 1)


async def test_a_stream_abandoned_half_way_is_recorded_when_dropped(
    standin: StandInServer,
) -> None:
    with capture_events(instrument=["bedrock"]) as events:
        async with client(standin, "/s/bedrock_converse_stream") as c:
            response = await c.converse_stream(
                modelId="us.amazon.nova-lite-v1:0", messages=MESSAGES
            )
            seen = []
            async for event in response["stream"]:
                seen.append(event)
                if len(seen) == 2:
                    break  # the caller walks away half-way without closing the stream
            assert events == []
            del response
            for _ in range(3):  # the loop closes the abandoned `async for` generator (aclose task)
                await asyncio.sleep(0)
            gc.collect()
            assert (
                lct.flush()
            )  # the dropped stream is recorded by the bus, by this flush at the latest
            assert len(events) == 1
    (recorded,) = events
    assert (recorded.status, recorded.usage, recorded.usage_source) == ("ok", None, "unknown")
    assert recorded.model == "amazon.nova-lite"


@pytest.mark.parametrize("payload_id", ["bedrock_converse_stream", "bedrock_invoke_stream_llama"])
async def test_a_stream_looped_over_straight_from_the_response_is_recorded_whole(
    standin: StandInServer, payload_id: str
) -> None:
    """Only the loop holds the stream: it must not count as abandoned while it runs."""
    seen = []
    with capture_events(instrument=["bedrock"]) as events:
        async with client(standin, f"/s/{payload_id}") as c:
            if payload_id == "bedrock_converse_stream":
                request = c.converse_stream(modelId="m-v1:0", messages=MESSAGES)
                async for event in (await request)["stream"]:
                    gc.collect()
                    seen.append(event)
            else:
                request = c.invoke_model_with_response_stream(modelId="m-v1:0", body=b"{}")
                async for event in (await request)["body"]:
                    gc.collect()
                    seen.append(event)
    assert len(seen) > 1
    assert [(e.usage_source, e.usage is not None) for e in events] == [("stream", True)]


async def test_the_stream_is_still_an_aio_event_stream(standin: StandInServer) -> None:
    with capture_events(instrument=["bedrock"]):
        async with client(standin, "/s/bedrock_converse_stream") as c:
            response = await c.converse_stream(modelId="m-v1:0", messages=MESSAGES)
            assert isinstance(response["stream"], AioEventStream)
            await drain(response["stream"], [])


async def _lines(body: Any) -> bytes:
    return b"\n".join([line async for line in body.iter_lines()])


async def _pieces(body: Any) -> bytes:
    pieces = []
    while piece := await body.read(7):
        pieces.append(piece)
    return b"".join(pieces)


async def _within(body: Any) -> bytes:
    async with body as opened:
        return bytes(await opened.read())


READS = {
    "read": lambda body: body.read(),
    "read_in_pieces": _pieces,
    "iter_chunks": lambda body: _join(body.iter_chunks(5)),
    "async_for": lambda body: _join(body),
    "iter_lines": _lines,
    "async_with": _within,
}


async def _join(chunks: Any) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def _raw_response(body: Any) -> Any:
    """The HTTP response under the body: aiobotocore 2.x's bodies proxy it, 3.x's hold it."""
    return body.__wrapped__ if isinstance(body, wrapt.ObjectProxy) else body.raw_stream


async def _tell(body: Any) -> int:
    return int(body.tell())


async def _close(body: Any) -> None:
    """Close the body the way its backend does (the httpx one has only an async close)."""
    closing = getattr(body, "aclose", None)
    await closing() if closing is not None else body.close()


async def _every_read(c: Any) -> dict[str, Any]:
    """Each way of reading an InvokeModel body: its class, what it read (or the error), ``tell()``.

    aiobotocore 2.x's httpx body has none of ``read(n)``, ``tell()``, chunks or
    lines: there the caller gets the same error with and without us.
    """
    seen: dict[str, Any] = {}
    for name, read in READS.items():
        response = await c.invoke_model(modelId="anthropic.claude-x-v1:0", body=b"{}")
        body = response["body"]
        raw = _raw_response(body)
        status = getattr(raw, "status", None) or raw.status_code  # aiohttp's, or httpx's
        outcome: list[Any] = [type(body).__qualname__, status, raw.headers["content-type"]]
        for step in (read, _tell):
            try:
                outcome.append(await step(body))
            except (AttributeError, TypeError, ValueError) as error:
                outcome.append((type(error).__name__, str(error)))
        seen[name] = outcome
        await _close(body)
    return seen


@pytest.mark.parametrize("over_httpx", [False, True], ids=["aiohttp", "httpx"])
async def test_invoke_body_every_way_of_reading_it(
    standin: StandInServer, bare: None, over_httpx: bool
) -> None:
    path = "/s/bedrock_invoke_anthropic"
    async with client(standin, path, over_httpx=over_httpx) as c:
        without = await _every_read(c)
    with capture_events(instrument=["bedrock"]) as events:
        async with client(standin, path, over_httpx=over_httpx) as c:
            instrumented = await _every_read(c)
    assert instrumented == without
    whole = without["read"][3]
    assert isinstance(whole, bytes)
    assert whole.startswith(b'{"id": "msg_bdrk_')
    read_whole = [name for name, outcome in without.items() if outcome[3] == whole]
    assert "async_with" in read_whole  # every backend reads whole at least two ways
    assert len(events) == len(READS)
    assert {e.usage is not None for e in events} == {True}


async def test_a_body_that_fails_to_read_fails_the_same_way_for_the_caller() -> None:
    from llm_cost_tracker.instrumentation.bedrock._async import read_body

    class Disconnected:
        """What aiobotocore reads an aiohttp response through, the server gone mid-body."""

        url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/invoke"

        class content:
            @staticmethod
            async def read(n: int = -1) -> bytes:
                raise aiohttp.ServerDisconnectedError()

    with capture_events() as events:
        call = Call("aws_bedrock", "invoke_model", "amazon.nova-pro-v1:0", False, {})
        response: dict[str, Any] = {"body": AioStreamingBody(Disconnected(), 10)}
        assert await read_body(call, response) is None
        with pytest.raises(ResponseStreamingError) as first:
            await response["body"].read()
        with pytest.raises(ResponseStreamingError) as again:
            await response["body"].read(3)
    assert first.value is again.value
    assert isinstance(first.value.kwargs["error"], aiohttp.ServerDisconnectedError)
    assert [(e.status, e.error_type, e.model) for e in events] == [
        ("error", "ResponseStreamingError", "amazon.nova-pro")
    ]


@contextlib.contextmanager
def standin_as_bedrock_host(standin: StandInServer) -> Iterator[None]:
    """The stand-in registered as a Bedrock host with a parser for every operation's path.

    So a transport instrumentor (aiohttp, httpx) records these calls on its own,
    as operation ``raw``: what the Bedrock instrumentor must keep it from doing.
    """
    host = standin.url.split("://", 1)[1]
    suffixes = ("/converse", "/converse-stream", "/invoke", "/invoke-with-response-stream")
    lct.register_host(host, "aws_bedrock")
    for suffix in suffixes:
        lct.register_parser("aws_bedrock", suffix, lambda body: None, operation="raw")
    try:
        yield
    finally:
        for suffix in suffixes:
            unregister_parser("aws_bedrock", suffix)
        unregister_host(host)


async def test_one_event_with_the_aiohttp_instrumentor_on(standin: StandInServer) -> None:
    """aiobotocore sends with aiohttp: the transport layer must not record the call again."""

    async def calls() -> None:
        async with client(standin, "/bedrock") as c:
            await c.converse(modelId="amazon.nova-pro-v1:0", messages=MESSAGES)
            response = await c.invoke_model(modelId="meta.llama3-1-70b-instruct-v1:0", body=b"{}")
            await response["body"].read()

    with standin_as_bedrock_host(standin):
        with capture_events(instrument=["aiohttp"]) as transport_only:
            await calls()
        with capture_events(instrument=["aiohttp", "bedrock"]) as both:
            await calls()
    assert [e.operation for e in transport_only] == ["raw", "raw"]
    assert [(e.operation, e.usage is not None) for e in both] == [
        ("converse", True),
        ("invoke_model", True),
    ]
    assert {e.tags["cloud.region"] for e in both} == {"us-east-1"}


@pytest.mark.parametrize("payload_id", [p for p in OK_PAYLOADS if not PAYLOADS[p]["stream"]])
async def test_over_httpx_one_event_and_the_same_result(
    standin: StandInServer, bare: None, payload_id: str
) -> None:
    """aiobotocore's httpx backend: same bytes and events, one event with every layer on."""
    payload = PAYLOADS[payload_id]
    path = standin.scenario_url(payload_id)[len(standin.url) :]
    async with client(standin, path, over_httpx=True) as c:
        without = await call(c, payload)
    with standin_as_bedrock_host(standin):
        with capture_events(instrument=["httpx"]) as transport_only:
            async with client(standin, path, over_httpx=True) as c:
                await call(c, payload)
        with capture_events(instrument=["bedrock", "httpx", "aiohttp"]) as events:
            async with client(standin, path, over_httpx=True) as c:
                instrumented = await call(c, payload)
    assert [e.operation for e in transport_only] == ["raw"]  # the httpx layer sees the call
    assert instrumented == without  # every field, event and byte as without us
    assert len(events) == 1
    assert_expected(events[0], payload)


@pytest.mark.parametrize("payload_id", ["bedrock_converse_stream", "bedrock_invoke_stream_llama"])
async def test_over_httpx_a_stream_fails_as_without_us_and_is_recorded(
    standin: StandInServer, bare: None, payload_id: str
) -> None:
    """aiobotocore's httpx backend cannot read event streams (2.x and 3.x alike).

    ``AioEventStream`` reads its response with aiohttp's ``content.iter_chunks()``,
    which an httpx response does not have. The caller gets the very error it
    gets without us; the call, answered and so billed, is recorded once, as
    failed with usage unknown, with every layer on.
    """
    payload = PAYLOADS[payload_id]
    path = standin.scenario_url(payload_id)[len(standin.url) :]
    async with client(standin, path, over_httpx=True) as c:
        with pytest.raises(Exception) as bare_error:
            await call(c, payload)
    assert type(bare_error.value).__name__ == "ResponseNotRead"  # httpx's: reading, not the call
    every_layer = capture_events(instrument=["bedrock", "httpx", "aiohttp"])
    with standin_as_bedrock_host(standin), every_layer as events:
        async with client(standin, path, over_httpx=True) as c:
            with pytest.raises(type(bare_error.value)) as our_error:
                await call(c, payload)
    assert str(our_error.value) == str(bare_error.value)
    (event,) = events
    assert (event.status, event.error_type, event.stream, event.usage) == (
        "error",
        type(bare_error.value).__name__,
        True,
        None,
    )
    assert (event.provider, event.model, event.request_model) == (
        "aws_bedrock",
        payload["expected"]["model"],
        model_id_of(payload),
    )
    assert event.tags["cloud.region"] == "us-east-1"


async def test_other_operations_pass_through_and_suppression_is_honoured(
    standin: StandInServer,
) -> None:
    with capture_events(instrument=["bedrock"]) as events:
        async with client(standin, "/s/bedrock_converse_nova") as c:
            await c.apply_guardrail(
                guardrailIdentifier="g", guardrailVersion="1", source="INPUT", content=[]
            )
            with suppressed():
                await c.converse(modelId="amazon.nova-pro-v1:0", messages=MESSAGES)
    assert events == []


def test_instrument_and_uninstrument_restore_aiobotocore() -> None:
    owner = aiobotocore.client.AioBaseClient
    original = owner.__dict__["_make_api_call"]
    instrumentor = BedrockInstrumentor()
    instrumentor.uninstrument()
    assert instrumentor.instrument()
    assert isinstance(owner.__dict__["_make_api_call"], wrapt.FunctionWrapper)
    instrumentor.uninstrument()
    assert owner.__dict__["_make_api_call"] is original


def test_docs_async_example_runs(
    standin: StandInServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The AWS Bedrock section's aiobotocore example, its client pointed at the stand-in."""
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "instrumentation.md").read_text("utf-8")
    blocks = [block.split("```")[0] for block in text.split("```python\n")[1:]]
    example = next(block for block in blocks if "aiobotocore" in block)
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", standin.url + "/bedrock")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    exec(compile(example, "docs/instrumentation.md", "exec"), {"__name__": "docs_example"})
    printed = capsys.readouterr().out.splitlines()
    expected = [line[2:] for line in example.splitlines() if line.startswith("# converse")]
    assert (
        printed
        == expected
        == [
            "converse False amazon.nova-lite us-east-1",
            "converse True amazon.nova-lite us-east-1",
        ]
    )
