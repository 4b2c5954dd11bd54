"""Drift between two catalogs, rate by rate: every mode and long-context tier, resolved to the rates a call pays.

``prices check --against FILE`` converts a public price dataset (LiteLLM's
``model_prices_and_context_window.json``, a genai-prices data file) with
``_sync`` and compares it here with the catalog in force. Both sides are
resolved through the one pricing path (``resolve_cached``), so a multiplier
(``batch: 0.5``) and the explicit rates a dataset lists (``input_cost_per_token_batches``)
compare as the rates a call would pay. Only the rates the dataset lists are
compared: a rate it lists that we price differently or not at all is a
difference; a rate only we list (tool fees, a mode it omits) is not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ._catalog import Catalog
from ._entries import PriceEntry
from ._match import find_entry
from ._price import resolve_cached
from ._sync import suspicious_move


@dataclass(frozen=True, slots=True)
class RateDifference:
    """One rate that differs: ``where`` is ``mode`` or ``mode, input_tokens>N`` (per the component's basis)."""

    key: str
    where: str
    component: str
    ours: Decimal | None
    theirs: Decimal | None

    def describe(self) -> str:
        """One line of ``prices check --against`` output: ours -> theirs."""
        ours = "-" if self.ours is None else _text(self.ours)
        theirs = "-" if self.theirs is None else _text(self.theirs)
        flag = suspicious_move(self.ours, self.theirs)
        return f"{self.key} [{self.where}] {self.component}: {ours} -> {theirs}" + (
            f"  [{flag}]" if flag else ""
        )


@dataclass(frozen=True, slots=True)
class Drift:
    """What a comparison found: the differences, and which entries only one side has."""

    differences: tuple[RateDifference, ...]
    compared: tuple[str, ...]  # our entry keys that the dataset also prices
    only_theirs: tuple[str, ...]  # dataset entries no entry of ours matches
    only_ours: tuple[str, ...]  # our entries (for the dataset's providers) it does not list


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _rates(
    catalog: Catalog, entry: PriceEntry, when: datetime, *, listed_only: bool = False
) -> dict[tuple[str, str], Decimal]:
    """(where, component) -> rate per the component's basis, for every mode and tier in force.

    ``listed_only``: in a long-context tier, only the components the tier lists
    (a dataset that omits one says nothing about it, though it would be priced at base).
    """
    found = entry.version_at(when)
    if found is None:
        return {}
    version = found[1]
    modes = {"standard", *version.modes, *(m for t in version.tiers for m in t.modes)}
    points: list[tuple[str, int, frozenset[str] | None]] = [("", 0, None)]
    for tier in version.tiers:
        listed = set(tier.rates)
        for spec in tier.modes.values():
            if not isinstance(spec, Decimal):
                listed |= set(spec)
        label = f", input_tokens>{tier.above_input_tokens}"
        points.append(
            (label, tier.above_input_tokens + 1, frozenset(listed) if listed_only else None)
        )
    out: dict[tuple[str, str], Decimal] = {}
    for mode in sorted(modes):
        for label, tokens, listed_components in points:
            resolved = resolve_cached(catalog, entry, when, mode, tokens)
            if resolved is None or resolved.reason:
                continue
            for component, detail in resolved.snapshot_rates.items():
                if listed_components is None or component in listed_components:
                    out[(mode + label, component)] = Decimal(detail["rate"])
    return out


def _pairs(ours: Catalog, theirs: Catalog) -> Iterator[tuple[PriceEntry, PriceEntry]]:
    """(our entry, their entry) for each dataset entry ours prices under the same provider."""
    seen: set[str] = set()
    exact = [(k, e) for k, e in sorted(theirs.entries.items()) if k in ours.entries]
    matched = [(k, e) for k, e in sorted(theirs.entries.items()) if k not in ours.entries]
    for key, entry in exact:
        seen.add(key)
        yield ours.entries[key], entry
    for _, entry in matched:
        match = find_entry(ours, entry.provider or "", entry.model)
        if match is None or match.entry.provider != entry.provider or match.entry.key in seen:
            continue
        seen.add(match.entry.key)  # a dated alias in the dataset: compared once, under our key
        yield match.entry, entry


def compare_rates(ours: Catalog, theirs: Catalog, when: datetime) -> Drift:
    """Every rate of every mode and tier that differs between ``ours`` and ``theirs`` at ``when``."""
    differences: list[RateDifference] = []
    compared: list[str] = []
    matched_theirs: set[str] = set()
    for mine, other in _pairs(ours, theirs):
        compared.append(mine.key)
        matched_theirs.add(other.key)
        ours_rates = _rates(ours, mine, when)
        # Every rate the dataset lists, in every mode and tier: ours differs, or we have none.
        # A rate only we list (a tool fee, a mode the dataset omits) is not a difference.
        for (where, component), theirs_rate in sorted(
            _rates(theirs, other, when, listed_only=True).items()
        ):
            mine_rate = ours_rates.get((where, component))
            if mine_rate != theirs_rate:
                differences.append(
                    RateDifference(mine.key, where, component, mine_rate, theirs_rate)
                )
    providers = {e.provider for e in theirs.entries.values()}
    only_theirs = sorted(k for k in theirs.entries if k not in matched_theirs)
    only_ours = sorted(
        k for k, e in ours.entries.items() if e.provider in providers and k not in set(compared)
    )
    return Drift(tuple(differences), tuple(compared), tuple(only_theirs), tuple(only_ours))


__all__ = ["Drift", "RateDifference", "compare_rates"]
