"""Budgets in one process: settings, notify/raise/block, per-tag scopes, estimates, shared SQLite totals."""

from __future__ import annotations

import logging
import os
import pickle
import sqlite3
import threading
import warnings
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import next_utc_boundary

import llm_cost_tracker as lct
from llm_cost_tracker import budgets
from llm_cost_tracker._api import get_runtime
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.budgets import BudgetAlert
from llm_cost_tracker.budgets._estimate import estimate_usage, input_chars, output_cap
from llm_cost_tracker.budgets._guard import BudgetGuard, guard_of
from llm_cost_tracker.cli._standin import StandInServer
from llm_cost_tracker.testing import capture_events

# Spend is counted per UTC day and month on the library's clock: no test here
# may straddle midnight (conftest.same_utc_day).
pytestmark = pytest.mark.usefixtures("same_utc_day")

# $1 per million input tokens, $2 per million output tokens: N input tokens cost N / 1e6 dollars.
PRICES = {"test/flat": {"input": "1", "output": "2"}}
MICRO = 10**6
MESSAGES = [{"role": "user", "content": "hi"}]


def spend(dollars: str, **tags: object) -> lct.UsageEvent:
    """Record one call costing exactly ``dollars``."""
    tokens = int(Decimal(dollars) * MICRO)
    return lct.track(provider="test", model="flat", usage={"input": tokens}, tags=tags or None)


@pytest.fixture
def alerts() -> list[BudgetAlert]:
    return []


def configure(events: bool = True, **budget_kwargs: Any) -> None:
    lct.configure(
        database_url=None,
        instrument=None,
        synchronous=True,
        pricing_overrides=PRICES,
        budgets=lct.Budgets(**budget_kwargs),
    )


def guard() -> BudgetGuard:
    runtime = get_runtime()
    assert runtime is not None
    found = guard_of(runtime)
    assert found is not None
    return found


# -- settings -------------------------------------------------------------------


def test_amounts_are_exact_decimals() -> None:
    b = lct.Budgets(monthly=500, daily="12.50", per_call=0.1)
    assert b.monthly == Decimal(500)
    assert b.daily == Decimal("12.50")
    assert b.per_call == Decimal("0.1")  # a float goes through str(): no binary noise
    assert b == lct.Budgets(monthly=Decimal(500), daily=Decimal("12.5"), per_call="0.1")
    assert hash(b) == hash(lct.Budgets(monthly="500", daily="12.5", per_call="0.10"))
    assert "monthly=Decimal('500')" in repr(b)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"monthly": -1}, lct.ConfigurationError, "monthly: must be a finite, non-negative"),
        ({"daily": "ten"}, lct.ConfigurationError, "daily: not a decimal number"),
        ({"daily": float("nan")}, lct.ConfigurationError, "daily: must be a finite amount"),
        ({"per_call": "Infinity"}, lct.ConfigurationError, "per_call: must be a finite"),
        ({"monthly": True}, TypeError, "monthly: a budget is an amount of money"),
        ({"monthly": [1]}, TypeError, "got list"),
        ({}, lct.ConfigurationError, "set at least one of"),
        ({"monthly": 1, "on_exceed": "warn"}, lct.ConfigurationError, "on_exceed: expected"),
        ({"monthly": 1, "callback": 3}, TypeError, "callback: must be callable"),
        ({"monthly": 1, "refresh_interval": 0}, lct.ConfigurationError, "refresh_interval"),
        ({"per_tag": ["tenant_id"]}, TypeError, "per_tag: expected a mapping"),
        ({"per_tag": {"tenant_id": 100}}, TypeError, "per_tag['tenant_id']: expected a mapping"),
        ({"per_tag": {"tenant_id": {"weekly": 1}}}, lct.ConfigurationError, "unknown period"),
        ({"per_tag": {"tenant_id": {}}}, lct.ConfigurationError, "give a 'monthly'"),
        ({"per_tag": {"": {"daily": 1}}}, lct.ConfigurationError, "non-empty strings"),
        ({"per_tag": {"tenant id": {"daily": 1}}}, lct.ConfigurationError, "can never match a tag"),
        (
            {"per_tag": {"tenant_id": {"monthly": -5}}},
            lct.ConfigurationError,
            "per_tag['tenant_id']['monthly']: must be a finite, non-negative",
        ),
    ],
)
def test_invalid_settings_name_the_field(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("[", r"\[").replace("(", r"\(")):
        lct.Budgets(**kwargs)


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        lct.Budgets(100)  # type: ignore[misc]


def test_environment_variables_build_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_COST_TRACKER_MONTHLY_BUDGET", "500")
    monkeypatch.setenv("LLM_COST_TRACKER_DAILY_BUDGET", "25.5")
    monkeypatch.setenv("LLM_COST_TRACKER_PER_CALL_BUDGET", "2")
    monkeypatch.setenv("LLM_COST_TRACKER_BUDGET_ON_EXCEED", "block")
    config = lct.configure(database_url=None, instrument=None)
    assert config.budgets == lct.Budgets(monthly=500, daily="25.5", per_call=2, on_exceed="block")
    runtime = get_runtime()
    assert runtime is not None
    assert runtime.before_call is not None  # block mode installs the preflight


def test_invalid_mode_in_the_environment_warns_and_notifies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_COST_TRACKER_DAILY_BUDGET", "1")
    monkeypatch.setenv("LLM_COST_TRACKER_BUDGET_ON_EXCEED", "explode")
    with pytest.warns(RuntimeWarning, match="LLM_COST_TRACKER_BUDGET_ON_EXCEED"):
        config = lct.configure(database_url=None, instrument=None)
    assert config.budgets.on_exceed == "notify"


def test_a_bad_budgets_value_fails_configure_and_keeps_the_pipeline() -> None:
    configure(monthly=1)
    before = get_runtime()
    with pytest.raises(
        lct.ConfigurationError, match=r"budgets: expected llm_cost_tracker\.Budgets"
    ):
        lct.configure(database_url=None, instrument=None, budgets={"monthly": 1})
    assert get_runtime() is before


def test_budget_error_message_and_pickling() -> None:
    error = lct.BudgetExceededError(
        budget_type="monthly",
        scope="tenant_id=acme",
        spent=Decimal("101.2"),
        limit=Decimal(100),
        estimate=Decimal("0.000312"),
        blocked=True,
    )
    assert str(error) == (
        "monthly budget for tenant_id=acme exceeded: spent $101.20 of $100.00; "
        "this request (estimated ~$0.000312) was not sent"
    )
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.budget_type, copy.scope, copy.spent, copy.limit, copy.estimate) == (
        "monthly",
        "tenant_id=acme",
        Decimal("101.2"),
        Decimal(100),
        Decimal("0.000312"),
    )
    assert isinstance(copy, lct.LLMCostTrackerError)


# -- notify -----------------------------------------------------------------------


def test_notify_fires_once_per_crossing_daily_before_monthly(alerts: list[BudgetAlert]) -> None:
    configure(monthly="1.00", daily="1.00", callback=alerts.append)
    for _ in range(3):
        spend("0.30")
    assert alerts == []
    crossing = spend("0.30")  # 1.20 > 1.00: both budgets cross on this call
    for _ in range(5):
        spend("0.30")  # already over: no new alert
    assert [(a.budget_type, a.scope) for a in alerts] == [
        ("daily", "global"),
        ("monthly", "global"),
    ]
    daily, monthly = alerts
    # The periods of the call that crossed: the same clock reading the guard used.
    assert daily.period == crossing.occurred_at.strftime("%Y-%m-%d")
    assert monthly.period == crossing.occurred_at.strftime("%Y-%m")
    assert daily.total == Decimal("1.2")
    assert daily.limit == Decimal("1.00")
    assert daily.event.id == crossing.id
    assert daily.event.cost.total == Decimal("0.3")
    assert daily.on_exceed == "notify"
    assert STATS.get("budget.crossings") == 2


def test_notify_checks_on_the_worker_and_adds_nothing_to_the_callers_thread() -> None:
    fired: list[tuple[BudgetAlert, str]] = []
    lct.configure(
        database_url=None,
        instrument=None,
        pricing_overrides=PRICES,
        budgets=lct.Budgets(
            monthly="1", callback=lambda a: fired.append((a, threading.current_thread().name))
        ),
    )
    runtime = get_runtime()
    assert runtime is not None
    assert (runtime.before_call, runtime.after_call, runtime.price_event) == (None, None, None)
    spend("2")
    assert lct.flush(5)
    ((alert, thread_name),) = fired
    assert alert.total == Decimal(2)
    assert thread_name == "llm-cost-tracker-export"


def test_notify_never_raises_and_counts_callback_failures(caplog: pytest.LogCaptureFixture) -> None:
    def broken(alert: BudgetAlert) -> None:
        raise RuntimeError("pager down")

    configure(daily="0.5", callback=broken)
    with caplog.at_level(logging.WARNING, logger="llm_cost_tracker"):
        spend("0.4")
        event = spend("0.4")  # crosses; the callback raises; the call is unaffected
    assert event.usage is not None
    assert STATS.get("errors.budget.callback") == 1
    assert "daily budget crossed" in caplog.text
    assert "$0.80 of $0.50" in caplog.text


def test_notify_without_callback_logs_the_crossing(caplog: pytest.LogCaptureFixture) -> None:
    configure(monthly="1")
    with caplog.at_level(logging.WARNING, logger="llm_cost_tracker"):
        spend("2")
    assert "monthly budget crossed" in caplog.text


def test_per_tag_budgets_are_per_value(alerts: list[BudgetAlert]) -> None:
    configure(per_tag={"tenant_id": {"monthly": "1", "daily": "0.75"}}, callback=alerts.append)
    spend("0.5", tenant_id="acme")
    spend("0.5", tenant_id="globex")
    spend("5")  # untagged: no tenant budget applies
    with lct.with_tags(tenant_id="acme"):
        spend("0.4")  # acme: 0.9 > 0.75 daily
    assert [(a.budget_type, a.scope) for a in alerts] == [("daily", "tenant_id=acme")]
    spend("0.2", tenant_id="acme")  # acme: 1.1 > 1 monthly
    assert [(a.budget_type, a.scope) for a in alerts][-1] == ("monthly", "tenant_id=acme")
    views = {(v.budget_type, v.scope): v.spent for v in budgets.status()}
    assert views[("monthly", "tenant_id=acme")] == Decimal("1.1")
    assert views[("monthly", "tenant_id=globex")] == Decimal("0.5")
    assert ("monthly", "global") not in views


def test_unknown_cost_never_draws_down_and_is_reported(alerts: list[BudgetAlert]) -> None:
    configure(monthly="0.01", on_exceed="raise", callback=alerts.append)
    lct.track(provider="test", model="unpriced-model", usage={"input": 10**9})
    lct.track(provider="test", model="flat", usage=None)
    assert alerts == []
    assert STATS.get("budget.unpriced_calls") == 2
    (view,) = budgets.status()
    assert view.spent == 0
    assert view.unpriced_calls == 2


def test_calls_from_another_month_do_not_count() -> None:
    configure(monthly="1", on_exceed="raise")
    last_month = datetime.now(timezone.utc).replace(day=1) - timedelta(days=3)
    lct.track(provider="test", model="flat", usage={"input": 5 * MICRO}, occurred_at=last_month)
    spend("0.5")  # this month: 0.5 of 1, no raise
    (view,) = budgets.status()
    assert view.spent == Decimal("0.5")


# -- raise --------------------------------------------------------------------------


def test_raise_records_the_call_then_raises_in_the_callers_thread() -> None:
    with capture_events(
        pricing_overrides=PRICES, budgets=lct.Budgets(monthly="1", on_exceed="raise")
    ) as events:
        spend("0.6")
        with pytest.raises(lct.BudgetExceededError) as raised:
            spend("0.6")
        assert len(events) == 2  # recorded first
        error = raised.value
        assert (error.budget_type, error.scope, error.spent, error.limit) == (
            "monthly",
            "global",
            Decimal("1.2"),
            Decimal("1"),
        )
        assert error.event is events[1]
        assert error.blocked is False
        assert str(error) == "monthly budget exceeded: spent $1.20 of $1.00"
        with pytest.raises(lct.BudgetExceededError):
            spend("0.01")  # still over: every further call raises too
        assert len(events) == 3
    assert STATS.get("budget.raised") == 2


def test_raise_happens_in_the_thread_that_crossed() -> None:
    configure(monthly="1", on_exceed="raise")
    results: dict[int, list[str]] = {}
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        outcomes = results.setdefault(threading.get_ident(), [])
        for _ in range(10):
            try:
                spend("0.02")
                outcomes.append("ok")
            except lct.BudgetExceededError:
                outcomes.append("raised")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [o for outcomes in results.values() for o in outcomes]
    # 80 calls of 0.02: the first 50 fit exactly (1.00 is not over 1), the other 30 raise.
    assert flat.count("ok") == 50
    assert flat.count("raised") == 30
    assert len(results) == 8


def test_per_call_limit_raises_for_the_expensive_call_only(alerts: list[BudgetAlert]) -> None:
    configure(per_call="0.5", on_exceed="raise", callback=alerts.append)
    spend("0.5")
    with pytest.raises(lct.BudgetExceededError, match="per_call budget exceeded: this call cost"):
        spend("0.75")
    spend("0.1")
    assert [(a.budget_type, a.total) for a in alerts] == [("per_call", Decimal("0.75"))]


# -- block ------------------------------------------------------------------------------


def test_estimates_come_from_request_size_and_output_caps() -> None:
    openai_request = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "x" * 40},
            {"role": "user", "content": [{"type": "text", "text": "y" * 41}]},
        ],
        "max_completion_tokens": 300,
    }
    assert input_chars(openai_request) == len("system") + 40 + len("user") + len("text") + 41
    assert output_cap(openai_request) == 300
    usage = estimate_usage(openai_request)
    assert usage.tokens == {"input": -(-(6 + 40 + 4 + 4 + 41) // 4), "output": 300}
    anthropic_request = {"system": "s" * 8, "messages": [], "max_tokens": 1024}
    assert estimate_usage(anthropic_request).tokens == {"input": 2, "output": 1024}
    responses_request = {"input": "z" * 400, "max_output_tokens": 50, "service_tier": "flex"}
    assert estimate_usage(responses_request).tokens == {"input": 100, "output": 50}
    gemini_request = {
        "contents": [{"parts": [{"text": "g" * 12}]}],
        "config": {"max_output_tokens": 7},
    }
    assert estimate_usage(gemini_request).tokens == {"input": 3, "output": 7}
    assert estimate_usage({"model": "m"}).tokens == {"input": 0, "output": 0}


def test_block_refuses_a_request_that_does_not_fit() -> None:
    with capture_events(
        pricing_overrides=PRICES, budgets=lct.Budgets(monthly="1", on_exceed="block")
    ) as events:
        spend("0.9")
        # 400,000 chars ~ 100,000 input tokens ($0.10) + 50,000 output tokens ($0.10): $0.20 > $0.10 left.
        request = {"messages": [{"role": "user", "content": "a" * 400_000}], "max_tokens": 50_000}
        with pytest.raises(lct.BudgetExceededError) as raised:
            budgets.check("test", "flat", request)
        error = raised.value
        assert error.blocked is True
        assert (error.budget_type, error.spent, error.limit) == (
            "monthly",
            Decimal("0.9"),
            Decimal("1"),
        )
        assert error.estimate is not None
        assert Decimal("0.19") < error.estimate < Decimal("0.21")
        assert (
            "monthly budget exceeded: spent $0.90 of $1.00; this request (estimated ~$0.20"
            in str(error)
        )
        budgets.check("test", "flat", {"messages": [{"role": "user", "content": "hi"}]})  # fits
        budgets.check("test", "no-such-model", request)  # unknown price: under the limit, allowed
        assert len(events) == 1
    assert STATS.get("budget.blocked") == 1


def test_block_refuses_everything_once_over_the_limit() -> None:
    configure(daily="0.5", on_exceed="block")
    spend("0.6")  # recorded calls are never refused after the fact
    with pytest.raises(lct.BudgetExceededError, match="daily budget exceeded: spent"):
        budgets.check("test", "flat", {})
    with pytest.raises(lct.BudgetExceededError, match=r"estimated unknown\) was not sent"):
        budgets.check("test", "unknown-model", {})


def test_block_per_call_and_per_tag() -> None:
    configure(per_call="0.01", per_tag={"tenant_id": {"daily": "1"}}, on_exceed="block")
    with pytest.raises(lct.BudgetExceededError, match="per_call budget exceeded"):
        budgets.check("test", "flat", {"max_tokens": 10_000})  # $0.02 of output
    budgets.check("test", "flat", {"max_tokens": 1_000})
    spend("1.5", tenant_id="acme")
    with lct.with_tags(tenant_id="acme"), pytest.raises(lct.BudgetExceededError) as raised:
        budgets.check("test", "flat", {})
    assert raised.value.scope == "tenant_id=acme"
    with lct.with_tags(tenant_id="globex"):
        budgets.check("test", "flat", {})  # another tenant still has room


def test_check_without_budgets_does_nothing() -> None:
    lct.configure(database_url=None, instrument=None)
    budgets.check("test", "flat", {"max_tokens": 10**9})
    assert budgets.status() == []


# -- shared totals through a database -------------------------------------------------------


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'costs.db'}"


def configure_shared(url: str, **budget_kwargs: Any) -> BudgetGuard:
    budget_kwargs.setdefault("refresh_interval", 0.1)
    lct.configure(
        database_url=url,
        instrument=None,
        pricing_overrides=PRICES,
        export_interval=0.05,
        budgets=lct.Budgets(**budget_kwargs),
    )
    return guard()


def test_shared_totals_come_from_the_database_and_count_local_spend_once(db_url: str) -> None:
    shared = configure_shared(db_url, monthly="10", per_tag={"team": {"daily": "5"}})
    assert shared.shared is not None
    spend("1", team="a")
    spend("2", team="b")
    assert lct.flush(5)
    assert shared.shared.wait_for_refresh(5)
    assert shared.pending_ids() == []  # the database has them now: nothing is counted twice
    views = {(v.budget_type, v.scope): v.spent for v in budgets.status()}
    assert views[("monthly", "global")] == Decimal(3)
    assert views[("daily", "team=a")] == Decimal(1)
    assert views[("daily", "team=b")] == Decimal(2)
    assert all(v.shared and v.refreshed_at is not None for v in budgets.status())


def test_a_new_process_sees_earlier_spend_and_blocks(db_url: str) -> None:
    configure_shared(db_url, monthly="1", on_exceed="block")
    spend("1.5")
    assert lct.flush(5)
    lct.shutdown()
    # Another process (a fresh runtime with empty in-memory totals) reads the database.
    fresh = configure_shared(db_url, monthly="1", on_exceed="block")
    assert fresh.shared is not None
    assert fresh.shared.wait_for_refresh(5)
    with pytest.raises(lct.BudgetExceededError, match=r"spent \$1.50 of \$1.00"):
        budgets.check("test", "flat", {})


def test_a_crossing_is_claimed_once_in_the_database(db_url: str, alerts: list[BudgetAlert]) -> None:
    first = configure_shared(db_url, monthly="1", callback=alerts.append)
    crossing = spend("1.2")
    assert first.shared is not None
    assert lct.flush(5)  # exported, and the crossing claimed and its callback run
    assert [a.budget_type for a in alerts] == ["monthly"]
    lct.shutdown()
    second = configure_shared(db_url, monthly="1", callback=alerts.append)
    spend("0.1")  # this runtime sees the crossing for the first time, but it was claimed
    assert second.shared is not None
    assert second.shared.wait_for_refresh(5)  # a read that includes the first runtime's spend
    assert second.shared.wait_for_refresh(5)
    assert lct.flush(5)  # and the claim that read led to has been tried
    assert len(alerts) == 1
    assert STATS.get("budget.crossings_claimed_elsewhere") >= 1
    path = db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT budget_type, scope, period FROM llm_cost_tracker_budget_alerts"
        ).fetchall()
    assert rows == [("monthly", "global", crossing.occurred_at.strftime("%Y-%m"))]


def test_an_unreadable_database_is_counted_and_local_spend_still_guards(tmp_path: Path) -> None:
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"this is not an SQLite file" * 100)
    lct.configure(
        database_url=f"sqlite:///{path}",
        instrument=None,
        pricing_overrides=PRICES,
        budgets=lct.Budgets(monthly="1", on_exceed="raise", refresh_interval=0.05),
    )
    shared = guard()
    with pytest.raises(lct.BudgetExceededError):
        spend("2")  # this process's own spend still counts
    assert shared.shared is not None
    assert not shared.shared.wait_for_refresh(0.5)
    assert STATS.get("errors.budget.refresh") >= 1


def test_no_ledger_yet_means_nothing_spent(tmp_path: Path) -> None:
    # Before the exporter has written anything, the reader neither creates the
    # file nor fails: the totals are zero.
    url = f"sqlite:///{tmp_path / 'later.db'}"
    lct.configure(
        database_url=url,
        instrument=None,
        budgets=lct.Budgets(monthly="1", on_exceed="block", refresh_interval=0.05),
    )
    shared = guard()
    assert shared.shared is not None
    assert shared.shared.wait_for_refresh(5)
    assert not (tmp_path / "later.db").exists()
    assert STATS.get("errors.budget.refresh") == 0
    assert [v.spent for v in budgets.status()] == [0]


# -- through a real SDK call ---------------------------------------------------------------


def test_real_openai_calls_raise_after_recording(standin: StandInServer) -> None:
    import openai

    url = standin.scenario_url("openai_chat_cached_gpt4omini", "/v1")
    with (
        capture_events(
            instrument=["openai"], budgets=lct.Budgets(daily="0.0000001", on_exceed="raise")
        ) as events,
        openai.OpenAI(api_key="sk-test", base_url=url, max_retries=0) as client,
    ):
        with pytest.raises(lct.BudgetExceededError) as raised:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert len(events) == 1
        (event,) = events
        assert event.cost.status == "priced"
        assert event.cost.total is not None
        assert raised.value.event is event
        assert raised.value.spent == event.cost.total


def test_real_openai_call_is_not_sent_when_blocked(standin: StandInServer) -> None:
    import openai

    url = standin.scenario_url("openai_chat_cached_gpt4omini", "/v1")
    with openai.OpenAI(api_key="sk-test", base_url=url, max_retries=0) as client:
        with capture_events(instrument=["openai"]) as priced:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        one_call = priced[0].cost.total
        assert one_call is not None
        with capture_events(
            instrument=["openai"],
            budgets=lct.Budgets(monthly=one_call * 3 / 2, on_exceed="block"),
        ) as events:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # spent 1x
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # spent 2x
            sent = len(standin.requests)
            with pytest.raises(lct.BudgetExceededError) as raised:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
            assert len(standin.requests) == sent  # never reached the server
            assert len(events) == 2  # and nothing recorded
    error = raised.value
    assert error.blocked is True
    assert error.spent == one_call * 2
    assert error.limit == one_call * 3 / 2
    assert error.estimate is not None
    assert error.estimate > 0


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_shared_totals_and_claims_on_every_database(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, alerts: list[BudgetAlert]
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        url = request.getfixturevalue(f"fresh_{backend}_url")
    shared = configure_shared(
        url,
        monthly="1",
        daily="5",
        per_tag={"tenant_id": {"monthly": "0.5"}},
        on_exceed="raise",
        callback=alerts.append,
    )
    assert shared.shared is not None
    spend("0.25", tenant_id="acme")
    spend("0.25", tenant_id="acme")
    spend("0.25", tenant_id="globex")
    with pytest.raises(lct.BudgetExceededError, match="tenant_id=acme"):
        spend("0.125", tenant_id="acme")
    assert lct.flush(10)
    assert shared.shared.wait_for_refresh(10)
    assert shared.pending_ids() == []
    views = {(v.budget_type, v.scope): v.spent for v in budgets.status()}
    assert views[("monthly", "global")] == Decimal("0.875")
    assert views[("daily", "global")] == Decimal("0.875")
    assert views[("monthly", "tenant_id=acme")] == Decimal("0.625")
    assert views[("monthly", "tenant_id=globex")] == Decimal("0.25")
    assert shared.shared.wait_for_refresh(10)
    assert [(a.budget_type, a.scope) for a in alerts] == [("monthly", "tenant_id=acme")]
    lct.shutdown()
    # A second process: same totals from the database, the crossing already claimed.
    again = configure_shared(url, monthly="1", on_exceed="block", callback=alerts.append)
    assert again.shared is not None
    assert again.shared.wait_for_refresh(10)
    (view,) = budgets.status()
    assert view.spent == Decimal("0.875")
    with pytest.raises(lct.BudgetExceededError, match=r"spent \$0.875 of \$1.00"):
        budgets.check("test", "flat", {"max_tokens": 100_000})  # $0.20 of output does not fit


def test_configure_with_equal_budgets_keeps_the_runtime() -> None:
    configure(monthly="1.50", per_tag={"tenant_id": {"daily": 2}})
    before = get_runtime()
    configure(monthly=Decimal("1.5"), per_tag={"tenant_id": {"daily": "2"}})
    assert get_runtime() is before
    configure(monthly="1.51", per_tag={"tenant_id": {"daily": 2}})
    assert get_runtime() is not before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_reads_its_own_totals(db_url: str) -> None:
    configure_shared(db_url, monthly="1", on_exceed="block")
    spend("0.6")
    assert lct.flush(5)
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a threaded process may deadlock; the
        # library's fork handlers are what this test checks.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: its own budget thread, the parent's spend through the database
        code = 1  # 1: crashed, 2: no refresh in time, 3: not blocked, 0: blocked
        try:
            spend("0.6")
            lct.flush(15)
            shared = guard().shared
            code = 2
            if shared is not None and shared.wait_for_refresh(15):
                code = 3
                try:
                    budgets.check("test", "flat", {})
                except lct.BudgetExceededError as error:
                    os.write(write, str(error.spent).encode())
                    code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    seen = os.read(read, 100).decode()
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert Decimal(seen) == Decimal("1.2")
    parent = guard()
    assert parent.shared is not None
    assert parent.shared.wait_for_refresh(15)
    with pytest.raises(lct.BudgetExceededError, match=r"spent \$1.20"):
        budgets.check("test", "flat", {})


def test_a_new_utc_day_and_month_start_from_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monthly="1", daily="1", on_exceed="block")
    spent = spend("1.5")
    with pytest.raises(lct.BudgetExceededError):
        budgets.check("test", "flat", {})
    next_month = next_utc_boundary(spent.occurred_at, "month") + timedelta(minutes=5)
    import llm_cost_tracker.budgets._guard as guard_module

    monkeypatch.setattr(guard_module.time, "time", lambda: next_month.timestamp())
    budgets.check("test", "flat", {})  # a new month and day: nothing spent yet
    assert [v.spent for v in budgets.status()] == [0, 0]
    assert {v.period for v in budgets.status()} == {
        next_month.strftime("%Y-%m"),
        next_month.strftime("%Y-%m-%d"),
    }
    assert guard()._local == {}  # last month's totals are gone


def test_block_through_the_httpx_transport(standin: StandInServer) -> None:
    import httpx
    from llm_cost_tracker.instrumentation._hosts import register_host, unregister_host

    from llm_cost_tracker.cli._standin.server import load_payloads

    payload = load_payloads()["gemini_generate_thinking_flash"]
    url = standin.scenario_url(payload["id"], urlsplit(payload["url"]).path)
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"maxOutputTokens": 100},
    }
    host = standin.url.removeprefix("http://")
    register_host(host, payload["provider"])
    try:
        with (
            capture_events(
                instrument=["httpx"],
                pricing_overrides=PRICES,
                budgets=lct.Budgets(daily="1", on_exceed="block"),
            ) as events,
            httpx.Client() as client,
        ):
            client.post(url, json=body)  # fits: sent and recorded
            assert [e.provider for e in events] == ["google"]
            spend("1.5")  # now over the daily limit
            sent = len(standin.requests)
            with pytest.raises(lct.BudgetExceededError, match="daily budget exceeded"):
                client.post(url, json=body)
            assert len(standin.requests) == sent  # never sent
            assert len(events) == 2  # the Gemini call and the manual one, nothing more
    finally:
        unregister_host(host)


async def test_async_openai_call_is_blocked_before_sending(standin: StandInServer) -> None:
    import openai

    url = standin.scenario_url("openai_chat_cached_gpt4omini", "/v1")
    with capture_events(
        instrument=["openai"],
        pricing_overrides=PRICES,
        budgets=lct.Budgets(monthly="1", on_exceed="block"),
    ) as events:
        async with openai.AsyncOpenAI(api_key="sk-test", base_url=url, max_retries=0) as client:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            spend("2")
            sent = len(standin.requests)
            with pytest.raises(lct.BudgetExceededError) as raised:
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert len(standin.requests) == sent
    assert raised.value.blocked
    assert len(events) == 2
