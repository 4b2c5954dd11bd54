"""The composition root: the exporters, stages and instrumentors ``configure()`` hands to a runtime.

The only module of the core that names the parts around it: the SQL exporter
a database URL names, extra exporters and the instrumentors by entry point
(``llm_cost_tracker_exporter``, ``llm_cost_tracker_instrumentor``, the built-in
ones included), and pricing and budgets, built here from the settings and run
by the bus as plain stages.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from ._bus import CallableExporter, Exporter, Stage
from ._config import Config
from ._errors import ConfigurationError
from ._stats import STATS
from ._tags import resolve_tags

if TYPE_CHECKING:
    from ._api import Runtime
    from .budgets._guard import BudgetGuard

EXPORTER_GROUP = "llm_cost_tracker_exporter"


def load_entry_point(group: str, name: str) -> Any:
    """Load the object registered as ``name`` in entry-point ``group``; raise LookupError if absent."""
    for ep in entry_points(group=group):
        if ep.name == name:
            return ep.load()
    raise LookupError(f"no {group!r} entry point named {name!r}")


def build_exporters(config: Config) -> list[Exporter]:
    """Create the database exporter for ``database_url`` plus every extra exporter."""
    created: list[Exporter] = []
    if config.database_url is not None:
        from .exporters import exporter_for_url

        created.append(exporter_for_url(config.database_url, spool_dir=config.spool_dir))
    for spec in config.exporters:
        if isinstance(spec, str):
            try:
                factory = load_entry_point(EXPORTER_GROUP, spec)
            except LookupError:
                raise ConfigurationError(
                    f"unknown exporter {spec!r}: no {EXPORTER_GROUP!r} entry point has that name"
                ) from None
            created.append(factory())
        elif isinstance(spec, Exporter):
            created.append(spec)
        elif callable(spec):
            created.append(CallableExporter(spec))
        else:
            raise ConfigurationError(
                f"exporters: {spec!r} is neither an entry-point name, an exporter nor a callable"
            )
    return created


def build_stages(config: Config) -> tuple[list[Stage], BudgetGuard | None]:
    """The stage chain, in order: pricing, then budget checks; and the budget guard, if any.

    Built here so that a malformed prices file, override or budget fails ``configure()``.
    """
    from .pricing import PriceStage

    price = PriceStage(
        prices_file=config.prices_file,
        pricing_overrides=config.pricing_overrides,
        azure_deployments=config.azure_deployments,
    )
    stages: list[Stage] = [price]
    if config.budgets is None:
        return stages, None
    from .budgets._setup import build_guard

    guard = build_guard(config.budgets, database_url=config.database_url, price=price)
    return stages + guard.stages(), guard


def install_guard(runtime: Runtime, guard: BudgetGuard) -> None:
    """Hook ``guard`` into ``runtime`` and start reading shared totals.

    "raise" and "block" check in the caller's thread, so the call is priced
    there; "notify" only needs the worker-side stage (``BudgetGuard.stages()``)
    and adds nothing to the caller's thread.
    """
    runtime.budget_guard = guard
    # The call's tags, without looking the runtime up again on every preflight.
    guard.activate(functools.partial(resolve_tags, runtime.defaults))
    mode = guard.budgets.on_exceed
    runtime.set_hooks(
        before_call=guard.before_call if mode == "block" else None,
        after_call=guard.after_call if mode != "notify" else None,
        price_event=guard.prepare if mode != "notify" else None,
    )


def build_instrumentors(config: Config) -> list[Any]:
    """Turn on the instrumentors ``config`` names; return those that instrumented."""
    if config.instrument is None:
        return []
    from .instrumentation import load_instrumentors

    active = []
    for instrumentor in load_instrumentors(config.instrument, config.disabled_instrumentations):
        try:
            instrumentor.instrument(config=config)
        except Exception:
            STATS.failure(
                f"errors.instrumentor.{type(instrumentor).__name__}",
                "instrumenting failed; that library is not tracked",
            )
            continue
        active.append(instrumentor)
    return active
