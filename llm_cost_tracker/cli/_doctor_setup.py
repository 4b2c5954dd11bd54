"""``doctor``'s checks of this process's setup: the resolved configuration, the instrumentors, lost events."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ._check import Check


@contextmanager
def _caught_warnings() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def check_configuration(url: str) -> tuple[list[Check], Any]:
    from .. import ledger
    from .._config import is_disabled, resolve

    checks: list[Check] = []
    with _caught_warnings() as caught:
        try:
            config = resolve(database_url=url)
        except Exception as error:
            return [Check("fail", "configuration", str(error))], None
    for warning in caught:
        checks.append(Check("warn", "configuration", str(warning.message)))
    if is_disabled():
        checks.append(
            Check("warn", "kill switch", "LLM_COST_TRACKER_DISABLED is set: nothing is recorded")
        )
    tags = config.default_tags if isinstance(config.default_tags, dict) else {}
    instrument = "none" if config.instrument is None else ",".join(config.instrument)
    if config.disabled_instrumentations:
        instrument += f" (minus {','.join(config.disabled_instrumentations)})"
    budgets = config.budgets
    budget_text = "none"
    if budgets is not None:
        parts = [
            f"{name} ${getattr(budgets, name)}"
            for name in ("monthly", "daily", "per_call")
            if getattr(budgets, name, None) is not None
        ]
        budget_text = ", ".join(parts) + f" (on exceed: {getattr(budgets, 'on_exceed', 'notify')})"
    checks.append(
        Check(
            "ok",
            "configuration",
            f"database {ledger.redact_url(url)}; instrument {instrument}; "
            f"exporters {','.join(str(e) for e in config.exporters) or 'none'}; "
            f"default tags {','.join(f'{k}={v}' for k, v in tags.items()) or 'none'}; budgets {budget_text}",
        )
    )
    return checks, config


def check_instrumentors(config: Any) -> list[Check]:
    from importlib.metadata import PackageNotFoundError, entry_points, version

    from ..instrumentation import ENTRY_POINT_GROUP
    from ..instrumentation._base import missing_dependency

    checks: list[Check] = []
    wanted = None if config is None or config.instrument is None else set(config.instrument)
    disabled = set() if config is None else set(config.disabled_instrumentations)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        name = f"instrumentor {ep.name}"
        try:
            instrumentor = ep.load()()
            requirements = list(instrumentor.instrumentation_dependencies())
        except Exception as error:
            checks.append(Check("fail", name, f"cannot load {ep.value}: {error}"))
            continue
        libraries = [r.split(">")[0].split("<")[0].split("=")[0].strip() for r in requirements]
        installed = []
        for library in libraries:
            with suppress(PackageNotFoundError):
                installed.append(f"{library} {version(library)}")
        supported = "; ".join(requirements) or "any version"
        on = (
            wanted is not None
            and ("all" in wanted or ep.name in wanted)
            and ep.name not in disabled
        )
        problem = missing_dependency(requirements)
        if problem is None:
            if instrumentor.is_instrumented:
                state = "instrumented in this process"
            elif on:
                state = "will be instrumented"
            else:
                state = "installed, but left off by the configuration"
            what = ", ".join(installed) or "no library requirement"
            checks.append(Check("ok", name, f"{what}: {state} (supports {supported})"))
        elif installed and "not installed" not in problem:
            checks.append(
                Check(
                    "warn",
                    name,
                    f"{problem}: calls through it are not tracked",
                    f"supported: {supported}",
                )
            )
        else:
            extra = ep.name if ep.name in ("openai", "anthropic", "httpx", "bedrock") else "all"
            checks.append(
                Check(
                    "info",
                    name,
                    f"{problem}; nothing to instrument",
                    f"pip install 'llm-cost-tracker[{extra}]' if you use it",
                )
            )
    return checks


def check_process_counters() -> list[Check]:
    """Events this process dropped or failed to export (meaningful when doctor runs inside an app)."""
    from .._stats import STATS

    lost = {
        k: v
        for k, v in STATS.snapshot().items()
        if k.startswith(("dropped.", "export_failed.")) and v
    }
    if not lost:
        return []
    listed = ", ".join(f"{k} {v:,}" for k, v in sorted(lost.items()))
    return [
        Check(
            "warn",
            "dropped events",
            f"{sum(lost.values()):,} events lost in this process: {listed}",
            "see docs/performance.md for queue sizing and docs/exporters.md for delivery",
        )
    ]
