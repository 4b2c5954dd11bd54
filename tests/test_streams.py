"""The stream proxies on their own: forward every item, hide only what the observer asks, finalize once."""

from __future__ import annotations

import gc
import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from llm_cost_tracker.instrumentation._calls import DROPPED_COUNTER
from llm_cost_tracker.instrumentation._sse import parse_json, sse_json_events, without_vectors
from llm_cost_tracker.instrumentation._streams import AsyncStreamProxy, SyncStreamProxy
from llm_cost_tracker.instrumentation._transport import route_url

import llm_cost_tracker as lct
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.testing import capture_events


class Recorder:
    """A StreamObserver that remembers what it saw; hides items equal to ``hide``."""

    def __init__(self, hide: object = None, fail_on: object = None) -> None:
        self.items: list[Any] = []
        self.finished: list[tuple[BaseException | None, bool]] = []
        self.hide = hide
        self.fail_on = fail_on

    def observe(self, item: Any) -> bool:
        if item == self.fail_on:
            raise ValueError("observer bug")
        self.items.append(item)
        return item == self.hide

    def finish(self, error: BaseException | None, *, exhausted: bool) -> None:
        self.finished.append((error, exhausted))


class Source:
    """A closable iterator like the SDK streams, optionally failing after some items."""

    def __init__(self, items: list[Any], fail_after: int | None = None) -> None:
        self._items = iter(items)
        self._count = 0
        self.fail_after = fail_after
        self.closed = 0
        self.extra = "attribute"

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.fail_after is not None and self._count == self.fail_after:
            raise ConnectionError("dropped")
        self._count += 1
        return next(self._items)

    def close(self) -> None:
        self.closed += 1

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSource:
    def __init__(self, items: list[Any], fail_after: int | None = None) -> None:
        self._items = iter(items)
        self._count = 0
        self.fail_after = fail_after
        self.closed = 0

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self.fail_after is not None and self._count == self.fail_after:
            raise ConnectionError("dropped")
        self._count += 1
        try:
            return next(self._items)
        except StopIteration:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        self.closed += 1

    async def __aenter__(self) -> AsyncSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def test_forwards_every_item_and_finalizes_once_on_exhaustion() -> None:
    source, recorder = Source([1, 2, 3]), Recorder()
    proxy = SyncStreamProxy(source, recorder)
    assert list(proxy) == [1, 2, 3]
    proxy.close()
    assert recorder.items == [1, 2, 3]
    assert recorder.finished == [(None, True)]
    assert isinstance(proxy, Source)
    assert proxy.extra == "attribute"
    assert source.closed == 1


def test_hidden_items_never_reach_the_caller() -> None:
    recorder = Recorder(hide="trailer")
    assert list(SyncStreamProxy(Source(["a", "trailer", "b"]), recorder)) == ["a", "b"]
    assert recorder.items == ["a", "trailer", "b"]


@pytest.mark.parametrize("how", ["close", "exit", "break_then_close"])
def test_early_end_finalizes_once(how: str) -> None:
    source, recorder = Source([1, 2, 3]), Recorder()
    proxy = SyncStreamProxy(source, recorder)
    if how == "close":
        next(proxy)
        proxy.close()
        proxy.close()
    elif how == "exit":
        with proxy as entered:
            assert entered is proxy
            next(entered)
    else:
        for _ in proxy:
            break
        proxy.close()
    assert recorder.finished == [(None, False)]


def test_callers_exception_in_with_block_is_not_the_streams_error() -> None:
    recorder = Recorder()
    proxy = SyncStreamProxy(Source([1, 2]), recorder)
    with pytest.raises(KeyError), proxy:
        raise KeyError("caller")
    assert recorder.finished == [(None, False)]


def test_stream_error_is_reported_and_reraised() -> None:
    recorder = Recorder()
    proxy = SyncStreamProxy(Source([1, 2, 3], fail_after=1), recorder)
    assert next(proxy) == 1
    with pytest.raises(ConnectionError):
        next(proxy)
    ((error, exhausted),) = recorder.finished
    assert isinstance(error, ConnectionError)
    assert exhausted is False


def test_observer_failure_is_counted_and_item_still_delivered() -> None:
    recorder = Recorder(fail_on=2)
    assert list(SyncStreamProxy(Source([1, 2, 3]), recorder)) == [1, 2, 3]
    assert STATS.get("errors.instrumentation.stream_item") == 1


def test_finish_failure_is_counted_never_raised() -> None:
    class Broken(Recorder):
        def finish(self, error: BaseException | None, *, exhausted: bool) -> None:
            raise RuntimeError("bug")

    assert list(SyncStreamProxy(Source([1]), Broken())) == [1]
    assert STATS.get("errors.instrumentation.stream_finish") == 1


def test_plain_iterables_get_an_iterator_on_first_use() -> None:
    recorder = Recorder()
    assert list(SyncStreamProxy([4, 5], recorder)) == [4, 5]
    assert recorder.finished == [(None, True)]


async def test_async_proxy() -> None:
    recorder = Recorder(hide="trailer")
    proxy = AsyncStreamProxy(AsyncSource(["a", "trailer", "b"]), recorder)
    assert [x async for x in proxy] == ["a", "b"]
    await proxy.close()
    assert recorder.finished == [(None, True)]

    early = Recorder()
    source = AsyncSource([1, 2, 3])
    async with AsyncStreamProxy(source, early) as entered:
        async for _ in entered:
            break
    assert early.finished == [(None, False)]
    assert source.closed == 1

    failing = Recorder()
    with pytest.raises(ConnectionError):
        async for _ in AsyncStreamProxy(AsyncSource([1, 2], fail_after=1), failing):
            pass
    assert isinstance(failing.finished[0][0], ConnectionError)


@pytest.fixture
def runtime() -> Iterator[None]:
    """A configured runtime: a dropped stream is finished through its bus."""
    with capture_events():
        yield


def test_a_stream_dropped_half_way_is_finished_once_by_the_next_flush(runtime: None) -> None:
    recorder = Recorder()
    proxy = SyncStreamProxy(Source([1, 2, 3]), recorder)
    for _ in proxy:
        break  # and the caller walks away: no close(), no with block
    del proxy
    gc.collect()
    assert recorder.finished == []  # a finalizer takes no lock: the bus does the recording
    assert lct.flush(5)
    assert recorder.finished == [(None, False)]
    assert STATS.get(DROPPED_COUNTER) == 1


def test_a_stream_dropped_after_its_end_is_not_finished_again(runtime: None) -> None:
    recorder = Recorder()
    proxy = SyncStreamProxy(Source([1, 2]), recorder)
    assert list(proxy) == [1, 2]
    del proxy
    gc.collect()
    assert lct.flush(5)
    assert recorder.finished == [(None, True)]
    assert STATS.get(DROPPED_COUNTER) == 0


def test_a_stream_held_only_by_its_loop_is_not_dropped_while_the_loop_runs(runtime: None) -> None:
    recorder = Recorder()
    seen = []
    for item in SyncStreamProxy(Source([1, 2, 3]), recorder):  # no other reference to the proxy
        gc.collect()
        assert lct.flush(5)
        assert recorder.finished == []
        seen.append(item)
    assert seen == [1, 2, 3]
    assert recorder.finished == [(None, True)]


async def test_an_async_stream_dropped_half_way_is_finished_once(runtime: None) -> None:
    recorder = Recorder()
    proxy = AsyncStreamProxy(AsyncSource([1, 2, 3]), recorder)
    async for _ in proxy:
        break
    del proxy
    gc.collect()
    assert lct.flush(5)
    assert recorder.finished == [(None, False)]
    assert STATS.get(DROPPED_COUNTER) == 1


def test_a_forked_child_dropping_its_copy_of_a_stream_leaves_it_to_the_parent(
    runtime: None,
) -> None:
    recorder = Recorder()
    proxy = SyncStreamProxy(Source([1, 2, 3]), recorder)
    next(proxy)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drops its copy of the half-read stream, then reports
        try:
            del proxy
            gc.collect()
            lct.flush(5)
            os.write(write_end, f"{len(recorder.finished)} {STATS.get(DROPPED_COUNTER)}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_saw = pipe.read()
    os.waitpid(pid, 0)
    assert child_saw == "0 0"  # nothing finished, nothing counted in the child
    proxy.close()
    assert recorder.finished == [(None, False)]  # the parent records it, once


def test_a_dropped_stream_with_nothing_configured_is_let_go_quietly() -> None:
    recorder = Recorder()
    proxy = SyncStreamProxy(Source([1, 2]), recorder)
    next(proxy)
    del proxy
    gc.collect()
    assert recorder.finished == []
    assert STATS.get(DROPPED_COUNTER) == 0


def test_sse_json_events() -> None:
    body = b'event: a\ndata: {"x": 1}\n\ndata: not json\n\r\ndata: [DONE]\n\n'
    assert sse_json_events(body) == [{"x": 1}]
    assert STATS.get("dropped.stream_event_unparsable") == 1


JSON_TEXTS = [
    b'{"usage": {"prompt_tokens": 3}}',
    b' \r\n\t{"a": [1, 2.5, null, true]}  \n',
    b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 byte-order mark
    '{"a": "\u00e9"}'.encode("utf-16"),
    '{"a": "\u00e9"}'.encode("utf-16-le"),
    '{"a": "\u00e9"}'.encode("utf-32-be"),
    b'"\xed\xa0\x80"',  # a lone surrogate, as json.loads lets it through
    b'{"a": NaN}',
    '{"a": "\u00e9"}',
    bytearray(b'{"b": 2}'),
    b'{"a": 1} trailing',
    b'{"a": 1}{"b": 2}',
    b"",
    b"   ",
    b'{"a":',
    b"\xff\xfe\xfd",
    b"<html>502</html>",
]


@pytest.mark.parametrize("text", JSON_TEXTS)
def test_parse_json_answers_as_json_loads_does(text: bytes | str) -> None:
    def outcome(parse: Any) -> Any:
        try:
            return "ok", json.dumps(parse(text))
        except ValueError as error:
            return "error", type(error).__name__

    assert outcome(parse_json) == outcome(json.loads)


def test_route_url_reads_the_path_of_a_remembered_origin() -> None:
    url = "https://api.openai.com/v1/chat/completions?api-version=1#top"
    assert route_url(url) == ("openai", "/v1/chat/completions")
    assert route_url(url) == ("openai", "/v1/chat/completions")  # from the origin cache
    assert route_url("https://api.openai.com") == ("openai", "")
    assert route_url("https://api.anthropic.com:443/v1/messages") == ("anthropic", "/v1/messages")
    assert route_url("https://example.com/v1/chat/completions") is None
    assert route_url("not a url") is None


def test_route_url_does_not_remember_origins_carrying_credentials() -> None:
    from llm_cost_tracker.instrumentation import _transport

    url = "https://user:secret@api.openai.com/v1/chat/completions"
    assert route_url(url) == ("openai", "/v1/chat/completions")
    assert not [origin for origin in _transport._ORIGINS if "secret" in origin]


def test_without_vectors_empties_arrays_of_numbers_only() -> None:
    body = (
        b'{"data": [{"embedding": [0.25, -1.5e-3, 2E+4, 7], "index": 0},'
        b' {"embedding": [[1, 2], [3.5]], "tags": ["a", 1]}],'
        b' "empty": [], "usage": {"prompt_tokens": 8, "total_tokens": 8}}'
    )
    assert json.loads(without_vectors(body)) == {
        "data": [{"embedding": [], "index": 0}, {"embedding": [[], []], "tags": ["a", 1]}],
        "empty": [],
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    assert without_vectors(b'{"usage": {"input_tokens": 3}}') == b'{"usage": {"input_tokens": 3}}'
    assert without_vectors(bytearray(b'{"v": [1, 2]}')) == b'{"v": []}'
    assert without_vectors(b'{"v": [1, 2], "w": [3') == b'{"v": [], "w": [3'  # cut short
    assert without_vectors(b"[[[0.5]], [1e-3, 2]]") == b"[[[]], []]"
