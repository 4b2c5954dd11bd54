"""Caller-thread cost of budgets: the block preflight, and track() with a budget.

The preflight (``runtime.before_call``) runs before every instrumented request
in ``on_exceed="block"`` mode, with a warm cache (the model's rates already
learned, totals in memory): it must stay under 5 us median. Baseline, measured
in the same run: a hook that only reads one dict entry (the least any
preflight can cost).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
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


def cpu_us(func: Callable[[], object], *, batch: int = 2000, repeats: int = 50) -> float:
    """Median CPU microseconds per call (``thread_time``): what the call costs this thread,
    whatever else the machine is running (wall-clock medians swing several-fold on a busy box)."""
    samples = []
    for _ in range(repeats):
        started = time.thread_time()
        for _ in range(batch):
            func()
        samples.append((time.thread_time() - started) / batch * 1e6)
    return statistics.median(samples)


class Discard:
    name = "discard"

    def export(self, events: Sequence[UsageEvent]) -> None:
        return None

    def shutdown(self) -> None:
        return None


def _preflight(budgets: lct.Budgets) -> tuple[float, float]:
    lct.configure(database_url=None, exporters=[Discard()], instrument=None, budgets=budgets)
    runtime = get_runtime()
    assert runtime is not None
    before = runtime.before_call
    assert before is not None
    before("openai", "gpt-4o-mini", REQUEST)  # warm: the model's rates are learned once

    def call() -> None:
        before("openai", "gpt-4o-mini", REQUEST)

    wall = per_call_us(call, batch=2000, repeats=50)
    cpu = cpu_us(call)
    lct.shutdown()
    return wall, cpu


def main() -> None:
    table = {"openai": Decimal(1)}

    def baseline() -> None:
        table.get("openai")

    base = per_call_us(baseline, batch=2000)
    base_cpu = cpu_us(baseline)
    report("dict lookup in a hook (baseline), wall", base)
    report("dict lookup in a hook (baseline), CPU", base_cpu)

    cases = [
        ("monthly, 4-message chat", lct.Budgets(monthly=10**6, on_exceed="block"), False),
        (
            "monthly + daily + per_call",
            lct.Budgets(monthly=10**6, daily=10**5, per_call=10, on_exceed="block"),
            False,
        ),
        (
            "monthly + per-tag (2 tags in scope)",
            lct.Budgets(monthly=10**6, per_tag={"tenant_id": {"monthly": 1000}}, on_exceed="block"),
            True,
        ),
    ]
    for name, budgets, tagged in cases:
        if tagged:
            with lct.with_tags(tenant_id="acme", feature="chat"):
                wall, cpu = _preflight(budgets)
        else:
            wall, cpu = _preflight(budgets)
        report(f"preflight: {name}, wall", wall, base)
        report(f"preflight: {name}, CPU", cpu, base_cpu, target_us=5.0)

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
