"""The command line as a user meets it: help with examples everywhere, clear errors, documented exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_report import make_events, write_ledger

from llm_cost_tracker.cli._main import COMMANDS, build_parser, main

BIN = Path(sys.executable).parent
DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


@pytest.mark.parametrize("command", sorted({name for name, _, _ in COMMANDS}))
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "--database-url" in out
    assert f"llm-cost-tracker {command}" in out


def test_llm_cost_instrument_help_has_examples() -> None:
    result = subprocess.run(
        [str(BIN / "llm-cost-instrument"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "examples:" in result.stdout
    assert "LLM_COST_TRACKER_DATABASE_URL" in result.stdout


def test_docs_list_every_command_and_exit_code() -> None:
    text = DOCS.read_text()
    for name in {name for name, _, _ in COMMANDS}:
        assert f"llm-cost-tracker {name}" in text
    for code in ("| 0 ", "| 1 ", "| 2 ", "| 3 "):
        assert code in text


def test_unreachable_database_exits_3(capsys: pytest.CaptureFixture[str], closed_port: int) -> None:
    url = f"postgresql://nobody@127.0.0.1:{closed_port}/nothing"
    assert main(["report", "--database-url", url]) == 3
    err = capsys.readouterr().err
    assert f"cannot read {url}" in err
    assert main(["sql", "--database-url", url, "SELECT 1"]) == 3


def test_bad_url_and_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--database-url", "ftp://example.com/x"]) == 2
    assert "unsupported database URL" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--format", "pdf"])
    assert exit_info.value.code == 2


def test_empty_ledger_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert main(["report", "--database-url", url]) == 2
    assert "has no ledger tables yet" in capsys.readouterr().err
    assert main(["migrate", "--database-url", url]) == 0
    capsys.readouterr()
    assert main(["report", "--database-url", url, "-o", str(tmp_path / "r.html")]) == 0
    assert "no calls recorded in this period" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    write_ledger(url, make_events(300))
    result = subprocess.run(
        f"'{BIN / 'llm-cost-tracker'}' sql --database-url '{url}' "
        "'SELECT id FROM llm_cost_tracker_calls' | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.startswith("id")
    assert "Traceback" not in result.stderr


def test_parser_lists_the_shell_commands() -> None:
    names = {name for name, _, _ in COMMANDS}
    assert {"report", "demo", "doctor"} <= names
    assert build_parser().prog == "llm-cost-tracker"


def test_a_missing_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As if psycopg were not installed: importing it fails.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    url = "postgresql://app@127.0.0.1:1/llm"
    assert main(["report", "--database-url", url]) == 2
    assert "pip install 'llm-cost-tracker[postgres]'" in capsys.readouterr().err
    assert main(["doctor", "--database-url", url]) == 1
    out = capsys.readouterr().out
    assert "[fail] database driver:" in out
    assert "llm-cost-tracker[postgres]" in out
