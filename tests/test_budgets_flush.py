"""``flush()`` means done: the calls are exported and the budget callbacks they triggered have run."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import llm_cost_tracker as lct
from llm_cost_tracker.budgets import BudgetAlert

PRICES = {"test/flat": {"input": 1000, "output": 1000}}  # $0.001 a token

# The budget is daily, on the library's clock: no test here may straddle
# midnight (conftest.same_utc_day).
pytestmark = pytest.mark.usefixtures("same_utc_day")


@pytest.mark.parametrize("round_", range(5))
def test_a_crossing_callback_has_run_when_flush_returns(tmp_path: Path, round_: int) -> None:
    """Six calls cross a daily notify budget; the callback, claimed through the ledger, has run."""
    fired: list[tuple[BudgetAlert, str]] = []
    lct.configure(
        database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        instrument=None,
        pricing_overrides=PRICES,
        budgets=lct.Budgets(
            daily="0.05",
            on_exceed="notify",
            callback=lambda alert: fired.append((alert, threading.current_thread().name)),
        ),
    )
    try:
        for _ in range(6):
            lct.track(provider="test", model="flat", usage={"input": 5, "output": 5})  # $0.01
        assert lct.flush(10)
        assert len(fired) == 1, fired  # no sleep: flush() waited for it
        alert, thread = fired[0]
        assert alert.budget_type == "daily"
        assert alert.total > alert.limit
        assert thread != threading.current_thread().name  # it ran off the caller's thread
    finally:
        lct.shutdown()
