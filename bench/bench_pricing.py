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
from llm_cost_tracker.pricing import PriceStage, bundled_catalog, with_cost
from llm_cost_tracker.pricing._records import make_cost, make_line

ROUNDS = 60
PER_ROUND = 500


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


def _measure(functions: dict[str, object], events: list[UsageEvent]) -> dict[str, list[float]]:
    """Per-event times in us, rounds interleaved so that load on a shared machine hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(ROUNDS):
        for name, fn in functions.items():
            call = fn  # a stage: event -> event
            started = time.perf_counter()
            for event in events:
                call(event)  # type: ignore[operator]
            samples[name].append((time.perf_counter() - started) / len(events) * 1e6)
    return samples


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

    items = ready.line_items

    def records(event: UsageEvent) -> UsageEvent:
        # The floor of this interface: build the 4 LineItems and the Cost, copy the event
        # (with the stage's own fast record builders).
        lines = tuple(
            make_line(i.component, i.unit, i.quantity, i.unit_price, i.cost) for i in items
        )
        return with_cost(event, make_cost(ready.total, "priced", lines, {}))

    samples = _measure(
        {
            "noop": _noop,
            "baseline": baseline,
            "records": records,
            "stage": stage,
            "cost": stage.cost,
        },
        events,
    )
    median = {name: statistics.median(values) for name, values in samples.items()}
    best = {name: min(values) for name, values in samples.items()}
    cold_stage = PriceStage()
    cold_started = time.perf_counter()
    cold_stage(_event(0))
    print(f"catalog load (first use):            {load_ms:8.2f} ms")
    print(
        f"first event after load:               {(time.perf_counter() - cold_started) * 1e6:8.2f} us"
    )
    rows = [
        ("baseline replace(event, cost=...)", "baseline"),
        ("records floor (4 LineItems, Cost, copy)", "records"),
        ("PriceStage, 4-component event", "stage"),
        ("  of which pricing (stage.cost)", "cost"),
    ]
    print(f"{'':38}{'median':>10}{'best':>10}   ({ROUNDS} rounds x {PER_ROUND} events)")
    for label, name in rows:
        print(f"{label:38}{median[name]:8.2f}us{best[name]:8.2f}us")
    print(
        f"{'ratio stage / baseline':38}{median['stage'] / median['baseline']:9.2f}x{best['stage'] / best['baseline']:9.2f}x"
    )
    logic = median["stage"] - median["records"]
    print(f"{'pricing logic above the records floor':38}{logic:8.2f}us")
    print(
        f"{'machine calibration: empty stage call':38}{median['noop'] * 1000:7.0f}ns{best['noop'] * 1000:8.0f}ns"
    )
    verdict = "met" if median["stage"] < 10 else "NOT met"
    print(f"target < 10 us median per event: {verdict}")


if __name__ == "__main__":
    main()
