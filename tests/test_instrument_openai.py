"""The openai SDK instrumentor: the real SDK, sync and async, against the stand-in server.

Every test compares with the bare SDK where the caller's view matters: results
(and exceptions) must be identical with and without instrumentation.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest
from llm_cost_tracker.instrumentation._calls import DROPPED_COUNTER
from llm_cost_tracker.instrumentation._hosts import register_host, unregister_host
from llm_cost_tracker.instrumentation.openai import OpenAIInstrumentor
from test_instrument_extract import PAYLOADS, expected_view, usage_as_expected

import llm_cost_tracker as lct
from llm_cost_tracker._events import UsageEvent
from llm_cost_tracker._stats import STATS
from llm_cost_tracker.cli._standin import StandInServer
from llm_cost_tracker.testing import capture_events

MESSAGES = [{"role": "user", "content": "hi"}]


_OPEN: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def client(standin: StandInServer, scenario: str, **kwargs: Any) -> openai.OpenAI:
    made = openai.OpenAI(
        api_key="sk-test", base_url=standin.scenario_url(scenario, "/v1"), max_retries=0, **kwargs
    )
    _OPEN.append(made)
    return made


def aclient(standin: StandInServer, scenario: str, **kwargs: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="sk-test", base_url=standin.scenario_url(scenario, "/v1"), max_retries=0, **kwargs
    )


@contextlib.asynccontextmanager
async def acapture(**configure: Any) -> AsyncIterator[list[UsageEvent]]:
    configure.setdefault("instrument", ["openai"])
    with capture_events(**configure) as events:
        yield events


def dump(value: Any) -> Any:
    """A comparable view of an SDK result: models as JSON-able dicts, lists element-wise."""
    if isinstance(value, list):
        return [dump(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def bare_and_instrumented(
    run: Callable[[], Any], **configure: Any
) -> tuple[Any, Any, list[UsageEvent]]:
    """Run ``run()`` without instrumentation, then with it; return both results and the events."""
    bare = run()
    configure.setdefault("instrument", ["openai"])
    with capture_events(**configure) as events:
        instrumented = run()
    return bare, instrumented, events


def error_of(run: Callable[[], Any]) -> BaseException:
    with pytest.raises(Exception) as info:
        run()
    return info.value


def same_error(a: BaseException, b: BaseException) -> None:
    assert type(a) is type(b)
    assert str(a) == str(b)
    assert getattr(a, "status_code", None) == getattr(b, "status_code", None)
    assert getattr(a, "body", None) == getattr(b, "body", None)


def only(events: list[UsageEvent]) -> UsageEvent:
    assert len(events) == 1, events
    return events[0]


# -- every shared OpenAI-shaped payload through the real SDK ---------------------------------

SDK_PAYLOADS = {
    pid: p
    for pid, p in PAYLOADS.items()
    if p["api"].startswith(("openai", "openai_compatible")) and p.get("http_status", 200) == 200
}


def call_for_payload(c: openai.OpenAI, payload: dict[str, Any]) -> Any:
    api, stream = payload["api"], payload["stream"]
    model = payload["request"].get("model", "m")
    if api.endswith("responses"):
        result = c.responses.create(model=model, input="hi", stream=stream)
    elif api == "openai.completions":
        result = c.completions.create(model=model, prompt="hi", stream=stream)
    elif api == "openai.embeddings":
        return c.embeddings.create(model=model, input="hi")
    else:
        result = c.chat.completions.create(model=model, messages=MESSAGES, stream=stream)
    return list(result) if stream else result


@pytest.mark.parametrize("payload_id", sorted(SDK_PAYLOADS))
def test_shared_payload_yields_expected_usage(standin: StandInServer, payload_id: str) -> None:
    payload = SDK_PAYLOADS[payload_id]
    expected = payload["expected"]
    c = client(standin, payload_id)
    bare, instrumented, events = bare_and_instrumented(lambda: call_for_payload(c, payload))
    event = only(events)
    assert usage_as_expected(event.usage) == expected_view(expected)
    assert event.model == (expected["model"] or payload["request"].get("model"))
    assert event.provider_response_id == expected["provider_response_id"]
    assert event.stream is payload["stream"]
    assert event.usage_source == (
        "unknown"
        if not expected["usage_known"]
        else ("stream" if payload["stream"] else "response")
    )
    if "reported_cost_usd" in expected:
        assert event.usage is not None
        assert event.usage.reported_cost == Decimal(str(expected["reported_cost_usd"]))
    if payload["stream"] and payload["api"] == "openai.chat.completions":
        # the stand-in always sends what it recorded; our injected include_usage hides
        # only a trailer the caller did not ask for, and here both runs asked for nothing
        visible = [dump(c) for c in bare if not (c.choices == [] and c.usage is not None)]
        assert [dump(c) for c in instrumented] == visible
    else:
        assert dump(instrumented) == dump(bare)


def test_pricing_mode_comes_from_the_tier_used(standin: StandInServer) -> None:
    c = client(standin, "openai_chat_priority_gpt5")
    with capture_events(instrument=["openai"]) as events:
        c.chat.completions.create(model="gpt-5", messages=MESSAGES, service_tier="auto")
    assert only(events).pricing_mode == "priority"


# -- providers from the base URL ------------------------------------------------------------


@pytest.mark.parametrize(
    ("registered", "provider"),
    [(None, "openai"), ("groq", "groq"), ("my-gateway", "my-gateway")],
)
def test_provider_from_the_clients_host(
    standin: StandInServer, registered: str | None, provider: str
) -> None:
    host = standin.url.removeprefix("http://")
    if registered is not None:
        register_host(host, registered)
    try:
        with capture_events(instrument=["openai"]) as events:
            client(standin, "openai_chat_cached_gpt4omini").chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
    finally:
        unregister_host(host)
    assert only(events).provider == provider


def test_azure_client_records_the_response_model(standin: StandInServer) -> None:
    c = openai.AzureOpenAI(
        api_key="k",
        api_version="2024-02-01",
        azure_endpoint=standin.scenario_url("azure_openai_chat"),
        max_retries=0,
    )
    register_host(standin.url.removeprefix("http://"), "azure_openai")
    try:
        with capture_events(instrument=["openai"]) as events:
            c.chat.completions.create(model="openllmetry-testing", messages=MESSAGES)
    finally:
        unregister_host(standin.url.removeprefix("http://"))
    event = only(events)
    assert (event.provider, event.model, event.request_model) == (
        "azure_openai",
        "gpt-35-turbo",
        "openllmetry-testing",
    )


# -- streams --------------------------------------------------------------------------------


def strip_trailer_payload(standin: StandInServer) -> str:
    """The include_usage recording minus its usage trailer: what the real API sends when not asked."""
    payload = dict(PAYLOADS["openai_chat_stream_include_usage"])
    blocks = payload["sse"].split("\n\n")
    payload["sse"] = "\n\n".join(b for b in blocks if '"choices":[]' not in b)
    payload["id"] = "openai_chat_stream_no_trailer"
    standin.add(payload)
    return payload["id"]


def test_stream_gets_usage_the_caller_did_not_ask_for(standin: StandInServer) -> None:
    plain = strip_trailer_payload(standin)
    bare = list(
        client(standin, plain).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    )
    c = client(standin, "openai_chat_stream_include_usage")
    with capture_events(instrument=["openai"]) as events:
        seen = list(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    sent = standin.requests[-1].json()
    assert sent["stream_options"] == {"include_usage": True}
    assert [dump(x) for x in seen] == [
        dump(x) for x in bare
    ]  # the trailer never reaches the caller
    event = only(events)
    assert event.usage is not None
    assert dict(event.usage.tokens) == {"input": 10, "output": 5}
    assert event.usage_source == "stream"


def test_a_stream_dropped_half_way_is_recorded_by_the_next_flush(standin: StandInServer) -> None:
    c = client(standin, "openai_chat_stream_include_usage")
    with capture_events(instrument=["openai"]) as events:
        stream = c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        for _ in stream:
            break  # the caller walks away: no close(), no with block
        del stream, _
        gc.collect()
        assert lct.flush(5)
        event = only(events)
    assert (event.status, event.stream, event.model) == ("ok", True, "gpt-3.5-turbo-0125")
    assert event.usage is None  # the usage trailer never came: unknown, never zero
    assert event.usage_source == "unknown"
    assert STATS.get(DROPPED_COUNTER) == 1


async def test_an_async_stream_dropped_half_way_is_recorded(standin: StandInServer) -> None:
    c = aclient(standin, "openai_chat_stream_include_usage")
    async with acapture() as events:
        stream = await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        async for _ in stream:
            break
        del stream, _
        gc.collect()
        assert lct.flush(5)
        event = only(events)
    await c.close()
    assert (event.status, event.usage, event.usage_source) == ("ok", None, "unknown")
    assert STATS.get(DROPPED_COUNTER) == 1


def test_stream_usage_injection_can_be_turned_off(standin: StandInServer) -> None:
    c = client(standin, strip_trailer_payload(standin))
    with capture_events(instrument=["openai"], stream_usage=False) as events:
        list(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert "stream_options" not in standin.requests[-1].json()
    event = only(events)
    assert event.usage is None
    assert event.usage_source == "unknown"


def test_caller_asking_for_usage_sees_the_trailer(standin: StandInServer) -> None:
    c = client(standin, "openai_chat_stream_include_usage")

    def run() -> list[Any]:
        return list(
            c.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
        )

    bare, seen, events = bare_and_instrumented(run)
    assert [dump(x) for x in seen] == [dump(x) for x in bare]
    assert seen[-1].usage is not None
    assert only(events).usage is not None


def test_caller_stream_options_are_kept(standin: StandInServer) -> None:
    c = client(standin, "openai_chat_stream_include_usage")
    with capture_events(instrument=["openai"]):
        list(
            c.chat.completions.create(
                model="m",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_obfuscation": False},
            )
        )
    assert standin.requests[-1].json()["stream_options"] == {
        "include_obfuscation": False,
        "include_usage": True,
    }


@pytest.mark.parametrize("how", ["close", "context_manager", "error_in_loop"])
def test_stream_closed_early_is_recorded_once(standin: StandInServer, how: str) -> None:
    c = client(standin, "openai_chat_stream_include_usage")
    with capture_events(instrument=["openai"]) as events:
        stream = c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        if how == "close":
            next(stream)
            stream.close()
            stream.close()
        elif how == "context_manager":
            with stream as s:
                for _ in s:
                    break
        else:

            def consume() -> None:
                with stream:
                    for _ in stream:
                        raise KeyError("the caller's own bug")

            with pytest.raises(KeyError):
                consume()
        assert len(events) == 1
    event = only(events)
    assert event.stream is True
    assert event.usage is None
    assert event.usage_source == "unknown"
    assert event.status == "ok"


def test_stream_exhausted_then_closed_is_recorded_once(standin: StandInServer) -> None:
    c = client(standin, "openai_chat_stream_include_usage")
    with capture_events(instrument=["openai"]) as events:
        with c.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
            chunks = list(stream)
            stream.close()
        assert len(chunks) == 8
    assert only(events).usage is not None


def test_stream_ending_without_usage_is_unknown_not_zero(standin: StandInServer) -> None:
    c = client(standin, "openai_chat_stream_without_usage")
    with capture_events(instrument=["openai"]) as events:
        list(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    event = only(events)
    assert event.usage is None
    assert event.usage_source == "unknown"
    assert event.provider_response_id == "chatcmpl-DPTE031ooLk878co6WxEBbSOOYaA1"


def test_stream_proxy_is_transparent(standin: StandInServer) -> None:
    c = client(standin, "openai_chat_stream_include_usage")
    with capture_events(instrument=["openai"]):
        stream = c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        assert isinstance(stream, openai.Stream)
        assert stream.response.status_code == 200
        stream.close()


def test_stream_tags_are_snapshotted_when_it_starts(standin: StandInServer) -> None:
    c = client(standin, "openai_chat_stream_include_usage")
    with capture_events(instrument=["openai"]) as events:
        with lct.with_tags(feature="chat"):
            stream = c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        with lct.with_tags(feature="other"):
            list(stream)
    assert only(events).tags["feature"] == "chat"


def test_chat_stream_helper(standin: StandInServer) -> None:
    c = client(standin, "openai_chat_stream_include_usage")

    def run() -> tuple[list[Any], Any]:
        with c.chat.completions.stream(model="m", messages=MESSAGES) as stream:
            seen = [e.type for e in stream]
            return seen, dump(stream.get_final_completion())

    bare_run, instrumented_run, events = bare_and_instrumented(run)
    # the bare run (stand-in always sends the trailer) sees one more "chunk" event
    assert list(instrumented_run[0]) == [t for t in bare_run[0] if t != "chunk"] or (
        instrumented_run[0].count("chunk") == bare_run[0].count("chunk") - 1
    )
    event = only(events)
    assert event.usage is not None
    assert event.stream is True


async def test_async_stream_and_early_close(standin: StandInServer) -> None:
    async with aclient(standin, "openai_chat_stream_include_usage") as c, acapture() as events:
        stream = await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        assert isinstance(stream, openai.AsyncStream)
        chunks = [chunk async for chunk in stream]
        early = await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        async with early:
            async for _ in early:
                break
    assert len(chunks) == 8  # 9 sent, the injected trailer hidden
    full, cut = events
    assert full.usage is not None
    assert full.usage_source == "stream"
    assert cut.usage is None


async def test_async_chat_stream_helper(standin: StandInServer) -> None:
    async with (
        aclient(standin, "openai_chat_stream_include_usage") as c,
        acapture() as events,
        c.chat.completions.stream(model="m", messages=MESSAGES) as stream,
    ):
        async for _ in stream:
            pass
    assert only(events).usage is not None


# -- responses: create, stream, parse, background retrieve ----------------------------------


def test_responses_stream_helper(standin: StandInServer) -> None:
    c = client(standin, "openai_responses_stream_completed_event")

    def run() -> Any:
        with c.responses.stream(model="m", input="hi") as stream:
            for _ in stream:
                pass
            return dump(stream.get_final_response())

    bare, instrumented, events = bare_and_instrumented(run)
    assert instrumented == bare
    event = only(events)
    assert event.operation == "responses"
    assert usage_as_expected(event.usage) == expected_view(
        PAYLOADS["openai_responses_stream_completed_event"]["expected"]
    )


def test_responses_parse(standin: StandInServer) -> None:
    c = client(standin, "openai_responses_plain")
    bare, instrumented, events = bare_and_instrumented(
        lambda: c.responses.parse(model="m", input="hi")
    )
    assert dump(instrumented) == dump(bare)
    assert only(events).provider_response_id == bare.id


def background_payloads(standin: StandInServer) -> tuple[str, str]:
    done = dict(PAYLOADS["openai_responses_plain"])
    queued = json.loads(json.dumps(done))
    queued["id"] = "openai_responses_background_queued"
    queued["response"].update({"status": "queued", "usage": None, "output": [], "background": True})
    standin.add(queued)
    return queued["id"], done["id"]


def test_background_response_is_recorded_once_when_completed(standin: StandInServer) -> None:
    queued, done = background_payloads(standin)
    with capture_events(instrument=["openai"]) as events:
        created = client(standin, queued).responses.create(model="m", input="hi", background=True)
        assert created.status == "queued"
        assert events == []
        poll = client(standin, queued).responses.retrieve(created.id)
        assert poll.status == "queued"
        assert events == []
        for _ in range(2):
            finished = client(standin, done).responses.retrieve(created.id)
            assert finished.status == "completed"
    event = only(events)
    assert event.provider_response_id == finished.id
    assert event.usage is not None
    assert event.operation == "responses"


async def test_async_background_response(standin: StandInServer) -> None:
    queued, done = background_payloads(standin)
    async with aclient(standin, queued) as first, aclient(standin, done) as second:
        with capture_events(instrument=["openai"]) as events:
            await first.responses.create(model="m", input="hi", background=True)
            await second.responses.retrieve("resp_x")
            await second.responses.retrieve("resp_x")
    assert only(events).usage is not None


def test_a_recorded_response_is_not_recorded_again_by_retrieve(standin: StandInServer) -> None:
    c = client(standin, "openai_responses_plain")
    with capture_events(instrument=["openai"]) as events:
        created = c.responses.create(model="m", input="hi")
        c.responses.retrieve(created.id)
    assert len(events) == 1


# -- other surfaces -------------------------------------------------------------------------


def test_chat_parse(standin: StandInServer) -> None:
    c = client(standin, "openai_chat_cached_gpt4omini")

    def run() -> Any:
        # resolved at call time: a bound method fetched earlier would bypass the patch
        owner = (
            c.chat.completions if hasattr(c.chat.completions, "parse") else c.beta.chat.completions
        )
        return owner.parse(model="gpt-4o-mini", messages=MESSAGES)

    bare, instrumented, events = bare_and_instrumented(run)
    assert dump(instrumented) == dump(bare)
    assert only(events).usage is not None


def add(standin: StandInServer, scenario_id: str, response: Any, **extra: Any) -> str:
    standin.add(
        {
            "id": scenario_id,
            "provider": "openai",
            "api": "derived",
            "stream": False,
            "request": {},
            "expected": {},
            **({"response": response} if response is not None else {}),
            **extra,
        }
    )
    return scenario_id


IMAGE = {
    "created": 1713833628,
    "data": [{"b64_json": "aGk="}],
    "usage": {
        "total_tokens": 4210,
        "input_tokens": 50,
        "output_tokens": 4160,
        "input_tokens_details": {"text_tokens": 40, "image_tokens": 10},
    },
}


def test_images_generate_and_edit(standin: StandInServer) -> None:
    c = client(standin, add(standin, "openai_image_gpt_image", IMAGE))

    def run() -> list[Any]:
        return [
            c.images.generate(model="gpt-image-1", prompt="hi"),
            c.images.edit(model="gpt-image-1", image=b"\x89PNG", prompt="hi"),
        ]

    bare, instrumented, events = bare_and_instrumented(run)
    assert dump(instrumented) == dump(bare)
    assert len(events) == 2
    for event in events:
        assert event.operation == "images"
        assert event.model == "gpt-image-1"
        assert event.usage is not None
        assert dict(event.usage.tokens) == {
            "input": 40,
            "image_input": 10,
            "output": 0,
            "image_output": 4160,
        }


def test_dalle_images_are_counted_per_image(standin: StandInServer) -> None:
    c = client(
        standin, add(standin, "openai_image_dalle", {"created": 1, "data": [{"url": "u"}] * 3})
    )
    with capture_events(instrument=["openai"]) as events:
        c.images.generate(model="dall-e-3", prompt="hi", n=3)
    event = only(events)
    assert event.usage is not None
    assert event.usage.services == {"image": Decimal(3)}


def test_audio_transcription_translation_and_speech(standin: StandInServer) -> None:
    transcription = add(
        standin,
        "openai_transcription_tokens",
        {
            "text": "hello",
            "usage": {
                "type": "tokens",
                "input_tokens": 30,
                "output_tokens": 5,
                "total_tokens": 35,
                "input_token_details": {"audio_tokens": 28, "text_tokens": 2},
            },
        },
    )
    translation = add(
        standin,
        "openai_translation_verbose",
        {"text": "hello", "language": "english", "duration": 8.5, "segments": []},
    )
    speech = add(standin, "openai_speech_bytes", None, response_raw="ID3-not-really-mp3")

    def run() -> list[Any]:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", DeprecationWarning
            )  # translations are deprecated in 3.x
            translated = client(standin, translation).audio.translations.create(
                model="whisper-1", file=("a.wav", b"RIFF"), response_format="verbose_json"
            )
        return [
            client(standin, transcription).audio.transcriptions.create(
                model="gpt-4o-transcribe", file=("a.wav", b"RIFF")
            ),
            translated,
            client(standin, speech)
            .audio.speech.create(model="tts-1", voice="alloy", input="hello world")
            .content,
        ]

    bare, instrumented, events = bare_and_instrumented(run)
    assert dump(instrumented) == dump(bare)
    tr, t, sp = events
    assert (t.operation, tr.operation, sp.operation) == ("transcriptions", "translations", "speech")
    assert t.usage is not None
    assert dict(t.usage.tokens) == {"input": 2, "audio_input": 28, "output": 5}
    assert t.model == "gpt-4o-transcribe"
    assert tr.usage is not None
    assert tr.usage.services == {"audio_second": Decimal("8.5")}
    assert sp.usage is not None
    assert sp.usage.services == {"character": Decimal(11)}
    assert sp.usage_source == "estimated"


def test_moderations_are_not_recorded(standin: StandInServer) -> None:
    c = client(
        standin,
        add(
            standin,
            "openai_moderation",
            {"id": "modr-1", "model": "omni-moderation-latest", "results": []},
        ),
    )
    with capture_events(instrument=["openai"]) as events:
        c.moderations.create(input="hi")
    assert events == []


# -- raw and streaming-response variants ----------------------------------------------------


# with_raw_response / with_streaming_response bind the method when first accessed on a
# client, so each run below uses a fresh client (see docs/instrumentation.md).


def test_with_raw_response(standin: StandInServer) -> None:
    def run() -> Any:
        c = client(standin, "openai_chat_cached_gpt4omini")
        raw = c.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
        return raw.headers.get("content-type"), dump(raw.parse())

    bare, instrumented, events = bare_and_instrumented(run)
    assert instrumented == bare
    assert only(events).usage is not None


def test_with_raw_response_stream(standin: StandInServer) -> None:
    c = client(standin, "openai_chat_stream_include_usage")
    with capture_events(instrument=["openai"]) as events:
        raw = c.chat.completions.with_raw_response.create(model="m", messages=MESSAGES, stream=True)
        stream = raw.parse()
        assert raw.parse() is stream
        assert len(list(stream)) == 8
    assert only(events).usage is not None


def test_with_raw_response_stream_dropped_unread_is_recorded(standin: StandInServer) -> None:
    c = client(standin, "openai_chat_stream_include_usage")
    with capture_events(instrument=["openai"]) as events:
        raw = c.chat.completions.with_raw_response.create(model="m", messages=MESSAGES, stream=True)
        assert raw.headers.get("content-type", "").startswith("text/event-stream")
        del raw  # neither parsed nor closed
        gc.collect()
        assert lct.flush(5)
        event = only(events)
    assert (event.status, event.usage, event.usage_source) == ("ok", None, "unknown")
    assert STATS.get(DROPPED_COUNTER) == 1


def test_with_raw_response_stream_parsed_then_dropped_is_the_streams_to_record(
    standin: StandInServer,
) -> None:
    c = client(standin, "openai_chat_stream_include_usage")
    with capture_events(instrument=["openai"]) as events:
        stream = c.chat.completions.with_raw_response.create(
            model="m", messages=MESSAGES, stream=True
        ).parse()  # the raw response is dropped at once: the stream goes on
        gc.collect()
        assert lct.flush(5)
        assert events == []
        assert len(list(stream)) == 8
    assert only(events).usage is not None
    assert STATS.get(DROPPED_COUNTER) == 0


@pytest.mark.parametrize("read", ["parse", "json", "read", "nothing"])
def test_with_streaming_response(standin: StandInServer, read: str) -> None:
    def run() -> Any:
        c = client(standin, "openai_chat_cached_gpt4omini")
        with c.chat.completions.with_streaming_response.create(model="m", messages=MESSAGES) as r:
            if read == "parse":
                return dump(r.parse())
            if read == "json":
                return r.json()
            if read == "read":
                return r.read()
            return r.status_code

    bare, instrumented, events = bare_and_instrumented(run)
    assert instrumented == bare
    event = only(events)
    assert (event.usage is None) is (read == "nothing")


async def test_async_with_streaming_response(standin: StandInServer) -> None:
    async with (
        aclient(standin, "openai_chat_cached_gpt4omini") as c,
        acapture() as events,
        c.chat.completions.with_streaming_response.create(model="m", messages=MESSAGES) as r,
    ):
        parsed = await r.parse()
    assert parsed.usage is not None
    assert only(events).usage is not None


# -- errors and retries ---------------------------------------------------------------------


def error_payload(standin: StandInServer, *, retry: bool = False) -> str:
    body = {
        "error": {
            "message": "Rate limit reached",
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
    }
    headers = {"x-should-retry": "true", "retry-after-ms": "5"} if retry else {}
    return add(
        standin,
        f"openai_error_429{'_retry' if retry else ''}",
        body,
        http_status=429,
        response_headers=headers,
    )


def test_sdk_error_is_recorded_and_reraised_unmodified(standin: StandInServer) -> None:
    c = client(standin, error_payload(standin))

    def run() -> Any:
        return c.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    bare = error_of(run)
    with capture_events(instrument=["openai"]) as events:
        instrumented = error_of(run)
    same_error(bare, instrumented)
    assert isinstance(instrumented, openai.RateLimitError)
    event = only(events)
    assert (event.status, event.error_type, event.usage, event.model) == (
        "error",
        "RateLimitError",
        None,
        "gpt-4o",
    )


def test_non_json_502_is_an_error_event(standin: StandInServer) -> None:
    c = client(standin, "edge_502_html_body")
    bare = error_of(lambda: c.chat.completions.create(model="m", messages=MESSAGES))
    with capture_events(instrument=["openai"]) as events:
        instrumented = error_of(lambda: c.chat.completions.create(model="m", messages=MESSAGES))
    same_error(bare, instrumented)
    assert only(events).error_type == "InternalServerError"


async def test_async_sdk_error(standin: StandInServer) -> None:
    async with aclient(standin, error_payload(standin)) as c, acapture() as events:
        with pytest.raises(openai.RateLimitError):
            await c.chat.completions.create(model="m", messages=MESSAGES)
    assert only(events).status == "error"


def test_sdk_retries_are_one_call(standin: StandInServer) -> None:
    url = standin.sequence_url(
        "openai-retry", [error_payload(standin, retry=True), "openai_chat_cached_gpt4omini"], "/v1"
    )
    c = openai.OpenAI(api_key="sk-test", base_url=url, max_retries=2)
    with capture_events(instrument=["openai"]) as events:
        c.chat.completions.create(model="m", messages=MESSAGES)
    event = only(events)
    assert event.status == "ok"
    assert event.usage is not None


def test_connection_error_is_recorded(standin: StandInServer, closed_port: int) -> None:
    c = openai.OpenAI(
        api_key="sk-test", base_url=f"http://127.0.0.1:{closed_port}/v1", max_retries=0
    )
    with capture_events(instrument=["openai"]) as events, pytest.raises(openai.APIConnectionError):
        c.chat.completions.create(model="m", messages=MESSAGES)
    assert only(events).error_type == "APIConnectionError"


def test_our_failure_never_reaches_the_caller(
    standin: StandInServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_cost_tracker.instrumentation import _sdk
    from llm_cost_tracker.instrumentation.openai import _extract

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in our code")

    monkeypatch.setattr(_sdk, "record", broken)  # the one recording path
    c = client(standin, "openai_chat_cached_gpt4omini")
    with capture_events(instrument=["openai"]) as events:
        result = c.chat.completions.create(model="m", messages=MESSAGES)
    assert result.id == "chatcmpl-BNi420iFNtIOHzy8Gq2fVS5utTus7"
    assert events == []
    assert STATS.get("errors.instrumentation.record") == 1
    with capture_events(
        instrument=["openai"], budgets=lct.Budgets(monthly=100, on_exceed="raise")
    ) as events:
        result = c.chat.completions.create(model="m", messages=MESSAGES)
    assert result.id == "chatcmpl-BNi420iFNtIOHzy8Gq2fVS5utTus7"
    assert events == []
    assert STATS.get("errors.instrumentation.record") == 2

    monkeypatch.undo()
    monkeypatch.setattr(_extract.ChatStreamState, "add", broken)
    c = client(standin, "openai_chat_stream_include_usage")
    with capture_events(instrument=["openai"]):
        chunks = list(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert len(chunks) == 9  # a chunk we could not read is never hidden
    assert STATS.get("errors.instrumentation.stream_item") == 9


# -- concurrency and tags -------------------------------------------------------------------


def test_threads_keep_their_own_tags(standin: StandInServer) -> None:
    c = client(standin, "openai_chat_cached_gpt4omini")

    def work(n: int) -> None:
        with lct.with_tags(user_id=str(n)):
            for _ in range(5):
                c.chat.completions.create(model="m", messages=MESSAGES)

    with capture_events(instrument=["openai"]) as events:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(events) == 40
    assert sorted(e.tags["user_id"] for e in events) == sorted(
        str(n) for n in range(8) for _ in range(5)
    )


async def test_tasks_keep_their_own_tags(standin: StandInServer) -> None:
    c = aclient(standin, "openai_chat_stream_include_usage")

    async def work(n: int) -> None:
        with lct.with_tags(user_id=str(n)):
            stream = await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        async for _ in stream:
            await asyncio.sleep(0)

    async with c:
        with capture_events(instrument=["openai"]) as events:
            await asyncio.gather(*(work(n) for n in range(10)))
    assert sorted(e.tags["user_id"] for e in events) == sorted(str(n) for n in range(10))
    assert all(e.usage is not None for e in events)


# -- instrumentor lifecycle -----------------------------------------------------------------


def original_create() -> Any:
    from openai.resources.chat.completions import completions

    return completions.Completions.__dict__["create"]


def test_instrument_is_idempotent_and_uninstrument_restores() -> None:
    before = original_create()
    instrumentor = OpenAIInstrumentor()
    assert instrumentor.instrument() is True
    wrapped = original_create()
    assert wrapped is not before
    assert instrumentor.instrument() is True  # warns, does nothing
    assert original_create() is wrapped
    instrumentor.uninstrument()
    assert original_create() is before
    assert instrumentor.is_instrumented is False


def test_not_recording_without_configuration_changes_nothing(standin: StandInServer) -> None:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument()
    try:
        with lct.suppressed():
            result = client(standin, "openai_chat_cached_gpt4omini").chat.completions.create(
                model="m", messages=MESSAGES
            )
    finally:
        instrumentor.uninstrument()
    assert result.usage is not None


def test_no_double_count_with_the_transport_instrumentor(standin: StandInServer) -> None:
    with capture_events(instrument=["openai", "httpx"]) as events:
        client(standin, "openai_chat_cached_gpt4omini").chat.completions.create(
            model="m", messages=MESSAGES
        )
        list(
            client(standin, "openai_chat_stream_include_usage").chat.completions.create(
                model="m", messages=MESSAGES, stream=True
            )
        )
    assert len(events) == 2
    assert [e.operation for e in events] == ["chat", "chat"]


# -- malformed payloads and missing SDKs ----------------------------------------------------


def test_negative_usage_is_unknown_and_counted(standin: StandInServer) -> None:
    response = json.loads(json.dumps(PAYLOADS["openai_chat_cached_gpt4omini"]["response"]))
    response["usage"]["prompt_tokens"] = -5
    c = client(standin, add(standin, "openai_chat_negative_usage", response))
    bare, instrumented, events = bare_and_instrumented(
        lambda: c.chat.completions.create(model="m", messages=MESSAGES)
    )
    assert dump(instrumented) == dump(bare)
    event = only(events)
    assert event.usage is None
    assert event.usage_source == "unknown"
    assert STATS.get("dropped.usage_invalid") == 1


def test_malformed_stream_chunk_error_is_identical(standin: StandInServer) -> None:
    sse = PAYLOADS["openai_chat_stream_include_usage"]["sse"].split("\n\n")
    sse.insert(2, "data: {not json")
    c = client(standin, add(standin, "openai_chat_stream_malformed", None, sse="\n\n".join(sse)))

    def run() -> BaseException:
        return error_of(
            lambda: list(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        )

    bare = run()
    with capture_events(instrument=["openai"]) as events:
        instrumented = run()
    same_error(bare, instrumented)
    event = only(events)
    assert event.status == "error"
    assert event.error_type == type(bare).__name__


def test_missing_or_too_old_sdk_is_a_logged_no_op(caplog: pytest.LogCaptureFixture) -> None:
    class NeedsAFutureSDK(OpenAIInstrumentor):
        def instrumentation_dependencies(self) -> tuple[str, ...]:
            return ("openai >= 99",)

    caplog.set_level("INFO")
    before = original_create()
    assert NeedsAFutureSDK().instrument() is False
    assert original_create() is before
    assert "does not satisfy" in caplog.text


@pytest.mark.parametrize(
    ("provider", "api_version", "asked"),
    [
        ("mistral", None, False),
        ("azure_openai", "2024-02-01", False),
        ("azure_openai", "2024-10-21", True),
    ],
)
def test_usage_is_only_asked_of_providers_that_accept_it(
    standin: StandInServer, provider: str, api_version: str | None, asked: bool
) -> None:
    host = standin.url.removeprefix("http://")
    register_host(host, provider)
    try:
        if api_version is None:
            c = client(standin, "openai_chat_stream_include_usage")
        else:
            c = openai.AzureOpenAI(
                api_key="k",
                api_version=api_version,
                azure_endpoint=standin.scenario_url("openai_chat_stream_include_usage"),
                max_retries=0,
            )
            _OPEN.append(c)
        with capture_events(instrument=["openai"]) as events:
            list(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    finally:
        unregister_host(host)
    assert ("stream_options" in standin.requests[-1].json()) is asked
    assert only(events).provider == provider
