"""Configuration: the one place that reads the environment, and ``configure()``.

Every setting resolves as argument > ``LLM_COST_TRACKER_*`` variable > default.
An invalid variable warns, naming the variable and the default it falls back to.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from . import environment_variables as env
from ._bus import Exporter
from ._errors import ConfigurationError
from ._tags import DefaultTags

_logger = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///llm_costs.db"
DEFAULT_QUEUE_SIZE = 100_000
DEFAULT_QUEUE_MAX_BYTES = 64 * 1024 * 1024
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

ExporterSpec = str | Exporter | Callable[[Any], object]


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def _warn_invalid(name: str, value: str, default: object, why: str) -> None:
    warnings.warn(
        f"{name}={value!r} is invalid ({why}); using the default {default!r}",
        RuntimeWarning,
        stacklevel=4,
    )


def is_disabled() -> bool:
    """Return whether ``LLM_COST_TRACKER_DISABLED`` turns the library off."""
    value = _env(env.LLM_COST_TRACKER_DISABLED)
    return value is not None and value.lower() in _TRUE


def parse_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_key_values(value: str, *, name: str) -> dict[str, str]:
    """Parse ``k=v,k=v``; raise ConfigurationError naming ``name`` on a malformed pair."""
    result: dict[str, str] = {}
    for part in parse_list(value):
        key, sep, val = part.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(
                f"{name}: expected key=value pairs separated by commas, got {part!r}"
            )
        result[key.strip()] = val.strip()
    return result


def resolve_decimal(arg: object, name: str) -> Decimal | None:
    if arg is not None:
        return Decimal(str(arg))
    raw = _env(name)
    if raw is None:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        _warn_invalid(name, raw, None, "not a decimal number")
        return None
    if not value.is_finite() or value < 0:
        _warn_invalid(name, raw, None, "must be a finite, non-negative number")
        return None
    return value


def _resolve_int(arg: int | None, name: str, default: int) -> int:
    if arg is not None:
        return arg
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        _warn_invalid(name, raw, default, "not an integer")
        return default
    if value < 1:
        _warn_invalid(name, raw, default, "must be at least 1")
        return default
    return value


@dataclass(frozen=True)
class Config:
    """The resolved configuration in force (read it with ``llm_cost_tracker.get_config()``)."""

    database_url: str | None
    exporters: tuple[ExporterSpec, ...]
    instrument: (
        tuple[str, ...] | None
    )  # None: patch nothing; ("all",): every installed instrumentor
    disabled_instrumentations: tuple[str, ...]
    default_tags: DefaultTags
    prices_file: str | None
    pricing_overrides: Mapping[str, Any] | None
    azure_deployments: Mapping[str, str] | None
    budgets: Any
    queue_size: int
    queue_max_bytes: int
    batch_size: int
    export_interval: float
    synchronous: bool
    stream_usage: bool
    spool_dir: str | None
    extra: Mapping[str, Any] = field(default_factory=dict)


UNSET: Any = object()
"""``database_url`` / ``instrument`` not given: the environment or the default decides."""


def resolve(
    *,
    database_url: str | None = UNSET,
    exporters: Sequence[ExporterSpec] | None = None,
    instrument: str | Sequence[str] | None = UNSET,
    disabled_instrumentations: Sequence[str] | None = None,
    default_tags: DefaultTags = None,
    prices_file: str | os.PathLike[str] | None = None,
    pricing_overrides: Mapping[str, Any] | None = None,
    azure_deployments: Mapping[str, str] | None = None,
    budgets: Any = None,
    queue_size: int | None = None,
    queue_max_bytes: int | None = None,
    batch_size: int = 512,
    export_interval: float = 1.0,
    synchronous: bool = False,
    stream_usage: bool = True,
    spool_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Resolve arguments, environment and defaults into a Config (argument > env > default)."""
    if database_url is UNSET:
        database_url = _env(env.LLM_COST_TRACKER_DATABASE_URL) or DEFAULT_DATABASE_URL
    if database_url is not None and database_url.strip().lower() in {"", "none"}:
        database_url = None

    if exporters is None:
        raw = _env(env.LLM_COST_TRACKER_EXPORTERS)
        exporters = parse_list(raw) if raw else []

    instruments = _resolve_instrument(instrument)

    if disabled_instrumentations is None:
        raw = _env(env.LLM_COST_TRACKER_DISABLED_INSTRUMENTATIONS)
        disabled_instrumentations = parse_list(raw) if raw else []

    if default_tags is None:
        raw = _env(env.LLM_COST_TRACKER_DEFAULT_TAGS)
        if raw:
            try:
                default_tags = parse_key_values(raw, name=env.LLM_COST_TRACKER_DEFAULT_TAGS)
            except ConfigurationError as error:
                _warn_invalid(env.LLM_COST_TRACKER_DEFAULT_TAGS, raw, None, str(error))

    if prices_file is None:
        prices_file = _env(env.LLM_COST_TRACKER_PRICES_FILE)

    if budgets is None:
        budgets = _budgets_from_env()

    if spool_dir is None:
        spool_dir = _env(env.LLM_COST_TRACKER_SPOOL_DIR)

    return Config(
        database_url=database_url,
        exporters=tuple(exporters),
        instrument=instruments,
        disabled_instrumentations=tuple(disabled_instrumentations),
        default_tags=default_tags,
        prices_file=os.fspath(prices_file) if prices_file is not None else None,
        pricing_overrides=pricing_overrides,
        azure_deployments=azure_deployments,
        budgets=budgets,
        queue_size=_resolve_int(queue_size, env.LLM_COST_TRACKER_QUEUE_SIZE, DEFAULT_QUEUE_SIZE),
        queue_max_bytes=_resolve_int(
            queue_max_bytes, env.LLM_COST_TRACKER_QUEUE_MAX_BYTES, DEFAULT_QUEUE_MAX_BYTES
        ),
        batch_size=batch_size,
        export_interval=export_interval,
        synchronous=synchronous,
        stream_usage=stream_usage,
        spool_dir=os.fspath(spool_dir) if spool_dir is not None else None,
    )


def _resolve_instrument(instrument: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """The instrumentors to turn on: None for none, ("all",) for every installed one."""
    if instrument is UNSET:
        raw = _env(env.LLM_COST_TRACKER_INSTRUMENT)
        instrument = "all" if raw is None else raw
    if instrument is None:
        return None
    if isinstance(instrument, str):
        names = parse_list(instrument)
        return None if names in ([], ["none"]) else tuple(names)
    return tuple(instrument)


def _budgets_from_env() -> Any:
    monthly = resolve_decimal(None, env.LLM_COST_TRACKER_MONTHLY_BUDGET)
    daily = resolve_decimal(None, env.LLM_COST_TRACKER_DAILY_BUDGET)
    per_call = resolve_decimal(None, env.LLM_COST_TRACKER_PER_CALL_BUDGET)
    if monthly is None and daily is None and per_call is None:
        return None
    raw_mode = _env(env.LLM_COST_TRACKER_BUDGET_ON_EXCEED) or "notify"
    if raw_mode not in {"notify", "raise", "block"}:
        _warn_invalid(
            env.LLM_COST_TRACKER_BUDGET_ON_EXCEED,
            raw_mode,
            "notify",
            "expected notify, raise or block",
        )
        raw_mode = "notify"
    from .budgets import Budgets

    return Budgets(
        monthly=monthly,
        daily=daily,
        per_call=per_call,
        on_exceed=raw_mode,  # type: ignore[arg-type]  # checked against the three modes above
    )
