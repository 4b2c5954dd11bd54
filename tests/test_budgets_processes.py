"""Budgets shared by 4 processes x 16 threads spending against one real PostgreSQL database.

Each test starts four worker processes (this file run as a script), lets them
spend through ``track()`` for a fixed time, then compares what each thread saw
with the calls recorded in the database. The figures they print (overshoot,
lag behind the true crossing) are the ones quoted in ``docs/budgets.md``.
The budgets are monthly, on the real clock: each test starts well clear of a
new UTC month (conftest.same_utc_month).
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

PRICES = {"test/flat": {"input": "1", "output": "2"}}  # $1 per million input tokens
PROCESSES = 4
THREADS = 16
TOKENS_PER_CALL = 1_000  # $0.001 per call
COST_PER_CALL = Decimal("0.001")
LIMIT = Decimal("2")  # about 2,000 calls: crossed ~1-2 s into the run
TENANTS = ("t0", "t1", "t2", "t3")
TENANT_LIMIT = Decimal("0.4")
RUN_SECONDS = 9.0
PAUSE = 0.02  # seconds each thread waits between calls
EXPORT_INTERVAL = 1.0  # the defaults: documented staleness = 1 s + 1 s
REFRESH_INTERVAL = 1.0
# The documented bound (export_interval + refresh_interval) plus room for one
# export, one read and a loaded 2-core CI machine.
STALENESS_BOUND = EXPORT_INTERVAL + REFRESH_INTERVAL + 1.5


# -- the worker process -----------------------------------------------------------------


def worker(settings: dict[str, Any]) -> None:
    import llm_cost_tracker as lct
    from llm_cost_tracker import budgets
    from llm_cost_tracker._stats import STATS

    alerts: list[dict[str, Any]] = []
    alerts_lock = threading.Lock()

    def on_alert(alert: budgets.BudgetAlert) -> None:
        with alerts_lock:
            alerts.append(
                {
                    "type": alert.budget_type,
                    "scope": alert.scope,
                    "total": str(alert.total),
                    "event_id": alert.event.id,
                    "at": time.time(),
                    "after_event": time.time() - alert.event.occurred_at.timestamp(),
                }
            )

    mode = settings["mode"]
    lct.configure(
        database_url=settings["url"],
        instrument=None,
        pricing_overrides=PRICES,
        export_interval=EXPORT_INTERVAL,
        budgets=lct.Budgets(
            monthly=str(LIMIT),
            per_tag={"tenant_id": {"monthly": str(TENANT_LIMIT)}} if mode == "notify" else None,
            on_exceed=mode,
            callback=on_alert,
            refresh_interval=REFRESH_INTERVAL,
        ),
    )
    request = {"messages": [{"role": "user", "content": "x" * (4 * TOKENS_PER_CALL)}]}
    print("READY", flush=True)
    sys.stdin.readline()
    end = time.time() + RUN_SECONDS
    outcomes: list[dict[str, Any]] = []
    outcomes_lock = threading.Lock()

    def spend(index: int) -> None:
        tenant = TENANTS[index % len(TENANTS)]
        mine: list[dict[str, Any]] = []
        me = threading.get_ident()
        while time.time() < end:
            started = time.time()
            try:
                with lct.with_tags(tenant_id=tenant):
                    if mode == "block":
                        budgets.check("test", "flat", request)
                    event = lct.track(
                        provider="test", model="flat", usage={"input": TOKENS_PER_CALL}
                    )
                mine.append({"kind": "ok", "t": started, "id": event.id})
            except lct.BudgetExceededError as error:
                event_id = getattr(error.event, "id", None)
                mine.append(
                    {
                        "kind": "blocked" if error.blocked else "raised",
                        "t": started,
                        "id": event_id,
                        "thread_ok": threading.get_ident() == me,
                        "budget": error.budget_type,
                        "spent": str(error.spent),
                    }
                )
            time.sleep(PAUSE)
        with outcomes_lock:
            outcomes.extend(mine)

    threads = [threading.Thread(target=spend, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lct.flush(30)
    # Crossings seen last are claimed by the budget thread within one refresh.
    time.sleep(REFRESH_INTERVAL * 2.5)
    counters = STATS.snapshot()
    lct.shutdown(30)
    Path(settings["out"]).write_text(
        json.dumps({"outcomes": outcomes, "alerts": alerts, "stats": counters})
    )


# -- the test side ----------------------------------------------------------------------


def run_processes(url: str, mode: str, tmp_path: Path) -> list[dict[str, Any]]:
    env = dict(os.environ)
    env.pop("LLM_COST_TRACKER_DISABLED", None)
    procs = []
    outs = []
    for n in range(PROCESSES):
        out = tmp_path / f"{mode}-{n}.json"
        outs.append(out)
        settings = json.dumps({"url": url, "mode": mode, "out": str(out)})
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, settings],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=tmp_path,
            )
        )
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "READY", f"worker did not start: {line!r}"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        for proc in procs:
            assert proc.wait(120) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
    return [json.loads(out.read_text()) for out in outs]


def recorded_calls(url: str) -> list[tuple[float, Decimal, str, str]]:
    """(occurred_at epoch, cost, id, tenant) of every call in the database, oldest first."""
    from llm_cost_tracker.exporters import connect

    connection = connect(url)
    try:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT c.occurred_at, c.total_cost, c.id, t.value FROM llm_cost_tracker_calls c "
            "JOIN llm_cost_tracker_call_tags t ON t.call_id = c.id AND t.key = 'tenant_id' "
            "ORDER BY c.occurred_at"
        )
        rows = cursor.fetchall()
    finally:
        connection.close()
    return [(r[0].timestamp(), Decimal(r[1]), str(r[2]), r[3]) for r in rows]


def crossing_time(calls: list[tuple[float, Decimal, str, str]], limit: Decimal) -> float:
    """When the true total (all processes, by occurred_at) first went over ``limit``."""
    total = Decimal(0)
    for at, cost, _, _ in calls:
        total += cost
        if total > limit:
            return at
    raise AssertionError(f"the total never went over {limit}: {total}")


class Totals:
    """The true total at any moment: prefix sums over the calls ordered by occurred_at."""

    def __init__(self, calls: list[tuple[float, Decimal, str, str]]) -> None:
        self.times = [c[0] for c in calls]
        self.sums = list(itertools.accumulate((c[1] for c in calls), initial=Decimal(0)))

    def at(self, moment: float) -> Decimal:
        return self.sums[bisect.bisect_right(self.times, moment)]


def report(mode: str, figures: dict[str, object]) -> None:
    # Printed with -s; quoted in docs/budgets.md.
    print(f"\n[budgets {mode}] " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def test_block_stops_new_calls_within_the_staleness(
    fresh_postgres_url: str, tmp_path: Path, same_utc_month: None
) -> None:
    results = run_processes(fresh_postgres_url, "block", tmp_path)
    calls = recorded_calls(fresh_postgres_url)
    crossed = crossing_time(calls, LIMIT)
    outcomes = [o for r in results for o in r["outcomes"]]
    ok = [o for o in outcomes if o["kind"] == "ok"]
    blocked = [o for o in outcomes if o["kind"] == "blocked"]
    assert blocked, "nothing was blocked"
    assert not [o for o in outcomes if o["kind"] == "raised"]
    # Every call a thread made is in the database; every blocked call is not.
    assert {o["id"] for o in ok} == {c[2] for c in calls}
    # A block is never early: the spend it saw was really there (views are lower bounds).
    first_block = min(o["t"] for o in blocked)
    assert Totals(calls).at(first_block + 0.1) + COST_PER_CALL > LIMIT
    # After the true crossing plus the staleness bound, nothing gets through anywhere.
    late = [o for o in ok if o["t"] > crossed + STALENESS_BOUND]
    assert late == [], f"{len(late)} calls got through more than {STALENESS_BOUND} s late"
    total = sum((c[1] for c in calls), Decimal(0))
    last_ok = max(o["t"] for o in ok)
    report(
        "block",
        {
            "calls": len(calls),
            "blocked": len(blocked),
            "limit": LIMIT,
            "spent": total,
            "overshoot": total - LIMIT,
            "overshoot_pct": f"{(total - LIMIT) / LIMIT * 100:.0f}%",
            "last_call_after_crossing_s": f"{last_ok - crossed:.2f}",
            "first_block_after_crossing_s": f"{first_block - crossed:.2f}",
            "rate_calls_per_s": f"{len(calls) / (last_ok - min(o['t'] for o in ok)):.0f}",
        },
    )


def test_raise_raises_in_the_calling_thread_after_recording(
    fresh_postgres_url: str, tmp_path: Path, same_utc_month: None
) -> None:
    results = run_processes(fresh_postgres_url, "raise", tmp_path)
    calls = recorded_calls(fresh_postgres_url)
    crossed = crossing_time(calls, LIMIT)
    by_id = {c[2]: c for c in calls}
    outcomes = [o for r in results for o in r["outcomes"]]
    raised = [o for o in outcomes if o["kind"] == "raised"]
    assert raised, "nothing raised"
    assert not [o for o in outcomes if o["kind"] == "blocked"]
    totals = Totals(calls)
    for o in raised:
        # Raised in the thread that made the call, about that call, which was recorded first.
        assert o["thread_ok"]
        assert o["id"] in by_id
        # Never a false alarm: the total really was over the limit by then.
        assert totals.at(by_id[o["id"]][0] + 0.1) > LIMIT
    # Every call made after the crossing plus the staleness bound raises, in every process.
    late_ok = [o for o in outcomes if o["kind"] == "ok" and o["t"] > crossed + STALENESS_BOUND]
    assert late_ok == []
    first_raise = min(by_id[o["id"]][0] for o in raised)
    # In each process, once a call saw the total over the limit, every later call raises:
    # the first raise is the call whose own view crossed it.
    for result in results:
        mine = result["outcomes"]
        first = min((o["t"] for o in mine if o["kind"] == "raised"), default=None)
        assert first is not None, "a process never raised"
        assert [o for o in mine if o["kind"] == "ok" and o["t"] > first + 0.2] == []
    report(
        "raise",
        {
            "calls": len(calls),
            "raised": len(raised),
            "first_raise_after_crossing_s": f"{first_raise - crossed:.2f}",
            "processes_that_raised": sum(
                1 for r in results if any(o["kind"] == "raised" for o in r["outcomes"])
            ),
        },
    )


def test_notify_fires_once_per_crossing_across_processes(
    fresh_postgres_url: str, tmp_path: Path, same_utc_month: None
) -> None:
    results = run_processes(fresh_postgres_url, "notify", tmp_path)
    calls = recorded_calls(fresh_postgres_url)
    outcomes = [o for r in results for o in r["outcomes"]]
    assert all(o["kind"] == "ok" for o in outcomes)  # notify never raises or blocks
    alerts = [a for r in results for a in r["alerts"]]
    fired = sorted((a["type"], a["scope"]) for a in alerts)
    expected = sorted([("monthly", "global")] + [("monthly", f"tenant_id={t}") for t in TENANTS])
    assert fired == expected, fired  # exactly once each, whichever process saw it first
    lags = {}
    for alert in alerts:
        if alert["scope"] == "global":
            scoped = calls
            limit = LIMIT
        else:
            tenant = alert["scope"].partition("=")[2]
            scoped = [c for c in calls if c[3] == tenant]
            limit = TENANT_LIMIT
        crossed = crossing_time(scoped, limit)
        assert Decimal(alert["total"]) > limit
        # Fired after the real crossing, within a few seconds: the staleness, the export
        # worker's turn and a claim round (with room for a 2-core box under heavy load).
        assert crossed - 0.1 <= alert["at"] <= crossed + 2 * STALENESS_BOUND
        lags[alert["scope"]] = f"{alert['at'] - crossed:.2f}/{alert['after_event']:.2f}"
    claimed_elsewhere = sum(
        r["stats"].get("budget.crossings_claimed_elsewhere", 0) for r in results
    )
    report(
        "notify",
        {
            "calls": len(calls),
            "alerts": len(alerts),
            "lag_s": lags,
            "duplicates_suppressed": claimed_elsewhere,
        },
    )


if __name__ == "__main__":
    worker(json.loads(sys.argv[1]))
