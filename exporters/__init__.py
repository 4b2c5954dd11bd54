"""Exporters: where finished events go. SQLite (default), PostgreSQL, MySQL/MariaDB, log, OpenTelemetry.

Any object with ``export(events)`` and ``shutdown()`` is an exporter, and so is
a plain callable taking one event. The SQL exporters write the ledger whose
contract lives in ``llm_cost_tracker.ledger``; ``exporter_for_url`` picks the
one a database URL names.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..ledger import connect, dialect_name_for_url, migrate

if TYPE_CHECKING:
    from .._bus import Exporter


def exporter_for_url(url: str, *, spool_dir: str | os.PathLike[str] | None = None) -> Exporter:
    """Create the SQL exporter that ``url`` names (sqlite://, postgresql://, mysql://).

    ``spool_dir`` is where the PostgreSQL and MySQL exporters keep undelivered
    batches (default: the user's cache folder); SQLite is written directly.
    """
    dialect = dialect_name_for_url(url)
    if dialect == "sqlite":
        from .sqlite import SQLiteExporter

        return SQLiteExporter(url)
    if dialect == "postgres":
        from .postgres import PostgresExporter

        return PostgresExporter(url, spool_dir=spool_dir)
    from .mysql import MySQLExporter

    return MySQLExporter(url, spool_dir=spool_dir)


__all__ = ["connect", "exporter_for_url", "migrate"]
