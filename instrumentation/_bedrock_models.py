"""Bedrock model ids: the id the caller sent, turned into the foundation model priced and reported.

A caller names a model by its id (``amazon.nova-pro-v1:0``), by an inference
profile (``us.``, ``eu.``, ``apac.``, ``jp.``, ``au.``, ``ca.``, ``us-gov.`` geographic
profiles, ``global.``) or by an ARN. ``model_of`` strips the profile prefix and the
version suffix; ``pricing_mode_of`` says whether the call ran in-region (or in a
geography: ``standard+regional``) or anywhere (``global.``: ``standard``), on the
Bedrock service tier the call used. An ARN whose model cannot be read from it
(application inference profiles, provisioned throughput, custom and imported
models, prompt routers) keeps its resource (``provisioned-model/abc123``) as the
model: its cost is unknown, never guessed.
"""

from __future__ import annotations

import re
from typing import Any

from ._extraction import get

GEOGRAPHIC_PREFIXES = frozenset({"us", "eu", "apac", "jp", "au", "ca", "us-gov"})
GLOBAL_PREFIX = "global"

# "-v1:0", "-v2:0", "-v0:2", a bare ":0", and a context-window variant (":200k") after them.
_VERSION_RE = re.compile(r"(?:-v(\d+))?:\d+(?::\d+k)?\Z")
_DATE_RE = re.compile(r"-\d{8}-v\d+:")  # a dated model's "-v2:0" is a Bedrock revision of it
# arn:<partition>:bedrock:<region>:<account>:<resource type>/<resource id>
_ARN_RE = re.compile(r"arn:[\w-]+:bedrock:[\w-]*:\d*:([\w-]+)/(.+)\Z")
# ARN resource types that name a model (or a system inference profile) in their id.
_READABLE_RESOURCES = frozenset({"foundation-model", "inference-profile"})

# Bedrock's service tiers (``serviceTier.type``, ``X-Amzn-Bedrock-Service-Tier``) as base modes.
_TIER_MODES = {
    "default": "standard",
    "priority": "priority",
    "flex": "flex",
    "reserved": "reserved",
}

_CACHE_LIMIT = 1024
_MODELS: dict[str, tuple[str, bool]] = {}


def _parse(model_id: str) -> tuple[str, bool]:
    """(model, is_global) for one id, profile or ARN."""
    found = _ARN_RE.match(model_id)
    if found is not None:
        kind, resource = found.group(1), found.group(2)
        if kind not in _READABLE_RESOURCES:
            return f"{kind}/{resource}", False
        model_id = resource
    prefix, dot, rest = model_id.partition(".")
    is_global = False
    if dot and (prefix in GEOGRAPHIC_PREFIXES or prefix == GLOBAL_PREFIX):
        is_global = prefix == GLOBAL_PREFIX
        model_id = rest
    return _without_version(model_id), is_global


def _without_version(model_id: str) -> str:
    """``model_id`` without its ``:minor`` version, and without ``-vN`` when that is a revision.

    ``-v1``/``-v0`` and a dated model's ``-v2`` (``claude-3-5-sonnet-20241022-v2:0``)
    are Bedrock's revisions of one model; an undated ``-v2`` and up names a
    model of its own, priced apart: ``amazon.titan-embed-text-v2:0`` is not
    Titan Embeddings v1, ``cohere.embed-v4:0`` is Embed v4.
    """
    found = _VERSION_RE.search(model_id)
    if found is None:
        return model_id
    major = found.group(1)
    if major is not None and int(major) >= 2 and _DATE_RE.search(model_id) is None:
        return model_id[: found.start() + 2 + len(major)]  # keep "-vN", drop ":minor"
    return model_id[: found.start()]


def _lookup(model_id: str) -> tuple[str, bool]:
    found = _MODELS.get(model_id)
    if found is None:
        found = _parse(model_id)
        if len(_MODELS) < _CACHE_LIMIT:  # model ids are few; bounded all the same
            _MODELS[model_id] = found
    return found


def model_of(model_id: str) -> str:
    """The foundation model a Bedrock model id, inference profile or ARN names.

    ``us.anthropic.claude-sonnet-4-5-20250929-v1:0`` -> ``anthropic.claude-sonnet-4-5-20250929``;
    ``arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123`` -> ``provisioned-model/abc123``.
    """
    return _lookup(model_id)[0]


def tier_mode(tier: Any) -> str | None:
    """The base pricing mode for a Bedrock service tier (a string or ``{"type": ...}``); None if absent."""
    if not isinstance(tier, str):
        tier = get(tier, "type") if isinstance(tier, dict) else None
    if not isinstance(tier, str):
        return None
    return _TIER_MODES.get(tier.lower(), tier.lower())


def is_global_model(model_id: str) -> bool:
    """Whether a Bedrock model id names a ``global.`` inference profile (directly or in an ARN)."""
    return _lookup(model_id)[1]


def regional_suffix(model_id: str | None) -> str:
    """``"+regional"`` for an in-region id or a geographic profile; "" for ``global.`` or no id.

    Bedrock charges a premium on some models (Claude 4.5 and later) for a
    regional endpoint over the global one: the catalog's ``regional`` modifier.
    """
    return "" if model_id is None or is_global_model(model_id) else "+regional"


def pricing_mode_of(model_id: str | None, tier: Any) -> str:
    """``<tier>+regional`` for an in-region id or a geographic profile, ``<tier>`` for ``global.``."""
    return (tier_mode(tier) or "standard") + regional_suffix(model_id)


def tier_name(tier: Any) -> str | None:
    """The provider's own word for the tier (``flex``, ``priority``, ...), unchanged."""
    if isinstance(tier, dict):
        tier = tier.get("type")
    return tier if isinstance(tier, str) and tier else None


__all__ = [
    "is_global_model",
    "model_of",
    "pricing_mode_of",
    "regional_suffix",
    "tier_mode",
    "tier_name",
]
