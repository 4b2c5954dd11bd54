"""What every instrumentor reads out of a response: ``Extraction``, and the readers that fill it.

``get`` / ``fields`` read a parsed JSON dict and an SDK's typed (pydantic)
object alike, so the SDK instrumentors and the transport share one parser per
provider shape. Counts that cannot be trusted raise ``InvalidUsage``: the whole
usage is then unknown, never zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .._events import TokenUsage

# Counted when a payload's usage cannot be trusted (negative or non-integer counts).
INVALID_USAGE_COUNTER = "dropped.usage_invalid"


_ABSENT = object()


def get(obj: Any, name: str) -> Any:
    """Read ``name`` from a dict (``dict.get``) or an SDK object (``getattr``); None when absent.

    SDK objects are pydantic models: their fields live in ``__dict__`` and unknown
    fields (``usage.cost``, ``prompt_cache_hit_tokens``) in ``__pydantic_extra__``;
    reading those directly avoids pydantic's slow ``__getattr__`` for absent names.
    """
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(name)
    fields = getattr(obj, "__dict__", None)
    if type(fields) is dict:
        if name in fields:
            return fields[name]
        extra = getattr(obj, "__pydantic_extra__", _ABSENT)
        if extra is not _ABSENT:  # a pydantic v2 model: nothing else to look at
            return extra.get(name) if type(extra) is dict else None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


_EMPTY: Mapping[str, Any] = {}


class _Attributes(Mapping[str, Any]):
    """A read-only mapping view of an arbitrary object's attributes (rarely needed)."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self._obj, name)
        except AttributeError:
            raise KeyError(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self._obj, name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def fields(obj: Any) -> Mapping[str, Any]:
    """A mapping to read ``obj`` with ``.get()``: a dict as is, a pydantic model's fields and extras.

    None gives an empty mapping. Reading a model's ``__dict__`` is much cheaper
    than ``getattr`` for names it lacks.
    """
    if obj is None:
        return _EMPTY
    if type(obj) is dict:
        return obj
    values = getattr(obj, "__dict__", None)
    if type(values) is dict:
        extra: Any = getattr(obj, "__pydantic_extra__", _ABSENT)
        if extra is not _ABSENT:
            return {**values, **extra} if extra else values
    if isinstance(obj, Mapping):
        return obj
    return _Attributes(obj)


class InvalidUsage(Exception):
    """A count in the payload is negative or not an integer: the whole usage is unknown."""


def token_count(value: Any) -> int:
    """A token count: None/absent is 0; negative or non-integer raises InvalidUsage."""
    if type(value) is int and value >= 0:  # the usual case, first
        return value
    if value is None:
        return 0
    count: int
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, float) and value.is_integer():
        count = int(value)
    else:
        raise InvalidUsage
    if count < 0:
        raise InvalidUsage
    return count


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def decimal_or_none(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() and result >= 0 else None


def build_usage(
    tokens: dict[str, int],
    *,
    reasoning: int = 0,
    services: Mapping[str, Decimal] | None = None,
    reported_cost: Decimal | None = None,
) -> TokenUsage:
    # input and output are always present; other components only when non-zero.
    kept = {k: v for k, v in tokens.items() if v or k == "input" or k == "output"}
    return TokenUsage(kept, dict(services) if services else {}, reasoning, reported_cost)


@dataclass(frozen=True, slots=True, init=False)
class Extraction:
    """What one response body says about its call.

    ``usage`` is None when the body carries no (trustworthy) usage.
    ``pricing_mode`` is the base tier (``standard``/``batch``/``flex``/``priority``)
    the provider says it used, possibly with ``+fast``/``+us_only`` qualifiers.
    ``service_tier`` is the provider's own word for it, unchanged.
    """

    usage: TokenUsage | None
    model: str | None = None
    response_id: str | None = None
    pricing_mode: str = "standard"
    service_tier: str | None = None

    def __init__(
        self,
        usage: TokenUsage | None,
        model: str | None = None,
        response_id: str | None = None,
        pricing_mode: str = "standard",
        service_tier: str | None = None,
    ) -> None:
        # Set through the slot descriptors, as UsageEvent does: one per instrumented call.
        _set_usage(self, usage)
        _set_model(self, model)
        _set_response_id(self, response_id)
        _set_pricing_mode(self, pricing_mode)
        _set_service_tier(self, service_tier)


def _setter(name: str) -> Callable[[Extraction, Any], None]:
    setter: Callable[[Extraction, Any], None] = Extraction.__dict__[name].__set__
    return setter


_set_usage = _setter("usage")
_set_model = _setter("model")
_set_response_id = _setter("response_id")
_set_pricing_mode = _setter("pricing_mode")
_set_service_tier = _setter("service_tier")


UNKNOWN = Extraction(usage=None)
"""What a response that said nothing readable yields: usage (and cost) unknown."""
