"""The only module that imports a TFLite backend.

Backend order: ai_edge_litert -> tflite_runtime -> tensorflow.lite (or EDGENET_BACKEND to force one).
`Engine` owns one interpreter for one model, created once and reused for every frame. Which kernels and
delegates it gets is decided elsewhere (edgenet.placement, edgenet.delegates); the engine only builds what it
is handed and runs it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np

from edgenet.errors import DeviceError, ModelError, UsageError, one_line
from edgenet.host import usable_cores
from edgenet.lightclass import lightclass
from edgenet.tensors import (
    InputSpec,
    ModelFileInfo,
    OutputTensor,
    input_spec,
    inspect_model_file,
    output_tensors,
)

BACKENDS = ("ai_edge_litert", "tflite_runtime", "tensorflow")
MAX_DEFAULT_THREADS = 4
MAX_THREADS = 64  # far above any board's cores; a typo (1000) is refused instead of failing oddly
AUTO, BUILTIN = "AUTO", "BUILTIN_WITHOUT_DEFAULT_DELEGATES"  # op resolvers: with XNNPACK, without


@lightclass
class Backend:
    name: str  # "ai_edge_litert", "tflite_runtime", "tensorflow"
    version: str
    interpreter_class: type
    load_delegate: object
    op_resolver_type: object | None  # None when the backend has no OpResolverType


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
            return _import_backend(name)
        except Exception as exc:  # ImportError, or numpy 2 breaking an old wheel (AttributeError, ...)
            failures.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    raise DeviceError(
        f"no TFLite backend could be imported ({'; '.join(failures)}); {_install_hint(preferred)}"
    )


def _install_hint(preferred: str | None) -> str:
    from edgenet.host import is_32bit_arm

    if is_32bit_arm() and preferred in (None, "tflite_runtime"):
        return _arm32_hint()
    if preferred == "tflite_runtime":
        return (
            "pip install 'tflite-runtime==2.14.*' 'numpy<2' (Python <= 3.11), or unset EDGENET_BACKEND "
            "to use ai-edge-litert"
        )
    if preferred == "tensorflow":
        return "pip install tensorflow, or unset EDGENET_BACKEND to use ai-edge-litert"
    return (
        "pip install ai-edge-litert (or, on 32-bit Arm, 'tflite-runtime==2.14.*' 'numpy<2' with "
        "Python <= 3.11)"
    )


def _arm32_hint() -> str:
    """32-bit ARM: ai-edge-litert has no wheel; tflite-runtime has armv7l wheels up to Python 3.11."""
    import platform

    machine = platform.machine()
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if machine == "armv6l":
        return (
            "tflite-runtime has no armv6l wheel (Pi Zero, Pi 1): use a Pi with a 64-bit OS, or build "
            "tflite-runtime yourself; see docs/boards.md"
        )
    if sys.version_info >= (3, 12):
        return (
            f"no TFLite runtime for 32-bit ARM ({machine}) on Python {python}: ai-edge-litert has no 32-bit "
            "ARM wheel and tflite-runtime stops at Python 3.11; install the 64-bit Raspberry Pi OS, or use "
            "Python 3.11 (32-bit Pi OS bookworm); see docs/boards.md"
        )
    return f"pip install 'tflite-runtime==2.14.*' 'numpy<2' (32-bit ARM, {machine}; see docs/boards.md)"


def _import_backend(name: str) -> Backend:
    if name == "ai_edge_litert":
        module = importlib.import_module("ai_edge_litert.interpreter")
        version = _version("ai_edge_litert", "ai-edge-litert")
    elif name == "tflite_runtime":
        module = importlib.import_module("tflite_runtime.interpreter")
        version = _version("tflite_runtime", "tflite-runtime")
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


def _version(package: str, dist: str) -> str:
    """The package's own __version__ (both runtimes have one), else its installed distribution's: reading
    the metadata imports importlib.metadata and email at every start (docs/performance.md, start-up)."""
    found = getattr(sys.modules.get(package), "__version__", None)
    return str(found) if found else _dist_version(dist)


def _dist_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def default_threads(pipeline: bool = False, folder: bool = False) -> int:
    """Inference threads when none are asked for, on this machine's usable cores: see threads_for()."""
    return threads_for(usable_cores(), pipeline=pipeline, folder=folder)


def threads_for(cores: int, *, pipeline: bool = False, folder: bool = False) -> int:
    """Inference threads when none are asked for: the usable cores, at most 4; in a pipeline (classify,
    eval, streams) one core fewer, because decoding and capture run beside inference in their own thread
    (docs/design.md, "Threads"). A folder run (`folder`) on 4 cores or more keeps half of them for inference
    and decodes on the other half (edgenet.run.workers.decode_workers): decoding a photo costs about as much
    as invoking a mobile classifier on one core, so 3 inference threads beside one decoder would wait for
    it. Derived from per-stage times on 2 cores, not measured on 4 (docs/performance.md, "Decode
    workers"); 3 cores or fewer keep the pipeline's split."""
    if folder and cores >= 4:
        return min(MAX_DEFAULT_THREADS, cores // 2)
    return max(1, min(MAX_DEFAULT_THREADS, cores - (1 if pipeline else 0)))


def check_threads(threads: int | None) -> None:
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise UsageError(
            f"--threads {threads}: give 1 to {MAX_THREADS} (this machine has {usable_cores()} usable cores)"
        )


def decode_threads(inference_threads: int | None) -> int:
    """Threads for a video decoder running beside inference: the cores inference leaves free, at least 1."""
    return max(1, usable_cores() - max(1, inference_threads or 1))


class Engine:
    """One interpreter for one model, built once; `run()` per frame.

    `resolver` AUTO applies the backend's default delegates (XNNPACK); BUILTIN keeps to the builtin kernels.
    `delegates` are loaded external delegates (libedgetpu, a plugin). A failure to prepare the model is a
    RuntimeError here, for the caller (edgenet.delegates) to turn into the right error or fallback."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        threads: int | None = None,
        resolver: str = AUTO,
        delegates: tuple = (),
        value_range: tuple[float, float] | None = None,
        file_info: ModelFileInfo | None = None,
    ):
        check_threads(threads)
        same = file_info is not None and file_info.path == str(Path(model_path))
        self.file = file_info if same else inspect_model_file(model_path)
        self.model_path = self.file.path
        self.threads = threads
        self.backend = load_backend()
        self.placement = None  # where it runs, once decided and built (edgenet.delegates.build_engine)
        if self.file.needs_edgetpu and not delegates:
            raise DeviceError(
                f"{Path(self.model_path).name} is compiled for the Edge TPU (edgetpu-custom-op) and needs a "
                "Coral Edge TPU with libedgetpu; use the CPU model instead (see edgenet models list) or "
                "plug in an Edge TPU"
            )
        started = time.perf_counter_ns()
        self.interpreter = self._new_interpreter(resolver, list(delegates))
        self.init_ms = (time.perf_counter_ns() - started) / 1e6
        self.ops = self._read_ops()
        tensors = {t["index"]: t for t in self.interpreter.get_tensor_details()}
        in_detail = self.interpreter.get_input_details()[0]
        self.input: InputSpec = input_spec(in_detail, self.ops, tensors, value_range, self.file.normalization)
        self.output_details: list[dict] = self.interpreter.get_output_details()
        self.outputs: tuple[OutputTensor, ...] = output_tensors(self.output_details, self.ops)
        self._input_index = int(in_detail["index"])
        self._output_indices = tuple(output.index for output in self.outputs)
        self.partitions = sum(1 for op in self.ops if op["op_name"] == "DELEGATE")

    def _new_interpreter(self, resolver: str, delegates: list):
        kwargs = {"model_path": self.model_path, "num_threads": self.threads}
        if delegates:
            kwargs["experimental_delegates"] = delegates
        elif self.backend.op_resolver_type is not None:
            kwargs["experimental_op_resolver_type"] = getattr(self.backend.op_resolver_type, resolver)
        with _runtime_info_filtered():
            try:
                interpreter = self.backend.interpreter_class(**kwargs)
            except (ValueError, RuntimeError) as exc:
                raise ModelError(
                    f"cannot load {Path(self.model_path).name}: {one_line(exc)}; the file is truncated or "
                    "corrupt: pull it again (edgenet models pull NAME --force)"
                ) from None
            except MemoryError:
                raise DeviceError(
                    f"not enough memory to load {Path(self.model_path).name} with {self.threads} thread(s); "
                    "use fewer --threads or a smaller model"
                ) from None
            interpreter.allocate_tensors()  # may raise RuntimeError: the caller decides what it means
        return interpreter

    def _read_ops(self) -> list:
        """The op list, read once: it is fixed after allocate_tensors, and slow to read."""
        try:
            return list(self.interpreter._get_ops_details())
        except Exception:
            return []

    # -- per frame ---------------------------------------------------------------------------
    def set_input(self, tensor: np.ndarray) -> None:
        self.interpreter.set_tensor(self._input_index, tensor)

    def invoke(self) -> None:
        """A failing delegate (an Edge TPU pulled out) is a DeviceError, for bench and every task alike."""
        try:
            self.interpreter.invoke()
        except RuntimeError as exc:
            where = f" on {self.placement.kind}" if self.placement is not None else ""
            raise DeviceError(f"inference failed{where}: {one_line(exc)}") from None

    def run(self, tensor: np.ndarray) -> tuple[np.ndarray, ...]:
        """Set the input, invoke, return a copy of every output (safe to postprocess in another thread)."""
        self.interpreter.set_tensor(self._input_index, tensor)
        self.invoke()
        get = self.interpreter.get_tensor
        return tuple(get(index) for index in self._output_indices)

    # -- introspection -----------------------------------------------------------------------
    def op_counts(self) -> dict[str, int]:
        return dict(Counter(op["op_name"] for op in self.ops if op["op_name"] != "DELEGATE").most_common())


@contextlib.contextmanager
def _runtime_info_filtered():
    """The C++ runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on stderr each time
    an interpreter is built: noise in every cron log. Capture file descriptor 2 while the interpreter is
    built and pass on everything but its INFO lines (warnings and errors still show, a moment later)."""
    from edgenet.native_stderr import captured_stderr, pass_on

    out = None
    try:
        with captured_stderr() as out:
            yield
    finally:
        if out is not None:  # also when building failed: its error lines are what the user needs
            lines = out.text.splitlines(keepends=True)
            pass_on("".join(line for line in lines if not line.startswith("INFO: ")))
