"""The loop: decode and preprocess in a worker thread, invoke in the calling thread, timings per stage.

One interpreter per model, built once (`Classifier`), reused for every frame. The worker keeps a small
bounded queue filled so that decoding the next image overlaps inference on the current one.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import numpy as np

from edgenet.classify import Prediction, predictions
from edgenet.errors import EdgenetError
from edgenet.imaging import RESIZE_POLICIES, prepare, to_input_tensor
from edgenet.runtime import Engine
from edgenet.sources import Frame

PREFETCH_DEPTH = 4
STREAM_WARMUP_S = 0.2  # seconds of invokes before a stream's first frame (Classifier.warm_up)


def utc_timestamp(seconds: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if seconds is None else seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class FrameResult:
    source: str
    frame: int
    model: str
    delegate: str
    top_k: tuple[Prediction, ...] = ()
    latency_ms: dict = field(default_factory=dict)
    time: str = ""
    error: str | None = None
    captured: str | None = None
    dropped: int | None = None
    latency_only: bool = False  # a random-weight model: the record's top_k means nothing

    def to_dict(self) -> dict:
        if self.error is not None:
            record = {
                "source": self.source,
                "frame": self.frame,
                "model": self.model,
                "error": self.error,
                "time": self.time,
            }
            if self.captured is not None:
                record["captured"] = self.captured
            return record
        record = {
            "source": self.source,
            "frame": self.frame,
            "model": self.model,
            "delegate": self.delegate,
            "top_k": [p.to_dict() for p in self.top_k],
            "latency_ms": self.latency_ms,
            "time": self.time,
        }
        if self.captured is not None:
            record["captured"] = self.captured
        if self.dropped is not None:
            record["dropped"] = self.dropped
        if self.latency_only:
            record["latency_only"] = True
        return record


@dataclass
class Prepared:
    """A frame after the worker's stages: the input tensor, or the error."""

    frame: Frame
    tensor: np.ndarray | None
    preprocess_ms: float
    error: str | None


@dataclass
class Inferred:
    """A frame after inference, before postprocessing: the raw output row (None for an error frame).

    `done` is the wall-clock time inference ended: the record's `time`, even when postprocessing runs later
    in a writer thread that lags behind."""

    item: Prepared
    raw: np.ndarray | None
    inference_ms: float
    done: float


class Classifier:
    """A model ready to classify frames: engine + labels + pre/post-processing settings."""

    def __init__(
        self,
        engine: Engine,
        *,
        model_name: str,
        labels: list[str] | None,
        resize: str = "crop",
        top_k: int = 5,
        threshold: float = 0.0,
    ):
        if resize not in RESIZE_POLICIES:
            raise ValueError(f"resize policy must be one of {RESIZE_POLICIES}")
        self.engine = engine
        self.model_name = model_name
        self.labels = labels
        self.resize = resize
        self.top_k = top_k
        self.threshold = threshold
        self.latency_only = False  # set by open_model for random-weight builds
        self.warmup_ms: list[float] = []  # set by warm_up

    def prepare(self, frame: Frame) -> Prepared:
        if frame.error is not None or frame.image is None:
            return Prepared(frame, None, 0.0, frame.error or "no image")
        started = time.perf_counter_ns()
        try:
            tensor = prepare(frame.image, self.engine.input, self.resize)
        except EdgenetError as exc:
            return Prepared(frame, None, 0.0, str(exc))
        except Exception as exc:  # an odd image that OpenCV rejects at resize time
            return Prepared(frame, None, 0.0, f"cannot preprocess image: {' '.join(str(exc).split())[:200]}")
        return Prepared(frame, tensor, (time.perf_counter_ns() - started) / 1e6, None)

    def infer(self, item: Prepared) -> FrameResult:
        return self.finish(self.run(item))

    def run(self, item: Prepared) -> Inferred:
        """The inference stage alone (what the stream's main thread does between two frames)."""
        if item.error is not None:
            return Inferred(item, None, 0.0, time.time())
        started = time.perf_counter_ns()
        raw = self.engine.run(item.tensor)  # a copy of the output row: safe to finish in another thread
        return Inferred(item, raw, (time.perf_counter_ns() - started) / 1e6, time.time())

    def warm_up(self, seconds: float = STREAM_WARMUP_S, min_runs: int = 3) -> None:
        """Invoke on a grey frame until `seconds` have passed and `min_runs` ran; the times go to `warmup_ms`.

        Streams do this before capture starts, so that the first frames are not measured on a cold
        interpreter: on the 2-core box, without a warm-up, v2-qat with 1 thread took 5.7 ms per frame over a
        stream's first 10 frames and 3.35 ms from the 50th on. On an Edge TPU the first invoke also uploads
        the model."""
        spec = self.engine.input
        tensor = to_input_tensor(np.full((spec.height, spec.width, spec.channels), 128, np.uint8), spec)
        self.warmup_ms = []
        deadline = time.perf_counter() + seconds
        while len(self.warmup_ms) < min_runs or time.perf_counter() < deadline:
            started = time.perf_counter_ns()
            self.engine.run(tensor)
            self.warmup_ms.append((time.perf_counter_ns() - started) / 1e6)

    def finish(self, inferred: Inferred) -> FrameResult:
        """Postprocess: top-k, timings, the record."""
        item = inferred.item
        frame = item.frame
        captured = utc_timestamp(frame.captured) if frame.captured is not None else None
        if item.error is not None:
            return FrameResult(
                source=frame.source,
                frame=frame.index,
                model=self.model_name,
                delegate=self.engine.delegate,
                error=item.error,
                time=utc_timestamp(inferred.done),
                captured=captured,
            )
        started = time.perf_counter_ns()
        top = predictions(inferred.raw, self.engine.output, self.labels, self.top_k, self.threshold)
        inference_ms = inferred.inference_ms
        postprocess_ms = (time.perf_counter_ns() - started) / 1e6
        latency = {} if frame.capture_ms is None else {"capture": round(frame.capture_ms, 3)}
        latency.update(
            {
                "decode": round(frame.decode_ms, 3),
                "preprocess": round(item.preprocess_ms, 3),
                "inference": round(inference_ms, 3),
                "postprocess": round(postprocess_ms, 3),
                "total": round(frame.decode_ms + item.preprocess_ms + inference_ms + postprocess_ms, 3),
            }
        )
        return FrameResult(
            source=frame.source,
            frame=frame.index,
            model=self.model_name,
            delegate=self.engine.delegate,
            top_k=tuple(top),
            latency_ms=latency,
            time=utc_timestamp(inferred.done),
            captured=captured,
            dropped=frame.dropped if frame.captured is not None else None,
            latency_only=self.latency_only,
        )


_DONE = object()


def classify_frames(
    frames: Iterator[Frame], classifier: Classifier, *, prefetch: bool = True, should_stop=lambda: False
) -> Iterator[FrameResult]:
    """Every frame in, one FrameResult out, in order (decode and preprocess in a worker thread).

    `should_stop()` is checked while waiting for the worker too: a read that hangs (a stale network mount)
    cannot keep a stop request from ending the run."""
    if not prefetch:
        for frame in frames:
            yield classifier.infer(classifier.prepare(frame))
            if should_stop():
                return
        return
    yield from classify_stream(frames, classifier, live=False, should_stop=should_stop)


class FrameHandoff:
    """The worker -> consumer handoff of prepared frames.

    Files (`live=False`): a bounded FIFO; the worker waits when it is `depth` ahead, so every frame arrives,
    in order. Live cameras (`live=True`): one slot holding the newest good frame; a frame the consumer did not
    take in time is replaced and counted, and the count travels in the next delivered frame's `dropped`.
    Error frames (a lost camera) are never dropped: they wait in their own small queue, in order.
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
        """The next frame, None if nothing came within `timeout`, or _DONE once the worker has finished."""
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
            return _DONE if self._finished else None


class StreamPrefetcher:
    """Capture + preprocessing in a worker thread, inference in the caller's; see FrameHandoff for the modes.

    `frames` may offer `interrupt()` (callable from another thread, e.g. sources.CameraFrames): it is called
    on close so that a worker waiting for a camera or a reconnect backoff stops promptly.

    While it runs, OpenCV's own thread pool is limited to 1 thread (restored on close): otherwise resize
    and colour conversion spread onto the core that runs inference. Measured on 2 cores, v2-qat 1 thread:
    inference 3.8-4.2 ms per frame inside the stream with OpenCV's default pool, 3.4 ms with 1 thread
    (3.35 ms alone).
    """

    def __init__(
        self,
        frames,
        classifier: Classifier,
        *,
        live: bool,
        depth: int = PREFETCH_DEPTH,
        opencv_threads: int | None = 1,
    ):
        self._frames = frames
        self._classifier = classifier
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
                if self._stop.is_set() or not self.handoff.put(self._classifier.prepare(frame), self._stop):
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
        """Prepared frames until the source ends or `should_stop()` turns true (checked every 0.1 s)."""
        if self._opencv_threads is not None:
            import cv2

            self._opencv_before = cv2.getNumThreads()
            cv2.setNumThreads(self._opencv_threads)
        self._thread.start()
        try:
            while not should_stop():
                item = self.handoff.get(0.1)
                if item is None:
                    continue
                if item is _DONE:
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
            import cv2

            cv2.setNumThreads(self._opencv_before)
            self._opencv_before = None


class RecordWriter:
    """Serializes and writes results in its own thread, in order, so the inference thread only infers.

    `deliver(result)` runs in the writer thread (to_dict, json, write, stats: ~0.1 ms a frame that would
    otherwise sit between two invokes). The queue is bounded: a slow reader of stdout slows the stream down
    (a live camera then drops more frames) instead of filling memory. A failure in `deliver` (e.g. a closed
    pipe) is re-raised in the caller's thread by the next `put` or by `close`.

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


def classify_stream(
    frames,
    classifier: Classifier,
    *,
    live: bool,
    should_stop=lambda: False,
    finish: bool = True,
    warm_up: bool = False,
) -> Iterator[FrameResult] | Iterator[Inferred]:
    """Frames of a video or camera through a StreamPrefetcher; inference here, in the calling thread.

    Files give every frame in order; live sources give the newest frame each time (drops counted). When
    `should_stop()` turns true, the frame in flight is finished and yielded, then the stream ends.
    `finish=False` yields Inferred items, to be postprocessed elsewhere with `classifier.finish`.
    `warm_up=True` warms the interpreter before capture starts (the CLI's streams do it themselves, before
    their --duration clock; the image path does not: one photo from cron should not pay 0.2 s).
    """
    if warm_up:  # before capture starts: a live camera's frames are not dropped while the model warms up
        classifier.warm_up()
    streaming = StreamPrefetcher(frames, classifier, live=live)
    for item in streaming.items(should_stop):
        inferred = classifier.run(item)
        yield classifier.finish(inferred) if finish else inferred


@dataclass
class OpenedModel:
    classifier: Classifier
    resolved: object  # zoo.ResolvedModel
    warnings: list[str]
    labels_source: str


def open_model(
    model: str | None,
    *,
    labels_file: str | None = None,
    threads: int | None = None,
    delegate: str = "auto",
    device: str = "",
    delegate_lib: str | None = None,
    resize: str = "crop",
    input_range: tuple[float, float] | None = None,
    top_k: int = 5,
    threshold: float = 0.0,
) -> OpenedModel:
    """Resolve a zoo name or path, choose where it runs, build the one interpreter, find the labels.

    auto: an Edge TPU is present (or --device names one, or the file is compiled for the TPU) and there is an
    Edge TPU model -> the TPU; otherwise the CPU file with XNNPACK, and the record's delegate says why.
    --delegate-lib stands in for libedgetpu on the TPU path, and is a plain external delegate otherwise.
    """
    from edgenet import edgetpu, zoo
    from edgenet.errors import DeviceError, ModelError, UsageError
    from edgenet.labels import labels_for_model
    from edgenet.runtime import DELEGATES, default_threads, inspect_model_file, load_external_delegate

    if delegate not in DELEGATES:
        raise UsageError(f"unknown --delegate {delegate!r}; choose one of {', '.join(DELEGATES)}")
    if resize not in RESIZE_POLICIES:
        raise UsageError(f"unknown --resize {resize!r}; choose one of {', '.join(RESIZE_POLICIES)}")
    device = (device or "").strip()
    edgetpu.parse_device(device)  # a bad device string is a usage error whether or not a TPU is around
    if delegate in ("cpu", "xnnpack") and (device or delegate_lib):
        option = "--device" if device else "--delegate-lib"
        raise UsageError(f"{option} does not go with --delegate {delegate}; use --delegate auto or edgetpu")
    if delegate_lib and not os.path.isfile(delegate_lib):
        raise DeviceError(
            f"--delegate-lib {delegate_lib}: no such file; give the path of a TFLite delegate .so"
        )

    name = model or zoo.default_model()
    spec = zoo.catalog().get(name)
    given = zoo.resolve(name) if spec is None else None  # a path: missing files and unknown names fail here
    given_file = inspect_model_file(given.path) if given is not None else None  # Engine reuses it
    file_needs_tpu = given_file is not None and given_file.needs_edgetpu
    has_twin = spec is not None and spec.edgetpu is not None
    warnings: list[str] = []
    why = None  # why an auto run did not go to the TPU

    if delegate == "edgetpu" or device or file_needs_tpu:
        target = "edgetpu"
    elif delegate == "auto" and (has_twin or delegate_lib is None):
        tpus = edgetpu.find_edgetpus()
        if tpus and has_twin:
            target = "edgetpu"
        else:
            target = "external" if delegate_lib else "cpu"
            if tpus and spec is not None:
                why = f"{spec.name} has no Edge TPU twin"
                twins = ", ".join(s.name for s in zoo.catalog().values() if s.edgetpu and not s.latency_only)
                warnings.append(
                    f"an Edge TPU is present but {spec.name} has no Edge TPU model: running it "
                    f"on the CPU (models with one: {twins})"
                )
            elif tpus:
                why = f"{given.name} is not compiled for the Edge TPU"
            elif has_twin:
                why = "no Edge TPU found"
                if "edgetpu" in f"{spec.name} {spec.family}".lower().replace("-", ""):
                    warnings.append(
                        f"no Edge TPU found: running the CPU version of {spec.name} "
                        "(--delegate edgetpu makes this an error)"
                    )
    else:
        target = "external" if delegate_lib else "cpu"

    external = None
    label = None
    if target == "edgetpu":
        if given is not None and not file_needs_tpu:
            raise ModelError(
                f"{given.name} is not compiled for the Edge TPU (no edgetpu-custom-op); compile "
                "it with edgetpu_compiler, use a zoo model with an Edge TPU twin, or run it "
                "with --delegate xnnpack"
            )
        if spec is not None and not has_twin:
            raise ModelError(
                f"model {spec.name} has no Edge TPU twin; run it on the CPU (--delegate "
                "xnnpack) or pick one with an Edge TPU model (edgenet models list)"
            )
        wanted_by = (
            "--delegate edgetpu"
            if delegate == "edgetpu"
            else f"--device {device}"
            if device
            else f"{given.name} (compiled for the Edge TPU)"
            if file_needs_tpu
            else spec.name
        )
        chosen = edgetpu.require_tpu(device, wanted_by=wanted_by)
        library = delegate_lib or edgetpu.require_library()
        resolved = given if given is not None else zoo.resolve(name, edgetpu=True)
        options = {"device": device} if device else None
        lib_name = os.path.basename(library) if delegate_lib else edgetpu.LIBEDGETPU
        external = load_external_delegate(library, options, name=lib_name, probe_model=str(resolved.path))
        label = "edgetpu"
        if chosen.usb2:
            warnings.append(
                f"the Edge TPU at {chosen.path} runs at USB 2 speed ({chosen.speed} Mb/s): "
                "expect roughly half the throughput; use a USB 3 port and cable"
            )
    else:
        resolved = given if given is not None else zoo.resolve(name)
        if target == "external":
            external = load_external_delegate(delegate_lib, None, probe_model=str(resolved.path))
            label = f"external ({os.path.basename(delegate_lib)})"

    def build(count: int, file_info=given_file) -> Engine:
        return Engine(
            resolved.path,
            threads=count,
            delegate="auto" if external is not None else delegate,
            external_delegate=external,
            delegate_label=label,
            value_range=input_range,
            file_info=file_info,
        )

    engine = build(threads or default_threads(pipeline=True))
    builtin = engine.delegate.startswith("cpu") and engine.backend.name == "ai_edge_litert"
    if builtin and engine.threads > 1:
        # ai-edge-litert's builtin kernels are pathological with 2+ threads (V1-0.25: 5-13 ms vs 0.7 ms)
        how = (
            "--delegate cpu" if delegate == "cpu" else "the builtin kernels (XNNPACK did not take the model)"
        )
        if threads is None:
            engine = build(1, engine.file)
            warnings.append(
                f"{how}: using 1 thread, much faster than several with ai-edge-litert's builtin "
                "kernels (measured 0.7 ms vs 5-13 ms on V1-0.25)"
            )
        else:
            warnings.append(
                f"{how} with more than one thread is often much slower than one thread with "
                "ai-edge-litert (measured 5-13 ms vs 0.7 ms on V1-0.25): try --threads 1"
            )
    if why and external is None and engine.delegate in ("xnnpack", "cpu"):
        engine.delegate = f"{engine.delegate} ({why})"
    spec = resolved.spec
    labels, labels_source = labels_for_model(
        resolved.path, engine.output.classes, labels_file, spec.labels if spec else None
    )
    if labels is not None and len(labels) != engine.output.classes:
        warnings.append(
            f"the labels ({labels_source}) have {len(labels)} entries but the model has "
            f"{engine.output.classes} classes: classes without a label show their index; check --labels"
        )
    if spec is not None and spec.latency_only:
        warnings.append(f"{spec.name} has random weights (latency only): its predictions mean nothing")
    classifier = Classifier(
        engine, model_name=resolved.name, labels=labels, resize=resize, top_k=top_k, threshold=threshold
    )
    classifier.latency_only = bool(spec is not None and spec.latency_only)
    return OpenedModel(
        classifier=classifier, resolved=resolved, warnings=warnings, labels_source=labels_source
    )
