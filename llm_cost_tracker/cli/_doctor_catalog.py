"""``doctor``'s check of the price catalog in force: where it comes from, how many models, how old, how many rates are unverified."""

from __future__ import annotations

from datetime import date
from typing import Any

from ._check import Check

CATALOG_STALE_DAYS = 90


def check_prices(config: Any, today: date) -> list[Check]:
    try:
        from ..pricing import default_catalog
        from ..pricing._catalog import build_catalog

        catalog = default_catalog()
        if config is not None and (config.prices_file or config.pricing_overrides):
            catalog = build_catalog(
                prices_file=config.prices_file, overrides=config.pricing_overrides, base=catalog
            )
    except Exception as error:
        return [Check("fail", "price catalog", f"cannot load prices: {error}")]
    info = catalog.info
    updated = info.updated_at
    detail = f"version {info.version} from {info.origin}, {len(catalog.entries)} models"
    checks = [_provenance(catalog)]
    if updated is None:
        return [Check("warn", "price catalog", detail + "; no update date"), *checks]
    age = (today - updated).days
    detail += f", updated {updated.isoformat()} ({age} days ago)"
    if age > CATALOG_STALE_DAYS:
        return [
            Check(
                "warn",
                "price catalog",
                detail,
                "upgrade llm-cost-tracker or load fresh prices: llm-cost-tracker prices sync --from FILE",
            ),
            *checks,
        ]
    return [Check("ok", "price catalog", detail), *checks]


def _provenance(catalog: Any) -> Check:
    """How many entries and rates no official pricing page confirms (``unverified`` in the catalog)."""
    entries = catalog.entries.values()
    whole = sum(1 for e in entries if e.unverified is not None)
    rates = sum(len(e.unverified_rates) for e in entries)
    verified = sum(1 for e in entries if e.verified is not None)
    detail = (
        f"{verified} of {len(catalog.entries)} models verified against the provider's page; "
        f"{whole} unverified models, {rates} unverified rates"
    )
    if whole or rates:
        # Information, not a fault: the rates may be right, but no official page backs them.
        return Check(
            "info",
            "price provenance",
            detail,
            "see which and why: llm-cost-tracker prices list / prices explain PROVIDER MODEL",
        )
    return Check("ok", "price provenance", detail)
