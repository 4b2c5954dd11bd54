"""Instrument the official ``anthropic`` SDK: messages (plain, streamed, ``stream()`` helpers), beta, batches.

``AnthropicInstrumentor().instrument()`` patches the methods in ``_SURFACES``
on the first-party, Bedrock and Vertex clients (they share the resource
classes; Bedrock's and Vertex's beta messages copy the methods and are patched
too). ``count_tokens`` is not billed and is not patched. Message batch results
are recorded as the caller reads them, one event per succeeded result, priced
in batch mode.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from .._base import BaseInstrumentor, WrappedMethod
from .._bedrock_models import regional_suffix
from .._extraction import Extraction
from .._sdk import SdkContext, Surface, async_method_wrapper, method_wrapper, sdk_types
from ._extract import AnthropicStreamState, extract_anthropic
from ._wrappers import (
    async_batch_results_wrapper,
    async_stream_manager_wrapper,
    batch_results_wrapper,
    stream_manager_wrapper,
)


def _extract_message(result: Any, kwargs: dict[str, Any]) -> Extraction:
    return extract_anthropic(result)


MESSAGES = Surface("messages", _extract_message, new_state=AnthropicStreamState)

_MESSAGE_CLASSES: tuple[str, ...] = (
    "anthropic.resources.messages.messages",
    "anthropic.resources.beta.messages.messages",
    "anthropic.lib.bedrock._beta_messages",
    "anthropic.lib.vertex._beta_messages",
)
_BATCH_CLASSES: tuple[str, ...] = (
    "anthropic.resources.messages.batches",
    "anthropic.resources.beta.messages.batches",
)

_CLIENT_PROVIDERS: tuple[tuple[str, str], ...] = (
    ("Bedrock", "aws_bedrock"),
    ("AnthropicAWS", "aws_bedrock"),
    ("Vertex", "google_vertex"),
    ("GoogleCloud", "google_vertex"),
    ("Foundry", "azure_foundry"),
)


_BY_CLASS: dict[type, str | None] = {}


def provider_by_client_class(client: Any) -> str | None:
    """Bedrock / Vertex / Foundry clients by class; None for the first-party client (decided by host)."""
    kind = type(client)
    try:
        return _BY_CLASS[kind]
    except KeyError:
        pass
    found = next(
        (
            provider
            for cls in kind.__mro__
            for marker, provider in _CLIENT_PROVIDERS
            if marker in cls.__name__
        ),
        None,
    )
    if len(_BY_CLASS) < 1024:  # client classes are few; bounded all the same
        _BY_CLASS[kind] = found
    return found


def mode_suffix_of(provider: str, client: Any, model: str | None) -> str:
    """``"+regional"`` for a Bedrock in-region or geographic model id, or a regional Vertex AI endpoint.

    Bedrock and Vertex AI charge a premium on some models (Claude 4.5 and later)
    for a regional endpoint over the global one; the catalog lists it as the
    ``regional`` modifier, as the Bedrock instrumentor records it.
    """
    if provider == "aws_bedrock":
        return regional_suffix(model)  # the Bedrock instrumentor's rule, on the id it was given
    if provider == "google_vertex":
        region = getattr(client, "region", None)
        return "+regional" if isinstance(region, str) and region != "global" else ""
    return ""


def sdk_context() -> SdkContext:
    """The anthropic SDK's stream and raw-response types, for the wrappers."""
    return SdkContext(
        default_provider="anthropic",
        stream_types=sdk_types("anthropic._streaming", "Stream"),
        async_stream_types=sdk_types("anthropic._streaming", "AsyncStream"),
        raw_types=sdk_types("anthropic._legacy_response", "LegacyAPIResponse"),
        lazy_raw_types=sdk_types("anthropic._response", "APIResponse"),
        async_lazy_raw_types=sdk_types("anthropic._response", "AsyncAPIResponse"),
        provider_by_client_class=provider_by_client_class,
        mode_suffix_of=mode_suffix_of,
    )


class AnthropicInstrumentor(BaseInstrumentor):
    """Record every billed call made through the ``anthropic`` SDK (0.x to 2.x)."""

    name = "anthropic"

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("anthropic >= 0.40, < 3",)

    def wrapped_methods(self, **kwargs: Any) -> Sequence[WrappedMethod]:
        ctx = sdk_context()
        table: list[WrappedMethod] = []
        for module in _MESSAGE_CLASSES:
            table += [
                (module, "Messages.create", method_wrapper(ctx, MESSAGES)),
                (module, "AsyncMessages.create", async_method_wrapper(ctx, MESSAGES)),
                (module, "Messages.parse", method_wrapper(ctx, MESSAGES)),
                (module, "AsyncMessages.parse", async_method_wrapper(ctx, MESSAGES)),
                (module, "Messages.stream", stream_manager_wrapper(ctx, MESSAGES)),
                (module, "AsyncMessages.stream", async_stream_manager_wrapper(ctx, MESSAGES)),
            ]
        for module in _BATCH_CLASSES:
            table += [
                (module, "Batches.results", batch_results_wrapper(ctx)),
                (module, "AsyncBatches.results", async_batch_results_wrapper(ctx)),
            ]
        return table


__all__ = ["AnthropicInstrumentor"]
