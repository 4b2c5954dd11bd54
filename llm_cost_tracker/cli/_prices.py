"""``llm-cost-tracker prices list|explain|sync|check`` and ``llm-cost-tracker reprice``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import environment_variables as env
from .._components import COMPONENTS
from .._errors import ConfigurationError
from ._main import EXIT_CHECK_FAILED, EXIT_DATABASE, EXIT_OK, database_url
from ._prices_check import check, load_catalog_for, prices_file

if TYPE_CHECKING:
    from ..pricing._entries import PriceEntry, PriceVersion
    from ..pricing._match import Match
    from ..pricing._price import Resolved

_PRICES_EXAMPLES = """\
examples:
  llm-cost-tracker prices list --provider anthropic
  llm-cost-tracker prices explain openai gpt-5-2025-08-07 --mode priority
  llm-cost-tracker prices explain google gemini-2.5-pro --input-tokens 250000
  llm-cost-tracker prices sync --from model_prices_and_context_window.json --to prices.json
  llm-cost-tracker prices check --prices-file prices.json
  llm-cost-tracker prices check --against model_prices_and_context_window.json --provider google
"""

_REPRICE_EXAMPLES = """\
examples:
  llm-cost-tracker reprice --from 2026-11-01                # unknown/partial calls since then
  llm-cost-tracker reprice --from 2026-11-01 --to 2026-11-08 --all --dry-run
"""

DEFAULT_SYNC_TARGET = "llm_cost_tracker_prices.json"


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "reprice":
        parser.epilog = _REPRICE_EXAMPLES
        parser.add_argument(
            "--from", dest="start", required=True, metavar="DATE", help="first day (UTC, inclusive)"
        )
        parser.add_argument(
            "--to", dest="end", metavar="DATE", help="last day (UTC, inclusive; default: now)"
        )
        parser.add_argument(
            "--all",
            action="store_true",
            help="re-price every call in the range, not only unknown/partial",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="show what would change, change nothing"
        )
        _prices_file_option(parser)
        return
    parser.epilog = _PRICES_EXAMPLES
    actions = parser.add_subparsers(dest="prices_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list the prices in force")
    listing.add_argument("--provider", help="only this provider")
    _prices_file_option(listing)
    explain = actions.add_parser("explain", help="which entry and rates price a model, and why")
    explain.add_argument("provider")
    explain.add_argument("model")
    explain.add_argument(
        "--mode", default="standard", help="pricing mode, e.g. batch, flex, priority, standard+fast"
    )
    explain.add_argument(
        "--input-tokens",
        type=int,
        default=0,
        metavar="N",
        help="input tokens of the call (selects long-context tiers)",
    )
    explain.add_argument(
        "--at", metavar="DATETIME", help="price as of this date/time (default: now)"
    )
    _prices_file_option(explain)
    sync = actions.add_parser(
        "sync", help="import a LiteLLM or genai-prices file into a local prices file"
    )
    sync.add_argument(
        "--from", dest="source", required=True, metavar="FILE", help="the downloaded price data"
    )
    sync.add_argument(
        "--to",
        dest="target",
        metavar="FILE",
        help=f"local prices file to write (default: ${env.LLM_COST_TRACKER_PRICES_FILE}, else {DEFAULT_SYNC_TARGET})",
    )
    sync.add_argument("--provider", action="append", help="only import this provider (repeatable)")
    sync.add_argument(
        "--force", action="store_true", help="accept suspicious changes (to/from zero, 10x moves)"
    )
    sync.add_argument("--dry-run", action="store_true", help="show the diff, write nothing")
    check = actions.add_parser(
        "check",
        help="exit 1 when the local prices file is stale or differs from the bundled catalog, "
        "or (--against) when a public price dataset differs from the prices in force",
    )
    check.add_argument(
        "--against",
        metavar="FILE",
        help="a downloaded LiteLLM model_prices_and_context_window.json or genai-prices data "
        "file: list every rate (each mode and tier) that differs from the prices in force",
    )
    check.add_argument(
        "--provider", action="append", help="with --against: only this provider (repeatable)"
    )
    check.add_argument(
        "--max-age",
        type=int,
        default=90,
        metavar="DAYS",
        help="stale when older than this (default: 90)",
    )
    _prices_file_option(check)


def _prices_file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prices-file",
        metavar="FILE",
        help=f"local prices file (default: ${env.LLM_COST_TRACKER_PRICES_FILE})",
    )


def _when(text: str | None, *, end_of_day: bool = False) -> datetime:
    if text is None:
        return datetime.now(timezone.utc)
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"expected an ISO date or datetime (2026-11-01), got {text!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    if end_of_day and len(text.strip()) == 10:
        parsed += timedelta(days=1)
    return parsed


def _rate(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _basis(component: str) -> str:
    spec = COMPONENTS[component]
    per = int(spec.per)
    label = {1_000_000: "1M", 1_000: "1K", 1: ""}.get(per, str(per))
    return f"per {label} {spec.unit}".replace("  ", " ")


def run(args: argparse.Namespace) -> int:
    if args.command == "reprice":
        return _reprice(args)
    action = args.prices_command
    if action == "list":
        return _list(args)
    if action == "explain":
        return _explain(args)
    if action == "sync":
        return _sync(args)
    return check(args)


def _list(args: argparse.Namespace) -> int:
    from ..pricing._sync import current_rates

    catalog = load_catalog_for(args)
    now = datetime.now(timezone.utc)
    rows = []
    for key, entry in sorted(catalog.entries.items()):
        if args.provider and entry.provider != args.provider.lower():
            continue
        rates = current_rates(entry, now)
        found = entry.version_at(now)
        modes = sorted(found[1].modes) if found else []
        rows.append(
            (
                key,
                *(
                    _rate(rates[c]) if c in rates else "-"
                    for c in ("input", "cache_read", "output")
                ),
                ",".join(modes) or "-",
                entry.source,
                _provenance_cell(entry),
            )
        )
    header = ("MODEL", "INPUT/1M", "CACHE_READ/1M", "OUTPUT/1M", "MODES", "SOURCE", "CHECKED")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    unconfirmed = sum(
        e.unconfirmed
        for e in catalog.entries.values()
        if not args.provider or e.provider == args.provider.lower()
    )
    print(f"\n{len(rows)} entries; catalog {catalog.version}; USD")
    if unconfirmed:
        print(
            f"{unconfirmed} rate(s) or entries not confirmed by an official page "
            "(CHECKED 'unverified' or '+N'; `prices explain` says why)"
        )
    return EXIT_OK


def _provenance_cell(entry: PriceEntry) -> str:
    """``prices list``'s CHECKED column: the day the rates were verified, or ``unverified``; ``+N`` unverified rates."""
    if entry.unverified is not None:
        cell = "unverified"
    elif entry.verified is not None:
        cell = entry.verified.isoformat()
    else:
        cell = "-"
    if entry.unverified_rates:
        cell += f" +{len(entry.unverified_rates)} unverified"
    return cell


def _explain(args: argparse.Namespace) -> int:
    from ..pricing._price import lookup, resolve_cached

    catalog = load_catalog_for(args)
    when = _when(args.at)
    mode = args.mode
    print(
        f"{args.provider} {args.model}  mode={mode}  input_tokens={args.input_tokens}  at={when.isoformat(timespec='seconds')}"
    )
    match = lookup(catalog, args.provider, args.model)
    if match is None:
        print(
            f"no price: no catalog entry matches {args.provider}/{args.model}; its calls are recorded "
            "with cost_status 'unknown' (add it with pricing_overrides or a prices file)"
        )
        return EXIT_CHECK_FAILED
    entry = match.entry
    _print_entry(match)
    found = entry.version_at(when)
    if found is None:
        print("version:  none valid at that time: cost unknown")
        return EXIT_CHECK_FAILED
    _, version = found
    since = version.effective_from.isoformat() if version.effective_from else "always"
    print(f"version:  effective since {since} ({len(entry.versions)} version(s) on record)")
    resolved = resolve_cached(catalog, entry, when, mode, args.input_tokens)
    assert resolved is not None
    _print_tier_and_mode(version, resolved, mode)
    if resolved.reason:
        print(f"unknown:  {resolved.reason}")
        return EXIT_CHECK_FAILED
    print("rates (USD):")
    for component, detail in resolved.snapshot_rates.items():
        print(f"  {component:<16} {detail['rate']:>10}  {_basis(component)}")
    missing = sorted(c for c in ("input", "output") if c not in resolved.unit_prices)
    if missing:
        print(f"no rate:  {', '.join(missing)} (such lines are recorded as unknown)")
    return EXIT_OK


def _print_entry(match: Match) -> None:
    """Which catalog entry matched, and where its prices come from."""
    entry = match.entry
    print(f"entry:    {entry.key}  (matched {match.looked_up!r}: {match.how})")
    origin = {
        "bundled": "bundled catalog",
        "prices_file": "prices file",
        "override": "pricing_overrides",
    }
    print(
        f"source:   {origin.get(entry.source, entry.source)} {entry.catalog_version}"
        + (f"  {entry.source_url}" if entry.source_url else "")
    )
    if entry.notes:
        print(f"notes:    {entry.notes}")
    print(f"checked:  {entry.provenance()}")


def _print_tier_and_mode(version: PriceVersion, resolved: Resolved, mode: str | None) -> None:
    """The long-context tier, time-of-day period and service mode that apply, and the others on offer."""
    from ..pricing._price import normalize_mode

    tiers = ", ".join(f"input_tokens>{t.above_input_tokens}" for t in version.tiers) or "none"
    print(f"tier:     {resolved.header['tier']}  (long-context tiers: {tiers})")
    if "period" in resolved.header:
        print(f"period:   {resolved.header['period']}")
    elif version.periods:
        print(f"period:   default (periods: {', '.join(p.name for p in version.periods)})")
    base, modifiers = normalize_mode(mode)
    spec = version.modes.get(base)
    how = (
        "base rates"
        if base == "standard"
        else (
            "x" + _rate(spec) + " of the token rates"
            if isinstance(spec, Decimal)
            else "rates of its own"
            if spec is not None
            else "no rates"
        )
    )
    print(
        f"mode:     {resolved.header['mode']}: {how}"
        + (f", modifiers {'+'.join(modifiers)}" if modifiers else "")
    )
    available = [
        f"{n} (x{_rate(s)})" if isinstance(s, Decimal) else n
        for n, s in sorted(version.modes.items())
    ]
    print(
        f"modes:    standard{', ' if available else ''}{', '.join(available)}"
        + (
            f"; modifiers: {', '.join(f'{n} x{_rate(f)}' for n, f in sorted(version.modifiers.items()))}"
            if version.modifiers
            else ""
        )
    )


def _sync(args: argparse.Namespace) -> int:
    from ..pricing import default_catalog
    from ..pricing._catalog import build_catalog, parse_catalog, read_document
    from ..pricing._sync import compare, import_file, merge_entry

    kind, imported = import_file(args.source, args.provider)
    incoming = parse_catalog({"models": imported}, origin=args.source, source="prices_file")
    target = args.target or os.environ.get(env.LLM_COST_TRACKER_PRICES_FILE) or DEFAULT_SYNC_TARGET
    existing_doc: dict[str, Any] = {"models": {}}
    if Path(target).exists():
        loaded = read_document(target)
        if isinstance(loaded, Mapping):
            existing_doc = dict(loaded)
    current = build_catalog(
        prices_file=target if Path(target).exists() else None, base=default_catalog()
    )
    changes = compare(current, incoming, datetime.now(timezone.utc))
    new = [c for c in changes if c.component is None]
    moved = [c for c in changes if c.component is not None]
    suspicious = [c for c in moved if c.suspicious]
    print(f"{args.source}: {kind} data, {len(imported)} entries for known providers")
    for change in moved:
        print("  " + change.describe())
    shown = new[:20]
    for change in shown:
        print("  " + change.describe())
    if len(new) > len(shown):
        print(f"  ... and {len(new) - len(shown)} more new entries")
    print(f"{len(moved)} rate change(s), {len(new)} new entr(y/ies), {len(suspicious)} suspicious")
    if suspicious and not args.force:
        print(
            "refusing to write: suspicious changes (a rate to or from zero, or a 10x move); "
            "check them and rerun with --force",
            file=sys.stderr,
        )
        return EXIT_CHECK_FAILED
    if args.dry_run:
        print("dry run: nothing written")
        return EXIT_OK
    models = dict(existing_doc.get("models") or {})
    today = datetime.now(timezone.utc).date().isoformat()  # price dates are UTC
    for key, entry in imported.items():
        # A changed price becomes a new version from today: older calls keep their rates.
        models[key] = merge_entry(models.get(key), entry, today)
    output = {
        "version": f"synced-{today}",
        "updated_at": today,
        "currency": "USD",
        "notes": f"imported from {Path(args.source).name} ({kind}) by llm-cost-tracker prices sync",
        "models": dict(sorted(models.items())),
    }
    parse_catalog(output, origin=target, source="prices_file")  # never write a file we cannot read
    _write_document(target, output)
    print(f"wrote {target} ({len(models)} entries)")
    return EXIT_OK


def _write_document(target: str, document: Mapping[str, Any]) -> None:
    if target.lower().endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ConfigurationError(
                f"{target}: writing YAML needs PyYAML: pip install 'llm-cost-tracker[yaml]'"
            ) from None
        text = yaml.safe_dump(json.loads(json.dumps(document, default=str)), sort_keys=False)
    else:
        text = json.dumps(document, indent=1, default=str) + "\n"
    tmp = f"{target}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, target)


def _reprice(args: argparse.Namespace) -> int:
    from .. import ledger
    from ..pricing import load_catalog
    from ..pricing._reprice import reprice

    catalog = load_catalog(prices_file=prices_file(args))
    start = _when(args.start)
    end = _when(args.end, end_of_day=True) if args.end else None
    url = database_url(args)
    dialect = ledger.DIALECTS[ledger.dialect_name_for_url(url)]
    try:
        connection = ledger.connect(url)
    except ImportError:
        raise
    except Exception as error:
        print(f"error: cannot open {ledger.redact_url(url)}: {error}", file=sys.stderr)
        return EXIT_DATABASE
    try:
        result = reprice(
            connection,
            dialect,
            catalog,
            start=start,
            end=end,
            everything=args.all,
            dry_run=args.dry_run,
        )
    except Exception as error:
        print(f"error: re-pricing failed in {ledger.redact_url(url)}: {error}", file=sys.stderr)
        return EXIT_DATABASE
    finally:
        connection.close()
    for call_id, provider, model, old, new, status in result.changes:
        old_text = "unknown" if old is None else _rate(old)
        new_text = "unknown" if new is None else _rate(new)
        print(f"{call_id}  {provider}/{model}: {old_text} -> {new_text} ({status})")
    verb = "would change" if args.dry_run else "changed"
    print(
        f"examined {result.examined} call(s): {verb} {result.changed}, "
        f"still unknown/partial {result.still_unknown}, skipped {result.skipped} (reported cost or no usage)"
    )
    return EXIT_OK
