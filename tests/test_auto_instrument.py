"""``llm-cost-instrument``: unmodified programs (scripts, ``-m``, console scripts, forking ones) land in the ledger."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llm_cost_tracker.auto._cli import SITE_DIR, build_parser, main, prepare_environment
from llm_cost_tracker.cli._standin import StandInServer

BIN = Path(sys.executable).parent
INSTRUMENT = BIN / "llm-cost-instrument"

# An application that knows nothing about llm_cost_tracker: plain openai SDK calls.
APP = textwrap.dedent(
    """
    import os, sys
    import openai

    def call(n=1):
        client = openai.OpenAI(base_url=os.environ["APP_BASE_URL"], api_key="sk-test", max_retries=0)
        for _ in range(n):
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        return reply

    if __name__ == "__main__":
        reply = call(int(os.environ.get("APP_CALLS", "2")))
        print("app ok", reply.usage.prompt_tokens)
        assert "llm_cost_tracker" in sys.modules  # loaded by the sitecustomize, not by us
    """
)


def _env(standin: StandInServer, db: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_COST_TRACKER_")}
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["APP_BASE_URL"] = standin.scenario_url("openai_chat_cached_gpt4omini", "/v1")
    env["LLM_COST_TRACKER_DATABASE_URL"] = f"sqlite:///{db}"
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def _rows(db: Path) -> list[tuple[str, str, int, str]]:
    """(model, tags as k=v sorted, cache_read_tokens, cost_status) per call."""
    connection = sqlite3.connect(db)
    try:
        return connection.execute(
            """SELECT c.model,
                      (SELECT group_concat(k, ',') FROM (SELECT t.key || '=' || t.value AS k
                         FROM llm_cost_tracker_call_tags t WHERE t.call_id = c.id ORDER BY t.key)),
                      c.cache_read_tokens, c.cost_status
               FROM llm_cost_tracker_calls c ORDER BY c.occurred_at"""
        ).fetchall()
    finally:
        connection.close()


def test_a_script_that_never_imports_us_lands_in_the_database_with_default_tags(
    standin: StandInServer, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    assert "llm_cost_tracker" not in APP.split("__main__")[0]
    db = tmp_path / "ledger.db"
    env = _env(standin, db)
    del env["LLM_COST_TRACKER_DATABASE_URL"]
    result = _run(
        [
            str(INSTRUMENT),
            "--database-url",
            f"sqlite:///{db}",
            "--default-tags",
            "service=checkout,env=test",
            "--",
            "python",
            str(app),
        ],
        env,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "app ok 1149" in result.stdout
    rows = _rows(db)
    assert len(rows) == 2
    for model, tags, cache_read, status in rows:
        assert model == "gpt-4o-mini-2024-07-18"
        assert tags == "env=test,service=checkout"
        assert cache_read == 1024
        assert status == "priced"


def test_python_dash_m_and_console_scripts(standin: StandInServer, tmp_path: Path) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(APP)
    db = tmp_path / "ledger.db"
    env = _env(standin, db, APP_CALLS="1", LLM_COST_TRACKER_DEFAULT_TAGS="entry=module")
    result = _run([str(INSTRUMENT), "--", "python", "-m", "shop"], env, tmp_path)
    assert result.returncode == 0, result.stderr

    # A console script: an executable on PATH with a shebang, as pip installs them.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "shop-cli"
    script.write_text(f"#!{sys.executable}\n" + APP)
    script.chmod(0o755)
    env = _env(standin, db, APP_CALLS="1")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    result = _run(
        [str(INSTRUMENT), "--default-tags", "entry=script", "--", "shop-cli"], env, tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert sorted(tags for _, tags, _, _ in _rows(db)) == ["entry=module", "entry=script"]


FORKING_APP = APP.split("if __name__")[0] + textwrap.dedent(
    """
    import multiprocessing

    def child():
        call(1)

    if __name__ == "__main__":
        call(1)  # the parent records one before forking: its worker thread is running
        context = multiprocessing.get_context("fork")
        workers = [context.Process(target=child) for _ in range(3)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        pid = os.fork()
        if pid == 0:  # a pre-forking server's worker: exits through sys.exit
            call(2)
            sys.exit(0)
        os.waitpid(pid, 0)
        print("parent done", [w.exitcode for w in workers])
    """
)


def test_forked_workers_deliver_their_calls(standin: StandInServer, tmp_path: Path) -> None:
    app = tmp_path / "forking.py"
    app.write_text(FORKING_APP)
    db = tmp_path / "ledger.db"
    env = _env(standin, db, LLM_COST_TRACKER_DEFAULT_TAGS="kind=fork")
    result = _run([str(INSTRUMENT), "--", "python", str(app)], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "parent done [0, 0, 0]" in result.stdout
    rows = _rows(db)
    assert len(rows) == 1 + 3 + 2
    assert {tags for _, tags, _, _ in rows} == {"kind=fork"}


def test_a_failing_setup_never_breaks_the_program(standin: StandInServer, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP.replace('assert "llm_cost_tracker" in sys.modules', "sys.exit(3)"))
    db = tmp_path / "ledger.db"
    env = _env(standin, db, LLM_COST_TRACKER_DATABASE_URL="bogus://nowhere")
    result = _run([str(INSTRUMENT), "--", "python", str(app)], env, tmp_path)
    assert result.returncode == 3  # the program's own exit code, through exec
    assert "app ok" in result.stdout
    assert "auto-instrumentation failed; the program runs without cost tracking" in result.stderr
    assert not db.exists()


def test_kill_switch_turns_it_off(standin: StandInServer, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    db = tmp_path / "ledger.db"
    env = _env(standin, db, LLM_COST_TRACKER_DISABLED="true")
    result = _run([str(INSTRUMENT), "--", "python", str(app)], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not db.exists()


def test_a_shadowed_sitecustomize_still_runs(standin: StandInServer, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("import os\nos.environ['THEIRS_RAN'] = 'yes'\n")
    app = tmp_path / "app.py"
    app.write_text(APP + "\n    print('theirs', os.environ.get('THEIRS_RAN'))\n")
    db = tmp_path / "ledger.db"
    env = _env(standin, db, APP_CALLS="1", PYTHONPATH=str(theirs))
    result = _run([str(INSTRUMENT), "--", "python", str(app)], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "theirs yes" in result.stdout
    assert len(_rows(db)) == 1


def test_opentelemetry_instrument_loads_our_entry_point(
    standin: StandInServer, tmp_path: Path
) -> None:
    otel = BIN / "opentelemetry-instrument"
    assert otel.exists(), "pip install opentelemetry-instrumentation (in the dev extra)"
    app = tmp_path / "app.py"
    app.write_text(APP)
    db = tmp_path / "ledger.db"
    env = _env(
        standin,
        db,
        LLM_COST_TRACKER_DEFAULT_TAGS="via=otel",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    result = _run([str(otel), "python", str(app)], env, tmp_path)
    assert result.returncode == 0, result.stderr
    rows = _rows(db)
    assert len(rows) == 2
    assert {tags for _, tags, _, _ in rows} == {"via=otel"}


def test_flags_become_environment_variables() -> None:
    args = build_parser().parse_args(
        [
            "--database-url",
            "postgresql://app@db/llm",
            "--exporters",
            "log",
            "--instrument",
            "openai",
            "--disabled-instrumentations",
            "httpx",
            "--default-tags",
            "a=1",
            "--monthly-budget",
            "500",
            "--daily-budget",
            "20",
            "--per-call-budget",
            "1.5",
            "--",
            "python",
            "app.py",
        ]
    )
    env = prepare_environment(
        args, {"PYTHONPATH": "/already/there", "LLM_COST_TRACKER_EXPORTERS": "otel"}
    )
    assert env["LLM_COST_TRACKER_DATABASE_URL"] == "postgresql://app@db/llm"
    assert env["LLM_COST_TRACKER_EXPORTERS"] == "log"  # the flag wins over the inherited variable
    assert env["LLM_COST_TRACKER_INSTRUMENT"] == "openai"
    assert env["LLM_COST_TRACKER_DISABLED_INSTRUMENTATIONS"] == "httpx"
    assert env["LLM_COST_TRACKER_DEFAULT_TAGS"] == "a=1"
    assert env["LLM_COST_TRACKER_MONTHLY_BUDGET"] == "500"
    assert env["LLM_COST_TRACKER_DAILY_BUDGET"] == "20"
    assert env["LLM_COST_TRACKER_PER_CALL_BUDGET"] == "1.5"
    assert env["PYTHONPATH"] == f"{SITE_DIR}{os.pathsep}/already/there"
    assert (Path(SITE_DIR) / "sitecustomize.py").exists()
    assert args.command[-2:] == ["python", "app.py"]


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        ([], 2, "give the command to run"),
        (["--default-tags", "oops", "--", "python"], 2, "expected key=value"),
        (["--monthly-budget", "lots", "--", "python"], 2, "decimal amounts"),
        (["--", "no-such-command-anywhere"], 127, "command not found"),
    ],
)
def test_cli_errors(
    argv: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == code
    assert message in capsys.readouterr().err


WSGI_APP = textwrap.dedent(
    """
    import os
    import openai

    def app(environ, start_response):
        client = openai.OpenAI(base_url=os.environ["APP_BASE_URL"], api_key="sk-test", max_retries=0)
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        body = f"{os.getpid()} {reply.usage.prompt_tokens}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    """
)


def test_gunicorn_workers_deliver_their_calls(standin: StandInServer, tmp_path: Path) -> None:
    import signal
    import socket
    import time
    import urllib.request

    gunicorn = BIN / "gunicorn"
    assert gunicorn.exists(), "pip install gunicorn (in the dev extra)"
    (tmp_path / "wsgi_app.py").write_text(WSGI_APP)
    db = tmp_path / "ledger.db"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = _env(standin, db)
    server = subprocess.Popen(
        [
            str(INSTRUMENT),
            "--default-tags",
            "server=gunicorn",
            "--",
            "gunicorn",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(tmp_path),
            "wsgi_app:app",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        replies = []
        while len(replies) < 6:
            assert time.monotonic() < deadline, "gunicorn did not answer"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as reply:
                    replies.append(reply.read().decode())
            except OSError:
                time.sleep(0.2)
        assert all(r.endswith(" 1149") for r in replies)
    finally:
        server.send_signal(signal.SIGTERM)  # workers exit through sys.exit: atexit delivers
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    rows = _rows(db)
    assert len(rows) == 6
    assert {tags for _, tags, _, _ in rows} == {"server=gunicorn"}
