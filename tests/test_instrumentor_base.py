"""BaseInstrumentor: idempotent instrument(), a clean uninstrument(), missing libraries as no-ops."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

import pytest
from llm_cost_tracker.instrumentation._base import (
    BaseInstrumentor,
    WrappedMethod,
    missing_dependency,
)


class Target:
    def method(self, x: int) -> int:
        return x * 2


def _double_again(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    return wrapped(*args, **kwargs) * 10


class TargetInstrumentor(BaseInstrumentor):
    def instrumentation_dependencies(self) -> Collection[str]:
        return ["wrapt >= 1.0"]

    def wrapped_methods(self, **kwargs: Any) -> Sequence[WrappedMethod]:
        return [
            (__name__, "Target.method", _double_again),
            (__name__, "Target.missing_in_this_version", _double_again),
            ("module_that_does_not_exist", "X.y", _double_again),
        ]


class UninstallableInstrumentor(BaseInstrumentor):
    def instrumentation_dependencies(self) -> Collection[str]:
        return ["no-such-distribution-xyz >= 1"]

    def wrapped_methods(self, **kwargs: Any) -> Sequence[WrappedMethod]:
        raise AssertionError("must not be asked for its table when its library is missing")


def test_instrument_wraps_uninstrument_restores_the_original(
    caplog: pytest.LogCaptureFixture,
) -> None:
    original = Target.__dict__["method"]
    instrumentor = TargetInstrumentor()
    assert instrumentor is TargetInstrumentor()  # one instance per class
    assert instrumentor.instrument()
    assert Target().method(2) == 40
    with caplog.at_level(logging.WARNING):
        assert instrumentor.instrument()  # twice: warns, wraps nothing more
    assert "already instrumented" in caplog.text
    assert Target().method(2) == 40
    instrumentor.uninstrument()
    assert Target.__dict__["method"] is original
    assert Target().method(2) == 4
    assert not instrumentor.is_instrumented
    instrumentor.uninstrument()  # a no-op now


def test_a_missing_library_is_a_logged_no_op(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert UninstallableInstrumentor().instrument() is False
    assert "no-such-distribution-xyz is not installed" in caplog.text


@pytest.mark.parametrize(
    ("requirement", "problem"),
    [
        ("wrapt >= 1.0", None),
        ("wrapt >= 999", "does not satisfy"),
        ("wrapt >= 1, < 2", "does not satisfy"),
        ("nope-not-here", "is not installed"),
    ],
)
def test_requirements(requirement: str, problem: str | None) -> None:
    import wrapt

    result = missing_dependency([requirement])
    if problem is None or (requirement == "wrapt >= 1, < 2" and wrapt.__version__.startswith("1.")):
        assert result is None
    else:
        assert result is not None
        assert problem in result
