"""The MySQL/MariaDB exporter against a real server: types, migrations, multi-row batches, idempotency."""

from __future__ import annotations

import sys
from datetime import timezone
from decimal import Decimal
from pathlib import Path

import pytest
from llm_cost_tracker.exporters import exporter_for_url
from llm_cost_tracker.exporters.mysql import MySQLExporter, connect_kwargs
from sql_events import make_events

import llm_cost_tracker as lct
from llm_cost_tracker import ledger as _sql
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.cli._main import main

pytestmark = pytest.mark.mysql


def _types(server, url: str, table: str) -> dict[str, str]:
    rows = server.query(
        url,
        "SELECT column_name, column_type FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = %s",
        (table,),
    )
    return {name: kind.lower() for name, kind in rows}


def test_migrate_creates_natural_types_and_records_the_schema_version(
    mysql_server, fresh_mysql_url, capsys
):
    assert main(["migrate", "--database-url", fresh_mysql_url]) == 0
    assert "applied" in capsys.readouterr().out
    calls = _types(mysql_server, fresh_mysql_url, _sql.CALLS)
    assert calls["id"] == "char(36)"
    assert calls["occurred_at"] == "datetime(6)"
    assert calls["total_cost"] == "decimal(24,12)"
    # MariaDB spells JSON as LONGTEXT with a JSON_VALID check; MySQL as json.
    assert calls["pricing_snapshot"] in ("json", "longtext")
    assert _types(mysql_server, fresh_mysql_url, _sql.ROLLUPS)["day"] == "date"
    collations = mysql_server.query(
        fresh_mysql_url,
        "SELECT DISTINCT table_collation FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name LIKE 'llm_cost_tracker%%'",
    )
    assert collations == [("utf8mb4_bin",)]
    applied = mysql_server.query(fresh_mysql_url, f"SELECT name FROM {_sql.MIGRATIONS}")
    assert len(applied) == _sql.schema_version(_sql.MYSQL)
    assert main(["migrate", "--database-url", fresh_mysql_url]) == 0
    assert "up to date" in capsys.readouterr().out


def test_rows_keep_exact_values(mysql_server, fresh_mysql_url, tmp_path: Path):
    events = make_events(40)
    exporter = MySQLExporter(fresh_mysql_url, spool_dir=tmp_path)
    exporter.export(events)
    assert exporter.flush(30)
    exporter.shutdown()
    by_id = {e.id: e for e in events}
    rows = mysql_server.query(
        fresh_mysql_url, f"SELECT id, occurred_at, total_cost, trace_id FROM {_sql.CALLS}"
    )
    assert len(rows) == 40
    for call_id, occurred_at, total_cost, trace_id in rows:
        event = by_id[call_id]
        # DATETIME(6) holds naive UTC.
        assert occurred_at == event.occurred_at.astimezone(timezone.utc).replace(tzinfo=None)
        assert total_cost == event.cost.total
        assert trace_id == event.trace_id
    tags = mysql_server.query(fresh_mysql_url, f"SELECT call_id, `key`, `value` FROM {_sql.TAGS}")
    assert set(tags) == {(e.id, k, v) for e in events for k, v in e.tags.items()}


def test_tag_keys_differing_in_case_stay_apart(mysql_server, fresh_mysql_url, tmp_path: Path):
    event = make_events(1)[0]
    from dataclasses import replace

    event = replace(event, tags={"team": "a", "Team": "b", "emoji": "💸"})
    exporter = MySQLExporter(fresh_mysql_url, spool_dir=tmp_path)
    exporter.export([event])
    assert exporter.flush(30)
    exporter.shutdown()
    rows = mysql_server.query(fresh_mysql_url, f"SELECT `key`, `value` FROM {_sql.TAGS}")
    assert sorted(rows) == [("Team", "b"), ("emoji", "💸"), ("team", "a")]


def test_replayed_batches_insert_nothing_and_rollups_count_once(
    mysql_server, fresh_mysql_url, tmp_path: Path
):
    events = make_events(300)
    exporter = MySQLExporter(fresh_mysql_url, spool_dir=tmp_path)
    exporter.export(events[:200])
    exporter.export(events[100:])
    exporter.export(events)
    assert exporter.flush(30)
    exporter.shutdown()
    q = mysql_server.query
    assert q(fresh_mysql_url, f"SELECT count(*), count(DISTINCT id) FROM {_sql.CALLS}") == [
        (300, 300)
    ]
    assert STATS.get("delivery.mysql.written") == 300
    assert STATS.get("delivery.mysql.duplicates") == 400
    per_day = q(
        fresh_mysql_url,
        f"SELECT day, provider, model, calls, total_cost FROM {_sql.ROLLUPS} ORDER BY 1, 2, 3",
    )
    from_calls = q(
        fresh_mysql_url,
        f"SELECT DATE(occurred_at), provider, model, count(*), coalesce(sum(total_cost), 0) "
        f"FROM {_sql.CALLS} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    assert per_day == from_calls


def test_configure_with_a_mysql_url_just_works(mysql_server, fresh_mysql_url, tmp_path: Path):
    lct.configure(database_url=fresh_mysql_url, instrument=None, spool_dir=tmp_path)
    with lct.with_tags(feature="chat"):
        lct.track(provider="anthropic", model="claude-sonnet-4-5", usage={"input": 9, "output": 3})
    assert lct.flush(timeout=30)
    rows = mysql_server.query(
        fresh_mysql_url,
        f"SELECT c.model, c.output_tokens, t.`value` FROM {_sql.CALLS} c "
        f"JOIN {_sql.TAGS} t ON t.call_id = c.id AND t.`key` = 'feature'",
    )
    assert rows == [("claude-sonnet-4-5", 3, "chat")]


def test_url_spellings_and_parameters(fresh_mysql_url, tmp_path: Path):
    kwargs = connect_kwargs("mysql+pymysql://app:p%40ss@db.example:3307/ledger?unix_socket=/s")
    assert (kwargs["user"], kwargs["password"], kwargs["host"], kwargs["port"]) == (
        "app",
        "p@ss",
        "db.example",
        3307,
    )
    assert (kwargs["database"], kwargs["unix_socket"]) == ("ledger", "/s")
    exporter = exporter_for_url(fresh_mysql_url.replace("mysql://", "mariadb://"))
    assert isinstance(exporter, MySQLExporter)
    exporter.shutdown()


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "pymysql", None)
    with pytest.raises(ImportError, match=r"pip install 'llm-cost-tracker\[mysql\]'"):
        MySQLExporter("mysql://root@127.0.0.1:1/db")


def test_migration_cut_short_by_a_lost_connection_completes(mysql_server, fresh_mysql_url):
    from llm_cost_tracker.exporters.mysql import connect, migrate

    # MySQL commits DDL one statement at a time: the tables of 0001 exist, unrecorded.
    for statement in _sql.MIGRATION_LIST[0].render(_sql.MYSQL)[:4]:
        mysql_server.query(fresh_mysql_url, statement)
    connection = connect(fresh_mysql_url)
    try:
        applied = migrate(connection)
    finally:
        connection.close()
    assert applied[0] == "0001_contract_tables"
    assert len(applied) == _sql.schema_version(_sql.MYSQL)


def test_sql_command_reads_the_ledger(fresh_mysql_url, tmp_path: Path, capsys):
    exporter = MySQLExporter(fresh_mysql_url, spool_dir=tmp_path)
    events = make_events(10)
    exporter.export(events)
    assert exporter.flush(30)
    exporter.shutdown()
    query = (
        f"SELECT count(*) AS n, sum(total_cost) AS cost, "
        f"DATE_FORMAT(min(occurred_at), '%Y-%m') AS month FROM {_sql.CALLS}"
    )
    assert main(["sql", "--database-url", fresh_mysql_url, "--format", "csv", query]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header == "n,cost,month"
    n, cost, month = row.split(",")
    assert int(n) == 10
    assert Decimal(cost) == sum(e.cost.total for e in events if e.cost.total is not None)
    assert month == min(e.occurred_at for e in events).strftime("%Y-%m")
