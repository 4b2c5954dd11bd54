"""The ``opentelemetry_instrumentor`` entry point: cost tracking for programs run under ``opentelemetry-instrument``.

OpenTelemetry's loader instantiates every instrumentor registered in that group
and calls ``instrument()``; ours runs the same auto-initializer as
``llm-cost-instrument``, configured from the ``LLM_COST_TRACKER_*`` environment.
Set ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=llm_cost_tracker`` to leave it off.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined,unused-ignore]
    BaseInstrumentor,
)


class LLMCostTrackerInstrumentor(BaseInstrumentor):  # type: ignore[misc,unused-ignore]
    """Turn on llm-cost-tracker (its own SDK instrumentors, exporters and tags) from the environment."""

    def instrumentation_dependencies(self) -> Collection[str]:
        # Our own instrumentors check for openai/anthropic/httpx; none is required here.
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        from . import initialize

        initialize()  # never raises: a failure is logged and the program runs on

    def _uninstrument(self, **kwargs: Any) -> None:
        from .. import shutdown
        from . import reset

        shutdown()
        reset()
