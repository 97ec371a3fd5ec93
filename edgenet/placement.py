"""Where a model runs: a small value decided by a pure function of what the user asked for and what the host
has. Building the interpreter for a placement is edgenet.delegates' job (one provider per kind).

Kinds: `cpu` (TFLite's builtin kernels), `xnnpack` (the CPU through XNNPACK), `edgetpu` (a Coral Edge TPU
through libedgetpu), `external` (any TFLite external delegate library). `reason` says why, when the placement
is not what the user asked for (auto on a box without a TPU, a fallback, ...).
"""

from __future__ import annotations

import os
from dataclasses import field

from edgenet import edgetpu
from edgenet.choices import Delegate
from edgenet.errors import DeviceError, ModelError, UsageError
from edgenet.lightclass import lightclass

KINDS = ("cpu", "xnnpack", "edgetpu", "external")


@lightclass
class PlacementRequest:
    """What the user asked for, and what is known of the model before it is loaded."""

    model: str  # zoo name, or the file name of a model given by path
    delegate: Delegate = Delegate.auto
    device: str = ""  # Edge TPU device string ("", "usb", "usb:1", "pci:0", ":0")
    delegate_lib: str | None = None  # --delegate-lib: an external delegate (stands in for libedgetpu)
    delegate_options: tuple[tuple[str, str], ...] = ()  # --delegate-option KEY=VALUE
    zoo: bool = True  # a catalog model (False: a file given by path)
    has_twin: bool = False  # an _edgetpu twin: the catalog's, or X_edgetpu.tflite beside X.tflite
    cpu_version: str | None = None  # for an _edgetpu file given by path: X.tflite beside it, if there
    file_needs_tpu: bool = False  # the file given by path is compiled for the Edge TPU
    twins: tuple[str, ...] = ()  # catalog models that have a twin, for advice


@lightclass
class HostFacts:
    """What placement needs from the machine (edgenet.delegates.gather_facts reads it)."""

    tpus: tuple = ()  # edgetpu.EdgeTpu, PCIe first
    unbound_pci: tuple[str, ...] = ()  # Coral PCIe functions without their apex driver
    libedgetpu: str | None = None
    libedgetpu_problem: str = ""  # the one line to give when libedgetpu is needed and missing


@lightclass
class Placement:
    kind: str  # one of KINDS
    reason: str | None = None  # why, when it is not what the user asked for
    library: str | None = None  # the delegate library (edgetpu, external)
    library_name: str | None = None  # how messages name it (libedgetpu.so.1, plugin.so)
    options: tuple[tuple[str, str], ...] = ()  # passed to the delegate library
    twin: bool = False  # load the catalog model's _edgetpu twin
    fallback: bool = False  # xnnpack may fall back to the builtin kernels (only under --delegate auto)
    tpu: object | None = None  # the chosen edgetpu.EdgeTpu
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def with_reason(self, kind: str, reason: str) -> Placement:
        """After the fact (the builder fell back): another kind, and the reasons joined."""
        joined = "; ".join(part for part in (self.reason, reason) if part)
        return Placement(**{**self.__dict__, "kind": kind, "reason": joined or None})


def check_request(request: PlacementRequest) -> None:
    """Usage errors, whatever the host has."""
    edgetpu.parse_device(request.device)  # a bad device string is a usage error with or without a TPU
    if request.delegate in (Delegate.cpu, Delegate.xnnpack) and (request.device or request.delegate_lib):
        option = "--device" if request.device else "--delegate-lib"
        raise UsageError(
            f"{option} does not go with --delegate {request.delegate.value}; use --delegate auto or edgetpu"
        )
    if request.delegate_options and request.delegate in (Delegate.cpu, Delegate.xnnpack):
        raise UsageError(
            "--delegate-option passes options to an external delegate (libedgetpu or --delegate-lib); "
            f"it does not go with --delegate {request.delegate.value}"
        )


def wants_tpu(request: PlacementRequest) -> bool:
    """Whether the host's Edge TPUs matter to this request (else they need not even be looked for)."""
    return request.delegate in (Delegate.auto, Delegate.edgetpu) or bool(request.device)


def place(request: PlacementRequest, facts: HostFacts) -> Placement:
    """The placement for a request on a host; raises the one-line error when it cannot be met."""
    check_request(request)
    asked = request.delegate
    if asked == Delegate.edgetpu or request.device or request.file_needs_tpu:
        return _on_tpu(request, facts)
    if asked == Delegate.auto and (request.has_twin or request.delegate_lib is None):
        if facts.tpus and request.has_twin:
            return _on_tpu(request, facts)
        return _auto_elsewhere(request, facts)
    if request.delegate_lib:
        return _external(request)
    return Placement(
        kind=asked.value if asked != Delegate.auto else "xnnpack", fallback=asked == Delegate.auto
    )


def _external(request: PlacementRequest, reason: str | None = None) -> Placement:
    return Placement(
        kind="external",
        reason=reason,
        library=request.delegate_lib,
        library_name=os.path.basename(request.delegate_lib or ""),
        options=request.delegate_options,
    )


def _auto_elsewhere(request: PlacementRequest, facts: HostFacts) -> Placement:
    """--delegate auto where the TPU is not for this model: the CPU (or --delegate-lib), saying why."""
    warnings: list[str] = []
    reason = None
    if facts.tpus and request.zoo:
        reason = f"{request.model} has no Edge TPU twin"
        twins = ", ".join(request.twins)
        warnings.append(
            f"an Edge TPU is present but {request.model} has no Edge TPU model: running it on the CPU "
            f"(models with one: {twins})"
        )
    elif facts.tpus:
        reason = f"{request.model} is not compiled for the Edge TPU"
    elif request.has_twin:
        reason = "no Edge TPU found"
        if "edgetpu" in request.model.lower().replace("-", ""):
            warnings.append(
                f"no Edge TPU found: running the CPU version of {request.model} "
                "(--delegate edgetpu makes this an error)"
            )
    if request.delegate_lib:
        return _external(request)
    return Placement(kind="xnnpack", reason=reason, fallback=True, warnings=tuple(warnings))


def _on_tpu(request: PlacementRequest, facts: HostFacts) -> Placement:
    if not request.zoo and not request.file_needs_tpu and not request.has_twin:
        raise ModelError(
            f"{request.model} is not compiled for the Edge TPU (no edgetpu-custom-op); compile "
            "it with edgetpu_compiler, use a zoo model with an Edge TPU twin, or run it "
            "with --delegate xnnpack"
        )
    if request.zoo and not request.has_twin:
        raise ModelError(
            f"model {request.model} has no Edge TPU twin; run it on the CPU (--delegate "
            "xnnpack) or pick one with an Edge TPU model (edgenet models list)"
        )
    if request.delegate == Delegate.edgetpu:
        wanted_by = "--delegate edgetpu"
    elif request.device:
        wanted_by = f"--device {request.device}"
    elif request.file_needs_tpu:
        wanted_by = f"{request.model} (compiled for the Edge TPU)"
    else:
        wanted_by = request.model
    try:
        tpu = edgetpu.require_tpu(request.device, wanted_by, list(facts.tpus), list(facts.unbound_pci))
    except DeviceError as problem:
        if not request.file_needs_tpu:
            raise
        text = str(problem).removesuffix(", or run on the CPU with --delegate xnnpack")
        cpu = (
            f"run its CPU version: --model {request.cpu_version}"
            if request.cpu_version
            else "give the model as it was before edgetpu_compiler to run it on the CPU"
        )
        raise DeviceError(f"{text}; or {cpu}") from None
    library = request.delegate_lib or facts.libedgetpu
    if library is None:
        raise DeviceError(facts.libedgetpu_problem or f"{edgetpu.LIBEDGETPU} is not installed")
    warnings = []
    if tpu.usb2:
        warnings.append(
            f"the Edge TPU at {tpu.path} runs at USB 2 speed ({tpu.speed} Mb/s): "
            "expect roughly half the throughput; use a USB 3 port and cable"
        )
    options = (("device", request.device),) if request.device else ()
    return Placement(
        kind="edgetpu",
        library=library,
        library_name=os.path.basename(library) if request.delegate_lib else edgetpu.LIBEDGETPU,
        options=options + tuple(request.delegate_options),
        twin=request.has_twin and not request.file_needs_tpu,
        tpu=tpu,
        warnings=tuple(warnings),
    )
