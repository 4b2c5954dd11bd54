"""Which provider a host belongs to: built-in hosts, Azure suffixes, and hosts users register.

Used by the SDK instrumentors (reading a client's base URL) and the transport
instrumentor (recognizing LLM endpoints). A lookup is a dict access: answers,
negative ones included, are cached (bounded) until a host is registered or removed.
"""

from __future__ import annotations

import threading
from typing import Any

_BUILTIN: dict[str, str] = {
    "api.openai.com": "openai",
    "us.api.openai.com": "openai",
    "eu.api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "openrouter.ai": "openrouter",
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "api.x.ai": "xai",
    "api.mistral.ai": "mistral",
    "api.together.xyz": "together",
    "api.together.ai": "together",
    "api.fireworks.ai": "fireworks",
    "api.perplexity.ai": "perplexity",
    "generativelanguage.googleapis.com": "google",
    "aiplatform.googleapis.com": "google_vertex",
}
_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".openai.azure.com", "azure_openai"),
    (".cognitiveservices.azure.com", "azure_openai"),
    (".services.ai.azure.com", "azure_openai"),
    ("-aiplatform.googleapis.com", "google_vertex"),
)
_CACHE_LIMIT = 4096

_registered: dict[str, str] = {}
_lock = threading.Lock()
# host -> provider or None, for hosts with no "host:port" registration (the port cannot matter):
# a string key, the cheapest lookup there is. Hosts registered with a port go through
# _port_cache instead. Both are cleared on every registration change and when full, so a
# client talking to many distinct hosts costs at most one miss per host.
_cache: dict[str, str | None] = {}
_port_cache: dict[tuple[str, int | None], str | None] = {}
_port_hosts: frozenset[str] = frozenset()  # hosts that have a "host:port" registration
_generation = 0  # bumped on every registration change; a miss computed before one is not cached
MISSING = object()


def _changed() -> None:
    """Rebuild derived state after ``_registered`` changed; the caller holds ``_lock``."""
    global _generation, _port_hosts
    _generation += 1
    _port_hosts = frozenset(
        name.rpartition(":")[0].strip("[]")
        for name in _registered
        if name.rpartition(":")[2].isdigit() and ":" in name
    )
    _cache.clear()
    _port_cache.clear()


def generation() -> int:
    """A number that changes whenever a host is registered or removed (cached answers go stale)."""
    return _generation


def cached_provider(host: str) -> object:
    """The cached answer for ``host`` (a provider or None), or ``MISSING``: one dict lookup."""
    return _cache.get(host, MISSING)


def register_host(host: str, provider: str) -> None:
    """Attribute calls to ``host`` (``"llm.internal:8000"`` or ``"llm.internal"``) to ``provider``."""
    host = host.strip().lower()
    if not host or not provider.strip():
        raise ValueError("register_host: host and provider must be non-empty")
    with _lock:
        _registered[host] = provider.strip()
        _changed()


def unregister_host(host: str) -> None:
    """Forget a host registered with ``register_host()``; built-in hosts are unaffected."""
    with _lock:
        _registered.pop(host.strip().lower(), None)
        _changed()


def registered_hosts() -> dict[str, str]:
    """Return a copy of the hosts users registered, mapped to their providers."""
    with _lock:
        return dict(_registered)


def provider_for_host(host: str, port: int | None = None) -> str | None:
    """Return the provider for ``host`` (and optionally ``port``), or None when it is not an LLM host."""
    found: Any = _cache.get(host, MISSING)
    if found is not MISSING:
        return found  # type: ignore[no-any-return]
    generation = _generation
    name = host.lower()
    if name in _port_hosts:
        key = (host, port)
        found = _port_cache.get(key, MISSING)
        if found is MISSING:
            found = _lookup(name, port)
            with _lock:
                if generation == _generation:
                    if len(_port_cache) >= _CACHE_LIMIT:
                        _port_cache.clear()
                    _port_cache[key] = found
        return found  # type: ignore[no-any-return]
    found = _lookup(name, None)
    with _lock:
        if generation == _generation:
            if len(_cache) >= _CACHE_LIMIT:
                _cache.clear()
            _cache[host] = found
    return found  # type: ignore[no-any-return]


def _lookup(host: str, port: int | None) -> str | None:
    if _registered:
        if port is not None and (found := _registered.get(f"{host}:{port}")) is not None:
            return found
        if (found := _registered.get(host)) is not None:
            return found
    if (found := _BUILTIN.get(host)) is not None:
        return found
    for suffix, provider in _SUFFIXES:
        if host.endswith(suffix):
            return provider
    return None
