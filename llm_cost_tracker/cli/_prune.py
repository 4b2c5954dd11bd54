"""``llm-cost-tracker prune --older-than 90d``: retention, in batches, rollups kept consistent.

Each batch is one transaction: it picks the oldest calls before the cutoff,
deletes their tags, line items and rows, and (on PostgreSQL and MySQL)
subtracts them from the daily rollups, so the rollups always sum what the calls
table holds. ``--keep-rollups`` leaves the rollups as long-term history instead.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from ._main import EXIT_DATABASE, EXIT_OK, EXIT_USAGE, database_url

_EXAMPLES = """\
examples:
  llm-cost-tracker prune --older-than 90d
  llm-cost-tracker prune --older-than 2026-01-01 --dry-run
  llm-cost-tracker prune --older-than 26w --keep-rollups --database-url postgresql://app@db/llm
"""

_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_ROLLUP_FIELDS = (
    "provider, model, currency, cost_status, total_cost, "
    "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens"
)


def parse_cutoff(text: str, *, now: datetime | None = None) -> datetime:
    """``90d`` / ``12h`` / ``26w`` before now, or a date ``2026-01-01`` (00:00 UTC)."""
    now = now or datetime.now(timezone.utc)
    match = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", text.lower())
    if match:
        return now - int(match.group(1)) * _UNITS[match.group(2)]
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an age like 90d, 12h or 26w, or a date like 2026-01-01; got {text!r}"
        ) from None
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = _EXAMPLES
    parser.add_argument(
        "--older-than",
        required=True,
        type=parse_cutoff,
        metavar="AGE",
        help="delete calls that started before this: 90d, 12h, 26w, or a date (UTC)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=5000,
        metavar="N",
        help="calls deleted per transaction (default: 5000)",
    )
    parser.add_argument(
        "--keep-rollups",
        action="store_true",
        help="leave the daily rollups untouched (keep long-term totals)",
    )
    parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")


def run(args: argparse.Namespace) -> int:
    from .. import ledger

    url = database_url(args)
    if args.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    dialect = ledger.DIALECTS[ledger.dialect_name_for_url(url)]
    try:
        connection = ledger.connect(url)
    except ImportError:
        raise
    except Exception as error:
        print(f"error: cannot open {ledger.redact_url(url)}: {error}", file=sys.stderr)
        return EXIT_DATABASE
    cutoff = dialect.convert_time(args.older_than)
    try:
        if args.dry_run:
            cursor = connection.cursor()
            cursor.execute(
                f"SELECT count(*) FROM {ledger.CALLS} WHERE occurred_at < {dialect.placeholder}",
                (cutoff,),
            )
            count = int(cursor.fetchone()[0])
            connection.rollback()
            print(f"would delete {count} call(s) before {args.older_than.isoformat()}")
            return EXIT_OK
        rollups = dialect.name != "sqlite" and not args.keep_rollups
        deleted = 0
        while True:
            n = _delete_batch(connection, dialect, cutoff, args.batch_size, rollups=rollups)
            deleted += n
            if n < args.batch_size:
                break
    finally:
        connection.close()
    print(f"deleted {deleted} call(s) before {args.older_than.isoformat()}")
    return EXIT_OK


def _delete_batch(
    connection: Any, dialect: Any, cutoff: Any, batch_size: int, *, rollups: bool
) -> int:
    from .. import ledger

    p = dialect.placeholder
    cursor = connection.cursor()
    try:
        if dialect.name == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
        lock = "" if dialect.name == "sqlite" else " FOR UPDATE"
        cursor.execute(
            f"SELECT id, occurred_at, {_ROLLUP_FIELDS} FROM {ledger.CALLS} "
            f"WHERE occurred_at < {p} ORDER BY occurred_at LIMIT {int(batch_size)}{lock}",
            (cutoff,),
        )
        rows = cursor.fetchall()
        if rows:
            ids = [row[0] for row in rows]
            marks = ", ".join([p] * len(ids))
            cursor.execute(f"DELETE FROM {ledger.TAGS} WHERE call_id IN ({marks})", ids)
            cursor.execute(f"DELETE FROM {ledger.LINE_ITEMS} WHERE call_id IN ({marks})", ids)
            cursor.execute(f"DELETE FROM {ledger.CALLS} WHERE id IN ({marks})", ids)
            if rollups:
                _subtract_rollups(cursor, p, rows)
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        cursor.close()
    return len(rows)


def _subtract_rollups(cursor: Any, p: str, rows: list[Any]) -> None:
    from .. import ledger

    sums: dict[tuple[Any, ...], list[Any]] = {}
    for _, occurred_at, provider, model, currency, status, cost, *tokens in rows:
        moment = occurred_at if occurred_at.tzinfo else occurred_at.replace(tzinfo=timezone.utc)
        key = (moment.astimezone(timezone.utc).date(), provider, model, currency)
        acc = sums.setdefault(key, [0, 0, Decimal(0), 0, 0, 0, 0])
        acc[0] += 1
        acc[1] += status != "priced"
        acc[2] += cost or 0
        for i, n in enumerate(tokens):
            acc[3 + i] += n or 0
    assignments = ", ".join(f"{c} = {c} - {p}" for c in ledger.ROLLUP_SUMS)
    where = " AND ".join(f"{c} = {p}" for c in ledger.ROLLUP_KEY)
    for key, acc in sums.items():
        cursor.execute(f"UPDATE {ledger.ROLLUPS} SET {assignments} WHERE {where}", (*acc, *key))
    cursor.execute(f"DELETE FROM {ledger.ROLLUPS} WHERE calls <= 0")
