"""The SQLite default: contract tables, recorded migrations, idempotent inserts, WAL, exact money."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import warnings
from decimal import Decimal

import pytest
from llm_cost_tracker.exporters import _sql
from llm_cost_tracker.exporters.sqlite import SQLiteExporter, connect, migrate

import llm_cost_tracker as lct
from llm_cost_tracker import Cost, LineItem, TokenUsage, UsageEvent

PRICED = UsageEvent(
    provider="anthropic",
    model="claude-sonnet-4-5",
    operation="messages",
    usage=TokenUsage(tokens={"input": 2048, "cache_read": 1800, "output": 503}, reasoning_tokens=0),
    tags={"feature": "chat", "user_id": "42"},
    cost=Cost(
        total=Decimal("0.0000000012345678901234"),
        status="priced",
        line_items=(
            LineItem("input", "token", Decimal(2048), Decimal("0.000003"), Decimal("0.006144")),
            LineItem("cache_read", "token", Decimal(1800), Decimal("3E-7"), Decimal("0.00054")),
        ),
        snapshot={"catalog_version": "test", "rates": {"input": "3.00"}},
    ),
    stream=True,
    provider_response_id="msg_1",
)


def rows(db: str, sql: str) -> list[tuple[object, ...]]:
    return sqlite3.connect(db).execute(sql).fetchall()


def test_tables_and_recorded_migrations(tmp_path) -> None:
    db = str(tmp_path / "a.db")
    connection = connect(f"sqlite:///{db}")
    applied = migrate(connection)
    assert applied == [m.name for m in _sql.MIGRATION_LIST if not m.only or "sqlite" in m.only]
    assert migrate(connection) == []
    tables = {r[0] for r in rows(db, "select name from sqlite_master where type='table'")}
    assert {
        "llm_cost_tracker_calls",
        "llm_cost_tracker_call_line_items",
        "llm_cost_tracker_call_tags",
        "llm_cost_tracker_migrations",
    } <= tables
    assert rows(db, "select count(*) from llm_cost_tracker_migrations") == [
        (_sql.schema_version(_sql.SQLITE),)
    ]
    assert rows(db, "pragma journal_mode") == [("wal",)]


def test_a_replayed_event_inserts_nothing(tmp_path) -> None:
    db = str(tmp_path / "b.db")
    exporter = SQLiteExporter(f"sqlite:///{db}")
    exporter.export([PRICED])
    exporter.export([PRICED, PRICED])
    exporter.shutdown()
    assert rows(db, "select count(*) from llm_cost_tracker_calls") == [(1,)]
    assert rows(db, "select count(*) from llm_cost_tracker_call_tags") == [(2,)]
    assert rows(db, "select count(*) from llm_cost_tracker_call_line_items") == [(2,)]


def test_row_contents_and_exact_decimal(tmp_path) -> None:
    db = str(tmp_path / "c.db")
    exporter = SQLiteExporter(f"sqlite:///{db}")
    exporter.export([PRICED])
    exporter.shutdown()
    connection = sqlite3.connect(db)
    connection.row_factory = sqlite3.Row
    row = connection.execute("select * from llm_cost_tracker_calls").fetchone()
    assert row["id"] == PRICED.id
    assert row["input_tokens"] == 2048 + 1800
    assert row["output_tokens"] == 503
    assert row["cache_read_tokens"] == 1800
    assert row["cost_status"] == "priced"
    assert row["stream"] == 1
    assert row["provider_response_id"] == "msg_1"
    assert Decimal(row["total_cost_exact"]) == PRICED.cost.total
    assert row["occurred_at"] == PRICED.occurred_at.strftime("%Y-%m-%d %H:%M:%S.%f")
    assert '"catalog_version":"test"' in row["pricing_snapshot"]
    tags = dict(connection.execute("select key, value from llm_cost_tracker_call_tags"))
    assert tags == {"feature": "chat", "user_id": "42"}
    items = {
        r[0]: r[1:]
        for r in connection.execute(
            "select component, quantity, unit_price, cost from llm_cost_tracker_call_line_items"
        )
    }
    assert items["input"] == (2048, 3e-06, 0.006144)


def test_unpriced_events_keep_their_usage_breakdown_as_line_items(tmp_path) -> None:
    db = str(tmp_path / "d.db")
    event = UsageEvent(
        provider="openai",
        model="new-model",
        operation="chat",
        usage=TokenUsage(
            tokens={"input": 10, "audio_input": 5, "output": 0}, services={"web_search": Decimal(2)}
        ),
    )
    exporter = SQLiteExporter(f"sqlite:///{db}")
    exporter.export([event])
    exporter.shutdown()
    items = rows(
        db,
        "select component, unit, quantity, unit_price, cost from llm_cost_tracker_call_line_items order by component",
    )
    assert items == [
        ("audio_input", "token", 5, None, None),
        ("input", "token", 10, None, None),
        ("web_search", "request", 2, None, None),
    ]
    assert rows(db, "select total_cost, cost_status from llm_cost_tracker_calls") == [
        (None, "unknown")
    ]


def test_unknown_usage_is_null_not_zero(tmp_path) -> None:
    db = str(tmp_path / "e.db")
    exporter = SQLiteExporter(f"sqlite:///{db}")
    exporter.export(
        [
            UsageEvent(
                provider="openai", model="m", operation="chat", usage=None, usage_source="unknown"
            )
        ]
    )
    exporter.shutdown()
    assert rows(
        db, "select input_tokens, output_tokens, usage_source from llm_cost_tracker_calls"
    ) == [(None, None, "unknown")]


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///rel/x.db", "rel/x.db"),
        ("sqlite:////abs/x.db", "/abs/x.db"),
        ("sqlite://", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_urls(url: str, path: str) -> None:
    assert _sql.sqlite_path(url) == path


def test_bad_urls_are_configuration_errors() -> None:
    with pytest.raises(
        lct.ConfigurationError, match="unsupported database URL 'oracle://scott:\\*\\*\\*@db/x'"
    ):
        lct.configure(database_url="oracle://scott:tiger@db/x?secret=1", instrument=None)
    with pytest.raises(lct.ConfigurationError, match="SQLite URLs look like"):
        lct.configure(database_url="sqlite:relative.db", instrument=None)
    assert lct.get_config() is None


def test_exporter_reopens_its_connection_after_a_fork(tmp_path) -> None:
    db = str(tmp_path / "f.db")
    exporter = SQLiteExporter(f"sqlite:///{db}")
    exporter.export([UsageEvent(provider="openai", model="m", operation="chat", usage=None)])
    first = exporter._connection
    exporter.after_fork()
    exporter.export([UsageEvent(provider="openai", model="m", operation="chat", usage=None)])
    assert exporter._connection is not first
    exporter.shutdown()
    assert rows(db, "select count(*) from llm_cost_tracker_calls") == [(2,)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_forking_while_a_batch_is_being_written_never_hangs_the_child(tmp_path) -> None:
    db = str(tmp_path / "fork.db")
    exporter = SQLiteExporter(f"sqlite:///{db}")
    stop = threading.Event()

    def write_continuously() -> None:
        while not stop.is_set():
            exporter.export(
                [
                    UsageEvent(provider="openai", model="parent", operation="chat", usage=None)
                    for _ in range(200)
                ]
            )

    writer = threading.Thread(target=write_continuously)
    writer.start()
    try:
        for _ in range(5):
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", DeprecationWarning
                )  # fork with threads: ours is handled
                pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                code = 1
                try:
                    exporter.export(
                        [UsageEvent(provider="openai", model="child", operation="chat", usage=None)]
                    )
                    code = 0
                finally:
                    os._exit(code)
            deadline = time.monotonic() + 30
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                assert time.monotonic() < deadline, "the forked child hung writing to SQLite"
                time.sleep(0.01)
            assert os.waitstatus_to_exitcode(status) == 0
    finally:
        stop.set()
        writer.join()
        exporter.shutdown()
    assert rows(db, "select count(*) from llm_cost_tracker_calls where model = 'child'") == [(5,)]
