"""Names of the ``LLM_COST_TRACKER_*`` environment variables. Each constant equals its name.

Arguments to ``configure()`` win over these; these win over defaults. Only
``LLM_COST_TRACKER_DISABLED`` beats code.
"""

from __future__ import annotations

LLM_COST_TRACKER_DATABASE_URL = "LLM_COST_TRACKER_DATABASE_URL"
"""Where the ledger lives: ``sqlite:///path.db`` (default ``sqlite:///llm_costs.db``),
``postgresql://user:pass@host/db``, ``mysql://user:pass@host/db``, or ``none``."""

LLM_COST_TRACKER_EXPORTERS = "LLM_COST_TRACKER_EXPORTERS"
"""Extra exporters by entry-point name, comma separated: ``log,otel``."""

LLM_COST_TRACKER_INSTRUMENT = "LLM_COST_TRACKER_INSTRUMENT"
"""Which instrumentors to turn on: ``all`` (default) or a comma list such as ``openai,anthropic``; ``none`` patches nothing."""

LLM_COST_TRACKER_DISABLED_INSTRUMENTATIONS = "LLM_COST_TRACKER_DISABLED_INSTRUMENTATIONS"
"""Instrumentors to leave off even when ``all`` is asked for, comma separated."""

LLM_COST_TRACKER_DEFAULT_TAGS = "LLM_COST_TRACKER_DEFAULT_TAGS"
"""Tags on every call, ``key=value,key=value``."""

LLM_COST_TRACKER_PRICES_FILE = "LLM_COST_TRACKER_PRICES_FILE"
"""A YAML or JSON price file that overrides the bundled catalog."""

LLM_COST_TRACKER_MONTHLY_BUDGET = "LLM_COST_TRACKER_MONTHLY_BUDGET"
"""Monthly budget in USD (a decimal number)."""

LLM_COST_TRACKER_DAILY_BUDGET = "LLM_COST_TRACKER_DAILY_BUDGET"
"""Daily budget in USD (a decimal number)."""

LLM_COST_TRACKER_PER_CALL_BUDGET = "LLM_COST_TRACKER_PER_CALL_BUDGET"
"""Largest cost one call may have, in USD."""

LLM_COST_TRACKER_BUDGET_ON_EXCEED = "LLM_COST_TRACKER_BUDGET_ON_EXCEED"
"""What a budget does when crossed: ``notify`` (default), ``raise`` or ``block``."""

LLM_COST_TRACKER_QUEUE_SIZE = "LLM_COST_TRACKER_QUEUE_SIZE"
"""Events held in memory before new ones are dropped and counted (default 100000)."""

LLM_COST_TRACKER_QUEUE_MAX_BYTES = "LLM_COST_TRACKER_QUEUE_MAX_BYTES"
"""About how many bytes of events the queue holds before new ones are dropped and counted (default 64 MiB)."""

LLM_COST_TRACKER_SPOOL_DIR = "LLM_COST_TRACKER_SPOOL_DIR"
"""Folder for the on-disk spool that SQL exporters use while their database is unreachable."""

LLM_COST_TRACKER_DISABLED = "LLM_COST_TRACKER_DISABLED"
"""Kill switch: ``true`` turns the whole library into a no-op, whatever the code asks for."""
