"""Parsing one catalog field at a time: rates, modes, tiers, periods, a price version, provenance.

Each parser validates one part of an entry and raises a ``ConfigurationError``
that names the origin, the entry and the field (``Where``); ``_catalog.py``
assembles entries and catalogs from them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from .._components import COMPONENTS
from .._errors import ConfigurationError
from ._entries import ModeSpec, Period, PriceVersion, Rates, Tier

PRICEABLE = frozenset(n for n, c in COMPONENTS.items() if c.kind in ("token", "service"))
"""The components a catalog may give a rate for."""


class Where:
    """Builds error messages naming the origin, the entry and the field."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def error(self, path: str, message: str) -> ConfigurationError:
        """Return the error for ``path`` (``models['x'].rates.input``), prefixed with the origin."""
        return ConfigurationError(f"{self.origin}: {path}: {message}")


def parse_rate(value: object, path: str, where: Where) -> Decimal:
    """A rate from JSON/YAML: a non-negative, finite number (int, float, decimal string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise where.error(path, f"must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise where.error(path, f"must be a finite number, got {value!r}")
    try:
        rate = Decimal(str(value).strip())
    except InvalidOperation:
        raise where.error(path, f"must be a number, got {value!r}") from None
    if not rate.is_finite():
        raise where.error(path, f"must be a finite number, got {value!r}")
    if rate < 0:
        raise where.error(path, f"must not be negative, got {value!r}")
    return rate


def parse_rates(value: object, path: str, where: Where) -> Rates:
    if not isinstance(value, Mapping):
        raise where.error(path, f"must be a mapping of component to rate, got {value!r}")
    rates: dict[str, Decimal] = {}
    for component, rate in value.items():
        if component not in PRICEABLE:
            known = ", ".join(sorted(PRICEABLE))
            raise where.error(f"{path}.{component}", f"unknown component; known: {known}")
        rates[str(component)] = parse_rate(rate, f"{path}.{component}", where)
    return MappingProxyType(rates)


def parse_modes(value: object, path: str, where: Where) -> Mapping[str, ModeSpec]:
    if not isinstance(value, Mapping):
        raise where.error(path, f"must be a mapping of mode to rates or multiplier, got {value!r}")
    modes: dict[str, ModeSpec] = {}
    for name, spec in value.items():
        mode = str(name).strip().lower()
        if mode == "standard":
            raise where.error(f"{path}.{name}", "'standard' is the base rates; list other modes")
        if isinstance(spec, Mapping):
            modes[mode] = parse_rates(spec, f"{path}.{name}", where)
        else:
            modes[mode] = parse_rate(spec, f"{path}.{name}", where)
    return MappingProxyType(modes)


def parse_when(value: object, path: str, where: Where) -> datetime:
    """An ISO date or datetime (naive means UTC) as an aware UTC datetime."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time(0))
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise where.error(
                path, f"must be an ISO date or datetime (2025-08-07), got {value!r}"
            ) from None
    else:
        raise where.error(path, f"must be an ISO date or datetime string, got {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def parse_int(value: object, path: str, where: Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise where.error(path, f"must be a non-negative integer, got {value!r}")
    return value


def check_keys(value: Mapping[str, Any], allowed: frozenset[str], path: str, where: Where) -> None:
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise where.error(
            f"{path}.{unknown[0]}", f"unknown field; expected one of {', '.join(sorted(allowed))}"
        )


TIER_KEYS = frozenset({"above_input_tokens", "rates", "modes"})


PERIOD_KEYS = frozenset({"name", "weekdays", "hours_utc", "rates"})


VERSION_KEYS = frozenset({"from", "rates", "modes", "tiers", "periods", "modifiers"})


PROVENANCE_KEYS = frozenset({"verified", "unverified", "unverified_rates"})


def parse_tier(value: object, path: str, where: Where) -> Tier:
    if not isinstance(value, Mapping):
        raise where.error(path, f"must be a mapping, got {value!r}")
    check_keys(value, TIER_KEYS, path, where)
    if "above_input_tokens" not in value:
        raise where.error(f"{path}.above_input_tokens", "is required")
    return Tier(
        above_input_tokens=parse_int(
            value["above_input_tokens"], f"{path}.above_input_tokens", where
        ),
        rates=parse_rates(value.get("rates", {}), f"{path}.rates", where),
        modes=parse_modes(value.get("modes", {}), f"{path}.modes", where),
    )


def parse_period(value: object, path: str, where: Where) -> Period:
    if not isinstance(value, Mapping):
        raise where.error(path, f"must be a mapping, got {value!r}")
    check_keys(value, PERIOD_KEYS, path, where)
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        raise where.error(f"{path}.name", f"must be a non-empty string, got {name!r}")
    days = value.get("weekdays", [0, 1, 2, 3, 4, 5, 6])
    if not isinstance(days, Sequence) or isinstance(days, str):
        raise where.error(f"{path}.weekdays", f"must be a list of 0 (Monday) to 6, got {days!r}")
    weekdays = []
    for i, day in enumerate(days):
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
            raise where.error(f"{path}.weekdays[{i}]", f"must be 0 (Monday) to 6, got {day!r}")
        weekdays.append(day)
    spans = value.get("hours_utc")
    if not isinstance(spans, Sequence) or isinstance(spans, str) or not spans:
        raise where.error(
            f"{path}.hours_utc", f"must be a list of [start, end) hours, got {spans!r}"
        )
    hours = []
    for i, span in enumerate(spans):
        ok = (
            isinstance(span, Sequence)
            and not isinstance(span, str)
            and len(span) == 2
            and all(isinstance(h, int) and not isinstance(h, bool) for h in span)
            and 0 <= span[0] < span[1] <= 24
        )
        if not ok:
            raise where.error(
                f"{path}.hours_utc[{i}]",
                f"must be [start, end) with 0 <= start < end <= 24, got {span!r}",
            )
        hours.append((int(span[0]), int(span[1])))
    return Period(
        name=name.strip(),
        weekdays=frozenset(weekdays),
        hours_utc=tuple(hours),
        rates=parse_rates(value.get("rates", {}), f"{path}.rates", where),
    )


def parse_list(value: object, path: str, where: Where) -> Sequence[Any]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise where.error(path, f"must be a list, got {value!r}")
    return value


def parse_version(value: Mapping[str, Any], path: str, where: Where) -> PriceVersion:
    check_keys(value, VERSION_KEYS, path, where)
    tiers = [
        parse_tier(t, f"{path}.tiers[{i}]", where)
        for i, t in enumerate(parse_list(value.get("tiers", []), f"{path}.tiers", where))
    ]
    periods = [
        parse_period(p, f"{path}.periods[{i}]", where)
        for i, p in enumerate(parse_list(value.get("periods", []), f"{path}.periods", where))
    ]
    modifiers_raw = value.get("modifiers", {})
    if not isinstance(modifiers_raw, Mapping):
        raise where.error(
            f"{path}.modifiers", f"must be a mapping of name to multiplier, got {modifiers_raw!r}"
        )
    modifiers = {
        str(k).strip().lower(): parse_rate(v, f"{path}.modifiers.{k}", where)
        for k, v in modifiers_raw.items()
    }
    return PriceVersion(
        effective_from=(
            None if value.get("from") is None else parse_when(value["from"], f"{path}.from", where)
        ),
        rates=parse_rates(value.get("rates", {}), f"{path}.rates", where),
        modes=parse_modes(value.get("modes", {}), f"{path}.modes", where),
        tiers=tuple(sorted(tiers, key=lambda t: t.above_input_tokens, reverse=True)),
        periods=tuple(periods),
        modifiers=MappingProxyType(modifiers),
    )


def parse_provenance(
    value: Mapping[str, Any], path: str, where: Where
) -> tuple[date | None, str | None, Mapping[str, str]]:
    """``verified`` (the ISO date the rates were read on the official page), ``unverified`` (why not), ``unverified_rates``."""
    verified: date | None = None
    if value.get("verified") is not None:
        verified = parse_when(value["verified"], f"{path}.verified", where).date()
    unverified = value.get("unverified")
    if unverified is not None and (not isinstance(unverified, str) or not unverified.strip()):
        raise where.error(f"{path}.unverified", f"must say why, as a string, got {unverified!r}")
    if verified is not None and unverified is not None:
        raise where.error(path, "give either 'verified' or 'unverified', not both")
    raw = value.get("unverified_rates", {})
    if not isinstance(raw, Mapping):
        raise where.error(
            f"{path}.unverified_rates", f"must be a mapping of rate to why, got {raw!r}"
        )
    rates: dict[str, str] = {}
    for name, why in raw.items():
        if not isinstance(why, str) or not why.strip():
            raise where.error(f"{path}.unverified_rates.{name}", f"must say why, got {why!r}")
        rates[str(name)] = why.strip()
    return verified, None if unverified is None else unverified.strip(), MappingProxyType(rates)
