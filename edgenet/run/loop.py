"""The one loop, for images, videos and cameras alike:

    capture thread: read + decode (source) -> task.prepare   (overlapped with the previous frame's inference)
    main thread:    task.infer (every invoke of the frame)
    writer thread:  task.finish -> the record -> every sink, in order

A stop request (edgenet.run.stop) ends the loop between frames: the frame in flight is finished and written.
Only the main thread touches the interpreter; postprocessing and writing never sit between two invokes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from edgenet.errors import EdgenetError
from edgenet.lightclass import lightclass
from edgenet.run.prefetch import Prefetcher, Prepared
from edgenet.run.records import error_record, frame_record
from edgenet.run.summary import RunSummary
from edgenet.run.writer import RecordWriter

STREAM_WARMUP_S = 0.2  # seconds of invokes before a stream's first frame (warm_up)
STALLED_OUTPUT_GRACE_S = 5.0  # after a stop request: how long to wait for a reader that stopped reading
# records waiting for the writer thread; fewer when each holds its frame's pixels (--annotate, --save,
# --serve): 8 full-HD frames are 50 MB, 64 would be 400 MB on a board with 1-4 GB
WRITER_DEPTH, WRITER_DEPTH_WITH_PIXELS = 64, 8


@dataclass
class Inferred:
    """A frame after inference, before postprocessing. `done`: when its inference ended (time.time())."""

    item: Prepared
    outputs: object
    stages: dict
    inference_ms: float
    done: float


@dataclass(frozen=True)
class Result:
    """What every sink gets: the record, when its inference ended, and its frame (with the original pixels
    only when a sink wants them: `Sinks.wants_pixels`)."""

    record: dict
    done: float
    frame: object = None  # edgenet.sources.Frame
    key: object = None  # the task's change key (top-1, the set of labels...); None for an error record

    @property
    def image(self) -> np.ndarray | None:
        return getattr(self.frame, "image", None)


@lightclass
class Limits:
    max_frames: int | None = None  # stop after this many records
    duration: float | None = None  # stop after this many seconds, counted from the first frame
    warm_up: bool = False  # streams: warm the interpreter before capture starts


@lightclass(frozen=False)
class Outcome:
    summary: RunSummary
    stopped: list[str] = field(default_factory=list)  # why the run was stopped (signals)
    failure: EdgenetError | None = None  # what ended it early (a camera lost for good, a full disk)
    stuck: bool = False  # the writer is stuck on an output nobody reads
    unwritten: int = 0


def warm_up(task, seconds: float = STREAM_WARMUP_S, min_runs: int = 3) -> list[float]:
    """Invoke on a grey frame until `seconds` have passed and `min_runs` ran; returns each invoke's ms.
    Streams do this before capture starts, so that their first frames are not measured on a cold
    interpreter (and a live camera drops nothing meanwhile); on an Edge TPU the first invoke uploads the
    model."""
    tensor = task.warm_up_tensor()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < deadline:
        started = time.perf_counter_ns()
        task.engine.run(tensor)
        times.append((time.perf_counter_ns() - started) / 1e6)
    return times


class Loop:
    """One run of frames through a model's task into a list of sinks (edgenet.sinks.Sinks)."""

    def __init__(self, model, sinks, *, live: bool, stop, limits: Limits = Limits(), watchers=()):
        """`watchers`: objects whose `observe(record)` returns records derived from it (a region's confirmed
        change of state): each is written after the frame's record, to every sink."""
        self.model = model
        self.watchers = tuple(watchers)
        self.task = model.task
        self.info = model.info
        self.sinks = sinks
        self.live = live
        self.stop = stop
        self.limits = limits
        self.pixels = sinks.wants_pixels
        self._deadline: float | None = None

    def prepare(self, frame) -> Prepared:
        """Capture thread: the task's preparation, timed; a frame that fails is an error, never a raise."""
        if frame.error is not None or frame.image is None:
            return Prepared(frame, None, None, 0.0, frame.error or "no image")
        started = time.perf_counter_ns()
        try:
            tensor, context = self.task.prepare(frame.image)
        except EdgenetError as exc:
            return Prepared(frame, None, None, 0.0, str(exc))
        except Exception as exc:  # an odd image that OpenCV rejects at resize time
            text = " ".join(str(exc).split())[:200]
            return Prepared(frame, None, None, 0.0, f"cannot preprocess image: {text}")
        elapsed = (time.perf_counter_ns() - started) / 1e6
        if not self.pixels:
            frame = replace(frame, image=None)  # no sink draws or saves it: let it go now
        return Prepared(frame, tensor, context, elapsed, None)

    def infer(self, item: Prepared) -> Inferred:
        """Main thread: every invoke of the frame."""
        if item.error is not None:
            return Inferred(item, None, {}, 0.0, time.time())
        started = time.perf_counter_ns()
        outputs, stages = self.task.infer(item.tensor, item.context)
        elapsed = (time.perf_counter_ns() - started) / 1e6
        return Inferred(item, outputs, stages, elapsed - sum(stages.values()), time.time())

    def deliver(self, inferred: Inferred) -> None:
        """Writer thread: postprocess, make the record, hand it to every sink in order."""
        item = inferred.item
        frame = item.frame
        if item.error is not None:
            record = error_record(frame, self.info, item.error, inferred.done)
            self.sinks.write(Result(record, inferred.done, frame))
            return
        started = time.perf_counter_ns()
        fields = self.task.finish(inferred.outputs, item.context)
        stages = {"preprocess": item.preprocess_ms, "inference": inferred.inference_ms, **inferred.stages}
        stages["postprocess"] = (time.perf_counter_ns() - started) / 1e6
        record = frame_record(frame, self.info, fields, stages, inferred.done)
        self.sinks.write(Result(record, inferred.done, frame, self.task.change_key(fields)))
        for watcher in self.watchers:
            for event in watcher.observe(record):
                self.sinks.write(Result(event, inferred.done))

    def should_stop(self) -> bool:
        return bool(self.stop) or (self._deadline is not None and time.monotonic() >= self._deadline)

    def run(self, frames, summary: RunSummary) -> Outcome:
        """Every frame of `frames` (an iterable of edgenet.sources.Frame) until it ends, a limit or a stop."""
        outcome = Outcome(summary)
        writer = RecordWriter(self.deliver, WRITER_DEPTH_WITH_PIXELS if self.pixels else WRITER_DEPTH)
        prefetch = Prefetcher(frames, self.prepare, live=self.live)
        taken = 0
        try:
            if self.limits.warm_up:  # before capture starts: a live camera drops nothing meanwhile
                summary.warmup_ms = warm_up(self.task)
            self.sinks.start(summary)
            for item in prefetch.items(self.should_stop):
                if self._deadline is None and self.limits.duration is not None:
                    # from the first frame: neither the warm-up nor a slow camera start eats the duration
                    self._deadline = time.monotonic() + self.limits.duration
                if not writer.put(self.infer(item), give_up=lambda: bool(self.stop)):
                    break  # asked to stop while the output is not being read
                taken += 1
                if self.limits.max_frames and taken >= self.limits.max_frames:
                    break
        except KeyboardInterrupt:
            self.stop.request("SIGINT")
        except EdgenetError as error:
            outcome.failure = error
        finally:
            prefetch.close()
            try:  # every record taken is written before the end; a stop request bounds the wait
                writer.close(give_up=lambda: bool(self.stop), grace=STALLED_OUTPUT_GRACE_S)
            except EdgenetError as error:  # e.g. the disk filled up: still say what was done
                outcome.failure = outcome.failure or error
            outcome.stuck, outcome.unwritten = writer.stuck, writer.unwritten
            try:
                self.sinks.stop(closing=not writer.stuck)
            except EdgenetError as error:
                outcome.failure = outcome.failure or error
        outcome.stopped = list(self.stop.received)
        return outcome
