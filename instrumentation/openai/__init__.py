"""Instrument the official ``openai`` SDK: every billed method, sync and async, plain and streaming.

``OpenAIInstrumentor().instrument()`` patches the methods in ``_SURFACES``
(chat completions incl. ``parse`` and the ``stream()`` helper, which goes
through ``create``; responses incl. ``parse``, ``stream()`` and background
responses fetched with ``retrieve``; legacy completions; embeddings; images;
audio). ``with_raw_response`` / ``with_streaming_response`` call the same
patched methods. Moderations are free and not recorded. The provider is read
from the client's base URL (Azure, OpenRouter, DeepSeek, Groq, ... or hosts
registered with ``register_host``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Any

from ..._events import TokenUsage
from .._base import BaseInstrumentor, WrappedMethod
from .._extraction import Extraction, get
from .._sdk import SdkContext, Surface, async_method_wrapper, method_wrapper, sdk_types
from ._extract import ChatStreamState, ResponsesStreamState, extract_openai


def _extract_body(result: Any, kwargs: dict[str, Any]) -> Extraction:
    return extract_openai(result)


_PENDING = frozenset({"queued", "in_progress"})


def _extract_response(result: Any, kwargs: dict[str, Any]) -> Extraction | None:
    if get(result, "status") in _PENDING:
        return None  # a background response: billed, and recorded, once it finishes
    return extract_openai(result)


def _extract_audio(result: Any, kwargs: dict[str, Any]) -> Extraction:
    if isinstance(result, (str, bytes)):
        return Extraction(usage=None)  # text / srt / vtt formats carry no usage
    found = extract_openai(result)
    duration = get(result, "duration")
    if (
        found.usage is None
        and isinstance(duration, (int, float))
        and not isinstance(duration, bool)
    ):
        return Extraction(usage=TokenUsage(services={"audio_second": Decimal(str(duration))}))
    return found


def _extract_speech(result: Any, kwargs: dict[str, Any]) -> Extraction:
    text = kwargs.get("input")
    if not isinstance(text, str):
        return Extraction(usage=None)
    return Extraction(usage=TokenUsage(services={"character": Decimal(len(text))}))


CHAT = Surface("chat", _extract_body, new_state=ChatStreamState, inject_usage=True)
CHAT_PARSE = Surface("chat", _extract_body)
RESPONSES = Surface("responses", _extract_response, new_state=ResponsesStreamState, dedupe=True)
RESPONSES_RETRIEVE = Surface(
    "responses", _extract_response, new_state=ResponsesStreamState, dedupe=True, preflight=False
)
COMPLETIONS = Surface("completions", _extract_body, new_state=ChatStreamState, inject_usage=True)
EMBEDDINGS = Surface("embeddings", _extract_body)
IMAGES = Surface("images", _extract_body, new_state=lambda: ChatStreamState(images=True))
TRANSCRIPTIONS = Surface("transcriptions", _extract_audio, new_state=ChatStreamState)
TRANSLATIONS = Surface("translations", _extract_audio)
SPEECH = Surface("speech", _extract_speech, usage_source="estimated", reads_request=True)

# (module, class, method, surface); the Async twin of each class is patched too.
_SURFACES: tuple[tuple[str, str, str, Surface], ...] = (
    ("openai.resources.chat.completions.completions", "Completions", "create", CHAT),
    ("openai.resources.chat.completions.completions", "Completions", "parse", CHAT_PARSE),
    # openai 1.x before parse moved out of beta
    ("openai.resources.beta.chat.completions", "Completions", "parse", CHAT_PARSE),
    ("openai.resources.responses.responses", "Responses", "create", RESPONSES),
    ("openai.resources.responses.responses", "Responses", "parse", RESPONSES),
    ("openai.resources.responses.responses", "Responses", "retrieve", RESPONSES_RETRIEVE),
    ("openai.resources.completions", "Completions", "create", COMPLETIONS),
    ("openai.resources.embeddings", "Embeddings", "create", EMBEDDINGS),
    ("openai.resources.images", "Images", "generate", IMAGES),
    ("openai.resources.images", "Images", "edit", IMAGES),
    ("openai.resources.images", "Images", "create_variation", IMAGES),
    ("openai.resources.audio.transcriptions", "Transcriptions", "create", TRANSCRIPTIONS),
    ("openai.resources.audio.translations", "Translations", "create", TRANSLATIONS),
    ("openai.resources.audio.speech", "Speech", "create", SPEECH),
)


def sdk_context(*, stream_usage: bool = True) -> SdkContext:
    """The openai SDK's stream and raw-response types, for the wrappers."""
    return SdkContext(
        default_provider="openai",
        stream_types=sdk_types("openai._streaming", "Stream"),
        async_stream_types=sdk_types("openai._streaming", "AsyncStream"),
        raw_types=sdk_types("openai._legacy_response", "LegacyAPIResponse"),
        lazy_raw_types=sdk_types("openai._response", "APIResponse"),
        async_lazy_raw_types=sdk_types("openai._response", "AsyncAPIResponse"),
        stream_usage=stream_usage,
    )


class OpenAIInstrumentor(BaseInstrumentor):
    """Record every billed call made through the ``openai`` SDK (1.x to 3.x)."""

    name = "openai"

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("openai >= 1.40, < 4",)

    def wrapped_methods(self, **kwargs: Any) -> Sequence[WrappedMethod]:
        config = kwargs.get("config")
        ctx = sdk_context(stream_usage=getattr(config, "stream_usage", True))
        table: list[WrappedMethod] = []
        for module, cls, method, surface in _SURFACES:
            table.append((module, f"{cls}.{method}", method_wrapper(ctx, surface)))
            table.append((module, f"Async{cls}.{method}", async_method_wrapper(ctx, surface)))
        return table


__all__ = ["OpenAIInstrumentor"]
