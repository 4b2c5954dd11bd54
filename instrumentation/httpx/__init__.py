"""Capture LLM calls at the HTTP transport: ``httpx`` and ``httpx2`` clients, sync and async.

``HttpxInstrumentor`` wraps ``Client.send`` and ``AsyncClient.send`` of whichever
of httpx and httpx2 is installed. Requests to hosts that are not LLM providers
(``instrumentation/_hosts.py``) pass straight through; requests to billed
endpoints (``_parsers.py``) are recorded, unless an SDK instrumentor is already
recording the call. See ``docs/transport.md``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Collection, Sequence
from typing import Any

from .._base import BaseInstrumentor, WrappedMethod
from ._parsers import register_parser, unregister_parser
from ._route import BodyParser
from ._wrappers import async_send_wrapper, send_wrapper, stream_classes

_logger = logging.getLogger(__name__)

LIBRARIES = ("httpx", "httpx2")


def _installed_libraries() -> list[Any]:
    """The installed transport modules, each once (httpx2 can alias itself as ``httpx``)."""
    found: list[Any] = []
    for name in LIBRARIES:
        module = sys.modules.get(name)
        if module is None:
            if importlib.util.find_spec(name) is None:
                continue
            module = importlib.import_module(name)
        if all(module is not seen for seen in found):
            found.append(module)
    return found


class HttpxInstrumentor(BaseInstrumentor):
    """Record LLM calls made through any ``httpx`` / ``httpx2`` client (each optional)."""

    name = "httpx"

    def instrumentation_dependencies(self) -> Collection[str]:
        # Either library will do; instrument() checks that at least one is installed.
        return ()

    def instrument(self, **kwargs: Any) -> bool:
        """Patch whichever of httpx and httpx2 is installed; False when neither is."""
        if not self.is_instrumented and not _installed_libraries():
            _logger.info(
                "HttpxInstrumentor: not instrumenting, neither httpx nor httpx2 is installed"
            )
            return False
        return super().instrument(**kwargs)

    def wrapped_methods(self, **kwargs: Any) -> Sequence[WrappedMethod]:
        methods: list[WrappedMethod] = []
        for module in _installed_libraries():
            sync_stream, async_stream = stream_classes(module)
            methods.append((module.__name__, "Client.send", send_wrapper(sync_stream)))
            methods.append((module.__name__, "AsyncClient.send", async_send_wrapper(async_stream)))
        return methods


__all__ = ["BodyParser", "HttpxInstrumentor", "register_parser", "unregister_parser"]
