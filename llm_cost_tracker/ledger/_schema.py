"""The ledger's tables and columns, and how each database spells them (``Dialect`` records).

The same tables and column names exist on SQLite, PostgreSQL and MySQL/MariaDB;
only the column types, placeholders and value conversions differ, and those
differences are data in the ``Dialect`` records below rather than ``if dialect ==``
branches.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

CALLS = "llm_cost_tracker_calls"
LINE_ITEMS = "llm_cost_tracker_call_line_items"
TAGS = "llm_cost_tracker_call_tags"
MIGRATIONS = "llm_cost_tracker_migrations"
ROLLUPS = "llm_cost_tracker_daily_rollups"
BUDGET_ALERTS = "llm_cost_tracker_budget_alerts"

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


def call_columns(dialect: Dialect) -> tuple[str, ...]:
    """The calls table's columns on ``dialect``: the contract's, then the dialect's own."""
    return CALL_COLUMNS + dialect.extra_call_columns
