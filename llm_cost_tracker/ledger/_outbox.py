"""The outbox: where a server database's undelivered batches wait on disk, and how many there are.

The PostgreSQL and MySQL exporters write and replay it (``exporters/_spool.py``);
``doctor`` only reads it. One folder per database,
``<root>/<dialect>-<hash of the URL without password>/``, holding one
``<time_ns>-<pid>-<seq>-<events>.jsonl`` file per batch (renamed
``....jsonl.<pid>.claimed`` while a process replays it), and ``quarantine/``
with one ``<event id>.json`` per event the database rejected for good.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from pathlib import Path

from ._urls import dialect_name_for_url, redact_url

SUFFIX = ".jsonl"
CLAIMED = ".claimed"
QUARANTINE = "quarantine"


def default_spool_root() -> Path:
    """``$XDG_CACHE_HOME/llm-cost-tracker/spool`` (``~/.cache/...``), or the platform's cache folder."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llm-cost-tracker" / "spool"


def spool_dir_for(url: str, root: str | os.PathLike[str] | None) -> Path:
    """The spool folder for the database at ``url``: one per dialect, host, port and database."""
    redacted = redact_url(url)
    digest = hashlib.sha256(redacted.encode()).hexdigest()[:16]
    base = Path(root).expanduser() if root is not None else default_spool_root()
    return base / f"{dialect_name_for_url(url)}-{digest}"


def count_in_name(path: Path) -> int:
    """The number of events in a spool file, from its name."""
    # <time_ns>-<pid>-<seq>-<events>.jsonl[.<pid>.claimed]
    stem = path.name.split(SUFFIX, 1)[0]
    try:
        return int(stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def waiting_files(directory: Path) -> list[Path]:
    """The batch files waiting for replay, oldest first."""
    try:
        return sorted(p for p in directory.iterdir() if p.name.endswith(SUFFIX))
    except FileNotFoundError:
        return []


def claimed_files(directory: Path) -> list[Path]:
    """The batch files some process is replaying now."""
    try:
        return [p for p in directory.iterdir() if p.name.endswith(CLAIMED)]
    except FileNotFoundError:
        return []


def spool_usage(directory: Path) -> tuple[int, int]:
    """(bytes, events) in the spool folder: waiting files plus files being replayed."""
    size = events = 0
    for path in [*waiting_files(directory), *claimed_files(directory)]:
        with contextlib.suppress(FileNotFoundError):
            size += path.stat().st_size
            events += count_in_name(path)
    return size, events


def quarantine_dir(directory: Path) -> Path:
    """Where the events rejected for good by the database of a spool folder are kept."""
    return directory / QUARANTINE


def quarantined_files(directory: Path) -> list[Path]:
    """One JSON file per event the database rejected for good."""
    try:
        return sorted(quarantine_dir(directory).glob("*.json"))
    except FileNotFoundError:
        return []
