"""The ``llm-cost-tracker`` command: a thin argparse shell over the library.

Each subcommand lives with the concept it serves and provides
``add_arguments(parser)`` and ``run(args) -> int``; this module only wires them.
Exit codes: 0 success, 1 a check failed (``doctor``, ``prices check``), 2 usage
or configuration error, 3 the database could not be reached.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from .. import environment_variables as env
from .._config import DEFAULT_DATABASE_URL
from .._errors import LLMCostTrackerError

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3

# (name, module, one-line help). The module provides add_arguments() and run().
COMMANDS: list[tuple[str, str, str]] = [
    ("migrate", "llm_cost_tracker.cli._db", "create or upgrade the ledger tables"),
    ("sql", "llm_cost_tracker.cli._db", "run a SQL query against the ledger"),
    ("report", "llm_cost_tracker.cli._report", "write a spend report (HTML, JSON or Markdown)"),
    (
        "demo",
        "llm_cost_tracker.cli._demo",
        "see it work: real SDK calls to a local stand-in server, then a report",
    ),
    (
        "doctor",
        "llm_cost_tracker.cli._doctor",
        "check the setup: database, schema, SDKs, prices, data quality",
    ),
    ("prices", "llm_cost_tracker.cli._prices", "list, explain, sync or check the prices in force"),
    (
        "reprice",
        "llm_cost_tracker.cli._prices",
        "recompute the cost of unknown/partial (or all) stored calls",
    ),
    ("prune", "llm_cost_tracker.cli._prune", "delete calls older than an age, in batches"),
]


def database_url(args: argparse.Namespace) -> str:
    """The database URL: --database-url, else LLM_COST_TRACKER_DATABASE_URL, else the SQLite default."""
    url: str | None = getattr(args, "database_url", None)
    return url or os.environ.get(env.LLM_COST_TRACKER_DATABASE_URL) or DEFAULT_DATABASE_URL


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        metavar="URL",
        help=f"ledger database (default: ${env.LLM_COST_TRACKER_DATABASE_URL}, else {DEFAULT_DATABASE_URL})",
    )
    parser = argparse.ArgumentParser(
        prog="llm-cost-tracker",
        description="Inspect and manage the LLM cost ledger.",
        epilog="Run 'llm-cost-tracker COMMAND --help' for a command's options and examples.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub, name)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: sys.argv[1:]) and return the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args._module.run(args)
    except LLMCostTrackerError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return code


def console_main() -> None:
    sys.exit(main())
