"""Reports over the ledger: SQL aggregations rendered as one self-contained HTML file, JSON or Markdown.

from llm_cost_tracker.report import build_report, render
report = build_report("sqlite:///llm_costs.db", since="30d", group_by=["feature"])
Path("report.html").write_text(render(report, "html"))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from .._errors import LLMCostTrackerError
from ._collect import collect
from ._html import render_html
from ._model import Period, Report, resolve_period
from ._queries import Progress
from ._text import render_json, render_markdown

FORMATS = ("html", "json", "md")


class LedgerMissingError(LLMCostTrackerError):
    """The database has no ledger tables yet."""


def build_report(
    database_url: str,
    *,
    since: str | None = None,
    start: str | None = None,
    end: str | None = None,
    period: Period | None = None,
    group_by: Sequence[str] = (),
    top: int = 20,
    budgets: Mapping[str, Decimal | None] | None = None,
    dropped: Mapping[str, int] | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> Report:
    """Query the ledger at ``database_url`` and return the report data for the period.

    The period is ``period``, else ``start``/``end`` (dates or ISO times), else
    the last ``since`` (``30d``, ``12h``, ``2w``; default 30 days).
    """
    from .. import ledger

    if period is None:
        period = resolve_period(since=since, start=start, end=end, now=now)
    dialect = ledger.dialect_name_for_url(database_url)
    connection = ledger.connect(database_url)
    try:
        if not _has_ledger(connection):
            raise LedgerMissingError(
                f"{ledger.redact_url(database_url)} has no ledger tables yet: record some calls "
                "(or run 'llm-cost-tracker demo' or 'llm-cost-tracker migrate') first"
            )
        return collect(
            connection,
            dialect,
            database=ledger.redact_url(database_url),
            period=period,
            group_by=group_by,
            top=top,
            budgets=budgets,
            dropped=dropped,
            progress=progress,
            now=now,
            open_connection=lambda: ledger.connect(database_url),
        )
    finally:
        connection.close()


def _has_ledger(connection: object) -> bool:
    from .. import ledger

    cursor = connection.cursor()  # type: ignore[attr-defined]
    try:
        cursor.execute(f"SELECT 1 FROM {ledger.CALLS} WHERE 1 = 0")
        cursor.fetchall()
    except Exception:
        rollback = getattr(connection, "rollback", None)
        if rollback is not None:
            rollback()
        return False
    finally:
        cursor.close()
    return True


def render(report: Report, fmt: str = "html") -> str:
    """Render ``report`` as ``html``, ``json`` or ``md`` text."""
    if fmt == "html":
        return render_html(report)
    if fmt == "json":
        return render_json(report)
    if fmt == "md":
        return render_markdown(report)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


__all__ = [
    "FORMATS",
    "LedgerMissingError",
    "Period",
    "Report",
    "build_report",
    "render",
    "resolve_period",
]
