"""Report generation over 1,000,000 calls, in SQLite and PostgreSQL (target: under 10 s each).

The ledger is filled inside the database (a recursive CTE on SQLite,
generate_series on PostgreSQL): 1,000,000 calls over the last 30 days, six
models, ~2.25 line items and ~1.25 tags per call. The report covers all of them,
grouped by two tags. Baseline, measured in the same run on the same data: one
full scan, ``SELECT COUNT(*), SUM(total_cost)`` over the period, the least any
report must read. PostgreSQL: ``$LLM_COST_TRACKER_BENCH_POSTGRES_URL``, else a
throwaway server made with the test suite's helper (needs initdb/pg_ctl).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from llm_cost_tracker.exporters import connect, migrate

from llm_cost_tracker import ledger as _sql
from llm_cost_tracker.report import Period, build_report, render

CALLS = int(os.environ.get("LLM_COST_TRACKER_BENCH_REPORT_CALLS", "1000000"))
TARGET_SECONDS = 10.0
GROUP_BY = ["feature", "user_id"]

# (provider, model, input $/token, cache read $/token, output $/token), picked by i % 6.
MODELS = [
    ("anthropic", "claude-sonnet-4-5", "0.000003", "0.0000003", "0.000015"),
    ("openai", "gpt-4o-mini", "0.00000015", "0.000000075", "0.0000006"),
    ("openai", "gpt-4o", "0.0000025", "0.00000125", "0.00001"),
    ("anthropic", "claude-haiku-4-5", "0.000001", "0.0000001", "0.000005"),
    ("openai", "gpt-5-nano", "0.00000005", "0.000000005", "0.0000004"),
    ("openai", "o3", "0.000002", "0.0000005", "0.000008"),
]


def _case(column: int, cast: str | None = None) -> str:
    """A CASE on i % 6 picking column ``column`` of MODELS: text, or a number when ``cast`` is given."""
    arms = " ".join(
        f"WHEN {k} THEN {repr(m[column]) if cast is None else m[column] + cast}"
        for k, m in enumerate(MODELS)
    )
    return f"CASE i % 6 {arms} END"


def _snapshot() -> str:
    arms = " ".join(
        f"""WHEN {k} THEN '{{"catalog_version":"bench","rates":{{"input":{{"per":1,"rate":"{m[2]}","unit":"token"}},"cache_read":{{"per":1,"rate":"{m[3]}","unit":"token"}},"output":{{"per":1,"rate":"{m[4]}","unit":"token"}}}},"source":"bench"}}'"""
        for k, m in enumerate(MODELS)
    )
    return f"CASE i % 6 {arms} END"


# Both dialects fill the same columns from the same arithmetic on i.
_COLUMNS = """id, occurred_at, latency_ms, provider, model, operation, input_tokens, output_tokens,
    cache_read_tokens, cache_write_tokens, reasoning_tokens, total_cost, currency, cost_status,
    pricing_mode, pricing_snapshot, stream, usage_source, status, error_type"""


def _select(ident: str, time_expr: str, bool_expr: str, snapshot_cast: str, cost_cast: str) -> str:
    cost = (
        f"(CASE WHEN i % 50 = 0 THEN NULL ELSE ((1000 + i % 500 - (CASE WHEN i % 4 = 0 THEN 512 ELSE 0 END)) * {_case(2, cost_cast)}"
        f" + (CASE WHEN i % 4 = 0 THEN 512 ELSE 0 END) * {_case(3, cost_cast)} + (200 + i % 300) * {_case(4, cost_cast)}) END)"
    )
    return f"""{ident}, {time_expr}, 100.0, {_case(0)}, {_case(1)}, 'chat', 1000 + i % 500, 200 + i % 300,
        CASE WHEN i % 4 = 0 THEN 512 ELSE 0 END, 0, 0, {cost}, 'USD',
        CASE WHEN i % 50 = 0 THEN 'unknown' ELSE 'priced' END, 'standard', ({_snapshot()}){snapshot_cast},
        {bool_expr}, 'response', CASE WHEN i % 100 = 0 THEN 'error' ELSE 'ok' END,
        CASE WHEN i % 100 = 0 THEN 'RateLimitError' END"""


def _items_and_tags(
    calls: str, items: str, tags: str, index: str, key: str, value: str
) -> list[str]:
    def model_rate(column: int) -> str:
        arms = " ".join(f"WHEN '{m[1]}' THEN {m[column]}" for m in MODELS)
        return f"CASE model {arms} END"

    return [
        f"""INSERT INTO {items} (call_id, component, unit, quantity, unit_price, cost)
            SELECT id, 'input', 'token', input_tokens - cache_read_tokens, {model_rate(2)},
                   (input_tokens - cache_read_tokens) * {model_rate(2)} FROM {calls} WHERE total_cost IS NOT NULL""",
        f"""INSERT INTO {items} (call_id, component, unit, quantity, unit_price, cost)
            SELECT id, 'output', 'token', output_tokens, {model_rate(4)}, output_tokens * {model_rate(4)}
            FROM {calls} WHERE total_cost IS NOT NULL""",
        f"""INSERT INTO {items} (call_id, component, unit, quantity, unit_price, cost)
            SELECT id, 'cache_read', 'token', cache_read_tokens, {model_rate(3)},
                   cache_read_tokens * {model_rate(3)} FROM {calls}
            WHERE cache_read_tokens > 0 AND total_cost IS NOT NULL""",
        f"""INSERT INTO {tags} (call_id, {key}, {value})
            SELECT id, 'feature', CASE ({index}) % 8 WHEN 0 THEN 'chat' WHEN 1 THEN 'search'
                   WHEN 2 THEN 'summarize' WHEN 3 THEN 'agent' WHEN 4 THEN 'classify' WHEN 5 THEN 'extract'
                   WHEN 6 THEN 'translate' ELSE 'rerank' END
            FROM {calls} WHERE ({index}) % 4 <> 0""",
        f"""INSERT INTO {tags} (call_id, {key}, {value})
            SELECT id, 'user_id', 'user-' || CAST((({index}) * 7919) % 1000 AS {{text}})
            FROM {calls} WHERE ({index}) % 2 = 0""",
    ]


def fill_sqlite(url: str, start: datetime, step: float) -> None:
    migrate(url)
    connection = connect(url)
    try:
        ident = "printf('00000000-0000-4000-8000-%012d', i)"
        when = f"strftime('%Y-%m-%d %H:%M:%S', {start.timestamp():.0f} + CAST(i * {step} AS INTEGER), 'unixepoch') || '.000000'"
        connection.execute("BEGIN")
        connection.execute(
            f"""WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {CALLS - 1})
                INSERT INTO {_sql.CALLS} ({_COLUMNS}) SELECT {_select(ident, when, "(i % 5 = 0)", "", "")} FROM n"""
        )
        connection.execute(f"UPDATE {_sql.CALLS} SET total_cost_exact = CAST(total_cost AS TEXT)")
        for statement in _items_and_tags(
            _sql.CALLS,
            _sql.LINE_ITEMS,
            _sql.TAGS,
            "CAST(substr(id, 25) AS INTEGER)",
            '"key"',
            '"value"',
        ):
            connection.execute(statement.replace("{text}", "TEXT"))
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
    finally:
        connection.close()


def fill_postgres(url: str, start: datetime, step: float) -> None:
    migrate(url)
    connection = connect(url)
    try:
        with connection.cursor() as cursor:
            for table in (_sql.TAGS, _sql.LINE_ITEMS, _sql.CALLS):
                cursor.execute(f"TRUNCATE {table}")
            ident = "('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid"
            when = f"to_timestamp({start.timestamp():.0f} + floor(i * {step}))"
            cursor.execute(
                f"""INSERT INTO {_sql.CALLS} ({_COLUMNS})
                    SELECT {_select(ident, when, "(i % 5 = 0)", "::jsonb", "::numeric")}
                    FROM generate_series(0, {CALLS - 1}) AS i"""
            )
            for statement in _items_and_tags(
                _sql.CALLS,
                _sql.LINE_ITEMS,
                _sql.TAGS,
                "right(id::text, 12)::bigint",
                '"key"',
                '"value"',
            ):
                cursor.execute(statement.replace("{text}", "TEXT"))
        connection.commit()
        connection.autocommit = True
        with connection.cursor() as cursor:
            for table in (_sql.CALLS, _sql.LINE_ITEMS, _sql.TAGS):
                cursor.execute(f"VACUUM ANALYZE {table}")
    finally:
        connection.close()


def _timed(func: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = func()
    return time.perf_counter() - started, result


def _baseline(url: str, period: Period) -> float:
    dialect = _sql.DIALECTS[_sql.dialect_name_for_url(url)]
    connection = connect(url)
    try:
        cursor = connection.cursor()
        p = dialect.placeholder
        seconds, _ = _timed(
            lambda: (
                cursor.execute(
                    f"SELECT COUNT(*), SUM(total_cost) FROM {_sql.CALLS} WHERE occurred_at >= {p} AND occurred_at < {p}",
                    (dialect.convert_time(period.start), dialect.convert_time(period.end)),
                ),
                cursor.fetchall(),
            )
        )
        cursor.close()
    finally:
        connection.close()
    return seconds


def measure(name: str, url: str, fill: Callable[[str, datetime, float], None]) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    period = Period(now - timedelta(days=30), now + timedelta(seconds=1))
    fill_seconds, _ = _timed(lambda: fill(url, period.start, 30 * 86400 / CALLS))
    baseline = _baseline(url, period)
    cpu_started = time.process_time()
    report_seconds, report = _timed(
        lambda: build_report(url, period=period, group_by=GROUP_BY, now=now)
    )
    cpu = (
        time.process_time() - cpu_started
    )  # in-process work: all of it for SQLite, the client side for PostgreSQL
    render_seconds, page = _timed(lambda: render(report, "html"))
    total = report_seconds + render_seconds
    assert report.totals.current.calls == CALLS, report.totals.current.calls
    slowest = sorted(report.timings.items(), key=lambda kv: -kv[1])[:3]
    print(
        f"{name}: {CALLS:,} calls (filled in {fill_seconds:.1f} s); report {report_seconds:.2f} s "
        f"+ render {render_seconds * 1000:.0f} ms = {total:.2f} s "
        f"({'under' if total < TARGET_SECONDS else 'OVER'} the {TARGET_SECONDS:.0f} s target); "
        f"page {len(page) / 1024:.0f} KiB; this process used {cpu:.2f} s of CPU"
    )
    print(
        f"  baseline full scan (COUNT, SUM over the period): {baseline:.2f} s; report / baseline = {total / baseline:.1f}x"
    )
    print("  slowest queries: " + ", ".join(f"{k} {v:.2f} s" for k, v in slowest))


@contextmanager
def _postgres_url() -> Iterator[str | None]:
    url = os.environ.get("LLM_COST_TRACKER_BENCH_POSTGRES_URL")
    if url:
        yield url
        return
    tests = Path(__file__).resolve().parent.parent / "tests"
    sys.path.insert(0, str(tests))
    try:
        import db_servers  # the test suite's throwaway-server helper
    except Exception as error:
        print(f"postgres: skipped ({error})")
        yield None
        return
    bindir = db_servers._postgres_bindir()
    if bindir is None:
        print("postgres: skipped (no initdb/pg_ctl; set LLM_COST_TRACKER_BENCH_POSTGRES_URL)")
        yield None
        return
    server = db_servers.PostgresServer(bindir)
    try:
        yield server.url
    finally:
        server.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lct-bench-report-") as folder:
        measure("sqlite", f"sqlite:///{Path(folder) / 'ledger.db'}", fill_sqlite)
    with _postgres_url() as url:
        if url is not None:
            measure("postgres", url, fill_postgres)


if __name__ == "__main__":
    main()
