"""The price catalog: validated, dated price entries, loaded from the bundled JSON, a prices file or code.

A catalog is a mapping of entry keys (``openai/gpt-5`` or a bare ``gpt-5``) to
entries; each entry has one or more price versions, each valid from a date,
with rates per component, pricing-mode rates, long-context tiers, time-of-day
periods and multiplier modifiers. Everything here is parsed once and immutable.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .._components import COMPONENTS
from .._errors import ConfigurationError
from ._entries import (
    BUNDLED,
    OVERRIDE,
    PRICES_FILE,
    ModeSpec,
    Period,
    PriceEntry,
    PriceVersion,
    Rates,
    Tier,
)

if TYPE_CHECKING:
    from ._match import Match
    from ._price import RatesKey, Resolved

_PRICEABLE = frozenset(n for n, c in COMPONENTS.items() if c.kind in ("token", "service"))


@dataclass(frozen=True, slots=True)
class CatalogInfo:
    """Where a catalog came from: its version label, its date and its origin (file, "bundled catalog")."""

    version: str
    updated_at: date | None
    origin: str


@dataclass
class Catalog:
    """Price entries by key, plus an index of their aliases; lookups go through ``pricing._match``.

    The entries never change once parsed, so pricing memoizes what it derives
    from them here, per catalog: the entry each (provider, model) matches and
    the rates each (entry, version, mode, tier, period) resolves to (``_price``).
    """

    entries: dict[str, PriceEntry]
    info: CatalogInfo
    _aliases: dict[str, str] = field(default_factory=dict)
    _matches: dict[tuple[str, str], Match | None] = field(default_factory=dict)
    _rates: dict[RatesKey, Resolved] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, entry in self.entries.items():
            prefix = f"{entry.provider}/" if entry.provider else ""
            for alias in entry.aliases:
                self._aliases.setdefault(prefix + alias, key)

    @property
    def version(self) -> str:
        """The version label recorded in snapshots (of the top layer)."""
        return self.info.version

    def get(self, key: str) -> PriceEntry | None:
        """The entry stored under ``key`` or one of its aliases (exact, lowercase)."""
        entry = self.entries.get(key)
        if entry is not None:
            return entry
        target = self._aliases.get(key)
        return None if target is None else self.entries[target]

    def layered(self, *upper: Catalog) -> Catalog:
        """A catalog where entries of each later catalog replace entries with the same key."""
        entries = dict(self.entries)
        for layer in upper:
            entries.update(layer.entries)
        top = upper[-1].info if upper else self.info
        return Catalog(entries=entries, info=top)


# -- parsing ------------------------------------------------------------------


class _Where:
    """Builds error messages naming the origin, the entry and the field."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def error(self, path: str, message: str) -> ConfigurationError:
        """Return the error for ``path`` (``models['x'].rates.input``), prefixed with the origin."""
        return ConfigurationError(f"{self.origin}: {path}: {message}")


def parse_rate(value: object, path: str, where: _Where) -> Decimal:
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


def _parse_rates(value: object, path: str, where: _Where) -> Rates:
    if not isinstance(value, Mapping):
        raise where.error(path, f"must be a mapping of component to rate, got {value!r}")
    rates: dict[str, Decimal] = {}
    for component, rate in value.items():
        if component not in _PRICEABLE:
            known = ", ".join(sorted(_PRICEABLE))
            raise where.error(f"{path}.{component}", f"unknown component; known: {known}")
        rates[str(component)] = parse_rate(rate, f"{path}.{component}", where)
    return MappingProxyType(rates)


def _parse_modes(value: object, path: str, where: _Where) -> Mapping[str, ModeSpec]:
    if not isinstance(value, Mapping):
        raise where.error(path, f"must be a mapping of mode to rates or multiplier, got {value!r}")
    modes: dict[str, ModeSpec] = {}
    for name, spec in value.items():
        mode = str(name).strip().lower()
        if mode == "standard":
            raise where.error(f"{path}.{name}", "'standard' is the base rates; list other modes")
        if isinstance(spec, Mapping):
            modes[mode] = _parse_rates(spec, f"{path}.{name}", where)
        else:
            modes[mode] = parse_rate(spec, f"{path}.{name}", where)
    return MappingProxyType(modes)


def parse_when(value: object, path: str, where: _Where) -> datetime:
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


def _parse_int(value: object, path: str, where: _Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise where.error(path, f"must be a non-negative integer, got {value!r}")
    return value


def _check_keys(
    value: Mapping[str, Any], allowed: frozenset[str], path: str, where: _Where
) -> None:
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise where.error(
            f"{path}.{unknown[0]}", f"unknown field; expected one of {', '.join(sorted(allowed))}"
        )


_TIER_KEYS = frozenset({"above_input_tokens", "rates", "modes"})
_PERIOD_KEYS = frozenset({"name", "weekdays", "hours_utc", "rates"})
_VERSION_KEYS = frozenset({"from", "rates", "modes", "tiers", "periods", "modifiers"})
_PROVENANCE_KEYS = frozenset({"verified", "unverified", "unverified_rates"})
_ENTRY_KEYS = (
    frozenset({"name", "aliases", "source", "sources", "notes", "prices"})
    | _VERSION_KEYS
    | _PROVENANCE_KEYS
)


def _parse_tier(value: object, path: str, where: _Where) -> Tier:
    if not isinstance(value, Mapping):
        raise where.error(path, f"must be a mapping, got {value!r}")
    _check_keys(value, _TIER_KEYS, path, where)
    if "above_input_tokens" not in value:
        raise where.error(f"{path}.above_input_tokens", "is required")
    return Tier(
        above_input_tokens=_parse_int(
            value["above_input_tokens"], f"{path}.above_input_tokens", where
        ),
        rates=_parse_rates(value.get("rates", {}), f"{path}.rates", where),
        modes=_parse_modes(value.get("modes", {}), f"{path}.modes", where),
    )


def _parse_period(value: object, path: str, where: _Where) -> Period:
    if not isinstance(value, Mapping):
        raise where.error(path, f"must be a mapping, got {value!r}")
    _check_keys(value, _PERIOD_KEYS, path, where)
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
        rates=_parse_rates(value.get("rates", {}), f"{path}.rates", where),
    )


def _parse_list(value: object, path: str, where: _Where) -> Sequence[Any]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise where.error(path, f"must be a list, got {value!r}")
    return value


def _parse_version(value: Mapping[str, Any], path: str, where: _Where) -> PriceVersion:
    _check_keys(value, _VERSION_KEYS, path, where)
    tiers = [
        _parse_tier(t, f"{path}.tiers[{i}]", where)
        for i, t in enumerate(_parse_list(value.get("tiers", []), f"{path}.tiers", where))
    ]
    periods = [
        _parse_period(p, f"{path}.periods[{i}]", where)
        for i, p in enumerate(_parse_list(value.get("periods", []), f"{path}.periods", where))
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
        rates=_parse_rates(value.get("rates", {}), f"{path}.rates", where),
        modes=_parse_modes(value.get("modes", {}), f"{path}.modes", where),
        tiers=tuple(sorted(tiers, key=lambda t: t.above_input_tokens, reverse=True)),
        periods=tuple(periods),
        modifiers=MappingProxyType(modifiers),
    )


def parse_entry(
    key: str, value: object, *, where: _Where, source: str, catalog_version: str
) -> PriceEntry:
    """Validate one catalog entry; raise ConfigurationError naming the entry and the field."""
    path = f"models[{key!r}]"
    if not isinstance(key, str) or not key.strip():
        raise where.error(path, "entry keys must be non-empty strings")
    if not isinstance(value, Mapping):
        raise where.error(path, f"must be a mapping, got {value!r}")
    if value and all(k in _PRICEABLE for k in value):
        value = {"rates": value}  # shorthand: {"input": 2.5, "output": 10}
    _check_keys(value, _ENTRY_KEYS, path, where)
    verified, unverified, unverified_rates = _parse_provenance(value, path, where)
    if "prices" in value:
        if any(k in value for k in _VERSION_KEYS):
            raise where.error(
                path, "give either 'prices' (a list of versions) or one version's fields, not both"
            )
        raw_versions = _parse_list(value["prices"], f"{path}.prices", where)
        if not raw_versions:
            raise where.error(f"{path}.prices", "must list at least one price version")
        versions = []
        for i, raw in enumerate(raw_versions):
            if not isinstance(raw, Mapping):
                raise where.error(f"{path}.prices[{i}]", f"must be a mapping, got {raw!r}")
            versions.append(_parse_version(raw, f"{path}.prices[{i}]", where))
    else:
        version_fields = {k: v for k, v in value.items() if k in _VERSION_KEYS}
        versions = [_parse_version(version_fields, path, where)]
    for i, version in enumerate(versions):
        if i and version.effective_from is None:
            raise where.error(
                f"{path}.prices[{i}].from", "is required on every version but the first"
            )
        previous = versions[i - 1].effective_from if i else None
        if (
            i
            and previous is not None
            and version.effective_from is not None
            and version.effective_from <= previous
        ):
            raise where.error(
                f"{path}.prices[{i}].from", "versions must be in increasing date order"
            )
    aliases_raw: object = value.get("aliases", [])
    aliases = []
    for i, alias in enumerate(_parse_list(aliases_raw, f"{path}.aliases", where)):
        if not isinstance(alias, str) or not alias.strip():
            raise where.error(f"{path}.aliases[{i}]", f"must be a non-empty string, got {alias!r}")
        aliases.append(alias.strip().lower())
    normalized = key.strip().lower()
    provider, sep, model = normalized.partition("/")
    texts: dict[str, str | None] = {}
    for name in ("name", "source", "notes"):
        text = value.get(name)
        if text is not None and not isinstance(text, str):
            raise where.error(f"{path}.{name}", f"must be a string, got {text!r}")
        texts[name] = text
    return PriceEntry(
        key=normalized,
        provider=provider if sep else None,
        model=model if sep else normalized,
        aliases=tuple(aliases),
        versions=tuple(versions),
        source=source,
        catalog_version=catalog_version,
        source_url=texts["source"],
        name=texts["name"],
        notes=texts["notes"],
        verified=verified,
        unverified=unverified,
        unverified_rates=unverified_rates,
    )


def _parse_provenance(
    value: Mapping[str, Any], path: str, where: _Where
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


def parse_catalog(data: object, *, origin: str, source: str) -> Catalog:
    """Validate a whole catalog document (the bundled JSON's shape)."""
    where = _Where(origin)
    if not isinstance(data, Mapping):
        raise where.error("(top level)", "must be a mapping with a 'models' mapping")
    allowed = frozenset({"schema", "version", "updated_at", "currency", "notes", "models"})
    _check_keys(data, allowed, "(top level)", where)
    currency = data.get("currency", "USD")
    if currency != "USD":
        raise where.error("currency", f"only USD prices are supported, got {currency!r}")
    models = data.get("models")
    if not isinstance(models, Mapping):
        raise where.error("models", f"must be a mapping of entry key to prices, got {models!r}")
    updated: date | None = None
    if data.get("updated_at") is not None:
        updated = parse_when(data["updated_at"], "updated_at", where).date()
    version = data.get("version")
    if version is not None and not isinstance(version, (str, int, float)):
        raise where.error("version", f"must be a string, got {version!r}")
    label = str(version) if version is not None else (updated.isoformat() if updated else source)
    entries: dict[str, PriceEntry] = {}
    for key, value in models.items():
        entry = parse_entry(key, value, where=where, source=source, catalog_version=label)
        if entry.key in entries:
            raise where.error(f"models[{key!r}]", "duplicate entry key (keys are case-insensitive)")
        entries[entry.key] = entry
    return Catalog(
        entries=entries, info=CatalogInfo(version=label, updated_at=updated, origin=origin)
    )


def parse_overrides(overrides: Mapping[str, Any]) -> Catalog:
    """``pricing_overrides``: a ``{"openai/gpt-4o": {...}}`` mapping, or a whole catalog document."""
    if not isinstance(overrides, Mapping):
        raise ConfigurationError(
            f"pricing_overrides: must be a mapping of model key to prices, got {overrides!r}"
        )
    document = overrides if "models" in overrides else {"models": overrides}
    return parse_catalog(document, origin="pricing_overrides", source=OVERRIDE)


def read_document(path: str | os.PathLike[str]) -> Any:
    """Read a JSON or YAML (``.yaml``/``.yml``, needs PyYAML) document; errors name the file."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise ConfigurationError(
            f"{name}: cannot read prices file: {error.strerror or error}"
        ) from None
    if name.lower().endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ConfigurationError(
                f"{name}: reading a YAML prices file needs PyYAML: "
                "pip install 'llm-cost-tracker[yaml]' (or use a .json file)"
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigurationError(f"{name}: not valid YAML: {error}") from None
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as error:
        raise ConfigurationError(
            f"{name}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None


def load_prices_file(path: str | os.PathLike[str]) -> Catalog:
    """Load and validate a user prices file (same shape as the bundled catalog)."""
    name = os.fspath(path)
    return parse_catalog(read_document(name), origin=name, source=PRICES_FILE)


_bundled: Catalog | None = None
_bundled_lock = threading.Lock()


def bundled_catalog() -> Catalog:
    """The catalog shipped with the package, parsed on first use and then shared."""
    global _bundled
    catalog = _bundled
    if catalog is None:
        with _bundled_lock:
            if _bundled is None:
                text = resources.files(__package__).joinpath("catalog.json").read_text("utf-8")
                _bundled = parse_catalog(json.loads(text), origin="bundled catalog", source=BUNDLED)
            catalog = _bundled
    return catalog


def build_catalog(
    *,
    prices_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    base: Catalog | None = None,
) -> Catalog:
    """The catalog in force: ``overrides`` > ``prices_file`` > ``base`` (default: bundled)."""
    layers = []
    if prices_file is not None:
        layers.append(load_prices_file(prices_file))
    if overrides:
        layers.append(parse_overrides(overrides))
    catalog = base if base is not None else bundled_catalog()
    return catalog.layered(*layers) if layers else catalog


__all__ = [
    "Catalog",
    "CatalogInfo",
    "build_catalog",
    "bundled_catalog",
    "load_prices_file",
    "parse_catalog",
    "parse_overrides",
    "read_document",
]
