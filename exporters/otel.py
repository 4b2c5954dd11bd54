"""The OpenTelemetry exporter: GenAI token metrics, a USD cost counter, cost spans. API only.

Uses ``opentelemetry-api`` alone; the application brings the SDK and whatever
exports it (OTLP to a Collector, Prometheus, ...). Without an SDK the API's
no-op providers make this exporter do nothing, cheaply.

Metrics, recorded for every event:

- ``gen_ai.client.token.usage`` (histogram, ``{token}``): one measurement for the
  input tokens and one for the output tokens, with ``gen_ai.token.type``
  (``input`` / ``output``), ``gen_ai.provider.name``, ``gen_ai.operation.name``,
  ``gen_ai.request.model`` and ``gen_ai.response.model``, as the GenAI semantic
  conventions define them. Calls with unknown usage record nothing here.
- ``llm_cost_tracker.cost`` (counter, ``USD``): the call's cost, with
  ``gen_ai.provider.name``, ``gen_ai.request.model`` and the tag keys you choose.
  Only priced or partially priced calls in USD add to it (as a float: metrics
  are approximate by nature; the SQL ledger is exact).
- ``llm_cost_tracker.calls`` (counter, ``{call}``): every call, with provider,
  model and ``llm_cost_tracker.cost_status``, so unpriced calls can be alerted on.

Spans. The bus hands events to exporters on its worker thread, after the call
returned, so there is no "current span" there and the call's span may already
have ended (the API offers no way to reach a span by its ids, and an ended span
ignores new attributes). What the event does carry is the trace id and span id
that were active when the call started. So, by default (``spans="child"``), each
call with a trace id becomes one short span, ``gen_ai.cost <model>``, whose
parent is that span, timed like the call, carrying the token and cost
attributes: every tracing backend then shows the cost inside the right trace.
With ``spans="active"`` the attributes go on the call's own span instead when
it is reachable and still recording: that is when the bus runs synchronously
(``configure(synchronous=True)``) and the export happens in the caller's own
context; otherwise it falls back to the child span. ``spans="off"`` records
metrics only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from .._events import UsageEvent

# Our provider names -> gen_ai.provider.name well-known values.
_PROVIDER_NAMES = {
    "azure_openai": "azure.ai.openai",
    "google": "gcp.gemini",
    "google_vertex": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "bedrock": "aws.bedrock",
}
# Our operation names -> gen_ai.operation.name well-known values.
_OPERATION_NAMES = {
    "messages": "chat",
    "responses": "chat",
    "completions": "text_completion",
}
# The bucket boundaries the GenAI conventions advise for token counts.
_TOKEN_BUCKETS = [4.0**i for i in range(14)]

SpanMode = Literal["child", "active", "off"]


def provider_name(provider: str) -> str:
    """The ``gen_ai.provider.name`` value for one of our provider names."""
    return _PROVIDER_NAMES.get(provider, provider)


class OTelExporter:
    """Turn usage events into OpenTelemetry metrics and spans.

    Args:
        tag_keys: tags to put on the cost counter as attributes: a sequence of
            keys (the attribute is named like the key) or a mapping
            ``{tag_key: attribute_name}``. Every key multiplies the counter's
            series: choose low-cardinality tags (feature, tenant), not user ids.
        spans: ``"child"`` (default), ``"active"`` or ``"off"``; see the module docs.
        meter_provider / tracer_provider: default to the global ones.
    """

    name = "otel"

    def __init__(
        self,
        *,
        tag_keys: Sequence[str] | Mapping[str, str] = (),
        spans: SpanMode = "child",
        meter_provider: Any = None,
        tracer_provider: Any = None,
    ) -> None:
        if spans not in ("child", "active", "off"):
            raise ValueError(f"spans: expected 'child', 'active' or 'off', got {spans!r}")
        self.tag_attributes: dict[str, str] = (
            dict(tag_keys) if isinstance(tag_keys, Mapping) else {k: k for k in tag_keys}
        )
        self.spans = spans
        self._meter_provider = meter_provider
        self._tracer_provider = tracer_provider
        self._instruments: tuple[Any, Any, Any, Any] | None = None

    def _setup(self) -> tuple[Any, Any, Any, Any]:
        if self._instruments is not None:
            return self._instruments
        from opentelemetry import metrics, trace

        from .. import __version__

        meter = metrics.get_meter("llm_cost_tracker", __version__, self._meter_provider)
        tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        cost = meter.create_counter(
            "llm_cost_tracker.cost", unit="USD", description="Cost of LLM calls in US dollars"
        )
        calls = meter.create_counter(
            "llm_cost_tracker.calls", unit="{call}", description="LLM calls, by cost status"
        )
        tracer = trace.get_tracer("llm_cost_tracker", __version__, self._tracer_provider)
        self._instruments = (tokens, cost, calls, tracer)
        return self._instruments

    def export(self, events: Sequence[UsageEvent]) -> None:
        tokens, cost, calls, tracer = self._setup()
        for event in events:
            provider = provider_name(event.provider)
            request_model = event.request_model or event.model
            model_attributes = {
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": request_model,
            }
            calls.add(
                1,
                {
                    **model_attributes,
                    "llm_cost_tracker.cost_status": event.cost.status,
                    "llm_cost_tracker.status": event.status,
                },
            )
            usage = event.usage
            if usage is not None:
                attributes = {
                    **model_attributes,
                    "gen_ai.operation.name": _OPERATION_NAMES.get(event.operation, event.operation),
                    "gen_ai.response.model": event.model,
                }
                tokens.record(usage.input_tokens, {**attributes, "gen_ai.token.type": "input"})
                tokens.record(usage.output_tokens, {**attributes, "gen_ai.token.type": "output"})
            total = event.cost.total
            if total is not None and event.cost.currency == "USD":
                tagged = dict(model_attributes)
                for key, attribute in self.tag_attributes.items():
                    value = event.tags.get(key)
                    if value is not None:
                        tagged[attribute] = value
                cost.add(float(total), tagged)
            if self.spans != "off" and event.trace_id and event.span_id:
                self._annotate(tracer, event, provider, request_model)

    def _annotate(self, tracer: Any, event: UsageEvent, provider: str, request_model: str) -> None:
        from opentelemetry import trace

        attributes: dict[str, Any] = {
            "gen_ai.provider.name": provider,
            "gen_ai.operation.name": _OPERATION_NAMES.get(event.operation, event.operation),
            "gen_ai.request.model": request_model,
            "gen_ai.response.model": event.model,
            "llm_cost_tracker.call_id": event.id,
            "llm_cost_tracker.cost_status": event.cost.status,
            "llm_cost_tracker.currency": event.cost.currency,
        }
        if event.usage is not None:
            attributes["gen_ai.usage.input_tokens"] = event.usage.input_tokens
            attributes["gen_ai.usage.output_tokens"] = event.usage.output_tokens
            attributes["gen_ai.usage.cache_read.input_tokens"] = event.usage.cache_read_tokens
            attributes["gen_ai.usage.cache_creation.input_tokens"] = event.usage.cache_write_tokens
        if event.cost.total is not None:
            attributes["llm_cost_tracker.cost"] = float(event.cost.total)
            attributes["llm_cost_tracker.cost_exact"] = format(event.cost.total, "f")
        try:
            trace_id, span_id = int(event.trace_id or "", 16), int(event.span_id or "", 16)
        except ValueError:  # not W3C hex ids (a hand-made event): nothing to attach to
            return
        if self.spans == "active":
            current = trace.get_current_span()
            context = current.get_span_context()
            if (
                context.trace_id == trace_id
                and context.span_id == span_id
                and current.is_recording()
            ):
                current.set_attributes(attributes)
                return
        parent = trace.NonRecordingSpan(
            trace.SpanContext(
                trace_id=trace_id,
                span_id=span_id,
                is_remote=False,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            )
        )
        start = event.occurred_at
        end = start + timedelta(milliseconds=event.latency_ms or 0)
        span = tracer.start_span(
            f"gen_ai.cost {event.model}",
            context=trace.set_span_in_context(parent),
            kind=trace.SpanKind.INTERNAL,
            attributes=attributes,
            start_time=_ns(start),
        )
        if event.status == "error":
            span.set_attribute("error.type", event.error_type or "_OTHER")
        span.end(end_time=_ns(end))

    def shutdown(self) -> None:
        return None


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _ns(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000
