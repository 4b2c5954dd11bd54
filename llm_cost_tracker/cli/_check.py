"""What one ``doctor`` check reports: a level, what was checked, what was found, and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["ok", "warn", "fail", "info"]


@dataclass(frozen=True)
class Check:
    """One ``[level] name: detail`` row of the doctor's output, with an optional hint."""

    level: Level
    name: str
    detail: str
    hint: str = ""
