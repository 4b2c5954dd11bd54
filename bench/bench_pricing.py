"""The pricing stage per event: a 4-component Claude call (input, cache read, 5m write, output).

Measured in the same run, rounds interleaved:

- baseline: ``dataclasses.replace(event, cost=...)`` with a ready-made Cost,
  what a stage attaching a cost the plain way pays anyway;
- records floor: building the 4 LineItems and the Cost with their constructors
  and copying the event with ``with_cost``, as the stage does, no pricing at all;
- the stage, and ``stage.cost`` alone: ``price_usage``, the one pricing path
  (entry and rates memoized in the catalog, a line per component);
- an embedding-shaped event (``output: 0``: zero counts make no line) and a
  long-context event (210k input tokens: the model's >200k tier, for the whole
  call), which take the same path with other rates.

Target: under 10 us median per event.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone

from llm_cost_tracker._events import Cost, LineItem, TokenUsage, UsageEvent
from llm_cost_tracker.pricing import PriceStage, bundled_catalog, with_cost

ROUNDS = 60
PER_ROUND = 500


def _event(i: int, **tokens: int) -> UsageEvent:
    return UsageEvent(
        provider="anthropic",
        model="claude-sonnet-4-5-20250929",
        operation="messages",
        usage=TokenUsage(
            tokens=tokens
            or {"input": 2048 + i, "cache_read": 1800, "cache_write_5m": 148, "output": 503}
        ),
        occurred_at=datetime(2026, 11, 20, tzinfo=timezone.utc),
    )


def _measure(
    functions: dict[str, tuple[Callable[[UsageEvent], object], list[UsageEvent]]],
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per-event wall and CPU (thread) times in us, rounds interleaved so load hits all alike."""
    wall: dict[str, list[float]] = {name: [] for name in functions}
    cpu: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(ROUNDS):
        for name, (call, events) in functions.items():
            cpu_started = time.thread_time()
            started = time.perf_counter()
            for event in events:
                call(event)
            wall[name].append((time.perf_counter() - started) / len(events) * 1e6)
            cpu[name].append((time.thread_time() - cpu_started) / len(events) * 1e6)
    return wall, cpu


def _noop(event: UsageEvent) -> UsageEvent:
    return event


def main() -> None:
    started = time.perf_counter()
    bundled_catalog()
    load_ms = (time.perf_counter() - started) * 1e3
    events = [_event(i) for i in range(PER_ROUND)]
    stage = PriceStage()
    cold_started = time.perf_counter()
    stage(events[0])  # the first event finds the entry and resolves its rates
    cold_us = (time.perf_counter() - cold_started) * 1e6
    ready = stage(events[0]).cost
    fixed = Cost(total=ready.total, status=ready.status, line_items=ready.line_items)

    def baseline(event: UsageEvent) -> UsageEvent:
        return replace(event, cost=fixed)

    items = ready.line_items

    def records(event: UsageEvent) -> UsageEvent:
        # The floor of this interface: build the 4 LineItems and the Cost, copy the event.
        lines = tuple(
            LineItem(i.component, i.unit, i.quantity, i.unit_price, i.cost) for i in items
        )
        cost = Cost(total=ready.total, status="priced", line_items=lines, snapshot={})
        return with_cost(event, cost)

    embeddings = [_event(i, input=900 + i, output=0) for i in range(PER_ROUND)]
    long_context = [
        _event(i, input=150_000 + i, cache_read=60_000, output=900) for i in range(PER_ROUND)
    ]
    stage(embeddings[0])
    stage(long_context[0])
    load_before = os.getloadavg()[0]
    samples, cpu_samples = _measure(
        {
            "noop": (_noop, events),
            "baseline": (baseline, events),
            "records": (records, events),
            "stage": (stage, events),
            "cost": (stage.cost, events),
            "zero": (stage, embeddings),
            "tier": (stage, long_context),
        }
    )
    load = max(load_before, os.getloadavg()[0])
    median = {name: statistics.median(values) for name, values in samples.items()}
    best = {name: min(values) for name, values in samples.items()}
    cpu = {name: statistics.median(values) for name, values in cpu_samples.items()}
    print(f"{'catalog load (first use)':40}{load_ms:8.2f}ms")
    print(f"{'first event after load (cold caches)':40}{cold_us:8.2f}us")
    rows = [
        ("baseline replace(event, cost=...)", "baseline"),
        ("records floor (4 LineItems, Cost, copy)", "records"),
        ("PriceStage, 4-component event", "stage"),
        ("  of which pricing (stage.cost)", "cost"),
        ("PriceStage, 2 components, output 0", "zero"),
        ("PriceStage, in the >200k-token tier", "tier"),
    ]
    print(
        f"{'':40}{'median':>10}{'best':>10}{'cpu med':>10}"
        f"   ({ROUNDS} rounds x {PER_ROUND} events, load average {load:.1f})"
    )
    for label, name in rows:
        print(f"{label:40}{median[name]:8.2f}us{best[name]:8.2f}us{cpu[name]:8.2f}us")
    for label, name in (("baseline", "baseline"),):
        print(
            f"{'ratio stage / ' + label:40}{median['stage'] / median[name]:9.2f}x"
            f"{best['stage'] / best[name]:9.2f}x{cpu['stage'] / cpu[name]:9.2f}x"
        )
    print(
        f"{'pricing logic above the records floor':40}"
        f"{median['stage'] - median['records']:8.2f}us{best['stage'] - best['records']:8.2f}us"
        f"{cpu['stage'] - cpu['records']:8.2f}us"
    )
    print(
        f"{'machine calibration: empty stage call':40}"
        f"{median['noop'] * 1000:7.0f}ns{best['noop'] * 1000:8.0f}ns{cpu['noop'] * 1000:8.0f}ns"
    )
    # Wall-clock medians on a shared machine include the time other processes hold the CPU;
    # the CPU-time median is what the stage itself costs. Both are reported.
    for label, value in (("wall-clock", median["stage"]), ("CPU-time", cpu["stage"])):
        verdict = "met" if value < 10 else "NOT met"
        print(f"target < 10 us median per event ({label}): {verdict}")


if __name__ == "__main__":
    main()
