"""The SQL contract: table definitions, dialect differences as data, ordered migrations, row building.

The same tables and column names exist on SQLite, PostgreSQL and MySQL/MariaDB;
only the column types and a few statement forms differ, and those differences
live in the ``Dialect`` records below rather than in ``if dialect ==`` branches.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

from .._components import COMPONENTS
from .._errors import ConfigurationError
from .._events import UsageEvent

CALLS = "llm_cost_tracker_calls"
LINE_ITEMS = "llm_cost_tracker_call_line_items"
TAGS = "llm_cost_tracker_call_tags"
MIGRATIONS = "llm_cost_tracker_migrations"
ROLLUPS = "llm_cost_tracker_daily_rollups"

# Column order of the rows built below; INSERT statements are generated from these.
CALL_COLUMNS = (
    "id",
    "occurred_at",
    "latency_ms",
    "provider",
    "model",
    "request_model",
    "operation",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_cost",
    "currency",
    "cost_status",
    "pricing_mode",
    "pricing_snapshot",
    "stream",
    "usage_source",
    "status",
    "error_type",
    "provider_response_id",
    "trace_id",
    "span_id",
)
LINE_ITEM_COLUMNS = ("call_id", "component", "unit", "quantity", "unit_price", "cost")
TAG_COLUMNS = ("call_id", "key", "value")


@dataclass(frozen=True)
class Dialect:
    """How one database spells the contract: column types, placeholders, insert-or-skip."""

    name: str
    placeholder: str  # "?" (qmark) or "%s" (format)
    types: dict[str, str]
    insert_ignore: str  # template with {table}, {columns}, {values}
    convert_time: Callable[[datetime], Any]
    convert_decimal: Callable[[Decimal | None], Any]
    convert_json: Callable[[Any], Any]
    convert_bool: Callable[[bool], Any]
    extra_call_columns: tuple[str, ...] = ()  # dialect-only columns appended to CALL_COLUMNS

    def insert_sql(self, table: str, columns: Sequence[str]) -> str:
        return self.insert_ignore.format(
            table=table,
            columns=", ".join(self.quote(c) for c in columns),
            values=", ".join([self.placeholder] * len(columns)),
        )

    def quote(self, column: str) -> str:
        # "key" and "value" are reserved or awkward words on MySQL.
        if column in ("key", "value"):
            return f"`{column}`" if self.name == "mysql" else f'"{column}"'
        return column


_SECONDS_TEXT: dict[tuple[int, ...], str] = {}  # recent whole UTC seconds, as SQLite time text


def _sqlite_time(value: datetime) -> str:
    # A fixed-width UTC text sorts chronologically and works with date()/strftime().
    if value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    # The same text as strftime("%Y-%m-%d %H:%M:%S.%f") at a fraction of the cost
    # (the exporter formats one per call): events of a batch share their second.
    second = (value.year, value.month, value.day, value.hour, value.minute, value.second)
    text = _SECONDS_TEXT.get(second)
    if text is None:
        if len(_SECONDS_TEXT) >= 4096:
            _SECONDS_TEXT.clear()
        text = _SECONDS_TEXT[second] = value.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{value.microsecond:06d}"


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _json_text(value: Any) -> str | None:
    return (
        None
        if value is None
        else json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    )


def _identity(value: Any) -> Any:
    return value


SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    types={
        "id": "TEXT",
        "time": "TEXT",
        "text": "TEXT",
        "short": "TEXT",
        "int": "INTEGER",
        "float": "REAL",
        "money": "NUMERIC",
        "quantity": "NUMERIC",
        "json": "TEXT",
        "bool": "INTEGER",
    },
    insert_ignore="INSERT OR IGNORE INTO {table} ({columns}) VALUES ({values})",
    convert_time=_sqlite_time,
    convert_decimal=_decimal_text,
    convert_json=_json_text,
    convert_bool=int,
    # SQLite has no exact decimal type: NUMERIC keeps about 15 significant digits,
    # so the exact decimal text is stored beside it.
    extra_call_columns=("total_cost_exact",),
)

POSTGRES = Dialect(
    name="postgres",
    placeholder="%s",
    types={
        "id": "UUID",
        "time": "TIMESTAMPTZ",
        "text": "TEXT",
        "short": "VARCHAR(255)",
        "int": "BIGINT",
        "float": "DOUBLE PRECISION",
        "money": "NUMERIC(24, 12)",
        "quantity": "NUMERIC(24, 6)",
        "json": "JSONB",
        "bool": "BOOLEAN",
        "date": "DATE",
    },
    insert_ignore="INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING",
    convert_time=_identity,
    convert_decimal=_identity,
    convert_json=_json_text,
    convert_bool=bool,
)

MYSQL = Dialect(
    name="mysql",
    placeholder="%s",
    types={
        "id": "CHAR(36)",
        "time": "DATETIME(6)",
        "text": "TEXT",
        "short": "VARCHAR(191)",
        "int": "BIGINT",
        "float": "DOUBLE",
        "money": "DECIMAL(24, 12)",
        "quantity": "DECIMAL(24, 6)",
        "json": "JSON",
        "bool": "BOOLEAN",
        "date": "DATE",
    },
    insert_ignore="INSERT IGNORE INTO {table} ({columns}) VALUES ({values})",
    convert_time=_naive_utc,
    convert_decimal=_identity,
    convert_json=_json_text,
    convert_bool=bool,
)

DIALECTS = {d.name: d for d in (SQLITE, POSTGRES, MYSQL)}


# -- migrations ---------------------------------------------------------------
# Ordered and named; a database records the names it has applied. Append new
# migrations at the end, never edit an applied one. Statements use {type}
# placeholders from Dialect.types and {q:key}/{q:value} for reserved words.


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

ROLLUP_KEY = ("day", "provider", "model", "currency")
ROLLUP_SUMS = (
    "calls",
    "unpriced_calls",
    "total_cost",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)
ROLLUP_COLUMNS = ROLLUP_KEY + ROLLUP_SUMS

# The UTC day of occurred_at, per dialect with rollups.
_ROLLUP_DAY = {
    "postgres": "(occurred_at AT TIME ZONE 'UTC')::date",
    "mysql": "DATE(occurred_at)",
}
# Rollup rows summed from the calls table ({day}: a _ROLLUP_DAY expression, {where}: a filter).
_ROLLUP_FROM_CALLS = (
    f"INSERT INTO {ROLLUPS} ({', '.join(ROLLUP_COLUMNS)}) "
    "SELECT {day}, provider, model, currency, count(*), "
    "sum(CASE WHEN cost_status <> 'priced' THEN 1 ELSE 0 END), coalesce(sum(total_cost), 0), "
    "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), "
    "coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0) "
    f"FROM {CALLS}{{where}} GROUP BY 1, 2, 3, 4"
)

BUDGET_ALERTS = "llm_cost_tracker_budget_alerts"
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
            (_ROLLUP_FROM_CALLS.format(day=day, where="").replace("{", "{{").replace("}", "}}"),),
            only=(name,),
        )
        for name, day in _ROLLUP_DAY.items()
    ),
    # One row per budget crossing, claimed with insert-or-skip so that exactly
    # one process fires the notify callback (llm_cost_tracker/_budget_shared.py).
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


# -- rows ---------------------------------------------------------------------


def call_row(event: UsageEvent, dialect: Dialect) -> tuple[Any, ...]:
    usage = event.usage
    cost = event.cost
    row: tuple[Any, ...] = (
        event.id,
        dialect.convert_time(event.occurred_at),
        event.latency_ms,
        event.provider,
        event.model,
        event.request_model,
        event.operation,
        None if usage is None else usage.input_tokens,
        None if usage is None else usage.output_tokens,
        None if usage is None else usage.cache_read_tokens,
        None if usage is None else usage.cache_write_tokens,
        None if usage is None else usage.reasoning_tokens,
        dialect.convert_decimal(cost.total),
        cost.currency,
        cost.status,
        event.pricing_mode,
        dialect.convert_json(dict(cost.snapshot)) if cost.snapshot else None,
        dialect.convert_bool(event.stream),
        event.usage_source,
        event.status,
        event.error_type,
        event.provider_response_id,
        event.trace_id,
        event.span_id,
    )
    if dialect.extra_call_columns:
        row += (_decimal_text(cost.total),)
    return row


def line_item_rows(event: UsageEvent, dialect: Dialect) -> list[tuple[Any, ...]]:
    """The cost breakdown; before pricing (or without a price) the usage components, unpriced."""
    convert = dialect.convert_decimal
    if event.cost.line_items:
        return [
            (
                event.id,
                li.component,
                li.unit,
                convert(li.quantity),
                convert(li.unit_price),
                convert(li.cost),
            )
            for li in event.cost.line_items
        ]
    usage = event.usage
    if usage is None:
        return []
    rows = [
        (event.id, name, COMPONENTS[name].unit, convert(Decimal(n)), None, None)
        for name, n in usage.tokens.items()
        if n
    ]
    rows.extend(
        (event.id, name, COMPONENTS[name].unit, convert(q), None, None)
        for name, q in usage.services.items()
        if q
    )
    return rows


def tag_rows(event: UsageEvent) -> list[tuple[str, str, str]]:
    return [(event.id, key, value) for key, value in event.tags.items()]


def call_columns(dialect: Dialect) -> tuple[str, ...]:
    return CALL_COLUMNS + dialect.extra_call_columns


# -- daily rollups (PostgreSQL, MySQL) ------------------------------------------
# One row per UTC day, provider, model and currency, kept in the same transaction
# as the calls it sums. unpriced_calls counts calls whose cost_status is not
# "priced"; total_cost sums the known costs.


def rollup_rows(events: Iterable[UsageEvent]) -> list[tuple[Any, ...]]:
    """Sum ``events`` per (UTC day, provider, model, currency), in ROLLUP_COLUMNS order."""
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for event in events:
        key = (
            event.occurred_at.astimezone(timezone.utc).date(),
            event.provider,
            event.model,
            event.cost.currency,
        )
        row = sums.get(key)
        if row is None:
            row = sums[key] = [0, 0, Decimal(0), 0, 0, 0, 0]
        row[0] += 1
        if event.cost.status != "priced":
            row[1] += 1
        if event.cost.total is not None:
            row[2] += event.cost.total
        usage = event.usage
        if usage is not None:
            row[3] += usage.input_tokens
            row[4] += usage.output_tokens
            row[5] += usage.cache_read_tokens
            row[6] += usage.cache_write_tokens
    return [(*key, *row) for key, row in sums.items()]


# Taken first, so exporters writing meanwhile add their calls after the rebuild.
_ROLLUP_LOCK = {"postgres": f"LOCK TABLE {ROLLUPS} IN EXCLUSIVE MODE"}


def rebuild_rollups(cursor: Any, dialect: Dialect, start: datetime, end: datetime | None) -> None:
    """Recompute the rollups of the UTC days from ``start`` to ``end`` from the calls table.

    For code that changes stored calls in place (re-pricing): run it in the same
    transaction, after the change. A no-op on SQLite, which has no rollups.
    """
    day = _ROLLUP_DAY.get(dialect.name)
    if day is None:
        return
    p = dialect.placeholder
    first = start.astimezone(timezone.utc).date()
    lock = _ROLLUP_LOCK.get(dialect.name)
    if lock:
        cursor.execute(lock)
    where, params = [f"day >= {p}"], [first]
    call_where = [f"occurred_at >= {p}"]
    call_params: list[Any] = [
        dialect.convert_time(datetime(first.year, first.month, first.day, tzinfo=timezone.utc))
    ]
    if end is not None:
        last = end.astimezone(timezone.utc).date()
        where.append(f"day <= {p}")
        params.append(last)
        after = datetime(last.year, last.month, last.day, tzinfo=timezone.utc) + timedelta(days=1)
        call_where.append(f"occurred_at < {p}")
        call_params.append(dialect.convert_time(after))
    cursor.execute(f"DELETE FROM {ROLLUPS} WHERE {' AND '.join(where)}", params)
    cursor.execute(
        _ROLLUP_FROM_CALLS.format(day=day, where=f" WHERE {' AND '.join(call_where)}"),
        call_params,
    )


# -- database URLs ------------------------------------------------------------

_SCHEMES = {
    "sqlite": "sqlite",
    "postgres": "postgres",
    "postgresql": "postgres",
    "postgresql+psycopg": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mysql+pymysql": "mysql",
}


def dialect_name_for_url(url: str) -> str:
    """Return ``sqlite``, ``postgres`` or ``mysql`` for a database URL; raise ConfigurationError otherwise."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    try:
        return _SCHEMES[scheme]
    except KeyError:
        raise ConfigurationError(
            f"unsupported database URL {redact_url(url)!r}: expected sqlite:///path.db, "
            "postgresql://user@host/db or mysql://user@host/db"
        ) from None


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``; ``sqlite://`` -> ``:memory:``."""
    if not url.lower().startswith("sqlite:"):
        raise ConfigurationError(f"not a SQLite URL: {redact_url(url)!r}")
    rest = url[len("sqlite:") :]
    if rest in ("", "//", "///:memory:", "//:memory:"):
        return ":memory:"
    if not rest.startswith("///"):
        raise ConfigurationError(
            f"SQLite URLs look like sqlite:///relative.db or sqlite:////absolute.db, got {url!r}"
        )
    return unquote(rest[3:].split("?", 1)[0])


def redact_url(url: str) -> str:
    """Return ``url`` without its password and query string, fit for logs and errors."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    return f"{parts.scheme}://{netloc}{parts.path}"


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
