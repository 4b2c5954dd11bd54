"""``llm-cost-tracker doctor`` lists the budgets in force, where their totals come from, and the spend."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

import llm_cost_tracker as lct
from llm_cost_tracker.cli._check import Check
from llm_cost_tracker.cli._doctor import run_checks
from llm_cost_tracker.cli._main import main

# $1 per million input tokens: N million tokens cost $N.
PRICES = {"test/flat": {"input": "1", "output": "2"}}

# Spend is recorded on the real clock and read back for the current UTC day and
# month; inside an app, doctor uses the guard's own clock: no test here may
# straddle midnight (conftest.same_utc_day).
pytestmark = pytest.mark.usefixtures("same_utc_day")


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def write_spend(url: str, *calls: tuple[str, dict[str, str] | None]) -> datetime:
    """Record calls costing the given dollars into the ledger at ``url``, as an app would.

    Returns when the last one happened: doctor is asked about that moment's day and month.
    """
    lct.configure(database_url=url, instrument=None, synchronous=True, pricing_overrides=PRICES)
    events = []
    for dollars, tags in calls:
        tokens = int(Decimal(dollars) * 10**6)
        events.append(lct.track(provider="test", model="flat", usage={"input": tokens}, tags=tags))
    lct.shutdown()
    return events[-1].occurred_at


def test_no_budget_is_said_plainly(tmp_path: Path) -> None:
    checks = _by_name(run_checks(f"sqlite:///{tmp_path / 'l.db'}"))
    assert checks["budgets"].level == "info"
    assert checks["budgets"].detail == "none configured"
    assert "docs/budgets.md" in checks["budgets"].hint


def test_budgets_from_the_environment_with_spend_read_from_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    at = write_spend(url, ("0.75", None), ("0.5", {"tenant_id": "acme"}))
    monkeypatch.setenv("LLM_COST_TRACKER_MONTHLY_BUDGET", "1")
    monkeypatch.setenv("LLM_COST_TRACKER_DAILY_BUDGET", "10")
    monkeypatch.setenv("LLM_COST_TRACKER_PER_CALL_BUDGET", "2")
    monkeypatch.setenv("LLM_COST_TRACKER_BUDGET_ON_EXCEED", "block")
    checks = _by_name(run_checks(url, now=at))
    overview = checks["budgets"]
    assert overview.level == "ok"
    assert "on exceed: block" in overview.detail
    assert f"shared through {url}, read every 1 s" in overview.detail
    assert "within about 2 s" in overview.detail
    monthly = checks["budget monthly"]
    assert monthly.level == "warn"
    assert f"$1.25 of $1.00 spent in {at:%Y-%m} from the database" in monthly.detail
    assert "over the limit" in monthly.detail
    assert monthly.hint == "new requests are refused before they are sent, until the period ends"
    daily = checks["budget daily"]
    assert daily.level == "ok"
    assert f"$1.25 of $10.00 spent in {at:%Y-%m-%d}" in daily.detail
    assert "(12%)" in daily.detail
    assert checks["budget per_call"].detail == "limit $2.00 per call"

    assert main(["doctor", "--database-url", url]) == 0  # a budget over its limit warns
    out = capsys.readouterr().out
    assert "[warn] budget monthly: $1.25 of $1.00 spent in" in out
    assert "[ok]   budget per_call: limit $2.00 per call" in out


def test_no_ledger_yet_means_spend_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_COST_TRACKER_MONTHLY_BUDGET", "5")
    checks = _by_name(run_checks(f"sqlite:///{tmp_path / 'none-yet.db'}"))
    assert checks["budgets"].detail.startswith("on exceed: notify; totals shared through")
    assert checks["budget monthly"].level == "ok"
    assert (
        checks["budget monthly"].detail
        == "limit $5.00; spend unknown: no ledger yet: nothing recorded"
    )


def test_inside_an_app_doctor_reports_that_process_view_with_per_tag_budgets(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    lct.configure(
        database_url=url,
        instrument=None,
        synchronous=True,
        pricing_overrides=PRICES,
        budgets=lct.Budgets(
            monthly=100,
            per_tag={"tenant_id": {"monthly": "0.5", "daily": "0.2"}, "team": {"daily": 1}},
            on_exceed="raise",
            refresh_interval=0.5,
        ),
    )
    lct.track(provider="test", model="flat", usage={"input": 100_000}, tags={"tenant_id": "a"})
    with pytest.raises(lct.BudgetExceededError):
        lct.track(provider="test", model="flat", usage={"input": 300_000}, tags={"tenant_id": "b"})
    checks = _by_name(run_checks(url))
    assert "on exceed: raise" in checks["budgets"].detail
    assert "read every 0.5 s" in checks["budgets"].detail
    assert checks["budget monthly"].level == "ok"
    assert "$0.40 of $100.00 spent in" in checks["budget monthly"].detail
    assert "as this process sees it" in checks["budget monthly"].detail
    tenant = checks["budget per tag tenant_id"]
    assert tenant.level == "warn"
    assert tenant.detail.startswith("monthly $0.50, daily $0.20 for each value; 2 value(s)")
    assert "1 over: tenant_id=b $0.30 of $0.20 (daily)" in tenant.detail
    team = checks["budget per tag team"]
    assert team.level == "ok"
    assert team.detail == "daily $1.00 for each value; 0 value(s) with spend this period, none over"
    assert "budget daily" not in checks
    assert "budget per_call" not in checks


def test_in_process_totals_are_said_to_be_in_process(tmp_path: Path) -> None:
    lct.configure(
        database_url=None,
        instrument=None,
        synchronous=True,
        pricing_overrides=PRICES,
        budgets=lct.Budgets(daily="0.1"),
    )
    lct.track(provider="test", model="flat", usage={"input": 50_000})
    checks = _by_name(run_checks(f"sqlite:///{tmp_path / 'other.db'}"))
    assert "totals in-process (no SQL database)" in checks["budgets"].detail
    assert "$0.05 of $0.10 spent in" in checks["budget daily"].detail
    assert "(50%)" in checks["budget daily"].detail
    lct.shutdown()
    checks = _by_name(run_checks(f"sqlite:///{tmp_path / 'other.db'}"))
    assert checks["budgets"].level == "info"  # the app is gone: no budget in this environment


def test_outside_the_app_in_process_totals_cannot_be_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_COST_TRACKER_MONTHLY_BUDGET", "5")
    checks = _by_name(run_checks("sqlite:///:memory:"))
    assert "totals in-process (no SQL database)" in checks["budgets"].detail
    assert checks["budget monthly"].detail == (
        "limit $5.00; spend unknown: in-process totals are only visible inside the app"
    )


def test_spend_from_postgres_rollups(
    fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = write_spend(fresh_postgres_url, ("0.25", {"tenant_id": "acme"}), ("0.5", None))
    monkeypatch.setenv("LLM_COST_TRACKER_DAILY_BUDGET", "0.5")
    checks = _by_name(run_checks(fresh_postgres_url, now=at))
    assert "(postgres)" in checks["database"].detail
    daily = checks["budget daily"]
    assert daily.level == "warn"
    assert f"$0.75 of $0.50 spent in {at:%Y-%m-%d}" in daily.detail
    assert "from the database: over the limit" in daily.detail
