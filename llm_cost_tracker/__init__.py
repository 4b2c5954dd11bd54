"""llm-cost-tracker: who spent how much on which LLM calls, recorded in-process.

Importing this package patches nothing, starts no thread, reads no config and
opens no database; ``configure()`` (or the first recorded call) does.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from ._api import configure, flush, get_config, shutdown
from ._bus import Exporter
from ._errors import BudgetExceededError, ConfigurationError, LLMCostTrackerError
from ._events import Cost, LineItem, TokenUsage, UsageEvent
from ._stats import stats
from ._suppress import is_suppressed, suppressed
from ._tags import with_tags
from ._track import track
from .budgets import Budgets
from .instrumentation._extraction import Extraction
from .instrumentation._hosts import register_host
from .instrumentation.httpx._parsers import register_parser

try:
    __version__ = _version("llm-cost-tracker")
except _PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "BudgetExceededError",
    "Budgets",
    "ConfigurationError",
    "Cost",
    "Exporter",
    "Extraction",
    "LLMCostTrackerError",
    "LineItem",
    "TokenUsage",
    "UsageEvent",
    "__version__",
    "configure",
    "flush",
    "get_config",
    "is_suppressed",
    "register_host",
    "register_parser",
    "shutdown",
    "stats",
    "suppressed",
    "track",
    "with_tags",
]
