"""Response bodies read with bounded memory: incremental readers, and bodies already read whole.

``EventSplitter`` cuts a ``text/event-stream`` body into events (``\\n``,
``\\r\\n`` and ``\\r`` line endings) and keeps only the event being read.
``LineSplitter`` does the same for newline-delimited JSON. ``BodyWindow`` keeps a
JSON body whole up to a limit, and past it only a head and a rolling tail, from
which the usage object is recovered by key. None of them keeps what it has
already handed on. ``json_document`` and ``sse_json_events`` read a body the
client already holds whole (the SDKs' raw responses, a transport response
read before it reached us).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .._events import Reading, UsageSource
from .._stats import STATS
from ._extraction import UNKNOWN, Extraction

MAX_EVENT_BYTES = 4 * 1024 * 1024
"""An SSE event or NDJSON line longer than this is skipped (counted), not buffered."""

FULL_BODY_BYTES = 1024 * 1024
"""JSON bodies up to this size are parsed whole; larger ones from a head and a tail window."""

HEAD_BYTES = 64 * 1024
TAIL_BYTES = 1024 * 1024

EventSink = Callable[[str | None, bytes], None]

_DECODER = json.JSONDecoder()
_UTF8_BOM = b"\xef\xbb\xbf"


def parse_json(data: bytes | bytearray | str) -> Any:
    """``json.loads`` for a response body or event, without its per-call detours.

    The same answer and the same errors (``ValueError``) as ``json.loads``: for
    UTF-8 it decodes and scans in one step, skipping ``loads``'s encoding
    sniffing and its two whitespace passes, which cost as much as parsing a
    short chat completion. Bodies in UTF-16/32 are left to ``json.loads``.
    """
    if isinstance(data, str):
        text = data
    else:
        if b"\x00" in data[:4]:
            return json.loads(data)  # UTF-16 or UTF-32 (a NUL in the first code unit)
        if data[:3] == _UTF8_BOM:
            data = data[3:]
        try:
            text = data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return json.loads(data)  # it knows a UTF-16/32 BOM; else the same error
    start = 0
    if text[:1].isspace():
        start = len(text) - len(text.lstrip())
    value, end = _DECODER.raw_decode(text, start)
    if end != len(text) and not text[end:].isspace():
        raise json.JSONDecodeError("Extra data", text, end)
    return value


class EventSplitter:
    """Split server-sent-event bytes into ``(event name, data)`` and hand each to ``sink``.

    Only the current line and the current event's data are buffered. An event
    whose data passes ``max_event_bytes`` is dropped (counted as
    ``dropped.transport_sse_event_too_large``); the stream goes on.
    """

    __slots__ = ("_data", "_event", "_oversize", "_pending", "_sink", "max_event_bytes", "skip")

    def __init__(self, sink: EventSink, *, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._sink = sink
        self._pending = bytearray()
        self._event: str | None = None
        self._data: list[bytes] = []
        self._oversize = False
        self.max_event_bytes = max_event_bytes
        # When set: a chunk of whole events (starting and ending at an event boundary) in which
        # this pattern does not occur is dropped unread, since none of its events would be used.
        self.skip: re.Pattern[bytes] | None = None

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if (
            self.skip is not None
            and not self._pending
            and not self._data
            and self._event is None
            and chunk.endswith((b"\n\n", b"\r\n\r\n"))
            and self.skip.search(chunk) is None
        ):
            return
        if b"\n" not in chunk and b"\r" not in chunk:
            # The middle of a long line: grow it in place (no quadratic re-copying), bounded.
            if not self._oversize or self._pending:
                self._pending += chunk
                if len(self._pending) > self.max_event_bytes:
                    self._pending = bytearray()
                    self._oversize = True
            return
        buffer = bytes(self._pending) + chunk if self._pending else chunk
        self._pending = bytearray()
        lines = buffer.splitlines(keepends=True)
        # The last piece has no line ending yet (a trailing "\r" may be half of "\r\n"): keep it.
        pending = b"" if lines[-1].endswith(b"\n") else lines.pop()
        for line in lines:
            self._line(line.rstrip(b"\r\n"))
        if len(pending) > self.max_event_bytes:
            pending = b""
            self._oversize = True
        self._pending = bytearray(pending)

    def close(self) -> None:
        """Handle a last line with no line ending; an event with no blank line after it is incomplete: dropped."""
        if self._pending:
            self._line(bytes(self._pending).rstrip(b"\r\n"))
            self._pending = bytearray()

    def _line(self, line: bytes) -> None:
        if not line:
            if self._data and not self._oversize:
                self._sink(self._event, b"\n".join(self._data))
            elif self._oversize:
                STATS.incr("dropped.transport_sse_event_too_large")
            self._event = None
            self._data = []
            self._oversize = False
            return
        if line[:1] == b":":  # a comment / keep-alive
            return
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            if self._oversize:
                return
            self._data.append(value)
            if sum(len(d) for d in self._data) > self.max_event_bytes:
                self._data = []
                self._oversize = True
        elif field == b"event":
            self._event = value.decode("utf-8", "replace")


class LineSplitter:
    """Split newline-delimited JSON into lines and hand each non-empty one to ``sink`` as data."""

    __slots__ = ("_oversize", "_pending", "_sink", "max_event_bytes")

    def __init__(self, sink: EventSink, *, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._sink = sink
        self._pending = b""
        self._oversize = False
        self.max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> None:
        buffer = self._pending + chunk if self._pending else chunk
        lines = buffer.split(b"\n")
        pending = lines.pop()
        for line in lines:
            if self._oversize:  # the end of a line too long to keep
                self._oversize = False
                STATS.incr("dropped.transport_sse_event_too_large")
                continue
            line = line.strip()
            if line:
                self._sink(None, line)
        if len(pending) > self.max_event_bytes:
            pending = b""
            self._oversize = True
        self._pending = pending

    def close(self) -> None:
        line = self._pending.strip()
        self._pending = b""
        if line and not self._oversize:
            self._sink(None, line)


class BodyWindow:
    """Keep a JSON body: whole up to ``full_limit`` bytes, past it only the first and last bytes."""

    __slots__ = ("_head", "_tail", "full_limit", "overflowed", "size")

    def __init__(self, *, full_limit: int = FULL_BODY_BYTES) -> None:
        self._head = bytearray()
        self._tail = bytearray()
        self.full_limit = full_limit
        self.overflowed = False
        self.size = 0

    @classmethod
    def of(cls, content: bytes) -> BodyWindow:
        """A window on a body read whole and larger than ``full_limit``: its head and tail only."""
        window = cls()
        window.size = len(content)
        window.overflowed = True
        window._head = bytearray(content[:HEAD_BYTES])
        window._tail = bytearray(content[-TAIL_BYTES:])
        return window

    @property
    def nbytes(self) -> int:
        """About what the window keeps alive."""
        return len(self._head) + len(self._tail)

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if not self.overflowed:
            self._head += chunk
            if len(self._head) <= self.full_limit:
                return
            self.overflowed = True
            self._tail = self._head[-TAIL_BYTES:]
            del self._head[HEAD_BYTES:]
            return
        self._tail += chunk
        if len(self._tail) > 2 * TAIL_BYTES:
            del self._tail[:-TAIL_BYTES]

    def document(self, usage_key: str, *, vectors: bool = False) -> Any:
        """Return the parsed body, or for an oversized one a dict rebuilt from its head and tail.

        Returns None when the body is not JSON. The rebuilt dict holds the last
        ``usage_key`` object found in the tail plus identifying string fields
        (model, id, tier) found by key; it is enough for a usage parser.
        ``vectors``: as for ``json_document``.
        """
        if not self.overflowed:
            try:
                return parse_json(without_vectors(self._head) if vectors else self._head)
            except ValueError:
                return None
        return recover_document(bytes(self._head), bytes(self._tail[-TAIL_BYTES:]), usage_key)


_FIELD_RE = re.compile(
    rb'"(model|id|modelVersion|responseId|service_tier)"\s*:\s*"((?:[^"\\]|\\.){0,256})"'
)


def recover_document(head: bytes, tail: bytes, usage_key: str) -> dict[str, Any] | None:
    """Rebuild the usage-bearing parts of a JSON body too large to keep, from its head and tail."""
    found: dict[str, Any] = {}
    for match in _FIELD_RE.finditer(head):  # the first top-level id/model come early
        found.setdefault(match.group(1).decode(), match.group(2).decode("utf-8", "replace"))
    for match in _FIELD_RE.finditer(tail):  # per-chunk fields (modelVersion, ...) latest wins
        name = match.group(1).decode()
        if name not in ("id", "model"):
            found[name] = match.group(2).decode("utf-8", "replace")
    key = b'"' + usage_key.encode() + b'"'
    position = tail.rfind(key)
    if position < 0:
        return found or None
    text = tail[position + len(key) :].decode("utf-8", "replace").lstrip()
    if not text.startswith(":"):
        return found or None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[1:].lstrip())
    except ValueError:
        return found or None
    found[usage_key] = value
    return found


_NUMBER_BYTES = b"0123456789+-.eE, \t\r\n"


def without_vectors(content: bytes | bytearray) -> bytes:
    """``content`` with every array of plain numbers emptied (``[0.12, -3e-4]`` becomes ``[]``).

    For embeddings bodies, whose vectors are never read: a few ``find`` passes
    instead of a float object per dimension (a 1,536-dimension vector: about
    10 µs instead of 360 µs). An array holding another array is left for its
    inner ones; usage objects hold no arrays of numbers.
    """
    kept: list[bytes] = []
    copied = 0  # content[:copied] is in kept
    at = content.find(b"[")
    while at >= 0:
        end = content.find(b"]", at)
        if end < 0:
            break
        inner = content.find(b"[", at + 1, end)
        if inner >= 0:  # not a leaf: look at the array inside it first
            at = inner
            continue
        if end > at + 1 and not content[at + 1 : end].translate(None, _NUMBER_BYTES):
            kept.append(bytes(content[copied : at + 1]))
            copied = end
        at = content.find(b"[", end)
    if not kept:
        return bytes(content)
    kept.append(bytes(content[copied:]))
    return b"".join(kept)


def json_document(content: bytes, usage_key: str, *, vectors: bool = False) -> Any:
    """A JSON body read whole: parsed when small, else its usage recovered from a head and a tail.

    ``vectors``: the body carries number vectors nobody reads (embeddings),
    emptied before parsing (``without_vectors``).
    """
    if len(content) <= FULL_BODY_BYTES:
        try:
            return parse_json(without_vectors(content) if vectors else content)
        except ValueError:
            return None
    STATS.incr("transport.body_recovered_from_tail")
    return recover_document(content[:HEAD_BYTES], content[-TAIL_BYTES:], usage_key)


def sse_json_events(content: bytes) -> list[Any]:
    """Parse a complete ``text/event-stream`` body into its JSON ``data`` payloads (``[DONE]`` skipped)."""
    events: list[Any] = []
    text = content.decode("utf-8", errors="replace").replace("\r\n", "\n")
    for block in text.split("\n\n"):
        data = [line[5:].lstrip() for line in block.split("\n") if line.startswith("data:")]
        if not data or data == ["[DONE]"]:
            continue
        try:
            events.append(parse_json("\n".join(data)))
        except ValueError:
            STATS.incr("dropped.stream_event_unparsable")
    return events


class BodyReading(Reading):
    """A JSON response body kept as bytes for the bus worker to parse (``Call.event()``).

    Parsing a body and reading its usage cost the caller's thread 6 to 7 µs for
    a short chat completion, and more the longer the body; keeping a
    reference to its ``bytes`` costs nothing. Those bytes are immutable (the
    response that also holds them is not referenced) and count against the
    bus's memory bound; a body past ``FULL_BODY_BYTES`` keeps only the head and
    tail ``json_document`` reads of it. A ``BodyWindow`` (a body watched as it
    streamed) is kept as it is.

    ``parse`` reads the parsed body (None when it is not JSON) into an
    ``Extraction``, on the worker; ``fallback`` is the usage the request implies (speech),
    used with ``usage_source`` "estimated" when the body has none.
    """

    __slots__ = ("_body", "_fallback", "_parse", "_source", "_usage_key", "_vectors", "nbytes")

    def __init__(
        self,
        body: bytes | BodyWindow,
        parse: Callable[[Any], Extraction],
        *,
        usage_key: str = "usage",
        vectors: bool = False,
        source: UsageSource = "response",
        fallback: Extraction | None = None,
    ) -> None:
        if isinstance(body, bytes):
            if len(body) > FULL_BODY_BYTES:
                body = BodyWindow.of(body)
                self.nbytes = body.nbytes
            else:
                self.nbytes = len(body)
        else:
            self.nbytes = body.nbytes
        self._body: bytes | BodyWindow = body
        self._parse = parse
        self._usage_key = usage_key
        self._vectors = vectors
        self._source = source
        self._fallback = fallback

    def read(self) -> tuple[Extraction, UsageSource]:
        body, self._body = self._body, b""  # read once, then let go
        try:
            if isinstance(body, BodyWindow):
                if body.overflowed:
                    STATS.incr("transport.body_recovered_from_tail")
                document = body.document(self._usage_key, vectors=self._vectors)
            else:
                document = json_document(body, self._usage_key, vectors=self._vectors)
            found = self._parse(document)
        except Exception:
            STATS.failure("errors.transport.parse", "could not read usage from a response")
            found = UNKNOWN
        if found.usage is None and self._fallback is not None:
            return self._fallback, "estimated"
        return found, self._source
