"""``llm-cost-tracker doctor``: every check's ok/warn/fail verdict, on real databases."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest
from test_report import NOW, make_events, write_ledger

from llm_cost_tracker.cli._check import Check
from llm_cost_tracker.cli._doctor import run_checks
from llm_cost_tracker.cli._doctor_catalog import CATALOG_STALE_DAYS, check_prices
from llm_cost_tracker.cli._main import main
from llm_cost_tracker.pricing import default_catalog


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_a_healthy_ledger_with_gaps(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    write_ledger(url, make_events())
    checks = _by_name(run_checks(url, now=NOW))
    assert checks["database"].level == "ok"
    assert checks["schema"].level == "ok"
    assert checks["ledger"].level == "ok"
    assert checks["unpriced models"].level == "warn"
    assert "openai/ft:custom-model" in checks["unpriced models"].detail
    assert checks["streams without usage"].level == "warn"
    assert checks["errors"].level == "info"
    assert checks["instrumentor openai"].level == "ok"
    assert (
        "openai 3." in checks["instrumentor openai"].detail
        or "openai 1." in checks["instrumentor openai"].detail
    )
    assert checks["price catalog"].level == "ok"
    assert not [c for c in checks.values() if c.level == "fail"]


def test_cli_output_and_exit_code_when_everything_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    write_ledger(url, make_events())
    assert main(["doctor", "--database-url", url, "--days", "100000"]) == 0
    out = capsys.readouterr().out
    assert "[ok]   database: " in out
    assert "[warn] unpriced models:" in out
    assert "0 failed" in out


def test_no_tables_and_pending_migrations_warn(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    checks = _by_name(run_checks(url))
    assert checks["schema"].level == "warn"
    assert "no ledger tables yet" in checks["schema"].detail
    assert "ledger" not in checks

    write_ledger(url, make_events(5))
    connection = sqlite3.connect(tmp_path / "fresh.db")
    connection.execute("DELETE FROM llm_cost_tracker_migrations WHERE name LIKE '0003%'")
    connection.commit()
    connection.close()
    checks = _by_name(run_checks(url, now=NOW + timedelta(days=8)))
    assert checks["schema"].level == "warn"
    assert "llm-cost-tracker migrate" in checks["schema"].hint
    assert checks["ledger"].level == "warn"  # nothing in the last 7 days (all before NOW)


def test_unreachable_database_fails_with_exit_code_1(
    capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    url = f"postgresql://nobody@127.0.0.1:{closed_port}/nothing"
    assert main(["doctor", "--database-url", url]) == 1
    out = capsys.readouterr().out
    assert f"[fail] database: cannot reach {url}" in out
    assert "1 failed" in out


def test_bad_settings_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_COST_TRACKER_QUEUE_SIZE", "lots")
    monkeypatch.setenv("LLM_COST_TRACKER_DISABLED", "true")
    checks = run_checks(f"sqlite:///{tmp_path / 'x.db'}")
    warnings = [c for c in checks if c.level == "warn"]
    assert any("LLM_COST_TRACKER_QUEUE_SIZE" in c.detail for c in warnings)
    assert any(c.name == "kill switch" for c in warnings)
    bad = _by_name(run_checks("ftp://example.com/db"))
    assert bad["database"].level == "fail"
    assert "unsupported database URL" in bad["database"].detail


def test_an_old_catalog_warns() -> None:
    # Ages are counted from the bundled catalog's own date, not today's: the
    # verdict must not change as the catalog in the repository gets older.
    updated = default_catalog().info.updated_at
    assert updated is not None
    fresh = check_prices(None, updated + timedelta(days=CATALOG_STALE_DAYS))[0]
    assert fresh.level == "ok"
    assert f"({CATALOG_STALE_DAYS} days ago)" in fresh.detail
    stale = check_prices(None, updated + timedelta(days=CATALOG_STALE_DAYS + 1))[0]
    assert stale.level == "warn"
    assert f"({CATALOG_STALE_DAYS + 1} days ago)" in stale.detail
    assert check_prices(None, date(2100, 1, 1))[0].level == "warn"


def test_doctor_counts_the_rates_no_official_page_confirms(tmp_path: Path) -> None:
    """The bundled catalog's unverified entries and rates are counted; a prices file's add to them."""
    bundled = default_catalog().entries.values()
    whole = sum(1 for e in bundled if e.unverified is not None)
    rates = sum(len(e.unverified_rates) for e in bundled)
    check = _by_name(check_prices(None, date(2026, 12, 4)))["price provenance"]
    assert check.level == "info"
    assert f"{whole} unverified models, {rates} unverified rates" in check.detail
    assert whole > 0
    assert rates > 0

    prices = tmp_path / "prices.json"
    prices.write_text(
        '{"updated_at": "2026-12-01", "models": {"acme/m": {"unverified": "a blog post", '
        '"rates": {"input": 1}, "unverified_rates": {"output": "guessed"}}}}'
    )

    class Config:
        prices_file = str(prices)
        pricing_overrides = None

    check = _by_name(check_prices(Config(), date(2026, 12, 4)))["price provenance"]
    assert f"{whole + 1} unverified models, {rates + 1} unverified rates" in check.detail


def test_postgres_ledger_and_spool(postgres_url: str) -> None:
    write_ledger(postgres_url, make_events(50))
    checks = _by_name(run_checks(postgres_url, days=30, now=NOW))
    assert checks["database"].level == "ok"
    assert "(postgres)" in checks["database"].detail
    assert checks["schema"].level == "ok"
    assert checks["ledger"].level == "ok"
    assert checks["spool"].level == "ok"


def test_events_dropped_in_this_process_are_reported(tmp_path: Path) -> None:
    from llm_cost_tracker._stats import STATS

    url = f"sqlite:///{tmp_path / 'l.db'}"
    assert "dropped events" not in _by_name(run_checks(url))
    STATS.incr("dropped.queue_full", 7)
    check = _by_name(run_checks(url))["dropped events"]
    assert check.level == "warn"
    assert "dropped.queue_full 7" in check.detail


def test_a_call_with_unknown_usage_is_not_reported_as_a_missing_price(tmp_path: Path) -> None:
    import llm_cost_tracker as lct

    url = f"sqlite:///{tmp_path / 'u.db'}"
    lct.configure(database_url=url, instrument=None, synchronous=True)
    lct.track(provider="openai", model="gpt-4o-mini", usage={"input": 10, "output": 2})
    lct.track(provider="openai", model="gpt-4o-mini", usage=None, stream=True)
    lct.shutdown()
    checks = _by_name(run_checks(url))
    # The model has a price; what is missing is the stream's usage, and doctor says that.
    assert checks["unpriced models"].level == "ok"
    assert checks["streams without usage"].level == "warn"
