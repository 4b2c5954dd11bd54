"""Per-request cost of the requests transport instrumentor, in process (no network).

Measured in the same run:

- the wrapper alone: ``Session.send``'s wrapper called around a stub that
  returns a response whose body is already read (what ``send(stream=False)``
  returns), against calling the stub directly. For an LLM request this is the
  caller's thread only (the bus worker is kept asleep while timing): reading
  the request's model, starting the call and queueing it with a reference to
  the body's bytes;
- by body: the same wrapper for a 4 KB chat completion and for one embedding
  of 1,536 floats (``encoding_format="float"``), each against ``json.loads``
  of the same body. The caller's thread does not parse the body, so its cost
  does not grow with it; the row after each is the bus worker's reading of
  that body (``BodyReading.read``: parsing it, embedding vectors emptied
  unread first, and reading its usage), the work moved off the caller.
- end to end: ``Session.post`` through an in-process adapter that answers with
  a canned body, instrumented and not, alternating to share the noise.
"""

from __future__ import annotations

import io
import json
import statistics
from typing import Any

import requests
import requests.adapters
import urllib3
from llm_cost_tracker.instrumentation._sse import BodyReading
from llm_cost_tracker.instrumentation._transport import route_url
from llm_cost_tracker.instrumentation.httpx._parsers import route_for
from llm_cost_tracker.instrumentation.requests import RequestsInstrumentor
from llm_cost_tracker.instrumentation.requests._wrappers import send_wrapper

import llm_cost_tracker as lct

from ._timing import per_call_us, report
from .bench_httpx import (
    CHAT_BODY,
    CHAT_URL,
    OTHER_URL,
    REQUEST,
    Discard,
    configure_worker_asleep,
    llm_call_row,
)

EMBEDDINGS_URL = "https://api.openai.com/v1/embeddings"
LONG_CHAT_BODY = json.dumps(
    {
        **json.loads(CHAT_BODY),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "A longer answer. " * 240}}
        ],
    }
).encode()
EMBEDDINGS_BODY = json.dumps(
    {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": 0,
                "embedding": [(-1) ** d * (d % 97) / 1e4 + 1e-9 for d in range(1536)],
            }
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
).encode()


class CannedAdapter(requests.adapters.HTTPAdapter):
    """Answers every request in process: the chat body for the chat URL, ``{}`` otherwise."""

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        body = CHAT_BODY if request.url == CHAT_URL else b"{}"
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(body),
            headers={"content-type": "application/json", "content-length": str(len(body))},
            status=200,
            preload_content=False,
        )
        return self.build_response(request, raw)


def _session() -> requests.Session:
    session = requests.Session()
    session.mount("https://", CannedAdapter())
    return session


def _wrapper_alone() -> None:
    wrapper = send_wrapper()
    session = _session()
    chat = session.prepare_request(requests.Request("POST", CHAT_URL, json=REQUEST))
    other = session.prepare_request(requests.Request("GET", OTHER_URL))
    chat_response = session.send(chat)
    other_response = session.send(other)

    def stub(request: Any, **kwargs: Any) -> Any:
        return chat_response if request is chat else other_response

    args_other, args_chat, no_kwargs = (other,), (chat,), {}
    base = per_call_us(lambda: stub(other), batch=20_000, repeats=25)
    wrapped_other = per_call_us(
        lambda: wrapper(stub, None, args_other, no_kwargs), batch=20_000, repeats=25
    )
    report("requests stub send (baseline)", base)
    report("requests wrapper, non-LLM request", wrapped_other, base)
    print(f"{'':<4}added: {wrapped_other - base:.3f} us  target < 1 us  ", end="")
    print("OK" if wrapped_other - base < 1.0 else "MISSED")

    configure_worker_asleep()
    llm_call_row(
        "requests wrapper, LLM chat request (caller's thread)",
        lambda: stub(chat),
        lambda: wrapper(stub, None, args_chat, no_kwargs),
    )
    lct.configure(database_url=None, exporters=[Discard()], instrument=None)


def _wrapper_and_loads(wrapper: Any, request: Any, body: bytes) -> tuple[float, float]:
    """Microseconds of ``json.loads(body)``, and of the wrapper around a response with ``body``."""
    response = requests.Response()
    response.status_code, response._content = 200, body
    response.headers["content-type"] = "application/json"

    def stub(request: Any, **kwargs: Any) -> Any:
        return response

    args: tuple[Any, ...] = (request,)
    loads = per_call_us(lambda: json.loads(body), batch=50, repeats=15)
    samples = [
        per_call_us(lambda: wrapper(stub, None, args, {}), batch=50, repeats=3) for _ in range(5)
    ]
    lct.flush(30)
    return loads, statistics.median(samples)


def _by_body() -> None:
    """The LLM-call wrapper for larger bodies, against parsing the same body with ``json.loads``."""
    configure_worker_asleep()
    wrapper = send_wrapper()
    session = _session()
    cases = (
        ("chat completion, 4 KB", CHAT_URL, REQUEST, LONG_CHAT_BODY),
        (
            "embedding, 1,536 floats (33 KB)",
            EMBEDDINGS_URL,
            {"model": "text-embedding-3-small", "input": "hi", "encoding_format": "float"},
            EMBEDDINGS_BODY,
        ),
    )
    for label, url, payload, body in cases:
        request = session.prepare_request(requests.Request("POST", url, json=payload))
        loads, wrapped = _wrapper_and_loads(wrapper, request, body)
        report(f"json.loads of the body: {label} (baseline)", loads)
        report(f"requests wrapper, {label}", wrapped, loads)
        found = route_url(url)
        assert found is not None
        route = route_for(*found)
        assert route is not None
        worker = per_call_us(
            lambda r=route, b=body: BodyReading(
                b, r.read, usage_key=r.usage_key, vectors=r.vectors
            ).read(),
            batch=50,
            repeats=15,
        )
        report(f"bus worker reading it: {label}", worker, loads)
    lct.configure(database_url=None, exporters=[Discard()], instrument=None)


def _end_to_end() -> None:
    session = _session()
    instrumentor = RequestsInstrumentor()

    def chat() -> None:
        session.post(CHAT_URL, json=REQUEST)

    def other() -> None:
        session.get(OTHER_URL)

    for label, func in (("non-LLM GET", other), ("LLM chat (JSON)", chat)):
        base_runs, inst_runs = [], []
        for _ in range(3):
            instrumentor.uninstrument()
            lct.flush(30)
            base_runs.append(per_call_us(func, batch=100, repeats=5))
            instrumentor.instrument()
            lct.flush(30)
            inst_runs.append(per_call_us(func, batch=100, repeats=5))
        instrumentor.uninstrument()
        base, inst = statistics.median(base_runs), statistics.median(inst_runs)
        report(f"requests {label}: uninstrumented (baseline)", base)
        report(f"requests {label}: instrumented", inst, base)
        print(f"{'':<4}added end to end: {inst - base:+.2f} us (noisy: requests is {base:.0f} us)")
    session.close()


def main() -> None:
    lct.configure(database_url=None, exporters=[Discard()], instrument=None)
    try:
        _wrapper_alone()
        _by_body()
        _end_to_end()
    finally:
        lct.shutdown()
