"""The stand-in's Bedrock Runtime: AWS event-stream framing and a route that picks a reply by call.

A scenario whose payload has ``eventstream`` (a list of events) is served as an
``application/vnd.amazon.eventstream`` body, each event one frame: a prelude
(total length, headers length, their CRC32), string headers (``:event-type``,
``:content-type``, ``:message-type``), the JSON payload and the message's CRC32.
An event ``{"event": "chunk", "chunk": {...}}`` is InvokeModelWithResponseStream's
shape: its payload is ``{"bytes": base64(json)}``. ``{"exception": "throttlingException",
"payload": {...}}`` is an in-stream error. ``eventstream_cut`` drops that many bytes
from the end (a truncated frame).

A boto3 client with ``endpoint_url=<server>/bedrock`` is answered by model family
and operation (``route()``), so one client covers Converse, InvokeModel and both
streams; ``endpoint_url=<server>/s/<scenario>`` forces one scenario as usual.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

CONTENT_TYPE = "application/vnd.amazon.eventstream"
ROUTE_PREFIX = "bedrock"

# (operation path suffix, model family) -> scenario id; family "" matches any model.
_ROUTES: dict[tuple[str, str], str] = {
    ("converse", ""): "bedrock_converse_nova",
    ("converse", "anthropic"): "bedrock_converse_claude_cache",
    ("converse-stream", ""): "bedrock_converse_stream",
    ("invoke", "anthropic"): "bedrock_invoke_anthropic",
    ("invoke", "amazon"): "bedrock_invoke_nova",
    ("invoke", "meta"): "bedrock_invoke_llama",
    ("invoke", "mistral"): "bedrock_invoke_mistral",
    ("invoke", "cohere"): "bedrock_invoke_cohere",
    ("invoke-with-response-stream", ""): "bedrock_invoke_stream_anthropic",
    ("invoke-with-response-stream", "meta"): "bedrock_invoke_stream_llama",
}


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    # name length (1 byte), name, value type 7 (string), value length (2 bytes), value
    return (
        struct.pack(">B", len(raw_name))
        + raw_name
        + struct.pack(">BH", 7, len(raw_value))
        + raw_value
    )


def encode_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude, prelude CRC, headers, payload, message CRC."""
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    total = 4 + 4 + 4 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    head = prelude + struct.pack(">I", binascii.crc32(prelude)) + encoded + payload
    return head + struct.pack(">I", binascii.crc32(head))


def _frame(event: Mapping[str, Any]) -> bytes:
    if "exception" in event:
        headers = {
            ":message-type": "exception",
            ":exception-type": str(event["exception"]),
            ":content-type": "application/json",
        }
        return encode_frame(headers, json.dumps(event.get("payload", {})).encode())
    name = str(event["event"])
    if name == "chunk":
        data = event["chunk"]
        raw = data.encode() if isinstance(data, str) else json.dumps(data).encode()
        payload: Any = {"bytes": base64.b64encode(raw).decode()}
    else:
        payload = event.get("payload", {})
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, json.dumps(payload).encode())


def encode_events(events: Sequence[Mapping[str, Any]], cut: int = 0) -> bytes:
    """A whole event-stream body; ``cut`` bytes are dropped from its end (a truncated last frame)."""
    body = b"".join(_frame(event) for event in events)
    return body[: len(body) - cut] if cut else body


def route(parts: Sequence[str]) -> str | None:
    """The scenario for ``/bedrock/model/<model id>/<operation>`` (path split on ``/``)."""
    if len(parts) < 3 or parts[0] != "model":
        return None
    model_id, operation = unquote(parts[1]), parts[2]
    family = model_id.rsplit("/", 1)[-1].split(".")
    name = (
        family[1] if len(family) > 2 and family[0] in ("us", "eu", "apac", "global") else family[0]
    )
    return _ROUTES.get((operation, name)) or _ROUTES.get((operation, ""))


__all__ = ["CONTENT_TYPE", "ROUTE_PREFIX", "encode_events", "encode_frame", "route"]
