"""The parser registry: which (provider, path) is a billed LLM endpoint, and how to read its usage.

A host maps to a provider (``instrumentation/_hosts.py``); the provider and the
request path map to a ``Route``: the operation name, a pure function from a
JSON body to an ``Extraction``, and a stream state fed the decoded stream
events. OpenAI and Anthropic bodies are read by the SDK instrumentors'
extractors, Gemini by ``_gemini.py``. Users add routes with ``register_parser()``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from ..._events import TokenUsage
from ..._stats import STATS
from .._extraction import Extraction, get
from .._transport import model_from_path
from ..anthropic._extract import AnthropicStreamState, extract_anthropic
from ..openai._extract import ChatStreamState, ResponsesStreamState, extract_openai
from ._gemini import GeminiStreamState, extract_gemini
from ._quirks import with_reported_costs
from ._route import BodyParser, Route, StreamState

# A chat stream chunk worth decoding: the first one (always decoded) and any carrying usage.
_USAGE_NEEDLE = re.compile(rb'"usage"\s*:\s*\{')
_RESPONSES_NEEDLE = re.compile(rb'"type"\s*:\s*"response\.(?:created|completed|incomplete|failed)"')
_ANTHROPIC_NEEDLE = re.compile(rb'"type"\s*:\s*"(?:message_start|message_delta|error)"')
_GEMINI_NEEDLE = re.compile(rb'"(?:usageMetadata|groundingMetadata)"')


def _chat_route(operation: str) -> Route:
    return Route(operation, extract_openai, ChatStreamState, _USAGE_NEEDLE)


def _extract_audio(body: Any) -> Extraction:
    """A transcription: token usage, or the duration verbose_json reports (billed per second)."""
    found = extract_openai(body)
    duration = get(body, "duration")
    if (
        found.usage is None
        and isinstance(duration, (int, float))
        and not isinstance(duration, bool)
        and duration >= 0
    ):
        return Extraction(usage=TokenUsage(services={"audio_second": Decimal(str(duration))}))
    return found


def _speech_from_request(request: Any) -> Extraction:
    """Text-to-speech answers with audio bytes: bill the characters of the request's ``input``."""
    text = get(request, "input")
    if not isinstance(text, str):
        return Extraction(usage=None)
    return Extraction(usage=TokenUsage(services={"character": Decimal(len(text))}))


def _images_state() -> StreamState:
    return ChatStreamState(images=True)


_IMAGES = Route("images", extract_openai, _images_state, _USAGE_NEEDLE)
_TRANSCRIPTIONS = Route("transcriptions", _extract_audio, ChatStreamState, _USAGE_NEEDLE)
_OPENAI_ROUTES: tuple[tuple[str, Route], ...] = (
    ("/chat/completions", _chat_route("chat")),
    (
        "/responses",
        Route("responses", extract_openai, ResponsesStreamState, _RESPONSES_NEEDLE),
    ),
    ("/completions", _chat_route("completions")),
    ("/embeddings", replace(_chat_route("embeddings"), vectors=True)),
    ("/images/generations", _IMAGES),
    ("/images/edits", _IMAGES),
    ("/images/variations", _IMAGES),
    ("/audio/transcriptions", _TRANSCRIPTIONS),
    ("/audio/translations", replace(_TRANSCRIPTIONS, operation="translations")),
    ("/audio/speech", replace(_chat_route("speech"), from_request=_speech_from_request)),
)
_ANTHROPIC_ROUTES: tuple[tuple[str, Route], ...] = (
    ("/messages", Route("messages", extract_anthropic, AnthropicStreamState, _ANTHROPIC_NEEDLE)),
)
_GEMINI_ROUTES: tuple[tuple[str, Route], ...] = (
    (
        ":generateContent",
        Route(
            "generate_content", extract_gemini, GeminiStreamState, _GEMINI_NEEDLE, "usageMetadata"
        ),
    ),
    (
        ":streamGenerateContent",
        Route(
            "generate_content",
            extract_gemini,
            GeminiStreamState,
            _GEMINI_NEEDLE,
            "usageMetadata",
            stream=True,
        ),
    ),
    (
        ":embedContent",
        Route("embeddings", extract_gemini, GeminiStreamState, None, "usageMetadata", vectors=True),
    ),
    (
        ":batchEmbedContents",
        Route("embeddings", extract_gemini, GeminiStreamState, None, "usageMetadata", vectors=True),
    ),
)
# Vertex AI also serves Claude: publishers/anthropic/models/<model>:rawPredict / :streamRawPredict.
_VERTEX_LOCATION_RE = re.compile(r"/locations/([^/]+)/")


def vertex_mode_suffix(path: str) -> str:
    """``"+regional"`` for a regional Vertex AI endpoint (``/locations/us-east5/``), else "".

    Vertex AI charges a premium on some Claude models for a regional endpoint
    over the global one (the catalog's ``regional`` modifier); Gemini has none,
    so only the Claude routes use this.
    """
    found = _VERTEX_LOCATION_RE.search(path)
    return "+regional" if found is not None and found.group(1) != "global" else ""


_VERTEX_CLAUDE = replace(_ANTHROPIC_ROUTES[0][1], mode_suffix=vertex_mode_suffix)
_VERTEX_ROUTES: tuple[tuple[str, Route], ...] = (
    *_GEMINI_ROUTES,
    (":rawPredict", _VERTEX_CLAUDE),
    (":streamRawPredict", replace(_VERTEX_CLAUDE, stream=True)),
)
_FAMILY_ROUTES: dict[str, tuple[tuple[str, Route], ...]] = {
    "anthropic": _ANTHROPIC_ROUTES,
    "google": _GEMINI_ROUTES,
    "google_vertex": _VERTEX_ROUTES,
    "perplexity": with_reported_costs(_OPENAI_ROUTES),
}

_lock = threading.Lock()
_custom: dict[str, tuple[tuple[str, Route], ...]] = {}
# (provider, path) -> route or None; paths name models (Gemini), so the cache is bounded.
_ROUTE_CACHE_LIMIT = 2048
_route_cache: dict[tuple[str, str], Route | None] = {}
_generation = 0  # bumped by every (un)registration; a lookup begun before one is not cached


def route_for(provider: str, path: str) -> Route | None:
    """Return how to read ``path`` on ``provider``'s host, or None when it is not a billed endpoint.

    User routes come first, then the provider family's built-ins; any provider
    not known to be Anthropic or Gemini speaks the OpenAI-compatible API.
    """
    key = (provider, path)
    try:
        return _route_cache[key]
    except KeyError:
        pass
    generation = _generation
    found = _find_route(provider, path.rstrip("/"))
    with _lock:
        if generation == _generation:
            if len(_route_cache) >= _ROUTE_CACHE_LIMIT:
                _route_cache.clear()
            _route_cache[key] = found
    return found


def _find_route(provider: str, path: str) -> Route | None:
    for routes in (_custom.get(provider, ()), _FAMILY_ROUTES.get(provider, _OPENAI_ROUTES)):
        for suffix, route in routes:
            if path.endswith(suffix):
                return route
    return None


class _LastWinsState:
    """Stream state for a user parser: every event goes through it, later findings override earlier."""

    __slots__ = ("_found", "_parse")

    def __init__(self, parse: Callable[[Any], Extraction]) -> None:
        self._parse = parse
        self._found = Extraction(usage=None)

    def add(self, event: Any) -> None:
        found = self._parse(event)
        self._found = Extraction(
            usage=found.usage if found.usage is not None else self._found.usage,
            model=found.model or self._found.model,
            response_id=found.response_id or self._found.response_id,
            pricing_mode=found.pricing_mode
            if found.service_tier is not None or found.pricing_mode != "standard"
            else self._found.pricing_mode,
            service_tier=found.service_tier or self._found.service_tier,
        )

    def result(self) -> Extraction:
        return self._found


def _guarded(parser: BodyParser, name: str) -> Callable[[Any], Extraction]:
    """Wrap a user parser: its exceptions and wrong return types count as unknown usage, never raise."""

    def parse(body: Any) -> Extraction:
        try:
            found: Any = parser(body)  # a user function: check what it really returned
        except Exception:
            STATS.failure(f"errors.parser.{name}", f"parser {name!r} raised; usage unknown")
            return Extraction(usage=None)
        if found is None:
            return Extraction(usage=None)
        if isinstance(found, TokenUsage):
            return Extraction(usage=found)
        if isinstance(found, Extraction):
            return found
        STATS.failure(
            f"errors.parser.{name}",
            f"parser {name!r} returned {type(found).__name__}, not Extraction/TokenUsage/None",
            exc_info=False,
        )
        return Extraction(usage=None)

    return parse


def register_parser(
    provider: str,
    path_suffix: str,
    parser: BodyParser,
    *,
    operation: str = "chat",
    usage_key: str = "usage",
) -> None:
    """Read responses of ``provider`` whose URL path ends with ``path_suffix`` with ``parser``.

    ``parser`` gets the parsed JSON response body (for a stream: each SSE
    event's or NDJSON line's JSON in turn; later findings override earlier
    ones) and returns an ``Extraction``, a ``TokenUsage``, or None when the
    body says nothing about usage. It must be pure and fast; an exception it
    raises is counted and the call's usage is unknown. Register the host with
    ``register_host(host, provider)``. A later registration for the same
    provider and suffix replaces the earlier one; user routes are tried before
    the built-in ones.
    """
    provider = provider.strip()
    path_suffix = path_suffix.strip().rstrip("/")
    if not provider or not path_suffix:
        raise ValueError("register_parser: provider and path_suffix must be non-empty")
    if not callable(parser):
        raise TypeError("register_parser: parser must be callable")
    parse = _guarded(parser, f"{provider}{path_suffix}")
    route = Route(operation, parse, lambda: _LastWinsState(parse), None, usage_key)
    global _generation
    with _lock:
        kept = tuple((s, r) for s, r in _custom.get(provider, ()) if s != path_suffix)
        _custom[provider] = ((path_suffix, route), *kept)
        _generation += 1
        _route_cache.clear()


def unregister_parser(provider: str, path_suffix: str) -> None:
    """Remove a route added with ``register_parser()``."""
    global _generation
    path_suffix = path_suffix.strip().rstrip("/")
    with _lock:
        kept = tuple((s, r) for s, r in _custom.get(provider, ()) if s != path_suffix)
        if kept:
            _custom[provider] = kept
        else:
            _custom.pop(provider, None)
        _generation += 1
        _route_cache.clear()


__all__ = [
    "BodyParser",
    "Route",
    "StreamState",
    "model_from_path",
    "register_parser",
    "route_for",
    "unregister_parser",
]
