"""Durable delivery against real servers: outages, restarts, a killed process, a full spool,
rejected rows and a hung server. Every test counts rows afterwards: nothing lost, nothing twice.

The outage under load lasts ``LCT_TEST_OUTAGE_SECONDS`` (default 30 s, the figure
the product promises; set it lower for a quick local run).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sql_events import make_events

import llm_cost_tracker as lct
from llm_cost_tracker import ledger as _sql
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.ledger import spool_dir_for

pytestmark = [pytest.mark.postgres, pytest.mark.mysql, pytest.mark.slow]

OUTAGE = float(os.environ.get("LCT_TEST_OUTAGE_SECONDS", "30"))


def _seq_tags(target) -> list[int]:
    q = "`" if target.dialect == "mysql" else '"'
    rows = target.query(f"SELECT {q}value{q} FROM {_sql.TAGS} WHERE {q}key{q} = 'seq'")
    return sorted(int(r[0]) for r in rows)


class _Load:
    """Record calls from a thread at a steady rate, timing each track() call."""

    def __init__(self, rate: float = 400.0) -> None:
        self.count = 0
        self.slowest = 0.0
        self._stop = threading.Event()
        self._pause = 1.0 / rate
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            lct.track(
                provider="openai",
                model="gpt-4o-mini",
                usage={"input": 100 + self.count % 50, "output": 7},
                tags={"seq": str(self.count), "feature": "load"},
            )
            self.slowest = max(self.slowest, time.perf_counter() - started)
            self.count += 1
            time.sleep(self._pause)

    def __enter__(self) -> _Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _configure(target, spool: Path, **kwargs) -> None:
    exporter = target.exporter(spool, initial_backoff=0.1, max_backoff=1.0, **kwargs)
    lct.configure(database_url=None, exporters=[exporter], instrument=None, export_interval=0.1)


def _assert_all_landed_once(target, emitted: int) -> None:
    assert STATS.get("emitted") == emitted
    assert not {k: v for k, v in STATS.snapshot().items() if k.startswith("dropped.") and v}
    assert target.count() == emitted
    assert _seq_tags(target) == list(range(emitted))
    rollup_calls = target.query(f"SELECT sum(calls) FROM {_sql.ROLLUPS}")[0][0]
    assert int(rollup_calls) == emitted
    name = target.dialect
    assert STATS.get(f"delivery.{name}.pending") == 0
    assert STATS.get(f"delivery.{name}.spooled") == 0


def test_outage_under_load_loses_nothing(sql_target, tmp_path: Path):
    _configure(sql_target, tmp_path)
    with _Load() as load:
        time.sleep(1.0)
        sql_target.server.stop()
        time.sleep(OUTAGE)
        spooled_during_outage = STATS.get(f"delivery.{sql_target.dialect}.spooled")
        sql_target.server.start()
        time.sleep(1.0)
    assert lct.flush(timeout=60)
    assert spooled_during_outage > 0
    assert STATS.get(f"delivery.{sql_target.dialect}.retries") > 0
    assert STATS.get(f"delivery.{sql_target.dialect}.replayed") > 0
    # The caller never waited for the database (an outage would have cost seconds).
    assert load.slowest < 0.5
    assert load.count > OUTAGE * 100
    _assert_all_landed_once(sql_target, load.count)
    assert not list(spool_dir_for(sql_target.url, tmp_path).glob("*.jsonl*"))


def test_server_restart_under_load_loses_nothing(sql_target, tmp_path: Path):
    _configure(sql_target, tmp_path)
    with _Load() as load:
        time.sleep(0.5)
        sql_target.server.restart()
        time.sleep(1.0)
    assert lct.flush(timeout=60)
    assert load.slowest < 0.5
    assert STATS.get(f"delivery.{sql_target.dialect}.retries") > 0  # the restart was noticed
    _assert_all_landed_once(sql_target, load.count)


_CHILD = textwrap.dedent(
    """
    import sys, time
    import llm_cost_tracker as lct
    from llm_cost_tracker._stats import STATS
    from llm_cost_tracker.exporters.{module} import {cls} as Exporter

    url, spool, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    exporter = Exporter(url, spool_dir=spool, initial_backoff=0.1, max_backoff=0.5)
    lct.configure(database_url=None, exporters=[exporter], instrument=None, export_interval=0.05)
    for i in range(n):
        lct.track(provider="openai", model="gpt-4o-mini", usage={{"input": 5, "output": 1}},
                  tags={{"seq": str(i)}})
    lct.flush(timeout=0.5)
    while n and STATS.get("delivery.{name}.spooled") < n:
        time.sleep(0.05)
    print("READY", flush=True)
    time.sleep(600)
    """
)


def _kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait()
    if child.stdout is not None:
        child.stdout.close()


def _start_child(target, spool: Path, n: int) -> subprocess.Popen[str]:
    module, cls = ("postgres", "PostgresExporter")
    if target.dialect == "mysql":
        module, cls = ("mysql", "MySQLExporter")
    code = _CHILD.format(module=module, cls=cls, name=target.dialect)
    return subprocess.Popen(
        [sys.executable, "-c", code, target.url, str(spool), str(n)],
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("LLM_COST_TRACKER_")},
    )


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_killed_process_with_a_spool_replays_everything_once(sql_target, tmp_path: Path):
    n = 700
    spool = spool_dir_for(sql_target.url, tmp_path)
    lct.configure(database_url=None, exporters=[sql_target.exporter(tmp_path)], instrument=None)
    assert lct.flush(timeout=30)  # the tables exist; now take the database away
    lct.shutdown()

    sql_target.server.stop()
    child = _start_child(sql_target, tmp_path, n)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY"
    finally:
        _kill(child)
    spooled = sum(len(p.read_text().splitlines()) for p in spool.glob("*.jsonl*"))
    assert spooled == n

    # A second process starts replaying into a hung server and is killed mid-replay,
    # leaving a claimed file behind.
    sql_target.server.start()
    sql_target.server.pause()
    try:
        child = _start_child(sql_target, tmp_path, 0)
        try:
            _wait_for(lambda: list(spool.glob("*.claimed")), 30, "a claimed spool file")
        finally:
            _kill(child)
    finally:
        sql_target.server.resume()

    # The next process (this one) recovers the claim and replays it all, once.
    exporter = sql_target.exporter(tmp_path)
    assert exporter.flush(60)
    exporter.shutdown()
    assert sql_target.count() == n
    assert _seq_tags(sql_target) == list(range(n))
    assert not list(spool.iterdir()) or not [p for p in spool.iterdir() if p.is_file()]


def test_full_spool_drops_and_counts_exactly(sql_target, tmp_path: Path):
    # A database that does not exist yet: connection errors until it is created.
    name = f"late_{os.getpid()}_{time.monotonic_ns() % 10**6}"
    url = sql_target.url.rsplit("/", 1)[0] + "/" + name
    late = type(sql_target)(sql_target.dialect, url, sql_target.server)
    # A long backoff keeps the writer still while the counters are read.
    exporter = late.exporter(
        tmp_path, max_pending=100, max_spool_bytes=60_000, initial_backoff=30, max_backoff=30
    )
    events = make_events(1000)
    for start in range(0, 1000, 50):
        exporter.export(events[start : start + 50])
        time.sleep(0.01)
    assert not exporter.flush(1.0)  # retries at once, and still finds nowhere to write
    time.sleep(0.5)
    dropped = STATS.get("dropped.spool_full")
    pending = STATS.get(f"delivery.{late.dialect}.pending")
    spooled = STATS.get(f"delivery.{late.dialect}.spooled")
    assert dropped > 0
    assert exporter.spool.size_bytes() <= 60_000
    assert dropped + pending + spooled == 1000
    created = sql_target.server.create_database(name)
    assert created == url
    assert exporter.flush(60)
    exporter.shutdown()
    assert late.count() == 1000 - dropped
    assert STATS.get(f"delivery.{late.dialect}.written") == 1000 - dropped


def test_rejected_rows_are_quarantined_with_the_reason(sql_target, tmp_path: Path):
    events = make_events(50)
    events[7] = replace(events[7], model="m" * 300)  # longer than the column
    events[31] = replace(events[31], provider_response_id="r" * 400)
    exporter = sql_target.exporter(tmp_path)
    exporter.export(events)
    assert exporter.flush(30)
    exporter.shutdown()
    assert sql_target.count() == 48
    quarantined = exporter.spool.quarantined()
    assert sorted(p.stem for p in quarantined) == sorted([events[7].id, events[31].id])

    record = json.loads(quarantined[0].read_text())
    assert "long" in record["reason"].lower() or "truncat" in record["reason"].lower()
    assert record["event"]["id"] in {events[7].id, events[31].id}
    assert STATS.get(f"delivery.{sql_target.dialect}.quarantined") == 2
    assert STATS.get(f"delivery.{sql_target.dialect}.retries") == 0


def test_hung_server_never_blocks_export(sql_target, tmp_path: Path):
    exporter = sql_target.exporter(tmp_path, max_pending=500)
    exporter.export(make_events(10, seed=1))
    assert exporter.flush(30)  # connected and migrated
    events = make_events(3000, seed=2)
    sql_target.server.pause()
    try:
        slowest = 0.0
        for start in range(0, 3000, 250):
            started = time.perf_counter()
            exporter.export(events[start : start + 250])
            slowest = max(slowest, time.perf_counter() - started)
        assert slowest < 0.5
        assert not exporter.flush(0.5)
        # The writer is stuck on one batch; the rest went past the memory bound to disk.
        assert STATS.get(f"delivery.{sql_target.dialect}.spooled") >= 2000
    finally:
        sql_target.server.resume()
    assert exporter.flush(60)
    exporter.shutdown()
    assert sql_target.count() == 3010
    assert int(sql_target.query(f"SELECT count(DISTINCT id) FROM {_sql.CALLS}")[0][0]) == 3010


def test_forked_child_reconnects_and_parent_keeps_working(sql_target, tmp_path: Path):
    import warnings

    exporter = sql_target.exporter(tmp_path)
    lct.configure(database_url=None, exporters=[exporter], instrument=None)
    lct.track(provider="openai", model="gpt-4o-mini", usage={"input": 1}, tags={"seq": "0"})
    assert lct.flush(timeout=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: its own connection, its own events
        code = 1
        try:
            lct.track(provider="openai", model="gpt-4o-mini", usage={"input": 2}, tags={"seq": "1"})
            code = 0 if lct.flush(timeout=30) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    lct.track(provider="openai", model="gpt-4o-mini", usage={"input": 3}, tags={"seq": "2"})
    assert lct.flush(timeout=30)
    assert _seq_tags(sql_target) == [0, 1, 2]


def test_spool_dir_comes_from_the_environment(
    sql_target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # A database that does not exist: every write fails, so the batch goes to the spool.
    url = sql_target.url.rsplit("/", 1)[0] + "/absent_db"
    monkeypatch.setenv("LLM_COST_TRACKER_SPOOL_DIR", str(tmp_path / "env-spool"))
    lct.configure(database_url=url, instrument=None)
    lct.track(provider="openai", model="gpt-4o-mini", usage={"input": 1}, tags={"seq": "0"})
    assert not lct.flush(timeout=2)
    spool = spool_dir_for(url, tmp_path / "env-spool")
    _wait_for(lambda: list(spool.glob("*.jsonl*")), 10, "a spool file")
    assert spool.parent == tmp_path / "env-spool"
    assert STATS.get(f"delivery.{sql_target.dialect}.spooled") == 1
    assert oct(spool.stat().st_mode & 0o777) == "0o700"
    assert not lct.shutdown(timeout=0.5)  # the database is still absent


def test_tables_dropped_under_a_running_exporter_are_recreated(sql_target, tmp_path: Path):
    exporter = sql_target.exporter(tmp_path, initial_backoff=0.05, max_backoff=0.2)
    exporter.export(make_events(5, seed=1))
    assert exporter.flush(30)
    for table in (_sql.CALLS, _sql.LINE_ITEMS, _sql.TAGS, _sql.ROLLUPS, _sql.MIGRATIONS):
        sql_target.query(f"DROP TABLE {table}")
    exporter.export(make_events(7, seed=2))
    assert exporter.flush(30)
    exporter.shutdown()
    assert sql_target.count() == 7
    assert STATS.get(f"delivery.{sql_target.dialect}.retries") >= 1
