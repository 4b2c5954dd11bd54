"""Exporters: where finished events go. SQLite (default), PostgreSQL, MySQL/MariaDB, log, OpenTelemetry.

Any object with ``export(events)`` and ``shutdown()`` is an exporter, and so is
a plain callable taking one event. Each SQL module (``sqlite``, ``postgres``,
``mysql``) provides ``create_exporter(url, config)``; opening and migrating a
database by URL is the ledger's (``llm_cost_tracker.ledger``), re-exported here.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from ..ledger import connect, dialect_name_for_url, migrate

if TYPE_CHECKING:
    from .._bus import Exporter
    from .._config import Config


def _dialect_module(url: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{dialect_name_for_url(url)}")


def exporter_for_url(url: str, *, config: Config | None = None) -> Exporter:
    """Create the SQL exporter that ``url`` names (sqlite://, postgresql://, mysql://)."""
    exporter: Exporter = _dialect_module(url).create_exporter(url, config)
    return exporter


__all__ = ["connect", "exporter_for_url", "migrate"]
