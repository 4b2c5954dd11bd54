"""``llm-cost-tracker demo``: the console script, real SDKs, the stand-in server, a ledger and a report."""

from __future__ import annotations

import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from llm_cost_tracker.cli._demo import (
    ANTHROPIC_STEPS,
    ASYNC_OPENAI_STEPS,
    OPENAI_STEPS,
    REQUESTS_STEP,
)
from llm_cost_tracker.cli._demo_bedrock import BEDROCK_STEPS

BEDROCK_CALLS = sum(step[3] for step in BEDROCK_STEPS)
REQUESTS_CALLS = REQUESTS_STEP[2]  # plain requests to a gateway registered as OpenAI

SCRIPT = Path(sys.executable).with_name("llm-cost-tracker")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_COST_TRACKER_")}
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One demo run in a fresh folder with the default settings, shared by the tests below."""
    cwd = tmp_path_factory.mktemp("demo")
    return cwd, _run(["demo"], cwd)


def test_demo_records_every_call_in_the_default_sqlite_ledger(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    cwd, result = demo_run
    assert result.returncode == 0, result.stderr
    expected = (
        sum(s.times for s in OPENAI_STEPS + ASYNC_OPENAI_STEPS + ANTHROPIC_STEPS)
        + BEDROCK_CALLS
        + REQUESTS_CALLS
    )
    assert f"Made {expected} LLM calls; recorded {expected} events" in result.stdout
    db = sqlite3.connect(cwd / "llm_costs.db")
    try:
        calls = db.execute("SELECT COUNT(*) FROM llm_cost_tracker_calls").fetchone()[0]
        demo_tagged = db.execute(
            "SELECT COUNT(*) FROM llm_cost_tracker_call_tags WHERE key = 'demo' AND value = 'true'"
        ).fetchone()[0]
        providers = dict(
            db.execute(
                "SELECT provider, COUNT(*) FROM llm_cost_tracker_calls GROUP BY provider"
            ).fetchall()
        )
        tenants = {
            r[0]
            for r in db.execute(
                "SELECT value FROM llm_cost_tracker_call_tags WHERE key = 'tenant_id'"
            )
        }
        cache_reads = db.execute(
            "SELECT SUM(cache_read_tokens) FROM llm_cost_tracker_calls WHERE provider = 'anthropic'"
        ).fetchone()[0]
        streams = db.execute(
            "SELECT COUNT(*) FROM llm_cost_tracker_calls WHERE stream = 1"
        ).fetchone()[0]
        errors = db.execute(
            "SELECT COUNT(*) FROM llm_cost_tracker_calls WHERE status = 'error'"
        ).fetchone()[0]
    finally:
        db.close()
    assert calls == expected
    assert demo_tagged == expected
    assert providers == {
        "openai": sum(s.times for s in OPENAI_STEPS + ASYNC_OPENAI_STEPS) + REQUESTS_CALLS,
        "anthropic": sum(s.times for s in ANTHROPIC_STEPS),
        "aws_bedrock": BEDROCK_CALLS,
    }
    assert tenants == {"acme", "globex"}
    assert cache_reads >= 3 * 1163  # anthropic_cache_read, three times
    assert streams >= 6
    assert errors == 1  # the recorded 429


def test_demo_writes_the_report_and_prints_queries_that_run(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    cwd, result = demo_run
    report = cwd / "llm-cost-report.html"
    assert f"Report: {report}" in result.stdout
    page = report.read_text()
    for section in ('id="tag-feature"', 'id="tag-tenant_id"', 'id="daily-chart"', "support-chat"):
        assert section in page
    queries = [
        line.strip()
        for line in result.stdout.splitlines()
        if line.strip().startswith("llm-cost-tracker sql")
    ]
    assert len(queries) == 3
    for line in queries:
        args = shlex.split(line)[1:]
        ran = _run(args, cwd)
        assert ran.returncode == 0, ran.stderr
        assert "row" in ran.stdout


def test_demo_honours_database_url_and_output(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'demo.db'}"
    result = _run(["demo", "--database-url", url, "-o", "out/r.html"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sub" / "demo.db").exists()
    assert (tmp_path / "out" / "r.html").exists()
    assert f"--database-url '{url}'" in result.stdout
    assert not (tmp_path / "llm_costs.db").exists()


def test_demo_into_postgres(fresh_postgres_url: str, tmp_path: Path) -> None:
    import psycopg

    result = _run(["demo", "--database-url", fresh_postgres_url, "--no-report"], tmp_path)
    assert result.returncode == 0, result.stderr
    expected = (
        sum(s.times for s in OPENAI_STEPS + ASYNC_OPENAI_STEPS + ANTHROPIC_STEPS)
        + BEDROCK_CALLS
        + REQUESTS_CALLS
    )
    with psycopg.connect(fresh_postgres_url) as connection:
        calls, priced = connection.execute(
            "SELECT COUNT(*), COUNT(total_cost) FILTER (WHERE provider <> 'aws_bedrock')"
            " FROM llm_cost_tracker_calls"
        ).fetchone()
    assert calls == expected
    # all but the 429 and the stream that reported no usage (Bedrock's prices are the catalog's concern)
    assert priced == expected - BEDROCK_CALLS - 2
    assert not (tmp_path / "llm-cost-report.html").exists()
