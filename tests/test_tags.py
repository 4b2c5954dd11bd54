"""Attribution: with_tags scopes on contextvars, default tags, precedence and the sanitizer."""

from __future__ import annotations

import asyncio
import threading

import pytest

import llm_cost_tracker as lct
from llm_cost_tracker._stats import STATS
from llm_cost_tracker._tags import MAX_TAGS, REDACTED, current_tags, sanitize_tags
from llm_cost_tracker.testing import capture_events


def test_context_manager_nests_and_inner_wins() -> None:
    with lct.with_tags(feature="chat", user_id=1):
        with lct.with_tags(user_id=2, tenant="acme"):
            assert dict(current_tags()) == {"feature": "chat", "user_id": "2", "tenant": "acme"}
        assert dict(current_tags()) == {"feature": "chat", "user_id": "1"}
    assert dict(current_tags()) == {}


def test_decorator_on_sync_and_async_functions() -> None:
    @lct.with_tags(feature="summarize")
    def sync() -> dict[str, str]:
        return dict(current_tags())

    @lct.with_tags(feature="async-summarize")
    async def coro() -> dict[str, str]:
        await asyncio.sleep(0)
        return dict(current_tags())

    assert sync() == {"feature": "summarize"}
    assert asyncio.run(coro()) == {"feature": "async-summarize"}
    assert dict(current_tags()) == {}


def test_one_instance_reused_and_nested_with_itself() -> None:
    scope = lct.with_tags(a=1)
    with scope, scope:
        assert dict(current_tags()) == {"a": "1"}
    with scope:
        assert dict(current_tags()) == {"a": "1"}
    assert dict(current_tags()) == {}


def test_isolated_across_threads() -> None:
    seen: dict[int, dict[str, str]] = {}
    barrier = threading.Barrier(4)

    def work(n: int) -> None:
        with lct.with_tags(worker=n):
            barrier.wait()
            seen[n] = dict(current_tags())

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {n: {"worker": str(n)} for n in range(4)}


async def test_isolated_across_asyncio_tasks() -> None:
    async def work(n: int) -> dict[str, str]:
        async with lct.with_tags(task=n):
            await asyncio.sleep(0.01 * (4 - n))
            return dict(current_tags())

    results = await asyncio.gather(*(work(n) for n in range(4)))
    assert results == [{"task": str(n)} for n in range(4)]


def test_precedence_explicit_over_scoped_over_default() -> None:
    defaults = {"service": "api", "feature": "default"}
    with (
        capture_events(default_tags=defaults) as events,
        lct.with_tags(feature="scoped", user_id=7),
    ):
        lct.track(provider="openai", model="m", usage={"input": 1}, tags={"user_id": 8})
    assert dict(events[0].tags) == {"service": "api", "feature": "scoped", "user_id": "8"}


def test_default_tags_callable_is_called_per_call() -> None:
    counter = iter(range(100))
    with capture_events(default_tags=lambda: {"request": next(counter)}) as events:
        lct.track(provider="openai", model="m", usage={"input": 1})
        lct.track(provider="openai", model="m", usage={"input": 1})
    assert [e.tags["request"] for e in events] == ["0", "1"]


def test_raising_default_tags_callable_is_counted_and_yields_no_tags() -> None:
    def broken() -> dict[str, str]:
        raise RuntimeError("boom")

    with capture_events(default_tags=broken) as events, lct.with_tags(feature="x"):
        lct.track(provider="openai", model="m", usage={"input": 1})
    assert dict(events[0].tags) == {"feature": "x"}
    assert STATS.get("errors.default_tags") == 1


def test_invalid_keys_are_skipped_and_counted() -> None:
    clean = sanitize_tags({"ok.key-1_x": 1, "bad key": 2, "": 3, "x" * 65: 4, "ünicode": 5})
    assert clean == {"ok.key-1_x": "1"}
    assert STATS.get("tags.invalid_key") == 4


def test_at_most_fifty_tags() -> None:
    clean = sanitize_tags({f"k{i}": i for i in range(60)})
    assert len(clean) == MAX_TAGS
    assert STATS.get("tags.over_limit") == 10


def test_merged_scopes_are_capped_too() -> None:
    with (
        lct.with_tags(**{f"a{i}": i for i in range(40)}),
        lct.with_tags(**{f"b{i}": i for i in range(40)}),
    ):
        tags = current_tags()
    assert len(tags) == MAX_TAGS
    assert all(f"b{i}" in tags for i in range(40)), "inner tags win over outer ones"


def test_values_cut_to_1024_bytes_on_a_utf8_boundary() -> None:
    value = "é" * 600  # 1200 bytes
    clean = sanitize_tags({"k": value})["k"]
    assert len(clean.encode()) <= 1024
    assert clean == "é" * 512
    assert STATS.get("tags.truncated") == 1


def test_nul_bytes_removed_and_values_stringified() -> None:
    assert sanitize_tags({"k": "a\x00b", "n": 42, "f": 1.5, "b": True}) == {
        "k": "ab",
        "n": "42",
        "f": "1.5",
        "b": "True",
    }


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "password",
        "client_secret",
        "authorization",
        "token",
        "auth_token",
        "OPENAI_API_KEY",
        "private_key",
    ],
)
def test_secret_keys_are_redacted(key: str) -> None:
    assert sanitize_tags({key: "anything at all"}) == {key: REDACTED}


@pytest.mark.parametrize("key", ["tokens_budget", "feature", "user_id", "max_tokens"])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert sanitize_tags({key: "value"}) == {key: "value"}


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        "sk-ant-api03-abcdefghijklmnopqrstuvwx",
        "Bearer abcdef0123456789",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "AIzaSyA-abcdefghijklmnopqrstuvwxyz12345",
        "xoxb-1234567890-abcdefghij",
        "sk_live_abcdefghijklmnop1234",
        "rk_test_abcdefghijklmnop1234",
    ],
)
def test_secret_shaped_values_are_redacted_even_inside_longer_text(secret: str) -> None:
    clean = sanitize_tags({"note": f"customer said {secret} yesterday"})["note"]
    assert secret not in clean
    assert clean == f"customer said {REDACTED} yesterday"


def test_ordinary_values_are_not_redacted() -> None:
    for value in ("sk-short", "skip-this", "eyJ", "bearer", "task-1234", "AKIA"):
        assert sanitize_tags({"note": value}) == {"note": value}
