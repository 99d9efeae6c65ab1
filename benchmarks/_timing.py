"""Wall-time measurement shared by the benchmark scripts (run as ``python benchmarks/X.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_ms(fn: Callable[[int], object], repeats: int) -> tuple[float, float]:
    """Median and min wall time of ``fn(i)`` in milliseconds over ``repeats`` runs
    (``i = 0 .. repeats - 1``), after one untimed warm-up call ``fn(-1)`` that fills caches."""
    fn(-1)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)
