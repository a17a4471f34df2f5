"""Timing for the store benchmarks: the median of repeated calls, after a warm-up."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

__all__ = ["measure"]


def measure(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)
