"""The ledger: the SQL contract every database exporter writes and every reader queries.

Table and column names, the dialects' differences as data, the ordered
migrations, the daily rollups, the rows an event becomes, database URLs,
opening or migrating a database by URL, and the outbox (the on-disk spool of
batches not yet delivered to a server database). The exporters implement the
write path on top of this; the report, the budgets, re-pricing and the CLI
read through it.
"""

from __future__ import annotations

from ._drivers import connect, migrate, migrate_connection
from ._migrations import (
    BUDGET_ALERTS_TABLE_SQL,
    MIGRATION_LIST,
    MIGRATIONS_TABLE_SQL,
    Migration,
    applied_migrations,
    apply_migrations,
    pending_migrations,
    schema_version,
)
from ._outbox import quarantine_dir, quarantined_files, spool_dir_for, spool_usage
from ._rollups import ROLLUP_COLUMNS, ROLLUP_KEY, ROLLUP_SUMS, rebuild_rollups, rollup_rows
from ._rows import BatchRows, batch_rows, call_row, line_item_rows, tag_rows
from ._schema import (
    BUDGET_ALERTS,
    CALL_COLUMNS,
    CALLS,
    DIALECTS,
    LINE_ITEM_COLUMNS,
    LINE_ITEMS,
    MIGRATIONS,
    MYSQL,
    POSTGRES,
    ROLLUPS,
    SQLITE,
    TAG_COLUMNS,
    TAGS,
    Dialect,
    call_columns,
)
from ._urls import dialect_name_for_url, redact_url, sqlite_path

__all__ = [
    "BUDGET_ALERTS",
    "BUDGET_ALERTS_TABLE_SQL",
    "CALLS",
    "CALL_COLUMNS",
    "DIALECTS",
    "LINE_ITEMS",
    "LINE_ITEM_COLUMNS",
    "MIGRATIONS",
    "MIGRATIONS_TABLE_SQL",
    "MIGRATION_LIST",
    "MYSQL",
    "POSTGRES",
    "ROLLUPS",
    "ROLLUP_COLUMNS",
    "ROLLUP_KEY",
    "ROLLUP_SUMS",
    "SQLITE",
    "TAGS",
    "TAG_COLUMNS",
    "BatchRows",
    "Dialect",
    "Migration",
    "applied_migrations",
    "apply_migrations",
    "batch_rows",
    "call_columns",
    "call_row",
    "connect",
    "dialect_name_for_url",
    "line_item_rows",
    "migrate",
    "migrate_connection",
    "pending_migrations",
    "quarantine_dir",
    "quarantined_files",
    "rebuild_rollups",
    "redact_url",
    "rollup_rows",
    "schema_version",
    "spool_dir_for",
    "spool_usage",
    "sqlite_path",
    "tag_rows",
]
