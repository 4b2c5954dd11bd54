"""Which provider a host belongs to: built-in hosts, Azure suffixes, and hosts users register.

Used by the SDK instrumentors (reading a client's base URL) and the transport
instrumentor (recognizing LLM endpoints). A lookup is a dict access.
"""

from __future__ import annotations

import threading

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
}
_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".openai.azure.com", "azure_openai"),
    (".cognitiveservices.azure.com", "azure_openai"),
    (".services.ai.azure.com", "azure_openai"),
)

_registered: dict[str, str] = {}
_lock = threading.Lock()


def register_host(host: str, provider: str) -> None:
    """Attribute calls to ``host`` (``"llm.internal:8000"`` or ``"llm.internal"``) to ``provider``."""
    host = host.strip().lower()
    if not host or not provider.strip():
        raise ValueError("register_host: host and provider must be non-empty")
    with _lock:
        _registered[host] = provider.strip()


def unregister_host(host: str) -> None:
    with _lock:
        _registered.pop(host.strip().lower(), None)


def provider_for_host(host: str, port: int | None = None) -> str | None:
    """Return the provider for ``host`` (and optionally ``port``), or None when it is not an LLM host."""
    host = host.lower()
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
