"""``llm-cost-tracker prices list|explain|sync|check`` and ``reprice``, through ``_cli.main``."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

import llm_cost_tracker as lct
from llm_cost_tracker.cli._main import main
from llm_cost_tracker.pricing import default_catalog, load_catalog
from llm_cost_tracker.testing import capture_events

M = Decimal(1_000_000)
# When the calls re-priced below happened: a fixed UTC moment, so that
# "reprice --from DAY" means the same day whatever the clock and time zone.
WHEN = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def test_list_filters_by_provider(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "list", "--provider", "anthropic"]) == 0
    out = capsys.readouterr().out
    assert "anthropic/claude-sonnet-4-5 " in out
    assert "openai/" not in out
    assert "catalog 2026" in out


def test_explain_shows_entry_rates_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "explain", "openai", "gpt-5-2025-08-07", "--mode", "priority"]) == 0
    out = capsys.readouterr().out
    assert "entry:    openai/gpt-5" in out
    assert "snapshot suffix removed" in out
    assert "priority: rates of its own" in out
    assert "input                   2.5  per 1M token" in out
    assert "output                   20  per 1M token" in out


def test_list_and_explain_show_provenance(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "list", "--provider", "anthropic"]) == 0
    out = capsys.readouterr().out
    assert "CHECKED" in out
    sonnet = next(
        line for line in out.splitlines() if line.startswith("anthropic/claude-sonnet-4-5 ")
    )
    assert "2026-12-04 +3 unverified" in sonnet  # two tool fees and the long-context tier
    sonnet5 = next(
        line for line in out.splitlines() if line.startswith("anthropic/claude-sonnet-5 ")
    )
    assert sonnet5.rstrip().endswith("unverified")
    assert "not confirmed by an official page" in out
    assert main(["prices", "explain", "google", "gemini-2.5-flash", "--mode", "priority"]) == 0
    out = capsys.readouterr().out
    assert "checked:  unverified: " in out
    assert "priority: Google's optimization page" in out
    assert main(["prices", "explain", "anthropic", "claude-opus-4-5"]) == 0
    assert "checked:  verified 2026-12-04" in capsys.readouterr().out


def test_every_bundled_entry_was_audited_or_says_which_page_it_lacks() -> None:
    """No entry keeps the audit's placeholder; what an official page confirmed is marked verified."""
    entries = default_catalog().entries
    for key, entry in entries.items():
        assert entry.verified is not None or entry.unverified, key
        assert "not re-read" not in (entry.unverified or ""), key
    grok = entries["xai/grok-4-1-fast"]
    assert grok.verified == date(2026, 12, 4)
    assert grok.source_url == "https://docs.x.ai/developers/models"
    assert set(grok.unverified_rates) == {"tiers"}
    gpt4o_mini = entries["openai/gpt-4o-mini"]
    assert gpt4o_mini.verified is None
    assert "openai.com/api-priority-processing" in (gpt4o_mini.unverified or "")
    assert "predates V4" in (entries["deepseek/deepseek-v4-flash"].unverified or "")


def test_explain_long_context_tier_and_batch(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["prices", "explain", "google", "gemini-2.5-pro", "--input-tokens", "250000"]
    assert main([*args, "--mode", "batch"]) == 0
    out = capsys.readouterr().out
    assert "tier:     input_tokens>200000" in out
    assert "x0.5 of the token rates" in out
    assert "output                  7.5" in out


def test_explain_unknown_model_and_missing_mode_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "explain", "openai", "gpt-9-hyper"]) == 1
    assert "cost_status 'unknown'" in capsys.readouterr().out
    assert main(["prices", "explain", "openai", "gpt-5-nano", "--mode", "priority"]) == 1
    assert "no 'priority' rates" in capsys.readouterr().out


def test_explain_uses_the_prices_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = tmp_path / "p.json"
    prices.write_text(json.dumps({"version": "mine", "models": {"acme/m": {"input": 1}}}))
    assert main(["prices", "explain", "acme", "m", "--prices-file", str(prices)]) == 0
    assert "source:   prices file mine" in capsys.readouterr().out


def test_bad_prices_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = tmp_path / "bad.json"
    prices.write_text(json.dumps({"models": {"acme/m": {"input": -1}}}))
    assert main(["prices", "list", "--prices-file", str(prices)]) == 2
    assert "bad.json: models['acme/m'].rates.input: must not be negative" in capsys.readouterr().err


LITELLM = {
    "sample_spec": {"litellm_provider": "one of https://docs.litellm.ai/docs/providers"},
    "gpt-4o-mini": {
        "litellm_provider": "openai",
        "input_cost_per_token": 1.5e-07,
        "output_cost_per_token": 6e-07,
        "cache_read_input_token_cost": 7.5e-08,
        "input_cost_per_token_batches": 7.5e-08,
        "output_cost_per_token_batches": 3e-07,
    },
    "anthropic/claude-sonnet-4-5": {
        "litellm_provider": "anthropic",
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
        "cache_creation_input_token_cost": 3.75e-06,
        "cache_creation_input_token_cost_above_1hr": 6e-06,
        "cache_read_input_token_cost": 3e-07,
        "input_cost_per_token_above_200k_tokens": 6e-06,
        "output_cost_per_token_above_200k_tokens": 2.25e-05,
    },
    "new-model": {"litellm_provider": "openai", "input_cost_per_token": 1e-06},
    "some-host/llama": {"litellm_provider": "some_host", "input_cost_per_token": 1e-06},
}


def test_sync_from_litellm_writes_a_loadable_prices_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "model_prices_and_context_window.json"
    source.write_text(json.dumps(LITELLM))
    target = tmp_path / "prices.json"
    assert main(["prices", "sync", "--from", str(source), "--to", str(target)]) == 0
    out = capsys.readouterr().out
    assert "litellm data, 3 entries" in out
    assert "+ openai/new-model (new entry)" in out
    assert "0 suspicious" in out
    written = json.loads(target.read_text())
    assert written["models"]["anthropic/claude-sonnet-4-5"]["rates"]["cache_write_1h"] == "6"
    assert written["models"]["anthropic/claude-sonnet-4-5"]["tiers"][0]["rates"]["output"] == "22.5"
    assert written["models"]["openai/gpt-4o-mini"]["modes"]["batch"]["input"] == "0.075"
    # The written file prices calls.
    with capture_events(prices_file=str(target)) as events:
        lct.track(provider="openai", model="new-model", usage={"input": 1000})
    assert events[0].cost.total == Decimal("0.001")
    assert events[0].cost.snapshot["source"] == "prices_file"


def test_sync_refuses_suspicious_changes_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = {
        "gpt-4o-mini": {
            "litellm_provider": "openai",
            "input_cost_per_token": 0,  # to zero
            "output_cost_per_token": 6e-06,  # 10x
        }
    }
    source = tmp_path / "litellm.json"
    source.write_text(json.dumps(data))
    target = tmp_path / "prices.json"
    assert main(["prices", "sync", "--from", str(source), "--to", str(target)]) == 1
    captured = capsys.readouterr()
    assert "! openai/gpt-4o-mini input: 0.15 -> 0  [to zero]" in captured.out
    assert "! openai/gpt-4o-mini output: 0.6 -> 6  [10x move]" in captured.out
    assert "refusing to write" in captured.err
    assert not target.exists()
    assert main(["prices", "sync", "--from", str(source), "--to", str(target), "--force"]) == 0
    assert json.loads(target.read_text())["models"]["openai/gpt-4o-mini"]["rates"]["input"] == "0"


def test_sync_from_genai_prices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = [
        {
            "id": "google",
            "name": "Google",
            "models": [
                {
                    "id": "gemini-9-pro",
                    "prices": {
                        "input_mtok": {"base": 2, "tiers": [{"start": 200000, "price": 4}]},
                        "output_mtok": {"base": 12, "tiers": [{"start": 200000, "price": 18}]},
                    },
                },
                {
                    "id": "gemini-9-flash",
                    "prices": [
                        {"prices": {"input_mtok": 1, "output_mtok": 2}},
                        {
                            "constraint": {"start_date": "2026-10-01"},
                            "prices": {"input_mtok": 0.5, "output_mtok": 1},
                        },
                    ],
                },
            ],
        },
        {"id": "unknown-host", "models": [{"id": "x", "prices": {"input_mtok": 1}}]},
    ]
    source = tmp_path / "data.json"
    source.write_text(json.dumps(data))
    target = tmp_path / "prices.json"
    assert main(["prices", "sync", "--from", str(source), "--to", str(target)]) == 0
    assert "genai-prices data, 2 entries" in capsys.readouterr().out
    catalog = load_catalog(prices_file=str(target))
    pro = catalog.get("google/gemini-9-pro")
    assert pro is not None
    assert pro.versions[0].tiers[0].rates["output"] == Decimal(18)
    flash = catalog.get("google/gemini-9-flash")
    assert flash is not None
    assert len(flash.versions) == 2


def _local_file(path: Path, updated: date, rates: dict[str, object]) -> str:
    path.write_text(
        json.dumps(
            {
                "version": "local",
                "updated_at": updated.isoformat(),
                "models": {"openai/gpt-4o-mini": rates},
            }
        )
    )
    return str(path)


def test_check_passes_for_a_fresh_matching_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Dated today by the clock `prices check` reads (UTC), so it is 0 days old.
    prices = _local_file(
        tmp_path / "p.json",
        datetime.now(timezone.utc).date(),
        {"input": "0.15", "cache_read": "0.075", "output": "0.60"},
    )
    assert main(["prices", "check", "--prices-file", prices]) == 0
    assert "up to date" in capsys.readouterr().out


def test_check_fails_when_stale_or_different(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Older than the bundled catalog by construction, and so more than 90 days old
    # on any day the tests run (today minus 400 days stops being older than the
    # catalog 400 days after its release).
    bundled = default_catalog().info.updated_at
    assert bundled is not None
    old = bundled - timedelta(days=400)
    prices = _local_file(
        tmp_path / "p.json", old, {"input": "0.20", "cache_read": "0.075", "output": "0.60"}
    )
    monkeypatch.setenv("LLM_COST_TRACKER_PRICES_FILE", prices)
    assert main(["prices", "check"]) == 1
    out = capsys.readouterr().out
    assert "older than the bundled catalog" in out
    assert "days old" in out
    assert "differs from bundled: openai/gpt-4o-mini input: 0.15 -> 0.2" in out


def test_check_without_a_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "check"]) == 2
    assert "no local prices file" in capsys.readouterr().err


def test_reprice_fills_in_unknown_costs_and_keeps_the_old_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    url = f"sqlite:///{db}"
    lct.configure(database_url=url, instrument=None)
    unknown = lct.track(
        provider="acme", model="house-1", usage={"input": 1000, "output": 100}, occurred_at=WHEN
    )
    known = lct.track(
        provider="openai", model="gpt-4o-mini", usage={"input": 1000}, occurred_at=WHEN
    )
    lct.shutdown()
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps({"version": "v2", "models": {"acme/house-1": {"input": 2, "output": 8}}})
    )
    day = WHEN.date().isoformat()
    base = ["reprice", "--database-url", url, "--from", day, "--prices-file", str(prices)]
    assert main([*base, "--dry-run"]) == 0
    assert "would change 1" in capsys.readouterr().out
    assert main(base) == 0
    out = capsys.readouterr().out
    assert f"{unknown.id}  acme/house-1: unknown -> 0.0028 (priced)" in out
    with sqlite3.connect(db) as connection:
        total, status, snapshot = connection.execute(
            "SELECT total_cost_exact, cost_status, pricing_snapshot FROM llm_cost_tracker_calls WHERE id = ?",
            (unknown.id,),
        ).fetchone()
        items = dict(
            connection.execute(
                "SELECT component, unit_price FROM llm_cost_tracker_call_line_items WHERE call_id = ?",
                (unknown.id,),
            ).fetchall()
        )
        known_total = connection.execute(
            "SELECT total_cost_exact FROM llm_cost_tracker_calls WHERE id = ?", (known.id,)
        ).fetchone()[0]
    assert Decimal(total) == (1000 * 2 + 100 * 8) / M
    assert status == "priced"
    snap = json.loads(snapshot)
    assert snap["source"] == "prices_file"
    assert snap["previous"]["status"] == "unknown"
    assert snap["previous"]["snapshot"]["reason"] == "no price for this model"
    assert set(items) == {"input", "output"}
    assert Decimal(known_total) == Decimal("0.00015")  # priced calls untouched without --all
    # Nothing left to do the second time.
    assert main(base) == 0
    assert "changed 0" in capsys.readouterr().out


def test_reprice_all_recomputes_priced_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "a.db"
    url = f"sqlite:///{db}"
    lct.configure(database_url=url, instrument=None)
    call = lct.track(
        provider="openai", model="gpt-4o-mini", usage={"input": 1000}, occurred_at=WHEN
    )
    lct.shutdown()
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"openai/gpt-4o-mini": {"input": "0.30"}}}))
    day = WHEN.date().isoformat()
    args = [
        "reprice",
        "--database-url",
        url,
        "--from",
        day,
        "--to",
        day,
        "--all",
        "--prices-file",
        str(prices),
    ]
    assert main(args) == 0
    assert f"{call.id}  openai/gpt-4o-mini: 0.00015 -> 0.0003 (priced)" in capsys.readouterr().out
    with sqlite3.connect(db) as connection:
        snapshot = json.loads(
            connection.execute("SELECT pricing_snapshot FROM llm_cost_tracker_calls").fetchone()[0]
        )
    assert snapshot["previous"]["total"] == "0.00015"
    assert snapshot["previous"]["snapshot"]["source"] == "bundled"


def test_reprice_rejects_a_bad_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reprice", "--from", "last tuesday"]) == 2
    assert "ISO date" in capsys.readouterr().err


def _calendar_days() -> set[str]:
    """Today's date, local and UTC: they differ for part of every day away from UTC."""
    return {date.today().isoformat(), datetime.now(timezone.utc).date().isoformat()}


def test_sync_keeps_price_history_as_dated_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "prices.json"
    target.write_text(json.dumps({"models": {"acme/m": {"input": 1, "output": 2}}}))
    source = tmp_path / "litellm.json"

    def litellm(input_per_token: float) -> None:
        spec = {"litellm_provider": "openai", "input_cost_per_token": input_per_token}
        source.write_text(json.dumps({"m": {**spec, "output_cost_per_token": 2e-06}}))

    litellm(1.5e-06)
    assert main(["prices", "sync", "--from", str(source), "--to", str(target)]) == 0
    capsys.readouterr()
    local = json.loads(target.read_text())["models"]
    assert set(local) == {"acme/m", "openai/m"}  # entries not imported are kept
    # A changed price for an entry already in the file becomes a new dated version.
    litellm(1.2e-06)
    days = _calendar_days()
    assert main(["prices", "sync", "--from", str(source), "--to", str(target)]) == 0
    days |= _calendar_days()
    assert "~ openai/m input: 1.5 -> 1.2" in capsys.readouterr().out
    written = json.loads(target.read_text())
    entry = written["models"]["openai/m"]
    # From the day of the sync: the file's updated_at, written from the same clock
    # reading, and a day that was current (local or UTC) while the sync ran.
    assert written["updated_at"] in days
    assert [v.get("from") for v in entry["prices"]] == [None, written["updated_at"]]
    assert entry["prices"][0]["rates"]["input"] == "1.5"
    assert entry["prices"][1]["rates"]["input"] == "1.2"
    # Syncing the same prices again changes nothing.
    assert main(["prices", "sync", "--from", str(source), "--to", str(target)]) == 0
    assert json.loads(target.read_text())["models"]["openai/m"] == entry
    found = load_catalog(prices_file=str(target)).get("openai/m")
    assert found is not None
    assert len(found.versions) == 2


FIXTURES = Path(__file__).parent / "fixtures" / "prices"


def test_check_against_litellm_lists_every_differing_rate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Real-shaped LiteLLM data: modes and long-context tiers are compared as the rates a call pays."""
    source = FIXTURES / "litellm_model_prices.json"
    assert main(["prices", "check", "--against", str(source)]) == 1
    out = capsys.readouterr().out
    assert "litellm data, 5 entries for known providers; 4 priced by catalog" in out
    # The fixture's priority input rates differ from ours (2.25 = 1.8 x 1.25; 4.5 above 200k).
    assert "google/gemini-2.5-pro [priority] input: 2.25 -> 2.5\n" in out
    assert "google/gemini-2.5-pro [priority, input_tokens>200000] input: 4.5 -> 5\n" in out
    # Equal rates are not listed, whether ours is a multiplier (flex, batch x0.5) or rates.
    assert "[flex]" not in out
    assert "[batch]" not in out
    assert "gpt-4o-mini" not in out
    # A dated id in the dataset is compared with our undated entry.
    assert "claude-sonnet-4-5" not in out  # every rate LiteLLM lists for it matches
    assert "2 difference(s) in 1 of 4 model(s) compared; 1 entr(y/ies) only in" in out


def test_check_against_genai_prices_and_a_provider_filter(
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = str(FIXTURES / "genai_prices_data.json")
    assert main(["prices", "check", "--against", source]) == 1
    out = capsys.readouterr().out
    assert "genai-prices data, 3 entries" in out
    assert "google/gemini-2.5-pro [standard] cache_read: 0.125 -> 0.31\n" in out
    assert (
        "google/gemini-2.5-pro [standard, input_tokens>200000] cache_read: 0.25 -> 0.625\n" in out
    )
    assert "2 difference(s) in 1 of 3 model(s) compared" in out
    # Anthropic alone: Haiku 4.5 and Haiku 3 agree (3's 5m cache write is $0.30), exit 0.
    assert main(["prices", "check", "--against", source, "--provider", "anthropic"]) == 0
    out = capsys.readouterr().out
    assert "0 difference(s) in 0 of 2 model(s) compared" in out


def test_check_against_a_rate_we_lack_and_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = {
        "gpt-4o-mini": {
            "litellm_provider": "openai",
            "input_cost_per_token": 1.5e-07,
            "output_cost_per_token": 6e-07,
            "input_cost_per_token_flex": 7.5e-08,
        }
    }
    source = tmp_path / "litellm.json"
    source.write_text(json.dumps(data))
    assert main(["prices", "check", "--against", str(source)]) == 1
    assert "openai/gpt-4o-mini [flex] input: - -> 0.075" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text('{"models": 1}')
    assert main(["prices", "check", "--against", str(bad)]) == 2
    assert "unrecognized price data" in capsys.readouterr().err
