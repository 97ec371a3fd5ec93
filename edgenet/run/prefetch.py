"""The capture thread: frames are read, decoded and prepared here, overlapped with inference on the previous
frame in the main thread, and handed over through a FrameHandoff."""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

PREFETCH_DEPTH = 4
DONE = object()


@dataclass
class Prepared:
    """A frame after the capture thread's stages: the input tensor (and the task's context), or the error."""

    frame: object  # edgenet.sources.Frame
    tensor: np.ndarray | None
    context: object
    preprocess_ms: float
    error: str | None


class FrameHandoff:
    """The capture -> main thread handoff of prepared frames.

    Files (`live=False`): a bounded FIFO; the capture thread waits when it is `depth` ahead, so every frame
    arrives, in order. Live cameras (`live=True`): one slot holding the newest good frame; a frame the main
    thread did not take in time is replaced and counted, and the count travels in the next delivered frame's
    `dropped`. Error frames (a lost camera) are never dropped: they wait in their own small queue, in order.
    """

    def __init__(self, *, live: bool, depth: int = PREFETCH_DEPTH):
        self.live = live
        self.depth = max(1, depth)
        self._cond = threading.Condition()
        self._fifo: collections.deque = collections.deque()
        self._latest: Prepared | None = None
        self._dropped = 0
        self._finished = False

    def put(self, item: Prepared, stop: threading.Event) -> bool:
        """Hand over one frame; False when `stop` was set while waiting for room (files only wait)."""
        with self._cond:
            if self.live and item.error is None:
                if self._latest is not None:
                    self._dropped += 1
                self._latest = item
            else:
                while len(self._fifo) >= self.depth and not stop.is_set():
                    self._cond.wait(0.1)
                if stop.is_set():
                    return False
                self._fifo.append(item)
            self._cond.notify_all()
            return True

    def finish(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def get(self, timeout: float):
        """The next frame, None if nothing came within `timeout`, or DONE once the capture has finished."""
        with self._cond:
            if not self._fifo and self._latest is None and not self._finished:
                self._cond.wait(timeout)
            if self._fifo and (self._latest is None or self._fifo[0].frame.index <= self._latest.frame.index):
                item = self._fifo.popleft()
                self._cond.notify_all()
                return item
            if self._latest is not None:
                item, self._latest = self._latest, None
                item.frame = replace(item.frame, dropped=self._dropped)
                self._dropped = 0
                return item
            return DONE if self._finished else None


class Prefetcher:
    """Capture + preparation in a thread, consumption in the caller's; see FrameHandoff for the two modes.

    `frames` may offer `interrupt()` (callable from another thread, e.g. cameras.CameraFrames): it is called
    on close so that a capture waiting for a camera or a reconnect backoff stops promptly.

    While it runs, OpenCV's own thread pool is limited to 1 thread (restored on close): otherwise resize and
    colour conversion spread onto the core that runs inference (README, "Cameras and video": measured).
    """

    def __init__(
        self,
        frames,
        prepare: Callable[[object], Prepared],
        *,
        live: bool,
        depth: int = PREFETCH_DEPTH,
        opencv_threads: int | None = 1,
    ):
        self._frames = frames
        self._prepare = prepare
        self.handoff = FrameHandoff(live=live, depth=depth)
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="edgenet-capture", daemon=True)
        self._opencv_threads = opencv_threads
        self._opencv_before: int | None = None

    def _work(self) -> None:
        iterator = iter(self._frames)
        try:
            for frame in iterator:
                if self._stop.is_set() or not self.handoff.put(self._prepare(frame), self._stop):
                    break
        except BaseException as exc:  # handed to the consumer, re-raised there
            self._failure = exc
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()  # a generator's finally (releasing the capture) runs here, in this thread
            self.handoff.finish()

    def items(self, should_stop=lambda: False) -> Iterator[Prepared]:
        """Prepared frames until the source ends or `should_stop()` turns true (checked every 0.1 s, also
        while waiting: a read that hangs, e.g. on a stale network mount, cannot keep a stop from ending
        the run)."""
        if self._opencv_threads is not None:
            from edgenet.imaging import opencv

            cv2 = opencv()
            self._opencv_before = cv2.getNumThreads()
            cv2.setNumThreads(self._opencv_threads)
        self._thread.start()
        try:
            while not should_stop():
                item = self.handoff.get(0.1)
                if item is None:
                    continue
                if item is DONE:
                    if self._failure is not None:
                        raise self._failure
                    break
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        interrupt = getattr(self._frames, "interrupt", None)
        if interrupt is not None:
            interrupt()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if self._opencv_before is not None:
            from edgenet.imaging import opencv

            opencv().setNumThreads(self._opencv_before)
            self._opencv_before = None
