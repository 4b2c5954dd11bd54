"""The pricing stage against the bundled catalog: every recorded payload to the exact decimal, and the classic mistakes.

Expected costs are computed here from list prices written in this file (USD per
1M tokens; web search per 1k requests), never read back from the catalog.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from llm_cost_tracker._events import Cost, TokenUsage, UsageEvent
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.pricing import PriceStage, bundled_catalog, price_event

PAYLOADS = Path(__file__).parent.parent / "llm_cost_tracker" / "cli" / "_standin" / "payloads"
M = Decimal(1_000_000)
K = Decimal(1_000)
# A Tuesday at 02:00 UTC: DeepSeek peak hours (01:00-04:00 UTC on weekdays).
PEAK = datetime(2026, 11, 17, 2, 0, tzinfo=timezone.utc)
SATURDAY = datetime(2026, 11, 21, 2, 0, tzinfo=timezone.utc)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def per_m(*pairs: tuple[int, str]) -> Decimal:
    """Sum of tokens x USD-per-1M rate."""
    return sum((Decimal(n) * Decimal(rate) for n, rate in pairs), Decimal(0)) / M


# payload id -> expected total from list prices (None: usage unknown -> cost unknown)
EXPECTED: dict[str, Decimal | None] = {
    # claude-3-5-sonnet: $3 in, $0.30 cache read, $3.75 5m write, $15 out
    "anthropic_cache_read": per_m((4, "3"), (1163, "0.30"), (202, "15")),
    # claude-sonnet-4-5: $3 in, $0.30 read, $3.75 5m write (1.25x), $6 1h write (2x), $15 out
    "anthropic_cache_write_5m_and_1h_breakdown": per_m(
        (2048, "3"), (1800, "0.30"), (148, "3.75"), (100, "6"), (503, "15")
    ),
    "anthropic_error_429_rate_limit": None,
    # claude-3-opus: $15 in, $75 out
    "anthropic_messages_plain_opus3": per_m((17, "15"), (220, "75")),
    # claude-3-5-haiku: $0.80 in, $4 out
    "anthropic_stream_basic_2025_shape": per_m((11, "0.80"), (6, "4")),
    "anthropic_stream_cache_write": per_m((4, "3"), (1165, "3.75"), (201, "15")),
    # claude-sonnet-4-5 + web search $10 per 1k requests
    "anthropic_web_search_server_tool_use": per_m(
        (105, "3"), (7123, "0.30"), (7345, "3.75"), (6039, "15")
    )
    + Decimal(1) * Decimal(10) / K,
    # Azure gpt-35-turbo = gpt-3.5-turbo(-0125): $0.50 in, $1.50 out
    "azure_openai_chat": per_m((15, "0.50"), (24, "1.50")),
    # DeepSeek-V4.1-Flash at peak: $0.30 miss, $0.006 hit, $1.20 out
    "deepseek_cache_hit_nonstream": per_m((6836, "0.30"), (6208, "0.006"), (132, "1.20")),
    "edge_502_html_body": None,
    "edge_usage_null": None,
    # gemini-2.5-flash: $0.30 in, $2.50 out (thinking included)
    "gemini_generate_thinking_flash": per_m((5, "0.30"), (1935, "2.50")),
    "gemini_stream_no_thinking": per_m((8, "0.30"), (8, "2.50")),
    # Groq llama3-8b-8192: $0.05 in, $0.08 out
    "groq_stream_usage_in_x_groq": per_m((18, "0.05"), (73, "0.08")),
    # gpt-4o-audio-preview-2024-10-01: text $2.50/$10, audio $100/$200
    "openai_chat_audio_in_out": per_m((11, "2.50"), (23, "10"), (17, "100"), (74, "200")),
    # gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out
    "openai_chat_cached_gpt4omini": per_m((125, "0.15"), (1024, "0.075"), (353, "0.60")),
    # gpt-5 priority: $2.50 in, $20 out
    "openai_chat_priority_gpt5": per_m((8, "2.50"), (82, "20")),
    # gpt-5-nano: $0.05 in, $0.40 out (reasoning billed as output)
    "openai_chat_reasoning_gpt5nano": per_m((11, "0.05"), (228, "0.40")),
    # gpt-3.5-turbo-0125: $0.50 in, $1.50 out
    "openai_chat_stream_include_usage": per_m((10, "0.50"), (5, "1.50")),
    "openai_chat_stream_without_usage": None,
    # davinci-002: $2 in, $2 out
    "openai_completions_legacy_davinci": per_m((8, "2"), (16, "2")),
    # text-embedding-ada-002: $0.10 in
    "openai_embeddings": per_m((8, "0.10")),
    # gpt-4.1-nano: $0.10 in, $0.40 out
    "openai_responses_plain": per_m((14, "0.10"), (8, "0.40")),
    "openai_responses_stream_completed_event": per_m((18, "0.10"), (79, "0.40")),
    # OpenRouter reports its cost; it equals gpt-4o-mini's list price
    "openrouter_usage_with_cost": Decimal("0.00002415"),
}

_BUCKETS = {
    "input_tokens": "input",
    "cache_read_tokens": "cache_read",
    "cache_write_5m_tokens": "cache_write_5m",
    "cache_write_1h_tokens": "cache_write_1h",
    "output_tokens": "output",
    "audio_input_tokens": "audio_input",
    "audio_output_tokens": "audio_output",
}
# What the instrumentation produces from a provider's service_tier (docs/pricing.md).
_MODES = {None: "standard", "default": "standard", "standard": "standard", "priority": "priority"}


def load_payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


def payload_event(data: dict[str, Any], occurred_at: datetime = NOW) -> UsageEvent:
    """The event the instrumentation would record: the `expected` buckets as a TokenUsage."""
    expected = data["expected"]
    usage = None
    if expected["usage_known"]:
        reported = expected.get("reported_cost_usd")
        usage = TokenUsage(
            tokens={c: expected[k] for k, c in _BUCKETS.items() if expected[k]},
            services=(
                {"web_search": Decimal(expected["web_search_requests"])}
                if expected["web_search_requests"]
                else {}
            ),
            reasoning_tokens=expected["reasoning_tokens"],
            reported_cost=None if reported is None else Decimal(str(reported)),
        )
    model = expected["model"] or data["request"]["model"]
    return UsageEvent(
        provider=data["provider"],
        model=model,
        operation=data["api"],
        usage=usage,
        pricing_mode=_MODES[expected["service_tier"]],
        occurred_at=occurred_at,
    )


def test_every_payload_has_an_expected_cost() -> None:
    # Bedrock's payloads get their expected costs with the catalog's Bedrock prices.
    payloads = [p.stem for p in PAYLOADS.glob("*.json") if not p.stem.startswith("bedrock_")]
    assert sorted(payloads) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_payload_prices_exactly(name: str) -> None:
    data = load_payload(name)
    when = PEAK if data["provider"] == "deepseek" else NOW
    priced = PriceStage()(payload_event(data, when))
    expected = EXPECTED[name]
    if expected is None:
        assert priced.cost.total is None
        assert priced.cost.status == "unknown"
        assert priced.cost.line_items == ()
        return
    assert priced.cost.status == "priced"
    assert priced.cost.total == expected
    # Line items add up to the total, one per non-zero component.
    assert sum((li.cost or Decimal(0)) for li in priced.cost.line_items) == expected
    usage = priced.usage
    assert usage is not None
    if usage.reported_cost is None:
        components = {li.component for li in priced.cost.line_items}
        assert components == {c for c, n in usage.tokens.items() if n} | set(usage.services)
        for li in priced.cost.line_items:
            assert li.cost == li.quantity * li.unit_price  # type: ignore[operator]
    # The snapshot is small and JSON-able.
    text = json.dumps(dict(priced.cost.snapshot))
    assert len(text) < 600


def test_deepseek_off_peak_is_half_the_peak_rate() -> None:
    data = load_payload("deepseek_cache_hit_nonstream")
    priced = price_event(payload_event(data, SATURDAY))
    assert priced.cost.total == per_m((6836, "0.15"), (6208, "0.003"), (132, "0.60"))
    assert "period" not in priced.cost.snapshot
    peak = price_event(payload_event(data, PEAK))
    assert peak.cost.snapshot["period"] == "peak"


def test_openrouter_reported_cost_is_its_own_line_and_matches_list_price() -> None:
    priced = price_event(payload_event(load_payload("openrouter_usage_with_cost")))
    (line,) = priced.cost.line_items
    assert line.component == "reported_cost"
    assert line.cost == Decimal("0.00002415")
    list_price = per_m((29, "0.15"), (33, "0.60"))
    assert list_price == Decimal("0.00002415")
    assert Decimal(priced.cost.snapshot["list_price_total"]) == list_price
    assert priced.cost.snapshot["source"] == "provider_reported"
    assert priced.cost.snapshot["entry"] == "openai/gpt-4o-mini"


def test_openrouter_route_without_reported_cost_uses_the_vendor_list_price() -> None:
    event = UsageEvent(
        provider="openrouter",
        model="openai/gpt-4o-mini",
        operation="chat",
        usage=TokenUsage(tokens={"input": 29, "output": 33}),
    )
    assert price_event(event).cost.total == per_m((29, "0.15"), (33, "0.60"))


# -- the mistakes users report against other trackers ------------------------


def _event(provider: str, model: str, mode: str = "standard", **tokens: int) -> UsageEvent:
    return UsageEvent(
        provider=provider,
        model=model,
        operation="chat",
        usage=TokenUsage(tokens=tokens),
        pricing_mode=mode,
        occurred_at=NOW,
    )


def _unit(event: UsageEvent, component: str) -> Decimal | None:
    for li in event.cost.line_items:
        if li.component == component:
            return li.unit_price
    raise AssertionError(f"no {component} line")


def test_cache_writes_are_not_also_counted_as_input() -> None:
    priced = price_event(
        _event("anthropic", "claude-3-5-sonnet-20240620", input=4, cache_write_5m=1165, output=201)
    )
    quantities = {li.component: li.quantity for li in priced.cost.line_items}
    assert quantities == {"input": 4, "cache_write_5m": 1165, "output": 201}
    assert priced.cost.total == per_m((4, "3"), (1165, "3.75"), (201, "15"))
    assert priced.cost.total != per_m((1169, "3"), (1165, "3.75"), (201, "15"))


def test_one_hour_cache_writes_use_the_one_hour_rate() -> None:
    priced = price_event(
        _event("anthropic", "claude-sonnet-4-5", cache_write_5m=100, cache_write_1h=100)
    )
    assert _unit(priced, "cache_write_1h") == Decimal("6") / M  # 2x input
    assert _unit(priced, "cache_write_5m") == Decimal("3.75") / M  # 1.25x input


def test_cache_reads_are_not_charged_at_the_input_rate() -> None:
    for provider, model, read, full in [
        ("openai", "gpt-4o-mini", "0.075", "0.15"),
        ("anthropic", "claude-haiku-4-5", "0.10", "1"),
        ("openai", "gpt-5", "0.125", "1.25"),
    ]:
        priced = price_event(_event(provider, model, input=1000, cache_read=1000))
        assert _unit(priced, "cache_read") == Decimal(read) / M
        assert _unit(priced, "input") == Decimal(full) / M


def test_flex_and_priority_are_not_priced_at_standard() -> None:
    flex = price_event(_event("openai", "gpt-5", "flex", input=1000, output=1000))
    priority = price_event(_event("openai", "gpt-5", "priority", input=1000, output=1000))
    standard = price_event(_event("openai", "gpt-5", "standard", input=1000, output=1000))
    assert flex.cost.total == per_m((1000, "0.625"), (1000, "5"))
    assert priority.cost.total == per_m((1000, "2.50"), (1000, "20"))
    assert standard.cost.total == per_m((1000, "1.25"), (1000, "10"))
    assert flex.cost.snapshot["mode"] == "flex"


def test_a_mode_without_rates_is_unknown_not_standard() -> None:
    priced = price_event(_event("openai", "gpt-5-nano", "priority", input=1000, output=10))
    assert priced.cost.status == "unknown"
    assert priced.cost.total is None
    assert "priority" in priced.cost.snapshot["reason"]


def test_dated_snapshots_keep_their_base_model_tier_prices() -> None:
    # Long-context tier of the base entry applies to the dated id.
    long = price_event(
        _event("anthropic", "claude-sonnet-4-5-20250929", input=250_000, output=1000)
    )
    assert long.cost.total == per_m((250_000, "6"), (1000, "22.50"))
    assert long.cost.snapshot["tier"] == "input_tokens>200000"
    # Mode tiers of the base entry apply to the dated id.
    priority = price_event(_event("openai", "gpt-5-2025-08-07", "priority", input=8, output=82))
    assert priority.cost.total == per_m((8, "2.50"), (82, "20"))
    # A dated snapshot with its own list price keeps it.
    audio = price_event(_event("openai", "gpt-4o-audio-preview-2024-10-01", audio_input=1000))
    assert audio.cost.total == per_m((1000, "100"))
    newer = price_event(_event("openai", "gpt-4o-audio-preview-2024-12-17", audio_input=1000))
    assert newer.cost.total == per_m((1000, "40"))


def test_unknown_model_is_unknown_not_zero(caplog: pytest.LogCaptureFixture) -> None:
    stage = PriceStage()
    with caplog.at_level(logging.WARNING, logger="llm_cost_tracker.pricing"):
        for _ in range(3):
            priced = stage(_event("openai", "gpt-9-hyper", input=100, output=10))
    assert priced.cost.total is None
    assert priced.cost.status == "unknown"
    assert [li.unit_price for li in priced.cost.line_items] == [None, None]
    assert STATS.get("unpriced.openai.gpt-9-hyper.standard") == 3
    assert len([r for r in caplog.records if "gpt-9-hyper" in r.getMessage()]) == 1


def test_never_matches_across_families() -> None:
    mini = price_event(_event("openai", "gpt-4o-mini-2024-07-18", input=1000))
    assert mini.cost.snapshot["entry"] == "openai/gpt-4o-mini"
    for model in ("gpt-4o-mini-transcribe", "gpt-4o-2", "claude-sonnet-4-5-turbo", "gpt-5-nano-x"):
        assert price_event(_event("openai", model, input=10)).cost.status == "unknown", model
    # A reseller never borrows another provider's price unless it resells it.
    assert price_event(_event("together", "gpt-4o-mini", input=10)).cost.status == "unknown"


# -- matching -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "entry"),
    [
        ("openai", "gpt-4o-2024-08-06", "openai/gpt-4o"),
        ("openai", "gpt-4o-2024-05-13", "openai/gpt-4o-2024-05-13"),
        ("anthropic", "claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5"),
        ("anthropic", "claude-3-5-haiku-latest", "anthropic/claude-3-5-haiku"),
        ("openrouter", "openai/gpt-4o-mini", "openai/gpt-4o-mini"),
        ("openrouter", "anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4-5"),
        ("azure_openai", "gpt-35-turbo", "openai/gpt-3.5-turbo"),
        ("azure_openai", "gpt-4o-mini", "openai/gpt-4o-mini"),
        ("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic/claude-sonnet-4-5"),
        ("bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic/claude-3-5-haiku"),
        ("vertex", "claude-sonnet-4-5@20250929", "anthropic/claude-sonnet-4-5"),
        ("google", "models/gemini-2.5-flash", "google/gemini-2.5-flash"),
        ("groq", "openai/gpt-oss-120b", "groq/openai/gpt-oss-120b"),
        ("deepseek", "deepseek-chat", "deepseek/deepseek-v4-flash"),
    ],
)
def test_model_matching(provider: str, model: str, entry: str) -> None:
    priced = price_event(_event(provider, model, input=1000))
    assert priced.cost.snapshot["entry"] == entry


def test_azure_deployment_names_map_to_models() -> None:
    stage = PriceStage(azure_deployments={"prod-chat": "gpt-4o-mini"})
    priced = stage(_event("azure_openai", "prod-chat", input=1000))
    assert priced.cost.total == per_m((1000, "0.15"))


# -- rules ----------------------------------------------------------------------


def test_effective_dates_price_at_the_rate_valid_then() -> None:
    event = _event("openai", "o3", input=1000, output=1000)
    before = price_event(replace(event, occurred_at=datetime(2025, 5, 1, tzinfo=timezone.utc)))
    after = price_event(replace(event, occurred_at=datetime(2025, 7, 1, tzinfo=timezone.utc)))
    assert before.cost.total == per_m((1000, "10"), (1000, "40"))
    assert after.cost.total == per_m((1000, "2"), (1000, "8"))
    assert after.cost.snapshot["effective_from"].startswith("2025-06-10")


def test_a_call_before_any_recorded_price_is_unknown() -> None:
    data = load_payload("deepseek_cache_hit_nonstream")
    early = datetime(2026, 7, 4, tzinfo=timezone.utc)  # before V4.1-Flash had a price
    assert price_event(payload_event(data, early)).cost.status == "unknown"


def test_long_context_tier_applies_to_the_whole_call() -> None:
    short = price_event(_event("google", "gemini-2.5-pro", input=200_000, output=1000))
    long = price_event(
        _event("google", "gemini-2.5-pro", input=150_000, cache_read=50_001, output=1000)
    )
    assert short.cost.total == per_m((200_000, "1.25"), (1000, "10"))
    assert long.cost.total == per_m((150_000, "2.50"), (50_001, "0.25"), (1000, "15"))


def test_partial_when_some_components_have_no_rate() -> None:
    priced = price_event(_event("openai", "gpt-4o-mini", input=1000, audio_output=10))
    assert priced.cost.status == "partial"
    assert priced.cost.total == per_m((1000, "0.15"))
    assert priced.cost.snapshot["unpriced"] == ["audio_output"]


def test_batch_halves_tokens_but_not_tool_fees() -> None:
    event = UsageEvent(
        provider="anthropic",
        model="claude-sonnet-4-5",
        operation="messages",
        usage=TokenUsage(
            tokens={"input": 1000, "output": 100}, services={"web_search": Decimal(2)}
        ),
        pricing_mode="batch",
        occurred_at=NOW,
    )
    assert (
        price_event(event).cost.total == per_m((1000, "1.50"), (100, "7.50")) + 2 * Decimal(10) / K
    )


def test_modifiers_us_only_and_fast() -> None:
    us = price_event(
        _event("anthropic", "claude-opus-4-6", "standard+us_only", input=1000, output=100)
    )
    assert us.cost.total == per_m((1000, "5.5"), (100, "27.5"))
    fast = price_event(
        _event("anthropic", "claude-opus-4-6", "standard+fast", input=1000, output=100)
    )
    assert fast.cost.total == per_m((1000, "30"), (100, "150"))
    # A model that does not charge the modifier has no rate for it: unknown, never the plain rate.
    assert (
        price_event(
            _event("anthropic", "claude-sonnet-4-5", "standard+us_only", input=1)
        ).cost.status
        == "unknown"
    )


def test_openai_service_tier_spellings_are_standard() -> None:
    for tier in ("default", "auto", "standard"):
        priced = price_event(_event("openai", "gpt-4o-mini", tier, input=1000))
        assert priced.cost.total == per_m((1000, "0.15"))


def test_snapshot_holds_only_what_was_applied() -> None:
    priced = price_event(_event("openai", "gpt-5", input=100, output=10))
    snapshot = priced.cost.snapshot
    assert set(snapshot["rates"]) == {"input", "output"}
    assert snapshot["rates"]["input"] == {"rate": "1.25", "unit": "token", "per": 1_000_000}
    assert snapshot["entry"] == "openai/gpt-5"
    assert snapshot["source"] == "bundled"
    assert snapshot["catalog_version"] == bundled_catalog().version
    assert snapshot["mode"] == "standard"
    assert snapshot["tier"] == "base"
    assert len(json.dumps(dict(snapshot))) < 400


def test_an_already_priced_event_is_left_untouched() -> None:
    frozen = Cost(total=Decimal("1.23"), status="priced", snapshot={"entry": "x"})
    event = replace(_event("openai", "gpt-5", input=100), cost=frozen)
    assert PriceStage()(event) is event


def test_unknown_usage_is_unknown_cost() -> None:
    event = UsageEvent(provider="openai", model="gpt-5", operation="chat", usage=None)
    priced = PriceStage()(event)
    assert priced.cost.status == "unknown"
    assert priced.cost.total is None
    assert priced.cost.snapshot["reason"] == "usage unknown"


def test_estimate_for_budget_preflight() -> None:
    stage = PriceStage()
    usage = TokenUsage(tokens={"input": 1000, "output": 500})
    assert stage.estimate("openai", "gpt-5", usage) == per_m((1000, "1.25"), (500, "10"))
    assert stage.estimate("openai", "gpt-5", usage, "priority") == per_m((1000, "2.5"), (500, "20"))
    assert stage.estimate("openai", "no-such-model", usage) is None


def test_bundled_catalog_records_version_dates_and_sources() -> None:
    catalog = bundled_catalog()
    assert catalog.info.updated_at is not None
    assert catalog.version
    assert all(
        e.source_url and e.source_url.startswith("https://") for e in catalog.entries.values()
    )
    providers = {e.provider for e in catalog.entries.values()}
    assert {"openai", "anthropic", "google", "deepseek", "mistral", "xai", "groq"} <= providers
    assert catalog is bundled_catalog()  # parsed once


def test_odd_usage_never_raises_and_is_never_priced() -> None:
    stage = PriceStage()
    negative = stage(_event("openai", "gpt-4o-mini", input=-5, output=10))
    assert negative.cost.status == "partial"
    assert negative.cost.total == per_m((10, "0.60"))
    unregistered = stage(_event("openai", "gpt-4o-mini", hologram_input=10, input=10))
    assert unregistered.cost.status == "partial"
    broken = UsageEvent(
        provider="openai",
        model="gpt-4o-mini",
        operation="chat",
        usage=TokenUsage(tokens={"input": "many"}),  # type: ignore[dict-item]
    )
    priced = stage(broken)
    assert priced.cost.status == "unknown"
    assert priced.cost.total is None
    assert STATS.get("errors.pricing") == 1


def test_the_priced_event_equals_dataclasses_replace() -> None:
    event = replace(
        _event("openai", "gpt-5", input=100, output=10),
        tags={"feature": "chat"},
        latency_ms=12.5,
        trace_id="a" * 32,
    )
    priced = PriceStage()(event)
    assert priced == replace(event, cost=priced.cost)
    assert priced is not event
    assert event.cost.status == "unknown"  # the original is not modified


def test_claude_5_dated_cache_cut_and_prompt_length_tier() -> None:
    event = _event("anthropic", "claude-sonnet-5-5", cache_read=1_000_000)
    before = price_event(replace(event, occurred_at=datetime(2026, 10, 6, tzinfo=timezone.utc)))
    after = price_event(replace(event, occurred_at=datetime(2026, 10, 8, tzinfo=timezone.utc)))
    assert before.cost.total == Decimal("0.20")
    assert after.cost.total == Decimal("0.10")
    # Haiku 5.5: prompts over 100k tokens (cache reads and writes included) pay the higher band.
    small = price_event(
        _event("anthropic", "claude-haiku-5-5", input=50_000, cache_read=50_000, output=1000)
    )
    large = price_event(
        _event("anthropic", "claude-haiku-5-5", input=50_000, cache_read=50_001, output=1000)
    )
    assert small.cost.total == per_m((50_000, "0.10"), (50_000, "0.01"), (1000, "0.50"))
    assert large.cost.total == per_m((50_000, "0.50"), (50_001, "0.05"), (1000, "2.50"))


def test_openai_cache_writes_long_context_and_fast_mode() -> None:
    # gpt-6.2-sol: $2 in, $0.10 cached, $2.50 30-minute write, $5 12-hour write, $10 out.
    short = price_event(
        _event(
            "openai",
            "gpt-6.2-sol",
            input=1000,
            cache_read=2000,
            cache_write_5m=300,
            cache_write_1h=400,
            output=500,
        )
    )
    assert short.cost.total == per_m(
        (1000, "2"), (2000, "0.10"), (300, "2.50"), (400, "5"), (500, "10")
    )
    # Above 272K input tokens: input and cache rates double, output 1.5x, for the whole call.
    long = price_event(_event("openai", "gpt-6.2-sol", input=272_001, output=100))
    assert long.cost.total == per_m((272_001, "4"), (100, "15"))
    fast = price_event(_event("openai", "gpt-6.2-sol", "standard+fast", input=1000, output=100))
    assert fast.cost.total == per_m((1000, "4"), (100, "20"))


def test_announced_future_prices_apply_from_their_date() -> None:
    # Gemini 3.6 Flash: $0.75/$3.75 introductory through 2026, $1.50/$7.50 from 2027-01-01.
    event = _event("google", "gemini-3.6-flash", input=1000, output=1000)
    assert price_event(event).cost.total == per_m((1000, "0.75"), (1000, "3.75"))
    later = replace(event, occurred_at=datetime(2027, 1, 1, tzinfo=timezone.utc))
    assert price_event(later).cost.total == per_m((1000, "1.50"), (1000, "7.50"))


def test_a_naive_timestamp_is_taken_as_utc() -> None:
    event = replace(
        _event("openai", "o3", input=1000),
        occurred_at=datetime(2025, 5, 1),
    )
    assert price_event(event).cost.total == per_m((1000, "10"))
