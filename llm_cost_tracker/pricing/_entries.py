"""One model's prices as data: dated versions with their rates, modes, tiers, periods and modifiers.

Entries are immutable and validated when a catalog is parsed (``_catalog``);
pricing reads them (``_price``) and never changes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from types import MappingProxyType

Rates = Mapping[str, Decimal]
ModeSpec = Decimal | Rates  # a multiplier of the token rates, or rates of its own

BUNDLED = "bundled"
PRICES_FILE = "prices_file"
OVERRIDE = "override"


@dataclass(frozen=True, slots=True)
class Tier:
    """Rates that replace the base rates for the whole call when its input tokens exceed a threshold."""

    above_input_tokens: int
    rates: Rates
    modes: Mapping[str, ModeSpec]


@dataclass(frozen=True, slots=True)
class Period:
    """Rates that apply at certain UTC hours on certain weekdays (0 = Monday), e.g. peak hours."""

    name: str
    weekdays: frozenset[int]
    hours_utc: tuple[tuple[int, int], ...]

    rates: Rates

    def contains(self, when: datetime) -> bool:
        """Whether ``when`` (aware) falls in one of the period's hours on one of its weekdays."""
        when = when.astimezone(timezone.utc)
        if when.weekday() not in self.weekdays:
            return False
        return any(start <= when.hour < end for start, end in self.hours_utc)


@dataclass(frozen=True, slots=True)
class PriceVersion:
    """The prices of one entry from ``effective_from`` until the next version (None: since always)."""

    effective_from: datetime | None
    rates: Rates
    modes: Mapping[str, ModeSpec]
    tiers: tuple[Tier, ...]  # highest threshold first
    periods: tuple[Period, ...]
    modifiers: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """One model's prices, where they came from, and the names it answers to."""

    key: str
    provider: str | None
    model: str
    aliases: tuple[str, ...]
    versions: tuple[PriceVersion, ...]
    source: str  # bundled | prices_file | override
    catalog_version: str
    source_url: str | None = None
    name: str | None = None
    notes: str | None = None
    # Provenance: the day the rates were checked against ``source_url`` (the
    # provider's own page), or why no official page confirms them; and the
    # rates (a component, or a mode/tier name) an official page does not confirm.
    verified: date | None = None
    unverified: str | None = None
    unverified_rates: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def unconfirmed(self) -> int:
        """How many of this entry's rates no official page confirms (the whole entry counts as one)."""
        return (1 if self.unverified is not None else 0) + len(self.unverified_rates)

    def provenance(self) -> str:
        """One line for ``prices list``/``explain``: verified on a date, or unverified and why."""
        if self.unverified is not None:
            text = f"unverified: {self.unverified}"
        elif self.verified is not None:
            text = f"verified {self.verified.isoformat()}"
        else:
            text = "no provenance recorded"
        if self.unverified_rates:
            parts = "; ".join(f"{k}: {v}" for k, v in sorted(self.unverified_rates.items()))
            text += f" (unverified rates: {parts})"
        return text

    def version_at(self, when: datetime) -> tuple[int, PriceVersion] | None:
        """The version valid at ``when`` and its index, or None when ``when`` precedes every version."""
        found: tuple[int, PriceVersion] | None = None
        for index, version in enumerate(self.versions):
            if version.effective_from is None or version.effective_from <= when:
                found = (index, version)
            else:
                break
        return found


__all__ = [
    "BUNDLED",
    "OVERRIDE",
    "PRICES_FILE",
    "ModeSpec",
    "Period",
    "PriceEntry",
    "PriceVersion",
    "Rates",
    "Tier",
]
