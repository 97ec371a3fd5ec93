"""The loop: decode and preprocess in a worker thread, invoke in the calling thread, timings per stage.

One interpreter per model, built once (`Classifier`), reused for every frame. The worker keeps a small
bounded queue filled so that decoding the next image overlaps inference on the current one.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from edgenet.classify import Prediction, predictions
from edgenet.errors import EdgenetError
from edgenet.imaging import RESIZE_POLICIES, prepare
from edgenet.runtime import Engine
from edgenet.sources import Frame

PREFETCH_DEPTH = 4


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

    def to_dict(self) -> dict:
        if self.error is not None:
            record = {"source": self.source, "frame": self.frame, "model": self.model, "error": self.error,
                      "time": self.time}
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
        return record


@dataclass
class Prepared:
    """A frame after the worker's stages: the input tensor, or the error."""

    frame: Frame
    tensor: np.ndarray | None
    preprocess_ms: float
    error: str | None


class Classifier:
    """A model ready to classify frames: engine + labels + pre/post-processing settings."""

    def __init__(self, engine: Engine, *, model_name: str, labels: list[str] | None, resize: str = "crop",
                 top_k: int = 5, threshold: float = 0.0):
        if resize not in RESIZE_POLICIES:
            raise ValueError(f"resize policy must be one of {RESIZE_POLICIES}")
        self.engine = engine
        self.model_name = model_name
        self.labels = labels
        self.resize = resize
        self.top_k = top_k
        self.threshold = threshold

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
        frame = item.frame
        captured = utc_timestamp(frame.captured) if frame.captured is not None else None
        if item.error is not None:
            return FrameResult(source=frame.source, frame=frame.index, model=self.model_name,
                               delegate=self.engine.delegate, error=item.error, time=utc_timestamp(),
                               captured=captured)
        started = time.perf_counter_ns()
        raw = self.engine.run(item.tensor)
        inferred = time.perf_counter_ns()
        top = predictions(raw, self.engine.output, self.labels, self.top_k, self.threshold)
        done = time.perf_counter_ns()
        inference_ms = (inferred - started) / 1e6
        postprocess_ms = (done - inferred) / 1e6
        latency = {
            "decode": round(frame.decode_ms, 3),
            "preprocess": round(item.preprocess_ms, 3),
            "inference": round(inference_ms, 3),
            "postprocess": round(postprocess_ms, 3),
            "total": round(frame.decode_ms + item.preprocess_ms + inference_ms + postprocess_ms, 3),
        }
        return FrameResult(
            source=frame.source, frame=frame.index, model=self.model_name, delegate=self.engine.delegate,
            top_k=tuple(top), latency_ms=latency, time=utc_timestamp(), captured=captured,
            dropped=frame.dropped if frame.captured is not None else None,
        )


_DONE = object()


class Prefetcher:
    """Runs `frames` and `classifier.prepare` in a worker thread, handing results over a bounded queue."""

    def __init__(self, frames: Iterator[Frame], classifier: Classifier, depth: int = PREFETCH_DEPTH):
        self._frames = frames
        self._classifier = classifier
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="edgenet-prefetch", daemon=True)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for frame in self._frames:
                if self._stop.is_set() or not self._put(self._classifier.prepare(frame)):
                    break
        except BaseException as exc:  # handed to the consumer, re-raised there
            self._failure = exc
        finally:
            self._put(_DONE)

    def __iter__(self) -> Iterator[Prepared]:
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is _DONE:
                    break
                yield item
            if self._failure is not None:
                raise self._failure
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        close = getattr(self._frames, "close", None)
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        if close is not None and not self._thread.is_alive():
            try:
                close()
            except Exception:
                pass


def classify_frames(frames: Iterator[Frame], classifier: Classifier, *, prefetch: bool = True) -> Iterator[FrameResult]:
    """Every frame in, one FrameResult out, in order."""
    if not prefetch:
        for frame in frames:
            yield classifier.infer(classifier.prepare(frame))
        return
    for item in Prefetcher(frames, classifier):
        yield classifier.infer(item)


@dataclass
class OpenedModel:
    classifier: Classifier
    resolved: object  # zoo.ResolvedModel
    warnings: list[str]
    labels_source: str


def open_model(model: str | None, *, labels_file: str | None = None, threads: int | None = None,
               delegate: str = "auto", device: str = "", delegate_lib: str | None = None,
               resize: str = "crop", input_range: tuple[float, float] | None = None, top_k: int = 5,
               threshold: float = 0.0) -> OpenedModel:
    """Resolve a zoo name or path, choose CPU or Edge TPU, build the one interpreter, find the labels."""
    from edgenet import edgetpu, zoo
    from edgenet.errors import DeviceError, UsageError
    from edgenet.labels import labels_for_model
    from edgenet.runtime import DELEGATES, inspect_model_file, load_external_delegate

    if delegate not in DELEGATES:
        raise UsageError(f"unknown --delegate {delegate!r}; choose one of {', '.join(DELEGATES)}")
    if resize not in RESIZE_POLICIES:
        raise UsageError(f"unknown --resize {resize!r}; choose one of {', '.join(RESIZE_POLICIES)}")
    warnings: list[str] = []
    external = None
    label = None
    if delegate_lib:
        resolved = zoo.resolve(model)
        external = load_external_delegate(delegate_lib, {"device": device} if device else None)
        label = f"external ({os.path.basename(delegate_lib)})"
    else:
        want_tpu = delegate == "edgetpu"
        name = model or zoo.default_model()
        spec = zoo.catalog().get(name)
        path_is_tpu_file = spec is None and name.endswith("_edgetpu.tflite")
        if spec is None and zoo.looks_like_path(name) and os.path.exists(name):
            path_is_tpu_file = inspect_model_file(name).needs_edgetpu
        if delegate == "auto" and (path_is_tpu_file or (spec is not None and spec.edgetpu is not None)):
            tpus = edgetpu.find_edgetpus()
            if tpus and edgetpu.find_library():
                want_tpu = True
            elif path_is_tpu_file:
                want_tpu = True  # fails below with the reason: no TPU, or no libedgetpu
            elif tpus:
                why = "libedgetpu not installed"
                warnings.append(f"an Edge TPU is plugged in but {edgetpu.LIBEDGETPU} is missing: running "
                                f"{name} on the CPU (edgenet doctor says how to install it)")
            else:
                why = "no Edge TPU found"
                warnings.append(f"no Edge TPU found: running {name} on the CPU with XNNPACK")
            if not want_tpu:
                label = f"xnnpack ({why})"
        if want_tpu:
            tpus = edgetpu.find_edgetpus()
            chosen = edgetpu.select(device, tpus)
            if chosen is None:
                looked = "USB 1a6e:089a / 18d1:9302 and /dev/apex_N"
                what = f"matching --device {device!r}" if device and tpus else "found"
                raise DeviceError(f"no Edge TPU {what} (looked for {looked}); plug one in, check `edgenet "
                                  "devices`, or run on the CPU with --delegate xnnpack")
            library = edgetpu.require_library()
            resolved = zoo.resolve(model, edgetpu=not path_is_tpu_file and spec is not None)
            external = load_external_delegate(library, {"device": device} if device else None)
            label = "edgetpu"
        else:
            resolved = zoo.resolve(model)
    engine = Engine(resolved.path, threads=threads, delegate=delegate if delegate != "edgetpu" else "auto",
                    external_delegate=external, delegate_label=label, value_range=input_range)
    if label and external is None and engine.delegate == "xnnpack":
        engine.delegate = label
    if delegate == "cpu" and (threads or 1) > 1 and engine.backend.name == "ai_edge_litert":
        warnings.append("--delegate cpu with more than one thread is often much slower than one thread "
                        "with ai-edge-litert's builtin kernels (measured 5-13 ms vs 0.7 ms on V1-0.25)")
    spec = resolved.spec
    labels, labels_source = labels_for_model(resolved.path, engine.output.classes, labels_file,
                                             spec.labels if spec else None)
    if spec is not None and spec.latency_only:
        warnings.append(f"{spec.name} has random weights (latency only): its predictions mean nothing")
    classifier = Classifier(engine, model_name=resolved.name, labels=labels, resize=resize, top_k=top_k,
                            threshold=threshold)
    return OpenedModel(classifier=classifier, resolved=resolved, warnings=warnings, labels_source=labels_source)
