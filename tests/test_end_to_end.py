"""The foundation end to end: 10,000 tracked calls from threads and tasks land once each, correctly tagged."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading

import llm_cost_tracker as lct
from llm_cost_tracker.cli._main import main

THREADS = 8
TASKS = 8
PER_WORKER = 10_000 // (THREADS + TASKS)  # 625


def spend_in_thread(n: int) -> None:
    with lct.with_tags(worker=f"thread-{n}", kind="thread"):
        for i in range(PER_WORKER):
            with lct.with_tags(call=i, parity="even" if i % 2 == 0 else "odd"):
                lct.track(provider="openai", model="gpt-4o-mini", usage={"input": i, "output": 1})


async def spend_in_task(n: int) -> None:
    async with lct.with_tags(worker=f"task-{n}", kind="task"):
        for i in range(PER_WORKER):
            with lct.with_tags(call=i, parity="even" if i % 2 == 0 else "odd"):
                lct.track(
                    provider="anthropic", model="claude-haiku-4-5", usage={"input": i, "output": 1}
                )
            if i % 50 == 0:
                await asyncio.sleep(0)


async def spend_in_tasks() -> None:
    await asyncio.gather(*(spend_in_task(n) for n in range(TASKS)))


def test_ten_thousand_calls_from_threads_and_tasks(tmp_path, capsys) -> None:
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    lct.configure(database_url=url, instrument=None, default_tags={"service": "api"})
    threads = [threading.Thread(target=spend_in_thread, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    asyncio.run(spend_in_tasks())
    for t in threads:
        t.join()
    assert lct.flush(30)

    connection = sqlite3.connect(db)
    assert connection.execute("select count(*) from llm_cost_tracker_calls").fetchone() == (10_000,)
    # Every call carries exactly its own worker, kind, call number, parity and the default tag.
    per_call = connection.execute(
        """
        select c.id, c.input_tokens,
               max(case when t.key = 'worker' then t.value end),
               max(case when t.key = 'kind' then t.value end),
               max(case when t.key = 'call' then t.value end),
               max(case when t.key = 'parity' then t.value end),
               max(case when t.key = 'service' then t.value end),
               count(*)
        from llm_cost_tracker_calls c join llm_cost_tracker_call_tags t on t.call_id = c.id
        group by c.id
        """
    ).fetchall()
    assert len(per_call) == 10_000
    workers: dict[str, int] = {}
    for _id, input_tokens, worker, kind, call, parity, service, n_tags in per_call:
        assert n_tags == 5
        assert service == "api"
        assert call == str(input_tokens)
        assert parity == ("even" if input_tokens % 2 == 0 else "odd")
        assert worker.startswith(kind)
        workers[worker] = workers.get(worker, 0) + 1
    assert workers == {
        **{f"thread-{n}": PER_WORKER for n in range(THREADS)},
        **{f"task-{n}": PER_WORKER for n in range(TASKS)},
    }
    models = dict(
        connection.execute("select model, count(*) from llm_cost_tracker_calls group by model")
    )
    assert models == {"gpt-4o-mini": 5000, "claude-haiku-4-5": 5000}

    # The CLI sees the same ledger.
    lct.shutdown()
    capsys.readouterr()
    assert main(["sql", "--database-url", url, "select count(*) from llm_cost_tracker_calls"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].strip() == "10000"


def test_console_script_prints_the_count(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    lct.configure(database_url=url, instrument=None)
    for _ in range(3):
        lct.track(provider="openai", model="m", usage={"input": 1})
    assert lct.flush()
    script = [
        sys.executable,
        "-m",
        "llm_cost_tracker",
        "sql",
        "--database-url",
        url,
        "--format",
        "csv",
        "select count(*) as n from llm_cost_tracker_calls",
    ]
    result = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "n\n3\n"
