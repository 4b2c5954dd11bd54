"""The wrapper for ``requests.Session.send`` and the proxy that watches a streamed body.

A request to a host that is not an LLM provider costs a split of its URL and
one cached dict lookup. For an LLM endpoint the call starts before the request
is sent. A body ``send()`` already read (``stream=False``) is parsed at once; a
streamed one (``stream=True``) is observed as the caller reads it, through
``response.raw`` (``iter_content``, ``iter_lines``, ``raw.read``, ``raw.stream``),
each chunk handed on unchanged. The call finishes once: at the end of the
body, on ``close()``, or on a read error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import wrapt

from ..._errors import LLMCostTrackerError
from ..._stats import STATS
from ..._suppress import SUPPRESSED, is_suppressed
from .._transport import (
    Observation,
    finish_if_dropped,
    finish_observation,
    route_url,
    start_observation,
)
from ..httpx._parsers import route_for


def observe_request(request: Any) -> Observation | None:
    """Start recording a prepared request to a billed endpoint; None for any other request."""
    try:
        found = route_url(request.url)
    except Exception:  # not a prepared request we can route
        return None
    if found is None or request.method != "POST" or is_suppressed():
        return None
    provider, path = found
    route = route_for(provider, path)
    if route is None:
        return None
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8", "replace")
    elif not isinstance(body, bytes):
        body = b""  # a generator or file being streamed up: nothing to learn from it
    return start_observation(provider, route, path, body)


class ObservedRaw(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A streamed response's ``raw`` (urllib3's response): each chunk read is shown to the observation."""

    def __init__(self, raw: Any, observation: Observation, encoded: bool) -> None:
        super().__init__(raw)
        self._self_observation = observation
        self._self_encoded = encoded  # the body has a content encoding

    def _self_check(self, decode_content: Any) -> None:
        if not self._self_encoded:
            return
        if decode_content is None:
            decode_content = getattr(self.__wrapped__, "decode_content", True)
        if not decode_content:  # raw encoded bytes: we do not decode urllib3's encodings
            self._self_observation.give_up("dropped.transport_unsupported_encoding")

    def stream(
        self, amt: int | None = 2**16, decode_content: bool | None = None
    ) -> Iterator[bytes]:
        observation = self._self_observation
        self._self_check(decode_content)
        try:
            for chunk in self.__wrapped__.stream(amt, decode_content=decode_content):
                observation.feed(chunk)
                yield chunk
        except Exception as error:
            finish_observation(observation, error)
            raise
        finish_observation(observation, None)

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> Any:
        observation = self._self_observation
        self._self_check(kwargs.get("decode_content", args[0] if args else None))
        try:
            data = self.__wrapped__.read(amt, *args, **kwargs)
        except Exception as error:
            finish_observation(observation, error)
            raise
        if data:
            observation.feed(data)
        if amt is None or not data:
            finish_observation(observation, None)
        return data

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            finish_observation(self._self_observation, None)

    def release_conn(self) -> None:
        try:
            self.__wrapped__.release_conn()
        finally:
            finish_observation(self._self_observation, None)

    def __del__(self) -> None:  # the response was dropped before its body ended
        finish_if_dropped(self._self_observation)


def _attach(observation: Observation, response: Any, streamed: bool) -> None:
    """Parse a body ``send()`` already read, or watch ``response.raw`` as the caller reads it."""
    try:
        if not streamed:
            observation.read_whole(response.status_code, response.headers, response.content)
            return
        raw = response.raw
        # A body with no usage (an HTML error page) is still timed to its end.
        observation.prepare(response.status_code, response.headers, incremental=True)
        if hasattr(raw, "stream") and hasattr(raw, "read"):
            encoding = response.headers.get("content-encoding", "").strip().lower()
            response.raw = ObservedRaw(raw, observation, encoding not in ("", "identity"))
            return
        STATS.incr("dropped.transport_unobservable_body")
    except LLMCostTrackerError:
        raise
    except Exception:
        STATS.failure("errors.transport.attach", "could not observe an LLM response")
    observation.finish()


def send_wrapper() -> Callable[..., Any]:
    """Wrapper for ``Session.send``: LLM endpoints are recorded, every other request passes straight on."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        observation = observe_request(args[0] if args else kwargs.get("request"))
        if observation is None:
            return wrapped(*args, **kwargs)
        token = SUPPRESSED.set(
            True
        )  # what send() calls (redirects, other clients) must not record it
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as error:  # a timeout, a connection error: the attempt still happened
            finish_observation(observation, error)
            raise
        finally:
            SUPPRESSED.reset(token)
        _attach(observation, response, bool(kwargs.get("stream")))
        return response

    return wrapper
