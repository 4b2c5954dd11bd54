"""Every recipe in docs/querying.md runs on SQLite, PostgreSQL and MariaDB and gives the same rows."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from llm_cost_tracker.exporters.mysql import MySQLExporter
from llm_cost_tracker.exporters.postgres import PostgresExporter
from llm_cost_tracker.exporters.sqlite import SQLiteExporter, connect
from sql_events import make_events

pytestmark = [pytest.mark.postgres, pytest.mark.mysql]

DOC = Path(__file__).resolve().parent.parent / "docs" / "querying.md"
_DIALECTS = {"SQLite": "sqlite", "PostgreSQL": "postgres", "MySQL": "mysql"}

# The recipes read the database's clock ("last 30 days", "this month"). The tests
# run them at a fixed moment instead, the 2nd of a month, with the week of calls
# before it crossing into the month: the rows are the same on any day the tests
# run, and "this month" really leaves calls out.
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)
_STAMP = f"{NOW:%Y-%m-%d %H:%M:%S}"
_CLOCK_AT_NOW = {
    "sqlite": [(r"'now'", f"'{_STAMP}'")],
    "postgres": [(r"\bnow\(\)", f"TIMESTAMPTZ '{_STAMP}+00'")],
    "mysql": [(r"\b(utc_timestamp|now)\(\)", f"TIMESTAMP '{_STAMP}'")],
}
_ANY_CLOCK = re.compile(
    r"'now'|\bnow\(|utc_(timestamp|date|time)|current_(date|time|timestamp)|\bcur(date|time)\("
    r"|sysdate|localtime|unixepoch\(\s*\)|(clock|statement|transaction)_timestamp",
    re.IGNORECASE,
)


def at_now(sql: str, dialect: str) -> str:
    """``sql`` with the database's clock replaced by NOW; fails on a clock it does not know."""
    for clock, fixed in _CLOCK_AT_NOW[dialect]:
        sql = re.sub(clock, fixed, sql, flags=re.IGNORECASE)
    left = _ANY_CLOCK.search(sql)
    assert left is None, f"a recipe reads the clock with {left.group()!r}: add it to _CLOCK_AT_NOW"
    return sql


def recipes() -> dict[str, dict[str, str]]:
    """{title: {dialect: sql}} from the doc's '## N. Title' sections and '-- Dialect' blocks."""
    found: dict[str, dict[str, str]] = {}
    for section in re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.M)[1:]:
        title = section.splitlines()[0].strip()
        blocks = re.findall(r"```sql\n-- (\w+)\n(.*?)```", section, flags=re.S)
        if blocks:
            found[title] = {_DIALECTS[name]: sql.strip() for name, sql in blocks}
    return found


def test_the_doc_has_ten_plus_recipes_each_for_all_three_dialects():
    found = recipes()
    assert len(found) >= 10
    for title, by_dialect in found.items():
        assert set(by_dialect) == {"sqlite", "postgres", "mysql"}, title


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, Decimal)):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        return number.quantize(Decimal("0.000001"))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"unexpected value {value!r}")


@pytest.fixture(scope="module")
def ledgers(
    postgres_server, mysql_server, tmp_path_factory
) -> tuple[list[Any], dict[str, Callable[[str], list[tuple[Any, ...]]]]]:
    """The same 300 calls in the 8 days before NOW in all three databases; a query function for each.

    The query functions run a recipe as if it were NOW (see at_now).
    """
    events = make_events(300, seed=3, start=NOW - timedelta(days=8))
    assert max(e.occurred_at for e in events) < NOW
    root = tmp_path_factory.mktemp("querying")
    sqlite_url = f"sqlite:///{root / 'ledger.db'}"
    pg_url = postgres_server.create_database(f"q_{uuid.uuid4().hex[:10]}")
    my_url = mysql_server.create_database(f"q_{uuid.uuid4().hex[:10]}")
    exporters = [
        SQLiteExporter(sqlite_url),
        PostgresExporter(pg_url, spool_dir=root / "spool"),
        MySQLExporter(my_url, spool_dir=root / "spool"),
    ]
    for exporter in exporters:
        exporter.export(events)
    for exporter in exporters[1:]:
        assert exporter.flush(60)
    for exporter in exporters:
        exporter.shutdown()

    def on_sqlite(sql: str) -> list[tuple[Any, ...]]:
        connection = connect(sqlite_url)
        try:
            return list(connection.execute(at_now(sql, "sqlite")))
        finally:
            connection.close()

    return events, {
        "sqlite": on_sqlite,
        "postgres": lambda sql: postgres_server.query(pg_url, at_now(sql, "postgres")),
        "mysql": lambda sql: mysql_server.query(my_url, at_now(sql, "mysql")),
    }


@pytest.mark.parametrize("title", list(recipes()))
def test_recipe_gives_the_same_rows_everywhere(title: str, ledgers):
    _, query = ledgers
    results = {
        dialect: [tuple(_plain(v) for v in row) for row in query[dialect](sql)]
        for dialect, sql in recipes()[title].items()
    }
    assert results["sqlite"], f"{title}: no rows on the test data"
    assert _close(results["postgres"], results["sqlite"]), (title, results)
    assert _close(results["mysql"], results["sqlite"]), (title, results)
    assert _close(results["postgres"], results["mysql"]), title


def _close(rows: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> bool:
    """Equal rows, numbers within 1e-9 relative: SQLite sums floats, the servers exact decimals."""
    if len(rows) != len(expected):
        return False
    for row, other in zip(rows, expected, strict=True):
        for a, b in zip(row, other, strict=True):
            if isinstance(a, Decimal) and isinstance(b, Decimal):
                if abs(a - b) > max(abs(b) * Decimal("1e-9"), Decimal("1e-6")):
                    return False
            elif a != b:
                return False
    return True


def _run(title_start: str, dialect: str, ledgers) -> list[tuple[Any, ...]]:
    _, query = ledgers
    title = next(t for t in recipes() if t.startswith(title_start))
    return [tuple(_plain(v) for v in row) for row in query[dialect](recipes()[title][dialect])]


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_recipes_answer_what_the_events_say(dialect: str, ledgers):
    events, _ = ledgers
    by_feature: dict[str, Decimal] = {}
    for e in events:
        by_feature.setdefault(e.tags["feature"], Decimal(0))
        by_feature[e.tags["feature"]] += e.cost.total or 0
    got = sorted((row[0], row[2]) for row in _run("3.", dialect, ledgers))
    assert _close(got, sorted((k, _plain(v)) for k, v in by_feature.items()))

    saved: dict[str, Decimal] = {}
    for e in events:
        items = {li.component: li for li in e.cost.line_items}
        if "cache_read" in items and "input" in items:
            cr, inp = items["cache_read"], items["input"]
            assert cr.unit_price is not None
            assert inp.unit_price is not None
            saved[e.model] = saved.get(e.model, Decimal(0)) + cr.quantity * (
                inp.unit_price - cr.unit_price
            )
    got = sorted((row[1], row[3]) for row in _run("7.", dialect, ledgers))
    assert _close(got, sorted((k, _plain(v)) for k, v in saved.items()))

    month_start = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    mtd = sum((e.cost.total or 0 for e in events if e.occurred_at >= month_start), Decimal(0))
    assert 0 < mtd < sum((e.cost.total or 0 for e in events), Decimal(0))  # a real cut
    assert _close([_run("9.", dialect, ledgers)[0][:1]], [(_plain(mtd),)])

    unpriced = sum(1 for e in events if e.cost.status != "priced")
    assert sum(row[3] for row in _run("6.", dialect, ledgers)) == unpriced
