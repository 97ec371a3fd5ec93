"""What a model file is and what its tensors want, before and after the interpreter is built. Pure functions
over the file's bytes and the interpreter's tensor and op details (lists of dicts), no runtime import.

- `inspect_model_file`: refuse what cannot be a loadable TFLite model, spot Edge TPU and Ethos-U files.
- `input_spec`: how a pixel becomes an input value (dtype, quantization, value range and where it came from).
- `OutputTensor`: one output as the interpreter describes it, and the op that produced it.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from dataclasses import field
from pathlib import Path

import numpy as np

from edgenet.errors import ModelError
from edgenet.lightclass import lightclass
from edgenet.metadata import custom_ops, input_normalization

QUANT_LIMITS = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}
DETECTION_OP = "TFLite_Detection_PostProcess"


@lightclass
class ModelFileInfo:
    path: str
    size: int
    needs_edgetpu: bool
    custom_ops: tuple[str, ...] = field(default_factory=tuple)
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (mean, std) from metadata
    detection: bool = False  # ends in TFLite_Detection_PostProcess (an SSD detector)


@lightclass
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


@lightclass
class OutputTensor:
    """One output tensor: its position, shape, number format and the op that produced it (None: unknown)."""

    position: int
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int
    producer: str | None = None


def inspect_model_file(path: str | os.PathLike) -> ModelFileInfo:
    """Refuse what cannot be a loadable TFLite model, before the runtime sees it."""
    path = Path(path)
    if not path.exists():
        raise ModelError(
            f"model file not found: {path}; give a zoo name (edgenet models list) or a .tflite path"
        )
    if path.is_dir():
        raise ModelError(f"model path is a folder: {path}; give a .tflite file")
    try:  # mapped, not read: only the header, the op codes and the metadata are touched
        with open(path, "rb") as handle, _mapped(handle) as data:
            return _inspect(path, data)
    except OSError as exc:
        raise ModelError(f"cannot read model {path}: {exc.strerror}; check its permissions") from None


@contextlib.contextmanager
def _mapped(handle):
    size = os.fstat(handle.fileno()).st_size
    if size == 0:  # mmap refuses an empty file
        yield b""
        return
    data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield data
    finally:
        data.close()


def _inspect(path: Path, data) -> ModelFileInfo:
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise ModelError(
            f"{path} is not a TFLite model (no TFL3 flatbuffer header); give a .tflite file "
            "(edgenet models list shows the known ones)"
        )
    customs = custom_ops(data)
    if customs is None:  # op codes that cannot be read: look for the names anywhere in the file
        names = ("ethos-u", "edgetpu-custom-op", DETECTION_OP)
        customs = tuple(name for name in names if data.find(name.encode()) >= 0)
    if any(name.startswith("ethos-u") for name in customs):
        raise ModelError(
            f"{path} is compiled for an Arm Ethos-U NPU (Vela) and cannot run on a CPU or an Edge TPU; "
            "use the model before Vela compilation"
        )
    needs_edgetpu = "edgetpu-custom-op" in customs
    return ModelFileInfo(
        path=str(path),
        size=len(data),
        needs_edgetpu=needs_edgetpu,
        custom_ops=("edgetpu-custom-op",) if needs_edgetpu else (),
        normalization=input_normalization(data),
        detection=DETECTION_OP in customs,
    )


def float_range_from_quantize(ops: list, tensors: dict, input_index: int) -> tuple[float, float] | None:
    """A float input consumed by a QUANTIZE op: that op's quantization tells the range the model expects."""
    for op in ops:
        if op["op_name"] == "QUANTIZE" and input_index in list(op["inputs"]):
            out = tensors.get(int(op["outputs"][0]))
            if out is None:
                return None
            scale, zero_point = out["quantization"]
            limits = QUANT_LIMITS.get(np.dtype(out["dtype"]))
            if not scale or limits is None:
                return None
            lo, hi = (scale * (q - zero_point) for q in limits)
            return (round(lo, 3), round(hi, 3))
    return None


def input_spec(detail: dict, ops=(), tensors=None, value_range=None, normalization=None) -> InputSpec:
    """A float input's range: --input-range, else the metadata's NormalizationOptions, else the QUANTIZE op
    that consumes it, else [-1, 1]. Quantized inputs take raw pixels: their quantization is the range."""
    shape = [int(x) for x in detail["shape"]]
    if len(shape) != 4 or shape[0] != 1 or shape[3] not in (1, 3):
        raise ModelError(
            f"input shape {shape} is not an image model's [1, H, W, 3]; edgenet runs image models"
        )
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if dtype in QUANT_LIMITS:
        if not scale:
            scale, zero_point = (1.0, 0) if dtype == np.uint8 else (1.0, -128)
        # uint8: pixel p is fed as p; int8: as p - 128. Either way pixel 0 is the type's minimum.
        lo, hi = (scale * (q - zero_point) for q in QUANT_LIMITS[dtype])
        natural, source = (lo, hi), "quantization"
    elif dtype == np.float32 and normalization is not None:
        mean, std = normalization
        natural, source = ((0.0 - mean[0]) / std[0], (255.0 - mean[0]) / std[0]), "metadata"
    elif dtype == np.float32:
        found = float_range_from_quantize(list(ops), tensors or {}, int(detail["index"]))
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


def output_tensors(details: list[dict], ops=()) -> tuple[OutputTensor, ...]:
    """Every output in the interpreter's order, each with the op that produced it."""
    producers = {}
    for op in ops:
        for tensor in op["outputs"]:
            producers.setdefault(int(tensor), op["op_name"])
    found = []
    for position, detail in enumerate(details):
        scale, zero_point = detail["quantization"]
        found.append(
            OutputTensor(
                position=position,
                index=int(detail["index"]),
                name=str(detail.get("name", "")),
                shape=tuple(int(x) for x in detail["shape"]),
                dtype=np.dtype(detail["dtype"]).name,
                scale=float(scale or 0.0),
                zero_point=int(zero_point or 0),
                producer=producers.get(int(detail["index"])),
            )
        )
    return tuple(found)
