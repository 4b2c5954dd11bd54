"""The report as JSON and as Markdown, and the number formatting all renderers share."""

from __future__ import annotations

import json
from decimal import Decimal

from ._model import Report, Spend


def money_text(value: Decimal) -> str:
    """``$1,234.56``; small amounts keep enough decimals to be non-zero (``$0.0042``)."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value == 0 or value >= 1:
        return f"{sign}${value:,.2f}"
    if value >= Decimal("0.0001"):
        return f"{sign}${value:.4f}"
    return f"{sign}${value:.6f}"


def percent_change(current: Decimal, previous: Decimal) -> Decimal | None:
    """The change from ``previous`` to ``current`` in percent; None when there was nothing before."""
    if previous == 0:
        return None
    return (current - previous) / previous * 100


def render_json(report: Report) -> str:
    """Render ``report`` as indented JSON, money as decimal strings."""
    return json.dumps(report.as_dict(), indent=2, sort_keys=False) + "\n"


def _md(value: object) -> str:
    # Table cells: keep pipes and line breaks from breaking the table.
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
    if not rows:
        return ["_none_", ""]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _spend_cells(spend: Spend) -> list[object]:
    if spend.calls and spend.unpriced_calls == spend.calls:
        return [f"{spend.calls:,}", "unknown"]  # no price at all: never shown as $0.00
    return [f"{spend.calls:,}", money_text(spend.cost)]


def render_markdown(report: Report) -> str:
    """Render ``report`` as Markdown: the HTML page's sections, as headings and tables."""
    out = _totals_md(report)
    for section in (
        _daily_md,
        _models_md,
        _tags_md,
        _top_calls_md,
        _cache_md,
        _budgets_md,
        _quality_md,
        _prices_md,
    ):
        out += section(report)
    return "\n".join(out).rstrip() + "\n"


def _totals_md(report: Report) -> list[str]:
    cur, prev = report.totals.current, report.totals.previous
    change = percent_change(cur.cost, prev.cost)
    return [
        "# LLM cost report",
        "",
        f"{report.period.start:%Y-%m-%d %H:%M} to {report.period.end:%Y-%m-%d %H:%M} UTC, {_md(report.database)}",
        "",
        "## Totals",
        "",
        f"- Spend: **{money_text(cur.cost)}** (previous period {money_text(prev.cost)}"
        + (f", {change:+.1f}%)" if change is not None else ")"),
        f"- Calls: {cur.calls:,} (previous period {prev.calls:,})",
        f"- Tokens: {cur.input_tokens:,} in, {cur.output_tokens:,} out",
        f"- Calls without a price: {cur.unpriced_calls:,}; errors: {report.totals.errors:,}",
        "",
    ]


def _daily_md(report: Report) -> list[str]:
    return [
        "## Daily spend by provider",
        "",
        *_table(
            ["Day", "Provider", "Calls", "Spend"],
            [[d.day, d.provider, f"{d.calls:,}", money_text(d.cost)] for d in report.daily],
        ),
    ]


def _models_md(report: Report) -> list[str]:
    return [
        "## Spend by model",
        "",
        *_table(
            ["Provider", "Model", "Calls", "Spend"],
            [[m.provider, m.model, *_spend_cells(m.spend)] for m in report.models],
        ),
    ]


def _tags_md(report: Report) -> list[str]:
    out: list[str] = []
    for breakdown in report.tags:
        rows = [
            ["_untagged_" if r.value is None else r.value, *_spend_cells(r.spend)]
            for r in breakdown.rows
        ]
        if breakdown.other.calls:
            rows.append(["_all other values_", *_spend_cells(breakdown.other)])
        out += [
            f"## Spend by {_md(breakdown.key)}",
            "",
            *_table([breakdown.key, "Calls", "Spend"], rows),
        ]
    return out


def _top_calls_md(report: Report) -> list[str]:
    return [
        "## Most expensive calls",
        "",
        *_table(
            ["Time (UTC)", "Provider", "Model", "Cost", "Tags"],
            [
                [
                    c.occurred_at,
                    c.provider,
                    c.model,
                    money_text(c.cost),
                    ", ".join(f"{k}={v}" for k, v in sorted(c.tags.items())),
                ]
                for c in report.top_calls
            ],
        ),
    ]


def _cache_md(report: Report) -> list[str]:
    return [
        "## Cache savings",
        "",
        *_table(
            ["Provider", "Model", "Cache-read tokens", "Saved"],
            [
                [
                    c.provider,
                    c.model,
                    f"{int(c.cache_read_tokens):,}",
                    "no prices" if c.saved is None else money_text(c.saved),
                ]
                for c in report.cache_savings
            ],
        ),
    ]


def _budgets_md(report: Report) -> list[str]:
    return [
        "## Budgets",
        "",
        *_table(
            ["Budget", "Limit", "Spent so far", "Calls over"],
            [
                [
                    b.name,
                    money_text(b.limit),
                    "" if b.spent is None else money_text(b.spent),
                    b.over_calls,
                ]
                for b in report.budgets
            ],
        ),
    ]


def _quality_md(report: Report) -> list[str]:
    cur = report.totals.current
    return [
        "## Data quality",
        "",
        f"- Unpriced calls: {cur.unpriced_calls:,}; partially priced: {report.totals.partial_calls:,}",
        f"- Streams without usage: {sum(m.streams_without_usage for m in report.models):,}",
        f"- Calls without {'any tag' if report.untagged_key is None else 'a ' + report.untagged_key + ' tag'}: {report.untagged_calls:,}",
        f"- Errors: {', '.join(f'{k} {v:,}' for k, v in report.errors_by_type) or 'none'}",
        f"- Dropped events: {', '.join(f'{k} {v:,}' for k, v in sorted(report.dropped.items())) or 'none reported'}",
        "",
    ]


def _prices_md(report: Report) -> list[str]:
    return [
        "## Prices used",
        "",
        *_table(
            ["Provider", "Model", "Component", "Unit", "Rate", "Per million"],
            [
                [p.provider, p.model, p.component, p.unit, p.rate, p.per_million or ""]
                for p in report.prices
            ],
        ),
    ]
