"""Added latency of the SDK instrumentors on the caller's thread, against the bare SDK in the same run.

The openai and anthropic clients talk to an in-process transport (``MockTransport``
handed in through ``http_client``), so no network is measured: what is left is
the SDK's own work plus ours. Bare and instrumented blocks alternate; the
figure is the difference of the medians. Streams report the added time per chunk.

Peers (OpenTelemetry's openai-v2, OpenLLMetry, OpenLIT) are measured the same
way when a Python with them installed is named in
``LLM_COST_TRACKER_BENCH_PEERS_PYTHON`` (they need a separate environment):

    python -m bench instrumentation
    LLM_COST_TRACKER_BENCH_PEERS_PYTHON=/tmp/peers/bin/python python -m bench instrumentation
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    from ._timing import each_call_us, median_call_us
except ImportError:  # run as a script in a peer's virtualenv (``--peer``, below)
    from _timing import each_call_us, median_call_us  # type: ignore[no-redef]

CALLS = 400  # bare and instrumented calls each, in alternating blocks
DRAINED_CALLS = 2000  # the same, for our caller's-thread figure: its noise is what is left
BLOCK = 20  # calls per block
SETTLE = 3  # untimed calls after each switch
ROUNDS = 4  # blocks, for instrumentations that cannot be undone (OpenLIT)
CHUNKS = 200  # per streamed response
STREAM_CALLS = 40
ISOLATED_CALLS = 10_000

_PAYLOADS = (
    Path(__file__).resolve().parent.parent / "llm_cost_tracker" / "cli" / "_standin" / "payloads"
)


def _http() -> Any:
    """The transport module the installed SDKs use (httpx2 for openai 3.x / anthropic 2.x, else httpx)."""
    import openai

    if openai.__version__.split(".")[0] in ("1", "2"):
        import httpx

        return httpx
    import httpx2

    return httpx2


def _chat_body() -> bytes:
    payload = json.loads((_PAYLOADS / "openai_chat_cached_gpt4omini.json").read_text())
    return json.dumps(payload["response"]).encode()


def _anthropic_body() -> bytes:
    payload = json.loads((_PAYLOADS / "anthropic_cache_read.json").read_text())
    return json.dumps(payload["response"]).encode()


def _chat_stream_body(chunks: int) -> bytes:
    base = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "service_tier": "default",
        "system_fingerprint": None,
    }
    lines = []
    for i in range(chunks):
        delta = {
            "index": 0,
            "delta": {"content": f"w{i} "},
            "logprobs": None,
            "finish_reason": None,
        }
        lines.append(json.dumps({**base, "choices": [delta], "usage": None}))
    usage = {"prompt_tokens": 10, "completion_tokens": chunks, "total_tokens": 10 + chunks}
    lines.append(json.dumps({**base, "choices": [], "usage": usage}))
    return "".join(f"data: {line}\n\n" for line in lines).encode() + b"data: [DONE]\n\n"


def _openai_client(body: bytes, content_type: str) -> Any:
    import openai

    http = _http()

    def handler(request: Any) -> Any:
        return http.Response(200, content=body, headers={"content-type": content_type})

    return openai.OpenAI(
        api_key="sk-bench",
        base_url="http://bench.invalid/v1",
        max_retries=0,
        http_client=http.Client(transport=http.MockTransport(handler)),
    )


def _anthropic_client(body: bytes) -> Any:
    import anthropic

    http = _http()

    def handler(request: Any) -> Any:
        return http.Response(200, content=body, headers={"content-type": "application/json"})

    return anthropic.Anthropic(
        api_key="bench",
        base_url="http://bench.invalid",
        max_retries=0,
        http_client=http.Client(transport=http.MockTransport(handler)),
    )


MESSAGES = [{"role": "user", "content": "hi"}]


def _workloads() -> dict[str, tuple[Callable[[], Any], int]]:
    """name -> (one call, items per call for per-item figures)."""
    chat = _openai_client(_chat_body(), "application/json")
    stream = _openai_client(_chat_stream_body(CHUNKS), "text/event-stream")
    work: dict[str, tuple[Callable[[], Any], int]] = {
        "openai chat": (
            lambda: chat.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
            1,
        ),
        f"openai chat stream ({CHUNKS} chunks)": (
            lambda: sum(
                1
                for _ in stream.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True
                )
            ),
            CHUNKS,
        ),
    }
    try:
        messages = _anthropic_client(_anthropic_body())
    except ImportError:
        return work
    work["anthropic messages"] = (
        lambda: messages.messages.create(model="claude-bench", max_tokens=64, messages=MESSAGES),
        1,
    )
    return work


def measure(
    setup: Callable[[], None],
    teardown: Callable[[], None],
    *,
    alternating: bool = True,
    only_openai: bool = False,
    between: Callable[[], None] | None = None,
    calls: int = CALLS,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> dict[str, dict[str, float]]:
    """Median microseconds per call, bare and instrumented, in short alternating blocks.

    ``alternating=False`` is for instrumentations that cannot be undone: every bare
    block runs first, then the instrumentation is set up once. ``between`` runs,
    untimed, after each instrumented block (ours: drain the bus worker, so that
    its work does not land in the next timed block). ``clock`` times each call
    (wall clock; the thread's CPU clock for a figure of the caller's thread alone,
    which the host's other guests disturb less).
    """
    results: dict[str, dict[str, float]] = {}
    workloads = _workloads()
    if only_openai:
        workloads = {k: v for k, v in workloads.items() if k.startswith("openai")}
    if not alternating:
        bare_all = {}
        for name, (call, items) in workloads.items():
            n = CALLS if items == 1 else STREAM_CALLS
            for _ in range(20):
                call()
            bare_all[name] = [t for _ in range(ROUNDS) for t in each_call_us(call, n)]
        setup()
        for name, (call, items) in workloads.items():
            n = CALLS if items == 1 else STREAM_CALLS
            for _ in range(20):
                call()
            timed = [t for _ in range(ROUNDS) for t in each_call_us(call, n)]
            b, i = statistics.median(bare_all[name]), statistics.median(timed)
            results[name] = {"bare_us": b, "instrumented_us": i, "added_us": i - b, "items": items}
        return results
    for name, (call, items) in workloads.items():
        n = calls if items == 1 else STREAM_CALLS
        block = BLOCK if items == 1 else max(1, BLOCK // 10)
        for _ in range(10):
            call()  # warm up both code paths
        setup()
        for _ in range(10):
            call()
        teardown()
        bare: list[float] = []
        instrumented: list[float] = []
        # Short alternating blocks, so load changes on a shared machine hit both alike; a
        # few untimed calls after each switch let the interpreter settle again (patching
        # a class invalidates the attribute caches of the code that uses it).
        while len(bare) < n:
            for _ in range(SETTLE):
                call()
            for _ in range(block):
                start = clock()
                call()
                bare.append((clock() - start) / 1000.0)
            setup()
            try:
                for _ in range(SETTLE):
                    call()
                for _ in range(block):
                    start = clock()
                    call()
                    instrumented.append((clock() - start) / 1000.0)
            finally:
                teardown()
            if between is not None:
                between()
        b, i = statistics.median(bare), statistics.median(instrumented)
        results[name] = {"bare_us": b, "instrumented_us": i, "added_us": i - b, "items": items}
    return results


def isolated() -> dict[str, float]:
    """Our own cost with the SDK's work taken out: the wrapper around a method returning a prebuilt result.

    The result is a real ``ChatCompletion`` (and real ``ChatCompletionChunk`` objects)
    parsed by the SDK from the recorded payload, so extraction reads the same
    objects as in a live call. The full pipeline is configured (bus, pricing), with
    the bus worker idle while timing.
    """
    from llm_cost_tracker.instrumentation._sdk import CallRecorder, begin_call, method_wrapper
    from llm_cost_tracker.instrumentation._streams import SyncStreamProxy
    from llm_cost_tracker.instrumentation.openai import CHAT, sdk_context

    import llm_cost_tracker as lct

    chat = _openai_client(_chat_body(), "application/json")
    completion = chat.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    streamer = _openai_client(_chat_stream_body(CHUNKS), "text/event-stream")
    chunks = list(
        streamer.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    )
    resource = chat.chat.completions
    ctx = sdk_context()
    wrapper = method_wrapper(ctx, CHAT)
    kwargs = {"model": "gpt-4o-mini", "messages": MESSAGES}

    def sdk_method(**kw: Any) -> Any:
        return completion

    # The worker is kept asleep (one large batch, a long interval) so that what is timed is
    # the caller's thread alone, not the caller sharing the GIL with pricing on the worker.
    lct.configure(
        database_url=None,
        instrument=None,
        exporters=[],
        batch_size=ISOLATED_CALLS * 2,
        export_interval=3600.0,
    )
    try:
        bare = median_call_us(lambda: sdk_method(**kwargs), ISOLATED_CALLS)
        wrapped = median_call_us(lambda: wrapper(sdk_method, resource, (), kwargs), ISOLATED_CALLS)

        def iterate_bare() -> None:
            for _ in iter(chunks):
                pass

        def iterate_proxy() -> None:
            call = begin_call(ctx, CHAT, resource, {**kwargs, "stream": True})
            assert call is not None
            for _ in SyncStreamProxy(iter(chunks), CallRecorder(ctx, CHAT, call, kwargs, True)):
                pass

        bare_stream = median_call_us(iterate_bare, 500)
        proxy_stream = median_call_us(iterate_proxy, 500)
    finally:
        lct.shutdown()
    return {
        "call_bare_us": bare,
        "call_wrapped_us": wrapped,
        "call_added_us": wrapped - bare,
        "stream_added_per_chunk_us": (proxy_stream - bare_stream) / len(chunks),
        "stream_chunks": len(chunks),
    }


IN_SITU_CALLS = 1500
BUDGET_US = 8.0  # the caller's cost per call we aim for


def in_situ() -> dict[str, dict[str, float]]:
    """Our part of real SDK calls: time in our wrapper minus time in the SDK method it wraps.

    The hot-loop figure of ``isolated()`` flatters: in a real call the SDK's own
    work (about a millisecond here) evicts our code and data from the CPU caches
    between two calls. Here the real ``method_wrapper`` wraps the real SDK methods,
    and a shim around each reads the thread's CPU clock on entry and exit and
    around the SDK method; the same shim around a wrapper that only passes the
    call on is the baseline, in alternating rounds, so what is left is our code
    with caches as a real call leaves them. CPU time, so the other threads and
    the machine's load count less; medians over ``IN_SITU_CALLS`` calls each.
    """
    from llm_cost_tracker.instrumentation import _sdk
    from llm_cost_tracker.instrumentation import anthropic as anthropic_instrumentation
    from llm_cost_tracker.instrumentation import openai as openai_instrumentation

    import llm_cost_tracker as lct

    from ._timing import cpu_shim, pass_through

    spans: list[float] = []
    real = _sdk.method_wrapper
    use_real = True

    def timed_method_wrapper(ctx: Any, surface: Any) -> Callable[..., Any]:
        return cpu_shim(real(ctx, surface) if use_real else pass_through, spans)

    results: dict[str, dict[str, float]] = {}
    modules = (openai_instrumentation, anthropic_instrumentation)
    for module in modules:
        module.method_wrapper = timed_method_wrapper  # type: ignore[attr-defined]
    configure, patch, unpatch = _ours()
    configure()
    try:
        for name, (call, items) in _workloads().items():
            if items != 1:
                continue
            samples: dict[bool, list[float]] = {False: [], True: []}
            for use_real in (False, True, False, True):
                patch()
                try:
                    for _ in range(50):
                        call()
                    spans.clear()
                    for _ in range(IN_SITU_CALLS // 2):
                        call()
                finally:
                    unpatch()
                samples[use_real] += spans
            base = statistics.median(samples[False])
            ours = [t - base for t in samples[True]]
            results[name] = {
                "median_us": statistics.median(ours),
                "p10_us": statistics.quantiles(ours, n=10)[0],
                "p90_us": statistics.quantiles(ours, n=10)[-1],
                "shim_us": base,
            }
    finally:
        for module in modules:
            module.method_wrapper = real  # type: ignore[attr-defined]
        lct.shutdown()
    return results


def _ours() -> tuple[Callable[[], None], Callable[[], None], Callable[[], None]]:
    """(configure, patch, unpatch): the pipeline is configured once; the SDKs are patched per call."""
    from llm_cost_tracker.instrumentation.anthropic import AnthropicInstrumentor
    from llm_cost_tracker.instrumentation.openai import OpenAIInstrumentor

    import llm_cost_tracker as lct

    instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor()]

    def configure() -> None:
        lct.configure(database_url=None, instrument=None, exporters=[])

    def patch() -> None:
        config = lct.get_config()
        for instrumentor in instrumentors:
            instrumentor.instrument(config=config)

    def unpatch() -> None:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()

    return configure, patch, unpatch


def _peer(name: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """Set up a peer instrumentation the way its docs say, exporting spans to memory."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if name == "opentelemetry-instrumentation-openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as Peer
    elif name == "opentelemetry-instrumentation-openai (OpenLLMetry)":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as Peer  # type: ignore[no-redef]
    elif name == "openlit":
        import openlit

        def setup_openlit() -> None:
            openlit.init(tracer=provider.get_tracer("bench"), disable_metrics=True)

        return setup_openlit, lambda: exporter.clear()
    else:
        raise ValueError(name)
    instrumentor = Peer()

    def setup() -> None:
        instrumentor.instrument(tracer_provider=provider)

    def teardown() -> None:
        instrumentor.uninstrument()
        exporter.clear()

    return setup, teardown


PEERS_VARIABLE = "LLM_COST_TRACKER_BENCH_PEERS_PYTHON"
PEERS = (
    "opentelemetry-instrumentation-openai-v2",
    "opentelemetry-instrumentation-openai (OpenLLMetry)",
    "openlit",
)


def _peer_version(name: str) -> str:
    from importlib.metadata import version

    import openai

    distribution = name.split(" ")[0]
    return f"{distribution} {version(distribution)}, openai {openai.__version__}"


def _print(label: str, results: dict[str, dict[str, float]]) -> None:
    print(f"\n{label}")
    print(f"  {'workload':<36} {'bare':>10} {'instrumented':>13} {'added':>10} {'ratio':>7}")
    for name, r in results.items():
        per = ""
        if r["items"] > 1:
            per = f"   ({r['added_us'] / r['items']:.3f} us per chunk)"
        print(
            f"  {name:<36} {r['bare_us']:>8.1f}us {r['instrumented_us']:>11.1f}us "
            f"{r['added_us']:>8.1f}us {r['instrumented_us'] / r['bare_us']:>6.3f}x{per}"
        )


def main() -> None:
    import openai

    print(
        f"python {sys.version.split()[0]}, openai {openai.__version__}; "
        f"{CALLS} bare and {CALLS} instrumented calls in alternating blocks of {BLOCK} ({STREAM_CALLS} for streams); medians"
    )
    alone = isolated()
    print(
        "\nllm-cost-tracker, our code alone (wrapper around a prebuilt SDK result; "
        f"{ISOLATED_CALLS} calls, medians):\n"
        f"  non-streaming call: {alone['call_added_us']:.2f} us added (budget {BUDGET_US:g} us) "
        f"({alone['call_bare_us']:.2f} -> {alone['call_wrapped_us']:.2f} us)\n"
        f"  stream: {alone['stream_added_per_chunk_us']:.3f} us added per chunk "
        f"({alone['stream_chunks']} chunks, start and finish of the call included)"
    )
    situ = in_situ()
    print(
        "\nllm-cost-tracker, our part of real SDK calls (CPU time in our wrapper minus the SDK "
        f"method's, against the same shim around a pass-through wrapper; {IN_SITU_CALLS} calls "
        "each, caches as a real call leaves them):"
    )
    for name, figures in situ.items():
        print(
            f"  {name:<36} median {figures['median_us']:6.2f} us  "
            f"(p10 {figures['p10_us']:.2f}, p90 {figures['p90_us']:.2f}; "
            f"shim alone {figures['shim_us']:.2f})  "
            + ("OK" if figures["median_us"] <= BUDGET_US else f"OVER the {BUDGET_US:g} us budget")
        )
    import llm_cost_tracker as lct

    configure, patch, unpatch = _ours()
    configure()
    try:
        drained = measure(
            patch,
            unpatch,
            between=lambda: lct.flush(10),
            calls=DRAINED_CALLS,
            clock=time.thread_time_ns,
        )
        end_to_end = measure(patch, unpatch)
    finally:
        lct.shutdown()
    _print(
        "llm-cost-tracker, end to end, the caller's thread (its CPU clock; the bus worker "
        f"drained, untimed, after each instrumented block; {DRAINED_CALLS} calls each)",
        drained,
    )
    _print(
        "llm-cost-tracker, end to end, the worker running beside the caller (it reads, prices "
        "and exports; the in-process transport never waits, so its work shares the GIL with the caller)",
        end_to_end,
    )
    # one or more Pythons (os.pathsep-separated): peers often need environments of their own
    pythons = [p for p in os.environ.get(PEERS_VARIABLE, "").split(os.pathsep) if p]
    if not pythons:
        print(f"\n(peers: set {PEERS_VARIABLE} to a Python that has them installed)")
        return
    for peer in PEERS:
        reason = "(not tried)"
        for python in pythons:
            done = subprocess.run(
                [python, __file__, "--peer", peer],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode == 0:
                version = done.stdout.strip().splitlines()[-2]
                _print(f"{peer} ({version})", json.loads(done.stdout.strip().splitlines()[-1]))
                break
            reason = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        else:
            print(f"\n{peer}: could not be measured: {reason}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--peer":
        peer_setup, peer_teardown = _peer(sys.argv[2])
        # openlit.init() patches for good, and OpenLLMetry's uninstrument() leaves wrappers
        # behind (patching it again per call recurses): both are measured in blocks instead
        undoable = sys.argv[2] == "opentelemetry-instrumentation-openai-v2"
        figures = measure(peer_setup, peer_teardown, alternating=undoable, only_openai=True)
        print(_peer_version(sys.argv[2]))
        print(json.dumps(figures))
    else:
        main()
