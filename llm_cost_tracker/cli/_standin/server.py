"""The stand-in HTTP server: ``/s/<scenario>/...`` replies with that scenario's recorded response.

URL forms:

- ``/s/<id>/<any path>``: the scenario ``<id>``'s status, headers and body.
- ``/bedrock/model/<model id>/<operation>``: Bedrock Runtime, by model family (``bedrock.py``).
- ``/seq/<key>/<id1>,<id2>,.../<any path>``: the n-th request under ``<key>``
  gets the n-th scenario (the last one repeats), e.g. a 429 then a 200 to
  exercise an SDK's retry.

Scenarios are the payload files shipped in ``payloads/`` (the same shape as the
project's shared provider payloads) plus any a test adds with ``add()``.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from types import TracebackType
from typing import Any

from . import bedrock

MAX_RECORDED_REQUESTS = 1000


@dataclass(frozen=True)
class Scenario:
    """One canned response: status, headers and body bytes, plus what it should yield."""

    id: str
    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)
    expected: Mapping[str, Any] = field(default_factory=dict)
    payload: Mapping[str, Any] = field(default_factory=dict)
    chunk_size: int = 0  # >0: send the body in pieces of this size, flushing between them

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Scenario:
        """Build a scenario from a provider-payload record (``response``, ``response_raw`` or ``sse``)."""
        if "sse" in payload:
            body, content_type = payload["sse"].encode(), "text/event-stream; charset=utf-8"
        elif "eventstream" in payload:
            body = bedrock.encode_events(payload["eventstream"], payload.get("eventstream_cut", 0))
            content_type = bedrock.CONTENT_TYPE
        elif payload.get("response_raw") is not None:
            raw = payload["response_raw"]
            body = raw.encode()
            content_type = (
                "text/html; charset=utf-8" if raw.lstrip().startswith("<") else "application/json"
            )
        else:
            body, content_type = json.dumps(payload.get("response")).encode(), "application/json"
        headers = dict(payload.get("response_headers") or {})
        return cls(
            id=payload["id"],
            status=int(payload.get("http_status", 200)),
            body=body,
            content_type=payload.get("content_type", content_type),
            headers=headers,
            expected=payload.get("expected", {}),
            payload=payload,
            chunk_size=int(payload.get("chunk_size", 0)),
        )


def load_payloads() -> dict[str, dict[str, Any]]:
    """Return the shipped provider payloads by id."""
    found: dict[str, dict[str, Any]] = {}
    for entry in resources.files(__package__).joinpath("payloads").iterdir():
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text(encoding="utf-8"))
            found[data["id"]] = data
    return found


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class StandInServer:
    """A threaded HTTP server on 127.0.0.1 that replays scenarios; use as a context manager."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.scenarios: dict[str, Scenario] = {
            pid: Scenario.from_payload(p) for pid, p in load_payloads().items()
        }
        self.requests: deque[RecordedRequest] = deque(maxlen=MAX_RECORDED_REQUESTS)
        self._sequences: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def scenario_url(self, scenario_id: str, path: str = "") -> str:
        """Base URL whose requests all get ``scenario_id``'s response, e.g. for ``OpenAI(base_url=...)``."""
        return f"{self.url}/s/{scenario_id}{path}"

    def sequence_url(self, key: str, scenario_ids: list[str], path: str = "") -> str:
        return f"{self.url}/seq/{key}/{','.join(scenario_ids)}{path}"

    def add(self, scenario: Scenario | Mapping[str, Any]) -> Scenario:
        """Register a scenario (or a payload record) and return it."""
        if not isinstance(scenario, Scenario):
            scenario = Scenario.from_payload(scenario)
        self.scenarios[scenario.id] = scenario
        return scenario

    def start(self) -> StandInServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="standin-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def resolve(self, path: str) -> Scenario | None:
        parts = path.split("?", 1)[0].split("/")
        # ['', 's', id, ...] or ['', 'seq', key, ids, ...]
        if len(parts) >= 3 and parts[1] == "s":
            return self.scenarios.get(parts[2])
        if len(parts) >= 2 and parts[1] == bedrock.ROUTE_PREFIX:
            return self.scenarios.get(bedrock.route(parts[2:]) or "")
        if len(parts) >= 4 and parts[1] == "seq":
            ids = parts[3].split(",")
            with self._lock:
                n = self._sequences.get(parts[2], 0)
                self._sequences[parts[2]] = n + 1
            return self.scenarios.get(ids[min(n, len(ids) - 1)])
        return None


def _handler_for(server: StandInServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            if self.path.startswith(("http://", "https://")):
                # The absolute form (aiobotocore's httpx backend sends it), which a server must
                # accept (RFC 9112, 3.2.2): the path is what follows the authority.
                self.path = "/" + self.path.split("://", 1)[1].partition("/")[2]
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            server.requests.append(
                RecordedRequest(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
            )
            scenario = server.resolve(self.path)
            if scenario is None:
                payload = json.dumps(
                    {
                        "error": {
                            "message": f"no stand-in scenario for {self.path}",
                            "type": "not_found",
                        }
                    }
                )
                self._reply(404, "application/json", payload.encode(), {})
                return
            self._reply(
                scenario.status,
                scenario.content_type,
                scenario.body,
                scenario.headers,
                scenario.chunk_size,
            )

        def _reply(
            self,
            status: int,
            content_type: str,
            body: bytes,
            headers: Mapping[str, str],
            chunk_size: int = 0,
        ) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            # Tell the SDKs not to retry unless a scenario asks for it, so error tests are fast.
            if "x-should-retry" not in {k.lower() for k in headers}:
                self.send_header("x-should-retry", "false")
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if chunk_size <= 0:
                self.wfile.write(body)
                return
            for start in range(0, len(body), chunk_size):
                self.wfile.write(body[start : start + chunk_size])
                self.wfile.flush()

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler
