"""Turning usage into a Cost: resolve the rates in force, one line item per component, a frozen snapshot.

Rates resolve in this order: the price version valid at the call's time, the
long-context tier for the call's input tokens, the time-of-day period, then
the pricing mode (``batch``/``flex``/``priority``: rates of their own or a
multiplier of the token rates) and its ``+modifier`` multipliers. A component
with no rate in the result is an unknown line: never priced at another rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from .._components import COMPONENTS
from .._events import Cost, CostStatus, LineItem, TokenUsage
from ._catalog import Catalog
from ._entries import ModeSpec, PriceEntry, PriceVersion, Tier
from ._match import Match, find_entry
from ._records import make_cost, make_line

_TOKEN = frozenset(n for n, c in COMPONENTS.items() if c.kind == "token")
_REPORTED = COMPONENTS["reported_cost"]
_ONE = Decimal(1)
_ZERO = Decimal(0)
_UNITS = {n: c.unit for n, c in COMPONENTS.items()}

# OpenAI service_tier values and other spellings, mapped onto our base tiers.
_TIER_SPELLINGS = {
    "": "standard",
    "default": "standard",
    "auto": "standard",
    "scale": "standard",
    "on_demand": "standard",
    "standard_only": "standard",
}


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
    lines: Mapping[
        str, tuple[str, Decimal, dict[str, Any]]
    ]  # component -> (unit, unit price, snapshot)
    header: dict[str, Any]
    reason: str | None  # why there are no rates at all, if so


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


def resolve(
    entry: PriceEntry,
    index: int,
    version: PriceVersion,
    mode: str,
    tier: Tier | None,
    period_name: str | None,
) -> Resolved:
    base, modifiers = normalize_mode(mode)
    full = "+".join((base, *modifiers))
    rates: dict[str, Decimal] = dict(version.rates)
    if tier is not None:
        rates.update(tier.rates)
    if period_name is not None:
        for period in version.periods:
            if period.name == period_name:
                rates.update(period.rates)
                break
    rates, reason = _mode_rates(version, tier, rates, base, modifiers, full)
    if not rates and reason is None:
        reason = "no rates recorded for this period"
    unit_prices: dict[str, Decimal] = {}
    snapshot_rates: dict[str, dict[str, Any]] = {}
    for component, rate in rates.items():
        spec = COMPONENTS[component]
        unit_prices[component] = rate / spec.per
        # Plain dicts: snapshots are serialized as JSON. Shared between events, never mutated.
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
    if period_name is not None:
        header["period"] = period_name
    return Resolved(
        unit_prices=MappingProxyType(unit_prices),
        snapshot_rates=snapshot_rates,
        lines=MappingProxyType(
            {c: (_UNITS[c], p, snapshot_rates[c]) for c, p in unit_prices.items()}
        ),
        header=header,
        reason=reason,
    )


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _lines(usage: TokenUsage) -> list[tuple[str, Decimal]]:
    items = [(c, Decimal(n)) for c, n in usage.tokens.items() if n]
    items.extend((c, q) for c, q in usage.services.items() if q and c != "reported_cost")
    return items


@dataclass(frozen=True, slots=True)
class Pricing:
    """What ``price_usage`` found: the cost, plus the match and rates behind it (for explain)."""

    cost: Cost
    match: Match | None
    resolved: Resolved | None


def lookup(catalog: Catalog, provider: str, model: str) -> Match | None:
    """``find_entry`` with a per-catalog cache (the catalog is immutable)."""
    cache = catalog._cache
    key = ("match", provider, model)
    try:
        found: Match | None = cache[key]
        return found
    except KeyError:
        pass
    found = find_entry(catalog, provider, model)
    if len(cache) > 50_000:
        cache.clear()
    cache[key] = found
    return found


def resolve_cached(
    catalog: Catalog, entry: PriceEntry, when: datetime, mode: str, usage: TokenUsage | int
) -> Resolved | None:
    """The rates for ``entry`` at ``when`` in ``mode`` for a call with ``usage`` (or its input tokens).

    None when ``when`` precedes every price version.
    """
    versions = entry.versions
    if len(versions) == 1 and versions[0].effective_from is None:
        index, version = 0, versions[0]
    else:
        found = entry.version_at(when)
        if found is None:
            return None
        index, version = found
    tier = None
    # Every token counted is at least every input token: most calls skip the exact sum.
    if version.tiers and (
        isinstance(usage, int) or sum(usage.tokens.values()) > version.tiers[-1].above_input_tokens
    ):
        input_tokens = usage if isinstance(usage, int) else usage.input_tokens
        for candidate in version.tiers:
            if input_tokens > candidate.above_input_tokens:
                tier = candidate
                break
    period_name = None
    for period in version.periods:
        if period.contains(when):
            period_name = period.name
            break
    return resolve_version(catalog, entry, index, version, mode, tier, period_name)


def resolve_version(
    catalog: Catalog,
    entry: PriceEntry,
    index: int,
    version: PriceVersion,
    mode: str,
    tier: Tier | None,
    period_name: str | None,
) -> Resolved:
    """The rates of a known ``version`` (and tier, period) of ``entry``, through the catalog's cache."""
    key = (entry.key, index, mode, None if tier is None else tier.above_input_tokens, period_name)
    cache = catalog._cache
    resolved: Resolved | None = cache.get(key)
    if resolved is None:
        resolved = resolve(entry, index, version, mode, tier, period_name)
        if len(cache) > 50_000:
            cache.clear()
        cache[key] = resolved
    return resolved


def _unknown(lines: list[tuple[str, Decimal]], snapshot: dict[str, Any]) -> Cost:
    items = tuple(LineItem(c, _UNITS.get(c, "unit"), q, None, None) for c, q in lines)
    return Cost(total=None, status="unknown", line_items=items, snapshot=snapshot)


def price_usage(
    catalog: Catalog,
    provider: str,
    model: str,
    usage: TokenUsage | None,
    mode: str,
    when: datetime,
) -> Pricing:
    """Price one call. Never raises for odd usage; unknown is reported as status ``unknown``."""
    if usage is None:
        snapshot = {"catalog_version": catalog.version, "reason": "usage unknown", "mode": mode}
        return Pricing(Cost(total=None, status="unknown", snapshot=snapshot), None, None)
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
        return Pricing(_unknown(_lines(usage), snapshot), None, None)
    return price_with_entry(catalog, match, usage, mode, when)


def price_with_entry(
    catalog: Catalog, match: Match, usage: TokenUsage, mode: str, when: datetime
) -> Pricing:
    """Price ``usage`` with the entry ``match`` found: one line per non-zero component."""
    resolved = resolve_cached(catalog, match.entry, when, mode, usage)
    if resolved is None:
        missing = {
            "entry": match.entry.key,
            "source": match.entry.source,
            "catalog_version": match.entry.catalog_version,
            "reason": "no price valid at the call's time",
            "mode": mode,
        }
        return Pricing(_unknown(_lines(usage), missing), match, None)
    table = resolved.lines
    items = []
    total = _ZERO
    used: dict[str, dict[str, Any]] = {}
    unpriced: list[str] = []
    for component, count in usage.tokens.items():
        if not count:
            continue
        quantity = Decimal(count)
        line = table.get(component) if count > 0 else None
        if line is None:
            items.append(make_line(component, _UNITS.get(component, "unit"), quantity, None, None))
            unpriced.append(component)
            continue
        unit, unit_price, rate = line
        cost = quantity * unit_price
        total += cost
        items.append(make_line(component, unit, quantity, unit_price, cost))
        used[component] = rate
    for component, quantity in usage.services.items():
        if not quantity or component == "reported_cost":
            continue
        line = table.get(component) if quantity > 0 else None
        if line is None:
            items.append(make_line(component, _UNITS.get(component, "unit"), quantity, None, None))
            unpriced.append(component)
            continue
        unit, unit_price, rate = line
        cost = quantity * unit_price
        total += cost
        items.append(make_line(component, unit, quantity, unit_price, cost))
        used[component] = rate
    snapshot = dict(resolved.header)
    snapshot["rates"] = used
    status: CostStatus
    if not unpriced:
        status = "priced" if (used or table) else "unknown"
    elif used:
        status = "partial"
        snapshot["unpriced"] = unpriced
    else:
        status = "unknown"
    if status == "unknown":
        snapshot["reason"] = resolved.reason or "no rate for these components"
    result = make_cost(None if status == "unknown" else total, status, tuple(items), snapshot)
    return Pricing(result, match, resolved)


def _reported(
    catalog: Catalog,
    match: Match | None,
    usage: TokenUsage,
    reported: Decimal,
    mode: str,
    when: datetime,
) -> Pricing:
    """The provider's own figure is the cost; the list price, when known, is kept beside it."""
    snapshot: dict[str, Any] = {
        "source": "provider_reported",
        "catalog_version": catalog.version,
        "mode": mode,
    }
    if match is not None:
        listed = price_with_entry(catalog, match, usage, mode, when)
        snapshot["entry"] = match.entry.key
        if listed.cost.status == "priced" and listed.cost.total is not None:
            snapshot["list_price_total"] = _text(listed.cost.total)
    item = LineItem("reported_cost", _REPORTED.unit, reported, _ONE, reported)
    return Pricing(
        Cost(total=reported, status="priced", line_items=(item,), snapshot=snapshot), match, None
    )


__all__ = [
    "Pricing",
    "Resolved",
    "lookup",
    "normalize_mode",
    "price_usage",
    "price_with_entry",
    "resolve_cached",
    "resolve_version",
]
