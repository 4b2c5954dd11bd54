"""Every tier the providers sell, to the exact decimal: Gemini Flex and Priority, Bedrock and Vertex.

Expected costs are computed here, by hand, from the providers' published list
prices written in this file (USD per 1M tokens) and the tier rules they state,
never read back from the catalog:

- Gemini API (ai.google.dev/gemini-api/docs/pricing, .../docs/optimization):
  Flex is billed at the Batch rates, 50% of standard; Priority at 1.8x standard
  (Google's optimization page: "75% to 100% more than standard"); 2.5 Pro's
  long-context rates apply to the whole call above 200k prompt tokens.
- Bedrock (aws.amazon.com/bedrock/pricing): the global cross-Region profile is
  the base price; in-Region and geographic profiles cost 10% more for Claude
  4.5-generation models, the same for the others.
- Vertex AI (cloud.google.com/vertex-ai/generative-ai/pricing): Gemini at the
  Gemini API list; Claude's global endpoint at Anthropic's list, regional 10% more.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from llm_cost_tracker._errors import ConfigurationError
from llm_cost_tracker._events import TokenUsage, UsageEvent
from llm_cost_tracker.pricing import bundled_catalog, price_event
from llm_cost_tracker.pricing._catalog import parse_catalog

M = Decimal(1_000_000)
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)


def per_m(*pairs: tuple[int, str]) -> Decimal:
    """Sum of tokens x USD-per-1M rate."""
    return sum((Decimal(n) * Decimal(rate) for n, rate in pairs), Decimal(0)) / M


def cost(provider: str, model: str, mode: str, **tokens: int) -> Decimal | None:
    event = UsageEvent(
        provider=provider,
        model=model,
        operation="generate_content",
        usage=TokenUsage(tokens=tokens),
        pricing_mode=mode,
        occurred_at=NOW,
    )
    priced = price_event(event)
    assert priced.cost.status == "priced", priced.cost.snapshot
    return priced.cost.total


# -- Gemini API: Flex and Priority ---------------------------------------------------

# gemini-2.5-pro standard list price, prompts <= 200k: $1.25 in, $0.125 cache read, $10 out;
# prompts > 200k: $2.50 in, $0.25 cache read, $15 out.
# Flex = 50%:   <= 200k: $0.625, $0.0625, $5;    > 200k: $1.25, $0.125, $7.50.
# Priority = 1.8x: <= 200k: $2.25, $0.225, $18;  > 200k: $4.50, $0.45, $27.


def test_gemini_25_pro_flex_below_200k() -> None:
    # 150,000 + 20,000 = 170,000 prompt tokens: the base rates.
    total = cost("google", "gemini-2.5-pro", "flex", input=150_000, cache_read=20_000, output=4_000)
    # 0.09375 + 0.00125 + 0.02
    assert total == per_m((150_000, "0.625"), (20_000, "0.0625"), (4_000, "5"))
    assert total == Decimal("0.115")


def test_gemini_25_pro_flex_above_200k() -> None:
    # 230,000 + 20,000 = 250,000 prompt tokens: the whole call at the long-context rates.
    total = cost("google", "gemini-2.5-pro", "flex", input=230_000, cache_read=20_000, output=4_000)
    # 0.2875 + 0.0025 + 0.03
    assert total == Decimal("0.32")


def test_gemini_25_pro_priority_below_200k() -> None:
    total = cost(
        "google", "gemini-2.5-pro", "priority", input=150_000, cache_read=20_000, output=4_000
    )
    # 150,000 x 2.25 = 0.3375; 20,000 x 0.225 = 0.0045; 4,000 x 18 = 0.072
    assert total == Decimal("0.414")


def test_gemini_25_pro_priority_above_200k() -> None:
    total = cost(
        "google", "gemini-2.5-pro", "priority", input=230_000, cache_read=20_000, output=4_000
    )
    # 230,000 x 4.50 = 1.035; 20,000 x 0.45 = 0.009; 4,000 x 27 = 0.108
    assert total == Decimal("1.152")


# gemini-2.5-flash standard list price: $0.30 text/image/video in, $1.00 audio in,
# $0.03 text cache read, $0.10 audio cache read, $2.50 out (thinking included).
# Flex = 50%: $0.15, $0.50 audio, $1.25 out.  Priority = 1.8x: $0.54, $1.80 audio, $4.50 out.


def test_gemini_25_flash_flex_text_and_audio() -> None:
    text = cost("google", "gemini-2.5-flash", "flex", input=10_000, output=2_000)
    assert text == Decimal("0.004")  # 10,000 x 0.15 = 0.0015; 2,000 x 1.25 = 0.0025
    audio = cost("google", "gemini-2.5-flash", "flex", input=1_000, audio_input=9_000, output=2_000)
    # 1,000 x 0.15 = 0.00015; 9,000 x 0.50 = 0.0045; 2,000 x 1.25 = 0.0025
    assert audio == Decimal("0.00715")


def test_gemini_25_flash_priority_text_and_audio() -> None:
    text = cost("google", "gemini-2.5-flash", "priority", input=10_000, output=2_000)
    assert text == Decimal("0.0144")  # 10,000 x 0.54 = 0.0054; 2,000 x 4.50 = 0.009
    audio = cost(
        "google", "gemini-2.5-flash", "priority", input=1_000, audio_input=9_000, output=2_000
    )
    # 1,000 x 0.54 = 0.00054; 9,000 x 1.80 = 0.0162; 2,000 x 4.50 = 0.009
    assert audio == Decimal("0.02574")


def test_gemini_tiers_leave_standard_alone_and_grounding_unscaled() -> None:
    standard = cost("google", "gemini-2.5-flash", "standard", input=10_000, output=2_000)
    assert standard == Decimal("0.008")  # 10,000 x 0.30 + 2,000 x 2.50
    event = UsageEvent(
        provider="google",
        model="gemini-2.5-pro",
        operation="generate_content",
        usage=TokenUsage(tokens={"input": 1_000}, services={"grounding": Decimal(2)}),
        pricing_mode="priority",
        occurred_at=NOW,
    )
    # 1,000 x 2.25 = 0.00225; grounding $35 per 1,000 queries at every tier: 2 x 0.035 = 0.07
    assert price_event(event).cost.total == Decimal("0.07225")


def test_a_gemini_model_without_tier_prices_stays_unknown() -> None:
    event = UsageEvent(
        provider="google",
        model="gemini-2.0-flash",
        operation="generate_content",
        usage=TokenUsage(tokens={"input": 1_000}),
        pricing_mode="priority",
        occurred_at=NOW,
    )
    priced = price_event(event)
    assert priced.cost.status == "unknown"
    assert "priority" in priced.cost.snapshot["reason"]


# -- AWS Bedrock ------------------------------------------------------------------------


def test_bedrock_claude_global_and_regional() -> None:
    # Claude Sonnet 4.5 global profile: $3 in, $0.30 cache read, $15 out.
    model = "anthropic.claude-sonnet-4-5-20250929"
    global_ = cost("aws_bedrock", model, "standard", input=1_000, cache_read=2_000, output=500)
    assert global_ == Decimal("0.0111")  # 0.003 + 0.0006 + 0.0075
    # In-Region / geographic profile: 10% more: $3.30, $0.33, $16.50.
    regional = cost(
        "aws_bedrock", model, "standard+regional", input=1_000, cache_read=2_000, output=500
    )
    assert regional == Decimal("0.01221")  # 0.0033 + 0.00066 + 0.00825


def test_bedrock_claude_batch_is_half_and_older_models_have_no_regional_premium() -> None:
    # Haiku 4.5 batch, regional: $1 x 0.5 x 1.1 = $0.55 in, $5 x 0.5 x 1.1 = $2.75 out.
    batch = cost(
        "aws_bedrock",
        "anthropic.claude-haiku-4-5-20251001",
        "batch+regional",
        input=2_000,
        output=400,
    )
    assert batch == Decimal("0.0022")  # 0.0011 + 0.0011
    # Claude 3.5 Haiku: $0.80 in, $4 out, in-Region at the same price.
    old = cost(
        "aws_bedrock",
        "anthropic.claude-3-5-haiku-20241022",
        "standard+regional",
        input=1_000,
        output=100,
    )
    assert old == Decimal("0.0012")  # 0.0008 + 0.0004


def test_bedrock_nova_and_llama() -> None:
    # Amazon Nova Pro: $0.80 in, $0.20 cache read, $3.20 out.
    nova = cost("aws_bedrock", "amazon.nova-pro", "standard+regional", input=10_000, output=1_000)
    assert nova == Decimal("0.0112")  # 0.008 + 0.0032
    # Amazon Nova Micro: $0.035 in, $0.14 out.
    micro = cost("aws_bedrock", "amazon.nova-micro", "standard", input=100_000, output=10_000)
    assert micro == Decimal("0.0049")  # 0.0035 + 0.0014
    # Llama 3.3 70B Instruct: $0.72 in and out.
    llama = cost(
        "aws_bedrock", "meta.llama3-3-70b-instruct", "standard+regional", input=5_000, output=1_000
    )
    assert llama == Decimal("0.00432")  # 6,000 x 0.72
    # Llama 4 Maverick 17B: $0.24 in, $0.97 out.
    maverick = cost(
        "aws_bedrock", "meta.llama4-maverick-17b-instruct", "standard", input=1_000, output=1_000
    )
    assert maverick == Decimal("0.00121")


def test_bedrock_profile_prefixes_and_version_suffixes_are_matched() -> None:
    for model in (
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-sonnet-4-5-20250929",
    ):
        assert cost("aws_bedrock", model, "standard", input=1_000) == Decimal("0.003"), model
    assert cost("aws_bedrock", "eu.amazon.nova-pro-v1:0", "standard", input=1_000) == Decimal(
        "0.0008"
    )


# -- Vertex AI ----------------------------------------------------------------------------


def test_vertex_gemini_and_claude() -> None:
    # Gemini 2.5 Pro on Vertex: $1.25 in, $10 out (<= 200k).
    gemini = cost("google_vertex", "gemini-2.5-pro", "standard", input=4_000, output=1_000)
    assert gemini == Decimal("0.015")  # 0.005 + 0.01
    # Claude Sonnet 4.5 on Vertex, global endpoint: $3 in, $15 out; regional endpoint 10% more.
    model = "claude-sonnet-4-5@20250929"
    assert cost("google_vertex", model, "standard", input=1_000, output=1_000) == Decimal("0.018")
    assert cost("google_vertex", model, "standard+regional", input=1_000, output=1_000) == Decimal(
        "0.0198"
    )
    # Claude Opus 4.1 on Vertex: $15 in, $75 out, no regional premium.
    opus = cost(
        "google_vertex", "claude-opus-4-1@20250805", "standard+regional", input=100, output=100
    )
    assert opus == Decimal("0.009")


# -- provenance ------------------------------------------------------------------------


def test_every_bundled_entry_says_where_its_rates_stand() -> None:
    for key, entry in bundled_catalog().entries.items():
        assert (entry.verified is None) != (entry.unverified is None), key
        assert entry.source_url, key


def test_every_bedrock_entry_lists_its_regional_multiplier() -> None:
    entries = [e for e in bundled_catalog().entries.values() if e.provider == "aws_bedrock"]
    assert len(entries) >= 20
    for entry in entries:
        assert "regional" in entry.versions[-1].modifiers, entry.key


def test_provenance_fields_are_parsed_and_validated() -> None:
    catalog = parse_catalog(
        {
            "models": {
                "acme/a": {"input": 1},
                "acme/b": {
                    "source": "https://acme.example/pricing",
                    "verified": "2026-12-01",
                    "unverified_rates": {"priority": "only a blog post says so"},
                    "rates": {"input": 1},
                    "modes": {"priority": 2},
                },
                "acme/c": {"unverified": "a reseller's page", "rates": {"input": 1}},
            }
        },
        origin="test",
        source="prices_file",
    )
    a, b, c = (catalog.entries[k] for k in ("acme/a", "acme/b", "acme/c"))
    assert a.provenance() == "no provenance recorded"
    assert a.unconfirmed == 0
    assert b.verified is not None
    assert b.verified.isoformat() == "2026-12-01"
    assert b.unconfirmed == 1
    assert "priority: only a blog post says so" in b.provenance()
    assert c.provenance() == "unverified: a reseller's page"
    assert c.unconfirmed == 1
    with pytest.raises(ConfigurationError, match=r"models\['x/y'\]: give either 'verified'"):
        parse_catalog(
            {
                "models": {
                    "x/y": {"verified": "2026-01-01", "unverified": "no", "rates": {"input": 1}}
                }
            },
            origin="test",
            source="prices_file",
        )
    with pytest.raises(ConfigurationError, match=r"unverified_rates.output: must say why"):
        parse_catalog(
            {"models": {"x/y": {"unverified_rates": {"output": ""}, "rates": {"input": 1}}}},
            origin="test",
            source="prices_file",
        )
