"""The wrapper of botocore's ``BaseClient._make_api_call`` for the ``bedrock-runtime`` service.

One wrapper sees every Bedrock Runtime call a boto3/botocore client makes;
other services and operations cost a dict lookup and pass straight through.
The call is started (tags, span, clocks, the AWS region as the ``cloud.region``
tag) before the request goes out and runs suppressed, so no transport layer
records it again. Then:

- ``Converse``: the usage is read from the parsed response at once.
- ``InvokeModel``: the ``body`` (a ``StreamingBody``) is read whole and the
  caller gets a ``StreamingBody`` over the same bytes; the bus worker parses
  them (a ``BodyReading``, as for the transports). A body that fails to read
  is recorded as an error and hands the caller the same exception when it
  reads.
- ``ConverseStream`` / ``InvokeModelWithResponseStream``: the ``EventStream`` is
  put behind a proxy that shows the caller every event unchanged and records
  once at the end, on an error, on ``close()``, or when the caller drops it.

Botocore's exceptions (``ThrottlingException``, ``ValidationException``, ...) are
recorded as failed calls and re-raised untouched.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from ..._errors import LLMCostTrackerError
from ..._events import Call
from ..._stats import STATS
from ..._suppress import SUPPRESSED
from .._bedrock_models import model_of, pricing_mode_of
from .._calls import finish_call, start_call
from .._extraction import Extraction
from .._sse import BodyReading
from .._streams import SyncStreamProxy
from .._transport import RequestJSON
from ._extract import (
    INVOKE_HEADERS,
    ConverseStreamState,
    InvokeStreamState,
    extract_converse,
    extract_invoke,
    headers_of,
    served_tier,
)

PROVIDER = "aws_bedrock"
SERVICE = "bedrock-runtime"
REGION_TAG = "cloud.region"
"""The tag the client's AWS region is recorded under, unless the caller's tags set it."""

# botocore operation name -> (our operation, streamed)
OPERATIONS: dict[str, tuple[str, bool]] = {
    "Converse": ("converse", False),
    "ConverseStream": ("converse", True),
    "InvokeModel": ("invoke_model", False),
    "InvokeModelWithResponseStream": ("invoke_model", True),
}


def fail(call: Call, error: BaseException) -> None:
    """Record ``call`` as failed with ``error``'s type (usage unknown), under the normalized model."""
    model_id = call.request_model
    found = Extraction(
        usage=None,
        model=model_of(model_id) if model_id is not None else None,
        pricing_mode=pricing_mode_of(model_id, None),
    )
    try:
        finish_call(call, found, "unknown", status="error", error_type=type(error).__name__)
    except Exception:
        STATS.failure("errors.instrumentation.fail", "could not record a failed call")


def _is_bedrock_runtime(client: Any) -> bool:
    try:
        return bool(client.meta.service_model.service_name == SERVICE)
    except AttributeError:
        return False


def bedrock_call(
    instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str, Any] | None:
    """``(operation name, params)`` of a ``_make_api_call`` to record; None to pass it through."""
    operation_name = args[0] if args else kwargs.get("operation_name")
    if operation_name not in OPERATIONS or SUPPRESSED.get() or not _is_bedrock_runtime(instance):
        return None
    return operation_name, args[1] if len(args) > 1 else kwargs.get("api_params")


def begin(client: Any, operation_name: str, params: Any) -> Call | None:
    """Start recording (None when off or already recorded above); only a budget may raise."""
    operation, stream = OPERATIONS[operation_name]
    model_id = params.get("modelId") if isinstance(params, dict) else None
    request: Mapping[str, Any] | None = None
    if isinstance(params, dict):
        request = RequestJSON(params.get("body")) if operation == "invoke_model" else params
    call = start_call(
        PROVIDER,
        operation,
        model_id if isinstance(model_id, str) else None,
        stream=stream,
        request=request,
    )
    if call is not None:
        try:
            region = client.meta.region_name
            if isinstance(region, str) and region and REGION_TAG not in call.tags:
                call.tags = {**call.tags, REGION_TAG: region}
        except Exception:
            STATS.failure(
                "errors.instrumentation.start", "could not read a Bedrock client's region"
            )
    return call


class StreamRecorder:
    """A StreamObserver over a Bedrock EventStream: keeps the running counts, records once.

    Holds the call and the stream's state, never the stream or the response.
    """

    __slots__ = ("call", "done", "model", "model_id", "observe", "state", "tier")

    def __init__(self, call: Call, state: Any, model_id: str | None, tier: Any) -> None:
        self.call = call
        self.state = state
        self.model_id = model_id
        self.model = model_of(model_id) if model_id is not None else "unknown"
        self.tier = tier
        self.done = False
        add = state.add

        def observe(item: Any) -> bool:
            add(item)
            return False

        self.observe: Callable[[Any], bool] = observe

    def finish(self, error: BaseException | None, *, exhausted: bool) -> None:
        if self.done:
            return
        self.done = True
        if error is not None and not isinstance(error, GeneratorExit):
            fail(self.call, error)
            return
        found, complete = self.state.result(self.model, self.model_id, self.tier)
        finish_call(self.call, found, "stream" if complete else "estimated")


def _follow(
    response: dict[str, Any], key: str, recorder: StreamRecorder, proxy_type: type[Any]
) -> None:
    """Put the EventStream ``response[key]`` behind a recording proxy of ``proxy_type``.

    The proxy records once: at the stream's end, on an error, on ``close()``, or
    when the caller drops it unfinished (its finisher is collected).
    """
    stream = response.get(key)
    if stream is None:
        finish_call(recorder.call)  # nothing to follow: usage unknown
        return
    response[key] = proxy_type(stream, recorder)


class _FailedRead:
    """A raw stream whose every read raises the error reading the real body raised."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        raise self._error

    def close(self) -> None:
        return None


def read_body(call: Call, response: Any) -> bytes | None:
    """Read the InvokeModel body whole and give the caller an equivalent one; None if it failed."""
    from botocore.response import StreamingBody

    body = response.get("body") if isinstance(response, dict) else None
    if body is None or not hasattr(body, "read"):
        return None
    try:
        content = body.read()
    except Exception as error:
        response["body"] = StreamingBody(_FailedRead(error), None)
        fail(call, error)
        return None
    if not isinstance(content, bytes):
        return None  # not botocore's StreamingBody: nothing to hand back in its place
    response["body"] = StreamingBody(io.BytesIO(content), len(content))
    return content


def _record_invoke(
    call: Call, response: dict[str, Any], content: bytes | None, model_id: str | None, tier: Any
) -> None:
    if call.finished:  # the body failed to read: recorded as an error already
        return
    model = model_of(model_id) if model_id is not None else "unknown"
    used = served_tier(response) or tier
    # What the body cannot say comes from these headers: a copy, not the response's dict.
    given = headers_of(response)
    headers = {name: given[name] for name in INVOKE_HEADERS if name in given}
    if content is None:
        finish_call(call, extract_invoke(None, headers, model, model_id, used))
        return
    read = partial(extract_invoke, headers=headers, model=model, model_id=model_id, tier=used)
    # An embeddings model's vectors are never read: emptied before parsing (see json_document).
    finish_call(call, BodyReading(content, read, vectors="embed" in model))


def record_response(
    call: Call,
    operation_name: str,
    params: Any,
    response: Any,
    content: bytes | None = None,
    proxy_type: type[Any] = SyncStreamProxy,
) -> None:
    """Record a Bedrock Runtime response or follow its stream. Raises only a budget's error.

    ``content`` is an InvokeModel body already read whole (``read_body``);
    ``proxy_type`` puts an event stream behind a recording proxy (sync or async).
    """
    try:
        if not isinstance(response, dict):
            finish_call(call)
            return
        model_id = params.get("modelId") if isinstance(params, dict) else None
        model_id = model_id if isinstance(model_id, str) else None
        tier = params.get("serviceTier") if isinstance(params, dict) else None
        if operation_name == "Converse":
            model = model_of(model_id) if model_id is not None else "unknown"
            finish_call(call, extract_converse(response, model, model_id))
        elif operation_name == "InvokeModel":
            _record_invoke(call, response, content, model_id, tier)
        elif operation_name == "ConverseStream":
            recorder = StreamRecorder(call, ConverseStreamState(), model_id, tier)
            _follow(response, "stream", recorder, proxy_type)
        else:
            used = served_tier(response) or tier
            recorder = StreamRecorder(call, InvokeStreamState(), model_id, used)
            _follow(response, "body", recorder, proxy_type)
    except LLMCostTrackerError:
        raise  # a budget in "raise" mode
    except Exception:
        STATS.failure("errors.instrumentation.record", "could not record a Bedrock call")


def make_api_call_wrapper() -> Callable[..., Any]:
    """Wrap ``BaseClient._make_api_call(operation_name, api_params)`` for Bedrock Runtime."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        target = bedrock_call(instance, args, kwargs)
        if target is None:
            return wrapped(*args, **kwargs)
        operation_name, params = target
        call = begin(instance, operation_name, params)
        if call is None:
            return wrapped(*args, **kwargs)
        token = SUPPRESSED.set(True)  # a transport instrumentor must not record this call again
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as error:
            fail(call, error)
            raise
        finally:
            SUPPRESSED.reset(token)
        content = read_body(call, response) if operation_name == "InvokeModel" else None
        record_response(call, operation_name, params, response, content)
        return response

    return wrapper


__all__ = [
    "OPERATIONS",
    "PROVIDER",
    "REGION_TAG",
    "StreamRecorder",
    "bedrock_call",
    "begin",
    "fail",
    "make_api_call_wrapper",
    "read_body",
    "record_response",
]
