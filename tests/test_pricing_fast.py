"""The stage's fast path (cached line plans) gives exactly what the general pricing path gives.

Every bundled entry is priced through ``PriceStage`` and through ``price_usage``
(which never takes the fast path) for many component sets, counts, modes and
times; the two Costs must be identical down to each Decimal's digits and the
snapshot's JSON text.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from llm_cost_tracker._events import Cost, LineItem, TokenUsage, UsageEvent
from llm_cost_tracker.pricing import PriceStage, bundled_catalog, parse_catalog, with_cost
from llm_cost_tracker.pricing._plans import quick_cost
from llm_cost_tracker.pricing._price import price_usage
from llm_cost_tracker.pricing._records import make_cost, make_line, make_priced_cost

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
MODES = ("standard", "batch", "flex", "priority", "priority+us_only", "default", "nonsense")


def _exact(cost: Cost) -> Any:
    """Everything about a Cost, Decimals by their digits (Decimal('1.0') == Decimal('1.00'))."""
    return (
        type(cost),
        str(cost.total),
        cost.status,
        cost.currency,
        tuple(
            (type(li), li.component, li.unit, str(li.quantity), str(li.unit_price), str(li.cost))
            for li in cost.line_items
        ),
        type(cost.snapshot),
        json.dumps(cost.snapshot),
    )


def _general(event: UsageEvent) -> Cost:
    when = event.occurred_at
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    catalog = bundled_catalog()
    return price_usage(
        catalog, event.provider, event.model, event.usage, event.pricing_mode, when
    ).cost


def _token_sets(rates: list[str]) -> list[dict[str, int]]:
    """Component sets with counts: small, zero, negative, and around the long-context tiers."""
    first = rates[:1] or ["input"]
    return [
        {c: 100 + i for i, c in enumerate(rates)},
        dict.fromkeys(first, 7),
        {"input": 1500, "output": 0},  # an embedding, as the instrumentation records it
        {"output": 3, "input": 5},  # another order: another line order
        dict.fromkeys(rates, 1) | {"image_output": 9},  # a component the entry may not price
        dict.fromkeys(rates, 0),
        {"input": -4, "output": 10},
        {"input": 199_000, "cache_read": 999, "output": 1},  # sum 200,000: at a common floor
        {"input": 199_000, "cache_read": 1001, "output": 1},  # sum over it, input under it
        {"input": 200_001, "output": 5},  # in the tier
    ]


def _times(versions: list[datetime | None]) -> list[datetime]:
    times = [NOW, NOW.replace(tzinfo=None)]
    for start in versions:
        if start is not None:
            times += [start - timedelta(microseconds=1), start, start + timedelta(hours=3)]
    return times


def test_fast_path_equals_the_general_path_for_every_bundled_entry() -> None:
    catalog = bundled_catalog()
    stage = PriceStage()
    compared = fast = 0
    for entry in catalog.entries.values():
        provider = entry.provider or "openai"
        rates = list(dict.fromkeys(c for v in entry.versions for c in v.rates))
        tokens_only = [c for c in rates if c not in ("web_search", "code_execution")][:5]
        times = _times([v.effective_from for v in entry.versions])
        for tokens, mode, when in itertools.product(_token_sets(tokens_only), MODES, times):
            event = UsageEvent(
                provider=provider,
                model=entry.model,
                operation="chat",
                usage=TokenUsage(tokens=tokens),
                pricing_mode=mode,
                occurred_at=when,
            )
            expected = _general(event)
            quick = quick_cost(catalog, provider, entry.model, mode, tokens, when)
            if quick is not None:
                fast += 1
                assert _exact(quick) == _exact(expected), (entry.key, tokens, mode, when)
            got = stage(event)
            assert _exact(got.cost) == _exact(expected), (entry.key, tokens, mode, when)
            assert got == replace(event, cost=expected)
            compared += 1
    assert compared > 10_000
    # Many of these cases are ones the fast path leaves to the general path on purpose
    # (tiers, periods, negative counts, unpriced components, naive times on dated entries).
    assert fast > 4000


def test_the_benchmark_event_takes_the_fast_path() -> None:
    tokens = {"input": 2048, "cache_read": 1800, "cache_write_5m": 148, "output": 503}
    cost = quick_cost(
        bundled_catalog(), "anthropic", "claude-sonnet-4-5-20250929", "standard", tokens, NOW
    )
    assert cost is not None
    m = Decimal(1_000_000)
    assert (
        cost.total
        == (2048 * Decimal(3) + 1800 * Decimal("0.3") + 148 * Decimal("3.75") + 503 * Decimal(15))
        / m
    )
    assert [li.component for li in cost.line_items] == list(tokens)
    assert cost.snapshot["entry"] == "anthropic/claude-sonnet-4-5"
    assert list(cost.snapshot["rates"]) == list(tokens)


def test_long_context_calls_take_the_fast_path_at_the_tier_rates() -> None:
    catalog = bundled_catalog()
    model = "claude-sonnet-4-5-20250929"
    # 210,000 tokens, 150,000 + 60,000 of them input: the >200k tier, for the whole call.
    tiered = {"input": 150_000, "cache_read": 60_000, "output": 900}
    # 200,900 tokens but 200,000 input: not over the threshold.
    base = {"input": 140_000, "cache_read": 60_000, "output": 900}
    for tokens, tier, input_rate in (
        (tiered, "input_tokens>200000", "6"),
        (base, "base", "3"),
    ):
        cost = quick_cost(catalog, "anthropic", model, "standard", tokens, NOW)
        assert cost is not None
        assert cost.snapshot["tier"] == tier
        assert cost.snapshot["rates"]["input"]["rate"] == input_rate
        usage = TokenUsage(tokens=tokens)
        assert _exact(cost) == _exact(
            price_usage(catalog, "anthropic", model, usage, "standard", NOW).cost
        )


def test_each_event_gets_its_own_snapshot_mapping() -> None:
    stage = PriceStage()
    event = UsageEvent(
        provider="openai",
        model="gpt-4o-mini",
        operation="chat",
        usage=TokenUsage(tokens={"input": 10, "output": 2}),
        occurred_at=NOW,
    )
    first, second = stage(event), stage(event)
    assert first.cost == second.cost
    assert first.cost.snapshot is not second.cost.snapshot
    assert isinstance(first.cost.snapshot, dict)


def test_a_price_version_taking_effect_while_running_is_used() -> None:
    catalog = parse_catalog(
        {
            "version": "t",
            "models": {
                "openai/m": {
                    "prices": [
                        {"rates": {"input": 1, "output": 2}},
                        {"from": "2026-06-01", "rates": {"input": 10, "output": 20}},
                    ]
                }
            },
        },
        origin="test",
        source="override",
    )
    stage = PriceStage(catalog=catalog)
    usage = TokenUsage(tokens={"input": 1_000_000, "output": 1_000_000})
    event = UsageEvent(provider="openai", model="m", operation="chat", usage=usage)
    before = stage(replace(event, occurred_at=datetime(2026, 5, 31, 23, 59, tzinfo=timezone.utc)))
    after = stage(replace(event, occurred_at=datetime(2026, 6, 1, tzinfo=timezone.utc)))
    again = stage(replace(event, occurred_at=datetime(2026, 5, 1, tzinfo=timezone.utc)))
    assert (before.cost.total, after.cost.total, again.cost.total) == (3, 30, 3)
    assert after.cost.snapshot["effective_from"] == "2026-06-01T00:00:00+00:00"
    assert "effective_from" not in again.cost.snapshot


def test_generated_records_are_the_real_classes() -> None:
    q, p = Decimal(3), Decimal("0.1")
    snapshot = {"entry": "x"}
    priced = make_priced_cost((("input", "token", p), ("output", "token", p)), (3, 3), snapshot)
    lines = priced.line_items
    expected = LineItem("input", "token", q, p, q * p)
    assert type(priced) is Cost
    assert priced == Cost(total=q * p + q * p, status="priced", line_items=lines, snapshot=snapshot)
    assert str(priced.total) == str(Decimal(0) + q * p + q * p)
    assert priced.snapshot is snapshot
    assert type(lines[0]) is LineItem
    assert lines[0] == expected
    assert hash(lines[0]) == hash(expected)
    assert make_line("input", "token", q, p, q * p) == expected
    assert lines[1].component == "output"
    with pytest.raises(dataclasses.FrozenInstanceError):
        lines[0].cost = Decimal(0)  # type: ignore[misc]
    cost = make_cost(q * p, "priced", lines, {"entry": "x"})
    assert type(cost) is Cost
    assert cost == Cost(total=q * p, status="priced", line_items=lines, snapshot={"entry": "x"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cost.total = None  # type: ignore[misc]
    event = UsageEvent(
        provider="openai",
        model="gpt-4o",
        operation="chat",
        usage=TokenUsage(tokens={"input": 3}),
        tags={"team": "a"},
        latency_ms=1.5,
        request_model="gpt-4o",
    )
    copied = with_cost(event, cost)
    assert type(copied) is UsageEvent
    assert copied == replace(event, cost=cost)
    assert copied.cost is cost
    assert event.cost.status == "unknown"
    with pytest.raises(dataclasses.FrozenInstanceError):
        copied.model = "x"  # type: ignore[misc]


def test_the_constructor_fallbacks_build_the_same_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """If a record class ever changes shape, the builders fall back to its constructor."""
    from llm_cost_tracker.pricing import _records

    monkeypatch.setattr(_records, "_draft_class", lambda cls, **_: None)
    line = _records._line_builder()
    priced = _records._priced_cost_builder()
    cost_of = _records._cost_builder()
    copy = _records._event_copier()
    for built in (line, priced, cost_of, copy):  # the plain functions, not generated code
        assert built.__code__.co_filename == _records.__file__
    specs = (("input", "token", Decimal("0.000003")), ("output", "token", Decimal("0.000015")))
    fallback = priced(specs, (2048, 503), {"entry": "x"})
    cost = make_priced_cost(specs, (2048, 503), {"entry": "x"})
    assert _exact(fallback) == _exact(cost)
    assert line("input", "token", Decimal(1), None, None) == make_line(
        "input", "token", Decimal(1), None, None
    )
    assert cost_of(cost.total, "priced", cost.line_items, {"entry": "x"}) == cost
    event = UsageEvent(provider="openai", model="m", operation="chat", usage=None)
    assert copy(event, cost) == with_cost(event, cost)


def test_drafts_only_for_record_shapes_they_can_fill() -> None:
    from llm_cost_tracker.pricing._records import _draft_class

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError(self.value)

    @dataclasses.dataclass(frozen=True)
    class Unslotted:
        value: int

    assert _draft_class(Checked) is None  # new values must pass its checks
    draft = _draft_class(Checked, copies=True)  # copying a checked instance is fine
    assert draft is not None
    assert _draft_class(Unslotted) is None
    for cls in (LineItem, Cost):
        assert _draft_class(cls) is not None
    assert _draft_class(UsageEvent, copies=True) is not None
