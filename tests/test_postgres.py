"""The PostgreSQL exporter against a real server: types, migrations, COPY batches, idempotency, rollups."""

from __future__ import annotations

import sys
import uuid
from datetime import timezone
from decimal import Decimal
from pathlib import Path

import pytest
from llm_cost_tracker.exporters import exporter_for_url
from llm_cost_tracker.exporters.postgres import PostgresExporter
from sql_events import make_events

import llm_cost_tracker as lct
from llm_cost_tracker import ledger as _sql
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.cli._main import main

pytestmark = pytest.mark.postgres


def _types(server, url: str, table: str) -> dict[str, str]:
    rows = server.query(
        url,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
        (table,),
    )
    return dict(rows)


def test_migrate_creates_natural_types_and_records_the_schema_version(
    postgres_server, fresh_postgres_url, capsys
):
    assert main(["migrate", "--database-url", fresh_postgres_url]) == 0
    assert "applied" in capsys.readouterr().out
    calls = _types(postgres_server, fresh_postgres_url, _sql.CALLS)
    assert calls["id"] == "uuid"
    assert calls["occurred_at"] == "timestamp with time zone"
    assert calls["total_cost"] == "numeric"
    assert calls["pricing_snapshot"] == "jsonb"
    assert calls["stream"] == "boolean"
    assert _types(postgres_server, fresh_postgres_url, _sql.LINE_ITEMS)["cost"] == "numeric"
    assert _types(postgres_server, fresh_postgres_url, _sql.ROLLUPS)["day"] == "date"
    applied = [
        r[0]
        for r in postgres_server.query(
            fresh_postgres_url, f"SELECT name FROM {_sql.MIGRATIONS} ORDER BY name"
        )
    ]
    assert len(applied) == _sql.schema_version(_sql.POSTGRES)
    indexes = {
        r[0]
        for r in postgres_server.query(
            fresh_postgres_url, "SELECT indexname FROM pg_indexes WHERE tablename LIKE 'llm_cost%%'"
        )
    }
    assert {"llm_cost_tracker_calls_time", "llm_cost_tracker_call_tags_kv"} <= indexes
    # A second run upgrades nothing.
    assert main(["migrate", "--database-url", fresh_postgres_url]) == 0
    assert "up to date" in capsys.readouterr().out


def test_rows_keep_exact_values(postgres_server, fresh_postgres_url, tmp_path: Path):
    events = make_events(40)
    exporter = PostgresExporter(fresh_postgres_url, spool_dir=tmp_path)
    exporter.export(events)
    assert exporter.flush(30)
    exporter.shutdown()
    by_id = {e.id: e for e in events}
    rows = postgres_server.query(
        fresh_postgres_url,
        f"SELECT id, occurred_at, total_cost, pricing_snapshot, trace_id, span_id FROM {_sql.CALLS}",
    )
    assert len(rows) == 40
    for call_id, occurred_at, total_cost, snapshot, trace_id, span_id in rows:
        event = by_id[str(call_id)]
        assert isinstance(call_id, uuid.UUID)
        assert occurred_at == event.occurred_at
        assert occurred_at.utcoffset() == timezone.utc.utcoffset(None)
        assert total_cost == event.cost.total
        assert (snapshot or {}) == dict(event.cost.snapshot)
        assert (trace_id, span_id) == (event.trace_id, event.span_id)
    items = postgres_server.query(
        fresh_postgres_url, f"SELECT call_id, component, unit_price, cost FROM {_sql.LINE_ITEMS}"
    )
    expected = {
        (e.id, li.component): (li.unit_price, li.cost) for e in events for li in e.cost.line_items
    }
    assert {(str(r[0]), r[1]): (r[2], r[3]) for r in items if (str(r[0]), r[1]) in expected} == (
        expected
    )
    tags = postgres_server.query(
        fresh_postgres_url, f'SELECT call_id, "key", "value" FROM {_sql.TAGS}'
    )
    assert {(str(c), k, v) for c, k, v in tags} == {
        (e.id, k, v) for e in events for k, v in e.tags.items()
    }


def test_replayed_batches_insert_nothing_and_rollups_count_once(
    postgres_server, fresh_postgres_url, tmp_path: Path
):
    events = make_events(300)
    exporter = PostgresExporter(fresh_postgres_url, spool_dir=tmp_path)
    exporter.export(events[:200])
    exporter.export(events[100:])  # half of it already there
    exporter.export(events)  # all of it already there
    assert exporter.flush(30)
    exporter.shutdown()
    q = postgres_server.query
    assert q(fresh_postgres_url, f"SELECT count(*), count(DISTINCT id) FROM {_sql.CALLS}") == [
        (300, 300)
    ]
    assert STATS.get("delivery.postgres.written") == 300
    assert STATS.get("delivery.postgres.duplicates") == 400
    rollup = q(
        fresh_postgres_url,
        f"SELECT sum(calls), sum(total_cost), sum(input_tokens), sum(unpriced_calls) FROM {_sql.ROLLUPS}",
    )[0]
    direct = q(
        fresh_postgres_url,
        f"SELECT count(*), sum(total_cost), sum(input_tokens), "
        f"sum(CASE WHEN cost_status <> 'priced' THEN 1 ELSE 0 END) FROM {_sql.CALLS}",
    )[0]
    assert rollup == direct
    per_day = q(
        fresh_postgres_url,
        f"SELECT day, provider, model, calls, total_cost FROM {_sql.ROLLUPS} ORDER BY 1, 2, 3",
    )
    from_calls = q(
        fresh_postgres_url,
        f"SELECT (occurred_at AT TIME ZONE 'UTC')::date, provider, model, count(*), "
        f"coalesce(sum(total_cost), 0) FROM {_sql.CALLS} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    assert per_day == from_calls


def test_configure_with_a_postgres_url_just_works(
    postgres_server, fresh_postgres_url, tmp_path: Path
):
    lct.configure(database_url=fresh_postgres_url, instrument=None, spool_dir=tmp_path)
    with lct.with_tags(feature="chat"):
        lct.track(provider="openai", model="gpt-4o-mini", usage={"input": 120, "output": 30})
    assert lct.flush(timeout=30)
    rows = postgres_server.query(
        fresh_postgres_url,
        f'SELECT c.model, c.input_tokens, t."value" FROM {_sql.CALLS} c '
        f"JOIN {_sql.TAGS} t ON t.call_id = c.id AND t.\"key\" = 'feature'",
    )
    assert rows == [("gpt-4o-mini", 120, "chat")]
    assert STATS.get("delivery.postgres.pending") == 0
    assert STATS.get("delivery.postgres.spooled") == 0


def test_exporter_for_url_accepts_sqlalchemy_spellings(fresh_postgres_url, tmp_path: Path):
    url = fresh_postgres_url.replace("postgresql://", "postgresql+psycopg://")
    exporter = exporter_for_url(url)
    assert isinstance(exporter, PostgresExporter)
    exporter.export(make_events(3))
    assert exporter.flush(30)
    exporter.shutdown()


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ImportError, match=r"pip install 'llm-cost-tracker\[postgres\]'"):
        PostgresExporter("postgresql://u@127.0.0.1:1/db")


def test_sql_command_reads_the_ledger(postgres_server, fresh_postgres_url, tmp_path, capsys):
    exporter = PostgresExporter(fresh_postgres_url, spool_dir=tmp_path)
    exporter.export(make_events(10))
    assert exporter.flush(30)
    exporter.shutdown()
    code = main(
        [
            "sql",
            "--database-url",
            fresh_postgres_url,
            "--format",
            "json",
            f"SELECT count(*) AS n, sum(total_cost) AS cost FROM {_sql.CALLS}",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert '"n": 10' in out
    total = postgres_server.query(fresh_postgres_url, f"SELECT sum(total_cost) FROM {_sql.CALLS}")
    assert isinstance(total[0][0], Decimal)
    assert format(total[0][0], "f") in out
