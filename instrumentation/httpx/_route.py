"""What a billed LLM endpoint is to the transport: a ``Route``, and the ``StreamState`` it feeds."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..._events import TokenUsage
from .._extraction import UNKNOWN, Extraction


class StreamState(Protocol):
    """Accumulates what a stream's events say; ``result()`` may be called at any point."""

    def add(self, event: Any) -> object: ...

    def result(self) -> Extraction: ...


BodyParser = Callable[[Any], Extraction | TokenUsage | None]
"""A user parser: a parsed JSON body (or one stream event's JSON) -> what it says, or None."""


@dataclass(frozen=True, slots=True)
class Route:
    """How to read one kind of LLM endpoint.

    ``parse`` reads a complete JSON body; ``new_state`` makes the accumulator a
    stream's events are fed to; only events whose data matches ``needle`` (when
    set) are decoded, so a long stream costs a regex search per event, not a
    JSON parse. ``usage_key`` names the top-level usage object, used to recover
    usage from a body too large to keep whole.
    """

    operation: str
    parse: Callable[[Any], Extraction]
    new_state: Callable[[], StreamState]
    needle: re.Pattern[bytes] | None = None
    usage_key: str = "usage"
    stream: bool = False  # the endpoint always streams (Gemini streamGenerateContent)
    # Usage read from the request instead (text-to-speech answers with audio): usage_source "estimated".
    from_request: Callable[[Any], Extraction] | None = None
    # A pricing qualifier the request's path implies ("+regional" for a regional Vertex AI endpoint).
    mode_suffix: Callable[[str], str] | None = None
    # The body carries number vectors (embeddings) that are never read: emptied before parsing.
    vectors: bool = False

    def read(self, document: Any) -> Extraction:
        """What a parsed body says; a body that was not JSON (None) says nothing."""
        return UNKNOWN if document is None else self.parse(document)
