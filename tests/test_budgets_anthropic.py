"""Budgets with the real Anthropic SDK (anthropic 2.x) over HTTP to the stand-in server.

block: the request never reaches the server; raise: the call is made and
recorded, then BudgetExceededError replaces its result; notify: the callback
fires once per crossing and the SDK's own result comes back untouched.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import pytest

import llm_cost_tracker as lct
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.budgets import BudgetAlert
from llm_cost_tracker.cli._standin import StandInServer
from llm_cost_tracker.testing import capture_events

# Spend is counted per UTC day and month on the library's clock: no test here
# may straddle midnight (conftest.same_utc_day).
pytestmark = pytest.mark.usefixtures("same_utc_day")

SCENARIO = "anthropic_cache_read"
MODEL = "claude-3-5-sonnet-20240620"
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]


def client(standin: StandInServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="sk-test", base_url=standin.scenario_url(SCENARIO), max_retries=0
    )


def one_call_cost(standin: StandInServer) -> Decimal:
    """What one call to the scenario costs, priced by the bundled catalog."""
    with capture_events(instrument=["anthropic"]) as events, client(standin) as c:
        c.messages.create(model=MODEL, max_tokens=1, messages=MESSAGES)
    (event,) = events
    assert event.cost.status == "priced"
    assert event.cost.total is not None
    assert event.cost.total > 0
    return event.cost.total


def test_block_never_sends_the_request(standin: StandInServer) -> None:
    cost = one_call_cost(standin)
    limit = cost * 3 / 2
    with (
        capture_events(
            instrument=["anthropic"], budgets=lct.Budgets(monthly=limit, on_exceed="block")
        ) as events,
        client(standin) as c,
    ):
        c.messages.create(model=MODEL, max_tokens=1, messages=MESSAGES)  # spent 1x
        # Under the limit, but this request's own estimate does not fit: 100,000
        # output tokens at Claude 3.5 Sonnet's $15/M are $1.50.
        sent = len(standin.requests)
        with pytest.raises(lct.BudgetExceededError) as too_big:
            c.messages.create(model=MODEL, max_tokens=100_000, messages=MESSAGES)
        assert len(standin.requests) == sent
        c.messages.create(model=MODEL, max_tokens=1, messages=MESSAGES)  # fits: spent 2x
        sent = len(standin.requests)
        with pytest.raises(lct.BudgetExceededError) as over:
            c.messages.create(model=MODEL, max_tokens=1, messages=MESSAGES)
        with (
            pytest.raises(lct.BudgetExceededError),
            c.messages.stream(model=MODEL, max_tokens=1, messages=MESSAGES) as stream,
        ):
            stream.get_final_message()
        assert len(standin.requests) == sent  # neither reached the server
        assert len(events) == 2  # and nothing was recorded for them
    error = too_big.value
    assert error.blocked is True
    assert (error.budget_type, error.scope, error.spent, error.limit) == (
        "monthly",
        "global",
        cost,
        limit,
    )
    assert error.estimate is not None
    assert Decimal("1.5") <= error.estimate < Decimal("1.51")
    assert over.value.blocked is True
    assert over.value.spent == cost * 2
    assert over.value.estimate is not None
    assert over.value.estimate > 0
    assert "monthly budget exceeded" in str(over.value)
    assert STATS.get("budget.blocked") == 3


async def test_block_async_never_sends_the_request(standin: StandInServer) -> None:
    cost = one_call_cost(standin)
    with capture_events(
        instrument=["anthropic"], budgets=lct.Budgets(daily=cost / 2, on_exceed="block")
    ) as events:
        async with anthropic.AsyncAnthropic(
            api_key="sk-test", base_url=standin.scenario_url(SCENARIO), max_retries=0
        ) as c:
            await c.messages.create(model=MODEL, max_tokens=1, messages=MESSAGES)
            sent = len(standin.requests)
            with pytest.raises(lct.BudgetExceededError) as raised:
                await c.messages.create(model=MODEL, max_tokens=1, messages=MESSAGES)
            assert len(standin.requests) == sent
    assert raised.value.blocked is True
    assert raised.value.budget_type == "daily"
    assert raised.value.spent == cost
    assert len(events) == 1


def test_raise_records_the_call_then_raises(standin: StandInServer) -> None:
    with (
        capture_events(
            instrument=["anthropic"],
            budgets=lct.Budgets(daily="0.0000001", on_exceed="raise"),
        ) as events,
        client(standin) as c,
    ):
        sent = len(standin.requests)
        with pytest.raises(lct.BudgetExceededError) as raised:
            c.messages.create(model=MODEL, max_tokens=1, messages=MESSAGES)
        assert len(standin.requests) == sent + 1  # the call was made
        (event,) = events  # and recorded, priced
        assert event.provider == "anthropic"
        assert event.usage is not None
        assert event.usage.tokens.get("cache_read", 0) > 0
        assert event.cost.total is not None
        error = raised.value
        assert error.blocked is False
        assert error.event is event
        assert error.spent == event.cost.total
        assert error.limit == Decimal("0.0000001")
        with pytest.raises(lct.BudgetExceededError):  # still over: the next call raises too
            c.messages.create(model=MODEL, max_tokens=1, messages=MESSAGES)
        assert len(events) == 2


def test_notify_fires_once_and_returns_the_sdk_result(standin: StandInServer) -> None:
    alerts: list[BudgetAlert] = []
    cost = one_call_cost(standin)
    with (
        capture_events(
            instrument=["anthropic"],
            budgets=lct.Budgets(daily=cost * 3 / 2, monthly=cost * 5 / 2, callback=alerts.append),
        ) as events,
        client(standin) as c,
    ):
        results = [
            c.messages.create(model=MODEL, max_tokens=1, messages=MESSAGES) for _ in range(4)
        ]
    assert all(isinstance(r, anthropic.types.Message) for r in results)
    assert all(r.usage.cache_read_input_tokens for r in results)
    assert len(events) == 4
    # daily crossed on the 2nd call, monthly on the 3rd; once each.
    assert [(a.budget_type, a.total, a.event.id) for a in alerts] == [
        ("daily", cost * 2, events[1].id),
        ("monthly", cost * 3, events[2].id),
    ]
    assert all(a.on_exceed == "notify" and a.scope == "global" for a in alerts)


def test_the_preflight_judges_the_tags_the_call_is_recorded_with(standin: StandInServer) -> None:
    """A callable default_tags runs once per request: the preflight and the event share its answer."""
    tenants = iter(["acme", "globex", "acme", "globex"])
    produced: list[str] = []

    def default_tags() -> dict[str, str]:
        produced.append(next(tenants))
        return {"tenant_id": produced[-1]}

    cost = one_call_cost(standin)
    budgets = lct.Budgets(per_tag={"tenant_id": {"monthly": cost / 2}}, on_exceed="block")
    with (
        capture_events(
            instrument=["anthropic"], default_tags=default_tags, budgets=budgets
        ) as events,
        client(standin) as c,
    ):
        c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)  # acme
        c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)  # globex
        sent = len(standin.requests)
        with pytest.raises(lct.BudgetExceededError, match="tenant_id=acme"):
            c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
        assert len(standin.requests) == sent
    assert produced == ["acme", "globex", "acme"]  # once per request, not once more for the check
    assert [e.tags["tenant_id"] for e in events] == ["acme", "globex"]
