"""Stream statistics, the live view on a terminal (rich, stderr) and the end-of-stream summary.

`StreamStats.add` runs in the inference loop for every record, so it only appends; percentiles are computed
when the view refreshes (rich's own thread, a few times a second) or at the end.
"""

from __future__ import annotations

import time
from collections import deque

from edgenet.stats import percentile

WINDOW = 300  # frames behind the live view's fps and percentiles
SHARE_MIN_FRAMES = 10  # frames before the summary compares fps with the warm-up's invoke limit
SUMMARY_KEEP = 100_000  # latencies kept for the summary of a long camera run (the most recent ones)


class StreamStats:
    def __init__(self, window: int = WINDOW):
        self.count = 0
        self.errors = 0
        self.dropped = 0
        self.last_error: str | None = None
        self.top_k: list[dict] = []
        self.source = ""
        self.frame = -1
        self._first: float | None = None
        self._last: float | None = None
        self._good = 0
        self.inference: deque = deque(maxlen=SUMMARY_KEEP)
        self.total: deque = deque(maxlen=SUMMARY_KEEP)
        self.capture: deque = deque(maxlen=SUMMARY_KEEP)
        self._recent: deque = deque(maxlen=window)  # (inference end, inference ms, total ms)

    def add(self, record: dict, done: float | None = None) -> None:
        """`done`: when the frame's inference ended (time.time(), Inferred.done). fps is taken from these, not
        from when the writer thread got to the record: a writer that lags and then catches up would make a
        short stream look faster than inference allows. Give it for every record of a run, or for none."""
        now = done if done is not None else time.time()
        self.count += 1
        self.source = record.get("source", "")
        self.frame = record.get("frame", -1)
        if "error" in record:
            self.errors += 1
            self.last_error = record["error"]
            return
        if self._first is None:
            self._first = now
        self._last = now
        self._good += 1
        latency = record["latency_ms"]
        self.dropped += record.get("dropped") or 0
        self.inference.append(latency["inference"])
        self.total.append(latency["total"])
        if "capture" in latency:
            self.capture.append(latency["capture"])
        self.top_k = record["top_k"]
        self._recent.append((now, latency["inference"], latency["total"]))

    def steady_fps(self) -> float:
        """Classified frames per second from the first result to the last (start-up excluded)."""
        if self._good < 2 or self._last <= self._first:
            return 0.0
        return (self._good - 1) / (self._last - self._first)

    def recent(self) -> dict:
        window = list(self._recent)
        fps = 0.0
        if len(window) >= 2 and window[-1][0] > window[0][0]:
            fps = (len(window) - 1) / (window[-1][0] - window[0][0])
        inference = [w[1] for w in window]
        total = [w[2] for w in window]
        return {
            "fps": fps,
            "inference": [percentile(inference, q) for q in (50, 90, 99)],
            "total": [percentile(total, q) for q in (50, 90, 99)],
        }


def _ms(values) -> str:
    return " / ".join("-" if v != v else f"{v:.2f}" for v in values)  # v != v: NaN (no frames yet)


def engine_line(classifier) -> str:
    """The end of every summary line: which model ran where, and on what."""
    engine = classifier.engine
    return (
        f"{classifier.model_name} on {engine.delegate}, {engine.threads} thread(s), "
        f"{engine.backend.name} {engine.backend.version}"
    )


def summary(stats: StreamStats, classifier, sources: str) -> str:
    """One line for stderr at the end of a stream."""
    inference, total, capture = list(stats.inference), list(stats.total), list(stats.capture)
    parts = [sources, f"{stats.count} frames", f"{stats.errors} errors", f"{stats.dropped} dropped"]
    if inference:
        parts.append(f"inference p50/p90/p99 {_ms(percentile(inference, q) for q in (50, 90, 99))} ms")
        parts.append(f"per frame p50 {percentile(total, 50):.2f} ms")
    if capture and max(capture) > 0:  # files wait for nothing (their reading is decoding)
        parts.append(f"capture wait p50 {percentile(capture, 50):.2f} ms")
    # the warm-up's p50 is invoke with nothing running beside it, measured in this run just before capture
    warmup = getattr(classifier, "warmup_ms", None) or []
    alone = percentile(warmup[1:], 50) if len(warmup) > 1 else None
    fps = stats.steady_fps()
    if fps:  # near 1: inference is the bottleneck; far below: the camera, decoding or the reader is
        share = ""
        if alone and stats.count - stats.errors >= SHARE_MIN_FRAMES:
            share = f" ({fps * alone / 1000:.2f} of the {1000 / alone:.0f} fps invoke alone allows)"
        parts.append(f"{fps:.1f} fps{share}")
    if warmup:
        later = f", then p50 {alone:.2f} ms" if alone else ""
        parts.append(f"warm-up {len(warmup)} invokes (first {warmup[0]:.1f} ms{later})")
    parts.append(engine_line(classifier))
    return ", ".join(parts)


class LiveView:
    """A small panel on stderr, refreshed 4 times a second: fps, latency percentiles, drops, current top-k."""

    def __init__(self, stats: StreamStats, title: str):
        self.stats = stats
        self.title = title
        self._live = None

    def __rich__(self):
        from rich.table import Table

        stats = self.stats
        recent = stats.recent()
        table = Table(title=self.title, show_header=False, box=None, title_justify="left")
        table.add_column(justify="right", style="bold")
        table.add_column()
        table.add_row("frame", f"{stats.frame} ({stats.source})" if stats.count else "waiting for frames...")
        table.add_row("fps", f"{recent['fps']:.1f} (last {len(stats._recent)} frames)")
        table.add_row("inference", f"p50/p90/p99 {_ms(recent['inference'])} ms")
        table.add_row("per frame", f"p50/p90/p99 {_ms(recent['total'])} ms")
        table.add_row("dropped", f"{stats.dropped} stale frames")
        last = f" (last: {stats.last_error})" if stats.last_error else ""
        table.add_row("errors", f"{stats.errors}{last}")
        for rank, prediction in enumerate(stats.top_k, 1):
            table.add_row(f"#{rank}", f"{prediction['score']:.3f}  {prediction['label']}")
        return table

    def start(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._live = Live(self, console=Console(stderr=True), refresh_per_second=4, transient=True)
        self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
