"""``llm-cost-tracker report``: write the ledger's spend as one HTML file (or JSON / Markdown)."""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from pathlib import Path

from .. import environment_variables as env
from .._errors import LLMCostTrackerError
from ._main import EXIT_DATABASE, EXIT_OK, database_url

_EXAMPLES = """\
examples:
  llm-cost-tracker report                              # last 30 days -> llm-cost-report.html
  llm-cost-tracker report --since 7d --group-by feature,user_id
  llm-cost-tracker report --from 2026-01-01 --to 2026-02-01 -o january.html
  llm-cost-tracker report --format md -o -             # Markdown on stdout
  llm-cost-tracker report --format json -o spend.json --database-url postgresql://app@db/llm
"""

_DEFAULT_NAMES = {
    "html": "llm-cost-report.html",
    "json": "llm-cost-report.json",
    "md": "llm-cost-report.md",
}


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = _EXAMPLES
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write the report; '-' for stdout (default: llm-cost-report.html/.json/.md)",
    )
    parser.add_argument(
        "--format", choices=("html", "json", "md"), default="html", help="default: html"
    )
    when = parser.add_argument_group("period (default: the last 30 days)")
    when.add_argument("--since", metavar="AGE", help="the last AGE: 30d, 12h, 2w, 3m")
    when.add_argument(
        "--from", dest="start", metavar="DATE", help="start (YYYY-MM-DD or ISO time, UTC)"
    )
    when.add_argument("--to", dest="end", metavar="DATE", help="end, exclusive (default: now)")
    parser.add_argument(
        "--group-by",
        type=_csv,
        default=[],
        metavar="TAG,...",
        help="tag keys to break spend down by, e.g. feature,user_id (calls without one are 'untagged')",
    )
    parser.add_argument(
        "--top", type=int, default=20, metavar="N", help="most expensive calls to list (default 20)"
    )
    for flag, variable in (
        ("--monthly-budget", env.LLM_COST_TRACKER_MONTHLY_BUDGET),
        ("--daily-budget", env.LLM_COST_TRACKER_DAILY_BUDGET),
        ("--per-call-budget", env.LLM_COST_TRACKER_PER_CALL_BUDGET),
    ):
        parser.add_argument(
            flag, type=Decimal, metavar="USD", help=f"show budget status (default: ${variable})"
        )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output on stderr")


def budgets_from(args: argparse.Namespace) -> dict[str, Decimal | None]:
    """Budget limits from the flags, else the LLM_COST_TRACKER_*_BUDGET variables."""
    from .._config import resolve_decimal

    return {
        "monthly": resolve_decimal(
            getattr(args, "monthly_budget", None), env.LLM_COST_TRACKER_MONTHLY_BUDGET
        ),
        "daily": resolve_decimal(
            getattr(args, "daily_budget", None), env.LLM_COST_TRACKER_DAILY_BUDGET
        ),
        "per_call": resolve_decimal(
            getattr(args, "per_call_budget", None), env.LLM_COST_TRACKER_PER_CALL_BUDGET
        ),
    }


def write_report(
    url: str,
    *,
    output: str,
    fmt: str = "html",
    since: str | None = None,
    start: str | None = None,
    end: str | None = None,
    group_by: list[str] | None = None,
    top: int = 20,
    budgets: dict[str, Decimal | None] | None = None,
    dropped: dict[str, int] | None = None,
    quiet: bool = False,
) -> tuple[str, int]:
    """Build and write a report; return (where it went, calls in the period)."""
    from ..report import build_report, render

    started = time.perf_counter()

    def progress(message: str) -> None:
        # Step-by-step output only where someone watches, or once the run gets long.
        if not quiet and (sys.stderr.isatty() or time.perf_counter() - started > 1.0):
            print(f"report: {message}", file=sys.stderr, flush=True)

    report = build_report(
        url,
        since=since,
        start=start,
        end=end,
        group_by=group_by or [],
        top=top,
        budgets=budgets,
        dropped=dropped,
        progress=progress,
    )
    text = render(report, fmt)
    if output == "-":
        sys.stdout.write(text)
        where = "stdout"
    else:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        where = str(path.resolve())
    progress(f"done in {time.perf_counter() - started:.2f} s")
    return where, report.totals.current.calls


def run(args: argparse.Namespace) -> int:
    from .. import ledger

    url = database_url(args)
    output = args.output or _DEFAULT_NAMES[args.format]
    try:
        where, calls = write_report(
            url,
            output=output,
            fmt=args.format,
            since=args.since,
            start=args.start,
            end=args.end,
            group_by=args.group_by,
            top=args.top,
            budgets=budgets_from(args),
            quiet=args.quiet,
        )
    except (ImportError, LLMCostTrackerError):
        raise
    except Exception as error:
        print(f"error: cannot read {ledger.redact_url(url)}: {error}", file=sys.stderr)
        return EXIT_DATABASE
    if calls == 0:
        print(
            "note: no calls recorded in this period; the report is empty "
            "(try a longer --since, or 'llm-cost-tracker demo' to see a full one)",
            file=sys.stderr,
        )
    if where != "stdout":
        print(f"wrote {where} ({calls:,} calls)")
    return EXIT_OK
