"""The OpenTelemetry exporter with the real SDK's in-memory readers: GenAI metrics, cost, spans."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from llm_cost_tracker.exporters.otel import OTelExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sql_events import make_events

import llm_cost_tracker as lct


@pytest.fixture
def sdk() -> Any:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))

    class SDK:
        pass

    sdk = SDK()
    sdk.reader, sdk.meter_provider = reader, meter_provider
    sdk.spans, sdk.tracer_provider = spans, tracer_provider
    yield sdk
    meter_provider.shutdown()
    tracer_provider.shutdown()


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def test_token_histogram_and_cost_counter(sdk):
    events = make_events(40)
    exporter = OTelExporter(
        tag_keys={"feature": "app.feature"}, meter_provider=sdk.meter_provider, spans="off"
    )
    exporter.export(events)
    points = _points(sdk.reader)

    usage = points["gen_ai.client.token.usage"]
    input_sum = sum(p.sum for p in usage if p.attributes["gen_ai.token.type"] == "input")
    output_sum = sum(p.sum for p in usage if p.attributes["gen_ai.token.type"] == "output")
    known = [e for e in events if e.usage is not None]
    assert input_sum == sum(e.usage.input_tokens for e in known)
    assert output_sum == sum(e.usage.output_tokens for e in known)
    first = next(p for p in usage if p.attributes["gen_ai.request.model"] == "gpt-4o-mini")
    assert first.attributes["gen_ai.provider.name"] == "openai"
    assert first.attributes["gen_ai.operation.name"] == "chat"
    gemini = next(p for p in usage if p.attributes["gen_ai.response.model"] == "gemini-2.5-flash")
    assert gemini.attributes["gen_ai.provider.name"] == "gcp.gemini"

    cost = points["llm_cost_tracker.cost"]
    expected = sum(e.cost.total for e in events if e.cost.total is not None)
    assert sum(p.value for p in cost) == pytest.approx(float(expected), rel=1e-9)
    by_feature: dict[str, Decimal] = {}
    for e in events:
        if e.cost.total is not None:
            key = e.tags["feature"]
            by_feature[key] = by_feature.get(key, Decimal(0)) + e.cost.total
    for feature, total in by_feature.items():
        measured = sum(p.value for p in cost if p.attributes.get("app.feature") == feature)
        assert measured == pytest.approx(float(total), rel=1e-9)
    assert all("user_id" not in p.attributes for p in cost)  # only the chosen tags

    calls = points["llm_cost_tracker.calls"]
    assert sum(p.value for p in calls) == 40
    unknown = sum(
        p.value for p in calls if p.attributes["llm_cost_tracker.cost_status"] == "unknown"
    )
    assert unknown == sum(1 for e in events if e.cost.status == "unknown")


def test_a_call_inside_a_span_gets_a_child_cost_span(sdk):
    exporter = OTelExporter(meter_provider=sdk.meter_provider, tracer_provider=sdk.tracer_provider)
    lct.configure(database_url=None, exporters=[exporter], instrument=None)
    tracer = sdk.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle request") as parent:
        event = lct.track(
            provider="anthropic",
            model="claude-sonnet-4-5",
            usage={"input": 1200, "output": 80, "cache_read": 300},
            latency_ms=250.0,
        )
    lct.track(provider="openai", model="gpt-4o-mini", usage={"input": 1})  # no span: none made
    assert lct.flush(timeout=10)
    context = parent.get_span_context()
    assert event.trace_id == f"{context.trace_id:032x}"
    cost_spans = [s for s in sdk.spans.get_finished_spans() if s.name.startswith("gen_ai.cost")]
    assert len(cost_spans) == 1
    span = cost_spans[0]
    assert span.name == "gen_ai.cost claude-sonnet-4-5"
    assert span.context.trace_id == context.trace_id
    assert span.parent is not None
    assert span.parent.span_id == context.span_id
    assert span.attributes["gen_ai.usage.input_tokens"] == 1500
    assert span.attributes["gen_ai.usage.output_tokens"] == 80
    assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == 300
    assert span.attributes["llm_cost_tracker.call_id"] == event.id
    assert span.end_time - span.start_time == 250_000_000


def test_active_mode_annotates_the_live_span_when_the_bus_is_synchronous(sdk):
    exporter = OTelExporter(
        spans="active", meter_provider=sdk.meter_provider, tracer_provider=sdk.tracer_provider
    )
    lct.configure(database_url=None, exporters=[exporter], instrument=None, synchronous=True)
    tracer = sdk.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("llm call"):
        lct.track(provider="openai", model="gpt-4o-mini", usage={"input": 10, "output": 2})
    finished = sdk.spans.get_finished_spans()
    assert [s.name for s in finished] == ["llm call"]
    assert finished[0].attributes["gen_ai.usage.input_tokens"] == 10
    assert finished[0].attributes["gen_ai.usage.output_tokens"] == 2


def test_without_an_sdk_it_is_a_cheap_no_op():
    exporter = OTelExporter(tag_keys=["feature"])
    exporter.export(make_events(20))
    exporter.shutdown()
    assert exporter.tag_attributes == {"feature": "feature"}


def test_entry_point_name_configures_it():
    lct.configure(database_url=None, exporters=["otel"], instrument=None)
    lct.track(provider="openai", model="gpt-4o-mini", usage={"input": 3})
    assert lct.flush(timeout=10)
    assert lct.stats().get("errors.exporter.otel", 0) == 0
