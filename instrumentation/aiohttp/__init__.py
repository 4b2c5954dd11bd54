"""Capture LLM calls made with ``aiohttp``: every ``ClientSession`` request.

``AiohttpInstrumentor`` wraps ``aiohttp.ClientSession._request``, the one
coroutine every request method of a session goes through (``session.post()``,
``session.request()``, google-genai's async client). It uses the host table,
routes, parsers and custom-parser hook of httpx capture
(``instrumentation/_transport.py``): a call is recorded exactly as the httpx
instrumentor records it. See ``docs/transport.md``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from .._base import BaseInstrumentor, WrappedMethod
from ._wrappers import request_wrapper


class AiohttpInstrumentor(BaseInstrumentor):
    """Record LLM calls made through any ``aiohttp.ClientSession``."""

    name = "aiohttp"

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("aiohttp >= 3.9",)

    def wrapped_methods(self, **kwargs: Any) -> Sequence[WrappedMethod]:
        return [("aiohttp.client", "ClientSession._request", request_wrapper())]


__all__ = ["AiohttpInstrumentor"]
