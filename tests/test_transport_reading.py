"""A JSON body read whole is parsed by the bus worker: the caller's thread keeps its bytes only.

Real httpx, requests and boto3 clients, real asynchronous buses. The
transports' bodies come from an httpx ``MockTransport`` (or a requests
adapter) so that their size and shape are the test's to choose; the host is
registered like any gateway. Bedrock's InvokeModel comes from the stand-in.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
import requests
import requests.adapters
import urllib3
from llm_cost_tracker.instrumentation._hosts import register_host, unregister_host
from llm_cost_tracker.instrumentation._sse import (
    FULL_BODY_BYTES,
    HEAD_BYTES,
    TAIL_BYTES,
    BodyReading,
)
from llm_cost_tracker.instrumentation.httpx import unregister_parser

import llm_cost_tracker as lct
from llm_cost_tracker._api import get_runtime
from llm_cost_tracker._events import Call
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.cli._standin import StandInServer
from llm_cost_tracker.testing import capture_events

HOST = "gateway.reading.test"
URL = f"https://{HOST}/v1/chat/completions"
REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def chat_body(prompt_tokens: int = 120, padding: int = 0) -> bytes:
    """A chat completion whose answer is ``padding`` characters long."""
    return json.dumps(
        {
            "id": "chatcmpl-reading",
            "object": "chat.completion",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * padding}}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 30,
                "total_tokens": prompt_tokens + 30,
            },
        }
    ).encode()


def answering(body: bytes) -> httpx.MockTransport:
    return httpx.MockTransport(
        lambda request: httpx.Response(
            200, headers={"content-type": "application/json"}, content=body
        )
    )


@pytest.fixture
def gateway() -> Iterator[str]:
    register_host(HOST, "openai")
    yield HOST
    unregister_host(HOST)


@pytest.fixture
def sleeping() -> Iterator[list[lct.UsageEvent]]:
    """An asynchronous pipeline whose worker waits until flushed."""
    with capture_events(
        instrument=["httpx", "requests", "bedrock"],
        synchronous=False,
        batch_size=10_000,
        export_interval=3600.0,
    ) as events:
        STATS.reset()
        yield events


def queued() -> list[Call]:
    runtime = get_runtime()
    assert runtime is not None
    records = list(runtime.bus._queue)
    assert all(isinstance(r, Call) for r in records)
    return records  # type: ignore[return-value]


def test_the_queued_call_holds_the_bodys_bytes_and_the_worker_reads_them(
    gateway: str, sleeping: list[lct.UsageEvent]
) -> None:
    body = chat_body()
    with httpx.Client(transport=answering(body)) as client:
        response = client.post(URL, json=REQUEST)
    (call,) = queued()
    reading = call.found
    assert isinstance(reading, BodyReading)
    assert reading.nbytes == len(body)
    assert reading._body is response.content  # the same bytes object: nothing copied or parsed
    kept = [getattr(reading, name) for name in BodyReading.__slots__]
    assert not [v for v in kept if type(v).__module__.split(".")[0] in ("httpx", "httpx2")]
    assert sleeping == []

    assert lct.flush(10)
    (event,) = sleeping
    assert event.usage is not None
    assert (event.usage.input_tokens, event.usage.output_tokens) == (120, 30)
    assert (event.model, event.request_model) == ("gpt-4o-mini-2024-07-18", "gpt-4o-mini")
    assert (event.usage_source, event.provider_response_id) == ("response", "chatcmpl-reading")
    assert reading._body == b""  # read once, then let go


def test_a_registered_parser_runs_on_the_bus_worker_not_the_callers_thread(
    gateway: str, sleeping: list[lct.UsageEvent]
) -> None:
    threads: list[str] = []

    def parse(body: Any) -> lct.TokenUsage:
        threads.append(threading.current_thread().name)
        return lct.TokenUsage(tokens={"input": body["n"], "output": 0})

    lct.register_parser("openai", "/v1/tally", parse, operation="tally")
    try:
        transport = answering(b'{"n": 7}')
        with httpx.Client(transport=transport) as client:
            client.post(f"https://{HOST}/v1/tally", json={"model": "m"})
        assert threads == []  # not read while the caller waited
        assert lct.flush(10)
    finally:
        unregister_parser("openai", "/v1/tally")
    assert len(threads) == 1
    assert threads[0] != threading.current_thread().name
    (event,) = sleeping
    assert event.operation == "tally"
    assert event.usage is not None
    assert event.usage.tokens["input"] == 7


def test_a_body_past_the_full_limit_keeps_its_head_and_tail_only(
    gateway: str, sleeping: list[lct.UsageEvent]
) -> None:
    body = chat_body(prompt_tokens=5000, padding=3 * FULL_BODY_BYTES)
    with httpx.Client(transport=answering(body)) as client:
        client.post(URL, json=REQUEST)
    (call,) = queued()
    assert isinstance(call.found, BodyReading)
    assert call.found.nbytes <= HEAD_BYTES + TAIL_BYTES < len(body) // 2
    assert lct.flush(10)
    (event,) = sleeping
    assert event.usage is not None
    assert event.usage.input_tokens == 5000
    assert STATS.get("transport.body_recovered_from_tail") == 1


def test_queued_bodies_count_against_the_memory_bound_and_what_does_not_fit_is_counted(
    gateway: str,
) -> None:
    limit = 256 * 1024
    body = chat_body(padding=32 * 1024)
    calls = 20  # 20 x 32 KiB: more than the bound holds
    with capture_events(
        instrument=["httpx"],
        synchronous=False,
        queue_max_bytes=limit,
        batch_size=10_000,
        export_interval=3600.0,
    ) as events:
        STATS.reset()
        with httpx.Client(transport=answering(body)) as client:
            for _ in range(calls):
                client.post(URL, json=REQUEST)
        runtime = get_runtime()
        assert runtime is not None
        kept = runtime.bus.pending()
        assert 1 <= kept < calls
        assert len(body) * kept <= runtime.bus.queued_bytes() <= limit
        assert STATS.get("dropped.queue_full") == calls - kept
        assert lct.flush(10)
        assert len(events) == kept
        assert all(e.usage is not None for e in events)
        assert runtime.bus.queued_bytes() == 0


class _Canned(requests.adapters.HTTPAdapter):
    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(self.body),
            headers={"content-type": "application/json"},
            status=200,
            preload_content=False,
        )
        return self.build_response(request, raw)


def test_a_budget_in_raise_mode_reads_the_body_on_the_callers_thread(gateway: str) -> None:
    """The budget must see the cost before the call returns, so the body is read there."""
    with capture_events(
        instrument=["requests"],
        synchronous=False,
        pricing_overrides={"openai/gpt-4o-mini-2024-07-18": {"input": "1", "output": "1"}},
        budgets=lct.Budgets(monthly="1", on_exceed="raise"),
        batch_size=10_000,
        export_interval=3600.0,
    ) as events:
        with requests.Session() as session:
            session.mount("https://", _Canned(chat_body(prompt_tokens=2_000_000)))
            with pytest.raises(lct.BudgetExceededError) as raised:
                session.post(URL, json=REQUEST)
        assert raised.value.spent >= 2
        recorded = raised.value.event
        assert isinstance(recorded, lct.UsageEvent)
        assert recorded.usage is not None
        assert recorded.usage.input_tokens == 2_000_000  # read before the call returned
        assert lct.flush(10)
        (event,) = events
        assert event.cost.total is not None
        assert event.cost.total >= 2


def test_a_bedrock_invoke_model_body_is_read_by_the_worker_with_the_headers_it_needs(
    standin: StandInServer, sleeping: list[lct.UsageEvent]
) -> None:
    bedrock = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=standin.url + "/s/bedrock_invoke_titan_embed",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret",
    )
    response = bedrock.invoke_model(
        modelId="amazon.titan-embed-text-v2:0", body=b'{"inputText": "Hello"}'
    )
    assert json.loads(response["body"].read())["inputTextTokenCount"] == 2
    (call,) = queued()
    reading = call.found
    assert isinstance(reading, BodyReading)
    kept = [getattr(reading, name) for name in BodyReading.__slots__]
    assert not [v for v in kept if type(v).__module__.split(".")[0] in ("botocore", "urllib3")]
    assert lct.flush(10)
    (event,) = sleeping
    assert (event.model, event.operation) == ("amazon.titan-embed-text-v2", "invoke_model")
    assert event.usage is not None
    assert dict(event.usage.tokens) == {"input": 2, "output": 0}
    assert event.provider_response_id == response["ResponseMetadata"]["RequestId"]
