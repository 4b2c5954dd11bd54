"""The price catalog: validated, dated price entries, loaded from the bundled JSON, a prices file or code.

A catalog is a mapping of entry keys (``openai/gpt-5`` or a bare ``gpt-5``) to
entries; each entry has one or more price versions, each valid from a date,
with rates per component, pricing-mode rates, long-context tiers, time-of-day
periods and multiplier modifiers. Everything here is parsed once and immutable.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from importlib import resources
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError
from ._entries import (
    BUNDLED,
    OVERRIDE,
    PRICES_FILE,
    PriceEntry,
)
from ._fields import (
    PRICEABLE,
    PROVENANCE_KEYS,
    VERSION_KEYS,
    Where,
    check_keys,
    parse_list,
    parse_provenance,
    parse_version,
    parse_when,
)

if TYPE_CHECKING:
    from ._match import Match
    from ._price import RatesKey, Resolved


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


_ENTRY_KEYS = (
    frozenset({"name", "aliases", "source", "sources", "notes", "prices"})
    | VERSION_KEYS
    | PROVENANCE_KEYS
)


def parse_entry(
    key: str, value: object, *, where: Where, source: str, catalog_version: str
) -> PriceEntry:
    """Validate one catalog entry; raise ConfigurationError naming the entry and the field."""
    path = f"models[{key!r}]"
    if not isinstance(key, str) or not key.strip():
        raise where.error(path, "entry keys must be non-empty strings")
    if not isinstance(value, Mapping):
        raise where.error(path, f"must be a mapping, got {value!r}")
    if value and all(k in PRICEABLE for k in value):
        value = {"rates": value}  # shorthand: {"input": 2.5, "output": 10}
    check_keys(value, _ENTRY_KEYS, path, where)
    verified, unverified, unverified_rates = parse_provenance(value, path, where)
    if "prices" in value:
        if any(k in value for k in VERSION_KEYS):
            raise where.error(
                path, "give either 'prices' (a list of versions) or one version's fields, not both"
            )
        raw_versions = parse_list(value["prices"], f"{path}.prices", where)
        if not raw_versions:
            raise where.error(f"{path}.prices", "must list at least one price version")
        versions = []
        for i, raw in enumerate(raw_versions):
            if not isinstance(raw, Mapping):
                raise where.error(f"{path}.prices[{i}]", f"must be a mapping, got {raw!r}")
            versions.append(parse_version(raw, f"{path}.prices[{i}]", where))
    else:
        version_fields = {k: v for k, v in value.items() if k in VERSION_KEYS}
        versions = [parse_version(version_fields, path, where)]
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
    for i, alias in enumerate(parse_list(aliases_raw, f"{path}.aliases", where)):
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


def parse_catalog(data: object, *, origin: str, source: str) -> Catalog:
    """Validate a whole catalog document (the bundled JSON's shape)."""
    where = Where(origin)
    if not isinstance(data, Mapping):
        raise where.error("(top level)", "must be a mapping with a 'models' mapping")
    allowed = frozenset({"schema", "version", "updated_at", "currency", "notes", "models"})
    check_keys(data, allowed, "(top level)", where)
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
