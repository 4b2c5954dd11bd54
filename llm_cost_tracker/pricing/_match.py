"""Which catalog entry prices a (provider, model): exact keys first, then known renamings, never a guess.

The candidates, in order, for each name variant of the model:
``<provider>/<name>``, then the providers whose list prices this provider
resells (Azure OpenAI -> OpenAI, Bedrock/Vertex Claude -> Anthropic, an
OpenRouter ``vendor/model`` id -> that vendor), then a bare ``<name>`` key.
Name variants are the model as given, then known spellings (Bedrock and Vertex
Claude ids, Azure ``gpt-35``, OpenRouter dotted Claude versions), then the same
with a dated snapshot suffix removed. No prefix matching: an unknown model is
unknown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ._catalog import Catalog
from ._entries import BUNDLED, OVERRIDE, PRICES_FILE, PriceEntry

# Providers that sell other vendors' models at (or priced against) those vendors' list prices.
_RESELLS: dict[str, tuple[str, ...]] = {
    "azure_openai": ("openai",),
    "azure": ("openai",),
    "bedrock": ("anthropic",),
    "aws_bedrock": ("anthropic",),
    "amazon_bedrock": ("anthropic",),
    "vertex": ("google", "anthropic"),
    "vertex_ai": ("google", "anthropic"),
    "google_vertex": ("google", "anthropic"),
    "gemini": ("google",),
}
# Providers whose model ids are "vendor/model" routes to that vendor's model.
_ROUTERS = frozenset({"openrouter"})
_VENDORS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "x-ai": "xai",
    "xai": "xai",
    "mistralai": "mistral",
    "mistral": "mistral",
    "deepseek": "deepseek",
}

_BEDROCK = re.compile(
    r"^(?:(?:us|eu|apac|au|jp|ca|global|us-gov)\.)?anthropic\.(?P<name>.+?)(?:-v\d+(?::\d+)?)?$"
)
# A Bedrock foundation-model id inside an inference-profile prefix and a version suffix.
_BEDROCK_ID = re.compile(
    r"^(?:(?:us|eu|apac|au|jp|ca|global|us-gov)\.)?"
    r"(?P<id>[a-z0-9-]+\.[a-z0-9.-]+?)(?:-v\d+(?::\d+)?|:\d+)?$"
)
_BEDROCK_PROVIDERS = frozenset({"aws_bedrock", "bedrock", "amazon_bedrock"})
_DATED = (
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # gpt-4o-2024-08-06
    re.compile(r"-\d{8}$"),  # claude-sonnet-4-5-20250929
    re.compile(r"-\d{4}$"),  # gpt-3.5-turbo-0125, grok-4-0709
    re.compile(r"-\d{3}$"),  # gemini-2.0-flash-001
    re.compile(r"-latest$"),  # claude-3-5-haiku-latest
)
_RANK = {BUNDLED: 0, PRICES_FILE: 1, OVERRIDE: 2}
_CLAUDE_DOTTED = re.compile(r"(?<=\d)\.(?=\d)")


@dataclass(frozen=True, slots=True)
class Match:
    """The entry that prices a model and how it was found (for ``prices explain``)."""

    entry: PriceEntry
    looked_up: str  # the key that matched
    how: str


def _spellings(provider: str, model: str) -> list[tuple[str | None, str, str]]:
    """(vendor or None, name, how) in preference order."""
    out: list[tuple[str | None, str, str]] = [(None, model, "exact model id")]
    name = model
    if name.startswith("models/"):
        name = name[len("models/") :]
        out.append((None, name, "Gemini 'models/' prefix removed"))
    if provider in _ROUTERS and "/" in name:
        vendor, _, rest = name.partition("/")
        mapped = _VENDORS.get(vendor)
        if mapped is not None:
            rest = rest.split(":", 1)[0]  # openrouter variants like ":free" share the list price
            out.append((mapped, rest, f"{provider} route to {mapped}"))
            if mapped == "anthropic" and _CLAUDE_DOTTED.search(rest):
                out.append((mapped, _CLAUDE_DOTTED.sub("-", rest), "dotted Claude version"))
    if provider in _BEDROCK_PROVIDERS and name.startswith("claude"):
        # the Messages API on Bedrock (the anthropic SDK's AnthropicBedrock) answers with the
        # Anthropic name: Bedrock's own entry for that model prices it before Anthropic's list
        bedrock_id = "anthropic." + name
        out.append((None, bedrock_id, "Bedrock id of an Anthropic model name"))
        for pattern in _DATED:
            stripped = pattern.sub("", bedrock_id)
            if stripped != bedrock_id:
                out.append(
                    (None, stripped, "Bedrock id of an Anthropic model name, snapshot removed")
                )
                break
    if provider in _BEDROCK_PROVIDERS:
        found = _BEDROCK_ID.match(name)
        if found is not None and found.group("id") != name:
            out.append((None, found.group("id"), "Bedrock profile prefix and version removed"))
    bedrock = _BEDROCK.match(name)
    if bedrock is not None:
        out.append(("anthropic", bedrock.group("name"), "Bedrock model id"))
    if "@" in name:
        base, _, snapshot = name.partition("@")
        how = "Vertex model id"
        out.append(
            (
                "anthropic" if base.startswith("claude") else None,
                base if snapshot in ("", "default") else f"{base}-{snapshot}",
                how,
            )
        )
    if "gpt-35" in name:
        out.append((None, name.replace("gpt-35", "gpt-3.5"), "Azure model name"))
    dated: list[tuple[str | None, str, str]] = []
    for owner, spelled, way in out:
        for pattern in _DATED:
            stripped = pattern.sub("", spelled)
            if stripped != spelled and stripped:
                dated.append((owner, stripped, f"{way}, snapshot suffix removed"))
                break
    return out + dated


def find_entry(catalog: Catalog, provider: str, model: str) -> Match | None:
    """Return the entry that prices ``model`` from ``provider``, or None (never a near miss).

    For one spelling, a provider-qualified key beats a bare one from the same
    layer; a bare key you set (override, prices file) beats a bundled qualified one.
    """
    provider = provider.strip().lower()
    model = model.strip().lower()
    providers = (provider, *_RESELLS.get(provider, ()))
    for vendor, name, how in _spellings(provider, model):
        qualified: Match | None = None
        for prov in providers if vendor is None else (provider, vendor):
            key = f"{prov}/{name}"
            entry = catalog.get(key)
            if entry is not None:
                via = "" if prov == provider else f" (priced as {prov})"
                qualified = Match(entry, key, how + via)
                break
        entry = catalog.get(name)
        bare = (
            Match(entry, name, how + ", bare key")
            if entry is not None and entry.provider is None
            else None
        )
        if qualified is not None and (
            bare is None or _RANK[qualified.entry.source] >= _RANK[bare.entry.source]
        ):
            return qualified
        if bare is not None:
            return bare
    return None


def resolve_deployment(
    provider: str, model: str, request_model: str | None, deployments: Mapping[str, str] | None
) -> str:
    """Map an Azure deployment name to its model through ``Config.azure_deployments``."""
    if not deployments or not provider.startswith("azure"):
        return model
    mapped = deployments.get(model)
    if mapped is None and request_model is not None:
        mapped = deployments.get(request_model)
    return mapped if mapped else model


__all__ = ["Match", "find_entry", "resolve_deployment"]
