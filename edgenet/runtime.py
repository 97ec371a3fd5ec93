"""The only module that imports a TFLite backend.

Backend order: ai_edge_litert -> tflite_runtime -> tensorflow.lite (or EDGENET_BACKEND to force one).
`Engine` owns one interpreter for one model, created once and reused for every frame.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from edgenet.errors import DeviceError, ModelError, UsageError, one_line
from edgenet.metadata import input_normalization

BACKENDS = ("ai_edge_litert", "tflite_runtime", "tensorflow")
DELEGATES = ("auto", "cpu", "xnnpack", "edgetpu")

# Ops that only reshape or change the number format between the last real op and the output.
_PASS_THROUGH_OPS = {"QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE"}
_PROBABILITY_OPS = {"SOFTMAX", "LOGISTIC"}
_QUANT_LIMITS = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}


@dataclass(frozen=True)
class Backend:
    name: str  # "ai_edge_litert", "tflite_runtime", "tensorflow"
    version: str
    interpreter_class: type
    load_delegate: object
    op_resolver_type: object | None  # None when the backend has no OpResolverType


@dataclass(frozen=True)
class InputSpec:
    """What the model wants as input: shape, number format, and the real-valued range of a pixel."""

    height: int
    width: int
    channels: int
    dtype: str  # "uint8", "int8", "float32"
    scale: float  # quantization scale (0.0 for float inputs)
    zero_point: int
    value_range: tuple[float, float]  # real value of pixel 0 and pixel 255
    range_source: str  # "quantization", "metadata", "quantize-op", "default", "override"
    mean: tuple[float, ...] = ()  # range_source "metadata": (pixel - mean) / std, per channel
    std: tuple[float, ...] = ()

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


@dataclass(frozen=True)
class OutputSpec:
    classes: int
    dtype: str
    scale: float
    zero_point: int
    probabilities: bool  # False: the graph ends in logits and scores need a softmax


@dataclass(frozen=True)
class ModelFileInfo:
    path: str
    size: int
    needs_edgetpu: bool
    custom_ops: tuple[str, ...] = field(default_factory=tuple)
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (mean, std) from metadata


@lru_cache(maxsize=4)
def load_backend(preferred: str | None = None) -> Backend:
    """Import the first available backend. `preferred` (or EDGENET_BACKEND) forces one."""
    preferred = preferred or os.environ.get("EDGENET_BACKEND") or None
    if preferred and preferred not in BACKENDS:
        raise UsageError(f"unknown backend {preferred!r}; choose one of {', '.join(BACKENDS)}")
    order = (preferred,) if preferred else BACKENDS
    failures = []
    for name in order:
        try:
            backend = _import_backend(name)
        except Exception as exc:  # ImportError, or numpy 2 breaking an old wheel (AttributeError, ...)
            failures.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        return backend
    hint = "pip install ai-edge-litert"
    if any("numpy" in f.lower() or "_ARRAY_API" in f for f in failures):
        hint += " (tflite-runtime 2.14 needs numpy < 2: pip install 'numpy<2')"
    raise DeviceError(f"no TFLite backend could be imported ({'; '.join(failures)}); {hint}")


def _import_backend(name: str) -> Backend:
    if name == "ai_edge_litert":
        module = importlib.import_module("ai_edge_litert.interpreter")
        version = _dist_version("ai-edge-litert")
    elif name == "tflite_runtime":
        module = importlib.import_module("tflite_runtime.interpreter")
        version = _dist_version("tflite-runtime")
    else:
        tf = importlib.import_module("tensorflow")
        module = tf.lite
        version = tf.__version__
    return Backend(
        name=name,
        version=version,
        interpreter_class=module.Interpreter,
        load_delegate=getattr(module, "load_delegate", None) or module.experimental.load_delegate,
        op_resolver_type=getattr(module, "OpResolverType", None)
        or getattr(getattr(module, "experimental", None), "OpResolverType", None),
    )


def _dist_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


MAX_DEFAULT_THREADS = 4


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads(pipeline: bool = False) -> int:
    """Inference threads when none are asked for: the usable cores, at most 4; in a pipeline (classify,
    eval, streams) one core fewer, because decoding and capture run beside inference in their own thread.

    Measured with ai-edge-litert 2.3.0 on a 2-core x86-64 box, same run: invoke alone (bench), v2 p50 1 thread
    2.04 ms, 2 threads 1.11 ms, 4 threads 1.26 ms (more threads than cores loses); `classify` over the shared
    photos (scripts/compare_loop.py), v2: 1 thread 4.02 ms per image, 2 threads 5.18 ms.
    """
    cores = usable_cores() - (1 if pipeline else 0)
    return max(1, min(MAX_DEFAULT_THREADS, cores))


def decode_threads(inference_threads: int | None) -> int:
    """Threads for a video decoder running beside inference: the cores inference leaves free, at least 1."""
    return max(1, usable_cores() - max(1, inference_threads or 1))


def inspect_model_file(path: str | os.PathLike) -> ModelFileInfo:
    """Refuse what cannot be a loadable TFLite model, before the runtime sees it."""
    path = Path(path)
    if not path.exists():
        raise ModelError(
            f"model file not found: {path}; give a zoo name (edgenet models list) or a .tflite path"
        )
    if path.is_dir():
        raise ModelError(f"model path is a folder: {path}; give a .tflite file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model {path}: {exc.strerror}; check its permissions") from None
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise ModelError(
            f"{path} is not a TFLite model (no TFL3 flatbuffer header); give a .tflite file "
            "(edgenet models list shows the known ones)"
        )
    if b"ethos-u" in data:
        raise ModelError(
            f"{path} is compiled for an Arm Ethos-U NPU (Vela) and cannot run on a CPU or an Edge TPU; "
            "use the model before Vela compilation"
        )
    needs_edgetpu = b"edgetpu-custom-op" in data
    return ModelFileInfo(
        path=str(path),
        size=len(data),
        needs_edgetpu=needs_edgetpu,
        custom_ops=("edgetpu-custom-op",) if needs_edgetpu else (),
        normalization=input_normalization(data),
    )


def _ops_details(interpreter) -> list:
    """The interpreter's op list, read once: it is fixed after allocate_tensors, and reading it costs ~1.5 ms
    (V2), which start-up paid two to four times (delegate partitions, output and input checks, bench)."""
    ops = getattr(interpreter, "_edgenet_ops", None)
    if ops is None:
        ops = interpreter._get_ops_details()
        with contextlib.suppress(AttributeError):
            interpreter._edgenet_ops = ops
    return ops


def _float_range_from_quantize(interpreter, input_index: int) -> tuple[float, float] | None:
    """A float input consumed by a QUANTIZE op: that op's quantization tells the range the model expects."""
    try:
        ops = _ops_details(interpreter)
        tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    except Exception:
        return None
    for op in ops:
        if op["op_name"] == "QUANTIZE" and input_index in list(op["inputs"]):
            out = tensors.get(int(op["outputs"][0]))
            if out is None:
                return None
            scale, zero_point = out["quantization"]
            limits = _QUANT_LIMITS.get(np.dtype(out["dtype"]))
            if not scale or limits is None:
                return None
            lo, hi = (scale * (q - zero_point) for q in limits)
            return (round(lo, 3), round(hi, 3))
    return None


def _ends_in_probabilities(interpreter, output_index: int) -> bool:
    """Walk back from the output through reshapes and (de)quantization to the op that made it."""
    try:
        ops = _ops_details(interpreter)
    except Exception:
        return True
    producers = {}
    for op in ops:
        for t in op["outputs"]:
            producers.setdefault(int(t), op)
    tensor = output_index
    for _ in range(len(ops) + 1):
        op = producers.get(tensor)
        if op is None:
            return True  # unknown graph (e.g. Edge TPU custom op): trust it
        name = op["op_name"]
        if name in _PROBABILITY_OPS:
            return True
        if name not in _PASS_THROUGH_OPS:
            return name == "edgetpu-custom-op"
        tensor = int(op["inputs"][0])
    return True


def input_spec_from_details(
    detail: dict, interpreter=None, value_range=None, normalization=None
) -> InputSpec:
    """A float input's range: --input-range, else the metadata's NormalizationOptions, else the QUANTIZE op
    that consumes it, else [-1, 1]. Quantized inputs take raw pixels: their quantization is the range."""
    shape = [int(x) for x in detail["shape"]]
    if len(shape) != 4 or shape[0] != 1 or shape[3] not in (1, 3):
        raise ModelError(
            f"input shape {shape} is not an image classifier's [1, H, W, 3]; edgenet runs image classifiers"
        )
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if dtype in _QUANT_LIMITS:
        if not scale:
            scale, zero_point = (1.0, 0) if dtype == np.uint8 else (1.0, -128)
        # uint8: pixel p is fed as p; int8: as p - 128. Either way pixel 0 is the type's minimum.
        lo, hi = (scale * (q - zero_point) for q in _QUANT_LIMITS[dtype])
        natural, source = (lo, hi), "quantization"
    elif dtype == np.float32 and normalization is not None:
        mean, std = normalization
        natural, source = ((0.0 - mean[0]) / std[0], (255.0 - mean[0]) / std[0]), "metadata"
    elif dtype == np.float32:
        found = _float_range_from_quantize(interpreter, int(detail["index"])) if interpreter else None
        natural, source = (found, "quantize-op") if found else ((-1.0, 1.0), "default")
    else:
        raise ModelError(f"input type {dtype} is not supported; edgenet takes uint8, int8 and float32 inputs")
    if value_range is not None:
        natural, source = (float(value_range[0]), float(value_range[1])), "override"
    return InputSpec(
        height=shape[1],
        width=shape[2],
        channels=shape[3],
        dtype=dtype.name,
        scale=float(scale or 0.0),
        zero_point=int(zero_point or 0),
        value_range=natural,
        range_source=source,
        mean=tuple(normalization[0]) if source == "metadata" else (),
        std=tuple(normalization[1]) if source == "metadata" else (),
    )


def output_spec_from_details(detail: dict, interpreter=None) -> OutputSpec:
    shape = [int(x) for x in detail["shape"]]
    classes = shape[-1]
    if len(shape) not in (1, 2) or classes < 2:
        raise ModelError(
            f"output shape {shape} is not a classifier's [1, classes]; detection models are not supported yet"
        )
    scale, zero_point = detail["quantization"]
    probs = _ends_in_probabilities(interpreter, int(detail["index"])) if interpreter is not None else True
    return OutputSpec(
        classes=classes,
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale or 0.0),
        zero_point=int(zero_point or 0),
        probabilities=probs,
    )


_PROBE_SCRIPT = r"""
import json, sys
library, options, model = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] or None
stage = "load"
try:
    from edgenet.runtime import load_backend
    backend = load_backend()
    delegate = backend.load_delegate(library, options)
    if model:
        stage = "prepare"
        interpreter = backend.interpreter_class(model_path=model, experimental_delegates=[delegate])
        interpreter.allocate_tensors()
        stage = "invoke"
        interpreter.invoke()
except BaseException as exc:
    text = " ".join(str(exc).split()) or type(exc).__name__
    print(json.dumps({"error": text[:300], "stage": stage}), flush=True)
    sys.exit(1)
print(json.dumps({"ok": True}), flush=True)
"""
PROBE_TIMEOUT_S = 120.0


def probe_external_delegate(
    library: str,
    options: dict | None = None,
    model_path: str | None = None,
    *,
    name: str | None = None,
    timeout: float = PROBE_TIMEOUT_S,
) -> None:
    """Load `library` (and, with `model_path`, build, allocate and invoke that model with it) in a child
    process first: a libedgetpu built for another TFLite version can segfault, and a crash there must become
    a DeviceError here rather than kill this process. Returns None when the child was fine."""
    import json
    import signal
    import subprocess
    import sys

    backend = load_backend()
    name = name or os.path.basename(library)
    env = dict(os.environ, EDGENET_BACKEND=backend.name)
    command = [sys.executable, "-c", _PROBE_SCRIPT, library, json.dumps(options or {}), str(model_path or "")]
    try:
        child = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise DeviceError(
            f"loading {name} ({library}) did not finish in {timeout:.0f} s; unplug and replug "
            "the Edge TPU, then check `edgenet doctor`"
        ) from None
    report = {}
    for line in reversed(child.stdout.splitlines()):
        if line.startswith("{"):
            try:
                report = json.loads(line)
            except ValueError:
                continue
            break
    if child.returncode < 0:
        try:
            signame = signal.Signals(-child.returncode).name
        except ValueError:
            signame = f"signal {-child.returncode}"
        stage = "while unloading" if report.get("ok") else "while loading"
        raise DeviceError(
            f"{name} ({library}) crashed a test process ({signame}) {stage} with {backend.name} "
            f"{backend.version}: it was most likely built for another TensorFlow Lite version; install a "
            f"{name} built for this runtime, or the runtime it was built for"
        )
    if child.returncode != 0:
        reason = report.get("error") or _last_line(child.stderr) or f"exit status {child.returncode}"
        if report.get("stage") in ("prepare", "invoke") and model_path:
            raise DeviceError(
                f"{name} ({library}) loaded but failed to {report['stage']} "
                f"{os.path.basename(model_path)}: {reason}"
            )
        hint = ""
        if "edgetpu" in name:
            hint = (
                "; is the Edge TPU in use by another process (one process per TPU), or not accessible to "
                "this user? `edgenet doctor` checks permissions"
            )
        raise DeviceError(f"failed to load delegate {name} ({library}): {reason}{hint}")


def load_external_delegate(
    library: str,
    options: dict | None = None,
    *,
    name: str | None = None,
    probe_model: str | None = None,
    probe: bool = True,
):
    """Load a TFLite external delegate (libedgetpu.so.1, or any plugin) through the backend's
    `load_delegate(library, options)`. With `probe` (the default) the same load, plus `probe_model` built,
    allocated and invoked, first runs in a child process so that a crash becomes a DeviceError."""
    name = name or os.path.basename(library)
    backend = load_backend()
    if probe:
        probe_external_delegate(library, options, probe_model, name=name)
    try:  # a missing file or symbol fails here, before the backend's Delegate (whose __del__ would complain)
        import ctypes

        plugin = ctypes.CDLL(library)
        plugin.tflite_plugin_create_delegate, plugin.tflite_plugin_destroy_delegate  # noqa: B018
    except (OSError, AttributeError) as exc:
        hint = "; it is not a TFLite external delegate library" if isinstance(exc, AttributeError) else ""
        raise DeviceError(f"failed to load delegate {name} ({library}): {one_line(exc)}{hint}") from None
    try:
        return backend.load_delegate(library, options or {})
    except Exception as exc:  # ValueError (create gave NULL), OSError (dlopen), AttributeError (no symbol)
        raise DeviceError(f"failed to load delegate {name} ({library}): {one_line(exc)}") from None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


class Engine:
    """One interpreter for one model, built once; `run()` per frame."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        threads: int | None = None,
        delegate: str = "auto",
        external_delegate=None,
        delegate_label: str | None = None,
        value_range: tuple[float, float] | None = None,
        file_info: ModelFileInfo | None = None,
    ):
        """`file_info`: what inspect_model_file already said of this very file (it reads the whole file)."""
        if delegate not in DELEGATES:
            raise UsageError(f"unknown delegate {delegate!r}; choose one of {', '.join(DELEGATES)}")
        if threads is not None and threads < 1:
            raise UsageError(f"--threads must be 1 or more, not {threads}")
        same = file_info is not None and file_info.path == str(Path(model_path))
        self.file = file_info if same else inspect_model_file(model_path)
        self.model_path = self.file.path
        self.threads = threads
        self.backend = load_backend()
        if self.file.needs_edgetpu and external_delegate is None:
            raise DeviceError(
                f"{Path(self.model_path).name} is compiled for the Edge TPU (edgetpu-custom-op) and needs a "
                "Coral Edge TPU with libedgetpu; use the CPU model instead (see edgenet models list) or "
                "plug in an Edge TPU"
            )
        started = time.perf_counter_ns()
        self.interpreter, self.delegate = self._build(delegate, external_delegate, delegate_label)
        self.init_ms = (time.perf_counter_ns() - started) / 1e6
        in_detail = self.interpreter.get_input_details()[0]
        out_detail = self.interpreter.get_output_details()[0]
        self.input = input_spec_from_details(
            in_detail, self.interpreter, value_range, self.file.normalization
        )
        self.output = output_spec_from_details(out_detail, self.interpreter)
        self._input_index = int(in_detail["index"])
        self._output_index = int(out_detail["index"])
        self._input_dtype = np.dtype(in_detail["dtype"])

    # -- construction ------------------------------------------------------------------------
    def _new_interpreter(self, resolver: str | None, delegates=None):
        kwargs = {"model_path": self.model_path, "num_threads": self.threads}
        if delegates:
            kwargs["experimental_delegates"] = delegates
        if resolver and self.backend.op_resolver_type is not None:
            kwargs["experimental_op_resolver_type"] = getattr(self.backend.op_resolver_type, resolver)
        with _runtime_info_filtered():
            try:
                interpreter = self.backend.interpreter_class(**kwargs)
            except (ValueError, RuntimeError) as exc:
                raise ModelError(
                    f"cannot load {Path(self.model_path).name}: {one_line(exc)}; the file is truncated or "
                    "corrupt: pull it again (edgenet models pull NAME --force)"
                ) from None
            interpreter.allocate_tensors()  # may raise RuntimeError: handled by _build
        return interpreter

    def _build(self, delegate: str, external_delegate, delegate_label: str | None):
        if external_delegate is not None:
            try:
                interpreter = self._new_interpreter(None, [external_delegate])
            except RuntimeError as exc:
                raise DeviceError(
                    f"the {delegate_label or 'external'} delegate failed to prepare "
                    f"{Path(self.model_path).name}: {one_line(exc)}"
                ) from None
            return interpreter, delegate_label or "external"
        if delegate == "edgetpu":
            raise DeviceError("the edgetpu delegate was asked for but no Edge TPU delegate was loaded")
        if delegate == "cpu":
            return self._cpu_only(None), "cpu"
        try:
            interpreter = self._new_interpreter("AUTO")
        except RuntimeError as exc:
            reason = one_line(exc)
            if delegate == "xnnpack":
                raise DeviceError(
                    f"XNNPACK failed to prepare {Path(self.model_path).name}: {reason}; "
                    "run it with --delegate cpu"
                ) from None
            interpreter = self._cpu_only(reason)
            why = "xnnpack failed to prepare" if "XNNPACK" in reason else "default delegates failed"
            return interpreter, f"cpu ({why} this model)"
        partitions = _count_delegate_nodes(interpreter)
        if partitions == 0:
            if delegate == "xnnpack":
                raise DeviceError(
                    f"XNNPACK took no part of {Path(self.model_path).name} with backend "
                    f"{self.backend.name} {self.backend.version}; run it with --delegate cpu "
                    "or install ai-edge-litert"
                )
            return interpreter, "cpu"
        return interpreter, "xnnpack"

    def _cpu_only(self, earlier_failure: str | None):
        try:
            return self._new_interpreter("BUILTIN_WITHOUT_DEFAULT_DELEGATES")
        except RuntimeError as exc:
            reason = one_line(exc)
            custom = _unresolved_op(reason)
            if custom:
                raise ModelError(
                    f"{Path(self.model_path).name} uses the custom op {custom!r}, which this runtime "
                    f"({self.backend.name}) does not have; use a model made of builtin TFLite ops"
                ) from None
            raise ModelError(f"cannot prepare {Path(self.model_path).name}: {reason}") from None

    # -- per frame ---------------------------------------------------------------------------
    def set_input(self, tensor: np.ndarray) -> None:
        self.interpreter.set_tensor(self._input_index, tensor)

    def invoke(self) -> None:
        """A failing delegate (an Edge TPU pulled out) is a DeviceError, for bench and classify alike."""
        try:
            self.interpreter.invoke()
        except RuntimeError as exc:
            raise DeviceError(f"inference failed on {self.delegate}: {one_line(exc)}") from None

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """set input, invoke, return a copy of the output row (one frame)."""
        self.interpreter.set_tensor(self._input_index, tensor)
        self.invoke()
        return self.interpreter.get_tensor(self._output_index).reshape(-1)

    # -- introspection -----------------------------------------------------------------------
    @property
    def partitions(self) -> int:
        return _count_delegate_nodes(self.interpreter)

    def op_counts(self) -> dict[str, int]:
        ops = _ops_details(self.interpreter)
        return dict(Counter(op["op_name"] for op in ops if op["op_name"] != "DELEGATE").most_common())


@contextlib.contextmanager
def _runtime_info_filtered():
    """The C++ runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on stderr each time
    an interpreter is built: noise in every cron log. Capture file descriptor 2 while the interpreter is
    built and pass on everything but its INFO lines (warnings and errors still show, a moment later)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [
                line
                for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                if not line.startswith("INFO: ")
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _count_delegate_nodes(interpreter) -> int:
    try:
        return sum(1 for op in _ops_details(interpreter) if op["op_name"] == "DELEGATE")
    except Exception:
        return 0


def _unresolved_op(reason: str) -> str | None:
    marker = "unresolved custom op: "
    if marker in reason:
        return reason.split(marker, 1)[1].split(".")[0].strip()
    return None
