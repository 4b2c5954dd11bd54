"""The block preflight's quick path: floats far from a limit, exact Decimal near it.

Far from every limit the preflight answers from cached float rooms and rates
without asking the pricing engine; near a limit the decision is the exact one
(``spent + estimate > limit``, strictly greater, in Decimal).
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import llm_cost_tracker as lct
from llm_cost_tracker import budgets
from llm_cost_tracker._api import get_runtime
from llm_cost_tracker._events import TokenUsage
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.budgets._estimate import (
    MAX_INPUT_TOKENS,
    MAX_NODES,
    estimate_usage,
    input_chars,
)
from llm_cost_tracker.budgets._guard import BudgetGuard, guard_of

# The preflight keeps a model's rates for the UTC hour, and spend counts per UTC
# day and month, on the library's clock: no test here may straddle an hour
# (conftest.same_utc_hour), or "the engine is not asked" would see it asked again.
pytestmark = pytest.mark.usefixtures("same_utc_hour")

# $1 per million input tokens, $2 per million output tokens.
PRICES = {"test/flat": {"input": "1", "output": "2"}}
MICRO = 10**6


def configure(**budget_kwargs: Any) -> BudgetGuard:
    lct.configure(
        database_url=None,
        instrument=None,
        synchronous=True,
        pricing_overrides=PRICES,
        budgets=lct.Budgets(on_exceed="block", **budget_kwargs),
    )
    runtime = get_runtime()
    assert runtime is not None
    guard = guard_of(runtime)
    assert guard is not None
    return guard


def spend(dollars: str, **tags: object) -> None:
    tokens = int(Decimal(dollars) * MICRO)
    lct.track(provider="test", model="flat", usage={"input": tokens}, tags=tags or None)


def tokens(n: int) -> dict[str, Any]:
    """A request whose estimate is exactly ``n`` input tokens ($n / 1e6) and no output."""
    return {"input": "a" * (4 * n)}


def count_engine_calls(guard: BudgetGuard) -> list[TokenUsage]:
    """Record every time the preflight asks the pricing engine for an estimate."""
    assert guard.estimator is not None
    asked: list[TokenUsage] = []
    engine = guard.estimator._estimate

    def estimate(provider: str, model: str, usage: TokenUsage, mode: str) -> Decimal | None:
        asked.append(usage)
        return engine(provider, model, usage, mode)

    guard.estimator._estimate = estimate
    return asked


def test_at_the_limit_is_allowed_one_token_over_is_blocked() -> None:
    configure(monthly="1")
    spend("0.99999")  # $0.00001 left: exactly 10 input tokens
    budgets.check("test", "flat", tokens(10))  # spent + estimate == limit: not over
    with pytest.raises(lct.BudgetExceededError) as raised:
        budgets.check("test", "flat", tokens(11))
    assert raised.value.spent == Decimal("0.99999")
    assert raised.value.estimate == Decimal("0.000011")
    # Output tokens count at their own rate: 5 output tokens are $0.00001 too.
    budgets.check("test", "flat", {"max_tokens": 5})
    with pytest.raises(lct.BudgetExceededError):
        budgets.check("test", "flat", {"max_tokens": 6})


class Unreadable(list[Any]):
    """A request field that fails when anything walks it: shows whether the request was measured."""

    def __iter__(self) -> Any:
        raise RuntimeError("measured")


def test_a_request_is_measured_only_when_its_largest_possible_cost_comes_near_a_limit() -> None:
    # At $1 per million input tokens, the largest request there can be
    # (MAX_INPUT_TOKENS of input) costs $10, and 1,000 output tokens $0.002.
    request = {"messages": Unreadable(), "max_tokens": 1000}
    configure(monthly="100")
    budgets.check("test", "flat", request)  # $100 of room: > 2 x $10.002, not measured
    configure(monthly="20.005")
    budgets.check("test", "flat", request)
    configure(monthly="20.004")  # 2 x $10.002 does not fit: measure it
    with pytest.raises(RuntimeError, match="measured"):
        budgets.check("test", "flat", request)
    configure(per_call="20")  # the same for a per-call limit
    with pytest.raises(RuntimeError, match="measured"):
        budgets.check("test", "flat", request)


def test_the_input_estimate_stops_at_the_largest_context_window() -> None:
    chunk = "a" * 4_000_000
    request = {"input": [chunk] * 11, "max_tokens": 7}  # 44M characters, 11M tokens by size
    assert estimate_usage(request).tokens == {"input": MAX_INPUT_TOKENS, "output": 7}
    configure(monthly="10.000014")  # exactly the capped estimate: $10 + $0.000014
    budgets.check("test", "flat", request)
    configure(monthly="10.000013")
    with pytest.raises(lct.BudgetExceededError) as raised:
        budgets.check("test", "flat", request)
    assert raised.value.estimate == Decimal("10.000014")


def test_per_call_limit_is_exact_too() -> None:
    configure(per_call="0.00001")
    budgets.check("test", "flat", tokens(10))
    with pytest.raises(lct.BudgetExceededError, match="per_call budget exceeded"):
        budgets.check("test", "flat", tokens(11))


def test_far_from_the_limit_the_engine_is_not_asked() -> None:
    guard = configure(monthly="100", daily="50", per_call="1")
    budgets.check("test", "flat", tokens(1000))  # learns the model's rates
    asked = count_engine_calls(guard)
    for _ in range(50):
        budgets.check("test", "flat", {**tokens(1000), "max_tokens": 500})
    assert asked == []
    # Within twice the estimate of the daily room: the engine prices it exactly.
    spend("49.997")  # $0.003 left; this request is estimated at $0.002
    budgets.check("test", "flat", {**tokens(1000), "max_tokens": 500})
    assert [u.tokens for u in asked] == [{"input": 1000, "output": 500}]
    with pytest.raises(lct.BudgetExceededError, match="daily budget exceeded"):
        budgets.check("test", "flat", {**tokens(2001), "max_tokens": 500})  # $0.003001


def test_the_room_follows_every_recorded_call() -> None:
    configure(monthly="0.001")
    for _ in range(9):
        budgets.check("test", "flat", tokens(100))  # $0.0001 each: fits
        spend("0.0001")
    budgets.check("test", "flat", tokens(100))  # the 10th fits exactly
    spend("0.0001")
    with pytest.raises(lct.BudgetExceededError):
        budgets.check("test", "flat", tokens(1))
    assert [v.spent for v in budgets.status()] == [Decimal("0.001")]


def test_concurrent_preflights_and_calls_never_let_an_over_budget_request_through() -> None:
    configure(monthly="0.05")
    stop = threading.Event()
    let_through_when_over: list[Decimal] = []

    def monthly_spent() -> Decimal:
        return sum((v.spent for v in budgets.status() if v.budget_type == "monthly"), Decimal(0))

    def preflight() -> None:
        while not stop.is_set():
            # Spend only grows: a check that starts after the total was over must block.
            before = monthly_spent()
            try:
                budgets.check("test", "flat", tokens(1))
            except lct.BudgetExceededError:
                continue
            if before > Decimal("0.05"):
                let_through_when_over.append(before)

    threads = [threading.Thread(target=preflight) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(100):
        spend("0.001")  # reaches $0.10
        time.sleep(0.0002)  # let the preflight threads in between calls
    stop.set()
    for thread in threads:
        thread.join()
    assert let_through_when_over == []
    assert STATS.get("budget.blocked") > 0


def test_per_tag_budgets_follow_the_tags_in_scope() -> None:
    configure(monthly="100", per_tag={"tenant_id": {"daily": "0.01"}})
    spend("0.02", tenant_id="acme")
    outer = lct.with_tags(tenant_id="acme")
    with outer:
        for _ in range(3):  # the same tags mapping every time
            with pytest.raises(lct.BudgetExceededError) as raised:
                budgets.check("test", "flat", tokens(1))
            assert raised.value.scope == "tenant_id=acme"
        with lct.with_tags(tenant_id="globex"):
            budgets.check("test", "flat", tokens(1))
        with lct.with_tags(feature="chat"), pytest.raises(lct.BudgetExceededError):
            budgets.check("test", "flat", tokens(1))  # still acme underneath
    budgets.check("test", "flat", tokens(1))  # no tenant: only the global budget applies
    assert STATS.get("budget.blocked") == 4


def test_default_tags_count_for_per_tag_budgets() -> None:
    lct.configure(
        database_url=None,
        instrument=None,
        synchronous=True,
        pricing_overrides=PRICES,
        default_tags={"tenant_id": "acme"},
        budgets=lct.Budgets(per_tag={"tenant_id": {"monthly": "0.01"}}, on_exceed="block"),
    )
    spend("0.02")  # carries the default tag
    with pytest.raises(lct.BudgetExceededError, match="tenant_id=acme"):
        budgets.check("test", "flat", tokens(1))
    with lct.with_tags(tenant_id="globex"):
        budgets.check("test", "flat", tokens(1))


def test_unknown_price_blocks_only_a_budget_already_over() -> None:
    configure(monthly="0.001")
    budgets.check("test", "no-such-model", tokens(10**5))
    spend("0.001")  # at the limit, not over
    budgets.check("test", "no-such-model", tokens(10**5))
    spend("0.000001")
    with pytest.raises(lct.BudgetExceededError, match=r"estimated unknown\)"):
        budgets.check("test", "no-such-model", tokens(1))


def test_shared_totals_refresh_the_room(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'costs.db'}"
    lct.configure(
        database_url=url,
        instrument=None,
        pricing_overrides=PRICES,
        export_interval=0.05,
        budgets=lct.Budgets(monthly="1", on_exceed="block", refresh_interval=0.05),
    )
    runtime = get_runtime()
    assert runtime is not None
    guard = guard_of(runtime)
    assert guard is not None
    assert guard.shared is not None
    budgets.check("test", "flat", tokens(10))  # the room is known: $1
    # Spend that only the database knows about (another process's), then a read.
    guard.apply_totals({("monthly", guard._current_periods()[0], "global"): Decimal("1.5")}, [])
    with pytest.raises(lct.BudgetExceededError, match=r"spent \$1.50"):
        budgets.check("test", "flat", tokens(10))


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value, {"k": "yy", "n": None, "i": 3}]
    return value


class Part:
    def __init__(self, text: str) -> None:
        self.text = text
        self.count = 7


def reference_chars(value: Any) -> int:
    """The definition: every string under the value, however it is nested."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(reference_chars(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(reference_chars(v) for v in value)
    if value is None or isinstance(value, (int, float, bool)):
        return 0
    return reference_chars(vars(value))


@pytest.mark.parametrize(
    "request_",
    [
        {"messages": [{"role": "user", "content": "hello"}, "bare", ("t", "u")]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "abc"}]}]},
        {"messages": [{"role": "user", "content": None, "tool_calls": [{"f": "xyz"}]}]},
        {"messages": [{"role": "u", "content": "c"}] * 1500},  # past the tight loop's length
        {"system": "s" * 9, "messages": [], "tools": [{"name": "n", "input_schema": {"a": "b"}}]},
        {"contents": [Part("gemini"), Part("text")], "model": "ignored"},
        {"input": nested(30), "instructions": "be brief", "prompt": ("p", 5)},
        {"model": "not input", "max_tokens": 5},
    ],
)
def test_input_chars_counts_every_string_in_every_shape(request_: dict[str, Any]) -> None:
    expected = sum(
        reference_chars(v)
        for k, v in request_.items()
        if k in {"messages", "input", "prompt", "system", "instructions", "contents", "tools"}
    )
    assert input_chars(request_) == expected


def test_a_huge_request_walk_is_bounded_and_counted() -> None:
    huge = {"input": [["x"]] * (MAX_NODES * 2)}
    assert input_chars(huge) < MAX_NODES * 2
    assert STATS.get("budget.estimate_truncated") == 1


TIERED = {
    "test/tiered": {
        "rates": {"input": "1", "output": "2"},
        # Past 200,000 input tokens the whole call costs four times as much.
        "tiers": [{"above_input_tokens": 200_000, "rates": {"input": "4", "output": "8"}}],
    }
}


def configure_tiered(**budget_kwargs: Any) -> None:
    lct.configure(
        database_url=None,
        instrument=None,
        synchronous=True,
        pricing_overrides=TIERED,
        budgets=lct.Budgets(on_exceed="block", **budget_kwargs),
    )


def test_long_context_prices_bound_the_largest_request_and_decide_exactly() -> None:
    # The largest request costs 10M x $4/M = $40 at the long-context rate
    # ($10 at the base rate): $50 of room is not enough to skip measuring it.
    request = {"messages": Unreadable(), "max_tokens": 10}
    configure_tiered(monthly="50")
    with pytest.raises(RuntimeError, match="measured"):
        budgets.check("test", "tiered", request)
    configure_tiered(monthly="81")
    budgets.check("test", "tiered", request)  # > 2 x $40.00008: not measured
    # 300,000 input tokens are priced at the long-context rate: $1.20, exactly.
    long_prompt = {"input": "a" * 1_200_000}
    configure_tiered(monthly="1.2")
    budgets.check("test", "tiered", long_prompt)
    configure_tiered(monthly="1.199999")
    with pytest.raises(lct.BudgetExceededError) as raised:
        budgets.check("test", "tiered", long_prompt)
    assert raised.value.estimate == Decimal("1.2")


def test_rates_are_learned_again_every_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    guard = configure(monthly="100")
    budgets.check("test", "flat", tokens(10))
    asked = count_engine_calls(guard)
    budgets.check("test", "flat", tokens(10))
    assert asked == []  # cached
    import llm_cost_tracker.budgets._guard as guard_module

    later = time.time() + 3600
    monkeypatch.setattr(guard_module.time, "time", lambda: later)
    budgets.check("test", "flat", tokens(10))
    assert len(asked) == 4  # prices can change on the hour (time-of-day periods): asked again
    budgets.check("test", "flat", tokens(10))
    assert len(asked) == 4


def test_without_a_long_context_price_the_largest_request_is_bounded_at_the_base_rate() -> None:
    lct.configure(
        database_url=None,
        instrument=None,
        synchronous=True,
        pricing_overrides={
            "test/moded": {
                "rates": {"input": "1", "output": "2"},
                "modes": {"priority": {"input": "2", "output": "4"}},  # twice the rates...
                # ...but the long-context tier has no priority price.
                "tiers": [{"above_input_tokens": 200_000, "rates": {"input": "4", "output": "8"}}],
            }
        },
        budgets=lct.Budgets(monthly="30", on_exceed="block"),
    )
    request = {"messages": Unreadable(), "service_tier": "priority"}
    # 10M tokens at the priority base rate ($2/M) is $20: $30 of room is not enough.
    with pytest.raises(RuntimeError, match="measured"):
        budgets.check("test", "moded", request)
    budgets.check("test", "moded", {"input": "a" * 4000, "service_tier": "priority"})
