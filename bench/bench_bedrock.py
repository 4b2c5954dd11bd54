"""The caller-thread cost of recording a Bedrock Converse call, against the bare call in the same run.

An InvokeModel call is timed the same way in the hot loop: its body is read
and handed back as a new ``StreamingBody`` on the caller's thread, and parsed
by the bus worker (kept asleep here).

A real boto3 ``bedrock-runtime`` client makes every call; a ``before-call``
handler answers it with a parsed Converse response, so botocore still
validates, serializes and signs the request but no socket is involved and the
figure is our wrapper's work, not the network's. Bare and instrumented calls
alternate in short blocks (timed on the thread's CPU clock, so the host's other
guests disturb them less); the bus worker is drained, untimed, between blocks.
Goal: at most 8 µs added, the SDK wrappers' budget, on the hot-loop figure
(our code alone against the bare call, as ``bench_instrumentation`` measures
it); the end-to-end figure also counts the cache misses a real call leaves.
"""

from __future__ import annotations

import io
import statistics
import time
from typing import Any

GOAL_US = 8.0
BLOCK = 200
ROUNDS = 30

RESPONSE = {
    "output": {"message": {"role": "assistant", "content": [{"text": "Hello!"}]}},
    "stopReason": "end_turn",
    "usage": {
        "inputTokens": 125,
        "outputTokens": 60,
        "totalTokens": 185,
        "cacheReadInputTokens": 40,
    },
    "metrics": {"latencyMs": 310},
    "ResponseMetadata": {
        "RequestId": "5f1c8d0e-0b7a-4a63-9d55-2b8c3f2e7a10",
        "HTTPStatusCode": 200,
    },
}


INVOKE_BODY = (
    b'{"id":"msg_bdrk_01","type":"message","role":"assistant",'
    b'"model":"claude-3-5-haiku-20241022","content":[{"type":"text","text":"Hello!"}],'
    b'"stop_reason":"end_turn","stop_sequence":null,'
    b'"usage":{"input_tokens":125,"cache_creation_input_tokens":0,'
    b'"cache_read_input_tokens":40,"output_tokens":60}}'
)
INVOKE_HEADERS = {
    "content-type": "application/json",
    "x-amzn-requestid": "5f1c8d0e-0b7a-4a63-9d55-2b8c3f2e7a11",
    "x-amzn-bedrock-input-token-count": "165",
    "x-amzn-bedrock-output-token-count": "60",
}


def _invoke_response() -> dict[str, Any]:
    from botocore.response import StreamingBody

    return {
        "body": StreamingBody(io.BytesIO(INVOKE_BODY), len(INVOKE_BODY)),
        "contentType": "application/json",
        "ResponseMetadata": {
            "RequestId": INVOKE_HEADERS["x-amzn-requestid"],
            "HTTPStatusCode": 200,
            "HTTPHeaders": dict(INVOKE_HEADERS),
        },
    }


class _Http:
    status_code = 200
    headers: dict[str, str] = {}


def _client() -> Any:
    import boto3

    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="bench-secret",
    )
    client.meta.events.register(
        "before-call.bedrock-runtime.Converse", lambda **kwargs: (_Http(), dict(RESPONSE))
    )
    return client


def _block(call: Any, clock: Any) -> list[float]:
    timings = []
    for _ in range(BLOCK):
        start = clock()
        call()
        timings.append((clock() - start) / 1000.0)
    return timings


HOT_CALLS = 10_000


def hot_loop(client: Any, operation: str = "Converse") -> tuple[float, float]:
    """(bare, wrapped) median µs: the wrapper around a method returning a prebuilt response.

    The same measure as ``bench_instrumentation``'s "our code alone": what our
    code adds, against the bare call in the same run, with botocore's own work
    taken out. The bus worker sleeps while timing (one large batch, a long interval).
    An InvokeModel response gets a new ``StreamingBody`` each call, bare or not.
    """
    from llm_cost_tracker.instrumentation.bedrock._wrappers import make_api_call_wrapper

    import llm_cost_tracker as lct

    wrapper = make_api_call_wrapper()
    params: dict[str, Any]
    if operation == "Converse":
        params = {
            "modelId": "us.amazon.nova-pro-v1:0",
            "messages": [{"role": "user", "content": [{"text": "What is Bedrock?"}]}],
        }
        response = dict(RESPONSE)

        def api_call(operation_name: str, api_params: Any) -> Any:
            return response

    else:
        params = {"modelId": "us.anthropic.claude-3-5-haiku-20241022-v1:0", "body": b"{}"}

        def api_call(operation_name: str, api_params: Any) -> Any:
            return _invoke_response()

    args = (operation, params)
    lct.configure(
        database_url=None,
        instrument=None,
        exporters=[],
        batch_size=HOT_CALLS * 2,
        export_interval=3600.0,
    )
    clock = time.perf_counter_ns
    try:
        samples: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(HOT_CALLS // BLOCK):
            for wrapped in (False, True):
                for _ in range(BLOCK):
                    start = clock()
                    if wrapped:
                        wrapper(api_call, client, args, {})
                    else:
                        api_call(*args)
                    samples[wrapped].append((clock() - start) / 1000.0)
    finally:
        lct.shutdown()
    return statistics.median(samples[False]), statistics.median(samples[True])


def main() -> None:
    from llm_cost_tracker.instrumentation.bedrock import BedrockInstrumentor

    import llm_cost_tracker as lct

    client = _client()
    for operation in ("Converse", "InvokeModel"):
        bare_hot, wrapped_hot = hot_loop(client, operation)
        added = wrapped_hot - bare_hot
        print(
            f"{operation}, our code alone (wrapper around a prebuilt response, {HOT_CALLS} calls, "
            f"medians): {added:.2f} us added ({bare_hot:.2f} -> {wrapped_hot:.2f} us)  "
            + ("OK" if added <= GOAL_US else f"OVER the {GOAL_US} us goal"),
            flush=True,
        )
    messages = [{"role": "user", "content": [{"text": "What is Bedrock?"}]}]

    def call() -> None:
        client.converse(modelId="us.amazon.nova-pro-v1:0", messages=messages)

    events: list[Any] = []
    lct.configure(database_url=None, instrument=None, exporters=[events.append])
    instrumentor = BedrockInstrumentor()
    clock = time.thread_time_ns
    bare: list[float] = []
    instrumented: list[float] = []
    for _ in range(50):
        call()
    try:
        for _ in range(ROUNDS):
            bare += _block(call, clock)
            instrumentor.instrument()
            for _ in range(20):
                call()  # settle after patching
            instrumented += _block(call, clock)
            instrumentor.uninstrument()
            lct.flush(5.0)
            events.clear()
            for _ in range(20):
                call()
    finally:
        instrumentor.uninstrument()
        lct.shutdown()
    b, i = statistics.median(bare), statistics.median(instrumented)
    print(
        f"converse end to end (botocore, no socket), caller-thread CPU per call: bare {b:.1f} us, "
        f"instrumented {i:.1f} us, added {i - b:.2f} us (cold caches; noisy at this scale)",
        flush=True,
    )


if __name__ == "__main__":
    main()
