"""Caller-thread cost of recording one event: Bus.emit() and the whole of track().

Baseline, measured in the same run: a bare ``deque.append`` of the same event
(the least any queue-based design can cost).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import llm_cost_tracker as lct
from llm_cost_tracker import UsageEvent
from llm_cost_tracker._bus import Bus

from ._timing import per_call_us, report


class Discard:
    name = "discard"

    def export(self, events: Sequence[UsageEvent]) -> None:
        return None

    def shutdown(self) -> None:
        return None


def main() -> None:
    event = UsageEvent(
        provider="openai",
        model="gpt-4o-mini",
        operation="chat",
        usage=None,
        tags={"feature": "chat"},
    )
    raw: collections.deque[UsageEvent] = collections.deque()

    def baseline() -> None:
        raw.append(event)
        if len(raw) > 100_000:
            raw.clear()

    base = per_call_us(baseline)
    bus = Bus(exporters=[Discard()], max_queue=10_000_000)
    emit_us = per_call_us(lambda: bus.emit(event))
    bus.shutdown()
    report("deque.append (baseline)", base)
    report("Bus.emit() on the caller's thread", emit_us, base, target_us=5.0)

    lct.configure(database_url=None, exporters=[Discard()], instrument=None)
    usage = {"input": 1500, "output": 320, "cache_read": 200}

    def track() -> None:
        lct.track(provider="anthropic", model="claude-sonnet-4-5", usage=usage)

    track_plain = per_call_us(track, batch=500, repeats=30)
    with lct.with_tags(user_id=42, feature="chat", tenant_id="acme"):
        track_tagged = per_call_us(track, batch=500, repeats=30)
    lct.shutdown()
    report("track(): validate + build event + emit", track_plain, base)
    report("track() inside with_tags (3 tags)", track_tagged, base)
