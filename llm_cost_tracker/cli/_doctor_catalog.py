"""``doctor``'s check of the price catalog in force: where it comes from, how many models, how old."""

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
    if updated is None:
        return [Check("warn", "price catalog", detail + "; no update date")]
    age = (today - updated).days
    detail += f", updated {updated.isoformat()} ({age} days ago)"
    if age > CATALOG_STALE_DAYS:
        return [
            Check(
                "warn",
                "price catalog",
                detail,
                "upgrade llm-cost-tracker or load fresh prices: llm-cost-tracker prices sync --from FILE",
            )
        ]
    return [Check("ok", "price catalog", detail)]
