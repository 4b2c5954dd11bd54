"""UsageEvent and its parts: immutable, slotted, content-free, with inclusive totals."""

from __future__ import annotations

import dataclasses
from datetime import timezone
from decimal import Decimal

import pytest

from llm_cost_tracker import Cost, LineItem, TokenUsage, UsageEvent


def test_event_is_frozen_and_slotted() -> None:
    event = UsageEvent(provider="openai", model="gpt-4o", operation="chat", usage=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.model = "other"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")
    for cls in (TokenUsage, LineItem, Cost):
        assert "__slots__" in vars(cls)


def test_event_defaults_are_honest() -> None:
    event = UsageEvent(provider="openai", model="gpt-4o", operation="chat", usage=None)
    assert event.occurred_at.tzinfo is timezone.utc
    assert event.cost.status == "unknown"
    assert event.total_cost is None
    assert len(event.id) == 36
    assert (
        event.id != UsageEvent(provider="openai", model="gpt-4o", operation="chat", usage=None).id
    )


def test_no_field_can_hold_content() -> None:
    names = {f.name for f in dataclasses.fields(UsageEvent)} | {
        f.name for f in dataclasses.fields(TokenUsage)
    }
    forbidden = {
        "prompt",
        "completion",
        "messages",
        "content",
        "text",
        "input",
        "output",
        "body",
        "headers",
        "request",
        "response",
    }
    assert not names & forbidden


def test_inclusive_totals_from_disjoint_components() -> None:
    usage = TokenUsage(
        tokens={
            "input": 100,
            "cache_read": 1800,
            "cache_write_5m": 148,
            "cache_write_1h": 100,
            "audio_input": 7,
            "output": 50,
            "audio_output": 3,
        },
        services={"web_search": Decimal(2)},
        reasoning_tokens=20,
    )
    assert usage.input_tokens == 100 + 1800 + 148 + 100 + 7
    assert usage.output_tokens == 53
    assert usage.cache_read_tokens == 1800
    assert usage.cache_write_tokens == 248
