"""Fixtures every test module shares: a clean environment and library state, and the stand-in server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import llm_cost_tracker as lct
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.cli._standin import StandInServer

# Throwaway PostgreSQL / MariaDB servers: postgres_url, mysql_url, ... (tests/db_servers.py).
pytest_plugins = ["db_servers"]


def require_servers() -> bool:
    """CI sets LLM_COST_TRACKER_REQUIRE_SERVERS=1: a test that needs a server fails instead of skipping."""
    return os.environ.get("LLM_COST_TRACKER_REQUIRE_SERVERS", "") not in ("", "0", "false")


@pytest.fixture(autouse=True)
def _clean_state(monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]) -> Iterator[None]:
    """Each test starts unconfigured, with no LLM_COST_TRACKER_* variables, zeroed counters, in a temp cwd."""
    for name in list(os.environ):
        if name.startswith("LLM_COST_TRACKER_") and name != "LLM_COST_TRACKER_REQUIRE_SERVERS":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    lct.shutdown()
    STATS.reset()
    yield
    lct.shutdown()


@pytest.fixture(scope="session")
def standin() -> Iterator[StandInServer]:
    """The local stand-in provider server, replaying the recorded payloads over real HTTP."""
    with StandInServer() as server:
        yield server
