"""Importing third-party price data (LiteLLM, genai-prices) into a local prices file, and comparing catalogs.

No network: the user downloads the file; we convert it to our catalog shape,
show what would change against the prices in force, and refuse suspicious
moves (a rate going to or from zero, or moving 10x) unless forced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .._errors import ConfigurationError
from ._catalog import Catalog, read_document
from ._entries import PriceEntry

_MILLION = Decimal(1_000_000)
_TEN = Decimal(10)

# LiteLLM litellm_provider / genai-prices provider id -> our provider names.
_PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "google": "google",
    "deepseek": "deepseek",
    "mistral": "mistral",
    "xai": "xai",
    "x-ai": "xai",
    "x_ai": "xai",
    "groq": "groq",
    "azure": "azure_openai",
    "openrouter": "openrouter",
}

# LiteLLM per-token fields -> our components (rates become per 1M tokens).
_LITELLM_TOKENS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write_5m",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "input_cost_per_audio_token": "audio_input",
    "output_cost_per_audio_token": "audio_output",
    "cache_read_input_audio_token_cost": "audio_cache_read",
}
_LITELLM_MODES = ("batches", "priority", "flex")
_LITELLM_THRESHOLDS = (128, 200, 272)  # *_above_<N>k_tokens

# genai-prices ModelPrice fields -> our components (already per 1M tokens).
_GENAI_FIELDS = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write_5m",
    "input_audio_mtok": "audio_input",
    "cache_audio_read_mtok": "audio_cache_read",
    "output_audio_mtok": "audio_output",
}


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def detect_format(document: object) -> str:
    """``litellm`` (a mapping of model to per-token costs) or ``genai-prices`` (a list of providers)."""
    if isinstance(document, list) and all(
        isinstance(p, Mapping) and "models" in p for p in document
    ):
        return "genai-prices"
    if isinstance(document, Mapping) and "models" in document and "version" in document:
        return "catalog"
    if isinstance(document, Mapping) and any(
        isinstance(v, Mapping) and "litellm_provider" in v for v in document.values()
    ):
        return "litellm"
    raise ConfigurationError(
        "unrecognized price data: expected LiteLLM's model_prices_and_context_window.json, "
        "a genai-prices data file, or an llm-cost-tracker catalog"
    )


def from_litellm(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Convert LiteLLM's price map into catalog entries (unknown providers are skipped)."""
    entries: dict[str, dict[str, Any]] = {}
    for name, spec in document.items():
        if not isinstance(spec, Mapping) or name == "sample_spec":
            continue
        provider = _PROVIDERS.get(str(spec.get("litellm_provider", "")))
        if provider is None:
            continue
        model = str(name).lower()
        prefix = f"{spec.get('litellm_provider')}/"
        if model.startswith(prefix):
            model = model[len(prefix) :]
        rates = _litellm_rates(spec, "")
        if not rates:
            continue
        if "search_context_cost_per_query" in spec:
            pass  # tiered by search context size; not mapped
        version: dict[str, Any] = {"rates": rates}
        modes = {}
        for mode in _LITELLM_MODES:
            mode_rates = _litellm_rates(spec, f"_{mode}")
            if mode_rates:
                modes["batch" if mode == "batches" else mode] = mode_rates
        if modes:
            version["modes"] = modes
        tiers = _litellm_tiers(spec)
        if tiers:
            version["tiers"] = tiers
        entries[f"{provider}/{model}"] = {"source": "litellm", **version}
    return entries


def _litellm_tiers(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Long-context tiers: ``*_above_200k_tokens`` and their ``_priority``/``_flex`` variants."""
    tiers = []
    for thousands in _LITELLM_THRESHOLDS:
        above = f"_above_{thousands}k_tokens"
        rates = _litellm_rates(spec, above)
        if not rates:
            continue
        tier: dict[str, Any] = {"above_input_tokens": thousands * 1000, "rates": rates}
        modes = {}
        for mode in _LITELLM_MODES:
            # LiteLLM spells both orders: ..._above_272k_tokens_priority, ..._flex_above_272k_tokens.
            mode_rates = _litellm_rates(spec, f"{above}_{mode}") or _litellm_rates(
                spec, f"_{mode}{above}"
            )
            if mode_rates:
                modes["batch" if mode == "batches" else mode] = mode_rates
        if modes:
            tier["modes"] = modes
        tiers.append(tier)
    return tiers


def _litellm_rates(spec: Mapping[str, Any], suffix: str) -> dict[str, str]:
    rates = {}
    for field, component in _LITELLM_TOKENS.items():
        value = _decimal(spec.get(field + suffix))
        if value is not None:
            rates[component] = _text(value * _MILLION)
    return rates


def from_genai_prices(document: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Convert a genai-prices data file (providers -> models -> prices) into catalog entries."""
    entries: dict[str, dict[str, Any]] = {}
    for provider_spec in document:
        provider = _PROVIDERS.get(str(provider_spec.get("id", "")).lower())
        if provider is None:
            continue
        for model_spec in provider_spec.get("models") or []:
            if not isinstance(model_spec, Mapping) or "id" not in model_spec:
                continue
            versions = _genai_versions(model_spec.get("prices"))
            if versions:
                key = f"{provider}/{str(model_spec['id']).lower()}"
                entries[key] = {"source": "genai-prices", "prices": versions}
    return entries


def _genai_versions(prices: object) -> list[dict[str, Any]]:
    if isinstance(prices, Mapping):
        version = _genai_version(prices)
        return [version] if version else []
    versions: list[dict[str, Any]] = []
    if isinstance(prices, list):
        for conditional in prices:
            if not isinstance(conditional, Mapping):
                continue
            version = _genai_version(conditional.get("prices") or {})
            constraint = conditional.get("constraint") or {}
            if version and isinstance(constraint, Mapping):
                if constraint.get("start_date"):
                    version["from"] = str(constraint["start_date"])
                elif versions:
                    continue  # time-of-day or other constraints are not mapped
                versions.append(version)
    versions.sort(key=lambda v: str(v.get("from", "")))
    return versions


def _genai_version(prices: Mapping[str, Any]) -> dict[str, Any]:
    rates: dict[str, str] = {}
    tier_rates: dict[str, str] = {}
    threshold: int | None = None
    for field, component in _GENAI_FIELDS.items():
        value = prices.get(field)
        if isinstance(value, Mapping):  # {"base": x, "tiers": [{"start": n, "price": y}]}
            base = _decimal(value.get("base"))
            tiers = value.get("tiers") or []
            if base is not None:
                rates[component] = _text(base)
            if tiers and isinstance(tiers[0], Mapping):
                price = _decimal(tiers[0].get("price"))
                start = tiers[0].get("start")
                if price is not None and isinstance(start, int):
                    tier_rates[component] = _text(price)
                    threshold = start
        else:
            number = _decimal(value)
            if number is not None:
                rates[component] = _text(number)
    requests = _decimal(prices.get("requests_kcount"))
    if requests is not None and requests:
        rates["request"] = _text(requests / 1000)
    if not rates:
        return {}
    version: dict[str, Any] = {"rates": rates}
    if tier_rates and threshold is not None:
        version["tiers"] = [{"above_input_tokens": threshold, "rates": tier_rates}]
    return version


def import_file(source: str, providers: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    """Read a LiteLLM / genai-prices / catalog file into catalog entries: (format, entries)."""
    document = read_document(source)
    kind = detect_format(document)
    if kind == "litellm":
        imported = from_litellm(document)
    elif kind == "genai-prices":
        imported = from_genai_prices(document)
    else:
        imported = dict(document["models"])
    if providers:
        wanted = {p.lower() for p in providers}
        imported = {k: v for k, v in imported.items() if k.split("/", 1)[0] in wanted}
    return kind, imported


# -- merging into a local file -------------------------------------------------

_VERSION_FIELDS = ("from", "rates", "modes", "tiers", "periods", "modifiers")


def _versions(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An entry's versions, whichever of the three entry forms it is written in."""
    if "prices" in raw and isinstance(raw["prices"], list):
        return [dict(v) for v in raw["prices"] if isinstance(v, Mapping)]
    fields = {k: v for k, v in raw.items() if k in _VERSION_FIELDS}
    if fields:
        return [fields]
    return [{"rates": dict(raw)}]  # shorthand: component -> rate


def merge_entry(existing: object, imported: Mapping[str, Any], today: str) -> dict[str, Any]:
    """Add ``imported`` to a local entry as a new version from ``today``, keeping its history.

    A new entry, or one imported with dated versions of its own, is taken as
    imported; a last version that already starts today is updated in place;
    unchanged prices leave the entry as it was.
    """
    if not isinstance(existing, Mapping) or "prices" in imported:
        return dict(imported)
    old = _versions(existing)
    new = {k: v for k, v in imported.items() if k in _VERSION_FIELDS and k != "from"}
    last = old[-1]
    if {k: v for k, v in last.items() if k != "from"} == new:
        return dict(existing)
    if str(last.get("from", "")) >= today:
        versions = [*old[:-1], {"from": last["from"], **new}]
    else:
        versions = [*old, {"from": today, **new}]
    extra = {k: v for k, v in existing.items() if k in ("name", "aliases", "notes")}
    source = imported.get("source", existing.get("source"))
    merged: dict[str, Any] = {**extra, "prices": versions}
    if source is not None:
        merged["source"] = source
    return merged


# -- comparing ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two catalogs: a new entry, or a rate that moved."""

    key: str
    component: str | None  # None: the whole entry is new
    old: Decimal | None
    new: Decimal | None
    suspicious: str | None = None

    def describe(self) -> str:
        """Return the change as one line of ``prices sync`` / ``prices check`` output."""
        if self.component is None:
            return f"+ {self.key} (new entry)"
        old = "-" if self.old is None else _text(self.old)
        new = "-" if self.new is None else _text(self.new)
        mark = "!" if self.suspicious else "~"
        why = f"  [{self.suspicious}]" if self.suspicious else ""
        return f"{mark} {self.key} {self.component}: {old} -> {new}{why}"


def current_rates(entry: PriceEntry, when: datetime) -> dict[str, Decimal]:
    """Return the base rates of ``entry``'s version in force at ``when`` (none before its first)."""
    found = entry.version_at(when)
    return {} if found is None else dict(found[1].rates)


def suspicious_move(old: Decimal | None, new: Decimal | None) -> str | None:
    """Why a rate change looks wrong (to or from zero, or a 10x move), or None."""
    if old is None or new is None:
        return None
    if old == 0 and new != 0:
        return "from zero"
    if old != 0 and new == 0:
        return "to zero"
    if old and new and (new / old >= _TEN or old / new >= _TEN):
        return "10x move"
    return None


def compare(current: Catalog, incoming: Catalog, when: datetime) -> list[Change]:
    """What ``incoming`` changes against ``current`` (base rates in force at ``when``)."""
    changes: list[Change] = []
    for key, entry in sorted(incoming.entries.items()):
        existing = current.entries.get(key)
        new_rates = current_rates(entry, when)
        if existing is None:
            changes.append(Change(key, None, None, None))
            continue
        old_rates = current_rates(existing, when)
        for component in sorted(set(old_rates) | set(new_rates)):
            old, new = old_rates.get(component), new_rates.get(component)
            if old != new:
                changes.append(Change(key, component, old, new, suspicious_move(old, new)))
    return changes


__all__ = [
    "Change",
    "compare",
    "current_rates",
    "detect_format",
    "from_genai_prices",
    "from_litellm",
    "import_file",
    "merge_entry",
    "suspicious_move",
]
