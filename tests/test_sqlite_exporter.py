"""The SQLite default: contract tables, recorded migrations, idempotent inserts, WAL, exact money."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import warnings
from dataclasses import replace
from decimal import Decimal
from itertools import compress

import pytest
from llm_cost_tracker.exporters.sqlite import SQLiteExporter, connect, migrate

import llm_cost_tracker as lct
from llm_cost_tracker import Cost, LineItem, TokenUsage, UsageEvent
from llm_cost_tracker import ledger as _sql

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
    connection = sqlite3.connect(db)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()  # not left to the garbage collector: it would keep the WAL open


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
@pytest.mark.parametrize("checkpoint_pages", [500, 1], ids=["default", "checkpoint-every-commit"])
def test_forking_while_a_batch_is_being_written_never_hangs_the_child(
    tmp_path, monkeypatch, checkpoint_pages
) -> None:
    # With a checkpoint after every commit, forks also land while the checkpoint
    # thread is inside SQLite: it is fenced like the writer.
    from llm_cost_tracker.exporters import sqlite as sqlite_exporter

    monkeypatch.setattr(sqlite_exporter, "_CHECKPOINT_PAGES", checkpoint_pages)
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
        # Only our own SQLite work is fenced: a fork waits for a batch being built and
        # written. A sqlite3 object of the application's, closed by the garbage
        # collector on another thread at the instant of the fork, can still leave
        # SQLite's global mutexes held in the child (docs/exporters.md).
        for _ in range(10):
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
        checkpoints = exporter.checkpoints
        exporter.shutdown()
    assert rows(db, "select count(*) from llm_cost_tracker_calls where model = 'child'") == [(10,)]
    if checkpoint_pages == 1:
        assert checkpoints > 0


# -- the write layout (migration 0008) and the fast write path ------------------


def _contract_rows(db: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the three contract tables with each value's storage class, in a stable order."""
    connection = sqlite3.connect(db)
    out = {}
    for table, columns in (
        (_sql.CALLS, _sql.call_columns(_sql.SQLITE)),
        (_sql.LINE_ITEMS, _sql.LINE_ITEM_COLUMNS),
        (_sql.TAGS, _sql.TAG_COLUMNS),
    ):
        names = [_sql.SQLITE.quote(c) for c in columns]
        select = ", ".join(f"{n}, typeof({n})" for n in names)
        out[table] = connection.execute(
            f"SELECT {select} FROM {table} ORDER BY {', '.join(names)}"
        ).fetchall()
    connection.close()
    return out


def _write_plainly(connection: sqlite3.Connection, events: list[UsageEvent]) -> None:
    """The rows the SQL contract builds, inserted one by one (what the exporter did before 0008)."""
    d = _sql.SQLITE
    connection.execute("BEGIN")
    connection.executemany(
        d.insert_sql(_sql.CALLS, _sql.call_columns(d)), [_sql.call_row(e, d) for e in events]
    )
    connection.executemany(
        d.insert_sql(_sql.LINE_ITEMS, _sql.LINE_ITEM_COLUMNS),
        [r for e in events for r in _sql.line_item_rows(e, d)],
    )
    connection.executemany(
        d.insert_sql(_sql.TAGS, _sql.TAG_COLUMNS), [r for e in events for r in _sql.tag_rows(e)]
    )
    connection.execute("COMMIT")


def _varied_events() -> list[UsageEvent]:
    from sql_events import make_events

    events = make_events(300, seed=5)
    odd = [
        UsageEvent(
            provider="openai",
            model="m",
            operation="chat",
            usage=TokenUsage(
                tokens={"input": 2**40, "output": 1}, services={"web_search": Decimal("1.5")}
            ),
            tags={"quote": 'it\'s "q"', "unicode": "naïve 東京 💸", "empty": ""},
            latency_ms=0.0,
            error_type="",
        ),
        UsageEvent(provider="anthropic", model="m", operation="messages", usage=None),
        PRICED,
    ]
    return events + odd


def test_exporter_rows_equal_the_contract_rows_value_for_value(tmp_path) -> None:
    events = _varied_events()
    ours, plain = str(tmp_path / "ours.db"), str(tmp_path / "plain.db")
    exporter = SQLiteExporter(f"sqlite:///{ours}")
    # Batches of mixed shapes: a column NULL in some rows only, in all rows, in none.
    for start in range(0, len(events), 97):
        exporter.export(events[start : start + 97])
    exporter.export(events[-1:])
    exporter.shutdown()
    connection = connect(f"sqlite:///{plain}")
    migrate(connection)
    _write_plainly(connection, events)
    connection.close()
    stored = _contract_rows(ours)
    assert stored == _contract_rows(plain)
    assert len(stored[_sql.CALLS]) == len({e.id for e in events})
    # Token counts, bound as integers now, are stored as the decimal text was: INTEGER.
    quantities = {r[6:8] for r in stored[_sql.LINE_ITEMS] if r[2] == "input"}
    assert (2**40, "integer") in quantities
    assert {kind for _, kind in quantities} == {"integer"}


def _database_at_0007(db: str) -> sqlite3.Connection:
    """A database as the migrations before 0008 left it (rowid tags and line items, four indexes)."""
    connection = connect(f"sqlite:///{db}")
    d = _sql.SQLITE
    connection.execute(_sql.MIGRATIONS_TABLE_SQL.format(**d.types))
    for migration in _sql.MIGRATION_LIST:
        if migration.name.startswith("0008") or (migration.only and "sqlite" not in migration.only):
            continue
        for statement in migration.render(d):
            connection.execute(statement)
        connection.execute(
            f"INSERT INTO {_sql.MIGRATIONS} (name, applied_at) VALUES (?, '2026-01-01')",
            (migration.name,),
        )
    return connection


def test_migration_0008_keeps_every_row_of_an_existing_database(tmp_path) -> None:
    db = str(tmp_path / "old.db")
    events = _varied_events()
    connection = _database_at_0007(db)
    _write_plainly(connection, events)
    # A user's own view on the tags must survive the table's rebuild.
    connection.execute(
        f"CREATE VIEW team_tags AS SELECT call_id, value FROM {_sql.TAGS} WHERE key = 'feature'"
    )
    connection.close()
    before = _contract_rows(db)
    assert rows(
        db, "select count(*) from sqlite_master where name = 'llm_cost_tracker_call_tags_kv'"
    ) == [(1,)]

    connection = connect(f"sqlite:///{db}")
    assert migrate(connection) == ["0008_sqlite_write_layout"]
    connection.close()

    assert _contract_rows(db) == before
    schema = dict(rows(db, "select name, sql from sqlite_master where type = 'table'"))
    assert schema[_sql.TAGS].endswith("WITHOUT ROWID")
    assert schema[_sql.LINE_ITEMS].endswith("WITHOUT ROWID")
    indexes = {
        r[0]
        for r in rows(db, "select name from sqlite_master where type = 'index' and sql is not null")
    }
    assert indexes == {"llm_cost_tracker_calls_time", "llm_cost_tracker_calls_model_time"}
    assert rows(db, "select count(*) from team_tags") == [
        (sum(1 for e in events if "feature" in e.tags),)
    ]
    assert rows(db, "pragma integrity_check") == [("ok",)]
    # Replaying what is already there inserts nothing, through the new write path.
    exporter = SQLiteExporter(f"sqlite:///{db}")
    exporter.export(events)
    exporter.shutdown()
    assert _contract_rows(db) == before


def test_call_rows_are_the_contract_call_rows() -> None:
    from llm_cost_tracker.exporters.sqlite import call_present, call_rows

    from llm_cost_tracker.pricing import price_event

    events = _varied_events()
    # Priced by the real pricing stage: snapshots whose parts are shared between calls.
    events += [
        price_event(replace(e, cost=lct.Cost(total=None, status="unknown"))) for e in events[:40]
    ]
    assert sum(e.cost.status == "priced" for e in events[-40:]) >= 30
    groups = call_rows(events)
    # Rows come grouped by which nullable columns are NULL, in event order within a group.
    assert len(groups) >= 4
    expected = [_sql.call_row(e, _sql.SQLITE) for e in events]
    for mask, rows_ in groups.items():
        present = call_present(mask)
        assert rows_ == [r for r in expected if _nulls(r) == present]
        assert all(v is not None for r in rows_ for v in compress(r, present))
    assert sum(map(len, groups.values())) == len(events)


def _nulls(row: tuple[object, ...]) -> tuple[bool, ...]:
    return tuple(v is not None for v in row)


def test_a_batch_mixing_null_shapes_binds_no_null() -> None:
    # Binding a None costs the sqlite3 module several times a number or a string:
    # one failed call in a batch must not make every other row bind a NULL error type.
    from llm_cost_tracker.exporters.sqlite import batch_rows

    calls = [
        UsageEvent(
            provider="openai",
            model="m",
            operation="chat",
            usage=TokenUsage(tokens={"input": 1}),
            latency_ms=5.0,
            error_type="RateLimitError" if i in (7, 8) else None,
            trace_id="ab" * 16 if i % 2 else None,
            span_id="cd" * 8 if i % 2 else None,
        )
        for i in range(100)
    ]
    call_tables = [values for (table, _), _, values in batch_rows(calls) if table == _sql.CALLS]
    assert len(call_tables) == 4  # traced or not, failed or not
    assert all(v is not None for values in call_tables for v in values)
    assert sum(map(len, call_tables)) == sum(
        sum(v is not None for v in _sql.call_row(e, _sql.SQLITE)) for e in calls
    )


def test_contract_columns_have_no_default_so_a_column_left_out_is_null(tmp_path) -> None:
    # The exporter leaves a column out of its INSERT when the whole batch has
    # NULL there: that is only the same as writing NULL while no column has a DEFAULT.
    db = str(tmp_path / "defaults.db")
    connection = connect(f"sqlite:///{db}")
    migrate(connection)
    for table in (_sql.CALLS, _sql.LINE_ITEMS, _sql.TAGS):
        defaults = [
            r[1] for r in connection.execute(f"PRAGMA table_info({table})") if r[4] is not None
        ]
        assert defaults == [], table
    connection.close()


def test_the_call_rows_token_totals_equal_the_usage_properties_for_every_component() -> None:
    import itertools

    from llm_cost_tracker._components import TOKEN_COMPONENTS
    from llm_cost_tracker.ledger._rows import _token_totals

    names = sorted(TOKEN_COMPONENTS)
    for size in (0, 1, 2, 3):
        for combination in itertools.combinations(names, size):
            tokens = {name: 10 ** (i + 1) + i for i, name in enumerate(combination)}
            usage = TokenUsage(tokens=tokens, reasoning_tokens=3)
            assert _token_totals(usage) == (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
                usage.reasoning_tokens,
            ), tokens


# -- checkpoints on their own thread ------------------------------------------


def _wal_index(db: str) -> tuple[int, int]:
    """(pages in the WAL, pages already copied into the database), from the -shm header."""
    import struct

    with open(f"{db}-shm", "rb") as shm:
        return struct.unpack("=16xI76xI", shm.read(100))


def _busy_events(n: int, model: str = "m") -> list[UsageEvent]:
    return [
        UsageEvent(
            provider="openai",
            model=model,
            operation="chat",
            usage=TokenUsage(tokens={"input": 100 + i, "output": 20}),
            tags={"feature": f"f{i % 7}", "user_id": str(i), "tenant_id": f"t{i % 13}"},
        )
        for i in range(n)
    ]


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "llm-cost-tracker-sqlite-checkpoint"]


def test_the_wal_is_checkpointed_by_a_thread_of_its_own_not_by_the_writer(tmp_path) -> None:
    db = str(tmp_path / "wal.db")
    exporter = SQLiteExporter(f"sqlite:///{db}")
    before = len(_checkpoint_threads())
    # About 600 WAL pages: past the thread's 500, below the writer's own 2,000.
    events = _busy_events(4000)
    for start in range(0, len(events), 500):
        exporter.export(events[start : start + 500])
    assert exporter._connection is not None
    assert exporter._connection.execute("PRAGMA wal_autocheckpoint").fetchone() == (2000,)
    assert len(_checkpoint_threads()) == before + 1
    deadline = time.monotonic() + 10
    while exporter.checkpoints == 0:
        assert time.monotonic() < deadline, "no checkpoint ran on the checkpoint thread"
        time.sleep(0.01)
    frames, copied = _wal_index(db)
    assert 500 <= frames < 2000  # only the thread can have copied pages
    assert copied > 0
    assert rows(db, "select count(*) from llm_cost_tracker_calls") == [(4000,)]
    exporter.shutdown()
    # Stopped with the exporter; the last connection folded the WAL into the database.
    assert len(_checkpoint_threads()) == before
    assert not os.path.exists(f"{db}-wal")
    assert rows(db, "select count(*), count(distinct call_id) from llm_cost_tracker_call_tags") == [
        (12000, 4000)
    ]
    assert rows(db, "pragma integrity_check") == [("ok",)]


def test_a_long_burst_keeps_the_wal_small(tmp_path) -> None:
    # A checkpoint that trails a busy writer never lets SQLite restart the WAL:
    # the writer's own checkpoint at 2,000 pages finishes the few pages left.
    db = str(tmp_path / "burst.db")
    exporter = SQLiteExporter(f"sqlite:///{db}")
    events = _busy_events(30_000)
    for start in range(0, len(events), 512):
        exporter.export(events[start : start + 512])
    assert os.path.getsize(f"{db}-wal") < 3000 * 4096 + 4096
    assert rows(db, "select count(*) from llm_cost_tracker_calls") == [(30_000,)]
    exporter.shutdown()


def test_an_in_memory_database_has_no_checkpoint_thread() -> None:
    before = len(_checkpoint_threads())
    exporter = SQLiteExporter("sqlite://")
    exporter.export(_busy_events(10))
    assert exporter._checkpointer is None
    assert len(_checkpoint_threads()) == before
    exporter.shutdown()
