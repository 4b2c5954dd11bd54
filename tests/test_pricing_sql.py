"""Frozen costs and ``reprice`` on real PostgreSQL and MariaDB servers (the exact NUMERIC columns)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import llm_cost_tracker as lct
from llm_cost_tracker import ledger as _sql
from llm_cost_tracker.cli._main import main

M = Decimal(1_000_000)
# When the calls happened: a fixed UTC moment, so "reprice --from DAY" selects
# them whatever the clock and time zone.
WHEN = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def _reprice_round_trip(server: Any, url: str, tmp_path: Path, capsys: Any) -> None:
    lct.configure(database_url=url, instrument=None, spool_dir=tmp_path / "spool")
    known = lct.track(
        provider="anthropic",
        model="claude-sonnet-4-5-20250929",
        usage={
            "input": 2048,
            "cache_read": 1800,
            "cache_write_5m": 148,
            "cache_write_1h": 100,
            "output": 503,
        },
        occurred_at=WHEN,
    )
    unknown = lct.track(
        provider="acme", model="house-1", usage={"input": 1000, "output": 100}, occurred_at=WHEN
    )
    assert lct.flush(30)
    lct.shutdown()
    expected = (2048 * 3 + 1800 * Decimal("0.30") + 148 * Decimal("3.75") + 100 * 6 + 503 * 15) / M
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"acme/house-1": {"input": 2, "output": 8}}}))
    day = WHEN.date().isoformat()
    args = ["reprice", "--database-url", url, "--from", day, "--prices-file", str(prices)]
    assert main(args) == 0
    assert "changed 1" in capsys.readouterr().out
    rows = {
        str(call_id): Decimal(str(total))
        for call_id, total in server.query(url, f"SELECT id, total_cost FROM {_sql.CALLS}")
    }
    assert rows[known.id] == expected  # untouched: it was priced
    assert rows[unknown.id] == (1000 * 2 + 100 * 8) / M
    items = server.query(
        url,
        f"SELECT component, unit_price FROM {_sql.LINE_ITEMS} WHERE call_id = '{unknown.id}'",
    )
    assert {c: Decimal(str(p)) for c, p in items} == {"input": 2 / M, "output": 8 / M}
    # The daily rollups that budgets and reports read moved with the new cost.
    ((rolled_up, unpriced),) = server.query(
        url, f"SELECT SUM(total_cost), SUM(unpriced_calls) FROM {_sql.ROLLUPS}"
    )
    assert Decimal(str(rolled_up)) == sum(rows.values())
    assert int(unpriced) == 0


@pytest.mark.postgres
def test_reprice_on_postgres(
    postgres_server: Any, fresh_postgres_url: str, tmp_path: Path, capsys: Any
) -> None:
    _reprice_round_trip(postgres_server, fresh_postgres_url, tmp_path, capsys)


@pytest.mark.mysql
def test_reprice_on_mariadb(
    mysql_server: Any, fresh_mysql_url: str, tmp_path: Path, capsys: Any
) -> None:
    _reprice_round_trip(mysql_server, fresh_mysql_url, tmp_path, capsys)
