"""The same event stream written to SQLite, PostgreSQL and MariaDB gives identical rows."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from llm_cost_tracker.exporters.mysql import MySQLExporter
from llm_cost_tracker.exporters.postgres import PostgresExporter
from llm_cost_tracker.exporters.sqlite import SQLiteExporter, connect
from sql_events import make_events

from llm_cost_tracker import ledger as _sql

pytestmark = [pytest.mark.postgres, pytest.mark.mysql]


def _stream() -> list[Any]:
    events = make_events(400, seed=11)
    # Values that trip up quoting, encodings and collations.
    odd = {
        "quote": 'it\'s "quoted"',
        "unicode": "naïve 東京 💸",
        "Feature": "upper-case key",
        "newline": "a\nb\tc",
        "long": "x" * 2000,
    }
    events[3] = replace(events[3], tags={**events[3].tags, **odd})
    return events


def _time(value: Any) -> str:
    if isinstance(value, str):  # SQLite: fixed-width UTC text
        return value
    if value.tzinfo is None:  # MySQL: naive UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _number(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):  # SQLite NUMERIC stores REAL; its repr is the value written
        return Decimal(repr(value))
    return Decimal(value)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _normalize_calls(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    columns = _sql.CALL_COLUMNS
    out = []
    for row in rows:
        values = dict(zip(columns, row, strict=False))
        values["id"] = str(values["id"])
        values["occurred_at"] = _time(values["occurred_at"])
        values["total_cost"] = _number(values["total_cost"])
        values["pricing_snapshot"] = _json(values["pricing_snapshot"])
        values["stream"] = bool(values["stream"])
        out.append(tuple(values[c] for c in columns))
    return sorted(out)


def _read(query, quote) -> dict[str, list[tuple[Any, ...]]]:
    calls = query(f"SELECT {', '.join(_sql.CALL_COLUMNS)} FROM {_sql.CALLS}")
    items = query(f"SELECT {', '.join(_sql.LINE_ITEM_COLUMNS)} FROM {_sql.LINE_ITEMS}")
    tags = query(f"SELECT call_id, {quote('key')}, {quote('value')} FROM {_sql.TAGS}")
    return {
        "calls": _normalize_calls(calls),
        "line_items": sorted(
            (str(c), comp, unit, _number(q), _number(p), _number(x))
            for c, comp, unit, q, p, x in items
        ),
        "tags": sorted((str(c), k, v) for c, k, v in tags),
    }


def test_same_stream_gives_identical_rows_on_all_three(
    postgres_server, fresh_postgres_url, mysql_server, fresh_mysql_url, tmp_path: Path
):
    events = _stream()
    sqlite_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    exporters = [
        SQLiteExporter(sqlite_url),
        PostgresExporter(fresh_postgres_url, spool_dir=tmp_path / "spool"),
        MySQLExporter(fresh_mysql_url, spool_dir=tmp_path / "spool"),
    ]
    for start in range(0, len(events), 128):
        for exporter in exporters:
            exporter.export(events[start : start + 128])
    for exporter in exporters[1:]:
        assert exporter.flush(60)
    for exporter in exporters:
        exporter.shutdown()

    connection = connect(sqlite_url)
    try:
        exact = dict(connection.execute(f"SELECT id, total_cost_exact FROM {_sql.CALLS}"))

        def sqlite_query(sql: str) -> list[tuple[Any, ...]]:
            return list(connection.execute(sql))

        on_sqlite = _read(sqlite_query, lambda c: f'"{c}"')
    finally:
        connection.close()
    on_postgres = _read(lambda sql: postgres_server.query(fresh_postgres_url, sql), '"{}"'.format)
    on_mysql = _read(lambda sql: mysql_server.query(fresh_mysql_url, sql), "`{}`".format)

    assert len(on_sqlite["calls"]) == 400
    # SQLite keeps the exact cost as text beside its approximate NUMERIC.
    position = _sql.CALL_COLUMNS.index("total_cost")
    on_sqlite["calls"] = [
        (*r[:position], None if exact[r[0]] is None else Decimal(exact[r[0]]), *r[position + 1 :])
        for r in on_sqlite["calls"]
    ]
    for table in ("calls", "line_items", "tags"):
        assert on_postgres[table] == on_sqlite[table], table
        assert on_mysql[table] == on_sqlite[table], table
    expected_costs = {e.id: e.cost.total for e in events}
    assert {r[0]: r[position] for r in on_postgres["calls"]} == expected_costs

    # The rollups agree between the two servers, and with the calls they sum.
    rollup_sql = f"SELECT {', '.join(_sql.ROLLUP_COLUMNS)} FROM {_sql.ROLLUPS} ORDER BY 1, 2, 3, 4"
    pg_rollups = postgres_server.query(fresh_postgres_url, rollup_sql)
    my_rollups = mysql_server.query(fresh_mysql_url, rollup_sql)
    assert pg_rollups == my_rollups
    assert pg_rollups == sorted(_sql.rollup_rows(events))
    assert sum(r[4] for r in pg_rollups) == 400


def test_times_are_utc_whatever_the_input_offset(
    postgres_server, fresh_postgres_url, mysql_server, fresh_mysql_url, tmp_path: Path
):
    from datetime import timedelta

    tokyo = timezone(timedelta(hours=9))
    event = replace(make_events(1)[0], occurred_at=datetime(2026, 3, 1, 8, 0, 0, 5, tzinfo=tokyo))
    for exporter in (
        PostgresExporter(fresh_postgres_url, spool_dir=tmp_path),
        MySQLExporter(fresh_mysql_url, spool_dir=tmp_path),
    ):
        exporter.export([event])
        assert exporter.flush(30)
        exporter.shutdown()
    pg = postgres_server.query(fresh_postgres_url, f"SELECT occurred_at FROM {_sql.CALLS}")[0][0]
    my = mysql_server.query(fresh_mysql_url, f"SELECT occurred_at FROM {_sql.CALLS}")[0][0]
    assert _time(pg) == _time(my) == "2026-02-28 23:00:00.000005"
    day = mysql_server.query(fresh_mysql_url, f"SELECT day FROM {_sql.ROLLUPS}")[0][0]
    assert day.isoformat() == "2026-02-28"


def test_migrate_upgrades_in_place_and_backfills_rollups(sql_target, tmp_path: Path, capsys):
    from llm_cost_tracker.cli._main import main

    exporter = sql_target.exporter(tmp_path)
    exporter.export(make_events(120))
    assert exporter.flush(30)
    exporter.shutdown()
    # Take the database back to the schema before the rollups existed.
    sql_target.query(f"DROP TABLE {_sql.ROLLUPS}")
    sql_target.query(
        f"DELETE FROM {_sql.MIGRATIONS} WHERE name LIKE '0005%%' OR name LIKE '0006%%'"
    )
    assert main(["migrate", "--database-url", sql_target.url]) == 0
    out = capsys.readouterr().out
    assert "0005_daily_rollups" in out
    assert f"0006_backfill_daily_rollups_{sql_target.dialect}" in out
    assert sql_target.count() == 120
    rollup_sql = f"SELECT {', '.join(_sql.ROLLUP_COLUMNS)} FROM {_sql.ROLLUPS} ORDER BY 1, 2, 3, 4"
    assert sql_target.query(rollup_sql) == sorted(_sql.rollup_rows(make_events(120)))
