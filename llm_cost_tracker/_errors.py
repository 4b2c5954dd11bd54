"""The exception hierarchy: everything the library raises on purpose derives from LLMCostTrackerError."""

from __future__ import annotations

from decimal import Decimal


class LLMCostTrackerError(Exception):
    """Base class of every error llm-cost-tracker raises on purpose."""


class ConfigurationError(LLMCostTrackerError, ValueError):
    """A setting, price file or database URL is invalid; the message names it."""


def format_money(amount: Decimal) -> str:
    # At least 2 and at most 6 decimals: $101.20, $0.000123.
    text = format(amount.quantize(Decimal("0.000001")), "f").rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


class BudgetExceededError(LLMCostTrackerError):
    """A budget set to ``on_exceed="raise"`` or ``"block"`` was exceeded.

    Attributes:
        budget_type: ``"per_call"``, ``"daily"`` or ``"monthly"``.
        scope: ``"global"`` or ``"<tag>=<value>"`` for a per-tag budget.
        spent: what this process saw spent in the period (for ``per_call``, the call's cost).
        limit: the budget's limit.
        estimate: for a blocked request, its estimated cost (None when unknown);
            None when raised after a recorded call.
        blocked: True when the request was never sent.
        event: in ``"raise"`` mode, the recorded call (a ``UsageEvent``) that
            was over the limit; None for a blocked request.
    """

    def __init__(
        self,
        *,
        budget_type: str,
        scope: str,
        spent: Decimal,
        limit: Decimal,
        estimate: Decimal | None = None,
        blocked: bool = False,
        event: object = None,
    ) -> None:
        self.budget_type = budget_type
        self.scope = scope
        self.spent = spent
        self.limit = limit
        self.estimate = estimate
        self.blocked = blocked
        self.event = event
        where = "" if scope == "global" else f" for {scope}"
        if budget_type == "per_call":
            what = "this call's estimated cost" if blocked else "this call cost"
            message = f"per_call budget{where} exceeded: {what} {format_money(spent)}, limit {format_money(limit)}"
        else:
            message = f"{budget_type} budget{where} exceeded: spent {format_money(spent)} of {format_money(limit)}"
            if blocked:
                guess = "unknown" if estimate is None else f"~{format_money(estimate)}"
                message += f"; this request (estimated {guess}) was not sent"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments: pickle (multiprocessing, logging handlers) needs this.
        fields = (self.budget_type, self.scope, self.spent, self.limit, self.estimate, self.blocked)
        return (_rebuild_budget_error, fields)


def _rebuild_budget_error(
    budget_type: str,
    scope: str,
    spent: Decimal,
    limit: Decimal,
    estimate: Decimal | None,
    blocked: bool,
) -> BudgetExceededError:
    return BudgetExceededError(
        budget_type=budget_type,
        scope=scope,
        spent=spent,
        limit=limit,
        estimate=estimate,
        blocked=blocked,
    )
