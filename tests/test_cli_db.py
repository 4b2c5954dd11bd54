"""``llm-cost-tracker migrate`` and ``sql``: formats, errors and --help on every command."""

from __future__ import annotations

import json

import pytest

import llm_cost_tracker as lct
from llm_cost_tracker.cli._main import COMMANDS, main


@pytest.fixture
def ledger(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    lct.configure(database_url=url, instrument=None, synchronous=True)
    with lct.with_tags(feature="chat"):
        lct.track(provider="openai", model="gpt-4o", usage={"input": 10, "output": 2})
        lct.track(provider="openai", model="gpt-4o", usage={"input": 5, "output": 1})
    with lct.with_tags(feature="search"):
        lct.track(provider="anthropic", model="claude-haiku-4-5", usage={"input": 7, "output": 3})
    lct.shutdown()
    return url


QUERY = (
    "select t.value as feature, count(*) as calls, sum(c.input_tokens) as input "
    "from llm_cost_tracker_calls c join llm_cost_tracker_call_tags t on t.call_id = c.id and t.key = 'feature' "
    "group by t.value order by t.value"
)


def test_table_format(ledger: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "--database-url", ledger, QUERY]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["feature", "calls", "input"]
    assert lines[2].split() == ["chat", "2", "15"]
    assert lines[3].split() == ["search", "1", "7"]
    assert lines[-1] == "(2 rows)"


def test_csv_and_json_formats(ledger: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "--database-url", ledger, "--format", "csv", QUERY]) == 0
    assert capsys.readouterr().out == "feature,calls,input\nchat,2,15\nsearch,1,7\n"
    assert main(["sql", "--database-url", ledger, "--format", "json", QUERY]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"feature": "chat", "calls": 2, "input": 15},
        {"feature": "search", "calls": 1, "input": 7},
    ]


def test_database_url_from_the_environment(
    ledger: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLM_COST_TRACKER_DATABASE_URL", ledger)
    assert main(["sql", "--format", "csv", "select count(*) as n from llm_cost_tracker_calls"]) == 0
    assert capsys.readouterr().out == "n\n3\n"


def test_bad_sql_is_a_usage_error(ledger: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "--database-url", ledger, "select nope from nowhere"]) == 2
    assert "no such table: nowhere" in capsys.readouterr().err


def test_migrate_reports_what_it_did(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert main(["migrate", "--database-url", url]) == 0
    assert "applied" in capsys.readouterr().out
    assert main(["migrate", "--database-url", url]) == 0
    assert "is up to date" in capsys.readouterr().out


def test_unsupported_url_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--database-url", "oracle://u:secret@h/db"]) == 2
    err = capsys.readouterr().err
    assert "unsupported database URL" in err
    assert "secret" not in err


@pytest.mark.parametrize("command", [c[0] for c in COMMANDS])
def test_every_command_has_help_with_database_url(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--database-url" in capsys.readouterr().out
