"""Turning usage into a Cost: the one pricing path, from the rates in force to one line item per component.

``price_usage`` prices every call, whoever asks: the bus stage, budget
estimates, ``reprice``. ``resolve_cached`` is the one place that chooses the
rates in force: the price version valid at the call's time, the long-context
tier for the call's input tokens, the time-of-day period, then the pricing mode
(``batch``/``flex``/``priority``: rates of their own or a multiplier of the
token rates) and its ``+modifier`` multipliers. What it resolves is memoized in
the catalog, so pricing a call is a few dictionary lookups, then one
multiplication and one ``LineItem`` per component. A component with no rate in
the result is an unknown line: never priced at another rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from .._components import COMPONENTS
from .._events import Cost, CostStatus, LineItem, TokenUsage
from ._catalog import Catalog
from ._entries import ModeSpec, Period, PriceEntry, PriceVersion, Tier
from ._match import Match, find_entry

_TOKEN = frozenset(n for n, c in COMPONENTS.items() if c.kind == "token")
_REPORTED = COMPONENTS["reported_cost"]
_ONE = Decimal(1)
_ZERO = Decimal(0)
_UNITS = {n: c.unit for n, c in COMPONENTS.items()}
# Memo bounds: far above any real catalog and workload; past them a memo starts over.
_MAX_MEMO = 50_000
_MAX_RATE_TABLES = 1_000

# OpenAI service_tier values and other spellings, mapped onto our base tiers.
_TIER_SPELLINGS = {
    "": "standard",
    "default": "standard",
    "auto": "standard",
    "scale": "standard",
    "on_demand": "standard",
    "standard_only": "standard",
}

# What the resolved rates depend on: (entry key, version index, mode, tier threshold, period index).
RatesKey = tuple[str, int, str, int | None, int | None]


def normalize_mode(mode: str | None) -> tuple[str, tuple[str, ...]]:
    """``"priority+us_only"`` -> ``("priority", ("us_only",))``; ``default``/``auto`` -> ``standard``."""
    parts = [p.strip().lower() for p in (mode or "").split("+")]
    base = _TIER_SPELLINGS.get(parts[0], parts[0])
    return base, tuple(p for p in parts[1:] if p)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The per-unit prices in force for one (entry, version, mode, tier, period), and their snapshot form."""

    unit_prices: Mapping[str, Decimal]
    snapshot_rates: dict[str, dict[str, Any]]
    lines: Mapping[str, tuple[str, Decimal]]  # component -> (unit, unit price)
    header: dict[str, Any]
    reason: str | None  # why there are no rates at all, if so
    # The snapshots' "rates" tables, one per set of priced components (see rates_for).
    _rate_tables: dict[tuple[str, ...], dict[str, dict[str, Any]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def rates_for(self, components: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """Return the snapshot's ``rates`` table for these priced components.

        Every call priced with these rates and components shares one table
        (plain dicts, serialized as JSON, never mutated): events in memory
        share it, and the SQLite exporter serializes it once per batch.
        """
        table = self._rate_tables.get(components)
        if table is None:
            if len(self._rate_tables) >= _MAX_RATE_TABLES:
                self._rate_tables.clear()
            table = {c: self.snapshot_rates[c] for c in components}
            self._rate_tables[components] = table
        return table


def _scale(rates: Mapping[str, Decimal], factor: Decimal) -> dict[str, Decimal]:
    return {c: (r * factor if c in _TOKEN else r) for c, r in rates.items()}


def _mode_rates(
    version: PriceVersion,
    tier: Tier | None,
    base_rates: Mapping[str, Decimal],
    base: str,
    modifiers: tuple[str, ...],
    full: str,
) -> tuple[dict[str, Decimal], str | None]:
    """Apply the mode to the base rates; return (rates, reason when none apply)."""
    sources: list[Mapping[str, ModeSpec]] = [tier.modes] if tier is not None else []
    sources.append(version.modes)

    def lookup(name: str) -> tuple[ModeSpec | None, bool]:
        for index, modes in enumerate(sources):
            spec = modes.get(name)
            if spec is not None:
                return spec, tier is not None and index == len(sources) - 1
        return None, False

    spec, untiered = lookup(full) if modifiers else (None, False)
    if spec is not None:
        modifiers = ()  # a composed mode ("standard+fast") priced as a whole
    elif base == "standard":
        spec = _ONE
    else:
        spec, untiered = lookup(base)
    if spec is None:
        return {}, f"no {base!r} rates for this model"
    if isinstance(spec, Decimal):
        rates = _scale(base_rates, spec)
    elif untiered:
        return {}, f"no {base!r} rates for the long-context tier"
    else:
        rates = dict(spec)
    for modifier in modifiers:
        factor = version.modifiers.get(modifier)
        if factor is None:
            return {}, f"no {modifier!r} rate for this model"
        rates = _scale(rates, factor)
    return rates, None


def _resolve(
    entry: PriceEntry, version: PriceVersion, mode: str, tier: Tier | None, period: Period | None
) -> Resolved:
    """Compute the rates of ``version`` (with its tier and period) in ``mode``: uncached."""
    base, modifiers = normalize_mode(mode)
    full = "+".join((base, *modifiers))
    rates: dict[str, Decimal] = dict(version.rates)
    if tier is not None:
        rates.update(tier.rates)
    if period is not None:
        rates.update(period.rates)
    rates, reason = _mode_rates(version, tier, rates, base, modifiers, full)
    if not rates and reason is None:
        reason = "no rates recorded for this period"
    unit_prices: dict[str, Decimal] = {}
    snapshot_rates: dict[str, dict[str, Any]] = {}
    for component, rate in rates.items():
        spec = COMPONENTS[component]
        unit_prices[component] = rate / spec.per
        snapshot_rates[component] = {"rate": _text(rate), "unit": spec.unit, "per": int(spec.per)}
    header: dict[str, Any] = {
        "entry": entry.key,
        "source": entry.source,
        "catalog_version": entry.catalog_version,
        "mode": full,
        "tier": "base" if tier is None else f"input_tokens>{tier.above_input_tokens}",
    }
    if version.effective_from is not None:
        header["effective_from"] = version.effective_from.isoformat()
    if period is not None:
        header["period"] = period.name
    return Resolved(
        unit_prices=MappingProxyType(unit_prices),
        snapshot_rates=snapshot_rates,
        lines=MappingProxyType({c: (_UNITS[c], p) for c, p in unit_prices.items()}),
        header=header,
        reason=reason,
    )


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _tier(version: PriceVersion, usage: TokenUsage | int) -> Tier | None:
    """Return the long-context tier a call with ``usage`` (or this many input tokens) is in, if any."""
    if isinstance(usage, int):
        input_tokens = usage
    # Every token counted is at least every input token: most calls skip the exact sum.
    elif sum(usage.tokens.values()) <= version.tiers[-1].above_input_tokens:
        return None
    else:
        input_tokens = usage.input_tokens
    for tier in version.tiers:  # highest threshold first
        if input_tokens > tier.above_input_tokens:
            return tier  # the whole call at the tier's rates
    return None


def _period_index(version: PriceVersion, when: datetime) -> int | None:
    """Return the index of the time-of-day period ``when`` falls in, if any."""
    for index, period in enumerate(version.periods):
        if period.contains(when):
            return index
    return None


def lookup(catalog: Catalog, provider: str, model: str) -> Match | None:
    """``find_entry``, memoized in the catalog (its entries never change)."""
    key = (provider, model)
    memo = catalog._matches
    try:
        return memo[key]
    except KeyError:
        pass
    found = find_entry(catalog, provider, model)
    if len(memo) >= _MAX_MEMO:
        memo.clear()
    memo[key] = found
    return found


def resolve_cached(
    catalog: Catalog, entry: PriceEntry, when: datetime, mode: str, usage: TokenUsage | int
) -> Resolved | None:
    """Return the rates for ``entry`` at ``when`` (aware) in ``mode`` for a call with ``usage``.

    ``usage`` may be the call's input tokens instead. This is where the price
    version, the long-context tier and the period are chosen; the rates they
    resolve to are memoized in the catalog. None when ``when`` precedes every
    price version.
    """
    found = entry.version_at(when)
    if found is None:
        return None
    index, version = found
    tier = _tier(version, usage) if version.tiers else None
    period_index = _period_index(version, when) if version.periods else None
    key: RatesKey = (
        entry.key,
        index,
        mode,
        None if tier is None else tier.above_input_tokens,
        period_index,
    )
    memo = catalog._rates
    resolved = memo.get(key)
    if resolved is None:
        period = None if period_index is None else version.periods[period_index]
        resolved = _resolve(entry, version, mode, tier, period)
        if len(memo) >= _MAX_MEMO:
            memo.clear()
        memo[key] = resolved
    return resolved


def _quantities(usage: TokenUsage) -> list[tuple[str, Decimal]]:
    """Return the call's non-zero components and quantities, tokens first, in the usage's order."""
    items = [(c, Decimal(n)) for c, n in usage.tokens.items() if n]
    if usage.services:
        items += [(c, q) for c, q in usage.services.items() if q and c != "reported_cost"]
    return items


def _unknown(quantities: list[tuple[str, Decimal]], snapshot: dict[str, Any]) -> Cost:
    items = tuple(LineItem(c, _UNITS.get(c, "unit"), q, None, None) for c, q in quantities)
    return Cost(total=None, status="unknown", line_items=items, snapshot=snapshot)


def price_usage(
    catalog: Catalog,
    provider: str,
    model: str,
    usage: TokenUsage | None,
    mode: str,
    when: datetime,
) -> Cost:
    """Price one call made at ``when`` (naive means UTC).

    An unknown model, usage, price version or rate gives status ``unknown``
    (or ``partial``), never a zero cost.
    """
    if usage is None:
        snapshot = {"catalog_version": catalog.version, "reason": "usage unknown", "mode": mode}
        return Cost(total=None, status="unknown", snapshot=snapshot)
    if when.tzinfo is None:  # events carry aware UTC times; a naive one is taken as UTC
        when = when.replace(tzinfo=timezone.utc)
    match = lookup(catalog, provider, model)
    reported = usage.reported_cost
    if reported is None and usage.services:
        reported = usage.services.get("reported_cost")
    if reported is not None:
        return _reported(catalog, match, usage, reported, mode, when)
    if match is None:
        snapshot = {
            "catalog_version": catalog.version,
            "reason": "no price for this model",
            "mode": mode,
        }
        return _unknown(_quantities(usage), snapshot)
    return _priced(catalog, match.entry, usage, mode, when)


def _priced(
    catalog: Catalog, entry: PriceEntry, usage: TokenUsage, mode: str, when: datetime
) -> Cost:
    """Price ``usage`` with ``entry``'s rates in force: one line per non-zero component."""
    quantities = _quantities(usage)
    resolved = resolve_cached(catalog, entry, when, mode, usage)
    if resolved is None:
        missing = {
            "entry": entry.key,
            "source": entry.source,
            "catalog_version": entry.catalog_version,
            "reason": "no price valid at the call's time",
            "mode": mode,
        }
        return _unknown(quantities, missing)
    table = resolved.lines
    items = []
    total = _ZERO
    priced: list[str] = []
    unpriced: list[str] = []
    for component, quantity in quantities:
        line = table.get(component) if quantity > 0 else None
        if line is None:
            items.append(LineItem(component, _UNITS.get(component, "unit"), quantity, None, None))
            unpriced.append(component)
            continue
        unit, unit_price = line
        cost = quantity * unit_price
        total += cost
        items.append(LineItem(component, unit, quantity, unit_price, cost))
        priced.append(component)
    snapshot = dict(resolved.header)
    snapshot["rates"] = resolved.rates_for(tuple(priced))
    status: CostStatus
    if not unpriced:
        status = "priced" if (priced or table) else "unknown"
    elif priced:
        status = "partial"
        snapshot["unpriced"] = unpriced
    else:
        status = "unknown"
    if status == "unknown":
        snapshot["reason"] = resolved.reason or "no rate for these components"
    return Cost(
        total=None if status == "unknown" else total,
        status=status,
        line_items=tuple(items),
        snapshot=snapshot,
    )


def _reported(
    catalog: Catalog,
    match: Match | None,
    usage: TokenUsage,
    reported: Decimal,
    mode: str,
    when: datetime,
) -> Cost:
    """The provider's own figure is the cost; the list price, when known, is kept beside it."""
    snapshot: dict[str, Any] = {
        "source": "provider_reported",
        "catalog_version": catalog.version,
        "mode": mode,
    }
    if match is not None:
        listed = _priced(catalog, match.entry, usage, mode, when)
        snapshot["entry"] = match.entry.key
        if listed.status == "priced" and listed.total is not None:
            snapshot["list_price_total"] = _text(listed.total)
    item = LineItem("reported_cost", _REPORTED.unit, reported, _ONE, reported)
    return Cost(total=reported, status="priced", line_items=(item,), snapshot=snapshot)


__all__ = [
    "RatesKey",
    "Resolved",
    "lookup",
    "normalize_mode",
    "price_usage",
    "resolve_cached",
]
