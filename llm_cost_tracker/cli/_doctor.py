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
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal

from ._main import EXIT_CHECK_FAILED, EXIT_OK, database_url

Level = Literal["ok", "warn", "fail", "info"]

CATALOG_STALE_DAYS = 90
_OVER_HINTS = {
    "notify": "notify only: calls go ahead; the callback fired once for this crossing",
    "raise": "each call raises BudgetExceededError once it is recorded, until the period ends",
    "block": "new requests are refused before they are sent, until the period ends",
}

_EXAMPLES = """\
examples:
  llm-cost-tracker doctor
  llm-cost-tracker doctor --database-url postgresql://app@db/llm
  LLM_COST_TRACKER_DEFAULT_TAGS=service=api llm-cost-tracker doctor

exit codes: 0 every check passed (warnings allowed), 1 a check failed.
"""


@dataclass(frozen=True)
class Check:
    level: Level
    name: str
    detail: str
    hint: str = ""


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = _EXAMPLES
    parser.add_argument(
        "--days",
        type=int,
        default=7,
        metavar="N",
        help="how far back to look in the ledger (default 7)",
    )


@contextmanager
def _caught_warnings() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def check_configuration(url: str) -> tuple[list[Check], Any]:
    from .. import ledger
    from .._config import is_disabled, resolve

    checks: list[Check] = []
    with _caught_warnings() as caught:
        try:
            config = resolve(database_url=url)
        except Exception as error:
            return [Check("fail", "configuration", str(error))], None
    for warning in caught:
        checks.append(Check("warn", "configuration", str(warning.message)))
    if is_disabled():
        checks.append(
            Check("warn", "kill switch", "LLM_COST_TRACKER_DISABLED is set: nothing is recorded")
        )
    tags = config.default_tags if isinstance(config.default_tags, dict) else {}
    instrument = "none" if config.instrument is None else ",".join(config.instrument)
    if config.disabled_instrumentations:
        instrument += f" (minus {','.join(config.disabled_instrumentations)})"
    budgets = config.budgets
    budget_text = "none"
    if budgets is not None:
        parts = [
            f"{name} ${getattr(budgets, name)}"
            for name in ("monthly", "daily", "per_call")
            if getattr(budgets, name, None) is not None
        ]
        budget_text = ", ".join(parts) + f" (on exceed: {getattr(budgets, 'on_exceed', 'notify')})"
    checks.append(
        Check(
            "ok",
            "configuration",
            f"database {ledger.redact_url(url)}; instrument {instrument}; "
            f"exporters {','.join(str(e) for e in config.exporters) or 'none'}; "
            f"default tags {','.join(f'{k}={v}' for k, v in tags.items()) or 'none'}; budgets {budget_text}",
        )
    )
    return checks, config


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


def check_instrumentors(config: Any) -> list[Check]:
    from importlib.metadata import PackageNotFoundError, entry_points, version

    from ..instrumentation import ENTRY_POINT_GROUP
    from ..instrumentation._base import missing_dependency

    checks: list[Check] = []
    wanted = None if config is None or config.instrument is None else set(config.instrument)
    disabled = set() if config is None else set(config.disabled_instrumentations)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        name = f"instrumentor {ep.name}"
        try:
            instrumentor = ep.load()()
            requirements = list(instrumentor.instrumentation_dependencies())
        except Exception as error:
            checks.append(Check("fail", name, f"cannot load {ep.value}: {error}"))
            continue
        libraries = [r.split(">")[0].split("<")[0].split("=")[0].strip() for r in requirements]
        installed = []
        for library in libraries:
            with suppress(PackageNotFoundError):
                installed.append(f"{library} {version(library)}")
        supported = "; ".join(requirements) or "any version"
        on = (
            wanted is not None
            and ("all" in wanted or ep.name in wanted)
            and ep.name not in disabled
        )
        problem = missing_dependency(requirements)
        if problem is None:
            if instrumentor.is_instrumented:
                state = "instrumented in this process"
            elif on:
                state = "will be instrumented"
            else:
                state = "installed, but left off by the configuration"
            what = ", ".join(installed) or "no library requirement"
            checks.append(Check("ok", name, f"{what}: {state} (supports {supported})"))
        elif installed and "not installed" not in problem:
            checks.append(
                Check(
                    "warn",
                    name,
                    f"{problem}: calls through it are not tracked",
                    f"supported: {supported}",
                )
            )
        else:
            extra = ep.name if ep.name in ("openai", "anthropic", "httpx") else "all"
            checks.append(
                Check(
                    "info",
                    name,
                    f"{problem}; nothing to instrument",
                    f"pip install 'llm-cost-tracker[{extra}]' if you use it",
                )
            )
    return checks


def check_prices(config: Any, today: date) -> list[Check]:
    try:
        from ..pricing import default_catalog
        from ..pricing._catalog import build_catalog

        catalog = default_catalog()
        if config is not None and (config.prices_file or config.pricing_overrides):
            catalog = build_catalog(
                prices_file=config.prices_file, overrides=config.pricing_overrides, base=catalog
            )
    except Exception as error:
        return [Check("fail", "price catalog", f"cannot load prices: {error}")]
    info = catalog.info
    updated = info.updated_at
    detail = f"version {info.version} from {info.origin}, {len(catalog.entries)} models"
    if updated is None:
        return [Check("warn", "price catalog", detail + "; no update date")]
    age = (today - updated).days
    detail += f", updated {updated.isoformat()} ({age} days ago)"
    if age > CATALOG_STALE_DAYS:
        return [
            Check(
                "warn",
                "price catalog",
                detail,
                "upgrade llm-cost-tracker or load fresh prices: llm-cost-tracker prices sync --from FILE",
            )
        ]
    return [Check("ok", "price catalog", detail)]


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


def _spend_from_database(
    connection: Any, url: str, tag_keys: list[str], now: datetime
) -> tuple[dict[tuple[str, str, str], Decimal] | None, str]:
    """Month- and day-to-date spend as the budget thread reads it; (None, why) when unreadable."""
    from .. import ledger
    from ..budgets._shared import SpendQueries

    if connection is None:
        return None, "no ledger yet: nothing recorded"
    cursor = connection.cursor()
    try:
        dialect = ledger.DIALECTS[ledger.dialect_name_for_url(url)]
        return SpendQueries(dialect).read(cursor, tag_keys, now), ""
    except Exception as error:
        with suppress(Exception):
            connection.rollback()
        return None, f"cannot read the spend: {error}"
    finally:
        cursor.close()


def check_budgets(url: str, config: Any, connection: Any, now: datetime) -> list[Check]:
    """The budgets in force: limits, mode, per-tag keys, where totals come from, current spend.

    Inside an app with budgets configured, reports that process's own view of
    them; otherwise the budgets the environment sets, with the spend read from
    the database the way every process's budget thread reads it.
    """
    from .. import _api, ledger
    from .._errors import _money
    from ..budgets._guard import guard_of
    from ..budgets._model import GLOBAL_SCOPE, day_of, month_of

    runtime = _api._runtime
    guard = None if runtime is None else guard_of(runtime)
    budgets = guard.budgets if guard is not None else None if config is None else config.budgets
    if budgets is None:
        return [
            Check(
                "info",
                "budgets",
                "none configured",
                "set LLM_COST_TRACKER_MONTHLY_BUDGET / _DAILY_BUDGET / _PER_CALL_BUDGET or "
                "configure(budgets=Budgets(...)); see docs/budgets.md",
            )
        ]
    now = now.astimezone(timezone.utc)
    tag_keys = sorted(budgets.per_tag)
    spent: dict[tuple[str, str, str], Decimal] | None
    if guard is not None and runtime is not None:
        shared_url = None if guard.shared is None else guard.shared.url
        export_interval = runtime.config.export_interval
        spent = {(v.budget_type, v.period, v.scope): v.spent for v in guard.views()}
        why = ""
        now = datetime.now(timezone.utc)  # the guard's own periods
        source = "as this process sees it"
    else:
        in_memory = (
            ledger.dialect_name_for_url(url) == "sqlite" and ledger.sqlite_path(url) == ":memory:"
        )
        shared_url = None if in_memory else url
        export_interval = config.export_interval
        if shared_url is None:
            spent, why = None, "in-process totals are only visible inside the app"
        else:
            spent, why = _spend_from_database(connection, url, tag_keys, now)
        source = "from the database"
    if shared_url is None:
        where = "in-process (no SQL database): each process counts only its own spend"
    else:
        staleness = export_interval + budgets.refresh_interval
        where = (
            f"shared through {ledger.redact_url(shared_url)}, read every {budgets.refresh_interval:g} s "
            f"(another process's spend shows here within about {staleness:g} s)"
        )
    checks = [Check("ok", "budgets", f"on exceed: {budgets.on_exceed}; totals {where}")]
    periods = {"monthly": month_of(now), "daily": day_of(now)}
    for budget_type in ("monthly", "daily"):
        limit = budgets.limits(budget_type)
        if limit is None:
            continue
        period = periods[budget_type]
        if spent is None:
            checks.append(
                Check("ok", f"budget {budget_type}", f"limit {_money(limit)}; spend unknown: {why}")
            )
            continue
        total = spent.get((budget_type, period, GLOBAL_SCOPE), Decimal(0))
        over = total > limit
        detail = f"{_money(total)} of {_money(limit)} spent in {period} {source}"
        checks.append(
            Check(
                "warn" if over else "ok",
                f"budget {budget_type}",
                detail
                + (": over the limit" if over else f" ({total / limit:.0%})" if limit else ""),
                _OVER_HINTS[budgets.on_exceed] if over else "",
            )
        )
    if budgets.per_call is not None:
        checks.append(Check("ok", "budget per_call", f"limit {_money(budgets.per_call)} per call"))
    for tag_key in tag_keys:
        limits = budgets.per_tag[tag_key]
        each = ", ".join(
            f"{t} {_money(getattr(limits, t))}"
            for t in ("monthly", "daily")
            if getattr(limits, t) is not None
        )
        name = f"budget per tag {tag_key}"
        if spent is None:
            checks.append(Check("ok", name, f"{each} for each value; spend unknown: {why}"))
            continue
        prefix = f"{tag_key}="
        values: set[str] = set()
        over_list: list[str] = []
        for (budget_type, period, scope), total in sorted(spent.items()):
            if not scope.startswith(prefix) or period != periods[budget_type]:
                continue
            values.add(scope)
            limit = getattr(limits, budget_type)
            if limit is not None and total > limit:
                over_list.append(f"{scope} {_money(total)} of {_money(limit)} ({budget_type})")
        detail = f"{each} for each value; {len(values)} value(s) with spend this period"
        if over_list:
            shown = "; ".join(over_list[:5]) + (
                f"; and {len(over_list) - 5} more" if len(over_list) > 5 else ""
            )
            checks.append(Check("warn", name, f"{detail}, {len(over_list)} over: {shown}"))
        else:
            checks.append(Check("ok", name, f"{detail}, none over"))
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


def check_process_counters() -> list[Check]:
    """Events this process dropped or failed to export (meaningful when doctor runs inside an app)."""
    from .._stats import STATS

    lost = {
        k: v
        for k, v in STATS.snapshot().items()
        if k.startswith(("dropped.", "export_failed.")) and v
    }
    if not lost:
        return []
    listed = ", ".join(f"{k} {v:,}" for k, v in sorted(lost.items()))
    return [
        Check(
            "warn",
            "dropped events",
            f"{sum(lost.values()):,} events lost in this process: {listed}",
            "see docs/performance.md for queue sizing and docs/exporters.md for delivery",
        )
    ]


def run_checks(url: str, days: int = 7, now: datetime | None = None) -> list[Check]:
    """Every check, in order; never raises for a broken setup (that is what it reports)."""
    now = now or datetime.now(timezone.utc)
    checks, config = check_configuration(url)
    database, connection = check_database(url)
    checks += database
    try:
        checks += check_instrumentors(config)
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
