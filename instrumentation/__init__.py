"""Instrumentors: the openai and anthropic SDKs, and the httpx/httpx2 transports.

Built-ins register through the ``llm_cost_tracker_instrumentor`` entry-point
group, like third-party instrumentors; one that fails to load is logged,
counted and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib.metadata import entry_points

from .._stats import STATS
from ._base import BaseInstrumentor

_logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "llm_cost_tracker_instrumentor"


def available_instrumentors() -> list[str]:
    """Names registered under the ``llm_cost_tracker_instrumentor`` entry-point group."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_instrumentors(
    names: Sequence[str], disabled: Sequence[str] = ()
) -> list[BaseInstrumentor]:
    """Instantiate the instrumentors named (or every one for ``["all"]``), minus ``disabled``."""
    wanted = None if "all" in names else set(names)
    found: dict[str, BaseInstrumentor] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if (
            ep.name in disabled
            or (wanted is not None and ep.name not in wanted)
            or ep.name in found
        ):
            continue
        try:
            instrumentor = ep.load()()
        except Exception:
            STATS.failure(
                f"errors.instrumentor_load.{ep.name}",
                f"instrumentor {ep.name!r} failed to load; skipped",
            )
            continue
        found[ep.name] = instrumentor
    for name in sorted((wanted or set()) - set(found) - set(disabled)):
        _logger.warning(
            "llm-cost-tracker: no instrumentor named %r (available: %s)",
            name,
            ", ".join(available_instrumentors()),
        )
    return list(found.values())


__all__ = ["BaseInstrumentor", "available_instrumentors", "load_instrumentors"]
