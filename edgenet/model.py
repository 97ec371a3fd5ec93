"""Opening a model: the zoo name or path resolved, where it runs decided (placement) and built
(delegates), its labels found, and its task made. `open_model` is also the library's entry point:

    from edgenet import open_model
    model = open_model("v2")
    record = model.process("cat.jpg")     # or a HxWx3 BGR numpy frame; the same record as the CLI's
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from edgenet.choices import Delegate, Resize, choose
from edgenet.errors import DeviceError, ModelError


@dataclass(frozen=True)
class ModelRequest:
    """Which model, and where to run it."""

    model: str | None = None  # zoo name or .tflite path (None: the default model)
    labels: str | None = None  # a labels file for a model given by path
    threads: int | None = None  # None: the default for a pipeline
    delegate: Delegate = Delegate.auto
    device: str = ""
    delegate_lib: str | None = None
    delegate_options: tuple[tuple[str, str], ...] = ()
    input_range: tuple[float, float] | None = None
    pipeline: bool = True  # decoding runs beside inference (classify, eval): one thread fewer by default


@dataclass(frozen=True)
class ClassifyOptions:
    """The classify task's options; `build` makes the task for an engine."""

    resize: Resize = Resize.crop
    top_k: int = 5
    threshold: float = 0.0

    def build(self, engine, labels):
        from edgenet.tasks.classification import Classification

        return Classification(engine, labels, resize=self.resize, top_k=self.top_k, threshold=self.threshold)

    def classes(self, engine) -> int:
        from edgenet.tasks.classification import output_spec

        return output_spec(engine).classes


@dataclass(frozen=True)
class ModelInfo:
    """What every record says of the model."""

    name: str
    delegate: str  # the kind: cpu, xnnpack, edgetpu, external
    delegate_reason: str | None = None
    latency_only: bool = False


@dataclass
class Model:
    """A model ready to run frames: one engine (one interpreter), its labels and its task."""

    name: str
    path: str
    engine: object  # edgenet.runtime.Engine
    task: object  # e.g. edgenet.tasks.classification.Classification
    labels: list[str] | None
    labels_source: str
    spec: object | None  # the zoo's ModelSpec, None for a file given by path
    warnings: list[str] = field(default_factory=list)

    @property
    def placement(self):
        return self.engine.placement

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.name,
            delegate=self.placement.kind,
            delegate_reason=self.placement.reason,
            latency_only=bool(self.spec is not None and self.spec.latency_only),
        )

    def describe(self) -> str:
        """Which model runs where, and on what: the end of every summary line."""
        engine = self.engine
        where = self.placement.kind
        if self.placement.kind == "external":
            where += f" ({self.placement.library_name})"
        elif self.placement.reason:
            where += f" ({self.placement.reason})"
        backend = engine.backend
        return f"{self.name} on {where}, {engine.threads} thread(s), {backend.name} {backend.version}"

    def process(self, image, source: str = "") -> dict:
        """One image (a path, or a HxWx3 uint8 BGR array as OpenCV gives) -> its record, synchronously."""
        from edgenet.run.records import error_record, frame_record
        from edgenet.sources import Frame, image_frames

        if isinstance(image, np.ndarray):
            frame = Frame(source=source or "array", index=0, image=image, decode_ms=0.0)
        else:
            frame = next(image_frames([str(image)]))
        if frame.error is not None:
            return error_record(frame, self.info, frame.error, time.time())
        started = time.perf_counter_ns()
        tensor, context = self.task.prepare(frame.image)
        preprocess_ms = (time.perf_counter_ns() - started) / 1e6
        started = time.perf_counter_ns()
        outputs, stages = self.task.infer(tensor, context)
        inference_ms = (time.perf_counter_ns() - started) / 1e6
        done = time.time()
        started = time.perf_counter_ns()
        fields = self.task.finish(outputs, context)
        latency = {"preprocess": preprocess_ms, "inference": inference_ms, **stages}
        latency["postprocess"] = (time.perf_counter_ns() - started) / 1e6
        return frame_record(frame, self.info, fields, latency, done)


def open_model(request: ModelRequest | str | None = None, task=None, **options) -> Model:
    """Resolve, place, build and label a model. `request` may be a zoo name or path with ModelRequest's
    fields as keywords (the library's short form: open_model("v2", threads=1))."""
    from edgenet import zoo
    from edgenet.delegates import build_engine
    from edgenet.runtime import check_threads, default_threads
    from edgenet.tensors import inspect_model_file

    if not isinstance(request, ModelRequest):
        request = ModelRequest(model=request, **options)
    task = task or ClassifyOptions()
    delegate = choose(Delegate, request.delegate, "--delegate")
    check_threads(request.threads)
    name = request.model or zoo.default_model()
    spec = zoo.catalog().get(name)
    given = zoo.resolve(name) if spec is None else None  # a path: missing files and unknown names fail here
    given_file = inspect_model_file(given.path) if given is not None else None  # the engine reuses it
    placement = _place(request, delegate, name, spec, given_file)
    resolved = given if given is not None else zoo.resolve(name, edgetpu=placement.twin)
    if given_file is not None and given_file.detection and isinstance(task, ClassifyOptions):
        raise ModelError(f"{given.name} is an object detector (SSD), not a classifier; use edgenet detect")
    threads = request.threads or default_threads(pipeline=request.pipeline)
    engine = build_engine(
        resolved.path, placement, threads=threads, value_range=request.input_range, file_info=given_file
    )
    warnings = list(placement.warnings)
    engine = _builtin_threads(engine, request, warnings, build_engine)
    labels, labels_source = _labels(resolved, request, task.classes(engine), warnings)
    if spec is not None and spec.latency_only:
        warnings.append(f"{spec.name} has random weights (latency only): its predictions mean nothing")
    return Model(
        name=resolved.name,
        path=str(resolved.path),
        engine=engine,
        task=task.build(engine, labels),
        labels=labels,
        labels_source=labels_source,
        spec=resolved.spec,
        warnings=warnings,
    )


def _place(request: ModelRequest, delegate: Delegate, name: str, spec, given_file):
    from edgenet import zoo
    from edgenet.delegates import gather_facts
    from edgenet.placement import PlacementRequest, place

    if request.delegate_lib and not os.path.isfile(request.delegate_lib):
        raise DeviceError(
            f"--delegate-lib {request.delegate_lib}: no such file; give the path of a TFLite delegate .so"
        )
    wanted = PlacementRequest(
        model=spec.name if spec is not None else os.path.basename(name),
        delegate=delegate,
        device=(request.device or "").strip(),
        delegate_lib=request.delegate_lib,
        delegate_options=tuple(request.delegate_options),
        zoo=spec is not None,
        has_twin=spec is not None and spec.edgetpu is not None,
        file_needs_tpu=given_file is not None and given_file.needs_edgetpu,
        twins=tuple(s.name for s in zoo.catalog().values() if s.edgetpu and not s.latency_only),
    )
    return place(wanted, gather_facts(wanted))


def _builtin_threads(engine, request: ModelRequest, warnings: list, build):
    """ai-edge-litert's builtin kernels are pathological with 2+ threads (measured: README, "Threads"):
    one thread when none was asked for, a warning when several were."""
    if engine.placement.kind != "cpu" or engine.backend.name != "ai_edge_litert" or engine.threads <= 1:
        return engine
    how = (
        "--delegate cpu"
        if request.delegate == Delegate.cpu
        else "the builtin kernels (XNNPACK did not take the model)"
    )
    if request.threads is not None:
        warnings.append(
            f"{how} with more than one thread is often much slower than one thread with "
            "ai-edge-litert (measured 5-13 ms vs 0.7 ms on V1-0.25): try --threads 1"
        )
        return engine
    warnings.append(
        f"{how}: using 1 thread, much faster than several with ai-edge-litert's builtin "
        "kernels (measured 0.7 ms vs 5-13 ms on V1-0.25)"
    )
    return build(
        engine.model_path, engine.placement, threads=1, value_range=request.input_range, file_info=engine.file
    )


def _labels(resolved, request: ModelRequest, classes: int, warnings: list):
    from edgenet.labels import labels_for_model

    spec = resolved.spec
    labels, source = labels_for_model(resolved.path, classes, request.labels, spec.labels if spec else None)
    if labels is not None and len(labels) != classes:
        warnings.append(
            f"the labels ({source}) have {len(labels)} entries but the model has "
            f"{classes} classes: classes without a label show their index; check --labels"
        )
    return labels, source
