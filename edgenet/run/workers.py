"""Image files decoded by several workers at once, handed to inference in their input order.

A folder run is a two-stage pipeline: workers read, decode and prepare images (OpenCV's decode and resize
release the GIL), the main thread invokes. When decoding an image costs more than invoking the model on
it, the workers are the slower stage, and more of them pay as long as they have cores of their own.
Videos and cameras keep one worker: one decoder per stream (run.prefetch).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading

WORKERS_VARIABLE = "EDGENET_DECODE_WORKERS"  # for measurements (docs/performance.md); not an option
MAX_DECODE_WORKERS = 4
MAX_WORKERS_VARIABLE = 16


def decode_workers(cores: int, inference_threads: int, *, accelerated: bool = False) -> int:
    """How many decode workers pay in a folder run, from the usable cores and the inference threads.

    A worker pays when it has a core of its own: on 2 cores beside one inference thread a second worker
    made folder runs slower, not faster (it takes the core inference needs), while on cores nothing else
    uses, decoding speeds up with the workers (measured: docs/performance.md, "Decode workers"; as long as
    each decode captures stderr under one process-wide lock, by much less). So: the cores inference
    leaves, at least 1 (the capture thread every run has), at most MAX_DECODE_WORKERS. On 4 cores a folder
    run's default is 2 inference threads and 2 workers (edgenet.runtime.threads_for). `accelerated`:
    inference runs on an Edge TPU or another external delegate, whose invoke mostly waits for the device:
    it counts as one core (derived, not measured: there is no Edge TPU on the development machine).
    """
    busy = 1 if accelerated else max(1, inference_threads)
    return max(1, min(MAX_DECODE_WORKERS, cores - busy))


def workers_for(model, cores: int | None = None) -> int:
    """decode_workers() for this model on this machine; EDGENET_DECODE_WORKERS, when set, wins."""
    from edgenet.errors import UsageError

    wanted = os.environ.get(WORKERS_VARIABLE, "").strip()
    if wanted:
        if not wanted.isdigit() or not 1 <= int(wanted) <= MAX_WORKERS_VARIABLE:
            raise UsageError(
                f"{WORKERS_VARIABLE}={wanted}: give a whole number of decode workers from 1 to "
                f"{MAX_WORKERS_VARIABLE}, or unset it"
            )
        return int(wanted)
    if cores is None:
        from edgenet.host import usable_cores

        cores = usable_cores()
    engine = model.engine
    accelerated = engine.placement.kind in ("edgetpu", "external")
    return decode_workers(cores, engine.threads, accelerated=accelerated)


class DecodeGate:
    """Decodes run side by side, except one `alone`: it waits for the others to end, and none starts
    until it has ended (it is served before decodes that arrive after it)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._running = 0
        self._alone = False
        self._waiting_alone = 0

    @contextlib.contextmanager
    def decoding(self, alone: bool):
        with self._cond:
            if alone:
                self._waiting_alone += 1
                while self._running or self._alone:
                    self._cond.wait()
                self._waiting_alone -= 1
                self._alone = True
            else:
                while self._alone or self._waiting_alone:
                    self._cond.wait()
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                if alone:
                    self._alone = False
                self._cond.notify_all()


class ImageReads:
    """The images of a folder run as reads that `workers` threads can do at once (run.prefetch.Prefetcher):
    iterating yields, per image in order, a callable that reads and decodes it and returns its Frame
    (edgenet.sources.image_frames for that one path: the same hooks, called in the same places).

    With an incremental state, every image being decoded is marked so (`before_read`), however many run
    at once: a run that dies while decoding strikes them all, since it cannot tell which one killed it.
    `alone` names the images a run that died left in progress (SeenState.interrupted()): each of them is
    decoded with no other decode running, so that a second death strikes only the image that caused it
    and an innocent neighbour is never skipped as a poison pill.
    """

    def __init__(self, paths: list[str], *, workers: int = 1, start_index: int = 0, alone=(), **read_options):
        self.paths = list(paths)
        self.workers = max(1, workers)
        self.start_index = start_index
        self._alone = {os.path.abspath(path) for path in alone}
        self._options = read_options  # image_frames' keywords: min_short, max_pixels, before/after_read
        self._gate = DecodeGate()

    def __iter__(self):
        for offset, path in enumerate(self.paths):
            yield functools.partial(self.read, path, self.start_index + offset)

    def read(self, path: str, index: int):
        """One image's Frame (an error Frame for a bad file); an exception from a hook stops the run."""
        from edgenet.sources import image_frames

        alone = bool(self._alone) and os.path.abspath(path) in self._alone
        with self._gate.decoding(alone):
            return next(iter(image_frames([path], start_index=index, **self._options)))
