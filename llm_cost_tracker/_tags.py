"""Attribution tags: ``with_tags`` scopes on contextvars, default tags, and the sanitizer.

Tags are sanitized once, when they enter (a ``with_tags`` block, ``track(tags=)``,
``default_tags``), so recording an event only merges ready-made mappings.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar, cast

from ._stats import STATS

MAX_TAGS = 50
MAX_VALUE_BYTES = 1024
REDACTED = "[REDACTED]"

TAG_KEY_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}\Z")
# Keys whose values are secrets whatever they look like. Matched on the key's
# words, so "token" and "auth_token" redact but "tokens_budget" does not.
_SECRET_KEY_RE = re.compile(
    r"(?i)(?:^|[_.\-])(?:api[_.\-]?key|apikey|password|passwd|pwd|secret|client[_.\-]?secret|"
    r"authorization|auth|token|access[_.\-]?token|refresh[_.\-]?token|id[_.\-]?token|"
    r"private[_.\-]?key|access[_.\-]?key|credentials?|cookie|session[_.\-]?key|jwt|bearer)(?:$|[_.\-])"
)
# Secret-shaped values, also found inside longer strings.
_SECRET_VALUE_RE = re.compile(
    r"sk-[A-Za-z0-9_\-]{16,}"  # OpenAI / Anthropic / DeepSeek style keys
    r"|(?i:bearer)\s+[A-Za-z0-9_\-.~+/=]{8,}"
    r"|eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"  # JWT
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google API key
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}"  # Stripe
)

Tags = Mapping[str, str]
_EMPTY: Tags = MappingProxyType({})
_SCOPE: contextvars.ContextVar[Tags] = contextvars.ContextVar(
    "llm_cost_tracker_tags", default=_EMPTY
)

F = TypeVar("F", bound=Callable[..., Any])


def _truncate_utf8(value: str) -> str:
    encoded = value.encode("utf-8", "replace")
    if len(encoded) <= MAX_VALUE_BYTES:
        return value
    STATS.incr("tags.truncated")
    return encoded[:MAX_VALUE_BYTES].decode("utf-8", "ignore")


def sanitize_value(key: str, value: object) -> str:
    """Return ``value`` as a string that is safe to store under ``key``."""
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    if _SECRET_KEY_RE.search(key):
        STATS.incr("tags.redacted")
        return REDACTED
    text, found = _SECRET_VALUE_RE.subn(REDACTED, text)
    if found:
        STATS.incr("tags.redacted")
    return _truncate_utf8(text)


def sanitize_tags(tags: Mapping[str, object]) -> dict[str, str]:
    """Validate keys, stringify, redact and cut values; skipped keys are counted, never raised."""
    clean: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not TAG_KEY_RE.match(key):
            STATS.incr("tags.invalid_key")
            continue
        if value is None:
            continue
        if len(clean) >= MAX_TAGS:
            STATS.incr("tags.over_limit")
            continue
        clean[key] = sanitize_value(key, value)
    return clean


def _merge(*layers: Mapping[str, str]) -> Tags:
    """Merge tag layers, later ones winning, keeping at most MAX_TAGS keys."""
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(layer)
    if len(merged) > MAX_TAGS:
        STATS.incr("tags.over_limit", len(merged) - MAX_TAGS)
        # Keep the innermost: later layers were applied last, so drop from the front.
        keys = list(merged)[-MAX_TAGS:]
        merged = {k: merged[k] for k in keys}
    return MappingProxyType(merged)


def current_tags() -> Tags:
    """Return the tags of the enclosing ``with_tags`` scopes (without default tags)."""
    return _SCOPE.get()


class with_tags:
    """Attach attribution tags to every call made inside a block or function.

    Works as ``with with_tags(user_id=42):`` and as ``@with_tags(feature="chat")``
    on sync and async functions. Scopes nest (inner values win) and are isolated
    per thread and per asyncio task.
    """

    __slots__ = ("_tags", "_tokens")

    def __init__(self, **tags: object) -> None:
        self._tags = sanitize_tags(tags)
        self._tokens: list[contextvars.Token[Tags]] = []

    def __enter__(self) -> Tags:
        merged = _merge(_SCOPE.get(), self._tags)
        self._tokens.append(_SCOPE.set(merged))
        return merged

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _SCOPE.reset(self._tokens.pop())

    async def __aenter__(self) -> Tags:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        tags = self._tags
        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[..., Awaitable[Any]], func)

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                token = _SCOPE.set(_merge(_SCOPE.get(), tags))
                try:
                    return await async_func(*args, **kwargs)
                finally:
                    _SCOPE.reset(token)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _SCOPE.set(_merge(_SCOPE.get(), tags))
            try:
                return func(*args, **kwargs)
            finally:
                _SCOPE.reset(token)

        return cast(F, wrapper)


DefaultTags = Mapping[str, object] | Callable[[], Mapping[str, object]] | None


class DefaultTagSource:
    """Default tags from configuration: a fixed mapping (sanitized once) or a callable (per call)."""

    __slots__ = ("_fixed", "_func")

    def __init__(self, source: DefaultTags) -> None:
        self._func: Callable[[], Mapping[str, object]] | None = None
        self._fixed: Tags = _EMPTY
        if callable(source):
            self._func = source
        elif source:
            self._fixed = MappingProxyType(sanitize_tags(source))

    def get(self) -> Tags:
        if self._func is None:
            return self._fixed
        try:
            produced = self._func()
            if not isinstance(produced, Mapping):
                raise TypeError(
                    f"default_tags callable returned {type(produced).__name__}, not a mapping"
                )
            return sanitize_tags(produced)
        except Exception:
            STATS.failure(
                "errors.default_tags", "the default_tags callable failed; using no default tags"
            )
            return _EMPTY


def resolve_tags(defaults: DefaultTagSource, explicit: Mapping[str, str] | None = None) -> Tags:
    """Merge default < scoped < explicit tags, as in force in the caller's context now."""
    scoped = _SCOPE.get()
    base = defaults.get()
    if not base and not explicit:
        return scoped
    if explicit:
        return _merge(base, scoped, explicit)
    return _merge(base, scoped)
