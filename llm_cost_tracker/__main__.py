"""``python -m llm_cost_tracker`` runs the ``llm-cost-tracker`` command."""

from __future__ import annotations

from .cli import console_main

console_main()
