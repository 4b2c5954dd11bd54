"""The bus: non-blocking emit, bounded queue, flush/shutdown, isolated exporter failures, fork safety."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence

import pytest

import llm_cost_tracker as lct
from llm_cost_tracker import UsageEvent
from llm_cost_tracker._bus import Bus
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.testing import InMemoryExporter


def make_event(n: int = 0) -> UsageEvent:
    return UsageEvent(provider="openai", model=f"m{n}", operation="chat", usage=None)


class SlowExporter:
    name = "slow"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.events: list[UsageEvent] = []

    def export(self, events: Sequence[UsageEvent]) -> None:
        self.release.wait(10)
        self.events.extend(events)

    def shutdown(self) -> None:
        self.release.set()


class BrokenExporter:
    name = "broken"

    def export(self, events: Sequence[UsageEvent]) -> None:
        raise ConnectionError("database is down")

    def shutdown(self) -> None:
        return None


def test_flush_delivers_everything_emitted_before_it() -> None:
    memory = InMemoryExporter()
    bus = Bus(exporters=[memory], batch_size=7, interval=30)
    for n in range(100):
        bus.emit(make_event(n))
    assert bus.flush(5)
    assert [e.model for e in memory.events] == [f"m{n}" for n in range(100)]
    assert STATS.get("emitted") == 100
    assert STATS.get("exported") == 100
    bus.shutdown()


@pytest.mark.parametrize("synchronous", [False, True])
def test_deferred_work_runs_before_flush_returns_and_what_it_emits_is_delivered(
    synchronous: bool,
) -> None:
    memory = InMemoryExporter()
    bus = Bus(exporters=[memory], interval=30, synchronous=synchronous)
    bus.emit(make_event(0))  # the worker is running and asleep for 30 s
    bus.defer(lambda: bus.emit(make_event(1)))
    bus.defer(lambda: 1 / 0)  # counted, and the rest still runs
    bus.defer(lambda: bus.emit(make_event(2)))
    assert bus.flush(5)
    assert [e.model for e in memory.events] == ["m0", "m1", "m2"]
    assert STATS.get("errors.bus.deferred") == 1
    bus.shutdown()


def test_the_worker_runs_deferred_work_on_its_own_without_a_flush() -> None:
    memory = InMemoryExporter()
    bus = Bus(exporters=[memory], interval=0.05)
    bus.emit(make_event(0))
    bus.defer(lambda: bus.emit(make_event(1)))
    deadline = time.monotonic() + 5
    while len(memory.events) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e.model for e in memory.events] == ["m0", "m1"]
    bus.shutdown()


def test_defer_takes_no_lock_so_a_finalizer_holding_the_bus_lock_cannot_deadlock() -> None:
    memory = InMemoryExporter()
    bus = Bus(exporters=[memory], interval=30)
    done = threading.Event()

    def finalizer_inside_the_locked_section() -> None:
        with bus._size_lock, STATS._lock:  # as if collected in the middle of emit()
            bus.defer(lambda: bus.emit(make_event(1)))
        done.set()

    thread = threading.Thread(target=finalizer_inside_the_locked_section, daemon=True)
    thread.start()
    assert done.wait(5), "defer() blocked on a lock its own thread held"
    assert bus.flush(5)
    assert [e.model for e in memory.events] == ["m1"]
    bus.shutdown()


def test_emit_never_blocks_on_a_slow_exporter_and_a_full_queue_drops_and_counts() -> None:
    slow = SlowExporter()
    bus = Bus(exporters=[slow], max_queue=10, batch_size=1, interval=0.01)
    bus.emit(make_event())
    time.sleep(0.2)  # the worker is now stuck inside export()
    started = time.perf_counter()
    for n in range(50):
        bus.emit(make_event(n))
    assert time.perf_counter() - started < 0.5
    assert STATS.get("dropped.queue_full") == 40
    assert bus.pending() == 10
    slow.release.set()
    assert bus.flush(5)
    assert len(slow.events) == 11
    bus.shutdown()


def test_flush_returns_false_when_it_times_out() -> None:
    slow = SlowExporter()
    bus = Bus(exporters=[slow], interval=0.01)
    bus.emit(make_event())
    assert bus.flush(0.2) is False
    slow.release.set()
    assert bus.flush(5) is True
    bus.shutdown()


def test_a_raising_exporter_loses_nothing_for_the_others_and_shows_in_stats() -> None:
    first, last = InMemoryExporter(), InMemoryExporter()
    bus = Bus(exporters=[first, BrokenExporter(), last], batch_size=10)
    for n in range(25):
        bus.emit(make_event(n))
    assert bus.flush(5)
    assert len(first.events) == 25
    assert len(last.events) == 25
    stats = lct.stats()
    assert stats["export_failed.broken"] == 25
    assert stats["errors.exporter.broken"] == 3  # one per batch
    bus.shutdown()


def test_a_raising_stage_is_counted_and_the_event_goes_on() -> None:
    def price(event: UsageEvent) -> UsageEvent:
        raise ArithmeticError("bad price")

    def drop_m1(event: UsageEvent) -> UsageEvent | None:
        return None if event.model == "m1" else event

    memory = InMemoryExporter()
    bus = Bus(stages=[price, drop_m1], exporters=[memory], synchronous=True)
    bus.emit(make_event(0))
    bus.emit(make_event(1))
    assert [e.model for e in memory.events] == ["m0"]
    assert STATS.get("errors.stage.price") == 2
    assert STATS.get("dropped.stage.drop_m1") == 1


def test_synchronous_mode_exports_inside_emit() -> None:
    memory = InMemoryExporter()
    bus = Bus(exporters=[memory], synchronous=True)
    bus.emit(make_event())
    assert len(memory.events) == 1
    assert threading.active_count() == 1 or all(
        t.name != "llm-cost-tracker-export" for t in threading.enumerate()
    )


def test_shutdown_flushes_and_later_emits_are_counted_as_dropped() -> None:
    memory = InMemoryExporter()
    bus = Bus(exporters=[memory], interval=30)
    bus.emit(make_event())
    assert bus.shutdown(5)
    assert len(memory.events) == 1
    bus.emit(make_event())
    assert STATS.get("dropped.shutdown") == 1


def test_exporters_and_stages_run_suppressed_so_they_are_never_instrumented() -> None:
    seen: list[bool] = []

    class Probe:
        def export(self, events: Sequence[UsageEvent]) -> None:
            seen.append(lct.is_suppressed())

        def shutdown(self) -> None:
            return None

    bus = Bus(exporters=[Probe()])
    bus.emit(make_event())
    bus.flush(5)
    assert seen == [True]
    bus.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_fork_child_starts_fresh_and_never_exports_the_parents_events(tmp_path) -> None:
    script = textwrap.dedent(
        """
        import os, sys, time
        import llm_cost_tracker as lct
        lct.configure(database_url=sys.argv[1], instrument=None, export_interval=60)
        for n in range(5):
            lct.track(provider="openai", model="parent", usage={"input": 1})
        pid = os.fork()
        if pid == 0:
            for n in range(3):
                lct.track(provider="openai", model="child", usage={"input": 1})
            ok = lct.flush(10)
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert lct.flush(10)
        print("ok")
        """
    )
    db = tmp_path / "fork.db"
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", script, f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = dict(
        sqlite3.connect(db).execute(
            "select model, count(*) from llm_cost_tracker_calls group by model"
        )
    )
    assert rows == {"parent": 5, "child": 3}


def test_process_exit_flushes_what_is_queued(tmp_path) -> None:
    script = textwrap.dedent(
        """
        import sys
        import llm_cost_tracker as lct
        lct.configure(database_url=sys.argv[1], instrument=None, export_interval=60)
        for n in range(250):
            lct.track(provider="openai", model="exit", usage={"input": n})
        # no flush(): the atexit handler must deliver them
        """
    )
    db = tmp_path / "exit.db"
    result = subprocess.run(
        [sys.executable, "-c", script, f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert sqlite3.connect(db).execute(
        "select count(*) from llm_cost_tracker_calls"
    ).fetchone() == (250,)
