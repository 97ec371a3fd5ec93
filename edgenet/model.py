"""Opening a model: the zoo name or path resolved, where it runs decided (placement) and built
(delegates), its labels found, and its task made. `open_model` is also the library's entry point:

    from edgenet import open_model
    model = open_model("v2")
    record = model.process("cat.jpg")     # or a HxWx3 BGR numpy frame; the same record as the CLI's
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from dataclasses import field

import numpy as np

from edgenet.choices import Delegate, choose
from edgenet.errors import DeviceError, ModelError
from edgenet.lightclass import lightclass
from edgenet.tasks.classification import ClassifyOptions


@lightclass
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
    folder: bool = False  # a folder run: on 4+ cores half of them decode (runtime.threads_for)


@lightclass
class ModelInfo:
    """What every record says of the model."""

    name: str
    delegate: str  # the kind: cpu, xnnpack, edgetpu, external
    delegate_reason: str | None = None
    latency_only: bool = False


@lightclass(frozen=False)
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


def open_model(request: ModelRequest | str | None = None, task=None, *, should_stop=None, **options) -> Model:
    """Resolve, place, build and label a model. `request` may be a zoo name or path with ModelRequest's
    fields as keywords (the library's short form: open_model("v2", threads=1)). `task`: ClassifyOptions or
    DetectOptions (None: what the model is). `should_stop()` true ends a download of it (Interrupted)."""
    from edgenet import zoo
    from edgenet.delegates import build_engine
    from edgenet.runtime import check_threads, default_threads
    from edgenet.tensors import inspect_model_file

    if not isinstance(request, ModelRequest):
        request = ModelRequest(model=request, **options)
    delegate = choose(Delegate, request.delegate, "--delegate")
    check_threads(request.threads)
    name = request.model or zoo.default_model(getattr(task, "task", "classify"))
    spec = zoo.catalog().get(name)
    given = zoo.resolve(name, should_stop=should_stop) if spec is None else None  # a missing path fails here
    given_file = inspect_model_file(given.path) if given is not None else None  # the engine reuses it
    task = _task_for(task, spec, given, given_file)
    if getattr(task, "threshold", 0.0) is None and spec is not None and spec.threshold is not None:
        task = dataclasses.replace(task, threshold=spec.threshold)  # the detector's own default
    placement = _place(request, delegate, name, spec, given_file)
    resolved = given or zoo.resolve(name, edgetpu=placement.twin, should_stop=should_stop)
    if given is not None and placement.twin:  # X.tflite given, its X_edgetpu.tflite runs on the TPU
        resolved, given_file = _edgetpu_sibling(given), None
    threads = request.threads or default_threads(pipeline=request.pipeline, folder=request.folder)
    engine = build_engine(
        resolved.path, placement, threads=threads, value_range=request.input_range, file_info=given_file
    )
    warnings = list(placement.warnings) + _host_warnings(engine, request)
    engine = _builtin_threads(engine, request, warnings, build_engine)
    labels, labels_source = task.labels(resolved, request.labels, engine, warnings)
    if resolved.spec is not None and resolved.spec.latency_only:  # as built: a local build may have weights
        warnings.append(
            f"{resolved.spec.name} has random weights (latency only): its predictions mean nothing"
        )
    opener = functools.partial(open_model, should_stop=should_stop)
    built = task.build(engine, labels, opener)  # a detector may open a classifier for its crops
    warnings += getattr(built, "warnings", [])
    return Model(
        name=resolved.name,
        path=str(resolved.path),
        engine=engine,
        task=built,
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
    path = str(given_file.path) if given_file is not None else ""
    wanted = PlacementRequest(
        model=spec.name if spec is not None else os.path.basename(name),
        delegate=delegate,
        device=(request.device or "").strip(),
        delegate_lib=request.delegate_lib,
        delegate_options=tuple(request.delegate_options),
        zoo=spec is not None,
        has_twin=spec.edgetpu is not None if spec is not None else _sibling(path, "_edgetpu") is not None,
        cpu_version=_sibling(path, "") if given_file is not None and given_file.needs_edgetpu else None,
        file_needs_tpu=given_file is not None and given_file.needs_edgetpu,
        twins=tuple(s.name for s in zoo.catalog().values() if s.edgetpu and not s.latency_only),
    )
    return place(wanted, gather_facts(wanted))


def _host_warnings(engine, request: ModelRequest) -> list[str]:
    """What makes this run slower than it could be, said once: more threads than cores, the old backend."""
    from edgenet.host import usable_cores

    found = []
    cores = usable_cores()
    if request.threads and request.threads > cores:
        found.append(
            f"--threads {request.threads} is more than the {cores} usable cores: usually slower, not faster"
        )
    if engine.backend.name == "tflite_runtime" and engine.placement.kind == "cpu":
        found.append(
            "tflite-runtime runs these models on its reference kernels, 10-20x slower than ai-edge-litert "
            "with XNNPACK: pip install ai-edge-litert where it has wheels (64-bit Arm, x86-64)"
        )
    return found


def _sibling(path: str, suffix: str) -> str | None:
    """X_edgetpu.tflite beside X.tflite (suffix "_edgetpu"), or X.tflite beside X_edgetpu.tflite (suffix
    ""): the other half of a pair `edgenet learn` writes (and edgetpu_compiler makes), if it is there."""
    if not path.endswith(".tflite"):
        return None
    stem = path[: -len(".tflite")]
    if suffix:
        candidate = f"{stem}{suffix}.tflite" if not stem.endswith("_edgetpu") else None
    else:
        candidate = f"{stem[: -len('_edgetpu')]}.tflite" if stem.endswith("_edgetpu") else None
    return candidate if candidate and os.path.isfile(candidate) else None


def _edgetpu_sibling(given):
    from pathlib import Path

    from edgenet.zoo import ResolvedModel

    twin = Path(_sibling(str(given.path), "_edgetpu"))
    return ResolvedModel(path=twin, name=given.name, spec=None, edgetpu=True)


def _builtin_threads(engine, request: ModelRequest, warnings: list, build):
    """ai-edge-litert's builtin kernels are pathological with 2+ threads (measured: docs/performance.md,
    "edgenet bench"): one thread when none was asked for, a warning when several were."""
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


def _task_for(task, spec, given, given_file):
    """The task options to use: the ones given, refused in one line when the model is of the other kind;
    without them, the model's own kind (the catalog's task, or a detection head in the file)."""
    detector = (spec.task == "detect") if spec is not None else bool(given_file and given_file.detection)
    name = spec.name if spec is not None else given.name
    if task is None:
        if not detector:
            return ClassifyOptions()
        from edgenet.tasks.detection import DetectOptions

        return DetectOptions()
    if detector and task.task == "classify":
        raise ModelError(f"{name} is an object detector (SSD), not a classifier; use edgenet detect")
    if not detector and task.task == "detect" and (spec is not None or given_file is not None):
        raise ModelError(f"{name} is an image classifier, not an object detector; use edgenet classify")
    return task
