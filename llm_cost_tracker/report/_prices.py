"""Prices used and cache savings, read from the pricing snapshots and line items stored with the calls.

Each priced model shows the rates frozen with its latest call in the period;
cache savings are cache-read tokens x (input rate - cache-read rate), from those
rates when they held all period, else from every call's own line items.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from ._model import CacheSavings, ModelRow, Period, PriceRow
from ._queries import Queries
from ._spend import money

_Sample = tuple[str | None, Any, Any]  # a priced call's id, the first and the last snapshot


def price_models(
    q: Queries, period: Period, models: list[ModelRow]
) -> tuple[list[ModelRow], list[PriceRow], list[CacheSavings]]:
    """The prices used and the cache savings; ``models`` again, each with its distinct snapshots."""
    samples = {
        (m.provider, m.model): q.snapshots(period, m.provider, m.model)
        for m in models
        if m.spend.calls > m.spend.unpriced_calls
    }
    items = _sample_items(q, samples)
    prices: list[PriceRow] = []
    savings: list[CacheSavings] = []
    snapshots: dict[tuple[str, str], tuple[str, ...]] = {}
    for m in models:
        key = (m.provider, m.model)
        if key not in samples:
            if m.cache_read_tokens:
                savings.append(
                    CacheSavings(m.provider, m.model, Decimal(m.cache_read_tokens), None)
                )
            continue
        sample_id, first, last = samples[key]
        found = _price_rows(m.provider, m.model, first, last, items.get(sample_id or "", []))
        prices.extend(found.rows)
        snapshots[key] = tuple(
            dict.fromkeys(json.dumps(_snapshot(s), sort_keys=True) for s in (first, last) if s)
        )
        if m.cache_read_tokens:
            saved = _cache_saved(q, period, m, found)
            savings.append(CacheSavings(m.provider, m.model, Decimal(m.cache_read_tokens), saved))
    savings.sort(key=lambda c: (-(c.saved or Decimal(0)), -c.cache_read_tokens))
    models = [replace(m, snapshots=snapshots.get((m.provider, m.model), ())) for m in models]
    return models, prices, savings


def _sample_items(
    q: Queries, samples: Mapping[tuple[str, str], _Sample]
) -> dict[str, list[tuple[str, str, Decimal]]]:
    """The priced line items of each sample call: (component, unit, rate) by call id."""
    items: dict[str, list[tuple[str, str, Decimal]]] = {}
    for call_id, component, unit, rate in q.line_items(
        [s[0] for s in samples.values() if s[0] is not None]
    ):
        if rate is not None:
            items.setdefault(call_id, []).append((component, unit, money(rate)))
    return items


def _cache_saved(q: Queries, period: Period, model: ModelRow, found: _Prices) -> Decimal | None:
    """What one model's cache reads saved; None when some of its calls have no rates for it."""
    full, cached = found.rates.get("input"), found.rates.get("cache_read")
    if found.constant and full is not None and cached is not None:
        saved: Decimal | None = model.cache_read_tokens * (full - cached)
        return saved
    return q.cache_reads(period, model.provider, model.model)


def _snapshot(value: Any) -> Mapping[str, Any]:
    if not value:
        return {}
    try:
        data = json.loads(value) if isinstance(value, (str, bytes)) else value
    except ValueError:
        return {}
    return data if isinstance(data, Mapping) else {}


def _snapshot_source(data: Mapping[str, Any]) -> str:
    """Where a stored snapshot's rates came from: catalog source, version, entry, mode, tier."""
    parts = []
    for key in ("source", "catalog_version", "entry", "mode", "tier", "effective_from", "period"):
        value = data.get(key)
        if isinstance(value, (str, int)) and str(value):
            parts.append(f"{key} {value}")
    return ", ".join(parts)


def _snapshot_rates(data: Mapping[str, Any]) -> list[tuple[str, str, Decimal]]:
    """(component, unit, price per single unit) from a snapshot's ``rates`` table."""
    rates = data.get("rates")
    if not isinstance(rates, Mapping):
        return []
    found = []
    for component, spec in rates.items():
        if not isinstance(spec, Mapping) or "rate" not in spec:
            continue
        try:
            per = Decimal(str(spec.get("per", 1)))
            rate = Decimal(str(spec["rate"])) / per
        except (ArithmeticError, ValueError):
            continue
        found.append((str(component), str(spec.get("unit", "token")), rate))
    return found


def _per_million(rate: Decimal, unit: str) -> str | None:
    if unit != "token":
        return None
    return format((rate * 1_000_000).normalize(), "f")


@dataclass(frozen=True)
class _Prices:
    """One model's rates as shown in the report, and whether they held for the whole period."""

    rows: list[PriceRow]
    constant: bool  # the first and last snapshot of the period carry the same rates
    rates: dict[str, Decimal]


def _price_rows(
    provider: str, model: str, first: Any, last: Any, items: Sequence[tuple[str, str, Decimal]]
) -> _Prices:
    """The rates of one model's latest snapshot (else its sample call's line items), as report rows."""
    latest, earliest = _snapshot(last), _snapshot(first)
    rates = _snapshot_rates(latest)
    constant = bool(rates) and rates == _snapshot_rates(earliest)
    source = _snapshot_source(latest)
    if rates and not constant:
        source = (source + "; " if source else "") + "prices changed during the period"
    used = rates or list(items)
    rows = [
        PriceRow(
            provider,
            model,
            component,
            unit,
            format(value.normalize(), "f"),
            _per_million(value, unit),
            source,
        )
        for component, unit, value in sorted(used)
    ]
    return _Prices(rows, constant, {component: value for component, _, value in used})
