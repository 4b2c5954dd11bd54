"""The instrumentor base, after OpenTelemetry's BaseInstrumentor: idempotent patching from a table.

A subclass declares ``instrumentation_dependencies()`` and ``wrapped_methods()``,
a table of ``(module, "Class.method", wrapper)``. ``instrument()`` patches each
entry with ``wrapt.wrap_function_wrapper``; ``uninstrument()`` puts back every
attribute it wrapped. An entry whose module or attribute the installed library
version lacks is skipped (older and newer SDKs differ), not an error.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from collections.abc import Callable, Collection, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import wrapt

from .._stats import STATS

_logger = logging.getLogger(__name__)

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]
WrappedMethod = tuple[str, str, Wrapper]  # (module, "Class.method", wrapper)

# What wrap_function_wrapper installs. In wrapt 2 a FunctionWrapper is not a
# wrapt.ObjectProxy (both derive from a private base), so name both.
_PROXY_TYPES = (wrapt.ObjectProxy, wrapt.FunctionWrapper)

_REQUIREMENT_RE = re.compile(
    r"^\s*([A-Za-z0-9_.\-]+)\s*(?:(>=|<|==|>|<=)\s*([0-9][0-9.]*))?\s*(?:,\s*(>=|<|==|>|<=)\s*([0-9][0-9.]*))?\s*$"
)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def _satisfies(installed: str, op: str, wanted: str) -> bool:
    have, want = _version_tuple(installed), _version_tuple(wanted)
    width = max(len(have), len(want))
    have += (0,) * (width - len(have))
    want += (0,) * (width - len(want))
    return {
        ">=": have >= want,
        ">": have > want,
        "<": have < want,
        "<=": have <= want,
        "==": have == want,
    }[op]


def missing_dependency(requirements: Collection[str]) -> str | None:
    """Return why the first unmet requirement (``"openai >= 1.0, < 4"``) fails, or None when all are met."""
    for requirement in requirements:
        match = _REQUIREMENT_RE.match(requirement)
        if match is None:
            raise ValueError(f"cannot parse requirement {requirement!r}")
        name = match.group(1)
        try:
            installed = version(name)
        except PackageNotFoundError:
            return f"{name} is not installed"
        for op, wanted in ((match.group(2), match.group(3)), (match.group(4), match.group(5))):
            if op and not _satisfies(installed, op, wanted):
                return f"{name} {installed} does not satisfy {requirement!r}"
    return None


class BaseInstrumentor:
    """Patch a library's billed methods; ``instrument()``/``uninstrument()`` are idempotent.

    One instance per subclass (as in OpenTelemetry), so instrumenting from two
    places never wraps a method twice.
    """

    name: str = ""
    _instances: dict[type[BaseInstrumentor], BaseInstrumentor] = {}
    _class_lock = threading.Lock()

    def __new__(cls, *args: Any, **kwargs: Any) -> BaseInstrumentor:
        with BaseInstrumentor._class_lock:
            instance = BaseInstrumentor._instances.get(cls)
            if instance is None:
                instance = super().__new__(cls)
                instance._patched = []
                instance._is_instrumented = False
                instance._lock = threading.RLock()
                BaseInstrumentor._instances[cls] = instance
            return instance

    _patched: list[tuple[Any, str]]
    _is_instrumented: bool
    _lock: threading.RLock

    def instrumentation_dependencies(self) -> Collection[str]:
        """Requirements such as ``"openai >= 1.0"`` that must be installed to instrument."""
        raise NotImplementedError

    def wrapped_methods(self, **kwargs: Any) -> Sequence[WrappedMethod]:
        """The table of ``(module, "Class.method", wrapper)`` to patch; ``kwargs`` come from instrument()."""
        raise NotImplementedError

    @property
    def is_instrumented(self) -> bool:
        return self._is_instrumented

    def instrument(self, **kwargs: Any) -> bool:
        """Patch the library; return whether it is now instrumented. A missing library is a logged no-op."""
        with self._lock:
            if self._is_instrumented:
                _logger.warning(
                    "%s is already instrumented; instrument() does nothing", type(self).__name__
                )
                return True
            problem = missing_dependency(self.instrumentation_dependencies())
            if problem is not None:
                _logger.info("%s: not instrumenting, %s", type(self).__name__, problem)
                return False
            for module_name, attribute, wrapper in self.wrapped_methods(**kwargs):
                self._wrap(module_name, attribute, wrapper)
            self._is_instrumented = True
            return True

    def _wrap(self, module_name: str, attribute: str, wrapper: Wrapper) -> None:
        try:
            module = importlib.import_module(module_name)
            owner: Any = module
            *path, name = attribute.split(".")
            for part in path:
                owner = getattr(owner, part)
            if not hasattr(owner, name):
                raise AttributeError(name)
        except (ImportError, AttributeError):
            _logger.debug(
                "%s: %s.%s does not exist in this version; skipped",
                type(self).__name__,
                module_name,
                attribute,
            )
            return
        wrapt.wrap_function_wrapper(owner, name, wrapper)
        self._patched.append((owner, name))

    def uninstrument(self, **kwargs: Any) -> None:
        """Restore every attribute ``instrument()`` wrapped; a no-op when not instrumented."""
        with self._lock:
            if not self._is_instrumented:
                return
            while self._patched:
                owner, name = self._patched.pop()
                current = (
                    owner.__dict__.get(name)
                    if isinstance(owner, type)
                    else getattr(owner, name, None)
                )
                if isinstance(current, _PROXY_TYPES):
                    setattr(owner, name, current.__wrapped__)
                else:
                    STATS.incr("errors.uninstrument.not_a_proxy")
                    _logger.warning(
                        "%s: %r.%s was replaced by someone else; left as is",
                        type(self).__name__,
                        owner,
                        name,
                    )
            self._is_instrumented = False
