"""The report: SQL aggregations checked against sums computed in Python, HTML/JSON/Markdown output, the CLI."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from llm_cost_tracker.exporters import exporter_for_url

from llm_cost_tracker._events import Cost, LineItem, TokenUsage, UsageEvent
from llm_cost_tracker.cli._main import main
from llm_cost_tracker.report import LedgerMissingError, Period, build_report, render

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=timezone.utc)
PERIOD = Period(NOW - timedelta(days=10), NOW)
XSS = "<script>alert(1)</script>"
RATES = {
    ("openai", "gpt-4o-mini"): {
        "input": Decimal("0.00000015"),
        "cache_read": Decimal("0.000000075"),
        "output": Decimal("0.0000006"),
    },
    ("anthropic", "claude-sonnet-4-5"): {
        "input": Decimal("0.000003"),
        "cache_read": Decimal("0.0000003"),
        "cache_write_5m": Decimal("0.00000375"),
        "output": Decimal("0.000015"),
    },
}


def snapshot_for(provider: str, rates: dict[str, Decimal]) -> dict[str, object]:
    """The pricing stage's snapshot shape for anthropic; openai rows carry only a header (line items then)."""
    snapshot: dict[str, object] = {"source": "test-catalog", "catalog_version": "2026-03-01"}
    if provider == "anthropic":
        snapshot["rates"] = {
            c: {"rate": format((r * 1_000_000).normalize(), "f"), "unit": "token", "per": 1_000_000}
            for c, r in rates.items()
        }
    return snapshot


def make_events(count: int = 300, seed: int = 7) -> list[UsageEvent]:
    """A deterministic ledger: two priced models, an unpriced one, tags (some hostile), errors, streams."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        occurred = NOW - timedelta(
            minutes=rng.randint(1, 20 * 24 * 60)
        )  # half in the previous period
        kind = i % 10
        tags: dict[str, str] = {}
        if i % 4:
            tags["feature"] = rng.choice(["chat", "search", XSS])
        if i % 3 == 0:
            tags["user_id"] = f"user-{rng.randint(1, 5)}"
        if kind == 9:  # a model nobody has a price for; usage known
            events.append(
                UsageEvent(
                    provider="openai",
                    model="ft:custom-model",
                    operation="chat",
                    usage=TokenUsage(tokens={"input": 100, "output": 10}),
                    occurred_at=occurred,
                    tags=tags,
                )
            )
            continue
        if kind == 8:  # a stream that never reported usage
            events.append(
                UsageEvent(
                    provider="openai",
                    model="gpt-4o-mini",
                    operation="chat",
                    usage=None,
                    stream=True,
                    usage_source="unknown",
                    occurred_at=occurred,
                    tags=tags,
                )
            )
            continue
        provider, model = rng.choice(sorted(RATES))
        rates = RATES[(provider, model)]
        tokens = {
            "input": rng.randint(10, 2000),
            "cache_read": rng.choice([0, 0, 1024, 2048]),
            "output": rng.randint(1, 800),
        }
        if provider == "anthropic" and i % 7 == 0:
            tokens["cache_write_5m"] = 500
        items = tuple(
            LineItem(c, "token", Decimal(n), rates[c], Decimal(n) * rates[c])
            for c, n in tokens.items()
            if n
        )
        total = sum((li.cost for li in items if li.cost is not None), Decimal(0))
        error = kind == 7
        events.append(
            UsageEvent(
                provider=provider,
                model=model,
                operation="chat" if provider == "openai" else "messages",
                usage=TokenUsage(tokens=tokens),
                occurred_at=occurred,
                tags=tags,
                stream=i % 5 == 0,
                status="error" if error else "ok",
                error_type="RateLimitError" if error else None,
                cost=Cost(
                    total=total,
                    status="priced",
                    line_items=items,
                    snapshot=snapshot_for(provider, rates),
                ),
            )
        )
    return events


def write_ledger(url: str, events: Sequence[UsageEvent]) -> None:
    exporter = exporter_for_url(url)
    exporter.export(list(events))
    # The server exporters write on a thread of their own, and shutdown() spools
    # what it has not written yet: wait for the writes (SQLite writes in export()).
    flush = getattr(exporter, "flush", None)
    if flush is not None:
        assert flush(30)
    exporter.shutdown()


def in_period(events: Sequence[UsageEvent], period: Period = PERIOD) -> list[UsageEvent]:
    return [e for e in events if period.start <= e.occurred_at < period.end]


def spend(events: Sequence[UsageEvent]) -> Decimal:
    return sum((e.cost.total for e in events if e.cost.total is not None), Decimal(0))


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, list[UsageEvent]]:
    """The same ledger in SQLite, and in fresh PostgreSQL and MariaDB databases."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue(f"fresh_{request.param}_url")
    events = make_events()
    write_ledger(url, events)
    return url, events


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> tuple[str, list[UsageEvent]]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    events = make_events()
    write_ledger(url, events)
    return url, events


def close(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) < Decimal("1e-9")


def test_totals_models_days_match_python_sums(ledger: tuple[str, list[UsageEvent]]) -> None:
    url, events = ledger
    report = build_report(url, period=PERIOD, now=NOW)
    current = in_period(events)
    previous = in_period(events, PERIOD.previous)

    assert report.totals.current.calls == len(current)
    assert close(report.totals.current.cost, spend(current))
    assert report.totals.previous.calls == len(previous)
    assert close(report.totals.previous.cost, spend(previous))
    assert report.totals.current.unpriced_calls == sum(
        1 for e in current if e.cost.status == "unknown"
    )
    assert report.totals.errors == sum(1 for e in current if e.status == "error")
    assert report.totals.current.input_tokens == sum(
        e.usage.input_tokens for e in current if e.usage
    )

    by_model = {(m.provider, m.model): m for m in report.models}
    for key in RATES:
        mine = [e for e in current if (e.provider, e.model) == key]
        assert by_model[key].spend.calls == len(mine)
        assert close(by_model[key].spend.cost, spend(mine))
    assert by_model[("openai", "ft:custom-model")].spend.unpriced_calls > 0
    assert by_model[("openai", "gpt-4o-mini")].streams_without_usage == sum(
        1 for e in current if e.stream and e.usage is None
    )
    # Sorted by spend, most expensive first.
    assert [m.spend.cost for m in report.models] == sorted(
        (m.spend.cost for m in report.models), reverse=True
    )

    per_day: dict[str, Decimal] = {}
    for e in current:
        day = e.occurred_at.strftime("%Y-%m-%d")
        per_day[day] = per_day.get(day, Decimal(0)) + (e.cost.total or Decimal(0))
    got: dict[str, Decimal] = {}
    for row in report.daily:
        got[row.day] = got.get(row.day, Decimal(0)) + row.cost
    assert got.keys() == per_day.keys()
    assert all(close(got[d], per_day[d]) for d in per_day)


def test_tag_breakdown_has_an_untagged_bucket(ledger: tuple[str, list[UsageEvent]]) -> None:
    url, events = ledger
    report = build_report(url, period=PERIOD, group_by=["feature", "user_id", "nobody"], now=NOW)
    current = in_period(events)
    feature = report.tags[0]
    assert feature.key == "feature"
    assert feature.rows[0].value is None  # untagged first
    untagged = [e for e in current if "feature" not in e.tags]
    assert feature.untagged.calls == len(untagged)
    assert close(feature.untagged.cost, spend(untagged))
    values = {r.value: r.spend for r in feature.rows if r.value is not None}
    assert set(values) == {"chat", "search", XSS}
    for value, got in values.items():
        mine = [e for e in current if e.tags.get("feature") == value]
        assert got.calls == len(mine)
        assert close(got.cost, spend(mine))
    assert feature.other.calls == 0
    assert sum(r.spend.calls for r in feature.rows) == len(current)
    nobody = report.tags[2]
    assert nobody.untagged.calls == len(current)
    assert report.untagged_calls == len(untagged)  # the first --group-by key's untagged share
    assert report.untagged_key == "feature"
    plain = build_report(url, period=PERIOD, now=NOW)
    assert plain.untagged_key is None
    assert plain.untagged_calls == sum(1 for e in current if not e.tags)


def test_tag_values_past_the_limit_are_summed_as_other(
    ledger: tuple[str, list[UsageEvent]],
) -> None:
    url, events = ledger
    report = build_report(url, period=PERIOD, group_by=["user_id"], now=NOW)
    from llm_cost_tracker.exporters import connect

    from llm_cost_tracker.ledger import dialect_name_for_url
    from llm_cost_tracker.report._queries import REPORT_DIALECTS, Queries

    connection = connect(url)
    try:
        dialect = REPORT_DIALECTS[dialect_name_for_url(url)]
        limited, feature = Queries(connection, dialect, None).tag_breakdowns(
            PERIOD, ["user_id", "feature"], 2, report.totals.current
        )
    finally:
        connection.close()
    named = [r for r in limited.rows if r.value is not None]
    assert len(named) == 2
    assert limited.other.calls > 0
    assert limited.other.calls + sum(r.spend.calls for r in limited.rows) == len(in_period(events))
    full = report.tags[0]
    assert [r.value for r in full.rows[:3]] == [
        r.value for r in limited.rows
    ]  # the same top values
    assert limited.untagged == full.untagged
    assert feature.key == "feature"
    assert len([r for r in feature.rows if r.value is not None]) == 2
    assert feature.other.calls + sum(r.spend.calls for r in feature.rows) == len(in_period(events))


def test_top_calls_cache_savings_prices_and_budgets(
    ledger: tuple[str, list[UsageEvent]],
) -> None:
    url, events = ledger
    report = build_report(
        url,
        period=PERIOD,
        top=5,
        budgets={"monthly": Decimal("0.01"), "daily": Decimal("1000"), "per_call": Decimal("0.01")},
        now=NOW,
    )
    current = in_period(events)
    priced = sorted(
        (e for e in current if e.cost.total is not None), key=lambda e: -(e.cost.total or 0)
    )
    assert [c.id for c in report.top_calls] == [e.id for e in priced[:5]]
    assert report.top_calls[0].cost == priced[0].cost.total  # exact text column on SQLite
    assert report.top_calls[0].tags == dict(priced[0].tags)

    for key, rates in RATES.items():
        mine = [e for e in current if (e.provider, e.model) == key and e.usage]
        reads = sum(e.usage.tokens.get("cache_read", 0) for e in mine if e.usage)
        saved = reads * (rates["input"] - rates["cache_read"])
        row = next(c for c in report.cache_savings if (c.provider, c.model) == key)
        assert row.cache_read_tokens == reads
        assert row.saved is not None
        assert close(row.saved, saved)

    prices = {(p.model, p.component): p for p in report.prices}
    assert (
        Decimal(prices[("gpt-4o-mini", "input")].rate) == RATES[("openai", "gpt-4o-mini")]["input"]
    )
    assert prices[("gpt-4o-mini", "input")].per_million == "0.15"
    assert "test-catalog" in prices[("gpt-4o-mini", "input")].source
    assert not any(p.model == "ft:custom-model" for p in report.prices)
    # From the snapshot's rates table: every component, even one a sample call did not use.
    assert prices[("claude-sonnet-4-5", "cache_write_5m")].per_million == "3.75"
    assert Decimal(prices[("claude-sonnet-4-5", "output")].rate) == Decimal("0.000015")

    budgets = {b.name: b for b in report.budgets}
    month = [e for e in events if e.occurred_at >= datetime(2026, 3, 1, tzinfo=timezone.utc)]
    assert budgets["monthly"].spent is not None
    assert close(budgets["monthly"].spent, spend(month))
    assert budgets["per_call"].over_calls == sum(
        1 for e in current if e.cost.total is not None and e.cost.total > Decimal("0.01")
    )
    assert [name for name, _ in report.errors_by_type] == ["RateLimitError"]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.ids += [v for k, v in attrs if k == "id" and v]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_self_contained_escaped_and_complete(
    sqlite_ledger: tuple[str, list[UsageEvent]],
) -> None:
    url, _ = sqlite_ledger
    report = build_report(url, period=PERIOD, group_by=["feature"], now=NOW)
    page = render(report, "html")
    parser = _Collector()
    parser.feed(page)
    assert "script" not in parser.tags  # the hostile tag value stayed text
    assert XSS in "".join(parser.text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for section in (
        "totals",
        "daily",
        "daily-chart",
        "models",
        "tag-feature",
        "top-calls",
        "cache-savings",
        "budgets",
        "data-quality",
        "prices",
    ):
        assert section in parser.ids
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing fetched from the network
    assert "prefers-color-scheme: dark" in page
    assert "@media print" in page
    assert page.count('class="bar"') == len(report.daily)
    # A model none of whose calls has a price shows "unknown", never $0.00.
    row = re.search(r'<tr data-provider="openai" data-model="ft:custom-model">(.*?)</tr>', page)
    assert row is not None
    assert "unknown" in row.group(1)
    assert "$0.00" not in row.group(1)


def test_json_and_markdown(sqlite_ledger: tuple[str, list[UsageEvent]]) -> None:
    url, events = sqlite_ledger
    report = build_report(url, period=PERIOD, group_by=["feature"], now=NOW)
    data = json.loads(render(report, "json"))
    assert data["totals"]["current"]["calls"] == len(in_period(events))
    assert Decimal(data["totals"]["current"]["cost"]) == report.totals.current.cost
    assert data["tags"][0]["key"] == "feature"
    markdown = render(report, "md")
    assert "## Spend by feature" in markdown
    assert "_untagged_" in markdown
    assert "| openai | gpt-4o-mini |" in markdown
    custom = next(line for line in markdown.splitlines() if "ft:custom-model" in line)
    assert "unknown" in custom
    assert "$0.00" not in custom
    with pytest.raises(ValueError, match="unknown report format"):
        render(report, "pdf")


def test_cli_writes_each_format(
    sqlite_ledger: tuple[str, list[UsageEvent]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, events = sqlite_ledger
    # The fixture's events sit in March 2026; ask for that window explicitly.
    window = ["--from", "2026-03-05T12:00:00", "--to", "2026-03-15T12:00:00"]
    out = tmp_path / "r.html"
    code = main(["report", "--database-url", url, "-o", str(out), "--group-by", "feature", *window])
    assert code == 0
    assert f"({len(in_period(events)):,} calls)" in capsys.readouterr().out
    assert "Spend by feature" in out.read_text()
    assert main(["report", "--database-url", url, "--format", "json", "-o", "-", *window]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["current"]["calls"] == len(
        in_period(events)
    )
    assert main(["report", "--database-url", url, "--format", "md", *window, "-q"]) == 0
    assert Path("llm-cost-report.md").read_text().startswith("# LLM cost report")


def test_cli_explains_an_empty_period_and_a_missing_ledger(
    sqlite_ledger: tuple[str, list[UsageEvent]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = sqlite_ledger
    assert (
        main(["report", "--database-url", url, "--from", "2020-01-01", "--to", "2020-02-01"]) == 0
    )
    assert "no calls recorded in this period" in capsys.readouterr().err

    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(LedgerMissingError):
        build_report(empty)
    assert main(["report", "--database-url", empty]) == 2
    assert "has no ledger tables yet" in capsys.readouterr().err

    assert main(["report", "--database-url", url, "--since", "forever"]) == 2
    assert "cannot read the duration" in capsys.readouterr().err
    assert main(["report", "--database-url", url, "--since", "3d", "--from", "2026-01-01"]) == 2


def test_period_parsing() -> None:
    from llm_cost_tracker.report import resolve_period

    p = resolve_period(since="7d", start=None, end=None, now=NOW)
    assert p.end == NOW
    assert p.start == NOW - timedelta(days=7)
    assert p.previous.end == p.start
    p = resolve_period(since=None, start="2026-01-01", end="2026-01-03", now=NOW)
    assert p.days == ["2026-01-01", "2026-01-02"]
    p = resolve_period(since="12h", start=None, end=None, now=NOW)
    assert p.end - p.start == timedelta(hours=12)
