"""User prices (pricing_overrides > prices_file > bundled), their errors, and frozen history in SQLite."""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import llm_cost_tracker as lct
from llm_cost_tracker._errors import ConfigurationError
from llm_cost_tracker._events import TokenUsage, UsageEvent
from llm_cost_tracker.pricing import PriceStage, load_catalog, price_event, substitute_catalog
from llm_cost_tracker.testing import capture_events

M = Decimal(1_000_000)


def _event(model: str = "gpt-4o-mini", provider: str = "openai", **tokens: int) -> UsageEvent:
    return UsageEvent(
        provider=provider,
        model=model,
        operation="chat",
        usage=TokenUsage(tokens=tokens or {"input": 1000, "output": 100}),
        occurred_at=datetime(2026, 11, 20, tzinfo=timezone.utc),
    )


def _write(path: Path, document: object) -> str:
    path.write_text(json.dumps(document))
    return str(path)


def test_overrides_beat_prices_file_beat_bundled(tmp_path: Path) -> None:
    prices = _write(
        tmp_path / "prices.json",
        {
            "version": "team-2026-11",
            "updated_at": "2026-11-01",
            "models": {
                "openai/gpt-4o-mini": {"rates": {"input": "0.10", "output": "0.50"}},
                "openai/gpt-4o": {"rates": {"input": "2", "output": "8"}},
                "acme/house-model": {"input": 1, "output": 2},
            },
        },
    )
    catalog = load_catalog(
        prices_file=prices,
        pricing_overrides={"openai/gpt-4o": {"input": "1", "output": "4"}},
    )
    mini = price_event(_event("gpt-4o-mini"), catalog)
    assert mini.cost.total == (1000 * Decimal("0.10") + 100 * Decimal("0.50")) / M
    assert mini.cost.snapshot["source"] == "prices_file"
    assert mini.cost.snapshot["catalog_version"] == "team-2026-11"
    big = price_event(_event("gpt-4o-2024-08-06"), catalog)
    assert big.cost.total == (1000 * 1 + 100 * 4) / M
    assert big.cost.snapshot["source"] == "override"
    house = price_event(_event("house-model", provider="acme"), catalog)
    assert house.cost.total == (1000 * 1 + 100 * 2) / M
    bundled = price_event(_event("gpt-5"), catalog)
    assert bundled.cost.snapshot["source"] == "bundled"


def test_provider_qualified_keys_beat_bare_ones() -> None:
    catalog = load_catalog(
        pricing_overrides={
            "my-model": {"input": 1},
            "acme/my-model": {"input": 2},
        }
    )
    assert price_event(
        _event("my-model", provider="acme", input=1000), catalog
    ).cost.total == Decimal("0.002")
    assert price_event(
        _event("my-model", provider="other", input=1000), catalog
    ).cost.total == Decimal("0.001")


def test_yaml_prices_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "version: local-1\n"
        "models:\n"
        "  acme/house-model:\n"
        "    prices:\n"
        "      - rates: {input: 1.0, output: 2.0}\n"
        "      - from: 2026-06-01\n"
        "        rates: {input: 0.5, output: 1.0}\n"
        "        modes: {batch: 0.5}\n"
    )
    catalog = load_catalog(prices_file=str(path))
    event = _event("house-model", provider="acme", input=1000)
    assert price_event(event, catalog).cost.total == Decimal("0.0005")
    early = UsageEvent(
        provider="acme",
        model="house-model",
        operation="chat",
        usage=TokenUsage(tokens={"input": 1000}),
        occurred_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        pricing_mode="batch",
    )
    assert price_event(early, catalog).cost.status == "unknown"  # no batch rate in v1


def test_yaml_without_pyyaml_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "prices.yml"
    path.write_text("models: {}\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes `import yaml` fail
    with pytest.raises(ConfigurationError, match=r"llm-cost-tracker\[yaml\]") as info:
        load_catalog(prices_file=str(path))
    assert "prices.yml" in str(info.value)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"rates": {"input": -1}}, "rates.input"),
        ({"rates": {"input": "NaN"}}, "rates.input"),
        ({"rates": {"output": "Infinity"}}, "rates.output"),
        ({"rates": {"input": "cheap"}}, "rates.input"),
        ({"rates": {"inputt": 1}}, "rates.inputt"),
        ({"input_price": 1}, "input_price"),
        ({"prices": [{"rates": {"input": 1}}, {"rates": {"input": 2}}]}, "prices[1].from"),
        ({"rates": {"input": 1}, "modes": {"priority": {"output": -2}}}, "modes.priority.output"),
        ({"rates": {}, "tiers": [{"rates": {"input": 1}}]}, "tiers[0].above_input_tokens"),
    ],
)
def test_malformed_prices_file_fails_configure_naming_file_entry_and_field(
    tmp_path: Path, entry: object, field: str
) -> None:
    prices = _write(tmp_path / "bad.json", {"models": {"openai/gpt-4o": entry}})
    with pytest.raises(ConfigurationError) as info:
        lct.configure(database_url=None, instrument=None, prices_file=prices)
    message = str(info.value)
    assert "bad.json" in message
    assert "openai/gpt-4o" in message
    assert field in message


def test_nan_and_infinity_json_literals_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "nan.json"
    path.write_text('{"models": {"x/y": {"rates": {"input": NaN}}}}')
    with pytest.raises(ConfigurationError, match="finite"):
        load_catalog(prices_file=str(path))
    path.write_text('{"models": {"x/y": {"rates": {"input": Infinity}}}}')
    with pytest.raises(ConfigurationError, match="finite"):
        load_catalog(prices_file=str(path))


def test_unreadable_or_invalid_files_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"missing\.json"):
        lct.configure(
            database_url=None, instrument=None, prices_file=str(tmp_path / "missing.json")
        )
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigurationError, match=r"broken\.json: not valid JSON"):
        lct.configure(database_url=None, instrument=None, prices_file=str(broken))


def test_bad_overrides_fail_configure() -> None:
    with pytest.raises(
        ConfigurationError, match=r"pricing_overrides: models\['acme/x'\]\.rates\.input"
    ):
        lct.configure(
            database_url=None, instrument=None, pricing_overrides={"acme/x": {"input": -0.5}}
        )


def test_prices_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prices = _write(tmp_path / "env.json", {"models": {"acme/m": {"input": 3}}})
    monkeypatch.setenv("LLM_COST_TRACKER_PRICES_FILE", prices)
    with capture_events() as events:
        lct.track(provider="acme", model="m", usage={"input": 1000})
    assert events[0].cost.total == Decimal("0.003")


def test_substitute_catalog_for_tests() -> None:
    catalog = load_catalog(pricing_overrides={"openai/gpt-4o-mini": {"input": 100}})
    with substitute_catalog(catalog):
        assert PriceStage()(_event(input=1000)).cost.total == Decimal("0.1")
    assert PriceStage()(_event(input=1000)).cost.total == Decimal("0.00015")


def _rows(db: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT id, total_cost_exact, cost_status, pricing_snapshot"
            " FROM llm_cost_tracker_calls ORDER BY occurred_at"
        ).fetchall()


def test_stored_costs_never_change_when_prices_change(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    lct.configure(database_url=f"sqlite:///{db}", instrument=None)
    first = lct.track(
        provider="anthropic",
        model="claude-sonnet-4-5-20250929",
        usage={
            "input": 2048,
            "cache_read": 1800,
            "cache_write_5m": 148,
            "cache_write_1h": 100,
            "output": 503,
        },
    )
    assert lct.flush(10)
    expected = (2048 * 3 + 1800 * Decimal("0.30") + 148 * Decimal("3.75") + 100 * 6 + 503 * 15) / M
    (row,) = _rows(db)
    assert row[0] == first.id
    assert Decimal(row[1]) == expected
    assert row[2] == "priced"
    snapshot = json.loads(row[3])
    assert snapshot["entry"] == "anthropic/claude-sonnet-4-5"
    assert snapshot["rates"]["cache_write_1h"]["rate"] == "6"
    with sqlite3.connect(db) as connection:
        items = dict(
            connection.execute(
                "SELECT component, cost FROM llm_cost_tracker_call_line_items WHERE call_id = ?",
                (first.id,),
            ).fetchall()
        )
    assert set(items) == {"input", "cache_read", "cache_write_5m", "cache_write_1h", "output"}

    # Prices change: a new configuration doubles the rates.
    lct.configure(
        database_url=f"sqlite:///{db}",
        instrument=None,
        pricing_overrides={
            "anthropic/claude-sonnet-4-5": {
                "input": 6,
                "cache_read": "0.6",
                "cache_write_5m": "7.5",
                "cache_write_1h": 12,
                "output": 30,
            }
        },
    )
    second = lct.track(
        provider="anthropic",
        model="claude-sonnet-4-5-20250929",
        usage={
            "input": 2048,
            "cache_read": 1800,
            "cache_write_5m": 148,
            "cache_write_1h": 100,
            "output": 503,
        },
    )
    assert lct.flush(10)
    rows = {r[0]: r for r in _rows(db)}
    assert Decimal(rows[first.id][1]) == expected  # history is frozen
    assert json.loads(rows[first.id][3])["source"] == "bundled"
    assert Decimal(rows[second.id][1]) == expected * 2
    assert json.loads(rows[second.id][3])["source"] == "override"


def test_unknown_costs_are_queryable(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    lct.configure(database_url=f"sqlite:///{db}", instrument=None)
    lct.track(provider="openai", model="gpt-9-hyper", usage={"input": 10})
    assert lct.flush(10)
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT model, total_cost FROM llm_cost_tracker_calls WHERE cost_status = 'unknown'"
        ).fetchall()
    assert rows == [("gpt-9-hyper", None)]
    assert lct.stats()["unpriced.openai.gpt-9-hyper.standard"] == 1


def test_the_documented_prices_file_example_loads(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "docs" / "pricing.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "prices.yaml"
    path.write_text(example)
    catalog = load_catalog(prices_file=str(path))
    assert catalog.version == "acme-2026-11"
    house = price_event(_event("house-model", provider="acme", input=1000, output=1000), catalog)
    assert house.cost.total == Decimal("0.002")
    long = price_event(
        _event("sonnet-latest", provider="anthropic", input=250_000, output=1000), catalog
    )
    assert long.cost.total == (250_000 * 6 + 1000 * Decimal("22.5")) / M
    bare = price_event(_event("my-finetune", provider="together", input=1000), catalog)
    assert bare.cost.total == Decimal("0.003")


def test_real_sdk_calls_are_priced_into_the_ledger(tmp_path: Path, standin: Any) -> None:
    """The real openai and anthropic SDKs over HTTP to the stand-in server, priced and stored."""
    import anthropic
    import openai

    db = tmp_path / "sdk.db"
    lct.configure(database_url=f"sqlite:///{db}", instrument=["openai", "anthropic"])
    oai = openai.OpenAI(
        api_key="sk-test",
        base_url=standin.scenario_url("openai_chat_priority_gpt5", "/v1"),
        max_retries=0,
    )
    oai.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    claude = anthropic.Anthropic(
        api_key="sk-test",
        base_url=standin.scenario_url("anthropic_cache_write_5m_and_1h_breakdown"),
        max_retries=0,
    )
    # The response names the model actually used (claude-sonnet-4-5-20250929); that is priced.
    claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert lct.flush(10)
    with sqlite3.connect(db) as connection:
        rows = dict(
            connection.execute(
                "SELECT provider, total_cost_exact FROM llm_cost_tracker_calls"
            ).fetchall()
        )
        modes = dict(
            connection.execute(
                "SELECT provider, pricing_mode FROM llm_cost_tracker_calls"
            ).fetchall()
        )
    assert Decimal(rows["openai"]) == (8 * Decimal("2.50") + 82 * 20) / M  # priority rates
    assert modes["openai"] == "priority"
    assert (
        Decimal(rows["anthropic"])
        == (2048 * 3 + 1800 * Decimal("0.30") + 148 * Decimal("3.75") + 100 * 6 + 503 * 15) / M
    )


def test_a_bare_override_beats_a_bundled_qualified_entry() -> None:
    catalog = load_catalog(pricing_overrides={"gpt-4o-mini": {"input": 1}})
    priced = price_event(_event("gpt-4o-mini-2024-07-18", input=1000), catalog)
    assert priced.cost.total == Decimal("0.001")
    assert priced.cost.snapshot["source"] == "override"
    # ... but within one layer the qualified key wins.
    both = load_catalog(
        pricing_overrides={"gpt-4o-mini": {"input": 1}, "openai/gpt-4o-mini": {"input": 2}}
    )
    assert price_event(_event("gpt-4o-mini", input=1000), both).cost.total == Decimal("0.002")
