"""The frontier as a chart: text for any terminal or log (ASCII, 80 columns), and a picture with the optional
plotting extra (`pip install 'edgenet[plot]'`: matplotlib)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

from edgenet.errors import UsageError

PLOT_FORMATS = (".png", ".svg", ".pdf")


@dataclass(frozen=True)
class ChartPoint:
    key: str  # one letter: upper case on the frontier, lower case below it
    model: str
    latency_ms: float
    accuracy: float
    frontier: bool
    chosen: bool = False


def _log_scale(low: float, high: float) -> bool:
    return low > 0 and high / low >= 3.0


def _ticks(low: float, high: float, log: bool) -> list[float]:
    """Round values to label the latency axis with."""
    if log:
        ticks = []
        for exponent in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
            ticks += [m * 10.0**exponent for m in (1, 2, 5)]
        return [t for t in ticks if low <= t <= high]
    span = high - low
    step = 10 ** math.floor(math.log10(span / 4)) if span > 0 else 1.0
    for factor in (1, 2, 5, 10):
        if span / (step * factor) <= 6:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _accuracy_rows(accuracies: list[float], max_rows: int) -> list[float]:
    """Row values, top to bottom: a round step (0.5 to 10 points) fine enough to tell models apart and
    coarse enough to fit in `max_rows`."""
    for step in (0.5, 1.0, 2.0, 2.5, 5.0, 10.0):
        low = math.floor(min(accuracies) / step) * step
        high = max(math.ceil(max(accuracies) / step) * step, low + step)
        count = round((high - low) / step) + 1
        if count <= max_rows or step == 10.0:
            return [high - i * step for i in range(count)]
    raise AssertionError("unreachable")


def _multiple(value: float, every: float) -> bool:
    return abs(value / every - round(value / every)) < 1e-9


def _tick_text(value: float) -> str:
    return f"{value:g}" if value >= 1 else f"{value:.2g}"


def text_chart(
    points: Sequence[ChartPoint],
    budget_ms: float | None = None,
    *,
    width: int = 80,
    max_rows: int = 18,
    accuracy_name: str = "top-1",
) -> list[str]:
    """Accuracy (rows) against end-to-end latency (columns; logarithmic when the models span 3x or more), each
    model a letter, the budget a column of ':'. Lines of at most `width` characters."""
    if not points:
        return []
    width = max(40, width)
    plot_width = width - 8
    latencies = [p.latency_ms for p in points] + ([budget_ms] if budget_ms else [])
    low, high = min(latencies) / 1.08, max(latencies) * 1.08
    log = _log_scale(low, high)
    to_x = (lambda v: math.log(v)) if log else (lambda v: v)
    x_low, x_high = to_x(low), to_x(high)

    def column(value: float) -> int:
        return round((to_x(value) - x_low) / (x_high - x_low) * (plot_width - 1)) if x_high > x_low else 0

    rows = _accuracy_rows([p.accuracy for p in points], max_rows)
    height = len(rows)

    def row(value: float) -> int:
        return min(range(height), key=lambda y: abs(rows[y] - value))

    grid = [[" "] * plot_width for _ in range(height)]
    if budget_ms:
        for line in grid:
            line[column(budget_ms)] = ":"
    for point in sorted(points, key=lambda p: (not p.frontier, p.latency_ms)):
        y, x = row(point.accuracy), column(point.latency_ms)
        while x < plot_width - 1 and grid[y][x] not in (" ", ":"):
            x += 1  # a neighbour already there: the next free cell to the right
        grid[y][x] = point.key
    lines = [f"{accuracy_name} %"]
    every = next(e for e in (1, 2, 5, 10, 20, 50) if (rows[0] - rows[-1]) / e <= 6 or e == 50)
    for value, cells in zip(rows, grid, strict=True):
        label = f"{value:5g} |" if _multiple(value, every) else "      |"
        lines.append((label + "".join(cells)).rstrip())
    lines.append("      +" + "-" * plot_width)
    axis = [" "] * (plot_width + 8)
    for tick in _ticks(low, high, log):
        text = _tick_text(tick)
        start = 7 + column(tick) - len(text) // 2
        if (
            start >= 7
            and start + len(text) <= len(axis)
            and all(c == " " for c in axis[start - 1 : start + len(text) + 1])
        ):
            axis[start : start + len(text)] = list(text)
    lines.append("".join(axis).rstrip())
    scale = "log scale" if log else "linear"
    lines.append(f"{'end-to-end ms per frame (' + scale + ')':>{min(width, plot_width + 7)}}")
    legend = "UPPER CASE: on the frontier; lower case: below it (a model as fast or faster is more accurate)"
    if budget_ms:
        legend += f"; ':' the budget, {budget_ms:.1f} ms"
    lines += _wrap(legend, width)
    return lines


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


# -- the picture ------------------------------------------------------------------------------------


def check_plot_target(path: str) -> None:
    """Before anything is measured: a file type matplotlib writes, a folder that exists, and the extra."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in PLOT_FORMATS:
        raise UsageError(f"--plot takes a .png, .svg or .pdf file name, not {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--plot {path}: the folder {folder} does not exist")
    _pyplot()


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on a headless board
        import matplotlib.pyplot as pyplot
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib: pip install 'edgenet[plot]' (the terminal chart needs nothing)"
        ) from None
    return pyplot


def save_plot(
    points: Sequence[ChartPoint],
    path: str,
    *,
    budget_ms: float | None,
    title: str,
    accuracy_name: str = "top-1",
) -> None:
    """The frontier as a picture (png, svg or pdf by the file's extension)."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(8, 5), dpi=110)
    try:
        frontier = sorted((p for p in points if p.frontier), key=lambda p: p.latency_ms)
        others = [p for p in points if not p.frontier]
        axes.scatter([p.latency_ms for p in others], [p.accuracy for p in others], color="0.6", label="below")
        axes.step(
            [p.latency_ms for p in frontier],
            [p.accuracy for p in frontier],
            where="post",
            color="tab:blue",
            marker="o",
            label="frontier",
        )
        for point in points:
            axes.annotate(
                point.model,
                (point.latency_ms, point.accuracy),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
                fontweight="bold" if point.chosen else "normal",
            )
        if budget_ms:
            axes.axvline(budget_ms, color="tab:red", linestyle="--", label=f"budget {budget_ms:.1f} ms")
        latencies = [p.latency_ms for p in points]
        if _log_scale(min(latencies), max(latencies)):
            from matplotlib.ticker import FuncFormatter

            axes.set_xscale("log")
            plain = FuncFormatter(lambda value, _position: f"{value:g}")
            axes.xaxis.set_major_formatter(plain)
            axes.xaxis.set_minor_formatter(plain)
        axes.set_xlabel("end-to-end ms per frame (decode, preprocess, invoke, postprocess), p50")
        axes.set_ylabel(f"{accuracy_name} %")
        axes.set_title(title, fontsize=9)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        try:
            figure.savefig(path)
        except OSError as exc:
            from edgenet.errors import DeviceError

            raise DeviceError(
                f"cannot write the plot {path}: {exc.strerror or exc}; choose a writable place for --plot "
                "(the report above is complete)"
            ) from None
    finally:
        pyplot.close(figure)
