"""Capture LLM calls made with ``requests``: every ``Session`` (and ``requests.post()``).

``RequestsInstrumentor`` wraps ``requests.Session.send``, the one point every
request and its response pass through (``requests.post()``, sessions,
``google-auth``'s ``AuthorizedSession``). It uses the host table, routes,
parsers and custom-parser hook of httpx capture (``instrumentation/_transport.py``):
a call is recorded exactly as the httpx instrumentor records it. See
``docs/transport.md``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from .._base import BaseInstrumentor, WrappedMethod
from ._wrappers import send_wrapper


class RequestsInstrumentor(BaseInstrumentor):
    """Record LLM calls made through any ``requests`` session."""

    name = "requests"

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("requests >= 2.20",)

    def wrapped_methods(self, **kwargs: Any) -> Sequence[WrappedMethod]:
        return [("requests.sessions", "Session.send", send_wrapper())]


__all__ = ["RequestsInstrumentor"]
