"""The pricing stage per event: a 4-component Claude call (input, cache read, 5m write, output).

Baseline, measured in the same run: ``dataclasses.replace(event, cost=...)``
with a ready-made Cost, i.e. what any stage that attaches a cost pays anyway.
Target: under 10 us median per event.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from datetime import datetime, timezone

from llm_cost_tracker._events import Cost, TokenUsage, UsageEvent
from llm_cost_tracker.pricing import PriceStage, bundled_catalog

ROUNDS = 30
PER_ROUND = 2_000


def _event(i: int) -> UsageEvent:
    return UsageEvent(
        provider="anthropic",
        model="claude-sonnet-4-5-20250929",
        operation="messages",
        usage=TokenUsage(
            tokens={"input": 2048 + i, "cache_read": 1800, "cache_write_5m": 148, "output": 503}
        ),
        occurred_at=datetime(2026, 11, 20, tzinfo=timezone.utc),
    )


def _median_us(fn: object, events: list[UsageEvent]) -> float:
    call = fn  # a stage: event -> event
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for event in events:
            call(event)  # type: ignore[operator]
        samples.append((time.perf_counter() - started) / len(events) * 1e6)
    return statistics.median(samples)


def _noop(event: UsageEvent) -> UsageEvent:
    return event


def main() -> None:
    started = time.perf_counter()
    bundled_catalog()
    load_ms = (time.perf_counter() - started) * 1e3
    events = [_event(i) for i in range(PER_ROUND)]
    stage = PriceStage()
    stage(events[0])  # warm the match and rate caches
    ready = stage(events[0]).cost
    fixed = Cost(total=ready.total, status=ready.status, line_items=ready.line_items)

    def baseline(event: UsageEvent) -> UsageEvent:
        return replace(event, cost=fixed)

    base = _median_us(baseline, events)
    priced = _median_us(stage, events)
    cost_only = _median_us(stage.cost, events)
    calibration = _median_us(_noop, events)
    cold_stage = PriceStage()
    cold_started = time.perf_counter()
    cold_stage(_event(0))
    print(f"catalog load (first use):            {load_ms:8.2f} ms")
    print(
        f"first event after load:               {(time.perf_counter() - cold_started) * 1e6:8.2f} us"
    )
    print(f"baseline replace(event, cost=...):    {base:8.2f} us/event (median of {ROUNDS} rounds)")
    print(
        f"PriceStage, 4-component event:        {priced:8.2f} us/event (median of {ROUNDS} rounds)"
    )
    print(f"  of which pricing (stage.cost):      {cost_only:8.2f} us/event")
    print(f"ratio vs baseline:                    {priced / base:8.2f}x")
    print(f"machine calibration (empty call):     {calibration * 1000:8.0f} ns/call")
    print(f"target < 10 us:                       {'met' if priced < 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
