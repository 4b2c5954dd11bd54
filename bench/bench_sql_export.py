"""Export throughput of the PostgreSQL and MySQL exporters against the raw driver limit.

Each call carries three tags and three line items. The baseline, measured in
the same run on the same server, writes the same prebuilt rows with the bare
driver and no library code: ``COPY`` into the three tables on PostgreSQL,
PyMySQL multi-row ``INSERT`` on MariaDB, one transaction per 512 calls. The
exporter is measured from the first ``export()`` until ``flush()`` confirms
every row is in the database: row building, the writer thread, the rollup
upsert and the commit included. Each side runs three times into a fresh
database, alternating which goes first; the best run counts.

Servers: ``LCT_BENCH_POSTGRES_URL`` / ``LCT_BENCH_MYSQL_URL`` if set (each run
creates and drops its own databases there), else throwaway servers started
like the tests' fixtures (PostgreSQL's initdb/pg_ctl, MariaDB's mariadbd).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from llm_cost_tracker import ledger as _sql
from llm_cost_tracker._events import Cost, LineItem, TokenUsage, UsageEvent

CALLS = 8_000
BATCH = 512
RUNS = 3


def make_calls(n: int) -> list[UsageEvent]:
    start = datetime.now(timezone.utc) - timedelta(days=2)
    price_in, price_cached, price_out = Decimal("3E-6"), Decimal("3E-7"), Decimal("1.5E-5")
    events = []
    for i in range(n):
        tokens = {"input": 1000 + i % 977, "cache_read": 200 + i % 311, "output": 50 + i % 401}
        items = tuple(
            LineItem(c, "token", Decimal(q), p, Decimal(q) * p)
            for c, q, p in (
                ("input", tokens["input"], price_in),
                ("cache_read", tokens["cache_read"], price_cached),
                ("output", tokens["output"], price_out),
            )
        )
        events.append(
            UsageEvent(
                provider="anthropic",
                model=("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")[i % 3],
                operation="messages",
                usage=TokenUsage(tokens=tokens),
                occurred_at=start + timedelta(seconds=i * 7),
                latency_ms=812.5,
                provider_response_id=f"msg_{i:08d}",
                trace_id=uuid.uuid4().hex,
                span_id=uuid.uuid4().hex[:16],
                tags={"feature": f"f{i % 12}", "user_id": str(i % 997), "tenant": f"t{i % 31}"},
                cost=Cost(
                    total=sum((li.cost for li in items if li.cost is not None), Decimal(0)),
                    status="priced",
                    line_items=items,
                    snapshot={"catalog": "bench", "input": "3E-6", "output": "1.5E-5"},
                ),
            )
        )
    return events


def _rows(events: list[UsageEvent], dialect: _sql.Dialect) -> list[tuple[list[Any], ...]]:
    batches = []
    for start in range(0, len(events), BATCH):
        chunk = events[start : start + BATCH]
        batches.append(
            (
                [_sql.call_row(e, dialect) for e in chunk],
                [r for e in chunk for r in _sql.line_item_rows(e, dialect)],
                [r for e in chunk for r in _sql.tag_rows(e)],
            )
        )
    return batches


def raw_postgres(url: str, events: list[UsageEvent]) -> float:
    from llm_cost_tracker.exporters.postgres import connect, migrate

    batches = _rows(events, _sql.POSTGRES)
    copies = (
        f"COPY {_sql.CALLS} ({', '.join(_sql.CALL_COLUMNS)}) FROM STDIN",
        f"COPY {_sql.LINE_ITEMS} ({', '.join(_sql.LINE_ITEM_COLUMNS)}) FROM STDIN",
        f'COPY {_sql.TAGS} (call_id, "key", "value") FROM STDIN',
    )
    connection = connect(url)
    try:
        migrate(connection)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for batch in batches:
                for sql, rows in zip(copies, batch, strict=True):
                    with cursor.copy(sql) as copy:
                        for row in rows:
                            copy.write_row(row)
                connection.commit()
        return time.perf_counter() - started
    finally:
        connection.close()


def raw_mysql(url: str, events: list[UsageEvent]) -> float:
    from llm_cost_tracker.exporters.mysql import connect, migrate

    batches = _rows(events, _sql.MYSQL)
    inserts = [
        _sql.MYSQL.insert_sql(table, columns).replace("INSERT IGNORE", "INSERT")
        for table, columns in (
            (_sql.CALLS, _sql.CALL_COLUMNS),
            (_sql.LINE_ITEMS, _sql.LINE_ITEM_COLUMNS),
            (_sql.TAGS, _sql.TAG_COLUMNS),
        )
    ]
    connection = connect(url)
    try:
        migrate(connection)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for batch in batches:
                for sql, rows in zip(inserts, batch, strict=True):
                    cursor.executemany(sql, rows)
                connection.commit()
        return time.perf_counter() - started
    finally:
        connection.close()


def exporter_run(url: str, events: list[UsageEvent], spool: str) -> float:
    from llm_cost_tracker.exporters import exporter_for_url, migrate

    migrate(url)  # the tables exist beforehand, as for the baseline
    exporter: Any = exporter_for_url(url)
    exporter = type(exporter)(url, spool_dir=spool)
    try:
        started = time.perf_counter()
        for start in range(0, len(events), BATCH):
            exporter.export(events[start : start + BATCH])
        if not exporter.flush(300):
            raise RuntimeError("the exporter did not finish")
        return time.perf_counter() - started
    finally:
        exporter.shutdown()


def _servers() -> tuple[Any, Any, Callable[[], None]]:
    """(postgres server, mysql server, close) with create_database(name) -> url and drop(url)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import db_servers

    pg_url = os.environ.get("LCT_BENCH_POSTGRES_URL")
    my_url = os.environ.get("LCT_BENCH_MYSQL_URL")
    started: list[Any] = []
    pg = my = None
    if not pg_url:
        bindir = db_servers._postgres_bindir()
        if bindir:
            pg = db_servers.PostgresServer(bindir)
            started.append(pg)
    if not my_url:
        import shutil

        mariadbd = shutil.which("mariadbd") or (
            "/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None
        )
        install_db = shutil.which("mariadb-install-db")
        if mariadbd and install_db:
            my = db_servers.MariaDBServer(mariadbd, install_db)
            started.append(my)

    def close() -> None:
        for server in started:
            server.close()

    return (pg_url or pg), (my_url or my), close


def _fresh(server_or_url: Any, dialect: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    if not isinstance(server_or_url, str):
        url: str = server_or_url.create_database(name)
        return url
    base = server_or_url.rsplit("/", 1)[0]
    if dialect == "postgres":
        import psycopg

        with psycopg.connect(server_or_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    else:
        from llm_cost_tracker.exporters.mysql import connect

        connection = connect(server_or_url)
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        connection.close()
    return f"{base}/{name}"


def main() -> None:
    events = make_calls(CALLS)
    pg, my, close = _servers()
    try:
        with tempfile.TemporaryDirectory() as spool:
            for dialect, target, raw, limit in (
                ("postgres", pg, raw_postgres, "raw COPY"),
                ("mysql", my, raw_mysql, "raw multi-row INSERT"),
            ):
                if target is None:
                    print(f"{dialect}: no server available, skipped")
                    continue
                raw_best = exp_best = float("inf")
                for run in range(RUNS):
                    # Alternate which side goes first, so neither gets the warmer server.
                    if run % 2:
                        exp_best = min(
                            exp_best, exporter_run(_fresh(target, dialect), events, spool)
                        )
                    raw_best = min(raw_best, raw(_fresh(target, dialect), events))
                    if not run % 2:
                        exp_best = min(
                            exp_best, exporter_run(_fresh(target, dialect), events, spool)
                        )
                raw_rate, exp_rate = CALLS / raw_best, CALLS / exp_best
                print(
                    f"{dialect}: {CALLS} calls x (3 tags, 3 line items), batches of {BATCH}, best of {RUNS}\n"
                    f"  {limit:<22} {raw_rate:>9,.0f} calls/s\n"
                    f"  {'exporter':<22} {exp_rate:>9,.0f} calls/s  "
                    f"({exp_rate / raw_rate:.0%} of the raw limit; target >= 70%)",
                    flush=True,
                )
    finally:
        close()


if __name__ == "__main__":
    main()
