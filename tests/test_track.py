"""Manual tracking: track() validates what the caller wrote and raises naming the field."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

import llm_cost_tracker as lct
from llm_cost_tracker.testing import capture_events


def test_track_records_components_and_tags() -> None:
    with capture_events() as events:
        event = lct.track(
            provider="anthropic",
            model="claude-sonnet-4-5",
            usage={"input": 1500, "output": 320, "cache_read": 200, "web_search": 2},
            tags={"job": "backfill"},
            reasoning_tokens=100,
        )
    assert [e.id for e in events] == [event.id]
    assert dict(event.usage.tokens) == {"input": 1500, "output": 320, "cache_read": 200}  # type: ignore[union-attr]
    assert dict(event.usage.services) == {"web_search": Decimal(2)}  # type: ignore[union-attr]
    assert event.usage.reasoning_tokens == 100  # type: ignore[union-attr]
    assert event.usage_source == "manual"
    assert dict(event.tags) == {"job": "backfill"}


def test_long_form_names_are_accepted() -> None:
    with capture_events():
        event = lct.track(
            provider="openai",
            model="gpt-4o",
            usage={"input_tokens": 3, "output_tokens": 4, "cache_write_1h_tokens": 5},
        )
    assert dict(event.usage.tokens) == {"input": 3, "output": 4, "cache_write_1h": 5}  # type: ignore[union-attr]


def test_usage_none_is_unknown_not_zero() -> None:
    with capture_events():
        event = lct.track(provider="openai", model="gpt-4o", usage=None)
    assert event.usage is None
    assert event.usage_source == "unknown"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"usage": {"inputs": 1}}, "usage['inputs']: unknown usage component"),
        ({"usage": {"input": -1}}, "usage['input']: must not be negative"),
        ({"usage": {"input": 1.5}}, "usage['input']: token counts must be integers"),
        ({"usage": {"input": "12"}}, "usage['input']: token counts must be integers"),
        ({"usage": {"input": True}}, "usage['input']: token counts must be integers"),
        (
            {"usage": {"web_search": -2}},
            "usage['web_search']: must be a finite, non-negative number",
        ),
        ({"usage": {"web_search": "nan"}}, "usage['web_search']: must be a finite"),
        ({"provider": ""}, "provider: must be a non-empty string"),
        ({"model": None}, "model: must be a non-empty string"),
        ({"status": "fine"}, "status: must be 'ok' or 'error'"),
        ({"latency_ms": -3}, "latency_ms: must be a non-negative number"),
        ({"occurred_at": datetime(2026, 1, 1)}, "occurred_at: must be timezone-aware"),
        (
            {"reasoning_tokens": 10, "usage": {"output": 5}},
            "reasoning_tokens: is a subset of output tokens",
        ),
    ],
)
def test_bad_input_raises_value_error_naming_the_field(
    kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"provider": "openai", "model": "gpt-4o", "usage": {"input": 1}}
    args.update(kwargs)
    with (
        capture_events() as events,
        pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")),
    ):
        lct.track(**args)  # type: ignore[arg-type]
    assert events == []


def test_usage_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="usage must be a mapping"):
        lct.track(provider="openai", model="m", usage=[("input", 1)])  # type: ignore[arg-type]


def test_occurred_at_is_normalized_to_utc() -> None:
    from datetime import timedelta

    local = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with capture_events():
        event = lct.track(provider="openai", model="m", usage={"input": 1}, occurred_at=local)
    assert event.occurred_at == datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
    assert event.occurred_at.tzinfo is timezone.utc


def test_trace_and_span_ids_are_recorded_when_a_span_is_active() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with capture_events(), tracer.start_as_current_span("work") as span:
        event = lct.track(provider="openai", model="m", usage={"input": 1})
    context = span.get_span_context()
    assert event.trace_id == f"{context.trace_id:032x}"
    assert event.span_id == f"{context.span_id:016x}"
