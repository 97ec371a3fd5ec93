"""One summary for every run (images, videos, cameras): counts, latency percentiles, fps and how it compares
with what invoke alone allows. It is a sink: the writer thread adds each result; the live view reads it.

`add` runs for every record, so it only appends; percentiles are computed when the live view refreshes
(rich's own thread, a few times a second) or at the end.
"""

from __future__ import annotations

import time
from collections import deque

from edgenet.stats import percentile

WINDOW = 300  # frames behind the live view's fps and percentiles
SHARE_MIN_FRAMES = 10  # frames before the summary compares fps with the warm-up's invoke limit
SUMMARY_KEEP = 100_000  # latencies kept for the summary of a long camera run (the most recent ones)


def plural(count: int, noun: str) -> str:
    """1 image, 2 images; 1 error, 0 errors."""
    return f"{count} {noun if count == 1 else noun + 's'}"


def _ms(values) -> str:
    return " / ".join("-" if v != v else f"{v:.2f}" for v in values)  # v != v: NaN (no frames yet)


class RunSummary:
    wants_pixels = False

    def __init__(self, window: int = WINDOW):
        self.count = 0
        self.events = 0
        self.errors = 0
        self.dropped = 0
        self.last_error: str | None = None
        self.last_record: dict = {}
        self.warmup_ms: list[float] = []  # the stream's warm-up invokes (edgenet.run.loop.warm_up)
        self._first: float | None = None
        self._last: float | None = None
        self._good = 0
        self.inference: deque = deque(maxlen=SUMMARY_KEEP)
        self.total: deque = deque(maxlen=SUMMARY_KEEP)
        self.capture: deque = deque(maxlen=SUMMARY_KEEP)
        self._recent: deque = deque(maxlen=window)  # (inference end, inference ms, total ms)

    # -- as a sink -----------------------------------------------------------------------------------------
    def write(self, result) -> None:
        self.add(result.record, result.done)

    def close(self) -> None:
        pass

    def add(self, record: dict, done: float | None = None) -> None:
        """`done`: when the frame's inference ended (time.time()). fps is taken from these, not from when the
        writer thread got to the record: a writer that lags and then catches up would make a short stream
        look faster than inference allows. Give it for every record of a run, or for none."""
        if "event" in record:  # a region's change of state: not a frame
            self.events += 1
            return
        now = done if done is not None else time.time()
        self.count += 1
        self.last_record = record
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
        self._recent.append((now, latency["inference"], latency["total"]))

    # -- figures -------------------------------------------------------------------------------------------
    def steady_fps(self) -> float:
        """Frames per second from the first result to the last (start-up excluded)."""
        if self._good < 2 or self._last <= self._first:
            return 0.0
        return (self._good - 1) / (self._last - self._first)

    def invoke_alone_ms(self) -> float | None:
        """The warm-up's invoke p50 (the first, cold invoke left out): invoke with nothing running beside
        it, measured in this run just before capture started."""
        return percentile(self.warmup_ms[1:], 50) if len(self.warmup_ms) > 1 else None

    def recent(self) -> dict:
        window = list(self._recent)
        fps = 0.0
        if len(window) >= 2 and window[-1][0] > window[0][0]:
            fps = (len(window) - 1) / (window[-1][0] - window[0][0])
        return {
            "frames": len(window),
            "fps": fps,
            "inference": [percentile([w[1] for w in window], q) for q in (50, 90, 99)],
            "total": [percentile([w[2] for w in window], q) for q in (50, 90, 99)],
        }

    def line(self, model_description: str, noun: str = "frame", title: str = "", stream: bool = True) -> str:
        """One line for stderr at the end of a run. `noun`: what a record is (image, frame)."""
        inference, total, capture = list(self.inference), list(self.total), list(self.capture)
        parts = [title] if title else []
        parts += [plural(self.count, noun), plural(self.errors, "error")]
        if stream:
            parts.append(f"{self.dropped} dropped")
        if inference:
            parts.append(f"inference p50/p90/p99 {_ms(percentile(inference, q) for q in (50, 90, 99))} ms")
            parts.append(f"per {noun} p50 {percentile(total, 50):.2f} ms")
        if capture and max(capture) > 0:  # files wait for nothing (their reading is decoding)
            parts.append(f"capture wait p50 {percentile(capture, 50):.2f} ms")
        fps = self.steady_fps()
        alone = self.invoke_alone_ms()
        if fps:  # near 1: inference is the bottleneck; far below: the camera, decoding or the reader is
            share = ""
            if alone and self.count - self.errors >= SHARE_MIN_FRAMES:
                share = f" ({fps * alone / 1000:.2f} of the {1000 / alone:.0f} fps invoke alone allows)"
            parts.append(f"{fps:.1f} fps{share}" if stream else f"{fps:.1f} {noun}s/s")
        if self.events:
            parts.append(plural(self.events, "state change"))
        if self.warmup_ms:
            later = f", then p50 {alone:.2f} ms" if alone else ""
            parts.append(f"warm-up {len(self.warmup_ms)} invokes (first {self.warmup_ms[0]:.1f} ms{later})")
        parts.append(model_description)
        return ", ".join(parts)
