"""Preflight estimates for ``on_exceed="block"``: a request's tokens from its size, then its cost.

Input tokens are the characters of every string in the request's content
fields divided by 4 (the common rule of thumb for English text), at most
``MAX_INPUT_TOKENS``; the text is measured, never kept. Output tokens are the request's own cap
(``max_tokens``, ``max_completion_tokens``, ``max_output_tokens``) when given,
else 0. Images, audio and files are not counted, so the estimate is a floor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from .._events import TokenUsage
from .._stats import STATS

CHARS_PER_TOKEN = 4
# The largest context window any model offers (Llama 4 Scout): a longer request
# is refused by the provider, so no estimate goes past it. It also bounds what
# any request to a model can cost, which lets the preflight skip measuring a
# request when every budget has far more room than that.
MAX_INPUT_TOKENS = 10_000_000
# Request fields whose strings are sent to the model as input (OpenAI, Anthropic, Gemini).
INPUT_FIELDS = ("messages", "input", "prompt", "system", "instructions", "contents", "tools")
_INPUT_FIELD_SET = frozenset(INPUT_FIELDS)
OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
MAX_NODES = 20_000  # walk at most this many values per request; past it the estimate is a floor
# Lists up to this long of plain dicts and strings (chat messages, content
# parts) are read in one tight loop; anything else goes through the general walk.
_FLAT_LIST = 1024
_TIERS = {"priority": "priority", "flex": "flex", "scale": "priority", "batch": "batch"}

Estimator = Callable[[str, str, TokenUsage, str], "Decimal | None"]


def _ceiling_float(amount: Decimal) -> float:
    """Return a float no lower than ``amount`` (float() rounds to nearest: step one above)."""
    return math.nextafter(float(amount), math.inf)


def input_chars(request: Mapping[str, Any]) -> int:
    """Count the characters of every string under the request's input fields."""
    total = 0
    rest: list[Any] | None = None  # values the general walk must read, made only when needed
    for name in request:
        if name not in _INPUT_FIELD_SET:
            continue
        value = request[name]
        kind = type(value)
        if kind is str:
            total += len(value)
        elif kind is list and len(value) <= _FLAT_LIST:
            # The usual shape, read without the general walk: a list of
            # messages (dicts of strings) or of strings. Exact-type checks:
            # an ABC isinstance() costs several times more on this hot path.
            for item in value:
                if type(item) is dict:
                    for field in item.values():
                        if type(field) is str:
                            total += len(field)
                        elif field is not None:
                            if rest is None:
                                rest = []
                            rest.append(field)
                elif type(item) is str:
                    total += len(item)
                else:
                    if rest is None:
                        rest = []
                    rest.append(item)
        else:
            if rest is None:
                rest = []
            rest.append(value)
    if rest is not None:
        total += _walk(rest)
    return total


def _walk(stack: list[Any]) -> int:
    """Count the characters of every string under the values in ``stack`` (consumed)."""
    total = 0
    push = stack.append
    nodes = 0
    while stack:
        value = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            STATS.incr("budget.estimate_truncated")
            break
        kind = type(value)
        if kind is dict or kind is list or kind is tuple:
            for item in value.values() if kind is dict else value:
                if type(item) is str:
                    total += len(item)
                else:
                    push(item)
        elif isinstance(value, str):
            total += len(value)
        elif isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        elif value is not None and not isinstance(value, (int, float, bool)):
            # SDK param objects (Gemini's Content, pydantic models): read their fields.
            fields = getattr(value, "__dict__", None)
            if isinstance(fields, dict):
                stack.extend(fields.values())
    return total


def _cap(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def output_cap(request: Mapping[str, Any]) -> int:
    """Return the request's maximum output tokens, or 0 when it sets none."""
    cap = request.get("max_tokens")
    if type(cap) is int and cap > 0:
        return cap  # OpenAI chat and Anthropic: the usual case, one lookup
    for name in OUTPUT_FIELDS:
        if name in request:
            cap = _cap(request[name])
            if cap is not None:
                return cap
    # Gemini: config=GenerateContentConfig(max_output_tokens=...) or generationConfig.maxOutputTokens.
    config = request.get("config") if "config" in request else None
    if config is not None:
        raw = (
            config.get("max_output_tokens")
            if isinstance(config, Mapping)
            else getattr(config, "max_output_tokens", None)
        )
        cap = _cap(raw)
        if cap is not None:
            return cap
    generation = request.get("generationConfig") if "generationConfig" in request else None
    if isinstance(generation, Mapping):
        cap = _cap(generation.get("maxOutputTokens"))
        if cap is not None:
            return cap
    return 0


def pricing_mode_of(request: Mapping[str, Any]) -> str:
    """Return the pricing mode a request asks for (``service_tier``), else ``standard``."""
    tier = request.get("service_tier")
    return _TIERS.get(tier, "standard") if isinstance(tier, str) else "standard"


def input_tokens_of(request: Mapping[str, Any]) -> int:
    """Return the request's estimated input tokens: its characters / 4, rounded up, capped."""
    return min(-(-input_chars(request) // CHARS_PER_TOKEN), MAX_INPUT_TOKENS)


def estimate_tokens(request: Mapping[str, Any]) -> tuple[int, int]:
    """Return the request's estimated (input, output) tokens: input from its size, output from its cap."""
    return input_tokens_of(request), output_cap(request)


def estimate_usage(request: Mapping[str, Any]) -> TokenUsage:
    """Return the request's estimated usage as a TokenUsage."""
    input_tokens, output_tokens = estimate_tokens(request)
    return TokenUsage(tokens={"input": input_tokens, "output": output_tokens})


# What CostEstimator.rates() returns, all floats no lower than the exact figures:
# (input cost per token, output cost per token, the cost of MAX_INPUT_TOKENS of
# input, output cost per token at that size). The last two are the most any
# request to the model can cost, tiers included.
Rates = tuple[float, float, float, float]


# A quick (cached-rate) estimate is trusted when it uses less than half of
# what is left; closer than that, or for very long prompts (tiered prices), the
# pricing engine's exact estimate decides. The float form of that test also
# absorbs float rounding: rates round up, rooms round down, and the factor is
# a hair over 2.
_EXACT_ABOVE_INPUT_TOKENS = 100_000
_MARGIN = 2.0 * (1.0 + 1e-9)


class CostEstimator:
    """Estimate a request's cost: quick per-token rates cached per model, or the engine's exact figure.

    ``estimate(provider, model, usage, pricing_mode)`` is the pricing engine's
    exact estimate. ``rates()`` learns from it, once per model and mode (the
    guard calls ``forget()`` every hour), the per-token rates of a 1,000-token
    call and what the largest possible request costs (tiers included), as
    floats rounded up; the guard calls ``exact()`` only when the quick figure
    comes close to what is left of a budget.
    """

    def __init__(self, estimate: Estimator) -> None:
        self._estimate = estimate
        self._rates: dict[tuple[str, str, str], Rates | None] = {}
        # one slot before the dict: most processes call one model most of the time
        self._last: tuple[str, str, str, Rates | None] = ("", "", "", None)

    def rates(self, provider: str, model: str, mode: str) -> Rates | None:
        """Return the model's cached ``Rates``; None without a known price."""
        key = (provider, model, mode)
        try:
            return self._rates[key]
        except KeyError:
            pass
        rates: Rates | None = None
        try:
            figures = [
                self._estimate(provider, model, TokenUsage(tokens=tokens), mode)
                for tokens in (
                    {"input": 1000},
                    {"output": 1000},
                    {"input": MAX_INPUT_TOKENS},
                    {"input": MAX_INPUT_TOKENS, "output": 1000},
                )
            ]
        except Exception:
            STATS.failure("errors.budget.estimate", "estimating a request's cost failed")
            figures = [None, None, None, None]
        per_input, per_output, largest, largest_with_output = figures
        if per_input is not None and per_output is not None:
            # The largest request at the small request's rates, in case the
            # long-context tier has no price for this mode (None) or a lower one.
            top_output = per_output
            if largest is not None and largest_with_output is not None:
                top_output = max(per_output, largest_with_output - largest)
            largest = max(largest or per_input, per_input * (MAX_INPUT_TOKENS // 1000))
            rates = (
                _ceiling_float(per_input / 1000),
                _ceiling_float(per_output / 1000),
                _ceiling_float(largest),
                _ceiling_float(top_output / 1000),
            )
        if len(self._rates) < 10_000:
            self._rates[key] = rates
        return rates

    def forget(self) -> None:
        """Drop the cached rates (prices can change on the hour: time-of-day periods, new versions)."""
        self._rates = {}
        self._last = ("", "", "", None)

    def bound(
        self, provider: str, model: str, request: Mapping[str, Any], room: float
    ) -> tuple[bool, Decimal | None]:
        """Whether ``request`` surely fits in ``room``; when it may not, its exact estimate.

        Returns ``(True, None)`` when twice the most any request to the model
        can cost, or twice this request's quick estimate, is under ``room``
        (floats: rates rounded up, rooms down); else ``(False, estimate)``,
        with the pricing engine's estimate, None when the model has no price.
        """
        tier = request.get("service_tier")
        mode = "standard" if tier is None else pricing_mode_of(request)
        last = self._last
        if last[0] == model and last[1] == provider and last[2] == mode:
            rates = last[3]
        else:
            rates = self.rates(provider, model, mode)
            self._last = (model, provider, mode, rates)
        if rates is None:
            return room > 0.0, None  # no price: only a budget already over its limit blocks
        output_tokens = output_cap(request)
        if (rates[2] + output_tokens * rates[3]) * _MARGIN < room:
            return True, None  # no request to this model could come near the limit
        input_tokens = -(-input_chars(request) // CHARS_PER_TOKEN)  # as input_tokens_of()
        if input_tokens > MAX_INPUT_TOKENS:
            input_tokens = MAX_INPUT_TOKENS
        if (
            input_tokens <= _EXACT_ABOVE_INPUT_TOKENS
            and (input_tokens * rates[0] + output_tokens * rates[1]) * _MARGIN < room
        ):
            return True, None
        return False, self.exact(provider, model, input_tokens, output_tokens, mode)

    def exact(
        self, provider: str, model: str, input_tokens: int, output_tokens: int, mode: str
    ) -> Decimal | None:
        """Return the pricing engine's own estimate (tiers applied)."""
        usage = TokenUsage(tokens={"input": input_tokens, "output": output_tokens})
        try:
            return self._estimate(provider, model, usage, mode)
        except Exception:
            STATS.failure("errors.budget.estimate", "estimating a request's cost failed")
            return None
