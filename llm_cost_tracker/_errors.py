"""The exception hierarchy: everything the library raises on purpose derives from LLMCostTrackerError."""

from __future__ import annotations


class LLMCostTrackerError(Exception):
    """Base class of every error llm-cost-tracker raises on purpose."""


class ConfigurationError(LLMCostTrackerError, ValueError):
    """A setting, price file or database URL is invalid; the message names it."""
