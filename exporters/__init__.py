"""Exporters: where finished events go. SQLite (default), PostgreSQL, MySQL/MariaDB, log, OpenTelemetry.

Any object with ``export(events)`` and ``shutdown()`` is an exporter, and so is
a plain callable taking one event. Each SQL module (``sqlite``, ``postgres``,
``mysql``) provides ``create_exporter(url, config)``, ``connect(url)`` and
``migrate(connection)``; the functions here pick the module from the URL.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._sql import dialect_name_for_url

if TYPE_CHECKING:
    from .._bus import Exporter
    from .._config import Config


def _dialect_module(url: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{dialect_name_for_url(url)}")


def exporter_for_url(url: str, *, config: Config | None = None) -> Exporter:
    """Create the SQL exporter that ``url`` names (sqlite://, postgresql://, mysql://)."""
    exporter: Exporter = _dialect_module(url).create_exporter(url, config)
    return exporter


def connect(url: str) -> Any:
    """Open a DB-API connection to ``url`` (for the CLI and reports); the caller closes it."""
    return _dialect_module(url).connect(url)


def migrate(url: str) -> list[str]:
    """Create or upgrade the tables at ``url``; return the names of the migrations applied."""
    module = _dialect_module(url)
    connection = module.connect(url)
    try:
        applied: list[str] = module.migrate(connection)
        return applied
    finally:
        connection.close()


__all__ = ["connect", "exporter_for_url", "migrate"]
