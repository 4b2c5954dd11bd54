"""configure(): argument > environment > default, warnings for bad variables, the kill switch, idempotence."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from llm_cost_tracker.exporters.log import LogExporter
from llm_cost_tracker.exporters.sqlite import SQLiteExporter

import llm_cost_tracker as lct
from llm_cost_tracker import _api
from llm_cost_tracker._config import DEFAULT_DATABASE_URL, resolve
from llm_cost_tracker.testing import InMemoryExporter


def test_defaults() -> None:
    config = resolve()
    assert config.database_url == DEFAULT_DATABASE_URL
    assert config.instrument == ("all",)
    assert config.exporters == ()
    assert config.queue_size == 100_000


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_COST_TRACKER_DATABASE_URL", "sqlite:///env.db")
    monkeypatch.setenv("LLM_COST_TRACKER_EXPORTERS", "log, otel")
    monkeypatch.setenv("LLM_COST_TRACKER_INSTRUMENT", "openai,anthropic")
    monkeypatch.setenv("LLM_COST_TRACKER_DISABLED_INSTRUMENTATIONS", "httpx")
    monkeypatch.setenv("LLM_COST_TRACKER_DEFAULT_TAGS", "service=api, team = search")
    monkeypatch.setenv("LLM_COST_TRACKER_PRICES_FILE", "prices.yaml")
    monkeypatch.setenv("LLM_COST_TRACKER_QUEUE_SIZE", "500")
    monkeypatch.setenv("LLM_COST_TRACKER_QUEUE_MAX_BYTES", "1048576")
    config = resolve()
    assert config.database_url == "sqlite:///env.db"
    assert config.exporters == ("log", "otel")
    assert config.instrument == ("openai", "anthropic")
    assert config.disabled_instrumentations == ("httpx",)
    assert config.default_tags == {"service": "api", "team": "search"}
    assert config.prices_file == "prices.yaml"
    assert config.queue_size == 500
    assert config.queue_max_bytes == 1048576


def test_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_COST_TRACKER_DATABASE_URL", "sqlite:///env.db")
    monkeypatch.setenv("LLM_COST_TRACKER_INSTRUMENT", "openai")
    monkeypatch.setenv("LLM_COST_TRACKER_DEFAULT_TAGS", "service=env")
    config = resolve(
        database_url="sqlite:///arg.db", instrument=None, default_tags={"service": "arg"}
    )
    assert config.database_url == "sqlite:///arg.db"
    assert config.instrument is None
    assert config.default_tags == {"service": "arg"}


def test_database_none_turns_the_sql_exporter_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_COST_TRACKER_DATABASE_URL", "none")
    assert resolve().database_url is None


@pytest.mark.parametrize(
    ("name", "value", "default"),
    [
        ("LLM_COST_TRACKER_QUEUE_SIZE", "lots", "100000"),
        ("LLM_COST_TRACKER_QUEUE_SIZE", "0", "100000"),
        ("LLM_COST_TRACKER_QUEUE_MAX_BYTES", "64MB", "67108864"),
        ("LLM_COST_TRACKER_DEFAULT_TAGS", "service", "None"),
    ],
)
def test_invalid_environment_values_warn_naming_the_variable_and_default(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, default: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.warns(
        RuntimeWarning, match=f"{name}={value!r} is invalid .*using the default {default}"
    ):
        resolve()


def test_configure_is_idempotent() -> None:
    first = lct.configure(database_url=None, instrument=None)
    runtime = _api.get_runtime()
    second = lct.configure(database_url=None, instrument=None)
    assert first == second
    assert _api.get_runtime() is runtime


def test_reconfiguring_flushes_and_replaces_the_pipeline(tmp_path) -> None:
    lct.configure(
        database_url=f"sqlite:///{tmp_path / 'one.db'}", instrument=None, export_interval=60
    )
    lct.track(provider="openai", model="m", usage={"input": 1})
    lct.configure(database_url=f"sqlite:///{tmp_path / 'two.db'}", instrument=None)
    lct.track(provider="openai", model="m", usage={"input": 1})
    assert lct.flush()
    for name in ("one.db", "two.db"):
        assert sqlite3.connect(tmp_path / name).execute(
            "select count(*) from llm_cost_tracker_calls"
        ).fetchone() == (1,)


def test_exporters_by_entry_point_name_object_and_callable() -> None:
    memory = InMemoryExporter()
    seen = []
    lct.configure(
        database_url="sqlite://",
        exporters=["log", memory, seen.append],
        instrument=None,
        synchronous=True,
    )
    runtime = _api.get_runtime()
    assert runtime is not None
    kinds = [type(e).__name__ for e in runtime.bus.exporters]
    assert kinds == ["SQLiteExporter", "LogExporter", "InMemoryExporter", "CallableExporter"]
    assert isinstance(runtime.bus.exporters[0], SQLiteExporter)
    assert isinstance(runtime.bus.exporters[1], LogExporter)
    lct.track(provider="openai", model="m", usage={"input": 1})
    assert len(memory.events) == len(seen) == 1


def test_unknown_exporter_name_is_a_clear_error() -> None:
    with pytest.raises(lct.ConfigurationError, match="unknown exporter 'kafka'"):
        lct.configure(database_url=None, exporters=["kafka"], instrument=None)


def test_kill_switch_beats_code(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("LLM_COST_TRACKER_DISABLED", "true")
    seen = []
    lct.configure(
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
        exporters=[seen.append],
        instrument="all",
        synchronous=True,
    )
    event = lct.track(provider="openai", model="m", usage={"input": 1})
    assert event.usage is not None  # track() still validates and returns the event
    assert seen == []
    assert _api.get_runtime() is None
    assert not (tmp_path / "x.db").exists()


def test_first_record_without_configure_uses_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path, caplog
) -> None:
    db = tmp_path / "lazy.db"
    monkeypatch.setenv("LLM_COST_TRACKER_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("LLM_COST_TRACKER_INSTRUMENT", "none")
    with caplog.at_level(logging.INFO, logger="llm_cost_tracker"):
        lct.track(provider="openai", model="m", usage={"input": 1})
    assert lct.flush()
    assert "configuring from the environment" in caplog.text
    assert sqlite3.connect(db).execute(
        "select count(*) from llm_cost_tracker_calls"
    ).fetchone() == (1,)


def test_a_misspelt_option_is_a_type_error_naming_it() -> None:
    import llm_cost_tracker as lct

    with pytest.raises(TypeError, match="databse_url"):
        lct.configure(databse_url="sqlite:///x.db")  # type: ignore[call-arg]
