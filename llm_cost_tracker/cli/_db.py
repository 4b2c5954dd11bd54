"""``llm-cost-tracker migrate`` and ``llm-cost-tracker sql``: the ledger database from the shell."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

from .._errors import LLMCostTrackerError
from ._main import EXIT_DATABASE, EXIT_OK, EXIT_USAGE, database_url

_SQL_EXAMPLES = """\
examples:
  llm-cost-tracker sql "SELECT count(*) FROM llm_cost_tracker_calls"
  llm-cost-tracker sql --format csv "SELECT provider, model, SUM(total_cost) AS cost
      FROM llm_cost_tracker_calls GROUP BY provider, model ORDER BY cost DESC" > spend.csv
  llm-cost-tracker sql --format json "SELECT t.value AS feature, SUM(c.total_cost) AS cost
      FROM llm_cost_tracker_calls c JOIN llm_cost_tracker_call_tags t
      ON t.call_id = c.id AND t.key = 'feature' GROUP BY t.value"
"""

_MIGRATE_EXAMPLES = """\
examples:
  llm-cost-tracker migrate
  llm-cost-tracker migrate --database-url postgresql://app@db/llm
"""


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "sql":
        parser.epilog = _SQL_EXAMPLES
        parser.add_argument("query", help="the SQL statement to run")
        parser.add_argument(
            "--format",
            choices=("table", "csv", "json"),
            default="table",
            help="output format (default: table)",
        )
    else:
        parser.epilog = _MIGRATE_EXAMPLES


def run(args: argparse.Namespace) -> int:
    from .. import ledger

    url = database_url(args)
    if args.command == "migrate":
        try:
            applied = ledger.migrate(url)
        except (ImportError, LLMCostTrackerError):
            raise
        except Exception as error:
            print(f"error: cannot migrate {ledger.redact_url(url)}: {error}", file=sys.stderr)
            return EXIT_DATABASE
        if applied:
            print(
                f"applied {len(applied)} migration(s) to {ledger.redact_url(url)}: {', '.join(applied)}"
            )
        else:
            print(f"{ledger.redact_url(url)} is up to date")
        return EXIT_OK

    try:
        connection = ledger.connect(url)
    except (ImportError, LLMCostTrackerError):
        raise
    except Exception as error:
        print(f"error: cannot open {ledger.redact_url(url)}: {error}", file=sys.stderr)
        return EXIT_DATABASE
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(args.query)
        except Exception as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
        columns = [d[0] for d in cursor.description] if cursor.description else []
        rows = cursor.fetchall() if columns else []
        connection.commit()
    finally:
        connection.close()
    if columns:
        write_rows(columns, rows, args.format, sys.stdout)
    return EXIT_OK


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return value


def write_rows(columns: list[str], rows: list[Any], fmt: str, out: TextIO) -> None:
    """Print query results as an aligned table, CSV or a JSON array of objects."""
    plain = [[_plain(v) for v in row] for row in rows]
    if fmt == "json":
        json.dump(
            [dict(zip(columns, row, strict=True)) for row in plain], out, indent=2, default=str
        )
        out.write("\n")
        return
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(plain)
        return
    text = [["NULL" if v is None else str(v) for v in row] for row in plain]
    widths = [max([len(c)] + [len(r[i]) for r in text]) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in text:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")
    if len(columns) > 0:
        out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
