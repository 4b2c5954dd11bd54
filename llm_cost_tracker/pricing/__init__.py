"""Pricing: the dated price catalog, the price stage, and exact per-call costs with frozen snapshots.

``PriceStage(prices_file=..., pricing_overrides=..., azure_deployments=...)`` is
the bus stage that attaches a ``Cost`` (line items, total, status, snapshot of
the rates used) to each event, through ``_price.price_usage``, the one pricing
path. Prices come from ``pricing_overrides`` > ``prices_file`` > the bundled
catalog (package data, parsed once on first use). See ``docs/pricing.md``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from .._events import Cost, TokenUsage, UsageEvent
from .._stats import STATS
from ._catalog import Catalog, build_catalog, bundled_catalog, load_prices_file, parse_catalog
from ._entries import PriceEntry
from ._match import Match, find_entry, resolve_deployment
from ._price import normalize_mode, price_usage

_logger = logging.getLogger(__name__)

_default: Catalog | None = None  # set by substitute_catalog(); None means the bundled catalog


def default_catalog() -> Catalog:
    """Return the catalog in force without a prices file or overrides: the bundled one, or its substitute."""
    catalog = _default
    return catalog if catalog is not None else bundled_catalog()


@contextmanager
def substitute_catalog(catalog: Catalog) -> Iterator[Catalog]:
    """Use ``catalog`` instead of the bundled one inside the block (for tests)."""
    global _default
    previous, _default = _default, catalog
    try:
        yield catalog
    finally:
        _default = previous


def with_cost(event: UsageEvent, cost: Cost) -> UsageEvent:
    """Return ``dataclasses.replace(event, cost=cost)``, three times faster.

    ``replace`` looks up the fields and passes them by name on every call; this
    runs once per event, so it passes them in the constructor's order
    (tests/test_pricing_fast.py checks that each field lands in its place).
    """
    return UsageEvent(
        event.provider,
        event.model,
        event.operation,
        event.usage,
        event.id,
        event.occurred_at,
        event.latency_ms,
        event.pricing_mode,
        event.stream,
        event.usage_source,
        event.status,
        event.error_type,
        event.provider_response_id,
        event.request_model,
        event.trace_id,
        event.span_id,
        event.tags,
        cost,
    )


class PriceStage:
    """The bus stage that prices events: ``stage(event) -> event`` with ``cost`` set.

    An event that already carries a snapshot (priced earlier, e.g. on the
    caller's thread for a budget check) passes through untouched. Unknown
    models or usage give ``Cost(total=None, status="unknown")``, counted in
    ``unpriced.<provider>.<model>.<mode>`` and logged once per model.
    """

    def __init__(
        self,
        *,
        catalog: Catalog | None = None,
        prices_file: str | os.PathLike[str] | None = None,
        pricing_overrides: Mapping[str, Any] | None = None,
        azure_deployments: Mapping[str, str] | None = None,
    ) -> None:
        """Price with ``catalog`` (default: the bundled one, or the substituted one at call time).

        ``prices_file`` and ``pricing_overrides`` are layered over it, here, so a
        malformed file or override raises ``ConfigurationError`` now.
        ``azure_deployments`` maps Azure deployment names to models.
        """
        if prices_file or pricing_overrides:
            catalog = build_catalog(
                prices_file=prices_file,
                overrides=pricing_overrides,
                base=catalog if catalog is not None else default_catalog(),
            )
        self._catalog = catalog
        self._deployments = azure_deployments
        self._logged: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @property
    def catalog(self) -> Catalog:
        """The catalog this stage prices with now."""
        catalog = self._catalog
        return catalog if catalog is not None else default_catalog()

    def __call__(self, event: UsageEvent) -> UsageEvent:
        if event.cost.snapshot:
            return event
        try:
            cost = self.cost(event)
        except Exception:
            # Malformed usage from a buggy instrumentor or caller: keep the event, cost unknown.
            STATS.failure("errors.pricing", "pricing an event failed; its cost is unknown")
            cost = Cost(total=None, status="unknown", snapshot={"reason": "pricing failed"})
        return with_cost(event, cost)

    def cost(self, event: UsageEvent) -> Cost:
        """Return the Cost of ``event`` (ignoring any cost it already has)."""
        model = event.model
        if self._deployments:
            model = resolve_deployment(
                event.provider, model, event.request_model, self._deployments
            )
        cost = price_usage(
            self.catalog,
            event.provider,
            model,
            event.usage,
            event.pricing_mode,
            event.occurred_at,
        )
        if cost.status != "priced" and event.usage is not None:
            self._count_unpriced(event.provider, model, event.pricing_mode, cost)
        return cost

    def estimate(
        self,
        provider: str,
        model: str,
        usage: TokenUsage,
        pricing_mode: str = "standard",
        *,
        at: datetime | None = None,
    ) -> Decimal | None:
        """Return the cost of ``usage`` now (or ``at``): None when unknown, the priced part when partial."""
        model = resolve_deployment(provider, model, None, self._deployments)
        cost = price_usage(
            self.catalog, provider, model, usage, pricing_mode, at or datetime.now(timezone.utc)
        )
        return cost.total

    def _count_unpriced(self, provider: str, model: str, mode: str, cost: Cost) -> None:
        STATS.incr(f"unpriced.{provider}.{model}.{mode}")
        key = (provider, model)
        if key in self._logged:
            return
        with self._lock:
            if key in self._logged or len(self._logged) >= 10_000:
                return
            self._logged.add(key)
        reason = cost.snapshot.get("reason") or "some components have no rate"
        _logger.warning(
            "llm-cost-tracker: cost of %s model %r (mode %s) is %s: %s; "
            "add it with pricing_overrides or a prices file (see docs/pricing.md)",
            provider,
            model,
            mode,
            cost.status,
            reason,
        )


def price_event(event: UsageEvent, catalog: Catalog | None = None) -> UsageEvent:
    """Return ``event`` priced with ``catalog`` (default: the bundled catalog), replacing any cost it had."""
    stage = PriceStage(catalog=catalog)
    return with_cost(event, stage.cost(event))


def load_catalog(
    *, prices_file: str | None = None, pricing_overrides: Mapping[str, Any] | None = None
) -> Catalog:
    """The catalog that ``configure(prices_file=..., pricing_overrides=...)`` would use."""
    return build_catalog(
        prices_file=prices_file, overrides=pricing_overrides, base=default_catalog()
    )


__all__ = [
    "Catalog",
    "Match",
    "PriceEntry",
    "PriceStage",
    "bundled_catalog",
    "default_catalog",
    "find_entry",
    "load_catalog",
    "load_prices_file",
    "normalize_mode",
    "parse_catalog",
    "price_event",
    "substitute_catalog",
    "with_cost",
]
