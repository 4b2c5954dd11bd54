"""``doctor``'s checks of the database: reachable, schema up to date, recent data quality, the spool.

The ledger checks read the last ``--days`` of calls for unpriced models,
streams without usage and errors; the delivery check counts the events waiting
in the spool and the quarantine for a server database.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ._check import Check


def check_database(url: str) -> tuple[list[Check], Any]:
    """Reachability and schema version; returns the open connection (or None) for the ledger checks."""
    from .. import ledger

    shown = ledger.redact_url(url)
    try:
        dialect = ledger.DIALECTS[ledger.dialect_name_for_url(url)]
    except Exception as error:
        return [Check("fail", "database", str(error))], None
    try:
        connection = ledger.connect(url)
    except ImportError as error:
        return [Check("fail", "database driver", str(error))], None
    except Exception as error:
        return [
            Check(
                "fail",
                "database",
                f"cannot reach {shown}: {error}".strip(),
                "check the URL, the server and the credentials",
            )
        ], None
    checks = [Check("ok", "database", f"{shown} is reachable ({dialect.name})")]
    wanted = ledger.schema_version(dialect)
    cursor = connection.cursor()
    try:
        cursor.execute(f"SELECT name FROM {ledger.MIGRATIONS}")
        applied = {str(r[0]) for r in cursor.fetchall()}
    except Exception:
        applied = set()
        connection.rollback()
    finally:
        cursor.close()
    pending = [m.name for m in ledger.pending_migrations(applied, dialect)]
    if not applied:
        checks.append(
            Check(
                "warn",
                "schema",
                "no ledger tables yet",
                "they are created on the first recorded call, or run: llm-cost-tracker migrate",
            )
        )
        return checks, None
    if pending:
        checks.append(
            Check(
                "warn",
                "schema",
                f"{len(applied)} of {wanted} migrations applied; pending: {', '.join(pending)}",
                "run: llm-cost-tracker migrate",
            )
        )
    else:
        checks.append(Check("ok", "schema", f"version {wanted} ({wanted} migrations applied)"))
    return checks, connection


def _query(connection: Any, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    cursor = connection.cursor()
    try:
        cursor.execute(sql, params)
        return [tuple(r) for r in cursor.fetchall()]
    finally:
        cursor.close()


def check_ledger(connection: Any, url: str, days: int, now: datetime) -> list[Check]:
    from .. import ledger

    dialect = ledger.DIALECTS[ledger.dialect_name_for_url(url)]
    p = dialect.placeholder
    since = dialect.convert_time(now - timedelta(days=days))
    window = f"last {days} days"
    checks: list[Check] = []
    calls, unknown, no_usage_streams, errors = _query(
        connection,
        f"""SELECT COUNT(*),
                   SUM(CASE WHEN cost_status <> 'priced' AND status = 'ok' AND input_tokens IS NOT NULL THEN 1 ELSE 0 END),
                   SUM(CASE WHEN stream AND status = 'ok' AND input_tokens IS NULL THEN 1 ELSE 0 END),
                   SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END)
            FROM {ledger.CALLS} WHERE occurred_at >= {p}""",
        (since,),
    )[0]
    calls = int(calls or 0)
    if calls == 0:
        return [
            Check(
                "warn",
                "ledger",
                f"no calls recorded in the {window}",
                "run your app under llm-cost-instrument, or try: llm-cost-tracker demo",
            )
        ]
    checks.append(Check("ok", "ledger", f"{calls:,} calls in the {window}"))
    if unknown:
        models = _query(
            connection,
            f"""SELECT provider, model, COUNT(*) FROM {ledger.CALLS}
                WHERE occurred_at >= {p} AND cost_status <> 'priced' AND status = 'ok'
                  AND input_tokens IS NOT NULL
                GROUP BY provider, model ORDER BY 3 DESC""",
            (since,),
        )
        listed = ", ".join(f"{r[0]}/{r[1]} ({int(r[2]):,})" for r in models[:8])
        more = f" and {len(models) - 8} more" if len(models) > 8 else ""
        checks.append(
            Check(
                "warn",
                "unpriced models",
                f"{int(unknown):,} calls without a price: {listed}{more}",
                "add their prices with a prices file (LLM_COST_TRACKER_PRICES_FILE); see docs/pricing.md",
            )
        )
    else:
        checks.append(
            Check("ok", "unpriced models", f"every successful call in the {window} has a price")
        )
    if no_usage_streams:
        checks.append(
            Check(
                "warn",
                "streams without usage",
                f"{int(no_usage_streams):,} streamed calls reported no usage, so their cost is unknown",
                "OpenAI-style streams need stream_options={'include_usage': True} (added for you unless stream_usage=False)",
            )
        )
    else:
        checks.append(Check("ok", "streams without usage", "none"))
    if errors:
        checks.append(Check("info", "errors", f"{int(errors):,} calls failed in the {window}"))
    return checks


def check_delivery(url: str, config: Any) -> list[Check]:
    from .. import ledger

    try:
        dialect = ledger.dialect_name_for_url(url)
    except Exception:
        return []  # already reported by the database check
    if dialect == "sqlite":
        return [Check("ok", "delivery", "SQLite is written directly; no spool")]
    directory = ledger.spool_dir_for(url, None if config is None else config.spool_dir)
    waiting = ledger.spool_usage(directory)[1]
    quarantined = len(ledger.quarantined_files(directory))
    checks = []
    if waiting:
        checks.append(
            Check(
                "warn",
                "spool",
                f"{waiting:,} events wait in {directory} for the database",
                "they are delivered when the app next runs with the database up",
            )
        )
    else:
        checks.append(Check("ok", "spool", f"empty ({directory})"))
    if quarantined:
        checks.append(
            Check(
                "warn",
                "quarantine",
                f"{quarantined:,} events the database rejected are kept in {ledger.quarantine_dir(directory)}",
            )
        )
    return checks
