"""SQLite export throughput: events with three tags each, against the raw driver limit.

Baseline, measured in the same run: ``executemany`` of the very same rows,
already built, into the same schema (what sqlite3 itself can do).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from llm_cost_tracker.exporters import _sql
from llm_cost_tracker.exporters.sqlite import SQLiteExporter, connect, migrate

from llm_cost_tracker import TokenUsage, UsageEvent

N = 50_000
BATCH = 512


def make_events() -> list[UsageEvent]:
    return [
        UsageEvent(
            provider="openai",
            model="gpt-4o-mini",
            operation="chat",
            usage=TokenUsage(tokens={"input": 100 + i % 50, "output": 20}),
            tags={"feature": f"f{i % 7}", "user_id": str(i % 1000), "tenant_id": f"t{i % 13}"},
        )
        for i in range(N)
    ]


def raw_rate(path: Path, events: list[UsageEvent]) -> float:
    dialect = _sql.SQLITE
    connection = connect(f"sqlite:///{path}")
    migrate(connection)
    calls = [_sql.call_row(e, dialect) for e in events]
    items = [r for e in events for r in _sql.line_item_rows(e, dialect)]
    tags = [r for e in events for r in _sql.tag_rows(e)]
    insert_call = dialect.insert_sql(_sql.CALLS, _sql.call_columns(dialect))
    insert_item = dialect.insert_sql(_sql.LINE_ITEMS, _sql.LINE_ITEM_COLUMNS)
    insert_tag = dialect.insert_sql(_sql.TAGS, _sql.TAG_COLUMNS)
    started = time.perf_counter()
    for start in range(0, N, BATCH):
        connection.execute("BEGIN")
        connection.executemany(insert_call, calls[start : start + BATCH])
        connection.executemany(insert_item, items[start * 2 : (start + BATCH) * 2])
        connection.executemany(insert_tag, tags[start * 3 : (start + BATCH) * 3])
        connection.commit()
    elapsed = time.perf_counter() - started
    connection.close()
    return N / elapsed


def exporter_rate(path: Path, events: list[UsageEvent]) -> float:
    exporter = SQLiteExporter(f"sqlite:///{path}")
    exporter.export(events[:1])  # open and migrate outside the timing
    started = time.perf_counter()
    for start in range(1, N, BATCH):
        exporter.export(events[start : start + BATCH])
    elapsed = time.perf_counter() - started
    exporter.shutdown()
    return (N - 1) / elapsed


def main() -> None:
    events = make_events()
    with tempfile.TemporaryDirectory() as tmp:
        raw = raw_rate(Path(tmp) / "raw.db", events)
        ours = exporter_rate(Path(tmp) / "ours.db", events)
    print(f"raw executemany of prebuilt rows (baseline)   {raw:10,.0f} events/s")
    print(
        f"SQLiteExporter.export (rows built + written)  {ours:10,.0f} events/s  ({ours / raw:.0%} of raw)"
    )
    print(
        "target: above 50,000 events/s with three tags each ->",
        "OK" if ours >= 50_000 else "MISSED",
    )
