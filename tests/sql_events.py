"""A deterministic, varied stream of priced events for the SQL exporter tests and benchmarks.

Covers what the tables must carry faithfully: priced, partial and unpriced calls,
unknown usage, service components, cache reads and writes, reasoning, errors,
streams, trace ids, unicode tags, and times spread over several UTC days.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from llm_cost_tracker._events import Cost, LineItem, TokenUsage, UsageEvent

MODELS = [
    ("openai", "gpt-4o-mini", "chat", Decimal("0.00000015"), Decimal("0.0000006")),
    ("openai", "gpt-5", "responses", Decimal("0.00000125"), Decimal("0.00001")),
    ("anthropic", "claude-sonnet-4-5", "messages", Decimal("0.000003"), Decimal("0.000015")),
    ("google", "gemini-2.5-flash", "generate_content", Decimal("0.0000003"), Decimal("0.0000025")),
]
FEATURES = ["chat", "summarize", "search", "extract"]
TENANTS = ["acme", "globex", "initech", "umbrella-корп"]
START = datetime(2026, 11, 1, 23, 30, tzinfo=timezone.utc)


def _line(component: str, unit: str, quantity: int, price: Decimal | None) -> LineItem:
    q = Decimal(quantity)
    return LineItem(component, unit, q, price, None if price is None else q * price)


def make_event(i: int, rng: random.Random, *, start: datetime = START) -> UsageEvent:
    provider, model, operation, p_in, p_out = MODELS[i % len(MODELS)]
    occurred_at = start + timedelta(minutes=37 * i, microseconds=rng.randrange(1_000_000))
    tags = {
        "feature": FEATURES[i % len(FEATURES)],
        "user_id": str(1000 + i % 7),
        "tenant": TENANTS[i % len(TENANTS)],
    }
    trace = (uuid.UUID(int=rng.getrandbits(128)).hex, f"{rng.getrandbits(64):016x}")
    kind = i % 10
    if kind == 9:  # the provider said nothing about usage
        return UsageEvent(
            provider=provider,
            model=model,
            operation=operation,
            usage=None,
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            occurred_at=occurred_at,
            latency_ms=None,
            usage_source="unknown",
            status="error",
            error_type="APITimeoutError",
            tags=tags,
        )
    n_in = rng.randrange(10, 20_000)
    n_out = rng.randrange(1, 4_000)
    cached = rng.randrange(0, n_in) if kind in (1, 4) else 0
    written = rng.randrange(0, 3_000) if kind == 2 else 0
    tokens = {"input": n_in, "output": n_out}
    if cached:
        tokens["cache_read"] = cached
    if written:
        tokens["cache_write_5m"] = written
    services = {"web_search": Decimal(2)} if kind == 3 else {}
    usage = TokenUsage(
        tokens=tokens,
        services=services,
        reasoning_tokens=n_out // 3 if kind == 5 else 0,
    )
    items = [_line("input", "token", n_in, p_in), _line("output", "token", n_out, p_out)]
    if cached:
        items.append(_line("cache_read", "token", cached, p_in / 10))
    if written:
        items.append(_line("cache_write_5m", "token", written, p_in * Decimal("1.25")))
    status = "priced"
    if services:
        # No rate for web search in this catalog: a partial cost.
        items.append(LineItem("web_search", "request", Decimal(2), None, None))
        status = "partial"
    total = sum((li.cost for li in items if li.cost is not None), Decimal(0))
    cost = Cost(
        total=total,
        status=status,  # type: ignore[arg-type]
        line_items=tuple(items),
        snapshot={
            "catalog": "2026-11-01",
            "rates": {li.component: format(li.unit_price, "f") for li in items if li.unit_price},
        },
    )
    if kind == 7:  # a model the catalog does not know: usage without a price
        cost = Cost(total=None, status="unknown")
    return UsageEvent(
        provider=provider,
        model=model,
        operation=operation,
        usage=usage,
        id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        occurred_at=occurred_at,
        latency_ms=round(rng.uniform(50, 9000), 3),
        pricing_mode="batch" if kind == 6 else "standard",
        stream=kind in (4, 8),
        usage_source="stream" if kind in (4, 8) else "response",
        provider_response_id=f"resp_{i:06d}",
        request_model=model if kind != 1 else f"{model}-latest",
        trace_id=trace[0] if kind % 2 == 0 else None,
        span_id=trace[1] if kind % 2 == 0 else None,
        tags=tags,
        cost=cost,
    )


def make_events(n: int, *, seed: int = 7, start: datetime = START) -> list[UsageEvent]:
    rng = random.Random(seed)
    return [make_event(i, rng, start=start) for i in range(n)]
