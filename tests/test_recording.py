"""One recording path: the caller's thread puts a finished call on the bus and keeps nothing else.

The SDK and transport wrappers read the tags, the span and the clocks when the
call starts, read the usage out of the response when it ends, and queue the
finished ``Call`` (plain values only); the worker builds its immutable
``UsageEvent``, prices and exports it. These
tests use the real asynchronous bus (not the synchronous test mode), real SDK
and httpx clients against the stand-in server, and check that the event
carries what was in force when the call started, that no client, request or
response outlives the call because of us, and that the queue is bounded in
memory as well as in count.
"""

from __future__ import annotations

import gc
import threading
import tracemalloc
import weakref
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from llm_cost_tracker.instrumentation._extraction import Extraction
from llm_cost_tracker.instrumentation._hosts import register_host, unregister_host

import llm_cost_tracker as lct
from llm_cost_tracker._api import get_runtime
from llm_cost_tracker._bus import Bus
from llm_cost_tracker._events import Call, TokenUsage, UsageEvent
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.cli._standin import StandInServer
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


def test_the_call_is_read_on_the_callers_thread_with_the_tags_and_span_at_its_start(
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
    (queued,) = runtime.bus._queue  # queued, not yet built or priced: the worker sleeps
    assert isinstance(queued, Call)
    assert queued.finished
    assert isinstance(queued.found, Extraction)
    assert queued.found.usage is not None
    assert queued.found.usage.tokens["cache_read"] == 1024  # read from the response already
    # plain values only: nothing of the SDK's (client, request, response) rides along
    held = [getattr(queued, name) for name in Call.__slots__]
    assert not [
        v for v in held if type(v).__module__.split(".")[0] in ("openai", "httpx", "httpx2")
    ]
    assert memory.events == []
    assert STATS.get("emitted") == 0  # counted by the worker, off the caller's thread

    assert lct.flush(10)
    (event,) = memory.events
    assert isinstance(event, UsageEvent)
    assert event.occurred_at.timestamp() == pytest.approx(queued.occurred_at, abs=1e-6)
    assert event.tags == {"feature": "chat"}
    assert (event.trace_id, event.span_id) == (expected_trace, expected_span)
    assert event.provider_response_id == result.id
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


def test_a_plain_httpx_call_is_read_at_once_and_the_body_left_to_the_caller(
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
    assert event.request_model == "gpt-4o-mini"  # read from the request body
    assert event.usage is not None
    assert event.usage.tokens["cache_read"] == 1024
    assert event.status == "ok"
    assert event.usage_source == "response"


def test_an_http_error_is_recorded_as_an_error(
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


def _event(model: str) -> UsageEvent:
    return UsageEvent(
        provider="openai", model=model, operation="chat", usage=TokenUsage(tokens={"input": 1})
    )


def test_the_transport_sees_a_sync_sdk_call_as_suppressed_and_only_during_it(
    memory: InMemoryExporter, standin: StandInServer
) -> None:
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


def test_a_callable_default_tags_runs_in_the_callers_thread(
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
        bus.emit(_event(str(index)))
    worker = None
    try:
        assert bus.shutdown(0.2) is False
        worker = bus._worker
    finally:
        gate.set()
    assert worker is not None
    worker.join(5)  # the batch the exporter was stuck on goes out once it returns
    assert STATS.get("dropped.shutdown") >= 1
    assert STATS.get("dropped.shutdown") + STATS.get("exported") == 5


def test_a_thousand_dropped_clients_are_collected(standin: StandInServer) -> None:
    """Neither the clients nor their connection pools outlive the caller's last reference."""
    exporter = InMemoryExporter()
    lct.configure(database_url=None, exporters=[exporter], instrument=["openai", "anthropic"])
    try:
        refs: list[weakref.ref[object]] = []
        for index in range(1000):
            if index % 2:
                made: object = openai.OpenAI(
                    api_key="sk-test",
                    base_url=standin.scenario_url("openai_chat_cached_gpt4omini", "/v1"),
                    max_retries=0,
                )
            else:
                made = anthropic.Anthropic(
                    api_key="sk-test",
                    base_url=standin.scenario_url("anthropic_cache_read"),
                    max_retries=0,
                )
            if index % 100 < 2:  # a call on some: the wrappers have seen them
                if isinstance(made, openai.OpenAI):
                    made.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                else:
                    made.messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=MESSAGES)
            refs.append(weakref.ref(made))
            made.close()  # type: ignore[attr-defined]  # closing does not drop our references
            del made
        gc.collect()
        assert [r for r in refs if r() is not None] == []
        assert lct.flush(10)
        assert len(exporter.events) == 20
    finally:
        lct.shutdown()


def test_no_response_outlives_its_call(memory: InMemoryExporter, standin: StandInServer) -> None:
    """The event is finished when the call returns: the SDK's result is the caller's alone."""
    client = openai.OpenAI(
        api_key="sk-test",
        base_url=standin.scenario_url("openai_embeddings", "/v1"),
        max_retries=0,
    )
    result = client.embeddings.create(model="text-embedding-3-small", input="hi")
    response = weakref.ref(result)
    del result
    gc.collect()
    assert response() is None
    runtime = get_runtime()
    assert runtime is not None
    assert runtime.bus.pending() == 1  # the worker has not run: the event is all that is queued
    client.close()
    assert lct.flush(10)
    (event,) = memory.events
    assert event.operation == "embeddings"
    assert event.usage is not None


def test_the_queue_is_bounded_in_memory_while_the_database_is_down(
    standin: StandInServer, tmp_path: Path, closed_port: int
) -> None:
    """A database that is down, calls with large responses and long tags: memory stays bounded.

    Every call is either delivered, queued or counted as dropped.
    """
    STATS.reset()
    budget = 2 * 1024 * 1024
    lct.configure(
        database_url=f"postgresql://nobody@127.0.0.1:{closed_port}/ledger?connect_timeout=1",
        instrument=["openai"],
        queue_max_bytes=budget,
        spool_dir=tmp_path,
        batch_size=10_000,
        export_interval=3600.0,
    )
    client = openai.OpenAI(
        api_key="sk-test",
        base_url=standin.scenario_url("openai_embeddings", "/v1"),
        max_retries=0,
    )
    long_tags = {f"tag{n}": "x" * 1000 for n in range(20)}  # about 20 KB of tags per event
    calls = 300
    try:
        client.embeddings.create(model="text-embedding-3-small", input="warm up")
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        with lct.with_tags(**long_tags):
            for _ in range(calls):
                client.embeddings.create(model="text-embedding-3-small", input="hi")
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        runtime = get_runtime()
        assert runtime is not None
        assert runtime.bus.queued_bytes() <= budget
        dropped = STATS.get("dropped.queue_full")
        assert dropped > 0
        assert dropped + runtime.bus.pending() == calls + 1  # and the warm-up call
        # what the queue holds, plus the SDK's and the server's own churn: nowhere near
        # the 300 x 20 KB of tags the calls carried
        assert grown < 2 * budget, grown
    finally:
        client.close()
        lct.shutdown(timeout=1)


def test_a_full_queue_counts_by_bytes_as_well_as_by_count() -> None:
    STATS.reset()
    bus = Bus(max_queue=1000, max_queue_bytes=5000, batch_size=10_000, interval=3600)
    try:
        for index in range(10):
            bus.emit(_event(str(index)))
        kept = bus.pending()
        assert 1 <= kept < 10
        assert bus.queued_bytes() <= 5000
        assert STATS.get("dropped.queue_full") == 10 - kept
        assert bus.flush(5)
        assert bus.queued_bytes() == 0
    finally:
        bus.shutdown(1)
