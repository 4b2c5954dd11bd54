"""Ordered, named migrations: the ledger's schema history, and the runner that applies it.

A database records the names it has applied in ``llm_cost_tracker_migrations``.
Append new migrations at the end, never edit an applied one. Statements use
``{type}`` placeholders from ``Dialect.types`` and ``{key}``/``{value}`` for the
reserved words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ._rollups import ROLLUP_DAY, ROLLUP_FROM_CALLS
from ._schema import (
    BUDGET_ALERTS,
    CALLS,
    LINE_ITEM_COLUMNS,
    LINE_ITEMS,
    MIGRATIONS,
    ROLLUPS,
    TAGS,
    Dialect,
)


@dataclass(frozen=True)
class Migration:
    name: str
    statements: tuple[str, ...]
    only: tuple[str, ...] = ()  # dialect names this migration applies to; empty = all

    def render(self, dialect: Dialect) -> list[str]:
        if self.only and dialect.name not in self.only:
            return []
        fields = dict(dialect.types, key=dialect.quote("key"), value=dialect.quote("value"))
        return [s.format(**fields) for s in self.statements]


MIGRATIONS_TABLE_SQL = f"CREATE TABLE IF NOT EXISTS {MIGRATIONS} (name {{short}} PRIMARY KEY, applied_at {{time}} NOT NULL)"

BUDGET_ALERTS_TABLE_SQL = f"""CREATE TABLE IF NOT EXISTS {BUDGET_ALERTS} (
    id {{short}} PRIMARY KEY,
    budget_type {{short}} NOT NULL,
    scope {{text}} NOT NULL,
    period {{short}} NOT NULL,
    limit_amount {{money}} NOT NULL,
    total {{money}} NOT NULL,
    event_id {{short}},
    fired_at {{time}} NOT NULL
)"""


def _sqlite_rebuild(table: str, body: str, columns: Sequence[str]) -> tuple[str, ...]:
    """Statements that rebuild ``table`` as a WITHOUT ROWID table of ``body``, keeping its rows."""
    names = ", ".join(columns)
    return (
        f"CREATE TABLE {table}_rebuilt ({body}) WITHOUT ROWID",
        f"INSERT INTO {table}_rebuilt ({names}) SELECT {names} FROM {table} ORDER BY 1, 2",
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_rebuilt RENAME TO {table}",
    )


MIGRATION_LIST: list[Migration] = [
    Migration(
        "0001_contract_tables",
        (
            f"""CREATE TABLE {CALLS} (
                id {{id}} PRIMARY KEY,
                occurred_at {{time}} NOT NULL,
                latency_ms {{float}},
                provider {{short}} NOT NULL,
                model {{short}} NOT NULL,
                request_model {{short}},
                operation {{short}} NOT NULL,
                input_tokens {{int}},
                output_tokens {{int}},
                cache_read_tokens {{int}},
                cache_write_tokens {{int}},
                reasoning_tokens {{int}},
                total_cost {{money}},
                currency {{short}} NOT NULL,
                cost_status {{short}} NOT NULL,
                pricing_mode {{short}} NOT NULL,
                pricing_snapshot {{json}},
                stream {{bool}} NOT NULL,
                usage_source {{short}} NOT NULL,
                status {{short}} NOT NULL,
                error_type {{short}},
                provider_response_id {{short}},
                trace_id {{short}},
                span_id {{short}}
            )""",
            f"""CREATE TABLE {LINE_ITEMS} (
                call_id {{id}} NOT NULL,
                component {{short}} NOT NULL,
                unit {{short}} NOT NULL,
                quantity {{quantity}} NOT NULL,
                unit_price {{money}},
                cost {{money}},
                PRIMARY KEY (call_id, component)
            )""",
            f"""CREATE TABLE {TAGS} (
                call_id {{id}} NOT NULL,
                {{key}} {{short}} NOT NULL,
                {{value}} {{text}} NOT NULL,
                PRIMARY KEY (call_id, {{key}})
            )""",
            f"CREATE INDEX llm_cost_tracker_calls_time ON {CALLS} (occurred_at)",
            f"CREATE INDEX llm_cost_tracker_calls_model_time ON {CALLS} (provider, model, occurred_at)",
            f"CREATE INDEX llm_cost_tracker_calls_status_time ON {CALLS} (cost_status, occurred_at)",
        ),
    ),
    Migration(
        "0002_sqlite_exact_cost",
        (f"ALTER TABLE {CALLS} ADD COLUMN total_cost_exact TEXT",),
        only=("sqlite",),
    ),
    Migration(
        "0003_tag_lookup_index",
        (f"CREATE INDEX llm_cost_tracker_call_tags_kv ON {TAGS} ({{key}}, {{value}})",),
        only=("sqlite", "postgres"),
    ),
    Migration(
        "0003_tag_lookup_index_mysql",
        # MySQL cannot index a whole TEXT column: index a prefix of the value.
        (f"CREATE INDEX llm_cost_tracker_call_tags_kv ON {TAGS} ({{key}}, {{value}}(191))",),
        only=("mysql",),
    ),
    Migration(
        "0004_mysql_utf8mb4_bin",
        # Whatever the database's default: every character fits, and comparisons are
        # exact as on SQLite and PostgreSQL (tag keys "Team" and "team" stay two keys).
        tuple(
            f"ALTER TABLE {table} CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            for table in (CALLS, LINE_ITEMS, TAGS, MIGRATIONS)
        ),
        only=("mysql",),
    ),
    Migration(
        "0005_daily_rollups",
        (
            f"""CREATE TABLE {ROLLUPS} (
                day {{date}} NOT NULL,
                provider {{short}} NOT NULL,
                model {{short}} NOT NULL,
                currency {{short}} NOT NULL,
                calls {{int}} NOT NULL,
                unpriced_calls {{int}} NOT NULL,
                total_cost {{money}} NOT NULL,
                input_tokens {{int}} NOT NULL,
                output_tokens {{int}} NOT NULL,
                cache_read_tokens {{int}} NOT NULL,
                cache_write_tokens {{int}} NOT NULL,
                PRIMARY KEY (day, provider, model, currency)
            )""",
        ),
        only=("postgres", "mysql"),
    ),
    # Databases upgraded from before 0005 already hold calls: sum them once.
    *(
        Migration(
            f"0006_backfill_daily_rollups_{name}",
            (ROLLUP_FROM_CALLS.format(day=day, where="").replace("{", "{{").replace("}", "}}"),),
            only=(name,),
        )
        for name, day in ROLLUP_DAY.items()
    ),
    # One row per budget crossing, claimed with insert-or-skip so that exactly
    # one process fires the notify callback (llm_cost_tracker/budgets/_shared.py).
    # IF NOT EXISTS: budget readers created it themselves before this migration.
    Migration("0007_budget_alerts", (BUDGET_ALERTS_TABLE_SQL,)),
    # SQLite only: the write path's layout (see exporters/sqlite.py). Tags and
    # line items become WITHOUT ROWID tables clustered by (call_id, key|component):
    # one B-tree per row instead of a table plus its primary-key index. The
    # (key, value) tag index and the (cost_status, occurred_at) call index go:
    # every report, budget and documented query reaches tags through a call
    # (time index, then the tags' primary key), and the status index served
    # only re-pricing, which filters by time first. Rebuilt the documented way
    # (new table, copy, drop, rename), rows unchanged; legacy_alter_table keeps
    # the rename from re-checking users' views on the table.
    Migration(
        "0008_sqlite_write_layout",
        (
            "PRAGMA legacy_alter_table = ON",
            *_sqlite_rebuild(
                TAGS,
                """call_id {id} NOT NULL,
                {key} {short} NOT NULL,
                {value} {text} NOT NULL,
                PRIMARY KEY (call_id, {key})""",
                ("call_id", "{key}", "{value}"),
            ),
            *_sqlite_rebuild(
                LINE_ITEMS,
                """call_id {id} NOT NULL,
                component {short} NOT NULL,
                unit {short} NOT NULL,
                quantity {quantity} NOT NULL,
                unit_price {money},
                cost {money},
                PRIMARY KEY (call_id, component)""",
                LINE_ITEM_COLUMNS,
            ),
            "DROP INDEX IF EXISTS llm_cost_tracker_calls_status_time",
            "PRAGMA legacy_alter_table = OFF",
        ),
        only=("sqlite",),
    ),
]


def pending_migrations(applied: Iterable[str], dialect: Dialect) -> list[Migration]:
    done = set(applied)
    return [
        m for m in MIGRATION_LIST if m.name not in done and (not m.only or dialect.name in m.only)
    ]


def schema_version(dialect: Dialect) -> int:
    """The number of migrations that apply to ``dialect``: what a fully migrated database has applied."""
    return sum(1 for m in MIGRATION_LIST if not m.only or dialect.name in m.only)


def applied_migrations(cursor: Any, dialect: Dialect) -> list[str]:
    cursor.execute(MIGRATIONS_TABLE_SQL.format(**dialect.types))
    cursor.execute(f"SELECT name FROM {MIGRATIONS} ORDER BY name")
    return [row[0] for row in cursor.fetchall()]


def apply_migrations(
    connection: Any,
    dialect: Dialect,
    *,
    lock_sql: str | None = None,
    already_done: Callable[[Exception], bool] | None = None,
) -> list[str]:
    """Apply every pending migration in order, each in its own transaction; return the names applied.

    ``lock_sql`` (run first in each transaction) serializes concurrent migrators,
    e.g. ``BEGIN IMMEDIATE`` on SQLite or an advisory lock on PostgreSQL.
    ``already_done(error)`` says whether a failed statement's work is already
    there (MySQL commits each DDL statement on its own, so a migration cut short
    by a lost connection is re-run over the tables it did create).
    """
    applied_now: list[str] = []
    cursor = connection.cursor()
    try:
        if lock_sql:
            cursor.execute(lock_sql)
        done = applied_migrations(cursor, dialect)
        connection.commit()
        for migration in pending_migrations(done, dialect):
            if lock_sql:
                cursor.execute(lock_sql)
            # Another process may have applied it while we waited for the lock.
            cursor.execute(
                f"SELECT 1 FROM {MIGRATIONS} WHERE name = {dialect.placeholder}", (migration.name,)
            )
            if cursor.fetchone() is not None:
                connection.commit()
                continue
            for statement in migration.render(dialect):
                try:
                    cursor.execute(statement)
                except Exception as error:
                    if already_done is None or not already_done(error):
                        raise
            cursor.execute(
                f"INSERT INTO {MIGRATIONS} (name, applied_at) VALUES ({dialect.placeholder}, {dialect.placeholder})",
                (migration.name, dialect.convert_time(datetime.now(timezone.utc))),
            )
            connection.commit()
            applied_now.append(migration.name)
    except BaseException:
        connection.rollback()
        raise
    finally:
        cursor.close()
    return applied_now
