"""The pricing path's memos (matched entries, resolved rates, shared rate tables) never change a cost.

Every bundled entry is priced through ``PriceStage``, whose catalog keeps what
it resolved from one call to the next, and through ``price_usage`` on a cold
copy of the catalog (nothing memoized yet), for many component sets, counts,
modes, tiers, periods and times; the two Costs must be identical down to each
Decimal's digits and the snapshot's JSON text.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from llm_cost_tracker._events import Cost, TokenUsage, UsageEvent
from llm_cost_tracker.pricing import (
    Catalog,
    PriceStage,
    bundled_catalog,
    parse_catalog,
    substitute_catalog,
    with_cost,
)
from llm_cost_tracker.pricing._price import price_usage

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)  # a Friday, off-peak
PEAK = NOW.replace(hour=2)  # DeepSeek's weekday peak hours (01:00-04:00 UTC)
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


def _cold(catalog: Catalog) -> Catalog:
    """The same entries in a new catalog: nothing matched or resolved yet."""
    return Catalog(entries=catalog.entries, info=catalog.info)


def _uncached(event: UsageEvent) -> Cost:
    return price_usage(
        _cold(bundled_catalog()),
        event.provider,
        event.model,
        event.usage,
        event.pricing_mode,
        event.occurred_at,
    )


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
        {"input": 100_001, "output": 5},  # in a lower tier (Claude Haiku 5.5: above 100k)
    ]


def _times(versions: list[datetime | None]) -> list[datetime]:
    times = [NOW, NOW.replace(tzinfo=None), PEAK]
    for start in versions:
        if start is not None:
            times += [start - timedelta(microseconds=1), start, start + timedelta(hours=3)]
    return times


def test_the_memoized_path_equals_the_uncached_one_for_every_bundled_entry() -> None:
    catalog = bundled_catalog()
    stage = PriceStage()
    compared = tiered = periods = 0
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
            expected = _uncached(event)
            got = stage(event)
            assert _exact(got.cost) == _exact(expected), (entry.key, tokens, mode, when)
            assert got == replace(event, cost=expected)
            compared += 1
            tiered += expected.snapshot.get("tier", "base") != "base"
            periods += "period" in expected.snapshot
    assert compared > 10_000
    assert tiered > 400  # long-context tiers
    assert periods > 400  # DeepSeek's peak hours


def test_services_and_reported_costs_take_the_same_path() -> None:
    stage = PriceStage()
    usages = [
        TokenUsage(tokens={"input": 900, "output": 30}, services={"web_search": Decimal(2)}),
        TokenUsage(tokens={"input": 250_000}, services={"web_search": Decimal("1.5")}),
        TokenUsage(tokens={"input": 29, "output": 33}, reported_cost=Decimal("0.0000241")),
        TokenUsage(tokens={"input": 5}, services={"reported_cost": Decimal("0.01")}),
    ]
    for usage, model in itertools.product(usages, ("claude-sonnet-4-5", "gpt-4o-mini", "nope")):
        provider = "openai" if model.startswith("gpt") else "anthropic"
        event = UsageEvent(provider, model, "chat", usage, occurred_at=NOW)
        for _ in range(2):  # cold, then memoized
            assert _exact(stage(event).cost) == _exact(_uncached(event)), (usage, model)


def test_the_benchmark_event_is_priced_exactly() -> None:
    tokens = {"input": 2048, "cache_read": 1800, "cache_write_5m": 148, "output": 503}
    usage = TokenUsage(tokens=tokens)
    catalog = bundled_catalog()
    for _ in range(2):  # cold, then memoized
        cost = price_usage(
            catalog, "anthropic", "claude-sonnet-4-5-20250929", usage, "standard", NOW
        )
        m = Decimal(1_000_000)
        assert (
            cost.total
            == (
                2048 * Decimal(3)
                + 1800 * Decimal("0.3")
                + 148 * Decimal("3.75")
                + 503 * Decimal(15)
            )
            / m
        )
        assert [li.component for li in cost.line_items] == list(tokens)
        assert cost.snapshot["entry"] == "anthropic/claude-sonnet-4-5"
        assert list(cost.snapshot["rates"]) == list(tokens)


def test_long_context_calls_are_priced_at_the_tier_rates_for_the_whole_call() -> None:
    catalog = bundled_catalog()
    model = "claude-sonnet-4-5-20250929"
    # 210,000 tokens, 150,000 + 60,000 of them input: the >200k tier, for the whole call.
    tiered = {"input": 150_000, "cache_read": 60_000, "output": 900}
    # 200,900 tokens but 200,000 input: not over the threshold.
    base = {"input": 140_000, "cache_read": 60_000, "output": 900}
    for tokens, tier, input_rate in (
        (tiered, "input_tokens>200000", "6"),
        (base, "base", "3"),
        (tiered, "input_tokens>200000", "6"),
    ):
        usage = TokenUsage(tokens=tokens)
        cost = price_usage(catalog, "anthropic", model, usage, "standard", NOW)
        assert cost.snapshot["tier"] == tier
        assert cost.snapshot["rates"]["input"]["rate"] == input_rate
        cold = price_usage(_cold(catalog), "anthropic", model, usage, "standard", NOW)
        assert _exact(cost) == _exact(cold)


def test_each_event_gets_its_own_snapshot_sharing_one_rates_table() -> None:
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
    # Exporters serialize a snapshot's parts once per batch when events share them.
    assert first.cost.snapshot["rates"] is second.cost.snapshot["rates"]
    other = stage(replace(event, usage=TokenUsage(tokens={"input": 10})))
    assert list(other.cost.snapshot["rates"]) == ["input"]


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


def test_memos_belong_to_their_catalog() -> None:
    # The same model in two catalogs (a substituted one, then the bundled one again)
    # is priced with each catalog's own rates, however often it was priced before.
    cheap = parse_catalog(
        {"version": "cheap", "models": {"openai/gpt-4o-mini": {"input": 1}}},
        origin="test",
        source="override",
    )
    stage = PriceStage()
    event = UsageEvent(
        "openai", "gpt-4o-mini", "chat", TokenUsage(tokens={"input": 1_000_000}), occurred_at=NOW
    )
    assert stage.cost(event).total == Decimal("0.15")
    with substitute_catalog(cheap):
        assert stage.cost(event).total == Decimal(1)
    assert stage.cost(event).total == Decimal("0.15")


def test_with_cost_copies_every_field() -> None:
    values = {f.name: object() for f in dataclasses.fields(UsageEvent)}
    event = UsageEvent(**values)
    cost = Cost(total=Decimal(1), status="priced")
    copied = with_cost(event, cost)
    assert type(copied) is UsageEvent
    for name, value in values.items():
        assert getattr(copied, name) is (cost if name == "cost" else value), name
    real = UsageEvent(
        provider="openai",
        model="gpt-4o",
        operation="chat",
        usage=TokenUsage(tokens={"input": 3}),
        tags={"team": "a"},
        latency_ms=1.5,
        request_model="gpt-4o",
    )
    assert with_cost(real, cost) == replace(real, cost=cost)
    assert real.cost.status == "unknown"  # the original is not modified
