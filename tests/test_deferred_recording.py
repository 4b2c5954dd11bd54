"""Instrumented calls are read on the bus worker: what the caller's thread snapshots still wins.

The SDK and transport wrappers only stop the clock and queue a finished call;
the worker reads usage out of the response and builds the event. These tests
use the real asynchronous bus (not the synchronous test mode), real SDK and
httpx clients against the stand-in server, and check that everything taken
from the caller's context (tags, the OpenTelemetry span, the clock) is what
was in force when the call started, not when the worker got to it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from llm_cost_tracker.instrumentation._hosts import register_host, unregister_host

import llm_cost_tracker as lct
from llm_cost_tracker._api import get_runtime
from llm_cost_tracker._bus import Bus
from llm_cost_tracker._events import TokenUsage, UsageEvent
from llm_cost_tracker._standin import StandInServer
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.testing import InMemoryExporter

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def openai_standin(standin: StandInServer) -> Iterator[StandInServer]:
    """The stand-in server's host:port attributed to OpenAI, as for a plain httpx client."""
    host = standin.url.removeprefix("http://")
    register_host(host, "openai")
    yield standin
    unregister_host(host)


@pytest.fixture
def memory() -> Iterator[InMemoryExporter]:
    """A configured asynchronous pipeline whose worker sleeps until flushed."""
    exporter = InMemoryExporter()
    lct.configure(
        database_url=None,
        exporters=[exporter],
        instrument=["openai", "anthropic", "httpx"],
        batch_size=10_000,
        export_interval=3600.0,
    )
    STATS.reset()
    try:
        yield exporter
    finally:
        lct.shutdown()


def test_the_sdk_result_is_read_on_the_worker_with_the_callers_tags_and_span(
    memory: InMemoryExporter, standin: StandInServer
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    client = openai.OpenAI(
        api_key="sk-test",
        base_url=standin.scenario_url("openai_chat_cached_gpt4omini", "/v1"),
        max_retries=0,
    )
    with tracer.start_as_current_span("handler") as span, lct.with_tags(feature="chat"):
        result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        expected_trace = f"{span.get_span_context().trace_id:032x}"
        expected_span = f"{span.get_span_context().span_id:016x}"
    client.close()

    runtime = get_runtime()
    assert runtime is not None
    assert runtime.bus.pending() == 1  # queued, not yet read: the worker sleeps
    assert memory.events == []
    assert STATS.get("emitted") == 0  # counted when the worker builds it

    assert lct.flush(10)
    (event,) = memory.events
    assert event.tags == {"feature": "chat"}  # the scope had ended before the worker ran
    assert (event.trace_id, event.span_id) == (expected_trace, expected_span)
    assert event.provider_response_id == result.id
    assert event.usage is not None
    assert event.usage.tokens["cache_read"] == 1024
    assert event.cost.status == "priced"
    assert event.latency_ms is not None
    assert event.latency_ms > 0
    assert STATS.get("emitted") == 1


def test_latency_is_the_calls_not_the_time_spent_waiting_in_the_queue(
    memory: InMemoryExporter, standin: StandInServer
) -> None:
    client = anthropic.Anthropic(
        api_key="test", base_url=standin.scenario_url("anthropic_cache_read"), max_retries=0
    )
    timer = threading.Event()
    client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES)
    timer.wait(0.5)  # the worker reads it at least half a second after the call returned
    client.close()
    assert lct.flush(10)
    (event,) = memory.events
    assert event.latency_ms is not None
    assert event.latency_ms < 500
    assert event.usage is not None
    assert event.usage.tokens["cache_read"] > 0


def test_a_plain_httpx_call_is_parsed_on_the_worker(
    memory: InMemoryExporter, openai_standin: StandInServer
) -> None:
    standin = openai_standin
    url = standin.scenario_url("openai_chat_cached_gpt4omini", "/v1") + "/chat/completions"
    with lct.with_tags(tenant_id="acme"), httpx.Client() as http:
        response = http.post(url, json={"model": "gpt-4o-mini", "messages": MESSAGES})
    assert response.json()["usage"]["prompt_tokens"] > 0  # the caller's body is untouched
    runtime = get_runtime()
    assert runtime is not None
    assert runtime.bus.pending() == 1
    assert lct.flush(10)
    (event,) = memory.events
    assert event.tags == {"tenant_id": "acme"}
    assert event.request_model == "gpt-4o-mini"  # read from the request body on the worker
    assert event.usage is not None
    assert event.usage.tokens["cache_read"] == 1024
    assert event.status == "ok"
    assert event.usage_source == "response"


def test_an_http_error_read_on_the_worker_is_recorded_as_an_error(
    memory: InMemoryExporter, openai_standin: StandInServer
) -> None:
    standin = openai_standin
    url = standin.scenario_url("openai_chat_cached_gpt4omini", "/v1") + "/chat/completions"

    def fail(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"error": {"message": "slow down"}})

    with httpx.Client(transport=httpx.MockTransport(fail)) as http:
        response = http.post(url, json={"model": "gpt-4o-mini", "messages": MESSAGES})
    assert response.status_code == 429
    assert lct.flush(10)
    (event,) = memory.events
    assert (event.status, event.error_type) == ("error", "http_429")
    assert event.usage is None
    assert event.usage_source == "unknown"


class _Pending:
    def __init__(self, event: UsageEvent | None, fail: bool = False) -> None:
        self.event = event
        self.fail = fail

    def build(self) -> UsageEvent | None:
        if self.fail:
            raise RuntimeError("a response nobody can read")
        return self.event


def _event(model: str) -> UsageEvent:
    return UsageEvent(
        provider="openai", model=model, operation="chat", usage=TokenUsage(tokens={"input": 1})
    )


def test_a_call_that_cannot_be_read_is_counted_and_the_rest_of_the_batch_goes_out() -> None:
    STATS.reset()
    exporter = InMemoryExporter()
    bus = Bus(exporters=[exporter], batch_size=100, interval=3600.0)
    try:
        bus.defer(_Pending(_event("a")))
        bus.defer(_Pending(None, fail=True))
        bus.defer(_Pending(None))  # nothing to record (a background response still running)
        bus.emit(_event("b"))
        bus.defer(_Pending(_event("c")))
        assert bus.pending() == 5
        assert bus.flush(10)
    finally:
        bus.shutdown(5)
    assert [e.model for e in exporter.events] == ["a", "b", "c"]
    assert STATS.get("errors.instrumentation.finish") == 1
    assert STATS.get("emitted") == 3
    assert STATS.get("exported") == 3


def test_a_deferred_tuple_is_built_by_its_first_item_with_the_rest_as_arguments() -> None:
    # The SDK wrappers' fastest path queues (build, *args): one allocation on the caller's thread.
    STATS.reset()
    exporter = InMemoryExporter()
    bus = Bus(exporters=[exporter], batch_size=100, interval=3600.0)

    def fail(model: str) -> UsageEvent:
        raise RuntimeError(model)

    try:
        bus.defer((_event, "a"))
        bus.defer((fail, "b"))
        bus.defer((lambda: None,))  # nothing to record
        bus.defer((_event, "c"))
        assert bus.pending() == 4
        assert bus.flush(10)
    finally:
        bus.shutdown(5)
    assert [e.model for e in exporter.events] == ["a", "c"]
    assert STATS.get("errors.instrumentation.finish") == 1
    assert STATS.get("emitted") == 2


def test_a_plain_sdk_call_queues_one_tuple_and_a_stream_or_callable_defaults_a_call(
    memory: InMemoryExporter, standin: StandInServer
) -> None:
    import asyncio

    client = openai.OpenAI(
        api_key="sk-test",
        base_url=standin.scenario_url("openai_chat_cached_gpt4omini", "/v1"),
        max_retries=0,
    )
    runtime = get_runtime()
    assert runtime is not None
    queue = runtime.bus._queue

    async def async_call() -> None:
        async with openai.AsyncOpenAI(
            api_key="sk-test",
            base_url=standin.scenario_url("openai_chat_cached_gpt4omini", "/v1"),
            max_retries=0,
        ) as aclient:
            with lct.with_tags(feature="async"):
                await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    with lct.with_tags(feature="sync"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    asyncio.run(async_call())
    # The first call of a result type in the process finds out that it is plain
    # (and may have been made by an earlier test); every later one is a tuple.
    assert len(queue) == 3
    assert type(queue[1]) is tuple
    assert type(queue[2]) is tuple
    assert lct.flush(10)
    assert sorted(e.tags["feature"] for e in memory.events) == ["async", "sync", "sync"]
    assert all(e.usage is not None and e.usage.tokens["cache_read"] == 1024 for e in memory.events)
    assert {e.provider for e in memory.events} == {"openai"}
    client.close()


def test_the_transport_sees_a_plain_sync_sdk_call_as_suppressed_and_only_during_it(
    memory: InMemoryExporter, standin: StandInServer
) -> None:
    # The fastest path suppresses with a per-thread flag rather than the context
    # variable: is_suppressed() must say the same, inside the call only.
    seen: list[bool] = []
    clients = [
        openai.OpenAI(
            api_key="sk-test",
            base_url=standin.scenario_url(scenario, "/v1"),
            max_retries=0,
        )
        for scenario in ("openai_chat_cached_gpt4omini", "anthropic_error_429_rate_limit")
    ]
    for client in clients:
        client._client.event_hooks["request"].append(
            lambda request: seen.append(lct.is_suppressed())
        )
    ok, failing = clients
    for _ in range(2):
        ok.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert not lct.is_suppressed()
    with pytest.raises(openai.RateLimitError):
        failing.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert not lct.is_suppressed()
    assert seen == [True, True, True]
    with lct.suppressed():  # the context variable still suppresses, and nothing is recorded
        ok.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    for client in clients:
        client.close()
    assert lct.flush(10)
    assert sorted(e.status for e in memory.events) == ["error", "ok", "ok"]  # once each
    assert [e.error_type for e in memory.events if e.status == "error"] == ["RateLimitError"]


def test_a_callable_default_tags_runs_in_the_callers_thread_so_no_tuple_is_queued(
    standin: StandInServer,
) -> None:
    exporter = InMemoryExporter()
    seen: list[str] = []

    def defaults() -> dict[str, str]:
        seen.append(threading.current_thread().name)
        return {"host": "web-1"}

    lct.configure(
        database_url=None,
        exporters=[exporter],
        instrument=["openai"],
        default_tags=defaults,
        batch_size=10_000,
        export_interval=3600.0,
    )
    try:
        client = openai.OpenAI(
            api_key="sk-test",
            base_url=standin.scenario_url("openai_chat_cached_gpt4omini", "/v1"),
            max_retries=0,
        )
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.close()
        runtime = get_runtime()
        assert runtime is not None
        assert [type(item) is tuple for item in runtime.bus._queue] == [False, False]
        assert seen == [threading.current_thread().name] * 2
        assert lct.flush(10)
        assert [e.tags for e in exporter.events] == [{"host": "web-1"}] * 2
    finally:
        lct.shutdown()


def test_calls_still_queued_at_shutdown_past_the_timeout_are_counted_as_dropped() -> None:
    STATS.reset()
    gate = threading.Event()

    class Slow:
        name = "slow"

        def export(self, events: object) -> None:
            gate.wait(10)

        def shutdown(self) -> None:
            return None

    bus = Bus(exporters=[Slow()], batch_size=1, interval=0.01)
    for index in range(5):
        bus.defer(_Pending(_event(str(index))))
    try:
        assert bus.shutdown(0.2) is False
    finally:
        gate.set()
    assert STATS.get("dropped.shutdown") >= 1
    assert STATS.get("dropped.shutdown") + STATS.get("emitted") == 5


def test_a_deferred_call_in_synchronous_mode_is_built_at_once() -> None:
    STATS.reset()
    exporter = InMemoryExporter()
    bus = Bus(exporters=[exporter], synchronous=True)
    bus.defer(_Pending(_event("now")))
    assert [e.model for e in exporter.events] == ["now"]
    assert STATS.get("emitted") == 1
    bus.shutdown(1)
