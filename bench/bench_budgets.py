"""Caller-thread cost of budgets: the block preflight, and track() with a budget.

The preflight (``runtime.before_call``) runs before every instrumented request
in ``on_exceed="block"`` mode, with a warm cache (the model's rates already
learned, totals in memory): it must stay under 5 us median. Baseline, measured
in the same run: a hook that only reads one dict entry (the least any
preflight can cost).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import llm_cost_tracker as lct
from llm_cost_tracker import UsageEvent
from llm_cost_tracker._api import get_runtime

from ._timing import per_call_us, report

REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
        {"role": "user", "content": "Summarize the attached meeting notes in three bullets."},
        {"role": "assistant", "content": "Sure: which notes?"},
        {"role": "user", "content": "The ones from Tuesday's planning meeting, please."},
    ],
    "max_tokens": 300,
}


class Discard:
    name = "discard"

    def export(self, events: Sequence[UsageEvent]) -> None:
        return None

    def shutdown(self) -> None:
        return None


def _preflight(budgets: lct.Budgets) -> float:
    lct.configure(database_url=None, exporters=[Discard()], instrument=None, budgets=budgets)
    runtime = get_runtime()
    assert runtime is not None
    before = runtime.before_call
    assert before is not None
    before("openai", "gpt-4o-mini", REQUEST)  # warm: the model's rates are learned once
    result = per_call_us(lambda: before("openai", "gpt-4o-mini", REQUEST), batch=2000, repeats=50)
    lct.shutdown()
    return result


def main() -> None:
    table = {"openai": Decimal(1)}

    def baseline() -> None:
        table.get("openai")

    base = per_call_us(baseline, batch=2000)
    report("dict lookup in a hook (baseline)", base)

    monthly = _preflight(lct.Budgets(monthly=10**6, on_exceed="block"))
    report("preflight: monthly, 4-message chat", monthly, base, target_us=5.0)
    both = _preflight(lct.Budgets(monthly=10**6, daily=10**5, per_call=10, on_exceed="block"))
    report("preflight: monthly + daily + per_call", both, base, target_us=5.0)
    with lct.with_tags(tenant_id="acme", feature="chat"):
        tagged = _preflight(
            lct.Budgets(monthly=10**6, per_tag={"tenant_id": {"monthly": 1000}}, on_exceed="block")
        )
    report("preflight: monthly + per-tag (2 tags in scope)", tagged, base, target_us=5.0)

    usage = {"input": 1500, "output": 320, "cache_read": 200}

    def track() -> None:
        lct.track(provider="openai", model="gpt-4o-mini", usage=usage)

    lct.configure(database_url=None, exporters=[Discard()], instrument=None)
    plain = per_call_us(track, batch=500, repeats=30)
    lct.shutdown()
    lct.configure(
        database_url=None,
        exporters=[Discard()],
        instrument=None,
        budgets=lct.Budgets(monthly=10**9, daily=10**8, on_exceed="raise"),
    )
    budgeted = per_call_us(track, batch=500, repeats=30)
    lct.shutdown()
    lct.configure(
        database_url=None,
        exporters=[Discard()],
        instrument=None,
        budgets=lct.Budgets(monthly=10**9, daily=10**8, on_exceed="notify"),
    )
    notified = per_call_us(track, batch=500, repeats=30)
    lct.shutdown()
    report("track() without budgets", plain, base)
    report("track() with notify budgets (checked on the worker)", notified, base)
    report("track() with raise budgets (priced in the caller)", budgeted, base)
    print(
        f"  caller-thread overhead on track(): notify {notified - plain:+.2f} us, "
        f"raise/block {budgeted - plain:+.2f} us per call",
        flush=True,
    )
