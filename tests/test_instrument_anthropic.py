"""The anthropic SDK instrumentor: the real SDK, sync and async, against the stand-in server.

Results and exceptions are compared with the bare SDK: they must be identical
with and without instrumentation.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any

import anthropic
import pytest
from llm_cost_tracker.instrumentation._calls import DROPPED_COUNTER
from llm_cost_tracker.instrumentation.anthropic import AnthropicInstrumentor
from test_instrument_extract import PAYLOADS, expected_view, usage_as_expected

import llm_cost_tracker as lct
from llm_cost_tracker._events import UsageEvent
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.cli._standin import StandInServer
from llm_cost_tracker.testing import capture_events

MESSAGES = [{"role": "user", "content": "hi"}]
_OPEN: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def client(standin: StandInServer, scenario: str, **kwargs: Any) -> anthropic.Anthropic:
    kwargs.setdefault("max_retries", 0)
    made = anthropic.Anthropic(api_key="x", base_url=standin.scenario_url(scenario), **kwargs)
    _OPEN.append(made)
    return made


def aclient(standin: StandInServer, scenario: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key="x", base_url=standin.scenario_url(scenario), max_retries=0
    )


@contextlib.asynccontextmanager
async def acapture() -> AsyncIterator[list[UsageEvent]]:
    with capture_events(instrument=["anthropic"]) as events:
        yield events


def dump(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def bare_and_instrumented(run: Callable[[], Any]) -> tuple[Any, Any, list[UsageEvent]]:
    bare = run()
    with capture_events(instrument=["anthropic"]) as events:
        instrumented = run()
    return bare, instrumented, events


def only(events: list[UsageEvent]) -> UsageEvent:
    assert len(events) == 1, events
    return events[0]


def create(c: anthropic.Anthropic, **kwargs: Any) -> Any:
    return c.messages.create(model="claude-test", max_tokens=64, messages=MESSAGES, **kwargs)


def add(standin: StandInServer, scenario_id: str, **payload: Any) -> str:
    standin.add(
        {
            "id": scenario_id,
            "provider": "anthropic",
            "api": "derived",
            "stream": "sse" in payload,
            "request": {},
            "expected": {},
            **payload,
        }
    )
    return scenario_id


# -- every shared Anthropic payload through the real SDK ------------------------------------

SDK_PAYLOADS = {
    pid: p
    for pid, p in PAYLOADS.items()
    if p["api"].startswith("anthropic") and p.get("http_status", 200) == 200
}


@pytest.mark.parametrize("payload_id", sorted(SDK_PAYLOADS))
def test_shared_payload_yields_expected_usage(standin: StandInServer, payload_id: str) -> None:
    payload = SDK_PAYLOADS[payload_id]
    expected = payload["expected"]
    c = client(standin, payload_id)

    def run() -> Any:
        result = create(c, stream=payload["stream"])
        return [dump(e) for e in result] if payload["stream"] else dump(result)

    bare, instrumented, events = bare_and_instrumented(run)
    assert instrumented == bare
    event = only(events)
    assert usage_as_expected(event.usage) == expected_view(expected)
    assert (event.provider, event.operation) == ("anthropic", "messages")
    assert event.model == expected["model"]
    assert event.request_model == "claude-test"
    assert event.provider_response_id == expected["provider_response_id"]
    assert event.usage_source == ("stream" if payload["stream"] else "response")
    assert event.pricing_mode == "standard"


def test_tier_speed_and_geo_set_the_pricing_mode(standin: StandInServer) -> None:
    response = json.loads(json.dumps(PAYLOADS["anthropic_cache_read"]["response"]))
    response["usage"].update(
        {
            "service_tier": "priority",
            "speed": "fast",
            "inference_geo": "us",
            "output_tokens_details": {"thinking_tokens": 50},
        }
    )
    c = client(standin, add(standin, "anthropic_priority_fast_us", response=response))
    with capture_events(instrument=["anthropic"]) as events:
        create(c)
    event = only(events)
    assert event.pricing_mode == "priority+fast+us_only"
    assert event.usage is not None
    assert event.usage.reasoning_tokens == 50


# -- streams --------------------------------------------------------------------------------


def test_stream_helper_text_stream_and_final_message(standin: StandInServer) -> None:
    c = client(standin, "anthropic_stream_cache_write")

    def run() -> Any:
        with c.messages.stream(model="claude", max_tokens=64, messages=MESSAGES) as stream:
            text = "".join(stream.text_stream)
            return text, dump(stream.get_final_message())

    bare, instrumented, events = bare_and_instrumented(run)
    assert instrumented == bare
    event = only(events)
    assert event.stream is True
    assert event.usage_source == "stream"
    assert usage_as_expected(event.usage) == expected_view(
        PAYLOADS["anthropic_stream_cache_write"]["expected"]
    )


def test_stream_helper_get_final_message_only(standin: StandInServer) -> None:
    c = client(standin, "anthropic_stream_basic_2025_shape")
    with capture_events(instrument=["anthropic"]) as events:
        with c.messages.stream(model="claude", max_tokens=64, messages=MESSAGES) as stream:
            final = stream.get_final_message()
        assert len(events) == 1
    assert final.usage.output_tokens == 6
    event = only(events)
    assert event.usage is not None
    assert event.usage.output_tokens == 6


@pytest.mark.parametrize("how", ["break", "no_read", "close"])
def test_stream_helper_closed_early_is_recorded_once(standin: StandInServer, how: str) -> None:
    c = client(standin, "anthropic_stream_cache_write")
    with (
        capture_events(instrument=["anthropic"]) as events,
        c.messages.stream(model="claude", max_tokens=64, messages=MESSAGES) as stream,
    ):
        if how == "break":
            for _ in stream:
                break
        elif how == "close":
            next(iter(stream))
            stream.close()
    event = only(events)
    assert event.status == "ok"
    if how == "no_read":
        assert event.usage is None
    else:
        # message_start said the input; the output so far is a lower bound
        assert event.usage is not None
        assert event.usage_source == "estimated"
        assert event.usage.tokens["cache_write_5m"] == 1165


def test_raw_stream_dropped_half_way_is_recorded_with_what_was_seen(
    standin: StandInServer,
) -> None:
    c = client(standin, "anthropic_stream_cache_write")
    with capture_events(instrument=["anthropic"]) as events:
        for _ in create(c, stream=True):
            break  # the caller walks away: no close(), no with block
        del _
        gc.collect()
        assert lct.flush(5)
        event = only(events)
    assert event.status == "ok"
    assert event.usage is not None  # message_start said the input; the output is a lower bound
    assert event.usage_source == "estimated"
    assert event.usage.tokens["cache_write_5m"] == 1165
    assert STATS.get(DROPPED_COUNTER) == 1


def test_raw_stream_closed_early(standin: StandInServer) -> None:
    c = client(standin, "anthropic_stream_basic_2025_shape")
    with capture_events(instrument=["anthropic"]) as events:
        stream = create(c, stream=True)
        # __class__ rather than isinstance(): anthropic 0.x's Stream metaclass answers
        # isinstance() itself and only knows the exact type (see docs/instrumentation.md)
        assert stream.__class__ is anthropic.Stream
        next(stream)
        stream.close()
        stream.close()
    event = only(events)
    assert event.usage_source == "estimated"


def test_stream_error_event_is_recorded_as_error(standin: StandInServer) -> None:
    sse = PAYLOADS["anthropic_stream_basic_2025_shape"]["sse"].split("event: content_block_stop")[0]
    sse += 'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    c = client(standin, add(standin, "anthropic_stream_overloaded", sse=sse))

    def run() -> BaseException:
        with pytest.raises(anthropic.APIStatusError) as info:
            list(create(c, stream=True))
        return info.value

    bare = run()
    with capture_events(instrument=["anthropic"]) as events:
        instrumented = run()
    assert type(bare) is type(instrumented)
    assert str(bare) == str(instrumented)
    event = only(events)
    assert (event.status, event.error_type, event.usage) == ("error", type(bare).__name__, None)


def test_stream_tags_are_snapshotted_when_it_starts(standin: StandInServer) -> None:
    c = client(standin, "anthropic_stream_basic_2025_shape")
    with capture_events(instrument=["anthropic"]) as events:
        with lct.with_tags(feature="a"):
            manager = c.messages.stream(model="claude", max_tokens=64, messages=MESSAGES)
            stream = create(c, stream=True)
            with manager as helper:
                pass
        with lct.with_tags(feature="b"):
            list(stream)
            del helper
    assert sorted(e.tags["feature"] for e in events) == ["a", "a"]


async def test_async_create_stream_and_helper(standin: StandInServer) -> None:
    async with aclient(standin, "anthropic_stream_cache_write") as c, acapture() as events:
        stream = await c.messages.create(
            model="claude", max_tokens=64, messages=MESSAGES, stream=True
        )
        assert stream.__class__ is anthropic.AsyncStream
        seen = [e async for e in stream]
        async with c.messages.stream(model="claude", max_tokens=64, messages=MESSAGES) as helper:
            text = [t async for t in helper.text_stream]
            final = await helper.get_final_message()
        async with c.messages.stream(model="claude", max_tokens=64, messages=MESSAGES) as cut:
            async for _ in cut:
                break
    assert len(seen) > 3
    assert text
    assert final.usage.output_tokens == 201
    full, helped, early = events
    assert full.usage_source == helped.usage_source == "stream"
    assert full.usage == helped.usage
    assert early.usage_source == "estimated"


async def test_async_plain_and_error(standin: StandInServer) -> None:
    async with (
        aclient(standin, "anthropic_cache_read") as ok,
        aclient(standin, "anthropic_error_429_rate_limit") as failing,
        acapture() as events,
    ):
        message = await ok.messages.create(model="claude", max_tokens=64, messages=MESSAGES)
        with pytest.raises(anthropic.RateLimitError):
            await failing.messages.create(model="claude", max_tokens=64, messages=MESSAGES)
    done, failed = events
    assert done.provider_response_id == message.id
    assert (failed.status, failed.error_type) == ("error", "RateLimitError")


# -- beta, parse, count_tokens, raw responses -----------------------------------------------


def test_beta_messages(standin: StandInServer) -> None:
    c = client(standin, "anthropic_stream_basic_2025_shape")
    plain = client(standin, "anthropic_cache_read")

    def run() -> Any:
        created = plain.beta.messages.create(model="claude", max_tokens=64, messages=MESSAGES)
        with c.beta.messages.stream(model="claude", max_tokens=64, messages=MESSAGES) as stream:
            final = stream.get_final_message()
        return dump(created), dump(final)

    bare, instrumented, events = bare_and_instrumented(run)
    assert instrumented == bare
    created, streamed = events
    assert created.usage is not None
    assert created.usage.cache_read_tokens == 1163
    assert streamed.usage is not None
    assert streamed.usage.output_tokens == 6


def test_parse(standin: StandInServer) -> None:
    c = client(standin, "anthropic_cache_read")
    bare, instrumented, events = bare_and_instrumented(
        lambda: dump(c.messages.parse(model="claude", max_tokens=64, messages=MESSAGES))
    )
    assert instrumented == bare
    assert only(events).usage is not None


def test_count_tokens_records_nothing(standin: StandInServer) -> None:
    c = client(standin, add(standin, "anthropic_count_tokens", response={"input_tokens": 12}))
    with capture_events(instrument=["anthropic"]) as events:
        counted = c.messages.count_tokens(model="claude", messages=MESSAGES)
    assert counted.input_tokens == 12
    assert events == []


def test_with_raw_and_streaming_response(standin: StandInServer) -> None:
    def run() -> Any:
        c = client(standin, "anthropic_cache_read")
        raw = c.messages.with_raw_response.create(model="claude", max_tokens=64, messages=MESSAGES)
        with c.messages.with_streaming_response.create(
            model="claude", max_tokens=64, messages=MESSAGES
        ) as streamed:
            body = streamed.json()
        return dump(raw.parse()), body

    bare, instrumented, events = bare_and_instrumented(run)
    assert instrumented == bare
    assert len(events) == 2
    assert all(e.usage is not None and e.usage.cache_read_tokens == 1163 for e in events)


# -- message batches ------------------------------------------------------------------------


def batch_scenarios(standin: StandInServer) -> str:
    message = PAYLOADS["anthropic_cache_read"]["response"]
    lines = [
        {"custom_id": "a", "result": {"type": "succeeded", "message": message}},
        {
            "custom_id": "b",
            "result": {"type": "succeeded", "message": {**message, "id": "msg_batch_b"}},
        },
        {
            "custom_id": "c",
            "result": {
                "type": "errored",
                "error": {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "bad"},
                },
            },
        },
        {"custom_id": "d", "result": {"type": "expired"}},
    ]
    results = add(
        standin,
        "anthropic_batch_results_jsonl",
        response_raw="".join(json.dumps(line) + "\n" for line in lines),
        content_type="application/binary",
    )
    return add(
        standin,
        "anthropic_batch_ended",
        response={
            "id": "msgbatch_1",
            "type": "message_batch",
            "processing_status": "ended",
            "request_counts": {
                "processing": 0,
                "succeeded": 2,
                "errored": 1,
                "canceled": 0,
                "expired": 1,
            },
            "created_at": "2025-01-01T00:00:00Z",
            "expires_at": "2025-01-02T00:00:00Z",
            "ended_at": "2025-01-01T01:00:00Z",
            "cancel_initiated_at": None,
            "archived_at": None,
            "results_url": standin.scenario_url(results, "/results"),
        },
    )


def test_batch_results_recorded_in_batch_mode_each_once(standin: StandInServer) -> None:
    c = client(standin, batch_scenarios(standin))

    def run() -> Any:
        return [dump(r) for r in c.messages.batches.results("msgbatch_1")]

    bare, instrumented, events = bare_and_instrumented(run)
    assert instrumented == bare
    assert len(instrumented) == 4
    with capture_events(instrument=["anthropic"]) as again:
        list(c.messages.batches.results("msgbatch_1"))
        list(c.messages.batches.results("msgbatch_1"))
    assert len(events) == 2
    assert len(again) == 2  # a new configuration remembers nothing; within one, each result once
    for event in events:
        assert event.pricing_mode == "batch"
        assert event.usage is not None
        assert event.usage.cache_read_tokens == 1163
    assert sorted(e.provider_response_id or "" for e in events) == [
        "msg_01YGB3PuEANUSkLuzemhtNVF",
        "msg_batch_b",
    ]


async def test_async_batch_results(standin: StandInServer) -> None:
    async with aclient(standin, batch_scenarios(standin)) as c, acapture() as events:
        results = [r async for r in await c.messages.batches.results("msgbatch_1")]
    assert len(results) == 4
    assert [e.pricing_mode for e in events] == ["batch", "batch"]


# -- Bedrock and Vertex ---------------------------------------------------------------------


def test_bedrock_and_vertex_clients(standin: StandInServer) -> None:
    # the Bedrock client signs requests with boto3 (in the dev extra)
    bedrock = anthropic.AnthropicBedrock(
        aws_access_key="a",
        aws_secret_key="b",
        aws_region="us-east-1",
        base_url=standin.scenario_url("anthropic_cache_read"),
        max_retries=0,
    )
    vertex = anthropic.AnthropicVertex(
        access_token="t",
        region="us-east5",
        project_id="p",
        base_url=standin.scenario_url("anthropic_web_search_server_tool_use"),
        max_retries=0,
    )
    _OPEN.extend([bedrock, vertex])
    with capture_events(instrument=["anthropic"]) as events:
        bedrock.messages.create(
            model="anthropic.claude-3-5-sonnet-20240620-v1:0", max_tokens=64, messages=MESSAGES
        )
        vertex.messages.create(model="claude-sonnet-4-5@20250929", max_tokens=64, messages=MESSAGES)
    b, v = events
    assert (b.provider, b.request_model) == (
        "aws_bedrock",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
    )
    assert (v.provider, v.model) == ("google_vertex", "claude-sonnet-4-5-20250929")
    assert v.usage is not None
    assert v.usage.services == {"web_search": Decimal(1)}


# -- errors, retries, concurrency, lifecycle ------------------------------------------------


def test_sdk_error_is_recorded_and_reraised_unmodified(standin: StandInServer) -> None:
    c = client(standin, "anthropic_error_429_rate_limit")

    def run() -> BaseException:
        with pytest.raises(anthropic.RateLimitError) as info:
            create(c)
        return info.value

    bare = run()
    with capture_events(instrument=["anthropic"]) as events:
        instrumented = run()
    assert type(bare) is type(instrumented)
    assert (str(bare), bare.status_code, bare.body) == (
        str(instrumented),
        instrumented.status_code,
        instrumented.body,
    )
    event = only(events)
    assert (event.status, event.error_type, event.usage, event.usage_source) == (
        "error",
        "RateLimitError",
        None,
        "unknown",
    )


def test_sdk_retries_are_one_call(standin: StandInServer) -> None:
    retry = json.loads(json.dumps(PAYLOADS["anthropic_error_429_rate_limit"]))
    retry.update(
        id="anthropic_error_429_retry",
        response_headers={"x-should-retry": "true", "retry-after-ms": "5"},
    )
    standin.add(retry)
    url = standin.sequence_url("anthropic-retry", [retry["id"], "anthropic_cache_read"])
    c = anthropic.Anthropic(api_key="x", base_url=url, max_retries=2)
    _OPEN.append(c)
    with capture_events(instrument=["anthropic"]) as events:
        create(c)
    event = only(events)
    assert event.status == "ok"
    assert event.usage is not None


def test_threads_keep_their_own_tags(standin: StandInServer) -> None:
    c = client(standin, "anthropic_stream_basic_2025_shape")

    def work(n: int) -> None:
        with (
            lct.with_tags(user_id=str(n)),
            c.messages.stream(model="claude", max_tokens=64, messages=MESSAGES) as stream,
        ):
            stream.until_done()

    with capture_events(instrument=["anthropic"]) as events:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(e.tags["user_id"] for e in events) == sorted(str(n) for n in range(8))
    assert all(e.usage is not None for e in events)


async def test_tasks_keep_their_own_tags(standin: StandInServer) -> None:
    async with aclient(standin, "anthropic_cache_read") as c, acapture() as events:

        async def work(n: int) -> None:
            with lct.with_tags(user_id=str(n)):
                await c.messages.create(model="claude", max_tokens=64, messages=MESSAGES)

        await asyncio.gather(*(work(n) for n in range(10)))
    assert sorted(e.tags["user_id"] for e in events) == sorted(str(n) for n in range(10))


def test_instrument_is_idempotent_and_uninstrument_restores() -> None:
    from anthropic.resources.messages import messages

    before = messages.Messages.__dict__["stream"]
    instrumentor = AnthropicInstrumentor()
    assert instrumentor.instrument() is True
    assert instrumentor.instrument() is True
    assert messages.Messages.__dict__["stream"] is not before
    instrumentor.uninstrument()
    assert messages.Messages.__dict__["stream"] is before


def test_no_double_count_with_the_transport_instrumentor(standin: StandInServer) -> None:
    with capture_events(instrument=["anthropic", "httpx"]) as events:
        create(client(standin, "anthropic_cache_read"))
        with client(standin, "anthropic_stream_basic_2025_shape").messages.stream(
            model="claude", max_tokens=64, messages=MESSAGES
        ) as stream:
            stream.until_done()
    assert [e.operation for e in events] == ["messages", "messages"]


def test_the_sdks_own_warnings_reach_the_caller_as_without_us(standin: StandInServer) -> None:
    """A model the SDK lists as deprecated warns the caller, instrumented or not, and is recorded."""
    from anthropic.resources.messages import messages as sdk_messages

    deprecated = next(iter(sdk_messages.DEPRECATED_MODELS))
    c = client(standin, "anthropic_cache_read")

    def run() -> list[str]:
        with pytest.warns(DeprecationWarning, match=f"'{deprecated}' is deprecated") as caught:
            c.messages.create(model=deprecated, max_tokens=64, messages=MESSAGES)
        return [str(w.message) for w in caught]

    bare, instrumented, events = bare_and_instrumented(run)
    assert instrumented == bare
    assert only(events).request_model == deprecated
