"""``llm-cost-instrument [options] -- COMMAND ...``: run a program with cost tracking turned on.

Like ``opentelemetry-instrument``: each flag becomes its ``LLM_COST_TRACKER_*``
environment variable, the folder holding our ``sitecustomize`` goes first on
``PYTHONPATH``, and the command replaces this process. Every Python process the
command starts (workers, subprocesses) is instrumented the same way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

from .. import environment_variables as env
from .._config import parse_key_values
from .._errors import ConfigurationError

SITE_DIR = str(Path(__file__).resolve().parent / "_site")

_EXAMPLES = """\
examples:
  llm-cost-instrument -- python app.py
  llm-cost-instrument --default-tags service=api,env=prod -- python -m mypackage
  llm-cost-instrument --database-url postgresql://app@db/llm -- gunicorn -w 4 app:server
  llm-cost-instrument --instrument openai --exporters log -- uvicorn app:api --workers 2
  llm-cost-instrument --monthly-budget 500 --daily-budget 25 -- celery -A tasks worker

Each option sets the environment variable named in its help; variables already
set are kept unless the option is given. LLM_COST_TRACKER_DISABLED=true turns
everything off.
"""

# (flag, environment variable, metavar, help)
OPTIONS: list[tuple[str, str, str, str]] = [
    (
        "--database-url",
        env.LLM_COST_TRACKER_DATABASE_URL,
        "URL",
        "ledger database (sqlite:///llm_costs.db, postgresql://..., mysql://..., none)",
    ),
    (
        "--exporters",
        env.LLM_COST_TRACKER_EXPORTERS,
        "NAME,...",
        "extra exporters by entry-point name, e.g. log,otel",
    ),
    (
        "--instrument",
        env.LLM_COST_TRACKER_INSTRUMENT,
        "NAME,...",
        "instrumentors to turn on: all (default), or e.g. openai,anthropic",
    ),
    (
        "--disabled-instrumentations",
        env.LLM_COST_TRACKER_DISABLED_INSTRUMENTATIONS,
        "NAME,...",
        "instrumentors to leave off",
    ),
    (
        "--default-tags",
        env.LLM_COST_TRACKER_DEFAULT_TAGS,
        "K=V,...",
        "tags on every call, e.g. service=api,env=prod",
    ),
    (
        "--prices-file",
        env.LLM_COST_TRACKER_PRICES_FILE,
        "FILE",
        "YAML or JSON prices overriding the bundled catalog",
    ),
    ("--monthly-budget", env.LLM_COST_TRACKER_MONTHLY_BUDGET, "USD", "monthly budget"),
    ("--daily-budget", env.LLM_COST_TRACKER_DAILY_BUDGET, "USD", "daily budget"),
    (
        "--per-call-budget",
        env.LLM_COST_TRACKER_PER_CALL_BUDGET,
        "USD",
        "largest cost one call may have",
    ),
    (
        "--budget-on-exceed",
        env.LLM_COST_TRACKER_BUDGET_ON_EXCEED,
        "MODE",
        "notify (default), raise or block",
    ),
    (
        "--spool-dir",
        env.LLM_COST_TRACKER_SPOOL_DIR,
        "DIR",
        "on-disk spool for an unreachable database",
    ),
    (
        "--queue-size",
        env.LLM_COST_TRACKER_QUEUE_SIZE,
        "N",
        "events held in memory before new ones are dropped",
    ),
]

_BUDGETS = {
    env.LLM_COST_TRACKER_MONTHLY_BUDGET,
    env.LLM_COST_TRACKER_DAILY_BUDGET,
    env.LLM_COST_TRACKER_PER_CALL_BUDGET,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-cost-instrument",
        usage="%(prog)s [options] -- COMMAND [ARGS ...]",
        description="Run COMMAND with LLM cost tracking turned on, without changing its code.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag, variable, metavar, help_text in OPTIONS:
        parser.add_argument(flag, metavar=metavar, help=f"{help_text} (${variable})")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the program to run, after --")
    return parser


def _validate(variable: str, value: str) -> None:
    if variable == env.LLM_COST_TRACKER_DEFAULT_TAGS:
        parse_key_values(value, name="--default-tags")
    elif variable in _BUDGETS:
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise ConfigurationError(f"budgets are decimal amounts in USD, got {value!r}") from None
        if not amount.is_finite() or amount < 0:
            raise ConfigurationError(f"budgets must be non-negative amounts, got {value!r}")
    elif variable == env.LLM_COST_TRACKER_BUDGET_ON_EXCEED and value not in (
        "notify",
        "raise",
        "block",
    ):
        raise ConfigurationError(
            f"--budget-on-exceed must be notify, raise or block, got {value!r}"
        )
    elif variable == env.LLM_COST_TRACKER_QUEUE_SIZE and (not value.isdigit() or int(value) < 1):
        raise ConfigurationError(f"--queue-size must be a positive integer, got {value!r}")


def prepare_environment(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """Return the command's environment: the flags as variables, our sitecustomize first on PYTHONPATH."""
    result = dict(environ)
    for flag, variable, _, _ in OPTIONS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is None:
            continue
        _validate(variable, value)
        result[variable] = value
    path = [p for p in result.get("PYTHONPATH", "").split(os.pathsep) if p and p != SITE_DIR]
    result["PYTHONPATH"] = os.pathsep.join([SITE_DIR, *path])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options and exec the command; return an exit code only when that fails."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.print_usage(sys.stderr)
        print("llm-cost-instrument: error: give the command to run after --", file=sys.stderr)
        return 2
    try:
        environ = prepare_environment(args, dict(os.environ))
    except ConfigurationError as error:
        print(f"llm-cost-instrument: error: {error}", file=sys.stderr)
        return 2
    executable = shutil.which(command[0], path=environ.get("PATH"))
    if executable is None:
        print(f"llm-cost-instrument: error: command not found: {command[0]}", file=sys.stderr)
        return 127
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(executable, command, environ)  # replaces this process; returns only by raising
    except OSError as error:
        print(f"llm-cost-instrument: error: cannot run {command[0]}: {error}", file=sys.stderr)
    return 126


def console_main() -> None:
    sys.exit(main())
