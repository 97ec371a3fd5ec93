"""Building an engine for a placement: one provider per kind (cpu, xnnpack, edgetpu, external), in the spirit
of LiteRT's delegate providers. Each provider owns its delegate's loading, options and failures; adding a
delegate is a provider here and a rule in edgenet.placement.

External delegate libraries (libedgetpu, plugins) are first loaded in a child process: a library built for
another TFLite version can segfault, and that must become a one-line error here, not kill this process.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgenet import edgetpu
from edgenet.errors import DeviceError, ModelError, one_line
from edgenet.placement import HostFacts, Placement, PlacementRequest, wants_tpu
from edgenet.runtime import AUTO, BUILTIN, Engine, load_backend
from edgenet.tensors import ModelFileInfo

PROBE_TIMEOUT_S = 120.0
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


def gather_facts(request: PlacementRequest) -> HostFacts:
    """Read what placement needs from this machine, and no more (no sysfs walk for --delegate cpu)."""
    if not wants_tpu(request) and not request.file_needs_tpu:
        return HostFacts()
    tpus = tuple(edgetpu.find_edgetpus())
    needs_library = bool(tpus) or request.file_needs_tpu or request.delegate.value == "edgetpu"
    library = edgetpu.find_library() if needs_library and not request.delegate_lib else None
    return HostFacts(
        tpus=tpus,
        unbound_pci=tuple(edgetpu.find_pci_without_driver()) if not tpus else (),
        libedgetpu=library,
        libedgetpu_problem=edgetpu.library_problem() if needs_library and library is None else "",
    )


# -- external delegate libraries ---------------------------------------------------------------------


def probe_external_delegate(
    library: str,
    options: dict | None = None,
    model_path: str | None = None,
    *,
    name: str | None = None,
    timeout: float = PROBE_TIMEOUT_S,
) -> None:
    """Load `library` (and, with `model_path`, build, allocate and invoke that model with it) in a child
    process; a crash or failure there becomes a DeviceError here. Returns None when the child was fine."""
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
    report = _child_report(child.stdout)
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


def _child_report(stdout: str) -> dict:
    import json

    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return {}


def load_external_delegate(
    library: str,
    options: dict | None = None,
    *,
    name: str | None = None,
    probe_model: str | None = None,
    probe: bool = True,
):
    """Load a TFLite external delegate through the backend's `load_delegate(library, options)`, after the
    same load (plus `probe_model` built, allocated and invoked) succeeded in a child process."""
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


# -- providers ---------------------------------------------------------------------------------------


class CpuProvider:
    """TFLite's builtin kernels, no delegate at all."""

    def build(self, path, placement: Placement, threads, value_range, info) -> tuple[Engine, Placement]:
        try:
            return Engine(path, threads=threads, resolver=BUILTIN, value_range=value_range, file_info=info), (
                placement
            )
        except RuntimeError as exc:
            reason = one_line(exc)
            custom = _unresolved_op(reason)
            name = Path(path).name
            if custom:
                raise ModelError(
                    f"{name} uses the custom op {custom!r}, which this runtime ({load_backend().name}) does "
                    "not have; use a model made of builtin TFLite ops"
                ) from None
            raise ModelError(f"cannot prepare {name}: {reason}") from None


class XnnpackProvider:
    """The backend's default delegates (XNNPACK). Under --delegate auto, a model XNNPACK cannot prepare (or
    takes no part of) runs on the builtin kernels instead, and the placement says so."""

    def build(self, path, placement: Placement, threads, value_range, info) -> tuple[Engine, Placement]:
        name = Path(path).name
        try:
            engine = Engine(path, threads=threads, resolver=AUTO, value_range=value_range, file_info=info)
        except RuntimeError as exc:
            reason = one_line(exc)
            if not placement.fallback:
                raise DeviceError(
                    f"XNNPACK failed to prepare {name}: {reason}; run it with --delegate cpu"
                ) from None
            why = (
                "xnnpack failed to prepare this model" if "XNNPACK" in reason else "default delegates failed"
            )
            engine, _ = CpuProvider().build(path, placement, threads, value_range, info)
            return engine, placement.with_reason("cpu", why)
        if engine.partitions == 0:
            backend = engine.backend
            if not placement.fallback:
                raise DeviceError(
                    f"XNNPACK took no part of {name} with backend {backend.name} {backend.version}; run it "
                    "with --delegate cpu or install ai-edge-litert"
                )
            return engine, placement.with_reason(
                "cpu", f"xnnpack took no part of this model ({backend.name})"
            )
        return engine, placement


class ExternalProvider:
    """A TFLite external delegate library: libedgetpu for kind edgetpu, any plugin for kind external."""

    def build(self, path, placement: Placement, threads, value_range, info) -> tuple[Engine, Placement]:
        options = dict(placement.options)
        delegate = load_external_delegate(
            placement.library, options, name=placement.library_name, probe_model=str(path)
        )
        try:
            engine = Engine(
                path, threads=threads, delegates=(delegate,), value_range=value_range, file_info=info
            )
        except RuntimeError as exc:
            label = "edgetpu" if placement.kind == "edgetpu" else f"external ({placement.library_name})"
            raise DeviceError(
                f"the {label} delegate failed to prepare {Path(path).name}: {one_line(exc)}"
            ) from None
        return engine, placement


PROVIDERS = {
    "cpu": CpuProvider(),
    "xnnpack": XnnpackProvider(),
    "edgetpu": ExternalProvider(),
    "external": ExternalProvider(),
}


def build_engine(
    path: str | os.PathLike,
    placement: Placement,
    *,
    threads: int | None,
    value_range: tuple[float, float] | None = None,
    file_info: ModelFileInfo | None = None,
) -> Engine:
    """The one interpreter for this model and placement; `engine.placement` is where it really runs."""
    engine, final = PROVIDERS[placement.kind].build(path, placement, threads, value_range, file_info)
    engine.placement = final
    return engine


def _unresolved_op(reason: str) -> str | None:
    marker = "unresolved custom op: "
    if marker in reason:
        return reason.split(marker, 1)[1].split(".")[0].strip()
    return None
