"""The writer thread: records are made (postprocessing), written and handed to the sinks here, in order, so
that the main thread only infers."""

from __future__ import annotations

import queue
import threading
import time

_DONE = object()


class RecordWriter:
    """Makes and writes records in its own thread, in order, so the inference thread only infers.

    `deliver(item)` runs in the writer thread (postprocessing, the record, its writing, the sinks: work that
    would otherwise sit between two invokes). The queue is bounded: a slow reader of stdout slows the stream
    down (a live camera then drops more frames) instead of filling memory. A failure in `deliver` (e.g. a
    closed pipe) is re-raised in the caller's thread by the next `put` or by `close`.

    A reader that stops reading altogether (a stalled `| less`, a hung consumer) blocks the writer thread in
    write() for good; `put` and `close` take a `give_up` test so that a stop request still ends the run.
    """

    def __init__(self, deliver, depth: int = 64):
        self._deliver = deliver
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._failure: BaseException | None = None
        self.queued = 0
        self.delivered = 0
        self._pending = None  # the result in flight when a stop came while the queue was full
        self._thread = threading.Thread(target=self._work, name="edgenet-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            result = self._queue.get()
            if result is _DONE:
                return
            if self._failure is None:
                try:
                    self._deliver(result)
                    self.delivered += 1
                except BaseException as exc:  # handed to the caller's thread
                    self._failure = exc

    @property
    def unwritten(self) -> int:
        """Results taken by `put` and not delivered (yet): after `close`, those the output never got."""
        return self.queued - self.delivered

    @property
    def stuck(self) -> bool:
        """After `close`: the writer thread is still in a write that does not return."""
        return self._thread.is_alive()

    def put(self, result, give_up=lambda: False) -> bool:
        """Queue one result, waiting while the queue is full. If `give_up()` turns true meanwhile, the result
        is kept for `close` to hand over within its grace period, and the answer is False: take no more."""
        self.queued += 1
        while True:
            if self._failure is not None:
                raise self._failure
            try:
                self._queue.put(result, timeout=0.1)
                return True
            except queue.Full:
                if give_up():
                    self._pending = result
                    return False

    def close(self, give_up=lambda: False, grace: float = 5.0) -> None:
        """Write everything queued, stop the thread; re-raise a failure of `deliver`. Waits as long as the
        output takes, except once `give_up()` is true: then `grace` seconds more at most (see `unwritten`)."""
        deadline = None
        handed = False
        while self._thread.is_alive():
            if deadline is None and give_up():
                deadline = time.monotonic() + grace
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not handed:
                try:
                    if self._pending is not None:  # the frame in flight first
                        self._queue.put(self._pending, timeout=0.1)
                        self._pending = None
                    self._queue.put(_DONE, timeout=0.1)
                    handed = True
                except queue.Full:
                    continue
            self._thread.join(timeout=0.1)
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
