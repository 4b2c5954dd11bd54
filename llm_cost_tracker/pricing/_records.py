"""Building the frozen event records on the pricing hot path without their generated ``__init__``.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``;
on the reference machine that makes one ``LineItem`` cost about 1 us, more than
the arithmetic of the whole call, and copying a ``UsageEvent`` field by field
through its slot descriptors about 2 us. Here each record is filled as a
*draft*: an instance of a plain class with exactly the record's slots, whose
plain attribute stores the interpreter specializes, then turned into the record
class by ``__class__`` assignment (allowed because the two layouts are
identical). The results are ordinary instances of the same classes: equal,
frozen, hashable. The builders are generated at import from the classes'
fields, like dataclasses' own ``__init__``; if a class ever has a shape they do
not handle, its constructor (or ``dataclasses.replace``) is used instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields, replace
from decimal import Decimal
from typing import Any

from .._events import Cost, CostStatus, LineItem, UsageEvent

_ZERO = Decimal(0)
_LINE_FIELDS = ("component", "unit", "quantity", "unit_price", "cost")
_COST_FIELDS = ("total", "status", "currency", "line_items", "snapshot")


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _draft_class(cls: type, *, copies: bool = False) -> type | None:
    """A plain class with the slots of ``cls`` whose instances can become ``cls`` instances, or None.

    A class with a ``__post_init__`` gets None (its checks must run on new
    values) unless the drafts only ``copies`` fields of instances that ran them.
    """
    names = _names(cls)
    slots = cls.__dict__.get("__slots__")
    if (
        (hasattr(cls, "__post_init__") and not copies)
        or not isinstance(slots, tuple)
        or sorted(slots) != sorted(names)
        or not all(n.isidentifier() for n in names)
    ):
        return None
    draft = type(f"_{cls.__name__}Draft", (), {"__slots__": slots, "__module__": __name__})
    probe: Any = object.__new__(draft)
    try:
        probe.__class__ = cls  # raises TypeError unless the layouts are identical
    except TypeError:
        return None
    return draft


def _generate(source: str, name: str, **globals_: Any) -> Any:
    namespace: dict[str, Any] = {"new": object.__new__, **globals_}
    exec(compile(source, f"<{__name__}.{name}>", "exec"), namespace)
    return namespace[name]


def _line_builder() -> Callable[[str, str, Decimal, Decimal | None, Decimal | None], LineItem]:
    draft = _draft_class(LineItem)
    if draft is None or _names(LineItem) != _LINE_FIELDS:

        def line(
            component: str,
            unit: str,
            quantity: Decimal,
            unit_price: Decimal | None,
            cost: Decimal | None,
        ) -> LineItem:
            return LineItem(component, unit, quantity, unit_price, cost)

        return line
    source = (
        "def line(component, unit, quantity, unit_price, cost):\n"
        "    item = new(Draft)\n"
        "    item.component = component\n"
        "    item.unit = unit\n"
        "    item.quantity = quantity\n"
        "    item.unit_price = unit_price\n"
        "    item.cost = cost\n"
        "    item.__class__ = LineItem\n"
        "    return item\n"
    )
    return _generate(source, "line", Draft=draft, LineItem=LineItem)  # type: ignore[no-any-return]


def _priced_cost_builder() -> Callable[
    [Sequence[tuple[str, str, Decimal]], Iterable[int], dict[str, Any]], Cost
]:
    line_draft, cost_draft = _draft_class(LineItem), _draft_class(Cost)
    if (
        line_draft is None
        or cost_draft is None
        or _names(LineItem) != _LINE_FIELDS
        or _names(Cost) != _COST_FIELDS
    ):

        def priced(
            specs: Sequence[tuple[str, str, Decimal]],
            counts: Iterable[int],
            snapshot: dict[str, Any],
        ) -> Cost:
            lines = []
            total = _ZERO
            for (component, unit, unit_price), count in zip(specs, counts, strict=True):
                quantity = Decimal(count)
                cost = quantity * unit_price
                total += cost
                lines.append(LineItem(component, unit, quantity, unit_price, cost))
            return Cost(total=total, status="priced", line_items=tuple(lines), snapshot=snapshot)

        return priced
    source = (
        "def priced(specs, counts, snapshot):\n"
        "    lines = []\n"
        "    total = ZERO\n"
        "    for (component, unit, unit_price), count in zip(specs, counts, strict=True):\n"
        "        quantity = Decimal(count)\n"
        "        cost = quantity * unit_price\n"
        "        total += cost\n"
        "        item = new(LineDraft)\n"
        "        item.component = component\n"
        "        item.unit = unit\n"
        "        item.quantity = quantity\n"
        "        item.unit_price = unit_price\n"
        "        item.cost = cost\n"
        "        item.__class__ = LineItem\n"
        "        lines.append(item)\n"
        "    result = new(CostDraft)\n"
        "    result.total = total\n"
        "    result.status = 'priced'\n"
        "    result.currency = 'USD'\n"
        "    result.line_items = tuple(lines)\n"
        "    result.snapshot = snapshot\n"
        "    result.__class__ = Cost\n"
        "    return result\n"
    )
    return _generate(  # type: ignore[no-any-return]
        source,
        "priced",
        LineDraft=line_draft,
        LineItem=LineItem,
        CostDraft=cost_draft,
        Cost=Cost,
        Decimal=Decimal,
        ZERO=_ZERO,
    )


def _cost_builder() -> Callable[
    [Decimal | None, CostStatus, tuple[LineItem, ...], dict[str, Any]], Cost
]:
    draft = _draft_class(Cost)
    if draft is None or _names(Cost) != _COST_FIELDS:

        def cost(
            total: Decimal | None,
            status: CostStatus,
            line_items: tuple[LineItem, ...],
            snapshot: dict[str, Any],
        ) -> Cost:
            return Cost(total=total, status=status, line_items=line_items, snapshot=snapshot)

        return cost
    source = (
        "def cost(total, status, line_items, snapshot):\n"
        "    item = new(Draft)\n"
        "    item.total = total\n"
        "    item.status = status\n"
        "    item.currency = 'USD'\n"
        "    item.line_items = line_items\n"
        "    item.snapshot = snapshot\n"
        "    item.__class__ = Cost\n"
        "    return item\n"
    )
    return _generate(source, "cost", Draft=draft, Cost=Cost)  # type: ignore[no-any-return]


def _event_copier() -> Callable[[UsageEvent, Cost], UsageEvent]:
    draft = _draft_class(UsageEvent, copies=True)
    names = _names(UsageEvent)
    if draft is None or "cost" not in names:

        def copy(event: UsageEvent, cost: Cost) -> UsageEvent:
            return replace(event, cost=cost)

        return copy
    stores = "".join(f"    item.{n} = {'cost' if n == 'cost' else f'event.{n}'}\n" for n in names)
    source = (
        "def copy(event, cost):\n"
        f"    item = new(Draft)\n{stores}    item.__class__ = UsageEvent\n    return item\n"
    )
    return _generate(source, "copy", Draft=draft, UsageEvent=UsageEvent)  # type: ignore[no-any-return]


make_line = _line_builder()
make_line.__doc__ = "``LineItem(component, unit, quantity, unit_price, cost)``."
make_priced_cost = _priced_cost_builder()
make_priced_cost.__doc__ = """The Cost of a fully priced call: its lines and their total.

One ``LineItem(component, unit, Decimal(count), unit_price, Decimal(count) * unit_price)``
per ``(component, unit, unit_price)`` of ``specs`` and count of ``counts``; the
total is ``Decimal(0)`` plus each line's cost in order, as the general path adds them.
"""
make_cost = _cost_builder()
make_cost.__doc__ = "``Cost(total=..., status=..., line_items=..., snapshot=...)`` in USD."
with_cost = _event_copier()
with_cost.__doc__ = (
    "``dataclasses.replace(event, cost=cost)``: the event was validated when it was built."
)


__all__ = ["make_cost", "make_line", "make_priced_cost", "with_cost"]
