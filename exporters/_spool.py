"""The on-disk spool: batches a SQL exporter could not deliver yet, and the quarantine.

Its layout (folder, file names, counts) is the ledger's outbox (``ledger/_outbox.py``),
which ``doctor`` reads too; writing, claiming and replaying the files is here.

A spool is one folder per database (``<spool_dir>/<dialect>-<hash of the URL>/``).
Each batch is one JSON-lines file written atomically (temp file, fsync, rename),
named ``<time_ns>-<pid>-<seq>-<events>.jsonl`` so it replays oldest first and
its size is known without reading it. A process claims a file by renaming it to
``….jsonl.<pid>.claimed`` before replaying it, so processes sharing the folder
never replay the same file at once; a claim left by a dead process is returned
at start-up. Inserts are idempotent by event id, so a file replayed twice (a
crash between commit and delete) still lands once.

``quarantine/`` holds one JSON file per event the database rejected permanently,
with the reason.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from .._events import Cost, LineItem, TokenUsage, UsageEvent
from ..ledger._outbox import (
    CLAIMED,
    SUFFIX,
    claimed_files,
    count_in_name,
    quarantine_dir,
    quarantined_files,
    spool_usage,
    waiting_files,
)

DEFAULT_MAX_SPOOL_BYTES = 1 << 30  # 1 GiB per database


# -- events as JSON -----------------------------------------------------------


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _undecimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def event_to_json(event: UsageEvent) -> dict[str, Any]:
    """Every field of ``event``, losslessly (decimals as text, time as ISO 8601 with offset)."""
    usage = event.usage
    cost = event.cost
    return {
        "id": event.id,
        "provider": event.provider,
        "model": event.model,
        "operation": event.operation,
        "usage": None
        if usage is None
        else {
            "tokens": dict(usage.tokens),
            "services": {k: format(v, "f") for k, v in usage.services.items()},
            "reasoning_tokens": usage.reasoning_tokens,
            "reported_cost": _decimal(usage.reported_cost),
        },
        "occurred_at": event.occurred_at.isoformat(),
        "latency_ms": event.latency_ms,
        "pricing_mode": event.pricing_mode,
        "stream": event.stream,
        "usage_source": event.usage_source,
        "status": event.status,
        "error_type": event.error_type,
        "provider_response_id": event.provider_response_id,
        "request_model": event.request_model,
        "trace_id": event.trace_id,
        "span_id": event.span_id,
        "tags": dict(event.tags),
        "cost": {
            "total": _decimal(cost.total),
            "status": cost.status,
            "currency": cost.currency,
            "line_items": [
                [
                    li.component,
                    li.unit,
                    format(li.quantity, "f"),
                    _decimal(li.unit_price),
                    _decimal(li.cost),
                ]
                for li in cost.line_items
            ],
            # The SQL column holds json.dumps(snapshot, default=str): storing the same
            # rendering here keeps a replayed row identical to a direct one.
            "snapshot": json.loads(json.dumps(dict(cost.snapshot), default=str)),
        },
    }


def event_from_json(data: Mapping[str, Any]) -> UsageEvent:
    """Rebuild the event ``event_to_json`` wrote."""
    raw_usage = data["usage"]
    usage = (
        None
        if raw_usage is None
        else TokenUsage(
            tokens={k: int(v) for k, v in raw_usage["tokens"].items()},
            services={k: Decimal(v) for k, v in raw_usage["services"].items()},
            reasoning_tokens=int(raw_usage["reasoning_tokens"]),
            reported_cost=_undecimal(raw_usage["reported_cost"]),
        )
    )
    raw_cost = data["cost"]
    cost = Cost(
        total=_undecimal(raw_cost["total"]),
        status=raw_cost["status"],
        currency=raw_cost["currency"],
        line_items=tuple(
            LineItem(
                component=c,
                unit=u,
                quantity=Decimal(q),
                unit_price=_undecimal(p),
                cost=_undecimal(x),
            )
            for c, u, q, p, x in raw_cost["line_items"]
        ),
        snapshot=raw_cost["snapshot"],
    )
    occurred_at = datetime.fromisoformat(data["occurred_at"])
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=timezone.utc)
    return UsageEvent(
        provider=data["provider"],
        model=data["model"],
        operation=data["operation"],
        usage=usage,
        id=data["id"],
        occurred_at=occurred_at,
        latency_ms=data["latency_ms"],
        pricing_mode=data["pricing_mode"],
        stream=bool(data["stream"]),
        usage_source=data["usage_source"],
        status=data["status"],
        error_type=data["error_type"],
        provider_response_id=data["provider_response_id"],
        request_model=data["request_model"],
        trace_id=data["trace_id"],
        span_id=data["span_id"],
        tags=dict(data["tags"]),
        cost=cost,
    )


# -- the folder ---------------------------------------------------------------


class SpoolFullError(Exception):
    """The spool holds ``max_bytes`` already; the batch was not written."""


class Spool:
    """Batches waiting for their database, one atomic file each, bounded by ``max_bytes``."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_SPOOL_BYTES) -> None:
        self.directory = directory
        self.quarantine_dir = quarantine_dir(directory)
        self.max_bytes = max_bytes
        self._seq = itertools.count()
        # Running totals, so a long outage does not rescan the folder per batch;
        # rescan() brings in what other processes wrote or replayed.
        self._bytes: int | None = None
        self._events = 0
        self._lock = threading.RLock()  # the bus thread and the writer thread both write

    def _ensure(self) -> None:
        # Tags can name users and tenants: keep the spool private to its owner.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _files(self) -> list[Path]:
        return waiting_files(self.directory)

    def rescan(self) -> None:
        """Recount the files on disk (including those other processes wrote or replayed)."""
        size, events = spool_usage(self.directory)
        with self._lock:
            self._bytes, self._events = size, events

    def size_bytes(self) -> int:
        if self._bytes is None:
            self.rescan()
        assert self._bytes is not None
        return self._bytes

    def event_count(self) -> int:
        """Events in the spool: waiting files plus files being replayed."""
        if self._bytes is None:
            self.rescan()
        return self._events

    def has_files(self) -> bool:
        return bool(self._files())

    def write(self, events: Sequence[UsageEvent]) -> Path:
        """Write ``events`` as one new file; raise SpoolFullError past ``max_bytes``, OSError on disk errors."""
        data = "".join(
            json.dumps(event_to_json(e), separators=(",", ":")) + "\n" for e in events
        ).encode()
        with self._lock:
            if self.size_bytes() + len(data) > self.max_bytes:
                raise SpoolFullError(f"spool {self.directory} is full ({self.max_bytes} bytes)")
            self._ensure()
            name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq)}-{len(events)}{SUFFIX}"
            final = self.directory / name
            temp = self.directory / f".{name}.tmp"
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, final)
            self._bytes = self.size_bytes() + len(data)
            self._events += len(events)
            return final

    def claim(self, max_events: int) -> list[Path]:
        """Claim the oldest waiting files for this process, up to ``max_events`` (at least one file)."""
        claimed: list[Path] = []
        total = 0
        for path in self._files():
            if claimed and total + count_in_name(path) > max_events:
                break
            target = path.with_name(f"{path.name}.{os.getpid()}{CLAIMED}")
            try:
                os.replace(path, target)
            except FileNotFoundError:
                continue  # another process claimed it first
            claimed.append(target)
            total += count_in_name(path)
        return claimed

    @staticmethod
    def read(path: Path) -> list[UsageEvent]:
        """The events in a claimed file; raises ValueError/KeyError on a corrupt file."""
        with open(path, encoding="utf-8") as handle:
            return [event_from_json(json.loads(line)) for line in handle if line.strip()]

    @staticmethod
    def release(path: Path) -> None:
        """Give a claimed file back, to be replayed later."""
        original = path.name.split(SUFFIX, 1)[0] + SUFFIX
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, path.with_name(original))

    def delete(self, path: Path) -> None:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        with self._lock:
            if self._bytes is not None:
                self._bytes = max(0, self._bytes - size)
                self._events = max(0, self._events - count_in_name(path))

    def recover_claims(self) -> int:
        """Return files claimed by processes that no longer run (or by this pid, at start-up)."""
        recovered = 0
        for path in claimed_files(self.directory):
            try:
                pid = int(path.name[: -len(CLAIMED)].rsplit(".", 1)[1])
            except (IndexError, ValueError):
                pid = -1
            if pid == os.getpid() or not _pid_alive(pid):
                self.release(path)
                recovered += 1
        return recovered

    def quarantine(self, events: Iterable[UsageEvent], reason: str) -> int:
        """Keep events the database rejected for good, one JSON file each with ``reason``."""
        self.quarantine_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        count = 0
        for event in events:
            record = {
                "reason": reason,
                "quarantined_at": datetime.now(timezone.utc).isoformat(),
                "event": event_to_json(event),
            }
            (self.quarantine_dir / f"{event.id}.json").write_text(
                json.dumps(record, indent=2), encoding="utf-8"
            )
            count += 1
        return count

    def quarantine_corrupt(self, path: Path, reason: str) -> None:
        """Move an unreadable spool file into the quarantine folder, untouched."""
        self.quarantine_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.quarantine_dir / (path.name.split(SUFFIX, 1)[0] + ".corrupt.jsonl")
        os.replace(path, target)
        target.with_suffix(".reason.txt").write_text(reason + "\n", encoding="utf-8")
        self.rescan()

    def quarantined(self) -> list[Path]:
        return quarantined_files(self.directory)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
