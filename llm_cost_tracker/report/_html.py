"""The report as one self-contained HTML page: inline CSS and SVG, no script, every value escaped."""

from __future__ import annotations

from decimal import Decimal
from html import escape
from importlib import resources
from string import Template

from ._model import Report, Spend, TagBreakdown
from ._text import money_text, percent_change

_PALETTE = 8


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _num(value: int | None) -> str:
    return "&ndash;" if value is None else f"{value:,}"


def _money_cell(value: Decimal | None) -> str:
    if value is None:
        return '<td class="num">&ndash;</td>'
    return f'<td class="num" data-value="{_e(format(value, "f"))}">{_e(money_text(value))}</td>'


def _spend_cell(spend: Spend) -> str:
    """The money cell of a slice: a dash, not $0.00, when none of its calls has a price."""
    if spend.calls and spend.unpriced_calls == spend.calls:
        return '<td class="num" title="no call here has a price">unknown</td>'
    return _money_cell(spend.cost)


def _section(section_id: str, title: str, content: str, intro: str = "") -> str:
    intro_html = f"<p>{intro}</p>" if intro else ""
    return (
        f'<section id="{_e(section_id)}">\n<h2>{_e(title)}</h2>\n{intro_html}{content}\n</section>'
    )


def _table(headers: list[tuple[str, bool]], rows: list[str], empty: str) -> str:
    if not rows:
        return f'<div class="empty">{_e(empty)}</div>'
    head = "".join(f"<th{' class=num' if num else ''}>{_e(h)}</th>" for h, num in headers)
    return (
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>"
    )


def _card(label: str, value: str, delta: str = "", key: str = "", raw: str = "") -> str:
    data = f' data-key="{_e(key)}" data-value="{_e(raw)}"' if key else ""
    delta_html = f'<div class="delta">{delta}</div>' if delta else ""
    return f'<div class="card"{data}><div class="label">{_e(label)}</div><div class="value">{_e(value)}</div>{delta_html}</div>'


def _delta(current: Decimal | int, previous: Decimal | int, money: bool) -> str:
    change = percent_change(Decimal(current), Decimal(previous))
    before = money_text(Decimal(previous)) if money else f"{int(previous):,}"
    if change is None:
        return f"previous period: {_e(before)}"
    css = "up" if change > 0 else "down" if change < 0 else ""
    return f'<span class="{css}">{_e(f"{change:+.1f}%")}</span> vs previous period ({_e(before)})'


def _totals(report: Report) -> str:
    cur, prev = report.totals.current, report.totals.previous
    cards = [
        _card(
            "Spend",
            money_text(cur.cost),
            _delta(cur.cost, prev.cost, True),
            "cost",
            format(cur.cost, "f"),
        ),
        _card(
            "Calls", f"{cur.calls:,}", _delta(cur.calls, prev.calls, False), "calls", str(cur.calls)
        ),
        _card(
            "Input tokens",
            f"{cur.input_tokens:,}",
            _delta(cur.input_tokens, prev.input_tokens, False),
            "input_tokens",
            str(cur.input_tokens),
        ),
        _card(
            "Output tokens",
            f"{cur.output_tokens:,}",
            _delta(cur.output_tokens, prev.output_tokens, False),
            "output_tokens",
            str(cur.output_tokens),
        ),
        _card(
            "Calls without a price",
            f"{cur.unpriced_calls:,}",
            "cost unknown, not counted in spend",
            "unpriced_calls",
            str(cur.unpriced_calls),
        ),
        _card("Errors", f"{report.totals.errors:,}", "", "errors", str(report.totals.errors)),
    ]
    return '<div class="cards">' + "".join(cards) + "</div>"


def _chart(report: Report) -> str:
    days = report.period.days
    providers = report.providers
    if not report.daily:
        return '<div class="empty">No calls in this period.</div>'
    color = {p: f"var(--c{i % _PALETTE})" for i, p in enumerate(providers)}
    per_day: dict[str, dict[str, Decimal]] = {}
    calls: dict[tuple[str, str], int] = {}
    for row in report.daily:
        per_day.setdefault(row.day, {})[row.provider] = row.cost
        calls[(row.day, row.provider)] = row.calls
    peak = max((sum(v.values(), Decimal(0)) for v in per_day.values()), default=Decimal(0))
    peak = peak if peak > 0 else Decimal(1)
    width, height, left, right, top, bottom = 900, 260, 64, 10, 10, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(days), 1)
    bar_w = max(step * 0.8, 1.0)
    parts = [
        f'<svg id="daily-chart" class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Daily spend by provider" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        label = money_text(peak * Decimal(i) / 4)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(label)}</text>')
    label_every = max(1, len(days) // 10)
    for index, day in enumerate(days):
        x = left + index * step + (step - bar_w) / 2
        y = float(top + plot_h)
        for provider in providers:
            cost = per_day.get(day, {}).get(provider)
            if cost is None:
                continue
            h = float(cost / peak) * plot_h
            y -= h
            tip = f"{day} {provider}: {money_text(cost)} ({calls[(day, provider)]:,} calls)"
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(h, 0):.1f}" '
                f'fill="{color[provider]}" data-day="{_e(day)}" data-provider="{_e(provider)}" '
                f'data-value="{_e(format(cost, "f"))}"><title>{_e(tip)}</title></rect>'
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{left + index * step + step / 2:.1f}" y="{height - 12}" '
                f'text-anchor="middle">{_e(day[5:])}</text>'
            )
    parts.append("</svg>")
    legend = "".join(
        f'<span><span class="swatch" style="background:{color[p]}"></span>{_e(p)}</span>'
        for p in providers
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _share(part: Decimal, whole: Decimal) -> str:
    return "&ndash;" if whole <= 0 else _e(f"{part / whole * 100:.1f}%")


def _models(report: Report) -> str:
    total = report.totals.current.cost
    rows = [
        f'<tr data-provider="{_e(m.provider)}" data-model="{_e(m.model)}"><td>{_e(m.provider)}</td>'
        f"<td>{_e(m.model)}</td><td class=num>{_num(m.spend.calls)}</td>"
        f"<td class=num>{_num(m.spend.input_tokens)}</td><td class=num>{_num(m.spend.output_tokens)}</td>"
        f"{_spend_cell(m.spend)}<td class=num>{_share(m.spend.cost, total)}</td></tr>"
        for m in report.models
    ]
    return _table(
        [
            ("Provider", False),
            ("Model", False),
            ("Calls", True),
            ("Input tokens", True),
            ("Output tokens", True),
            ("Spend", True),
            ("Share", True),
        ],
        rows,
        "No calls in this period.",
    )


def _spend_row(label: str, spend: Spend, total: Decimal, css: str = "", value: str = "") -> str:
    attrs = f' class="{css}"' if css else ""
    return (
        f'<tr{attrs} data-value-key="{_e(value)}"><td>{label}</td><td class=num>{_num(spend.calls)}</td>'
        f"{_spend_cell(spend)}<td class=num>{_share(spend.cost, total)}</td></tr>"
    )


def _tag_table(report: Report, breakdown: TagBreakdown) -> str:
    total = report.totals.current.cost
    rows = []
    for row in breakdown.rows:
        if row.value is None:
            rows.append(_spend_row("untagged", row.spend, total, "untagged", ""))
        else:
            rows.append(_spend_row(_e(row.value), row.spend, total, "", row.value))
    if breakdown.other.calls:
        rows.append(_spend_row("all other values", breakdown.other, total, "untagged", "*other*"))
    return _table(
        [(breakdown.key, False), ("Calls", True), ("Spend", True), ("Share", True)],
        rows,
        "No calls in this period.",
    )


def _top_calls(report: Report) -> str:
    rows = []
    for call in report.top_calls:
        tags = ", ".join(f"{k}={v}" for k, v in sorted(call.tags.items()))
        rows.append(
            f'<tr data-call-id="{_e(call.id)}"><td class="mono">{_e(call.occurred_at)}</td>'
            f"<td>{_e(call.provider)}</td><td>{_e(call.model)}</td><td>{_e(call.operation)}</td>"
            f"<td class=num>{_num(call.input_tokens)}</td><td class=num>{_num(call.output_tokens)}</td>"
            f'{_money_cell(call.cost)}<td class="tags">{_e(tags)}</td></tr>'
        )
    return _table(
        [
            ("Time (UTC)", False),
            ("Provider", False),
            ("Model", False),
            ("Operation", False),
            ("Input", True),
            ("Output", True),
            ("Cost", True),
            ("Tags", False),
        ],
        rows,
        "No priced calls in this period.",
    )


def _cache(report: Report) -> str:
    rows = [
        f'<tr data-provider="{_e(c.provider)}" data-model="{_e(c.model)}"><td>{_e(c.provider)}</td>'
        f"<td>{_e(c.model)}</td><td class=num>{_num(int(c.cache_read_tokens))}</td>"
        + (_money_cell(c.saved) if c.saved is not None else '<td class="num warn">no prices</td>')
        + "</tr>"
        for c in report.cache_savings
    ]
    saved = sum((c.saved for c in report.cache_savings if c.saved is not None), Decimal(0))
    intro = (
        f"Prompt caching saved <strong data-key='cache_saved' data-value='{_e(format(saved, 'f'))}'>"
        f"{_e(money_text(saved))}</strong> in this period: cache-read tokens x (input rate - cache-read rate)."
    )
    table = _table(
        [("Provider", False), ("Model", False), ("Cache-read tokens", True), ("Saved", True)],
        rows,
        "No cache reads in this period.",
    )
    return f"<p>{intro}</p>{table}"


def _budgets(report: Report) -> str:
    if not report.budgets:
        return (
            '<div class="empty">No budgets configured (set LLM_COST_TRACKER_MONTHLY_BUDGET, '
            "LLM_COST_TRACKER_DAILY_BUDGET or LLM_COST_TRACKER_PER_CALL_BUDGET, or pass --monthly-budget).</div>"
        )
    rows = []
    for b in report.budgets:
        if b.spent is None:
            state = "fail" if b.over_calls else "ok"
            used = f"{b.over_calls:,} call(s) above the limit in this period"
            spent_cell = '<td class="num">&ndash;</td>'
        else:
            ratio = b.spent / b.limit if b.limit > 0 else Decimal(0)
            state = "fail" if ratio >= 1 else "warn" if ratio >= Decimal("0.8") else "ok"
            used = f"{ratio * 100:.1f}% used"
            spent_cell = _money_cell(b.spent)
        rows.append(
            f'<tr data-budget="{_e(b.name)}"><td>{_e(b.name.replace("_", "-"))}</td>{_money_cell(b.limit)}'
            f'{spent_cell}<td class="{state}">{_e(used)}</td></tr>'
        )
    return _table(
        [("Budget", False), ("Limit", True), ("Spent so far", True), ("Status", False)],
        rows,
        "",
    )


def _quality(report: Report) -> str:
    return (
        f'<div class="cards">{_quality_cards(report)}</div>'
        f"<h3>Pricing gaps by model</h3>{_pricing_gaps(report)}"
        f"<h3>Errors by type</h3>{_errors(report)}"
        f"<h3>Dropped events</h3>{_dropped(report)}"
    )


def _quality_cards(report: Report) -> str:
    cur = report.totals.current
    streams_no_usage = sum(m.streams_without_usage for m in report.models)
    no_usage = sum(m.calls_without_usage for m in report.models)
    untagged_share = f"{report.untagged_calls / cur.calls * 100:.1f}%" if cur.calls else "0%"
    return "".join(
        [
            _card(
                "Unpriced calls",
                f"{cur.unpriced_calls:,}",
                "",
                "q_unpriced",
                str(cur.unpriced_calls),
            ),
            _card(
                "Partially priced calls",
                f"{report.totals.partial_calls:,}",
                "",
                "q_partial",
                str(report.totals.partial_calls),
            ),
            _card(
                "Streams without usage",
                f"{streams_no_usage:,}",
                "ask for usage: stream_options include_usage",
                "q_streams_without_usage",
                str(streams_no_usage),
            ),
            _card("Calls without usage", f"{no_usage:,}", "", "q_without_usage", str(no_usage)),
            _card("Errors", f"{report.totals.errors:,}", "", "q_errors", str(report.totals.errors)),
            _card(
                "Calls without any tag"
                if report.untagged_key is None
                else f"Calls without a {report.untagged_key} tag",
                f"{report.untagged_calls:,}",
                f"{untagged_share} of calls",
                "q_untagged",
                str(report.untagged_calls),
            ),
            _card(
                "Dropped events",
                f"{sum(report.dropped.values()):,}",
                "counted by this process" if report.dropped else "none reported",
                "q_dropped",
                str(sum(report.dropped.values())),
            ),
        ]
    )


def _pricing_gaps(report: Report) -> str:
    """The models with unpriced or partially priced calls."""
    flagged = [m for m in report.models if m.spend.unpriced_calls or m.partial_calls]
    pricing_rows = [
        f"<tr><td>{_e(m.provider)}</td><td>{_e(m.model)}</td><td class=num>{_num(m.spend.unpriced_calls)}</td>"
        f"<td class=num>{_num(m.partial_calls)}</td><td class=num>{_num(m.spend.calls)}</td></tr>"
        for m in flagged
    ]
    return _table(
        [
            ("Provider", False),
            ("Model", False),
            ("Unpriced", True),
            ("Partial", True),
            ("Calls", True),
        ],
        pricing_rows,
        "Every call in this period has a full price.",
    )


def _errors(report: Report) -> str:
    return _table(
        [("Error type", False), ("Calls", True)],
        [
            f"<tr><td>{_e(name)}</td><td class=num>{_num(n)}</td></tr>"
            for name, n in report.errors_by_type
        ],
        "No failed calls in this period.",
    )


def _dropped(report: Report) -> str:
    return _table(
        [("Counter", False), ("Events", True)],
        [
            f"<tr><td>{_e(k)}</td><td class=num>{_num(v)}</td></tr>"
            for k, v in sorted(report.dropped.items())
        ],
        "No dropped events reported.",
    )


def _prices(report: Report) -> str:
    rows = [
        f"<tr><td>{_e(p.provider)}</td><td>{_e(p.model)}</td><td>{_e(p.component)}</td>"
        f"<td>{_e(p.unit)}</td><td class=num>{_e(p.rate)}</td>"
        f"<td class=num>{'&ndash;' if p.per_million is None else _e(p.per_million)}</td>"
        f'<td class="tags">{_e(p.source)}</td></tr>'
        for p in report.prices
    ]
    return _table(
        [
            ("Provider", False),
            ("Model", False),
            ("Component", False),
            ("Unit", False),
            ("Rate per unit", True),
            ("Per million", True),
            ("Source", False),
        ],
        rows,
        "No priced calls in this period, so no stored prices to show.",
    )


def render_html(report: Report) -> str:
    """Render ``report`` as one self-contained HTML document."""
    from .. import __version__

    sections: list[tuple[str, str, str, str]] = [
        ("totals", "Totals", _totals(report), ""),
        (
            "daily",
            "Daily spend by provider",
            _chart(report),
            "UTC days; hover a bar for its figures.",
        ),
        ("models", "Spend by model", _models(report), ""),
    ]
    for breakdown in report.tags:
        sections.append(
            (
                f"tag-{breakdown.key}",
                f"Spend by {breakdown.key}",
                _tag_table(report, breakdown),
                f"Calls without a <code>{_e(breakdown.key)}</code> tag are counted as untagged.",
            )
        )
    sections += [
        ("top-calls", "Most expensive calls", _top_calls(report), ""),
        ("cache-savings", "Cache savings", _cache(report), ""),
        ("budgets", "Budgets", _budgets(report), ""),
        ("data-quality", "Data quality", _quality(report), ""),
        (
            "prices",
            "Prices used",
            _prices(report),
            "Rates as frozen with the calls when they were priced: each model's latest priced call in the period.",
        ),
    ]
    body = "\n".join(_section(*s) for s in sections)
    nav = " ".join(f'<a href="#{_e(s[0])}">{_e(s[1])}</a>' for s in sections)
    period = report.period
    subtitle = (
        f"{_e(period.start.strftime('%Y-%m-%d %H:%M'))} to {_e(period.end.strftime('%Y-%m-%d %H:%M'))} UTC"
        f" &middot; {_e(report.database)}"
    )
    footer = (
        f"Generated {_e(report.generated_at.strftime('%Y-%m-%d %H:%M:%S'))} UTC by llm-cost-tracker "
        f"{_e(__version__)} from {_e(report.dialect)}. Spend counts priced and partially priced calls; "
        "unpriced calls are listed under data quality."
    )
    template = Template(
        resources.files(__package__).joinpath("template.html").read_text(encoding="utf-8")
    )
    return template.substitute(
        version=_e(__version__),
        title="LLM cost report",
        subtitle=subtitle,
        nav=nav,
        body=body,
        footer=footer,
    )
