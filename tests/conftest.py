"""Fixtures every test module shares: a clean environment and library state, and the stand-in server."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

import llm_cost_tracker as lct
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.cli._standin import StandInServer

# Throwaway PostgreSQL / MariaDB servers: postgres_url, mysql_url, ... (tests/db_servers.py).
pytest_plugins = ["db_servers"]


def next_utc_boundary(now: datetime, unit: str) -> datetime:
    """The next start of a UTC ``hour``, ``day`` or ``month`` after ``now``."""
    now = now.astimezone(timezone.utc)
    if unit == "hour":
        return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day + timedelta(days=1)
    if unit == "month":
        return (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    raise ValueError(f"unknown unit {unit!r}")


def wait_out_utc_boundary(unit: str, margin: float) -> None:
    """Sleep past the next UTC hour/day/month start when it is less than ``margin`` seconds away.

    Budgets count spend per UTC day and month, and the block preflight keeps
    rates for the UTC hour, on the library's own clock (``time.time()``):
    nothing lets a test hand it a fixed time. A test that spends on the real
    clock and expects its totals to add up calls this first (through the
    fixtures below), so that no period rolls over while it runs, whatever the
    time of day it starts at: 23:59:59 on 31 December included.
    """
    now = datetime.now(timezone.utc)
    left = (next_utc_boundary(now, unit) - now).total_seconds()
    if left < margin:
        time.sleep(left + 0.1)


@pytest.fixture
def same_utc_day() -> None:
    """The test runs within one UTC day, so within one UTC month: budgets' daily and monthly periods hold."""
    wait_out_utc_boundary("day", margin=120)


@pytest.fixture
def same_utc_month() -> None:
    """The test runs within one UTC month; for tests that take a minute or more (monthly budgets only)."""
    wait_out_utc_boundary("month", margin=300)


@pytest.fixture
def same_utc_hour() -> None:
    """The test runs within one UTC hour: the block preflight's cached rates are not renewed under it."""
    wait_out_utc_boundary("hour", margin=30)


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


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback TCP port that refuses connections for the whole test.

    Its socket is bound and never listens: connecting fails at once, and no
    other program can take the port meanwhile, unlike a fixed "unused" port
    (1, 9) that a machine may well be serving.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="session")
def standin() -> Iterator[StandInServer]:
    """The local stand-in provider server, replaying the recorded payloads over real HTTP."""
    with StandInServer() as server:
        yield server
