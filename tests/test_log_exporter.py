"""The log exporter: one JSON line per event, counts and ids only."""

from __future__ import annotations

import json
import logging

from llm_cost_tracker.exporters.log import LogExporter

import llm_cost_tracker as lct


def test_one_json_line_per_event(caplog) -> None:
    lct.configure(database_url=None, exporters=[LogExporter()], instrument=None, synchronous=True)
    with (
        caplog.at_level(logging.INFO, logger="llm_cost_tracker.events"),
        lct.with_tags(feature="chat"),
    ):
        lct.track(
            provider="openai",
            model="gpt-4o",
            usage={"input": 3, "output": 4},
            provider_response_id="r1",
        )
        lct.track(provider="openai", model="gpt-4o", usage=None)
    records = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "llm_cost_tracker.events"
    ]
    assert len(records) == 2
    first = records[0]
    assert first["usage"]["tokens"] == {"input": 3, "output": 4}
    assert first["tags"] == {"feature": "chat"}
    assert first["provider_response_id"] == "r1"
    assert first["cost_status"] == "priced"  # gpt-4o is in the bundled catalog
    assert first["total_cost"] is not None
    assert "." in first["total_cost"]  # an exact decimal string, not a float
    assert records[1]["usage"] is None


def test_nothing_is_formatted_when_the_logger_is_off(caplog) -> None:
    lct.configure(database_url=None, exporters=["log"], instrument=None, synchronous=True)
    with caplog.at_level(logging.WARNING, logger="llm_cost_tracker.events"):
        lct.track(provider="openai", model="gpt-4o", usage={"input": 3})
    assert not [r for r in caplog.records if r.name == "llm_cost_tracker.events"]
