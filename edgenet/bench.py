"""Latency harness and statistics (pure functions here; the harness builds on them)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

MAX_DEFAULT_THREADS = 4


def default_threads() -> int:
    """Usable cores, at most 4.

    Measured with ai-edge-litert 2.3.0 on a 2-core x86-64 box (invoke p50, same run): v2 1 thread 2.04 ms,
    2 threads 1.11 ms, 4 threads 1.26 ms; v1-0.25-128 0.29 / 0.17 / 0.18 ms. More threads than cores loses.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_THREADS, cores))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_stats(values_ms: Sequence[float]) -> dict:
    """mean std min p50 p90 p99 max (population std, like benchmark_model)."""
    if not values_ms:
        return {key: math.nan for key in ("mean", "std", "min", "p50", "p90", "p99", "max")}
    count = len(values_ms)
    mean = sum(values_ms) / count
    std = math.sqrt(sum((v - mean) ** 2 for v in values_ms) / count)
    return {
        "mean": mean,
        "std": std,
        "min": min(values_ms),
        "p50": percentile(values_ms, 50),
        "p90": percentile(values_ms, 90),
        "p99": percentile(values_ms, 99),
        "max": max(values_ms),
    }
