"""A local stand-in for provider APIs that replays recorded payloads over real HTTP.

Used by ``llm-cost-tracker demo`` and by the tests: the real SDKs talk to it
with ``base_url`` pointing at a scenario, so every capture path runs offline.
"""

from __future__ import annotations

from .server import Scenario, StandInServer, load_payloads

__all__ = ["Scenario", "StandInServer", "load_payloads"]
