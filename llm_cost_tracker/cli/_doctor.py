"""``llm-cost-tracker doctor``: check the setup end to end, one ``[ok] / [warn] / [fail]`` row per check.

Configuration, the database (reachable, schema up to date), the SDKs and their
instrumentors, the price catalog's age, what the ledger says about the last
seven days (unpriced models, streams without usage, errors), the budgets in
force with their current spend, plus the spool and quarantine of undelivered
events. Exits 1 when any check fails.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from ._check import Check
from ._doctor_bedrock import check_bedrock
from ._doctor_budgets import check_budgets
from ._doctor_catalog import check_prices
from ._doctor_ledger import check_database, check_delivery, check_ledger
from ._doctor_setup import check_configuration, check_instrumentors, check_process_counters
from ._main import EXIT_CHECK_FAILED, EXIT_OK, database_url

_EXAMPLES = """\
examples:
  llm-cost-tracker doctor
  llm-cost-tracker doctor --database-url postgresql://app@db/llm
  LLM_COST_TRACKER_DEFAULT_TAGS=service=api llm-cost-tracker doctor

exit codes: 0 every check passed (warnings allowed), 1 a check failed.
"""


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = _EXAMPLES
    parser.add_argument(
        "--days",
        type=int,
        default=7,
        metavar="N",
        help="how far back to look in the ledger (default 7)",
    )


def run_checks(url: str, days: int = 7, now: datetime | None = None) -> list[Check]:
    """Every check, in order; never raises for a broken setup (that is what it reports)."""
    now = now or datetime.now(timezone.utc)
    checks, config = check_configuration(url)
    database, connection = check_database(url)
    checks += database
    try:
        checks += check_instrumentors(config)
        checks += check_bedrock()
        checks += check_prices(config, now.date())
        if connection is not None:
            checks += check_ledger(connection, url, days, now)
        checks += check_budgets(url, config, connection, now)
        checks += check_delivery(url, config)
        checks += check_process_counters()
    finally:
        if connection is not None:
            connection.close()
    return checks


def format_check(check: Check) -> str:
    detail = " ".join(check.detail.split())  # driver errors span lines
    line = f"[{check.level}]".ljust(7) + f"{check.name}: {detail}"
    if check.hint:
        line += f"\n       -> {check.hint}"
    return line


def run(args: argparse.Namespace) -> int:
    checks = run_checks(database_url(args), days=args.days)
    for check in checks:
        print(format_check(check))
    failed = sum(1 for c in checks if c.level == "fail")
    warned = sum(1 for c in checks if c.level == "warn")
    print(
        f"\n{failed} failed, {warned} warning(s), {len(checks) - failed - warned} ok",
        file=sys.stdout,
    )
    return EXIT_CHECK_FAILED if failed else EXIT_OK
