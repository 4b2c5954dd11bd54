"""``llm-cost-tracker prices check``: is a local prices file current, and where does a public dataset differ?"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import environment_variables as env
from ._main import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE


def prices_file(args: argparse.Namespace) -> str | None:
    """The local prices file: ``--prices-file``, else ``$LLM_COST_TRACKER_PRICES_FILE``."""
    value: str | None = getattr(args, "prices_file", None) or os.environ.get(
        env.LLM_COST_TRACKER_PRICES_FILE
    )
    return value or None


def load_catalog_for(args: argparse.Namespace) -> Any:
    """The catalog in force for a command: the bundled one under ``--prices-file``, if any."""
    from ..pricing import load_catalog

    return load_catalog(prices_file=prices_file(args))


def _check_against(args: argparse.Namespace) -> int:
    """Every rate that differs between the prices in force and a public dataset; 1 when any does."""
    from ..pricing._catalog import parse_catalog
    from ..pricing._drift import compare_rates
    from ..pricing._sync import import_file

    kind, imported = import_file(args.against, args.provider)
    theirs = parse_catalog({"models": imported}, origin=args.against, source="prices_file")
    ours = load_catalog_for(args)
    drift = compare_rates(ours, theirs, datetime.now(timezone.utc))
    print(
        f"{args.against}: {kind} data, {len(theirs.entries)} entries for known providers; "
        f"{len(drift.compared)} priced by catalog {ours.version} (rates per 1M tokens or per unit)"
    )
    print("model [mode, tier] component: ours -> theirs")
    for difference in drift.differences:
        print("  " + difference.describe())
    models = len({d.key for d in drift.differences})
    print(
        f"{len(drift.differences)} difference(s) in {models} of {len(drift.compared)} model(s) compared; "
        f"{len(drift.only_theirs)} entr(y/ies) only in {Path(args.against).name}, "
        f"{len(drift.only_ours)} of ours not in it"
    )
    return EXIT_CHECK_FAILED if drift.differences else EXIT_OK


def check(args: argparse.Namespace) -> int:
    """``prices check``: a local prices file against the bundled catalog, or (``--against``) a public dataset."""
    from ..pricing import default_catalog
    from ..pricing._catalog import load_prices_file
    from ..pricing._sync import compare

    if args.against:
        return _check_against(args)
    path = prices_file(args)
    if path is None:
        print(
            f"error: no local prices file: pass --prices-file or set {env.LLM_COST_TRACKER_PRICES_FILE}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    local = load_prices_file(path)
    bundled = default_catalog()
    problems = []
    updated = local.info.updated_at
    today = datetime.now(timezone.utc).date()
    if updated is None:
        problems.append(f"{path} has no updated_at: cannot tell how old it is")
    else:
        if bundled.info.updated_at is not None and updated < bundled.info.updated_at:
            problems.append(
                f"{path} (updated {updated}) is older than the bundled catalog ({bundled.info.updated_at})"
            )
        if (today - updated).days > args.max_age:
            problems.append(
                f"{path} is {(today - updated).days} days old (more than --max-age {args.max_age})"
            )
    changes = [
        c for c in compare(bundled, local, datetime.now(timezone.utc)) if c.component is not None
    ]
    for change in changes:
        problems.append(f"differs from bundled: {change.describe()[2:]}")
    if problems:
        for problem in problems:
            print(problem)
        return EXIT_CHECK_FAILED
    print(f"{path}: up to date ({len(local.entries)} entries, updated {updated})")
    return EXIT_OK
