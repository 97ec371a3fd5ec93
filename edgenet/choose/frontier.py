"""The accuracy-latency frontier and the choice within a budget: pure functions over measured points."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edgenet.errors import UsageError


@dataclass(frozen=True)
class Point:
    """One model on the chart: its end-to-end latency here and its accuracy (percent; None when unknown)."""

    model: str
    latency_ms: float
    accuracy: float | None


def budget_from(fps: float | None, budget_ms: float | None) -> float | None:
    """The per-frame budget in ms: 1000 / fps, or the budget given; None when neither is given."""
    if fps is not None and budget_ms is not None:
        raise UsageError("give --fps or --budget-ms, not both (--fps 30 is a budget of 33.3 ms per frame)")
    for value, option in ((fps, "--fps"), (budget_ms, "--budget-ms")):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"{option} takes a positive number, not {value}")
    if fps is not None:
        return 1000.0 / fps
    return budget_ms


def _ranked(points: Iterable[Point]) -> list[Point]:
    """Points with a known accuracy and latency, fastest first; at equal latency the most accurate first."""
    known = [p for p in points if p.accuracy is not None and math.isfinite(p.latency_ms)]
    return sorted(known, key=lambda p: (p.latency_ms, -p.accuracy, p.model))


def pareto_frontier(points: Iterable[Point]) -> list[Point]:
    """The models no other model beats on both axes (as fast or faster AND as accurate or more, one of them
    strictly), fastest first. Each is more accurate than every model faster than it."""
    frontier: list[Point] = []
    best = -math.inf
    for point in _ranked(points):
        if point.accuracy > best:
            frontier.append(point)
            best = point.accuracy
    return frontier


def choose_within(points: Iterable[Point], budget_ms: float) -> Point | None:
    """The most accurate model whose latency is within the budget (equal accuracy: the faster one, then the
    name); None when none fits or none has a known accuracy. The choice is always on the frontier."""
    fitting = [p for p in _ranked(points) if p.latency_ms <= budget_ms]
    if not fitting:
        return None
    return min(fitting, key=lambda p: (-p.accuracy, p.latency_ms, p.model))


def fastest(points: Sequence[Point]) -> Point | None:
    """The fastest measured model, whatever its accuracy."""
    timed = [p for p in points if math.isfinite(p.latency_ms)]
    return min(timed, key=lambda p: (p.latency_ms, p.model)) if timed else None
