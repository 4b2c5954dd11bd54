"""Small timing helpers shared by the benchmarks: medians over repeated batches."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def per_call_us(func: Callable[[], object], *, batch: int = 1000, repeats: int = 50) -> float:
    """Median microseconds per call of ``func``, timed in batches to keep timer overhead out."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(batch):
            func()
        samples.append((time.perf_counter() - started) / batch * 1e6)
    return statistics.median(samples)


def report(
    name: str, value_us: float, baseline_us: float | None = None, target_us: float | None = None
) -> None:
    parts = [f"{name:<52} {value_us:8.3f} us"]
    if baseline_us:
        parts.append(f"({value_us / baseline_us:5.1f}x baseline {baseline_us:.3f} us)")
    if target_us is not None:
        parts.append("OK" if value_us <= target_us else f"OVER target {target_us} us")
    print("  ".join(parts), flush=True)
