"""The pricing stage's fast path: everything that does not depend on the quantities, cached per component set.

A call to a known model, in a given mode, with a given set of token components
always gets the same entry, unit prices, units, line order and snapshot; only
the quantities change. ``quick_cost`` keeps those in a ``LinePlan`` per
(provider, model, mode, components), price version and long-context tier, so
pricing a call is a dictionary lookup, one multiplication per line and the
records. Whatever a plan does not cover (provider-reported costs, service
components, negative counts, time-of-day periods, a component without a rate)
returns None and takes the general path in ``_price``, which gives the same
result for what the plans cover (tests/test_pricing_fast.py).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from itertools import compress
from typing import Any

from .._components import INPUT_COMPONENTS
from .._events import Cost
from ._catalog import Catalog
from ._entries import PriceEntry, PriceVersion, Tier
from ._price import lookup, resolve_version
from ._records import make_priced_cost

_MAX_ROUTES = 10_000


@dataclass(frozen=True, slots=True)
class LinePlan:
    """The lines of a fully priced call with these components, less the quantities."""

    lines: tuple[tuple[str, str, Decimal], ...]  # (component, unit, unit price), in line order
    snapshot: dict[str, Any]  # copied per event; its nested tables are shared and never mutated
    tier_floor: int | None = None  # lowest long-context threshold: above it, look at the tiers
    inputs: tuple[bool, ...] = ()  # which lines count as input tokens for the tiers
    tiers: tuple[tuple[int, LinePlan | None], ...] = ()  # (threshold, plan), highest first


@dataclass(frozen=True, slots=True)
class Route:
    """The plans of one (provider, model, mode, components), one per price version.

    ``plans[bisect_right(starts, when)]`` is the plan in force at ``when``
    (``starts`` is empty when one version holds for all time); None where
    there is no plan.
    """

    starts: tuple[datetime, ...]
    plans: tuple[LinePlan | None, ...]


_NO_ROUTE = Route(starts=(), plans=(None,))


def _plan(
    catalog: Catalog,
    entry: PriceEntry,
    index: int,
    version: PriceVersion,
    mode: str,
    tier: Tier | None,
    components: tuple[str, ...],
) -> LinePlan | None:
    """The plan for ``components`` under these rates, or None when one of them has no rate."""
    resolved = resolve_version(catalog, entry, index, version, mode, tier, None)
    table = resolved.lines
    if not all(c in table for c in components):
        return None
    snapshot = dict(resolved.header)
    snapshot["rates"] = {c: table[c][2] for c in components}
    return LinePlan(
        lines=tuple((c, table[c][0], table[c][1]) for c in components), snapshot=snapshot
    )


def build_route(
    catalog: Catalog, provider: str, model: str, mode: str, components: tuple[str, ...]
) -> Route:
    """The route for a call with these (non-zero) components, from the catalog's resolved rates."""
    match = lookup(catalog, provider, model)
    if match is None:
        return _NO_ROUTE
    entry = match.entry
    plans: list[LinePlan | None] = []
    starts: list[datetime] = []
    for index, version in enumerate(entry.versions):
        if version.effective_from is None:
            if index:  # rejected when parsed; the general path says what is wrong
                return _NO_ROUTE
        else:
            if not index:
                plans.append(None)  # before the first version: no price
            starts.append(version.effective_from)
        if version.periods:
            plans.append(None)
            continue
        plan = _plan(catalog, entry, index, version, mode, None, components)
        if plan is not None and version.tiers:
            plan = replace(
                plan,
                tier_floor=version.tiers[-1].above_input_tokens,
                inputs=tuple(c in INPUT_COMPONENTS for c in components),
                tiers=tuple(
                    (
                        tier.above_input_tokens,
                        _plan(catalog, entry, index, version, mode, tier, components),
                    )
                    for tier in version.tiers
                ),
            )
        plans.append(plan)
    return Route(starts=tuple(starts), plans=tuple(plans))


def quick_cost(
    catalog: Catalog,
    provider: str,
    model: str,
    mode: str,
    tokens: Mapping[str, int],
    when: datetime,
) -> Cost | None:
    """The Cost of a call with only token ``tokens``, or None when the general path must price it."""
    counts = tuple(tokens.values())
    try:
        low = min(counts)
    except (TypeError, ValueError):  # no tokens, or a count that is not a number
        return None
    if low > 0:
        components = tuple(tokens)
    elif low == 0:  # zero counts make no line (e.g. "output": 0 of an embedding)
        components = tuple(c for c, n in tokens.items() if n)
        counts = tuple(n for n in counts if n)
        if not counts:
            return None
    else:
        return None
    key = (provider, model, mode, components)
    routes = catalog._routes
    route: Route | None = routes.get(key)
    if route is None:
        route = build_route(catalog, provider, model, mode, components)
        if len(routes) >= _MAX_ROUTES:
            routes.clear()
        routes[key] = route
    starts = route.starts
    if not starts:
        plan = route.plans[0]
    elif when.tzinfo is None:  # the general path takes it as UTC
        return None
    else:
        plan = route.plans[bisect_right(starts, when)]
    if plan is None:
        return None
    floor = plan.tier_floor
    # Every token counted is at least every input token: most calls skip the exact sum.
    if floor is not None and sum(counts) > floor:
        input_tokens = sum(compress(counts, plan.inputs))
        for threshold, tiered in plan.tiers:
            if input_tokens > threshold:  # the whole call at the tier's rates
                plan = tiered
                if plan is None:
                    return None
                break
    return make_priced_cost(plan.lines, counts, plan.snapshot.copy())


__all__ = ["LinePlan", "Route", "build_route", "quick_cost"]
