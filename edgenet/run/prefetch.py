"""The capture stage: frames are read, decoded and prepared in worker threads, overlapped with inference on
the previous frame in the main thread, and handed over through a FrameHandoff.

One worker for videos and cameras (one decoder per stream). Image files that offer `workers` (run.workers.
ImageReads) are read by that many workers at once, each image by one of them, and still handed over in
order: their frames iterator yields each read as a callable that the worker calls outside the shared lock.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

PREFETCH_DEPTH = 4
DONE = object()
CLOSE_WAIT_S = 2.0  # on close: how long to wait for the workers (one may hang in a read: it is a daemon)


@dataclass
class Prepared:
    """A frame after the capture thread's stages: the input tensor (and the task's context), or the error."""

    frame: object  # edgenet.sources.Frame
    tensor: np.ndarray | None
    context: object
    preprocess_ms: float
    error: str | None


class FrameHandoff:
    """The workers -> main thread handoff of prepared frames.

    Files (`live=False`): a reorder buffer by position in the input; a worker waits while its frame is
    `depth` or more ahead of the next one the main thread takes, so every frame arrives, in order, and at
    most `depth` wait here (plus one in each worker's hands). Live cameras (`live=True`): one slot holding
    the newest good frame; a frame the main thread did not take in time is replaced and counted, and the
    count travels in the next delivered frame's `dropped`. Error frames (a lost camera) are never dropped:
    they wait in their own small queue, in order.

    `held` counts the prepared frames not yet taken (here, or in a worker waiting for room), `most_held`
    its maximum over the run: the memory bound made visible.
    """

    def __init__(self, *, live: bool, depth: int = PREFETCH_DEPTH):
        self.live = live
        self.depth = max(1, depth)
        self._cond = threading.Condition()
        self._pending: dict[int, Prepared] = {}  # by position (files), by arrival (live errors)
        self._next = 0  # the position the main thread takes next
        self._latest: Prepared | None = None
        self._dropped = 0
        self._end: int | None = None  # where the frames end, once known (or where a worker failed)
        self.held = self.most_held = 0

    def put(self, item: Prepared, stop: threading.Event, position: int | None = None) -> bool:
        """Hand over one frame (`position`: its place in the input, for files); False when `stop` was set
        while waiting for room (files and error frames only wait)."""
        with self._cond:
            self.held += 1
            self.most_held = max(self.most_held, self.held)
            if self.live and item.error is None:
                if self._latest is not None:
                    self._dropped += 1
                    self.held -= 1
                self._latest = item
            else:
                if self.live:  # an error frame: after the ones waiting
                    position = self._next + len(self._pending)
                while position >= self._next + self.depth and not stop.is_set():
                    self._cond.wait(0.1)
                if stop.is_set():
                    self.held -= 1
                    return False
                self._pending[position] = item
            self._cond.notify_all()
            return True

    def finish(self, end: int) -> None:
        """No frame at `end` or after it will come (the earliest such place wins)."""
        with self._cond:
            self._end = end if self._end is None else min(self._end, end)
            self._cond.notify_all()

    def get(self, timeout: float):
        """The next frame, None if nothing came within `timeout`, or DONE once the frames have ended."""
        with self._cond:
            if self._next not in self._pending and self._latest is None and not self._ended():
                self._cond.wait(timeout)
            waiting = self._pending.get(self._next)
            if waiting is not None and (
                self._latest is None or waiting.frame.index <= self._latest.frame.index
            ):
                del self._pending[self._next]
                self._next += 1
                self.held -= 1
                self._cond.notify_all()
                return waiting
            if self._latest is not None:
                item, self._latest = self._latest, None
                item.frame = replace(item.frame, dropped=self._dropped)
                self._dropped = 0
                self.held -= 1
                return item
            return DONE if self._ended() else None

    def _ended(self) -> bool:
        return self._end is not None and (self.live or self._next >= self._end)


class Prefetcher:
    """Capture + preparation in worker threads, consumption in the caller's; see FrameHandoff for the modes.

    `frames` may offer `interrupt()` (callable from another thread, e.g. cameras.CameraFrames): it is called
    on close so that a capture waiting for a camera or a reconnect backoff stops promptly. It may offer
    `workers` (files only): that many threads take its items in turn, each a Frame or a callable returning
    one; taking is serialised, calling is not.

    While it runs, OpenCV's own thread pool is limited to 1 thread (restored on close): otherwise resize and
    colour conversion spread onto the core that runs inference (docs/performance.md, "Streams": measured).
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
        self._failure: tuple[int, BaseException] | None = None  # the earliest, by position
        self._taking = threading.Lock()  # one worker at a time takes the next item (and its position)
        self._iterator = None  # iter(frames), made by the first worker
        self._taken = 0
        self._working = 0
        workers = 1 if live else max(1, int(getattr(frames, "workers", 1) or 1))
        self._threads = [
            threading.Thread(target=self._work, name=f"edgenet-capture-{number}", daemon=True)
            for number in range(workers)
        ]
        self._opencv_threads = opencv_threads
        self._opencv_before: int | None = None

    def _take(self):
        """(position, the next item), or None when the frames have ended, failed or the run is stopping."""
        with self._taking:
            position = self._taken
            if self._stop.is_set() or self._failure is not None:
                return None
            try:
                if self._iterator is None:  # here, in a worker: opening a camera may take a while
                    self._iterator = iter(self._frames)
                item = next(self._iterator)
            except StopIteration:
                self.handoff.finish(position)
                return None
            except BaseException as exc:  # e.g. an incremental state that cannot be written
                self._failed(position, exc)
                return None
            self._taken += 1
            return position, item

    def _work(self) -> None:
        try:
            while (taken := self._take()) is not None:
                position, item = taken
                try:
                    frame = item() if callable(item) else item
                    prepared = self._prepare(frame)
                except BaseException as exc:  # handed to the consumer, raised after the frames before it
                    with self._taking:
                        self._failed(position, exc)
                    break
                if self._stop.is_set() or not self.handoff.put(prepared, self._stop, position):
                    break
        finally:
            self._leave()

    def _failed(self, position: int, exc: BaseException) -> None:
        """(with `_taking` held) The frames end at `position`, with `exc` (the earliest failure wins)."""
        if self._failure is None or position < self._failure[0]:
            self._failure = (position, exc)
        self.handoff.finish(position)

    def _leave(self) -> None:
        """The last worker out closes the frames: a generator's finally (releasing a capture) runs here."""
        with self._taking:
            self._working -= 1
            if self._working:
                return
            close = getattr(self._iterator, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
            self.handoff.finish(self._taken)

    def items(self, should_stop=lambda: False) -> Iterator[Prepared]:
        """Prepared frames until the source ends or `should_stop()` turns true (checked every 0.1 s, also
        while waiting: a read that hangs, e.g. on a stale network mount, cannot keep a stop from ending
        the run)."""
        if self._opencv_threads is not None:
            from edgenet.imaging import opencv

            cv2 = opencv()
            self._opencv_before = cv2.getNumThreads()
            cv2.setNumThreads(self._opencv_threads)
        self._start()
        try:
            while not should_stop():
                item = self.handoff.get(0.1)
                if item is None:
                    continue
                if item is DONE:
                    if self._failure is not None:
                        raise self._failure[1]
                    break
                yield item
        finally:
            self.close()

    def _start(self) -> None:
        self._working = len(self._threads)
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self._stop.set()
        interrupt = getattr(self._frames, "interrupt", None)
        if interrupt is not None:
            interrupt()
        deadline = time.monotonic() + CLOSE_WAIT_S
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._opencv_before is not None:
            from edgenet.imaging import opencv

            opencv().setNumThreads(self._opencv_before)
            self._opencv_before = None
