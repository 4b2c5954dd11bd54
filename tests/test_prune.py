"""``llm-cost-tracker prune``: retention in batches on SQLite, PostgreSQL and MariaDB; rollups stay consistent."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from llm_cost_tracker.exporters.sqlite import SQLiteExporter, connect
from sql_events import make_events

from llm_cost_tracker import ledger as _sql
from llm_cost_tracker.cli._main import main
from llm_cost_tracker.cli._prune import parse_cutoff

NOW = datetime.now(timezone.utc)


def _events():
    # 120 calls, one every 1.5 days back from now: 60 are older than 90 days.
    return [
        replace(e, occurred_at=NOW - timedelta(hours=36 * i + 1))
        for i, e in enumerate(make_events(120, seed=5))
    ]


def test_parse_cutoff():
    now = datetime(2026, 5, 1, tzinfo=timezone.utc)
    assert parse_cutoff("90d", now=now) == now - timedelta(days=90)
    assert parse_cutoff("12h", now=now) == now - timedelta(hours=12)
    assert parse_cutoff("2w", now=now) == now - timedelta(days=14)
    assert parse_cutoff("2026-01-01") == datetime(2026, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(Exception, match="90d"):
        parse_cutoff("soon")


def test_prune_sqlite_in_batches(tmp_path: Path, capsys):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    exporter = SQLiteExporter(url)
    events = _events()
    exporter.export(events)
    exporter.shutdown()
    assert main(["prune", "--older-than", "90d", "--dry-run", "--database-url", url]) == 0
    assert "would delete 60 call(s)" in capsys.readouterr().out
    assert main(["prune", "--older-than", "90d", "--batch-size", "7", "--database-url", url]) == 0
    assert "deleted 60 call(s)" in capsys.readouterr().out
    connection = connect(url)
    try:
        kept = {r[0] for r in connection.execute(f"SELECT id FROM {_sql.CALLS}")}
        tag_ids = {r[0] for r in connection.execute(f"SELECT call_id FROM {_sql.TAGS}")}
        item_ids = {r[0] for r in connection.execute(f"SELECT call_id FROM {_sql.LINE_ITEMS}")}
    finally:
        connection.close()
    assert kept == {e.id for e in events if e.occurred_at >= NOW - timedelta(days=90)}
    assert tag_ids == kept
    assert item_ids <= kept


@pytest.mark.postgres
@pytest.mark.mysql
def test_prune_keeps_rollups_equal_to_the_calls(sql_target, tmp_path: Path, capsys):
    exporter = sql_target.exporter(tmp_path)
    events = _events()
    exporter.export(events)
    assert exporter.flush(30)
    exporter.shutdown()
    url = sql_target.url
    assert main(["prune", "--older-than", "90d", "--batch-size", "7", "--database-url", url]) == 0
    assert "deleted 60 call(s)" in capsys.readouterr().out
    assert sql_target.count() == 60
    assert sql_target.count(_sql.TAGS) == 60 * 3
    orphans = sql_target.query(
        f"SELECT count(*) FROM {_sql.LINE_ITEMS} WHERE call_id NOT IN (SELECT id FROM {_sql.CALLS})"
    )
    assert orphans[0][0] == 0
    day = (
        "(occurred_at AT TIME ZONE 'UTC')::date"
        if sql_target.dialect == "postgres"
        else "DATE(occurred_at)"
    )
    from_calls = sql_target.query(
        f"SELECT {day}, provider, model, count(*), coalesce(sum(total_cost), 0), "
        f"coalesce(sum(input_tokens), 0) FROM {_sql.CALLS} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    rollups = sql_target.query(
        f"SELECT day, provider, model, calls, total_cost, input_tokens FROM {_sql.ROLLUPS} "
        "ORDER BY 1, 2, 3"
    )
    assert rollups == from_calls

    # --keep-rollups: the calls go, the totals stay.
    before = sql_target.query(f"SELECT sum(calls) FROM {_sql.ROLLUPS}")[0][0]
    assert main(["prune", "--older-than", "30d", "--keep-rollups", "--database-url", url]) == 0
    assert sql_target.count() == 20
    assert sql_target.query(f"SELECT sum(calls) FROM {_sql.ROLLUPS}")[0][0] == before


@pytest.mark.postgres
@pytest.mark.mysql
def test_rebuild_rollups_after_calls_change_in_place(sql_target, tmp_path: Path):
    from llm_cost_tracker.exporters import connect as connect_url

    exporter = sql_target.exporter(tmp_path)
    events = _events()[:30]
    exporter.export(events)
    assert exporter.flush(30)
    exporter.shutdown()
    # What re-pricing does: change stored costs, then rebuild the days it touched.
    sql_target.query(f"UPDATE {_sql.CALLS} SET total_cost = 1, cost_status = 'priced'")
    connection = connect_url(sql_target.url)
    try:
        cursor = connection.cursor()
        dialect = _sql.DIALECTS[sql_target.dialect]
        _sql.rebuild_rollups(cursor, dialect, NOW - timedelta(days=400), None)
        connection.commit()
    finally:
        connection.close()
    rows = sql_target.query(
        f"SELECT sum(calls), sum(total_cost), sum(unpriced_calls) FROM {_sql.ROLLUPS}"
    )
    assert [tuple(int(v) for v in r) for r in rows] == [(30, 30, 0)]
